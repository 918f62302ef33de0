//! Persistence behind one trait. The service never sees SQL; an adapter per engine
//! implements [`Store`]: SQLite in [`sqlite`] (the embedded default), PostgreSQL in
//! [`postgres`] (several nodes on one database); [`cache`] sits in front of either.
//!
//! State changes go through [`Store::update_key`]: the adapter loads the key row under a
//! write lock inside a transaction, hands it to the service's closure (which applies the
//! state-machine rules and may return changes to key versions), and commits only if the
//! closure succeeds. Two racing changes therefore see each other's result.

pub mod cache;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;

use crate::error::KmsError;
use crate::model::KeyState;

/// One customer master key (without its versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub account_id: String,
    pub region: String,
    pub description: String,
    pub key_spec: String,
    pub key_usage: String,
    pub origin: String,
    pub protection_level: String,
    pub state: KeyState,
    pub creation_date: i64,
    pub creator: String,
    pub primary_version: String,
    /// When a PendingDeletion key is deleted for good.
    pub delete_date: Option<i64>,
    /// EXTERNAL keys: whether material is currently imported.
    pub material_present: bool,
    /// EXTERNAL keys: when the imported material expires (None = never / no material).
    pub material_expire: Option<i64>,
    /// EXTERNAL keys: keyed commitment to the first imported material (never the material).
    pub material_commitment: Option<Vec<u8>>,
    pub deletion_protection: bool,
    pub deletion_protection_description: String,
    pub automatic_rotation: bool,
    /// Rotation interval in seconds.
    pub rotation_interval: Option<i64>,
    pub last_rotation_date: Option<i64>,
    /// How many versions the key has (for the per-key limit).
    pub version_count: i64,
}

/// One key version. `sealed_material` is the version's 256-bit material sealed under the
/// root key (`None` for an EXTERNAL key without material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionRecord {
    pub key_id: String,
    pub version_id: String,
    pub creation_date: i64,
    pub sealed_material: Option<Vec<u8>>,
}

/// A change to key versions made together with a key update.
#[derive(Debug, Clone)]
pub enum VersionChange {
    SetMaterial {
        version_id: String,
        sealed_material: Option<Vec<u8>>,
    },
    Insert(KeyVersionRecord),
}

/// The service's read-modify-write step inside [`Store::update_key`].
pub type KeyMutation =
    Box<dyn FnOnce(&mut KeyRecord) -> Result<Vec<VersionChange>, KmsError> + Send>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub account_id: String,
    /// The secret sealed under the root key.
    pub sealed_secret: Vec<u8>,
    pub enabled: bool,
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

/// A key column ListKeys can filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    /// The state as ListKeys shows it (expired material shows as PendingImport).
    State,
    Spec,
    Usage,
    ProtectionLevel,
    Origin,
}

/// A resource tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
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

/// Identifies a key within the account and region that own it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyLocator {
    pub account_id: String,
    pub region: String,
    pub key_id: String,
}

/// A `--database-url`: `postgres://…` (or `postgresql://…`) or `sqlite:<file>`.
pub enum DatabaseUrl {
    Sqlite(std::path::PathBuf),
    Postgres(Box<tokio_postgres::Config>),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return postgres::parse_url(url).map(|c| Self::Postgres(Box::new(c)));
        }
        if let Some(file) = url.strip_prefix("sqlite:") {
            return Ok(Self::Sqlite(file.trim_start_matches("//").into()));
        }
        Err(format!(
            "unsupported database URL {:?}: use postgres://… or sqlite:<file>",
            url.split(':').next().unwrap_or_default()
        ))
    }
}

/// Everything a store holds, for `kms admin migrate-store`: rows in a fixed order, secrets
/// still sealed (a copy needs no root key and never sees plaintext). Nonces are not part of
/// it: they only matter for 30 minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    pub meta: Vec<(String, String)>,
    /// (account id, creation date), by id.
    pub accounts: Vec<(String, i64)>,
    /// By access key id.
    pub access_keys: Vec<AccessKeyRecord>,
    /// By key id.
    pub keys: Vec<KeyRecord>,
    /// By key id, then creation order.
    pub versions: Vec<KeyVersionRecord>,
    /// (key id, tag), by key id then tag key.
    pub tags: Vec<(String, Tag)>,
    /// By account, region, name.
    pub aliases: Vec<AliasRecord>,
    /// (wrapping key, failed unwraps), by id.
    pub wrapping_keys: Vec<(WrappingKeyRecord, i64)>,
    /// Web console users (password hashes), by name. Sessions are not copied: users sign in
    /// again.
    pub console_users: Vec<ConsoleUserRecord>,
}

