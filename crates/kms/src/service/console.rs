//! Web console principals and sessions: who may be signed in, and for how long.
//!
//! A session is stored as the SHA-256 of its browser token (the console's HTTP layer hashes
//! the cookie; this module never sees a token) with its account, principal, creation and
//! last-request times, on the key-lifecycle clock. Every node sharing the database sees the
//! same sessions, so sign-out and expiry apply everywhere at once.
//!
//! A session is live while all of these hold:
//! - it was used within the idle timeout ([`SessionPolicy::idle_timeout`]),
//! - it is younger than [`SessionPolicy::MAX_LIFETIME`] however active it is,
//! - its principal still exists in the session's account and (for an access key) is enabled.
//!
//! Otherwise it is deleted at the first request that finds it so.

use std::fmt;

use super::Kms;
use crate::error::KmsError;
use crate::store::{ConsoleSessionRecord, ConsoleUserRecord};

/// Who signed in to the console. Stored (and audited) as `console-user:<name>` or
/// `console:<access key id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsolePrincipal {
    /// A console user, by name.
    User(String),
    /// An access key, by id.
    AccessKey(String),
}

impl ConsolePrincipal {
    const USER_PREFIX: &'static str = "console-user:";
    const ACCESS_KEY_PREFIX: &'static str = "console:";

    pub fn parse(s: &str) -> Option<ConsolePrincipal> {
        if let Some(name) = s.strip_prefix(Self::USER_PREFIX) {
            Some(ConsolePrincipal::User(name.to_string()))
        } else {
            s.strip_prefix(Self::ACCESS_KEY_PREFIX)
                .map(|id| ConsolePrincipal::AccessKey(id.to_string()))
        }
    }
}

impl fmt::Display for ConsolePrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsolePrincipal::User(name) => write!(f, "{}{name}", Self::USER_PREFIX),
            ConsolePrincipal::AccessKey(id) => write!(f, "{}{id}", Self::ACCESS_KEY_PREFIX),
        }
    }
}

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Seconds without a request before a session ends.
    pub idle_timeout: i64,
}

impl SessionPolicy {
    /// A session ends 12 hours after sign-in however active it is.
    pub const MAX_LIFETIME: i64 = 12 * 3600;
}

/// What a session id stands for now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionLookup {
    /// Live; its idle timer has been reset.
    Live(ConsoleSessionRecord),
    /// It was live but timed out (idle or too old); now deleted.
    Expired,
    /// No such session, or its principal is gone or disabled (then deleted).
    Unknown,
}

/// The console-sessions service: console users and sessions for the console's HTTP layer,
/// which holds no store of its own.
pub struct ConsoleSessions<'a> {
    kms: &'a Kms,
    policy: SessionPolicy,
}

impl<'a> ConsoleSessions<'a> {
    pub fn new(kms: &'a Kms, policy: SessionPolicy) -> Self {
        Self { kms, policy }
    }

    /// Whether any console user exists (the sign-in page then offers that kind first;
    /// while there is none, only access keys can sign in).
    pub async fn has_users(&self) -> Result<bool, KmsError> {
        Ok(!self.kms.store.list_console_users().await?.is_empty())
    }

    /// A console user by name (`None` if there is none).
    pub async fn user(&self, name: &str) -> Result<Option<ConsoleUserRecord>, KmsError> {
        self.kms.store.get_console_user(name).await
    }

    /// The session stored under `id_hash`, if live (see the module comment); a live
    /// session's idle timer is reset, a dead one is deleted.
    pub async fn check(&self, id_hash: &str) -> Result<SessionLookup, KmsError> {
        let store = &self.kms.store;
        let Some(rec) = store.get_console_session(id_hash).await? else {
            return Ok(SessionLookup::Unknown);
        };
        let now = self.kms.now();
        if now - rec.last_seen >= self.policy.idle_timeout
            || now - rec.created >= SessionPolicy::MAX_LIFETIME
        {
            store.delete_console_session(id_hash).await?;
            return Ok(SessionLookup::Expired);
        }
        if !self.principal_is_valid(&rec).await? {
            store.delete_console_session(id_hash).await?;
            return Ok(SessionLookup::Unknown);
        }
        store.touch_console_session(id_hash, now).await?;
        Ok(SessionLookup::Live(rec))
    }

    /// Whether the session's principal still exists in its account (and, for an access
    /// key, is enabled).
    async fn principal_is_valid(&self, rec: &ConsoleSessionRecord) -> Result<bool, KmsError> {
        Ok(match ConsolePrincipal::parse(&rec.principal) {
            Some(ConsolePrincipal::User(name)) => self
                .user(&name)
                .await?
                .is_some_and(|u| u.account_id == rec.account_id),
            Some(ConsolePrincipal::AccessKey(id)) => self
                .kms
                .access_key_secret(&id)
                .await
                .is_ok_and(|(account, _)| account == rec.account_id),
            None => false,
        })
    }

    /// Starts a session (stored under `id_hash`) for a principal whose credentials have
    /// been verified. `replaces` (the browser's previous session, if any) ends; sessions
    /// idle for longer than the timeout are purged on the way.
    pub async fn start(
        &self,
        id_hash: String,
        account_id: &str,
        principal: &ConsolePrincipal,
        replaces: Option<&str>,
    ) -> Result<ConsoleSessionRecord, KmsError> {
        let store = &self.kms.store;
        let now = self.kms.now();
        if let Some(old) = replaces {
            store.delete_console_session(old).await?;
        }
        if let Err(e) = store
            .purge_console_sessions(now - self.policy.idle_timeout)
            .await
        {
            tracing::warn!(error = %e, "console: purging idle sessions failed");
        }
        let rec = ConsoleSessionRecord {
            id_hash,
            account_id: account_id.to_string(),
            principal: principal.to_string(),
            created: now,
            last_seen: now,
        };
        store.insert_console_session(rec.clone()).await?;
        Ok(rec)
    }

