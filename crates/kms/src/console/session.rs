//! Console credentials and sessions.
//!
//! - Console user passwords are stored as PBKDF2-HMAC-SHA256 (aws-lc-rs), 600 000
//!   iterations, 16-byte random salt: `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`.
//!   Verification is constant time (`pbkdf2::verify`); an unknown user name costs the same
//!   as a wrong password.
//! - A session token is `<random 256 bits>.<credential tag>` (base64url; the tag binds the
//!   session to the password hash or access key secret it signed in with, see
//!   [`crate::service::console`]), in an HttpOnly, SameSite=Strict cookie: over HTTPS
//!   `__Host-kms_session` (Secure, Path=/, no Domain: only this origin's secure responses can
//!   set it), over HTTP `kms_session` (Path=/console). The database holds only
//!   SHA-256(token), with the account, principal and last-request time, so every server node
//!   sharing the database sees the same sessions and sign-out or idle expiry applies
//!   everywhere at once. A request with more than one session cookie is refused.
//! - The CSRF token of a session is HMAC-SHA256(token, "kms-console-csrf"): nothing to
//!   store, and only someone who holds the session cookie can compute it. Every
//!   state-changing request must carry it (form field `csrf` or header `X-CSRF-Token`).
//!   The sign-in form's token is issued and checked by the console-sessions service, with no
//!   cookie.

use std::num::NonZeroU32;

use aws_lc_rs::{digest, hmac, pbkdf2, rand};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use zeroize::Zeroizing;

/// The session cookie over HTTP.
pub const SESSION_COOKIE: &str = "kms_session";
/// The session cookie over HTTPS (`__Host-`: Secure, Path=/, no Domain).
pub const SECURE_SESSION_COOKIE: &str = "__Host-kms_session";

const ITERATIONS: u32 = 600_000;
const SCHEME: &str = "pbkdf2-sha256";
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// A well-formed hash that matches no password, verified when the user name is unknown so
/// that both failures take the same time.
const DUMMY_HASH: &str =
    "pbkdf2-sha256$600000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
    {
        return Err(
            "a console user name is 1-64 letters, digits, '.', '_', '-' or '@'".to_string(),
        );
    }
    Ok(())
}

pub fn validate_password(p: &str) -> Result<(), String> {
    if p.chars().count() < 10 || p.len() > 1024 {
        return Err("a console password needs at least 10 characters".to_string());
    }
    Ok(())
}

fn random(n: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut b = Zeroizing::new(vec![0u8; n]);
    rand::fill(&mut b).map_err(|_| "random number generator failed".to_string())?;
    Ok(b)
}

/// Hashes a password for storage.
pub fn hash_password(password: &str) -> Result<String, String> {
    hash_with(password, ITERATIONS)
}

fn hash_with(password: &str, iterations: u32) -> Result<String, String> {
    let salt = random(SALT_LEN)?;
    let n = NonZeroU32::new(iterations).ok_or("iterations")?;
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        &salt,
        password.as_bytes(),
        out.as_mut(),
    );
    Ok(format!(
        "{SCHEME}${iterations}${}${}",
        STANDARD.encode(&salt[..]),
        STANDARD.encode(out.as_ref())
    ))
}

/// Checks a password against a stored hash (constant time in the hash comparison). With
/// `None` (unknown user) a dummy hash is checked, so the answer takes as long.
pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    let known = stored.is_some();
    let text = stored.unwrap_or(DUMMY_HASH);
    let mut parts = text.split('$');
    let (Some(SCHEME), Some(iter), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(iter), Ok(salt), Ok(hash)) = (
        iter.parse::<u32>().ok().and_then(NonZeroU32::new),
        STANDARD.decode(salt),
        STANDARD.decode(hash),
    ) else {
        return false;
    };
    let ok = pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iter,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok();
    ok && known
}

/// A new session token carrying `credential_tag` (for the cookie) and its stored id hash.
pub fn new_session_token(credential_tag: &str) -> Result<(Zeroizing<String>, String), String> {
    let raw = random(32)?;
    let token = Zeroizing::new(format!(
        "{}.{credential_tag}",
        URL_SAFE_NO_PAD.encode(&raw[..])
    ));
    let id = id_hash(&token);
    Ok((token, id))
}

/// The credential tag a session token carries (empty if none).
pub fn credential_tag_of(token: &str) -> &str {
    token.split_once('.').map_or("", |(_, tag)| tag)
}

/// The stored id of a session token: hex SHA-256.
pub fn id_hash(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// The CSRF token of a session.
pub fn csrf_token(session_token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, b"kms-console-csrf").as_ref())
}

/// Constant-time comparison of two tokens.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    !a.is_empty()
        && aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The name of the session cookie: `__Host-kms_session` over HTTPS, else `kms_session`.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// A `Set-Cookie` value for the session cookie: HttpOnly, SameSite=Strict; over HTTPS
/// `__Host-kms_session` with Secure and Path=/ (what the prefix requires), over HTTP
/// `kms_session` with Path=/console. Never a Domain. `max_age` None = a browser-session
/// cookie, Some(0) = delete.
pub fn session_cookie(value: &str, secure: bool, max_age: Option<i64>) -> String {
    let name = session_cookie_name(secure);
    let mut c = if secure {
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Secure")
    } else {
        format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict")
    };
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// The values of cookie `name` in a `Cookie` header, in order.
pub fn cookie_values<'a, 'n>(
    header: &'a str,
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    header.split(';').filter_map(move |kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The value of cookie `name` in a `Cookie` header (the first, if there are several).
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    cookie_values(header, name).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trip() {
        let h = hash_with("correct horse battery", 1000).unwrap();
        assert!(h.starts_with("pbkdf2-sha256$1000$"));
        assert!(verify_password(Some(&h), "correct horse battery"));
        assert!(!verify_password(Some(&h), "correct horse batterY"));
        assert!(!verify_password(None, "correct horse battery"));
        assert!(!verify_password(Some("garbage"), "x"));
        // two hashes of one password differ (random salt)
        assert_ne!(h, hash_with("correct horse battery", 1000).unwrap());
    }

    #[test]
    fn tokens() {
        let (t, id) = new_session_token("TAG").unwrap();
        assert_eq!(id, id_hash(&t));
        assert_eq!(id.len(), 64);
        assert_eq!(t.len(), 43 + 4);
        assert_eq!(credential_tag_of(&t), "TAG");
        assert_eq!(credential_tag_of("no-tag"), "");
        assert_eq!(csrf_token(&t), csrf_token(&t));
        assert_ne!(csrf_token(&t), csrf_token("other"));
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("", ""));
        assert_eq!(
            cookie_value("a=1; kms_session=xyz; b=2", "kms_session"),
            Some("xyz")
        );
        assert_eq!(cookie_value("a=1", "kms_session"), None);
        assert_eq!(
            cookie_values("kms_session=1; a=2;kms_session=3", "kms_session").collect::<Vec<_>>(),
            ["1", "3"]
        );
        assert!(validate_user_name("alice@example.com").is_ok());
        assert!(validate_user_name("a b").is_err());
        assert!(validate_password("short").is_err());
    }

    #[test]
    fn session_cookie_attributes() {
        assert_eq!(
            session_cookie("v", true, None),
            "__Host-kms_session=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            session_cookie("", false, Some(0)),
            "kms_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }
}
