//! KMS: a self-hosted key management service that speaks the Alibaba Cloud KMS API
//! (version 2016-01-20) on the wire.
//!
//! A request travels one way through these modules:
//!
//! - [`protocol`]: HTTP-facing. Reads parameters (query + form body), picks the action,
//!   verifies the signature (v1 HMAC-SHA1 or V3 `ACS3-HMAC-SHA256`), checks timestamp and
//!   nonce, and renders JSON/XML responses and errors. Knows nothing of SQL or key material.
//! - [`api`]: one file per group of actions; turns parameters into typed service calls and
//!   service results into wire response types (PascalCase, double-wrapped lists);
//!   [`api::dispatch`] is one exhaustive `match` over the actions.
//! - [`service`]: the KMS itself: accounts, key lifecycle, the key-state × action matrix,
//!   import rules. Knows nothing of HTTP, JSON or SQL.
//! - [`keystore`]: the cryptography: root key and sealing at rest, the ciphertext blob,
//!   import tokens, wrapping key pairs and unwrapping (aws-lc-rs; SM2/SM3/SM4 from RustCrypto).
//! - [`store`]: persistence, one trait per aggregate bundled as [`store::Store`]; the SQL is
//!   written once ([`store::sql`]) for SQLite (embedded) and PostgreSQL (several nodes), with
//!   a read-through cache in front ([`store::cache`]).
//! - [`model`]: the domain types below service and store: key states, specs, usages,
//!   origins, protection levels and the records.
//! - [`action`] (at the bottom; used by protocol, api, service, console and the CLI): one
//!   table per API product, keyed by `Version`, generating its `enum Action` with every fact
//!   of an action: wire name, parameters and help, throttle class, audit durability,
//!   key-state matrix row, RAM action and resource kind.
//!
//! [`server`] wires these together with axum (data dir, first-start bootstrap, the app, the
//! accept loop with its HTTP limits; [`server::run`] serves on a listener its caller has
//! bound, so tests can use `127.0.0.1:0`); [`console`] is the web console (one module per
//! page, askama templates, a session extractor; its sessions go through
//! [`service::console`]); [`audit`] is the hash-chained audit trail (fails closed: state
//! changes are refused while it cannot write); [`admin`] holds the offline admin commands
//! ([`rotation`] the root-key rotation, crash-safe and resumable);
//! [`clock`] is the injectable clock every time-dependent rule goes through; [`client`]
//! signs requests like the SDKs do, for the command line ([`cli`], whose subcommands come
//! from the [`action`] table), [`bench`](mod@bench) (`kms bench`) and the integration tests.
//! [`policy`] is the RAM policy language (parse, compile, evaluate; pure); requests by RAM
//! users and role sessions are authorised with it in [`api::authz`] (identities in
//! [`service::ram`], sessions in [`service::sts`]).
//! [`backup`] is `kms admin backup`/`restore` (the self-checking backup file); [`progress`]
//! the progress display of the long admin commands.
//! [`hsm`] is the PKCS#11 HSM (beside [`keystore`]): `ProtectionLevel=HSM` keys, BYOK
//! unwrapped in the token and a root key sealed by the token; [`service`] and [`server`] use
//! it, it uses only [`keystore`] and [`error`].

pub mod action;
pub mod admin;
pub mod api;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod error;
pub mod hsm;
pub mod keystore;
pub mod model;
pub mod policy;
pub mod private_fs;
pub mod progress;
pub mod protocol;
pub mod random_pool;
pub mod rotation;
pub mod server;
pub mod service;
pub mod store;
pub mod timefmt;
pub mod tls;