    /// Ends a session (sign-out).
    pub async fn end(&self, id_hash: &str) -> Result<(), KmsError> {
        self.kms.store.delete_console_session(id_hash).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{kms, T0};

    const ACCOUNT: &str = "1234567890123456";

    fn policy() -> SessionPolicy {
        SessionPolicy { idle_timeout: 600 }
    }

    async fn add_user(kms: &Kms, name: &str, account: &str) {
        kms.store
            .insert_console_user(ConsoleUserRecord {
                user_name: name.into(),
                account_id: account.into(),
                password_hash: "pbkdf2-sha256$1$AA==$AA==".into(),
                creation_date: T0,
            })
            .await
            .unwrap();
    }

    #[test]
    fn principals_round_trip() {
        for p in [
            ConsolePrincipal::User("alice".into()),
            ConsolePrincipal::AccessKey("LTAIabc".into()),
        ] {
            assert_eq!(ConsolePrincipal::parse(&p.to_string()), Some(p));
        }
        assert_eq!(
            ConsolePrincipal::User("a".into()).to_string(),
            "console-user:a"
        );
        assert_eq!(
            ConsolePrincipal::AccessKey("K".into()).to_string(),
            "console:K"
        );
        assert_eq!(ConsolePrincipal::parse("LTAIabc"), None);
    }

    #[tokio::test]
    async fn idle_and_lifetime_limits() {
        let (kms, clock, _) = kms();
        add_user(&kms, "alice", ACCOUNT).await;
        let s = ConsoleSessions::new(&kms, policy());
        let alice = ConsolePrincipal::User("alice".into());
        s.start("h1".into(), ACCOUNT, &alice, None).await.unwrap();
        clock.advance(599);
        assert!(matches!(
            s.check("h1").await.unwrap(),
            SessionLookup::Live(_)
        ));
        // the check reset the idle timer
        clock.advance(599);
        assert!(matches!(
            s.check("h1").await.unwrap(),
            SessionLookup::Live(_)
        ));
        clock.advance(600);
        assert_eq!(s.check("h1").await.unwrap(), SessionLookup::Expired);
        assert_eq!(s.check("h1").await.unwrap(), SessionLookup::Unknown);

        // never idle, but older than the maximum lifetime
        s.start("h2".into(), ACCOUNT, &alice, None).await.unwrap();
        let mut age = 0;
        while age + 500 < SessionPolicy::MAX_LIFETIME {
            clock.advance(500);
            age += 500;
            assert!(matches!(
                s.check("h2").await.unwrap(),
                SessionLookup::Live(_)
            ));
        }
        clock.advance(SessionPolicy::MAX_LIFETIME - age);
        assert_eq!(s.check("h2").await.unwrap(), SessionLookup::Expired);
    }

    #[tokio::test]
    async fn a_removed_or_disabled_principal_ends_its_sessions() {
        let (kms, _, _) = kms();
        add_user(&kms, "bob", ACCOUNT).await;
        let s = ConsoleSessions::new(&kms, policy());
        let bob = ConsolePrincipal::User("bob".into());
        s.start("u".into(), ACCOUNT, &bob, None).await.unwrap();
        // a session naming another account than the user's is not honoured
        s.start("x".into(), "6543210987654321", &bob, None)
            .await
            .unwrap();
        assert_eq!(s.check("x").await.unwrap(), SessionLookup::Unknown);
        kms.store.delete_console_user("bob").await.unwrap();
        assert_eq!(s.check("u").await.unwrap(), SessionLookup::Unknown);

        let ak = kms.create_access_key(ACCOUNT, None).await.unwrap();
        let p = ConsolePrincipal::AccessKey(ak.access_key_id.clone());
        s.start("k".into(), ACCOUNT, &p, None).await.unwrap();
        assert!(matches!(
            s.check("k").await.unwrap(),
            SessionLookup::Live(_)
        ));
        kms.store
            .set_access_key_enabled(&ak.access_key_id, false)
            .await
            .unwrap();
        assert_eq!(s.check("k").await.unwrap(), SessionLookup::Unknown);
        let unknown = ConsolePrincipal::AccessKey("LTAInope".into());
        s.start("n".into(), ACCOUNT, &unknown, None).await.unwrap();
        assert_eq!(s.check("n").await.unwrap(), SessionLookup::Unknown);
    }

    #[tokio::test]
    async fn start_replaces_and_end_removes() {
        let (kms, _, _) = kms();
        add_user(&kms, "carol", ACCOUNT).await;
        let s = ConsoleSessions::new(&kms, policy());
        let carol = ConsolePrincipal::User("carol".into());
        let rec = s.start("a".into(), ACCOUNT, &carol, None).await.unwrap();
        assert_eq!(rec.principal, "console-user:carol");
        s.start("b".into(), ACCOUNT, &carol, Some("a"))
            .await
            .unwrap();
        assert_eq!(s.check("a").await.unwrap(), SessionLookup::Unknown);
        assert!(matches!(
            s.check("b").await.unwrap(),
            SessionLookup::Live(_)
        ));
        s.end("b").await.unwrap();
        assert_eq!(s.check("b").await.unwrap(), SessionLookup::Unknown);
    }
}
