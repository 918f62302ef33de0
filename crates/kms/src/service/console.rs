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
//! - its principal still exists in the session's account and (for an access key) is enabled,
//! - its principal's credential is the one it signed in with: the browser's token carries a
//!   *credential tag* ([`ConsoleSessions::credential_tag`], an HMAC under a root-derived key
//!   of the principal and its stored password hash or access key secret), which must match
//!   the tag of the credential stored now. A console user's password hash has a fresh random
//!   salt whenever the user is created or its password changed, so deleting and re-creating
//!   a user, or changing its password, ends every session it had, on every node, at the
//!   session's next request (the tag is part of the token, and the token's SHA-256 is the
//!   session id, so it cannot be edited).
//!
//! Otherwise it is deleted at the first request that finds it so.
//!
//! The sign-in form carries a token this service issues and checks without any cookie
//! ([`ConsoleSessions::signin_token`]): an expiry, a random nonce and an HMAC under the
//! root-derived console key over both and the browser's address.

use std::fmt;
use std::net::IpAddr;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::Kms;
use crate::error::KmsError;
use crate::store::{ConsoleSessionRecord, ConsoleUserRecord, Store};

/// How long a sign-in form's token is accepted (key-lifecycle clock).
pub const SIGNIN_TOKEN_LIFETIME: i64 = 10 * 60;
/// Expiry (8 bytes, big-endian Unix seconds) and nonce (16 bytes): what a sign-in token's
/// HMAC-SHA256 (32 bytes) covers, with the browser's address.
const SIGNIN_BODY_LEN: usize = 8 + 16;
const SIGNIN_TOKEN_LEN: usize = SIGNIN_BODY_LEN + 32;
/// Bytes of HMAC-SHA256 kept in a credential tag.
const CREDENTIAL_TAG_LEN: usize = 16;

/// Who signed in to the console. Stored (and audited) as `console-user:<name>` or
/// `console:<access key id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsolePrincipal {
    /// A console user, by name.
    User(String),
    /// An access key, by id.
    AccessKey(String),
    /// A RAM user of the session's account, by name, signed in with its login profile
    /// (issue 16): the console acts with that user's policies.
    RamUser(String),
}

impl ConsolePrincipal {
    const USER_PREFIX: &'static str = "console-user:";
    const ACCESS_KEY_PREFIX: &'static str = "console:";
    const RAM_USER_PREFIX: &'static str = "ram-user:";

