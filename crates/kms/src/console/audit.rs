//! Console events in the audit trail: one record per sign-in, sign-out, page view and
//! change, with the principal (`console-user:<name>` or `console:<access key id>`), the
//! browser's address and the API's result code. Never secrets, material or tokens.

use std::net::SocketAddr;

use super::ConsoleState;
use crate::action::kms::Action;
use crate::audit::AuditRecord;
use crate::error::KmsError;
use crate::protocol::new_request_id;
use crate::timefmt::format_unix;

/// Whether a console audit record is written durably (synced before the answer): a
/// successful call of an API action follows the API's own rule
/// ([`Action::changes_state`], the one table); the console's own events (ConsoleSignIn,
/// ConsoleSignOut) start or end a session, so they are durable too. Refusals are buffered.
pub fn console_audit_is_durable(action: &str, result: &str) -> bool {
    result == "OK" && Action::from_name(action).is_none_or(Action::changes_state)
}

/// One console event, before its outcome is known.
pub struct AuditEvent {
    pub peer: SocketAddr,
    pub request_id: String,
    pub account: String,
    pub principal: String,
    pub action: String,
    pub key_id: String,
}

impl AuditEvent {
    /// An event with a new request id, by no one yet (sign-in).
    pub fn new(peer: SocketAddr, action: &str) -> Self {
        Self {
            peer,
            request_id: new_request_id(),
            account: String::new(),
            principal: String::new(),
            action: action.to_string(),
            key_id: String::new(),
        }
    }

    pub fn by(mut self, account: &str, principal: &str) -> Self {
        self.account = account.to_string();
        self.principal = principal.to_string();
        self
    }

    /// The key acted on (at most 256 characters of what the browser sent).
    pub fn key(mut self, key_id: &str) -> Self {
        self.key_id = key_id.chars().take(256).collect();
        self
    }
}

impl ConsoleState {
    /// Records `event` with its result: `OK` with 200, or an error code and status.
    pub(crate) async fn audit(&self, event: &AuditEvent, result: &str, status: u16) {
        let Some(log) = &self.audit else {
            return;
        };
        let durable = console_audit_is_durable(&event.action, result);
        log.record(
            AuditRecord {
                time: format_unix(crate::clock::system_now()),
                request_id: event.request_id.clone(),
                account_id: event.account.clone(),
                access_key_id: event.principal.clone(),
                source: event.peer.to_string(),
                action: event.action.clone(),
                key_id: event.key_id.clone(),
                key_version_id: String::new(),
                result: result.to_string(),
                status,
                // A RAM user signed in with its login profile is audited by its ARN.
                principal: match event.principal.strip_prefix("ram-user:") {
                    Some(name) => format!("acs:ram::{}:user/{name}", event.account),
                    None => format!("console-user:{}", event.principal),
                },
            },
            durable,
        )
        .await;
    }

    pub(crate) async fn audit_ok(&self, event: &AuditEvent) {
        self.audit(event, "OK", 200).await;
    }

    pub(crate) async fn audit_error(&self, event: &AuditEvent, e: &KmsError) {
        self.audit(event, e.code(), e.status()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successful_changes_are_durable_reads_and_refusals_are_not() {
        assert!(console_audit_is_durable("CreateKey", "OK"));
        assert!(console_audit_is_durable("ConsoleSignIn", "OK"));
        assert!(!console_audit_is_durable(
            "CreateKey",
            "Forbidden.KeyNotFound"
        ));
        assert!(!console_audit_is_durable("DescribeKey", "OK"));
        assert!(!console_audit_is_durable("ListKeys", "OK"));
        assert!(!console_audit_is_durable("Encrypt", "OK"));
    }

    /// The console and the API agree on which audit lines are durable: both read
    /// [`Action::changes_state`] (the API through `ApiAction::changes_state`).
    #[test]
    fn audit_durability_agrees_with_the_api() {
        use crate::action::ApiAction;
        for a in Action::ALL {
            assert_eq!(
                console_audit_is_durable(a.name(), "OK"),
                ApiAction::Kms(*a).changes_state(),
                "{a}"
            );
        }
    }
}
