//! The other records the store keeps: access keys, aliases, BYOK wrapping keys, web console
//! users and sessions.

/// An access key (AccessKeyId and its sealed secret) of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub account_id: String,
    /// The secret sealed under the root key.
    pub sealed_secret: Vec<u8>,
    pub enabled: bool,
    pub creation_date: i64,
    /// The RAM user the key belongs to (its entity id); None: the account's root
    /// credentials (every access key created before RAM users existed).
    pub user_id: Option<String>,
}

/// An alias: `alias/<name>` → key, unique per account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    pub account_id: String,
    pub region: String,
    pub alias_name: String,
    pub key_id: String,
    pub creation_date: i64,
}

/// A BYOK wrapping key pair, issued by GetParametersForImport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappingKeyRecord {
    pub wrapping_key_id: String,
    pub key_id: String,
    pub account_id: String,
    pub algorithm: String,
    /// PKCS#8 DER of the private key, sealed under the root key.
    pub sealed_private_key: Vec<u8>,
    pub expires: i64,
}

/// A web console user: signs in with a name and password, acts in its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUserRecord {
    pub user_name: String,
    pub account_id: String,
    /// `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>` (never the password).
    pub password_hash: String,
    pub creation_date: i64,
}

/// A signed-in web console session. The browser holds a random token; only its SHA-256
/// (hex) is stored, so a copy of the database does not yield usable sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSessionRecord {
    pub id_hash: String,
    pub account_id: String,
    /// `console-user:<name>` or the access key id used to sign in.
    pub principal: String,
    pub created: i64,
    /// Last request (key-lifecycle clock); the session ends after the idle timeout.
    pub last_seen: i64,
}
