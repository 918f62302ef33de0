//! The RAM policy language (reference alibaba-ram-sts.md §4–§6) as a pure module: documents
//! in, decision out, no I/O. Enforced on the wire by [`crate::api::authz`].
//!
//! - [`document`]: parse, validate and compile a policy document once ([`Policy::parse`]),
//!   per [`PolicyKind`] (identity, STS session, role trust); refusals are [`PolicyError`]s
//!   carrying the RAM/STS error code and a reason naming the statement and field.
//! - [`pattern`]: `*`/`?` globs; actions case-insensitive, resources case-sensitive.
//! - [`condition`]: the operators of §4.3 with pre-parsed values, and the request
//!   [`Context`] of §4.4 (`acs:SourceIp`, `acs:SecureTransport`, `acs:CurrentTime`,
//!   `kms:tag/<key>`, …).
//! - [`eval`]: §4.5: explicit Deny wins, then Allow, else implicit deny; a session policy is
//!   evaluated first and can only narrow ([`PolicySet`]); `AssumeRole` needs the caller's
//!   policies and the trust policy ([`eval::assume_role`]).
//! - [`system`]: the system policies of §6 as JSON text.
//! - [`kms`]: resource ARNs of §5 and the checks ([`Check`]) of a KMS [`Action`].
//!
//! [`Action`]: crate::action::kms::Action

pub mod condition;
pub mod document;
pub mod eval;
pub mod kms;
pub mod pattern;
pub mod system;

#[cfg(test)]
mod tests;

pub use condition::{Context, ContextValue, Operator};
pub use document::{Effect, Malformed, Policy, PolicyError, PolicyKind};
pub use eval::{Caller, Check, Decision, PolicySet};