    pub fn parse(s: &str) -> Option<ConsolePrincipal> {
        if let Some(name) = s.strip_prefix(Self::RAM_USER_PREFIX) {
            Some(ConsolePrincipal::RamUser(name.to_string()))
        } else if let Some(name) = s.strip_prefix(Self::USER_PREFIX) {
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
            ConsolePrincipal::RamUser(name) => write!(f, "{}{name}", Self::RAM_USER_PREFIX),
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

/// What a sign-in form's token is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigninTokenCheck {
    /// Issued by a server with this root key, for this address, and not expired.
    Valid,
    /// Authentic but older than [`SIGNIN_TOKEN_LIFETIME`].
    Expired,
    /// Missing, malformed, forged, for another address or from a server with another root
    /// key.
    Invalid,
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
        Ok(self.kms.store.get_console_user(name).await?)
    }

    /// A RAM user of `account` with a login profile: its user id and stored password hash
    /// (`None` if the user or its login profile does not exist).
    pub async fn ram_user_hash(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<(String, String)>, KmsError> {
        if crate::service::ram::check_user_name("UserName", name).is_err() {
            return Ok(None);
        }
        let caller = crate::service::Caller {
            account_id: account.to_string(),
            region: String::new(),
            access_key_id: String::new(),
        };
        match self.kms.get_user(&caller, name).await {
            Ok(u) => Ok(u.body.login_profile.map(|p| (u.id, p.password_hash))),
            Err(KmsError::Internal(d)) => Err(KmsError::Internal(d)),
            Err(_) => Ok(None),
        }
    }

    /// The session stored under `id_hash`, if live (see the module comment) for a token that
    /// carries `credential_tag`; a live session's idle timer is reset, a dead one is deleted.
    pub async fn check(
        &self,
        id_hash: &str,
        credential_tag: &str,
    ) -> Result<SessionLookup, KmsError> {
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
        if !self.principal_is_valid(&rec, credential_tag).await? {
            store.delete_console_session(id_hash).await?;
            return Ok(SessionLookup::Unknown);
        }
        store.touch_console_session(id_hash, now).await?;
        Ok(SessionLookup::Live(rec))
    }

    /// Whether the session's principal still exists in its account (and, for an access
    /// key, is enabled) with the credential it signed in with (`credential_tag`).
    async fn principal_is_valid(
        &self,
        rec: &ConsoleSessionRecord,
        credential_tag: &str,
    ) -> Result<bool, KmsError> {
        let Some(principal) = ConsolePrincipal::parse(&rec.principal) else {
            return Ok(false);
        };
        let current = match &principal {
            ConsolePrincipal::User(name) => self
                .user(name)
                .await?
                .filter(|u| u.account_id == rec.account_id)
                .map(|u| self.credential_tag(&principal, u.password_hash.as_bytes())),
            ConsolePrincipal::AccessKey(id) => match self.kms.access_key_secret(id).await {
                Ok((account, secret)) if account == rec.account_id => {
                    Some(self.credential_tag(&principal, &secret))
                }
                _ => None,
            },
            ConsolePrincipal::RamUser(name) => self
                .ram_user_hash(&rec.account_id, name)
                .await?
                .map(|(_, hash)| self.credential_tag(&principal, hash.as_bytes())),
        };
        Ok(current.is_some_and(|tag| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                tag.as_bytes(),
                credential_tag.as_bytes(),
            )
            .is_ok()
        }))
    }

    /// The credential tag of a session of `principal` signed in with `credential` (the
    /// stored password hash of a console user, the secret of an access key): 16 bytes of
    /// HMAC-SHA256 under the root-derived console key, base64url. The browser's session
    /// token carries it; it reveals nothing about the credential.
    pub fn credential_tag(&self, principal: &ConsolePrincipal, credential: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(self.kms.keystore.console_key());
        ctx.update(b"kms console credential v1\0");
        let p = principal.to_string();
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p.as_bytes());
        ctx.update(credential);
        URL_SAFE_NO_PAD.encode(&ctx.sign().as_ref()[..CREDENTIAL_TAG_LEN])
    }

    /// A token for the sign-in form shown to `client`: expiry ‖ nonce ‖ HMAC, base64url.
    /// Any node with the same root key accepts it ([`Self::check_signin_token`]) until
    /// [`SIGNIN_TOKEN_LIFETIME`] has passed; nothing is stored.
    pub fn signin_token(&self, client: IpAddr) -> Result<String, KmsError> {
        let expiry = self.kms.now().saturating_add(SIGNIN_TOKEN_LIFETIME);
        let nonce = self.kms.keystore.random(16)?;
        let mut token = Vec::with_capacity(SIGNIN_TOKEN_LEN);
        token.extend_from_slice(&expiry.to_be_bytes());
        token.extend_from_slice(&nonce);
        let tag = hmac::sign(
            self.kms.keystore.console_key(),
            &signin_message(&token, client),
        );
        token.extend_from_slice(tag.as_ref());
        Ok(URL_SAFE_NO_PAD.encode(token))
    }

    /// Checks a sign-in form's token sent by `client`.
    pub fn check_signin_token(&self, token: &str, client: IpAddr) -> SigninTokenCheck {
        if token.len() > 2 * SIGNIN_TOKEN_LEN {
            return SigninTokenCheck::Invalid;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(token) else {
            return SigninTokenCheck::Invalid;
        };
        if raw.len() != SIGNIN_TOKEN_LEN {
            return SigninTokenCheck::Invalid;
        }
        let (body, tag) = raw.split_at(SIGNIN_BODY_LEN);
        let key = self.kms.keystore.console_key();
        if hmac::verify(key, &signin_message(body, client), tag).is_err() {
            return SigninTokenCheck::Invalid;
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&body[..8]);
        if self.kms.now() >= i64::from_be_bytes(expiry) {
            SigninTokenCheck::Expired
        } else {
            SigninTokenCheck::Valid
        }
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
        Ok(self.kms.store.delete_console_session(id_hash).await?)
    }
}

