//! Command-line flags, environment variables and the optional TOML config file.
//! Precedence: flag > environment variable > config file > default.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(
    name = "kms",
    version,
    about = "A key management service that speaks the Alibaba Cloud KMS API (2016-01-20)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the server's variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the KMS server.
    Server(ServerArgs),
    /// Offline administration of a data dir.
    Admin(AdminArgs),
    /// Load-test an endpoint: throughput, latency percentiles, errors by code.
    Bench(crate::bench::BenchArgs),
    /// Save credentials, region and endpoint in a profile (~/.kms/config.toml).
    Configure(crate::cli::ConfigureArgs),
    /// Wrap 32 bytes of key material with a PublicKey from GetParametersForImport (no openssl needed).
    Wrap(crate::cli::WrapArgs),
    /// Bring your own key in one step: GetParametersForImport, local wrapping, ImportKeyMaterial.
    ImportMaterial(crate::cli::ImportMaterialArgs),
    /// CreateKey with Origin=EXTERNAL.
    CreateExternalKey(crate::cli::CreateExternalKeyArgs),
    /// Sign a file with an asymmetric key: SHA-256 here, AsymmetricSign on the server.
    Sign(crate::cli::asymmetric::SignArgs),
    /// Check a file's signature: SHA-256 here, AsymmetricVerify on the server.
    Verify(crate::cli::asymmetric::VerifyArgs),
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// TOML config file with any of: listen, data_dir, database_url, database_pool_size,
    /// region (string or list), account_id, wrapping_key_pool, max_keys, max_aliases_per_key,
    /// max_versions_per_key, max_import_tokens_per_key, throttle_*, tls_*, audit_dir, audit_max_bytes,
    /// audit_retain_files, audit_retain_bytes, audit_reserve_bytes, console_listen,
    /// console_idle_timeout, metrics_allow_remote, hsm_module, hsm_token_label, hsm_pin_file,
    /// hsm_timeout, and the HTTP limits (max_connections,
    /// max_connections_per_address, first_request_timeout, max_header_bytes, max_headers,
    /// header_read_timeout, body_read_timeout).
    #[arg(long, env = "KMS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "KMS_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the database and the root key, created if missing [default: ./kms-data].
    #[arg(long, env = "KMS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Region(s) served; repeat or separate with commas. The first is the default
    /// [default: cn-hangzhou].
    #[arg(long, env = "KMS_REGION", value_delimiter = ',')]
    pub region: Vec<String>,
    /// Account id (digits) of the first access key, on the first start of a data dir
    /// [default: generated].
    #[arg(long, env = "KMS_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// The database: `postgres://user:password@host:port/dbname` for several nodes on one
    /// PostgreSQL database, or `sqlite:<file>` [default: SQLite in <data dir>/kms.db].
    #[arg(long, env = "KMS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Connections in this node's PostgreSQL pool [default: 16].
    #[arg(long, env = "KMS_DATABASE_POOL_SIZE")]
    pub database_pool_size: Option<usize>,
    /// How many RSA-2048 wrapping keys to keep pre-generated for GetParametersForImport
    /// [default: 8].
    #[arg(long, env = "KMS_WRAPPING_KEY_POOL")]
    pub wrapping_key_pool: Option<usize>,
    /// Most keys per account and region [default: 1000].
    #[arg(long, env = "KMS_MAX_KEYS")]
    pub max_keys: Option<i64>,
    /// Most aliases per key [default: 50].
    #[arg(long, env = "KMS_MAX_ALIASES_PER_KEY")]
    pub max_aliases_per_key: Option<i64>,
    /// Most versions per key [default: 100].
    #[arg(long, env = "KMS_MAX_VERSIONS_PER_KEY")]
    pub max_versions_per_key: Option<i64>,
    /// Most outstanding import tokens (GetParametersForImport) per key; a call beyond it
    /// withdraws the key's oldest token [default: 100].
    #[arg(long, env = "KMS_MAX_IMPORT_TOKENS_PER_KEY")]
    pub max_import_tokens_per_key: Option<i64>,
    /// Directory of the audit trail; put it on its own filesystem to keep a full data disk
    /// from stopping the audit (or the other way round) [default: <data dir>/audit].
    #[arg(long, env = "KMS_AUDIT_DIR")]
    pub audit_dir: Option<PathBuf>,
    /// Rotate the audit log (audit.log) when it reaches this many bytes; 0 = never
    /// [default: 67108864].
    #[arg(long, env = "KMS_AUDIT_MAX_BYTES")]
    pub audit_max_bytes: Option<u64>,
    /// Keep at most this many rotated audit files, removing the oldest; 0 = no limit
    /// [default: 64].
    #[arg(long, env = "KMS_AUDIT_RETAIN_FILES")]
    pub audit_retain_files: Option<u64>,
    /// Keep at most this many bytes of audit files (current file included), removing the
    /// oldest rotated files; 0 = no limit [default: 4294967296].
    #[arg(long, env = "KMS_AUDIT_RETAIN_BYTES")]
    pub audit_retain_bytes: Option<u64>,
    /// Bytes kept allocated past the end of the audit log, so that requests already admitted
    /// still get their line when the disk fills; when it cannot be renewed, state changes are
    /// refused (503 ServiceUnavailableTemporary) [default: 4194304].
    #[arg(long, env = "KMS_AUDIT_RESERVE_BYTES")]
    pub audit_reserve_bytes: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "KMS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "KMS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate for localhost, created once and kept in
    /// <data dir>/tls/ (trust <data dir>/tls/cert.pem in clients).
    #[arg(long, env = "KMS_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Requests per second per account for Encrypt, Decrypt, GenerateDataKey(WithoutPlaintext)
    /// and ReEncrypt; 0 = unlimited [default: 0].
    #[arg(long, env = "KMS_THROTTLE_CRYPTO")]
    pub throttle_crypto: Option<u32>,
    /// Requests per second per account for GetParametersForImport and ImportKeyMaterial; 0 =
    /// unlimited [default: 0].
    #[arg(long, env = "KMS_THROTTLE_IMPORT")]
    pub throttle_import: Option<u32>,
    /// Requests per second per account for every other action; 0 = unlimited [default: 0].
    #[arg(long, env = "KMS_THROTTLE_MANAGEMENT")]
    pub throttle_management: Option<u32>,
    /// Address of the web console (`/console`): host:port, or `off` to disable it
    /// [default: the API address with the port plus one, e.g. 127.0.0.1:8081; if that port is
    /// taken the server starts without the console and says so].
    #[arg(long, env = "KMS_CONSOLE_LISTEN")]
    pub console_listen: Option<String>,
    /// Web console sessions end after this many seconds without a request [default: 900].
    #[arg(long, env = "KMS_CONSOLE_IDLE_TIMEOUT")]
    pub console_idle_timeout: Option<i64>,
    /// Most client connections served at once (HTTP and HTTPS); further connections wait
    /// in the listen backlog until one closes [default: 1024].
    #[arg(long, env = "KMS_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client IP address (per listener); a further
    /// one is closed as soon as it is accepted [default: 128].
    #[arg(long, env = "KMS_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Seconds allowed from accepting a connection (TLS handshake included) to its first
    /// complete request head; then it is closed [default: 10].
    #[arg(long, env = "KMS_FIRST_REQUEST_TIMEOUT")]
    pub first_request_timeout: Option<u64>,
    /// Largest request head (request line + headers) in bytes; larger is answered 431
    /// [default: 16384].
    #[arg(long, env = "KMS_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Most headers in one request; more is answered 431 [default: 64].
    #[arg(long, env = "KMS_MAX_HEADERS")]
    pub max_headers: Option<usize>,
    /// Seconds allowed to receive a request head, counted from when the server waits for it
    /// (also closes idle keep-alive connections) [default: 30].
    #[arg(long, env = "KMS_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Seconds allowed to receive a request body once its head has arrived; then 400
    /// [default: 30].
    #[arg(long, env = "KMS_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<u64>,
    /// FOR TESTS ONLY: serve POST /__test/clock?advance=SECONDS (no authentication), which
    /// moves the key-lifecycle clock forward.
    #[arg(long, env = "KMS_ENABLE_TEST_CLOCK")]
    pub enable_test_clock: bool,
    /// Answer GET /metrics (Prometheus text format) from any peer, not only from 127.0.0.1
    /// and ::1. Metrics name actions and counts, never keys or secrets, but a KMS should not
    /// publish its load by default.
    #[arg(long, env = "KMS_METRICS_ALLOW_REMOTE")]
    pub metrics_allow_remote: bool,
    /// The HSM (PKCS#11) for ProtectionLevel=HSM keys and an HSM-held root key (issue 20).
    #[command(flatten)]
    pub hsm: crate::hsm::HsmArgs,
    /// Log lines as `text` (for people) or `json` (one object per line, for log shippers).
    /// Read before the configuration file, so it is a flag or KMS_LOG_FORMAT only.
    #[arg(long, env = "KMS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage access keys.
    #[command(name = "access-key", subcommand)]
    AccessKey(AccessKeyCommand),
    /// Check or search the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Copy a deployment's database into another (e.g. SQLite into PostgreSQL), then verify
    /// the copy row by row. The target must hold no keys yet; stop the source server first.
    MigrateStore {
        /// The source: sqlite:<file> (e.g. sqlite:./kms-data/kms.db) or postgres://…
        #[arg(long)]
        from: String,
        /// The target: postgres://… or sqlite:<file>.
        #[arg(long)]
        to: String,
    },
    /// Manage web console users (they sign in to /console with a name and password).
    #[command(name = "console-user", subcommand)]
    ConsoleUser(ConsoleUserCommand),
    /// List the RAM identities of an account (users with their access keys and groups,
    /// groups, roles, custom policies, attachments): for a locked-out operator, with
    /// `access-key create` (a root access key) as the way back in.
    Identities {
        #[command(flatten)]
        dir: DataDirArg,
        /// Account [default: the data dir's first account].
        #[arg(long)]
        account_id: Option<String>,
    },
    /// Print the action tables (every product's actions, parameters and RAM checks) as JSON.
    #[command(name = "action-table", hide = true)]
    ActionTable,
    /// Rotate the root key: re-seal every secret under a new one, hand the audit chain over,
    /// retire the old key. Crash-safe: run it again to finish an interrupted rotation. Stop
    /// the server first (nodes on a shared PostgreSQL database refuse requests until they
    /// are restarted with the new key; see the README's runbook).
    RotateRootKey {
        #[command(flatten)]
        dir: DataDirArg,
        /// The server's audit directory, if not <data dir>/audit (as `kms server --audit-dir`).
        #[arg(long, env = "KMS_AUDIT_DIR")]
        audit_dir: Option<PathBuf>,
        /// Values re-sealed per transaction.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Seconds running nodes get to notice the rotation and stop serving before the
        /// first value changes (they check every second).
        #[arg(long, default_value_t = 3.0)]
        grace_seconds: f64,
    },
    /// Back the database up while the server runs: one consistent snapshot in one file with
    /// a manifest and a SHA-256 checksum. It holds sealed data only: back the root key up
    /// separately.
    Backup {
        #[command(flatten)]
        dir: DataDirArg,
        /// The backup file to create (never overwritten).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into a new or empty data dir (SQLite kms.db there), after checking it
    /// from end to end. Then put the root key it names there and start the server.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The data dir to create; it must be missing or empty.
        #[arg(long)]
        data_dir: PathBuf,
        /// Copy the restored rows on into this empty PostgreSQL database (postgres://…).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Move the root key into an HSM's keeping, or back (issue 20).
    #[command(name = "hsm-root", subcommand)]
    HsmRoot(crate::hsm::root::HsmRootCommand),
    /// Create many ordinary keys quickly (for benchmarks), through the real storage code.
    SeedKeys {
        #[command(flatten)]
        dir: DataDirArg,
        /// How many keys.
        #[arg(long)]
        count: usize,
        /// Account to create them in [default: the data dir's first account].
        #[arg(long)]
        account_id: Option<String>,
        /// Region [default: cn-hangzhou].
        #[arg(long, default_value = "cn-hangzhou")]
        region: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConsoleUserCommand {
    /// Create a console user. The password (at least 10 characters) is read from
    /// KMS_CONSOLE_PASSWORD, else from the first line of standard input.
    Create {
        #[command(flatten)]
        dir: DataDirArg,
        /// User name (letters, digits, `.`, `_`, `-`, `@`; up to 64).
        name: String,
        /// Account the user acts in [default: the data dir's first account].
        #[arg(long)]
        account_id: Option<String>,
    },
    /// List console users.
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Delete a console user (their sessions stop working at their next request, on every
    /// node; so do they if a user of that name is created again).
    Delete {
        #[command(flatten)]
        dir: DataDirArg,
        name: String,
    },
    /// Change a console user's password, read like `create`'s. Every session the user has
    /// stops working at its next request, on every node.
    SetPassword {
        #[command(flatten)]
        dir: DataDirArg,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the keyed hash chain of every audit line; fails at the first broken link. Exit
    /// status: 0 intact, 3 intact but recording gaps (lines that could not be written), else
    /// broken.
    Verify {
        #[command(flatten)]
        dir: DataDirArg,
        /// The server's audit directory, if not <data dir>/audit (as `kms server --audit-dir`).
        #[arg(long, env = "KMS_AUDIT_DIR")]
        audit_dir: Option<PathBuf>,
    },
    /// Print the audit lines that match (all filters optional).
    Query {
        #[command(flatten)]
        dir: DataDirArg,
        /// The server's audit directory, if not <data dir>/audit (as `kms server --audit-dir`).
        #[arg(long, env = "KMS_AUDIT_DIR")]
        audit_dir: Option<PathBuf>,
        #[arg(long)]
        key_id: Option<String>,
        #[arg(long)]
        action: Option<String>,
        /// Only lines at or after this time (2026-01-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DataDirArg {
    /// The server's data dir.
    #[arg(long, env = "KMS_DATA_DIR", default_value = "./kms-data")]
    pub data_dir: PathBuf,
    /// The server's database, if not SQLite in the data dir (as `kms server --database-url`).
    #[arg(long, env = "KMS_DATABASE_URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AccessKeyCommand {
    /// Create an access key; prints {"AccessKeyId","AccessKeySecret","AccountId"} once.
    Create {
        #[command(flatten)]
        dir: DataDirArg,
        /// Account to create it in [default: the data dir's first account].
        #[arg(long)]
        account_id: Option<String>,
    },
    /// List access keys (never their secrets).
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Disable an access key (requests signed with it are refused).
    Disable {
        #[command(flatten)]
        dir: DataDirArg,
        access_key_id: String,
    },
    /// Enable a disabled access key.
    Enable {
        #[command(flatten)]
        dir: DataDirArg,
        access_key_id: String,
    },
    /// Delete an access key.
    Delete {
        #[command(flatten)]
        dir: DataDirArg,
        access_key_id: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    region: Option<OneOrMany>,
    account_id: Option<String>,
    wrapping_key_pool: Option<usize>,
    database_url: Option<String>,
    database_pool_size: Option<usize>,
    max_keys: Option<i64>,
    max_aliases_per_key: Option<i64>,
    max_versions_per_key: Option<i64>,
    max_import_tokens_per_key: Option<i64>,
    throttle_crypto: Option<u32>,
    throttle_import: Option<u32>,
    throttle_management: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    audit_dir: Option<PathBuf>,
    audit_max_bytes: Option<u64>,
    audit_retain_files: Option<u64>,
    audit_retain_bytes: Option<u64>,
    audit_reserve_bytes: Option<u64>,
    console_listen: Option<String>,
    console_idle_timeout: Option<i64>,
    metrics_allow_remote: Option<bool>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    first_request_timeout: Option<u64>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    header_read_timeout: Option<u64>,
    body_read_timeout: Option<u64>,
    // The HSM (issue 20).
    hsm_module: Option<PathBuf>,
    hsm_token_label: Option<String>,
    hsm_pin_file: Option<PathBuf>,
    hsm_timeout: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The server's settings after merging all sources.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub regions: Vec<String>,
    pub account_id: Option<String>,
    pub wrapping_key_pool: usize,
    pub database_url: Option<String>,
    pub database_pool_size: usize,
    pub enable_test_clock: bool,
    /// Serve /metrics to every peer, not only loopback ones.
    pub metrics_allow_remote: bool,
    pub max_keys: i64,
    pub max_aliases_per_key: i64,
    pub max_versions_per_key: i64,
    /// Outstanding import tokens per key (the oldest is withdrawn beyond it).
    pub max_import_tokens_per_key: i64,
    pub throttle: crate::protocol::throttle::Limits,
    pub tls: TlsSetting,
    /// The audit trail's directory [default: <data dir>/audit].
    pub audit_dir: Option<PathBuf>,
    pub audit_max_bytes: u64,
    /// Rotated audit files kept (0: no limit).
    pub audit_retain_files: u64,
    /// Bytes of audit files kept (0: no limit).
    pub audit_retain_bytes: u64,
    /// Bytes kept allocated past the end of the audit log.
    pub audit_reserve_bytes: u64,
    pub console: ConsoleSetting,
    /// Seconds without a request before a console session ends.
    pub console_idle_timeout: i64,
    pub http: crate::server::HttpLimits,
    /// The HSM (PKCS#11), if one is configured.
    pub hsm: Option<crate::hsm::HsmSettings>,
}

/// Where the web console listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleSetting {
    Off,
    /// Set explicitly: failing to listen there stops the server.
    Listen(String),
    /// The default (API port + 1): if the port is taken the server runs without a console.
    Default(String),
}

/// The default console address: the API address with the port plus one (port 0 stays 0).
pub fn default_console_listen(listen: &str) -> Option<String> {
    let (host, port) = listen.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let next = if port == 0 { 0 } else { port.checked_add(1)? };
    Some(format!("{host}:{next}"))
}

/// How the server speaks TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetting {
    /// Plain HTTP.
    Off,
    /// PEM certificate chain and key.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate kept in the data dir.
    SelfSigned,
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

fn at_least<T: PartialOrd + std::fmt::Display>(name: &str, v: T, min: T) -> Result<T, String> {
    if v < min {
        return Err(format!("{name} must be at least {min}"));
    }
    Ok(v)
}

fn positive(name: &str, v: i64) -> Result<i64, String> {
    if v < 1 {
        return Err(format!("{name} must be at least 1"));
    }
    Ok(v)
}

impl ServerArgs {
    pub fn resolve(self) -> Result<ServerConfig, String> {
        let file = match &self.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let regions = if !self.region.is_empty() {
            self.region
        } else {
            match file.region {
                Some(OneOrMany::One(r)) => vec![r],
                Some(OneOrMany::Many(v)) => v,
                None => vec!["cn-hangzhou".to_string()],
            }
        };
        let regions: Vec<String> = regions
            .into_iter()
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect();
        if regions.is_empty() {
            return Err("at least one region is needed".into());
        }
        for r in &regions {
            if !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(format!("region {r:?} is not a region id like cn-hangzhou"));
            }
        }
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
            self.tls_self_signed || file.tls_self_signed.unwrap_or(false),
        ) {
            (Some(cert), Some(key), false) => TlsSetting::Files { cert, key },
            (None, None, true) => TlsSetting::SelfSigned,
            (None, None, false) => TlsSetting::Off,
            _ => return Err("use tls_cert with tls_key, or tls_self_signed alone".into()),
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let console = match self.console_listen.or(file.console_listen) {
            Some(v) if v.eq_ignore_ascii_case("off") || v.is_empty() => ConsoleSetting::Off,
            Some(v) => ConsoleSetting::Listen(v),
            None => match default_console_listen(&listen) {
                Some(v) => ConsoleSetting::Default(v),
                None => ConsoleSetting::Off,
            },
        };
        let console_idle_timeout = self
            .console_idle_timeout
            .or(file.console_idle_timeout)
            .unwrap_or(900);
        if console_idle_timeout < 1 {
            return Err("console_idle_timeout must be at least 1 second".into());
        }
        let defaults = crate::server::HttpLimits::default();
        let http = crate::server::HttpLimits {
            max_connections: at_least(
                "max_connections",
                self.max_connections
                    .or(file.max_connections)
                    .unwrap_or(defaults.max_connections),
                1,
            )?,
            max_connections_per_address: at_least(
                "max_connections_per_address",
                self.max_connections_per_address
                    .or(file.max_connections_per_address)
                    .unwrap_or(defaults.max_connections_per_address),
                1,
            )?,
            first_request_timeout: std::time::Duration::from_secs(at_least(
                "first_request_timeout",
                self.first_request_timeout
                    .or(file.first_request_timeout)
                    .unwrap_or(defaults.first_request_timeout.as_secs()),
                1,
            )?),
            max_header_bytes: at_least(
                "max_header_bytes",
                self.max_header_bytes
                    .or(file.max_header_bytes)
                    .unwrap_or(defaults.max_header_bytes),
                1024,
            )?,
            max_headers: at_least(
                "max_headers",
                self.max_headers
                    .or(file.max_headers)
                    .unwrap_or(defaults.max_headers),
                8,
            )?,
            header_read_timeout: std::time::Duration::from_secs(at_least(
                "header_read_timeout",
                self.header_read_timeout
                    .or(file.header_read_timeout)
                    .unwrap_or(defaults.header_read_timeout.as_secs()),
                1,
            )?),
            body_read_timeout: std::time::Duration::from_secs(at_least(
                "body_read_timeout",
                self.body_read_timeout
                    .or(file.body_read_timeout)
                    .unwrap_or(defaults.body_read_timeout.as_secs()),
                1,
            )?),
        };
        let hsm = self.hsm.resolve(
            file.hsm_module,
            file.hsm_token_label,
            file.hsm_pin_file,
            file.hsm_timeout,
        )?;
        Ok(ServerConfig {
            hsm,
            http,
            console,
            console_idle_timeout,
            tls,
            audit_dir: self.audit_dir.or(file.audit_dir),
            audit_max_bytes: self
                .audit_max_bytes
                .or(file.audit_max_bytes)
                .unwrap_or(crate::audit::DEFAULT_MAX_BYTES),
            audit_retain_files: self
                .audit_retain_files
                .or(file.audit_retain_files)
                .unwrap_or(crate::audit::DEFAULT_RETAIN_FILES),
            audit_retain_bytes: self
                .audit_retain_bytes
                .or(file.audit_retain_bytes)
                .unwrap_or(crate::audit::DEFAULT_RETAIN_BYTES),
            audit_reserve_bytes: self
                .audit_reserve_bytes
                .or(file.audit_reserve_bytes)
                .unwrap_or(crate::audit::DEFAULT_RESERVE_BYTES),
            listen,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./kms-data")),
            regions,
            account_id: self.account_id.or(file.account_id),
            wrapping_key_pool: self
                .wrapping_key_pool
                .or(file.wrapping_key_pool)
                .unwrap_or(8),
            database_url: self.database_url.or(file.database_url),
            database_pool_size: self
                .database_pool_size
                .or(file.database_pool_size)
                .unwrap_or(crate::server::DEFAULT_DATABASE_POOL)
                .max(2),
            enable_test_clock: self.enable_test_clock,
            metrics_allow_remote: self.metrics_allow_remote
                || file.metrics_allow_remote.unwrap_or(false),
            max_keys: positive("max_keys", self.max_keys.or(file.max_keys).unwrap_or(1000))?,
            max_aliases_per_key: positive(
                "max_aliases_per_key",
                self.max_aliases_per_key
                    .or(file.max_aliases_per_key)
                    .unwrap_or(50),
            )?,
            throttle: crate::protocol::throttle::Limits {
                cryptographic: self.throttle_crypto.or(file.throttle_crypto).unwrap_or(0),
                import: self.throttle_import.or(file.throttle_import).unwrap_or(0),
                management: self
                    .throttle_management
                    .or(file.throttle_management)
                    .unwrap_or(0),
            },
            max_versions_per_key: positive(
                "max_versions_per_key",
                self.max_versions_per_key
                    .or(file.max_versions_per_key)
                    .unwrap_or(100),
            )?,
            max_import_tokens_per_key: positive(
                "max_import_tokens_per_key",
                self.max_import_tokens_per_key
                    .or(file.max_import_tokens_per_key)
                    .unwrap_or(crate::service::DEFAULT_MAX_IMPORT_TOKENS_PER_KEY),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServerArgs {
        ServerArgs {
            config: None,
            listen: None,
            data_dir: None,
            region: vec![],
            account_id: None,
            wrapping_key_pool: None,
            database_url: None,
            database_pool_size: None,
            enable_test_clock: false,
            metrics_allow_remote: false,
            log_format: LogFormat::Text,
            max_keys: None,
            max_aliases_per_key: None,
            max_versions_per_key: None,
            max_import_tokens_per_key: None,
            throttle_crypto: None,
            throttle_import: None,
            throttle_management: None,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            audit_dir: None,
            audit_max_bytes: None,
            audit_retain_files: None,
            audit_retain_bytes: None,
            audit_reserve_bytes: None,
            console_listen: None,
            console_idle_timeout: None,
            max_connections: None,
            max_connections_per_address: None,
            first_request_timeout: None,
            max_header_bytes: None,
            max_headers: None,
            header_read_timeout: None,
            body_read_timeout: None,
            hsm: Default::default(),
        }
    }

    #[test]
    fn defaults() {
        let c = args().resolve().unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./kms-data"));
        assert_eq!(c.regions, vec!["cn-hangzhou"]);
        assert_eq!(c.wrapping_key_pool, 8);
        assert_eq!(c.max_import_tokens_per_key, 100);
        assert_eq!(c.database_url, None);
        assert_eq!(c.database_pool_size, 16);
        assert_eq!(c.console, ConsoleSetting::Default("127.0.0.1:8081".into()));
        assert_eq!(c.console_idle_timeout, 900);
        assert_eq!(c.http, crate::server::HttpLimits::default());
    }

    #[test]
    fn audit_settings_from_file_then_flags() {
        let c = args().resolve().unwrap();
        assert_eq!(c.audit_dir, None);
        assert_eq!(
            crate::audit::Settings::of(&c),
            crate::audit::Settings::new("./kms-data/audit")
        );
        let dir = std::env::temp_dir().join(format!("kms-cfg-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("kms.toml");
        std::fs::write(
            &f,
            "audit_dir = \"/var/log/kms\"\naudit_max_bytes = 1000\naudit_retain_files = 2\naudit_retain_bytes = 5000\naudit_reserve_bytes = 0\n",
        )
        .unwrap();
        let c = ServerArgs {
            config: Some(f),
            audit_retain_files: Some(7),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            crate::audit::Settings::of(&c),
            crate::audit::Settings {
                dir: "/var/log/kms".into(),
                max_bytes: 1000,
                retain_files: 7,
                retain_bytes: 5000,
                reserve_bytes: 0,
            }
        );
    }

    #[test]
    fn database_from_file_then_flag() {
        let dir = std::env::temp_dir().join(format!("kms-cfg-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("kms.toml");
        std::fs::write(
            &f,
            "database_url = \"postgres://kms@db/kms\"\ndatabase_pool_size = 4\n",
        )
        .unwrap();
        let c = ServerArgs {
            config: Some(f.clone()),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://kms@db/kms"));
        assert_eq!(c.database_pool_size, 4);
        let c = ServerArgs {
            config: Some(f),
            database_url: Some("postgres://other/kms".into()),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://other/kms"));
    }

    #[test]
    fn console_settings() {
        let c = ServerArgs {
            listen: Some("0.0.0.0:0".into()),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.console, ConsoleSetting::Default("0.0.0.0:0".into()));
        let c = ServerArgs {
            console_listen: Some("off".into()),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.console, ConsoleSetting::Off);
        let c = ServerArgs {
            console_listen: Some("127.0.0.1:9999".into()),
            console_idle_timeout: Some(5),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.console, ConsoleSetting::Listen("127.0.0.1:9999".into()));
        assert_eq!(c.console_idle_timeout, 5);
        assert!(ServerArgs {
            console_idle_timeout: Some(0),
            ..args()
        }
        .resolve()
        .is_err());
        assert_eq!(default_console_listen("[::1]:65535"), None);
        assert_eq!(
            default_console_listen("[::1]:8080").as_deref(),
            Some("[::1]:8081")
        );
    }

    #[test]
    fn http_limits_from_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("kms-cfg-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("kms.toml");
        std::fs::write(
            &f,
            "max_connections = 7\nmax_connections_per_address = 3\nfirst_request_timeout = 2\nmax_header_bytes = 4096\nmax_headers = 20\nheader_read_timeout = 5\nbody_read_timeout = 6\n",
        )
        .unwrap();
        let c = ServerArgs {
            config: Some(f.clone()),
            max_headers: Some(30),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.http.max_connections, 7);
        assert_eq!(c.http.max_connections_per_address, 3);
        assert_eq!(
            c.http.first_request_timeout,
            std::time::Duration::from_secs(2)
        );
        assert_eq!(c.http.max_header_bytes, 4096);
        assert_eq!(c.http.max_headers, 30);
        assert_eq!(
            c.http.header_read_timeout,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(c.http.body_read_timeout, std::time::Duration::from_secs(6));
        // Flags over the file.
        let c = ServerArgs {
            config: Some(f.clone()),
            max_connections_per_address: Some(9),
            first_request_timeout: Some(4),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.http.max_connections_per_address, 9);
        assert_eq!(
            c.http.first_request_timeout,
            std::time::Duration::from_secs(4)
        );
        for bad in [
            ServerArgs {
                max_connections: Some(0),
                ..args()
            },
            ServerArgs {
                max_connections_per_address: Some(0),
                ..args()
            },
            ServerArgs {
                first_request_timeout: Some(0),
                ..args()
            },
            ServerArgs {
                max_header_bytes: Some(100),
                ..args()
            },
            ServerArgs {
                max_headers: Some(1),
                ..args()
            },
            ServerArgs {
                header_read_timeout: Some(0),
                ..args()
            },
            ServerArgs {
                body_read_timeout: Some(0),
                ..args()
            },
        ] {
            assert!(bad.resolve().is_err());
        }
    }

    #[test]
    fn file_then_flags() {
        let dir = std::env::temp_dir().join(format!("kms-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("kms.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:9000\"\nregion = [\"cn-shanghai\", \"cn-beijing\"]\naccount_id = \"42\"\n").unwrap();
        let c = ServerArgs {
            config: Some(f.clone()),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.regions, vec!["cn-shanghai", "cn-beijing"]);
        assert_eq!(c.account_id.as_deref(), Some("42"));
        let c = ServerArgs {
            config: Some(f.clone()),
            listen: Some("127.0.0.1:1".into()),
            region: vec!["eu-central-1".into()],
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.regions, vec!["eu-central-1"]);
        assert_eq!(c.console, ConsoleSetting::Default("127.0.0.1:2".into()));
        std::fs::write(&f, "console_listen = \"off\"\nconsole_idle_timeout = 60\n").unwrap();
        let c = ServerArgs {
            config: Some(f.clone()),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.console, ConsoleSetting::Off);
        assert_eq!(c.console_idle_timeout, 60);
        assert!(
            !c.metrics_allow_remote,
            "metrics are loopback-only by default"
        );
        let g = f.with_extension("metrics.toml");
        std::fs::write(&g, "metrics_allow_remote = true\n").unwrap();
        let c = ServerArgs {
            config: Some(g),
            ..args()
        }
        .resolve()
        .unwrap();
        assert!(c.metrics_allow_remote);
        let c = ServerArgs {
            config: Some(f.clone()),
            console_listen: Some("127.0.0.1:7000".into()),
            console_idle_timeout: Some(30),
            ..args()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.console, ConsoleSetting::Listen("127.0.0.1:7000".into()));
        assert_eq!(c.console_idle_timeout, 30);
        std::fs::write(&f, "nonsense = 1\n").unwrap();
        assert!(ServerArgs {
            config: Some(f),
            ..args()
        }
        .resolve()
        .is_err());
    }
}