impl Dump {
    /// Counts of each kind of row, for reports.
    pub fn summary(&self) -> String {
        format!(
            "{} accounts, {} access keys, {} keys, {} key versions, {} aliases, {} tags, {} wrapping keys (import tokens), {} console users, {} metadata entries",
            self.accounts.len(),
            self.access_keys.len(),
            self.keys.len(),
            self.versions.len(),
            self.aliases.len(),
            self.tags.len(),
            self.wrapping_keys.len(),
            self.console_users.len(),
            self.meta.len()
        )
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get_meta(&self, name: &str) -> Result<Option<String>, KmsError>;
    async fn set_meta(&self, name: &str, value: &str) -> Result<(), KmsError>;
    /// Sets `name` to `value` unless it is already set; returns the value in force (so
    /// several nodes starting at once agree on one).
    async fn init_meta(&self, name: &str, value: &str) -> Result<String, KmsError>;

    async fn ensure_account(&self, account_id: &str, now: i64) -> Result<(), KmsError>;

    async fn insert_access_key(&self, ak: AccessKeyRecord) -> Result<(), KmsError>;
    async fn get_access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, KmsError>;
    async fn list_access_keys(&self) -> Result<Vec<AccessKeyRecord>, KmsError>;
    /// Returns false if there is no such access key.
    async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> Result<bool, KmsError>;
    async fn delete_access_key(&self, id: &str) -> Result<bool, KmsError>;

    /// Inserts a key with its first version and tags, unless the account already has
    /// `max_keys` keys in the region (`Rejected.LimitExceeded`).
    async fn insert_key(
        &self,
        key: KeyRecord,
        first: KeyVersionRecord,
        tags: Vec<Tag>,
        max_keys: i64,
    ) -> Result<(), KmsError>;
    /// Inserts many keys at once (bulk seeding for benchmarks), in as few transactions as
    /// the engine likes. No limit check.
    async fn insert_keys_bulk(
        &self,
        keys: Vec<(KeyRecord, KeyVersionRecord)>,
    ) -> Result<(), KmsError>;
    /// One page of an account's keys in a region, in creation order, as ListKeys shows them
    /// at `now` (keys past their deletion date left out, expired material as PendingImport),
    /// filtered by `filters` (field, accepted values), and the total that match.
    async fn list_keys_page(
        &self,
        account_id: &str,
        region: &str,
        now: i64,
        filters: &[(KeyField, Vec<String>)],
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<KeyRecord>, usize), KmsError>;
    async fn list_tags(&self, key_id: &str) -> Result<Vec<Tag>, KmsError>;
    /// Adds or replaces tags on a key, unless it would then have more than `max` tags.
    async fn put_tags(&self, key_id: &str, tags: Vec<Tag>, max: usize) -> Result<(), KmsError>;
    /// Removes the named tags (all tags with `None`).
    async fn remove_tags(
        &self,
        key_id: &str,
        tag_keys: Option<Vec<String>>,
    ) -> Result<(), KmsError>;
    /// Every (key id, tag) of an account's keys in a region, by key id then tag key.
    async fn list_account_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> Result<Vec<(String, Tag)>, KmsError>;

    /// Creates an alias: `AliasAlreadyExists` if the name is taken, `Rejected.LimitExceeded`
    /// if the key already has `max_per_key` aliases.
    async fn create_alias(&self, alias: AliasRecord, max_per_key: i64) -> Result<(), KmsError>;
    /// Re-points an alias; false if there is no such alias.
    async fn update_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        key_id: &str,
        max_per_key: i64,
    ) -> Result<bool, KmsError>;
    async fn delete_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> Result<bool, KmsError>;
    async fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>, KmsError>;
    /// The aliases of an account and region (of one key with `key_id`), by name.
    async fn list_aliases(
        &self,
        account_id: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<AliasRecord>, KmsError>;

    /// Enabled keys with automatic rotation whose next rotation is at or before `now`.
    async fn due_rotations(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError>;
    async fn get_key(&self, loc: &KeyLocator) -> Result<Option<KeyRecord>, KmsError>;
    async fn list_keys(&self, account_id: &str, region: &str) -> Result<Vec<KeyRecord>, KmsError>;
    /// Read-modify-write of one key in a transaction; `Ok(None)` if the key does not exist.
    async fn update_key(
        &self,
        loc: &KeyLocator,
        mutation: KeyMutation,
    ) -> Result<Option<KeyRecord>, KmsError>;
    /// Deletes a key, its versions, tags and wrapping keys for good, but only if it is
    /// still PendingDeletion with a DeleteDate at or before `now` (so a CancelKeyDeletion
    /// that won the race is never undone). Returns whether it deleted.
    async fn delete_key_if_due(&self, loc: &KeyLocator, now: i64) -> Result<bool, KmsError>;
    async fn get_version(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> Result<Option<KeyVersionRecord>, KmsError>;
    async fn list_versions(&self, key_id: &str) -> Result<Vec<KeyVersionRecord>, KmsError>;
    /// Keys in PendingDeletion whose DeleteDate is at or before `now`.
    async fn due_deletions(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError>;
    /// Keys whose imported material expires at or before `now`.
    async fn due_material_expiry(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError>;

    async fn insert_wrapping_key(&self, wk: WrappingKeyRecord) -> Result<(), KmsError>;
    async fn get_wrapping_key(&self, id: &str) -> Result<Option<WrappingKeyRecord>, KmsError>;
    /// Counts a failed unwrap with a wrapping key and withdraws the key (its tokens stop
    /// working) once it has `max` failures; returns whether it was withdrawn.
    async fn record_unwrap_failure(&self, id: &str, max: i64) -> Result<bool, KmsError>;
    /// Removes wrapping keys whose tokens expired before `now`; returns how many.
    async fn purge_wrapping_keys(&self, now: i64) -> Result<u64, KmsError>;

    /// Claims a signature nonce (its digest) until `until` for every node sharing this
    /// store: false if another request already holds it. A store serving a single process
    /// (SQLite) leaves this to the in-memory nonce cache and always says yes.
    fn shares_nonces(&self) -> bool {
        false
    }
    async fn claim_nonce(&self, _digest: &[u8], _until: i64) -> Result<bool, KmsError> {
        Ok(true)
    }
    /// Forgets nonces whose time has passed; returns how many.
    async fn purge_nonces(&self, _now: i64) -> Result<u64, KmsError> {
        Ok(0)
    }

    /// Reads every row (for migration and its verification).
    async fn export(&self) -> Result<Dump, KmsError>;
    /// Writes every row of `dump` in one transaction into a store that holds no keys and no
    /// access keys yet.
    async fn import(&self, dump: Dump) -> Result<(), KmsError>;

    // ---- web console (console users and sessions) ----
    /// Adds a console user; false (and no change) if the name is taken.
    async fn insert_console_user(&self, user: ConsoleUserRecord) -> Result<bool, KmsError>;
    async fn get_console_user(&self, name: &str) -> Result<Option<ConsoleUserRecord>, KmsError>;
    /// All console users, by name.
    async fn list_console_users(&self) -> Result<Vec<ConsoleUserRecord>, KmsError>;
    /// Returns false if there is no such user.
    async fn delete_console_user(&self, name: &str) -> Result<bool, KmsError>;
    async fn insert_console_session(&self, s: ConsoleSessionRecord) -> Result<(), KmsError>;
    async fn get_console_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<ConsoleSessionRecord>, KmsError>;
    /// Sets `last_seen` to `now` (never moves it back). No error if the session is gone.
    async fn touch_console_session(&self, id_hash: &str, now: i64) -> Result<(), KmsError>;
    /// Ends a session (sign-out). No error if it is already gone.
    async fn delete_console_session(&self, id_hash: &str) -> Result<(), KmsError>;
    /// Removes sessions whose `last_seen` is before `idle_before`; returns how many.
    async fn purge_console_sessions(&self, idle_before: i64) -> Result<u64, KmsError>;
}