/// What a sign-in token's HMAC covers: a label, expiry ‖ nonce, and the client's address
/// (an IPv4 address seen as IPv4-mapped IPv6 counts as the IPv4 one).
fn signin_message(body: &[u8], client: IpAddr) -> Vec<u8> {
    let client = client.to_canonical().to_string();
    let mut m = Vec::with_capacity(32 + body.len() + client.len());
    m.extend_from_slice(b"kms console sign-in v1\0");
    m.extend_from_slice(body);
    m.extend_from_slice(client.as_bytes());
    m
}

/// Replaces a console user's password hash (`kms admin console-user set-password`); false
/// if there is no such user. The new hash has a new random salt, so every session of the
/// user ends at its next request, on every node (see the module comment).
///
/// The store has no update of a console user, so this deletes the user and inserts it again
/// with the same account and creation date (two statements: if the second fails, the user
/// is gone and the error says so; run the command again with `create`).
pub async fn set_console_user_password(
    store: &dyn Store,
    name: &str,
    password_hash: String,
) -> Result<bool, KmsError> {
    let Some(user) = store.get_console_user(name).await? else {
        return Ok(false);
    };
    if !store.delete_console_user(name).await? {
        return Ok(false);
    }
    let replaced = ConsoleUserRecord {
        password_hash,
        ..user
    };
    if !store.insert_console_user(replaced).await? {
        return Err(KmsError::internal(format!(
            "console user {name} was created again while its password was being changed"
        )));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::keystore::Keystore;
    use crate::service::testing::{kms, T0};

    const ACCOUNT: &str = "1234567890123456";
    const HASH: &str = "pbkdf2-sha256$1$AA==$AA==";

    fn policy() -> SessionPolicy {
        SessionPolicy { idle_timeout: 600 }
    }

    fn user(name: &str, account: &str, hash: &str) -> ConsoleUserRecord {
        ConsoleUserRecord {
            user_name: name.into(),
            account_id: account.into(),
            password_hash: hash.into(),
            creation_date: T0,
        }
    }

    async fn add_user(kms: &Kms, name: &str, account: &str) {
        kms.store
            .insert_console_user(user(name, account, HASH))
            .await
            .unwrap();
    }

    /// The credential tag of a console user signed in with [`HASH`].
    fn tag(s: &ConsoleSessions<'_>, name: &str) -> String {
        s.credential_tag(&ConsolePrincipal::User(name.into()), HASH.as_bytes())
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
        let t = tag(&s, "alice");
        s.start("h1".into(), ACCOUNT, &alice, None).await.unwrap();
        clock.advance(599);
        assert!(matches!(
            s.check("h1", &t).await.unwrap(),
            SessionLookup::Live(_)
        ));
        // the check reset the idle timer
        clock.advance(599);
        assert!(matches!(
            s.check("h1", &t).await.unwrap(),
            SessionLookup::Live(_)
        ));
        clock.advance(600);
        assert_eq!(s.check("h1", &t).await.unwrap(), SessionLookup::Expired);
        assert_eq!(s.check("h1", &t).await.unwrap(), SessionLookup::Unknown);

        // never idle, but older than the maximum lifetime
        s.start("h2".into(), ACCOUNT, &alice, None).await.unwrap();
        let mut age = 0;
        while age + 500 < SessionPolicy::MAX_LIFETIME {
            clock.advance(500);
            age += 500;
            assert!(matches!(
                s.check("h2", &t).await.unwrap(),
                SessionLookup::Live(_)
            ));
        }
        clock.advance(SessionPolicy::MAX_LIFETIME - age);
        assert_eq!(s.check("h2", &t).await.unwrap(), SessionLookup::Expired);
    }

    #[tokio::test]
    async fn a_removed_or_disabled_principal_ends_its_sessions() {
        let (kms, _, _) = kms();
        add_user(&kms, "bob", ACCOUNT).await;
        let s = ConsoleSessions::new(&kms, policy());
        let bob = ConsolePrincipal::User("bob".into());
        let t = tag(&s, "bob");
        s.start("u".into(), ACCOUNT, &bob, None).await.unwrap();
        // a session naming another account than the user's is not honoured
        s.start("x".into(), "6543210987654321", &bob, None)
            .await
            .unwrap();
        assert_eq!(s.check("x", &t).await.unwrap(), SessionLookup::Unknown);
        kms.store.delete_console_user("bob").await.unwrap();
        assert_eq!(s.check("u", &t).await.unwrap(), SessionLookup::Unknown);

        let ak = kms.create_access_key(ACCOUNT, None).await.unwrap();
        let p = ConsolePrincipal::AccessKey(ak.access_key_id.clone());
        let (_, secret) = kms.access_key_secret(&ak.access_key_id).await.unwrap();
        let t = s.credential_tag(&p, &secret);
        s.start("k".into(), ACCOUNT, &p, None).await.unwrap();
        assert!(matches!(
            s.check("k", &t).await.unwrap(),
            SessionLookup::Live(_)
        ));
        kms.store
            .set_access_key_enabled(&ak.access_key_id, false)
            .await
            .unwrap();
        assert_eq!(s.check("k", &t).await.unwrap(), SessionLookup::Unknown);
        let unknown = ConsolePrincipal::AccessKey("LTAInope".into());
        s.start("n".into(), ACCOUNT, &unknown, None).await.unwrap();
        assert_eq!(s.check("n", &t).await.unwrap(), SessionLookup::Unknown);
    }

    /// Issue 14 item 8: a session is bound to the credential it signed in with.
    #[tokio::test]
    async fn a_new_password_or_a_re_created_user_ends_the_old_sessions() {
        let (kms, _, _) = kms();
        add_user(&kms, "ops", ACCOUNT).await;
        let s = ConsoleSessions::new(&kms, policy());
        let ops = ConsolePrincipal::User("ops".into());
        let t = tag(&s, "ops");
        s.start("a".into(), ACCOUNT, &ops, None).await.unwrap();
        s.start("b".into(), ACCOUNT, &ops, None).await.unwrap();
        assert!(matches!(
            s.check("a", &t).await.unwrap(),
            SessionLookup::Live(_)
        ));
        // a token without the tag, or with another principal's, is not honoured
        assert_eq!(s.check("b", "").await.unwrap(), SessionLookup::Unknown);
        s.start("b".into(), ACCOUNT, &ops, None).await.unwrap();
        assert_eq!(
            s.check("b", &tag(&s, "other")).await.unwrap(),
            SessionLookup::Unknown
        );

        // deleted and created again with the same name and account, another hash
        kms.store.delete_console_user("ops").await.unwrap();
        kms.store
            .insert_console_user(user("ops", ACCOUNT, "pbkdf2-sha256$1$AQ==$AA=="))
            .await
            .unwrap();
        assert_eq!(s.check("a", &t).await.unwrap(), SessionLookup::Unknown);

        // the password changed
        let t2 = s.credential_tag(&ops, b"pbkdf2-sha256$1$AQ==$AA==");
        s.start("c".into(), ACCOUNT, &ops, None).await.unwrap();
        assert!(matches!(
            s.check("c", &t2).await.unwrap(),
            SessionLookup::Live(_)
        ));
        let store = kms.store.as_ref();
        assert!(
            set_console_user_password(store, "ops", "pbkdf2-sha256$1$Ag==$AA==".into())
                .await
                .unwrap()
        );
        assert_eq!(s.check("c", &t2).await.unwrap(), SessionLookup::Unknown);
        let now = store.get_console_user("ops").await.unwrap().unwrap();
        assert_eq!(now.password_hash, "pbkdf2-sha256$1$Ag==$AA==");
        assert_eq!((now.account_id.as_str(), now.creation_date), (ACCOUNT, T0));
        assert!(!set_console_user_password(store, "nobody", HASH.into())
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn start_replaces_and_end_removes() {
        let (kms, _, _) = kms();
        add_user(&kms, "carol", ACCOUNT).await;
        let s = ConsoleSessions::new(&kms, policy());
        let carol = ConsolePrincipal::User("carol".into());
        let t = tag(&s, "carol");
        let rec = s.start("a".into(), ACCOUNT, &carol, None).await.unwrap();
        assert_eq!(rec.principal, "console-user:carol");
        s.start("b".into(), ACCOUNT, &carol, Some("a"))
            .await
            .unwrap();
        assert_eq!(s.check("a", &t).await.unwrap(), SessionLookup::Unknown);
        assert!(matches!(
            s.check("b", &t).await.unwrap(),
            SessionLookup::Live(_)
        ));
        s.end("b").await.unwrap();
        assert_eq!(s.check("b", &t).await.unwrap(), SessionLookup::Unknown);
    }

    /// Issue 14 item 9: the sign-in token is bound to the root key, the address and time.
    #[tokio::test]
    async fn sign_in_tokens() {
        let (kms, clock, _) = kms();
        let s = ConsoleSessions::new(&kms, policy());
        let me: IpAddr = "10.0.0.1".parse().unwrap();
        let t = s.signin_token(me).unwrap();
        assert_ne!(t, s.signin_token(me).unwrap()); // a fresh nonce each time
        assert_eq!(s.check_signin_token(&t, me), SigninTokenCheck::Valid);
        // the same address seen as IPv4-mapped IPv6
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(s.check_signin_token(&t, mapped), SigninTokenCheck::Valid);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(s.check_signin_token(&t, other), SigninTokenCheck::Invalid);
        // any altered byte
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 1;
            let bad = URL_SAFE_NO_PAD.encode(bad);
            assert_eq!(s.check_signin_token(&bad, me), SigninTokenCheck::Invalid);
        }
        for bad in [
            "",
            "x",
            &t[..t.len() - 2],
            &format!("{t}AA"),
            &"A".repeat(500),
        ] {
            assert_eq!(s.check_signin_token(bad, me), SigninTokenCheck::Invalid);
        }
        // another root key
        let other_kms = Kms::new(
            kms.store.clone(),
            Arc::new(Keystore::from_root(&[4u8; 32]).unwrap()),
            Arc::new(ManualClock::new(T0)),
            crate::keystore::wrapping::Pool::new(0),
            crate::service::ServiceConfig::default(),
        );
        let o = ConsoleSessions::new(&other_kms, policy());
        assert_eq!(o.check_signin_token(&t, me), SigninTokenCheck::Invalid);
        let x = ConsolePrincipal::User("x".into());
        assert_ne!(o.credential_tag(&x, b"h"), s.credential_tag(&x, b"h"));
        // expiry
        clock.advance(SIGNIN_TOKEN_LIFETIME - 1);
        assert_eq!(s.check_signin_token(&t, me), SigninTokenCheck::Valid);
        clock.advance(1);
        assert_eq!(s.check_signin_token(&t, me), SigninTokenCheck::Expired);
    }
}
