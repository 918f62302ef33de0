//! Persistence, one trait per aggregate. The service never sees SQL.
//!
//! - The aggregates: [`MetaStore`], [`AccountStore`] (accounts and access keys),
//!   [`KeyStore`] (keys and their versions), [`TagStore`], [`AliasStore`], [`ImportStore`]
//!   (BYOK wrapping keys), [`ConsoleStore`] (web console users and sessions), [`NonceStore`]
//!   (signature nonces shared by several nodes), [`SecretStore`] (Secrets Manager) and [`DumpStore`] (every row, for
//!   `kms admin migrate-store`). [`Store`] bundles them; callers hold an `Arc<dyn Store>`.
//! - [`sql`] implements every aggregate once, over a small connection abstraction and a
//!   [`sql::Dialect`]; the engines ([`sqlite`], the embedded default, and [`postgres`], for
//!   several nodes on one database) supply only connections, transactions, change
//!   notifications and (PostgreSQL) the nonce-claim batching.
//! - [`cache::CachedStore`] puts a read-through cache in front of the hot reads.
//! - Failures are [`StoreError`], converted once into the API's error.
//!
//! State changes go through [`KeyStore::update_key`]: the store loads the key row under a
//! write lock inside a transaction, hands it to the service's closure (which applies the
//! state-machine rules and may return changes to key versions), and commits only if the
//! closure succeeds. Two racing changes therefore see each other's result.

pub mod cache;
mod delegate;
mod error;
pub mod postgres;
pub mod sql;
pub mod sqlite;
#[cfg(test)]
mod tests;

use async_trait::async_trait;

pub use crate::model::{
    AccessKeyRecord, AliasRecord, ConsoleSessionRecord, ConsoleUserRecord, KeyLocator, KeyRecord,
    KeyVersionRecord, RamEntityRecord, RamKind, RamLinkKind, RamLinkRecord, SecretRecord,
    SecretVersionMeta, SecretVersionRecord, StsSessionRecord, Tag, WrappingKeyRecord,
};
pub use delegate::Delegate;
pub use error::StoreError;

use crate::error::KmsError;

/// A store operation's result.
pub type StoreResult<T> = Result<T, StoreError>;

/// A change to key versions made together with a key update.
#[derive(Debug, Clone)]
pub enum VersionChange {
    SetMaterial {
        version_id: String,
        sealed_material: Option<Vec<u8>>,
    },
    Insert(KeyVersionRecord),
}

/// The service's read-modify-write step inside [`KeyStore::update_key`]. Its error refuses
/// the change (nothing is written) and comes back as [`StoreError::Refused`].
pub type KeyMutation =
    Box<dyn FnOnce(&mut KeyRecord) -> Result<Vec<VersionChange>, KmsError> + Send>;

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
    /// Secrets (Secrets Manager), by id.
    pub secrets: Vec<SecretRecord>,
    /// Secret versions (values still sealed), by secret id then version id.
    pub secret_versions: Vec<SecretVersionRecord>,
    /// (secret id, stage, version id), by secret id then stage.
    pub secret_stages: Vec<(String, String, String)>,
    /// (secret id, tag), by secret id then tag key.
    pub secret_tags: Vec<(String, Tag)>,
    /// RAM users, groups, roles and custom policies, by entity id.
    pub ram_entities: Vec<RamEntityRecord>,
    /// Memberships and attachments, by kind, source, target.
    pub ram_links: Vec<RamLinkRecord>,
    /// STS sessions (secrets sealed), by access key id.
    pub sts_sessions: Vec<StsSessionRecord>,
}

impl Dump {
    /// How many rows it holds.
    pub fn rows(&self) -> u64 {
        (self.meta.len()
            + self.accounts.len()
            + self.access_keys.len()
            + self.keys.len()
            + self.versions.len()
            + self.tags.len()
            + self.aliases.len()
            + self.wrapping_keys.len()
            + self.console_users.len()) as u64
    }

    /// Counts of each kind of row, for reports.
    pub fn summary(&self) -> String {
        // Secrets are named only when there are some (the line stays as it was without).
        let secrets = if self.secrets.is_empty() {
            String::new()
        } else {
            format!(
                "{} secrets, {} secret versions, ",
                self.secrets.len(),
                self.secret_versions.len()
            )
        };
        format!(
            "{} accounts, {} access keys, {} keys, {} key versions, {} aliases, {} tags, {} wrapping keys (import tokens), {} console users, {} RAM entities, {} RAM links, {} STS sessions, {secrets}{} metadata entries",
            self.accounts.len(),
            self.access_keys.len(),
            self.keys.len(),
            self.versions.len(),
            self.aliases.len(),
            self.tags.len(),
            self.wrapping_keys.len(),
            self.console_users.len(),
            self.ram_entities.len(),
            self.ram_links.len(),
            self.sts_sessions.len(),
            self.meta.len()
        )
    }
}

/// Named values of the installation (root key check value, default account).
#[async_trait]
pub trait MetaStore: Send + Sync {
    async fn get_meta(&self, name: &str) -> StoreResult<Option<String>>;
    async fn set_meta(&self, name: &str, value: &str) -> StoreResult<()>;
    /// Sets `name` to `value` unless it is already set; returns the value in force (so
    /// several nodes starting at once agree on one).
    async fn init_meta(&self, name: &str, value: &str) -> StoreResult<String>;
}

/// Accounts and their access keys.
#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn ensure_account(&self, account_id: &str, now: i64) -> StoreResult<()>;
    async fn insert_access_key(&self, ak: AccessKeyRecord) -> StoreResult<()>;
    async fn get_access_key(&self, id: &str) -> StoreResult<Option<AccessKeyRecord>>;
    /// By creation date, then id.
    async fn list_access_keys(&self) -> StoreResult<Vec<AccessKeyRecord>>;
    /// Returns false if there is no such access key.
    async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> StoreResult<bool>;
    async fn delete_access_key(&self, id: &str) -> StoreResult<bool>;
}

/// Keys and their versions.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Inserts a key with its first version and tags, unless the account already has
    /// `max_keys` keys in the region ([`StoreError::LimitExceeded`]).
    async fn insert_key(
        &self,
        key: KeyRecord,
        first: KeyVersionRecord,
        tags: Vec<Tag>,
        max_keys: i64,
    ) -> StoreResult<()>;
    /// Inserts many keys at once (bulk seeding for benchmarks), in as few transactions as
    /// the engine likes. No limit check.
    async fn insert_keys_bulk(&self, keys: Vec<(KeyRecord, KeyVersionRecord)>) -> StoreResult<()>;
    /// One page of an account's keys in a region, in creation order, as ListKeys shows them
    /// at `now` (keys past their deletion date left out, expired material as PendingImport:
    /// [`KeyRecord::as_of`]), filtered by `filters` (field, accepted wire values), and the
    /// total that match.
    async fn list_keys_page(
        &self,
        account_id: &str,
        region: &str,
        now: i64,
        filters: &[(KeyField, Vec<String>)],
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<KeyRecord>, usize)>;
    async fn get_key(&self, loc: &KeyLocator) -> StoreResult<Option<KeyRecord>>;
    /// By creation date, then id.
    async fn list_keys(&self, account_id: &str, region: &str) -> StoreResult<Vec<KeyRecord>>;
    /// Read-modify-write of one key in a transaction; `Ok(None)` if the key does not exist.
    async fn update_key(
        &self,
        loc: &KeyLocator,
        mutation: KeyMutation,
    ) -> StoreResult<Option<KeyRecord>>;
    /// Deletes a key, its versions, tags, aliases and wrapping keys for good, but only if it
    /// is still PendingDeletion with a DeleteDate at or before `now` (so a CancelKeyDeletion
    /// that won the race is never undone). Returns whether it deleted.
    async fn delete_key_if_due(&self, loc: &KeyLocator, now: i64) -> StoreResult<bool>;
    async fn get_version(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<KeyVersionRecord>>;
    /// [`KeyStore::get_key`], shared: a cache hands out the row it holds without copying
    /// it (the crypto actions' hot path). The default wraps the owned row.
    async fn get_key_shared(
        &self,
        loc: &KeyLocator,
    ) -> StoreResult<Option<std::sync::Arc<KeyRecord>>> {
        Ok(self.get_key(loc).await?.map(std::sync::Arc::new))
    }
    /// The row a cache holds fresh, without I/O or a future: the crypto actions try this
    /// before [`KeyStore::get_key_shared`] (whose boxed future costs an allocation a call).
    /// `None` from a store without a cache, or when the cache does not hold it.
    fn peek_key_shared(&self, _loc: &KeyLocator) -> Option<std::sync::Arc<KeyRecord>> {
        None
    }
    /// [`KeyStore::peek_key_shared`] for a version.
    fn peek_version_shared(
        &self,
        _key_id: &str,
        _version_id: &str,
    ) -> Option<std::sync::Arc<KeyVersionRecord>> {
        None
    }
    /// [`KeyStore::get_version`], shared (see [`KeyStore::get_key_shared`]).
    async fn get_version_shared(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<std::sync::Arc<KeyVersionRecord>>> {
        Ok(self
            .get_version(key_id, version_id)
            .await?
            .map(std::sync::Arc::new))
    }
    /// In creation order.
    async fn list_versions(&self, key_id: &str) -> StoreResult<Vec<KeyVersionRecord>>;
    /// Enabled keys with automatic rotation whose next rotation is at or before `now`.
    async fn due_rotations(&self, now: i64) -> StoreResult<Vec<KeyLocator>>;
    /// Keys in PendingDeletion whose DeleteDate is at or before `now`.
    async fn due_deletions(&self, now: i64) -> StoreResult<Vec<KeyLocator>>;
    /// Keys whose imported material expires at or before `now`.
    async fn due_material_expiry(&self, now: i64) -> StoreResult<Vec<KeyLocator>>;
    /// How many keys there are by stored state and origin, over every account (one
    /// aggregate query, for the metrics); combinations without keys are left out.
    async fn count_keys_by_state(&self) -> StoreResult<Vec<KeyCount>>;
}

/// One row of [`KeyStore::count_keys_by_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCount {
    pub state: crate::model::KeyState,
    pub origin: crate::model::Origin,
    pub keys: u64,
}

/// Tags on keys.
#[async_trait]
pub trait TagStore: Send + Sync {
    /// By tag key.
    async fn list_tags(&self, key_id: &str) -> StoreResult<Vec<Tag>>;
    /// Adds or replaces tags on a key, unless it would then have more than `max` tags (then
    /// nothing changes).
    async fn put_tags(&self, key_id: &str, tags: Vec<Tag>, max: usize) -> StoreResult<()>;
    /// Removes the named tags (all tags with `None`).
    async fn remove_tags(&self, key_id: &str, tag_keys: Option<Vec<String>>) -> StoreResult<()>;
    /// Every (key id, tag) of an account's keys in a region, by key id then tag key.
    async fn list_account_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<(String, Tag)>>;
}

/// Aliases: `alias/<name>` → key, unique per account and region.
#[async_trait]
pub trait AliasStore: Send + Sync {
    /// Creates an alias: [`StoreError::AliasExists`] if the name is taken,
    /// [`StoreError::LimitExceeded`] if the key already has `max_per_key` aliases.
    async fn create_alias(&self, alias: AliasRecord, max_per_key: i64) -> StoreResult<()>;
    /// Re-points an alias (the limit applies to the new key); false if there is no such
    /// alias.
    async fn update_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        key_id: &str,
        max_per_key: i64,
    ) -> StoreResult<bool>;
    async fn delete_alias(&self, account_id: &str, region: &str, name: &str) -> StoreResult<bool>;
    async fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>>;
    /// The aliases of an account and region (of one key with `key_id`), by name.
    async fn list_aliases(
        &self,
        account_id: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> StoreResult<Vec<AliasRecord>>;
}

/// BYOK wrapping keys (one per import token).
///
/// Unwrap attempts are claimed before they are made: a claim counts as a failure from the
/// start and is given back only when the attempt succeeds, so however many requests race on
/// one token, no more than `max` unwraps are ever attempted with it (and a process that dies
/// mid-attempt leaves it counted, failing closed).
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Inserts a wrapping key (a new import token), then withdraws the oldest wrapping keys
    /// of its key beyond the newest `max_per_key` (never the new one); returns how many.
    async fn insert_wrapping_key(
        &self,
        wk: WrappingKeyRecord,
        max_per_key: i64,
    ) -> StoreResult<u64>;
    async fn get_wrapping_key(&self, id: &str) -> StoreResult<Option<WrappingKeyRecord>>;
    /// Claims one unwrap attempt with wrapping key `id` of key `key_id` for `algorithm`,
    /// atomically: `None` (nothing counted) if there is no such wrapping key or it already
    /// counts `max` attempts, else the wrapping key, with the attempt counted as failed.
    async fn claim_unwrap_attempt(
        &self,
        id: &str,
        key_id: &str,
        algorithm: &str,
        max: i64,
    ) -> StoreResult<Option<WrappingKeyRecord>>;
    /// Settles a claimed attempt: a success is given back; after a failure the wrapping key
    /// is withdrawn (its token then answers `InvalidImportToken`) once it counts `max`.
    /// Returns whether it was withdrawn.
    async fn finish_unwrap_attempt(&self, id: &str, succeeded: bool, max: i64)
        -> StoreResult<bool>;
    /// Removes wrapping keys whose tokens expired before `now`; returns how many.
    async fn purge_wrapping_keys(&self, now: i64) -> StoreResult<u64>;
}

/// Web console users and sessions.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// Adds a console user; false (and no change) if the name is taken.
    async fn insert_console_user(&self, user: ConsoleUserRecord) -> StoreResult<bool>;
    async fn get_console_user(&self, name: &str) -> StoreResult<Option<ConsoleUserRecord>>;
    /// All console users, by name.
    async fn list_console_users(&self) -> StoreResult<Vec<ConsoleUserRecord>>;
    /// Returns false if there is no such user.
    async fn delete_console_user(&self, name: &str) -> StoreResult<bool>;
    async fn insert_console_session(&self, s: ConsoleSessionRecord) -> StoreResult<()>;
    async fn get_console_session(&self, id_hash: &str)
        -> StoreResult<Option<ConsoleSessionRecord>>;
    /// Sets `last_seen` to `now` (never moves it back). No error if the session is gone.
    async fn touch_console_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    /// Ends a session (sign-out). No error if it is already gone.
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Removes sessions whose `last_seen` is before `idle_before`; returns how many.
    async fn purge_console_sessions(&self, idle_before: i64) -> StoreResult<u64>;
}

/// What links an entity has, handed to a [`RamMutation`] so that it can refuse a delete
/// (RAM's `DeleteConflict.*`) under the same lock as the delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RamUsage {
    /// Links whose source or target is the entity.
    pub links: Vec<RamLinkRecord>,
    /// Access keys of the entity (a RAM user's).
    pub access_keys: i64,
}

/// What a [`RamMutation`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamWrite {
    /// Nothing to write.
    Keep,
    /// Write the (changed) record back; a new name that is taken fails with
    /// [`StoreError::Duplicate`].
    Update,
    /// Delete the entity with its links (and, for a user, its access keys).
    Delete,
}

/// The service's read-modify-write step of [`RamStore::update_ram_entity`]; its error
/// refuses the change and comes back as [`StoreError::Refused`].
pub type RamMutation =
    Box<dyn FnOnce(&mut RamEntityRecord, &RamUsage) -> Result<RamWrite, KmsError> + Send>;

/// RAM identities (users, groups, roles, custom policies, their links) and STS sessions.
/// Every write announces [`cache::Change::Ram`], so caches of compiled policies on every
/// node start over.
#[async_trait]
pub trait RamStore: Send + Sync {
    /// Inserts an entity: [`StoreError::Duplicate`] if its name is taken in its account and
    /// kind, [`StoreError::LimitExceeded`] if the account already has `max` of the kind.
    async fn insert_ram_entity(&self, e: RamEntityRecord, max: i64) -> StoreResult<()>;
    async fn get_ram_entity(
        &self,
        account_id: &str,
        kind: RamKind,
        name: &str,
    ) -> StoreResult<Option<RamEntityRecord>>;
    async fn get_ram_entity_by_id(&self, entity_id: &str) -> StoreResult<Option<RamEntityRecord>>;
    /// An account's entities of a kind, by name.
    async fn list_ram_entities(
        &self,
        account_id: &str,
        kind: RamKind,
    ) -> StoreResult<Vec<RamEntityRecord>>;
    /// Read-modify-write (or delete) of one entity in a transaction; `Ok(None)` if there is
    /// no such entity. Returns the record as written (as it was, for a delete).
    async fn update_ram_entity(
        &self,
        account_id: &str,
        kind: RamKind,
        name: &str,
        mutation: RamMutation,
    ) -> StoreResult<Option<RamEntityRecord>>;
    /// Adds a link (that both ends exist is the caller's check): [`StoreError::Duplicate`]
    /// if it exists, [`StoreError::LimitExceeded`] if its source already has `max` links of
    /// the kind whose target is of the same sort as this one's (`system:<Name>` or not).
    async fn add_ram_link(&self, link: RamLinkRecord, max: i64) -> StoreResult<()>;
    /// Returns false if there was no such link.
    async fn remove_ram_link(
        &self,
        kind: RamLinkKind,
        source_id: &str,
        target_id: &str,
    ) -> StoreResult<bool>;
    /// Links of a kind from `source_id` or to `target_id` (whichever is given; both: that
    /// one link), by creation then ids.
    async fn list_ram_links(
        &self,
        kind: RamLinkKind,
        source_id: Option<&str>,
        target_id: Option<&str>,
    ) -> StoreResult<Vec<RamLinkRecord>>;
    /// The access keys of a RAM user, by creation date.
    async fn list_user_access_keys(&self, user_id: &str) -> StoreResult<Vec<AccessKeyRecord>>;
    /// Inserts an access key of a RAM user unless the user already has `max` (then
    /// [`StoreError::LimitExceeded`]).
    async fn insert_user_access_key(&self, ak: AccessKeyRecord, max: i64) -> StoreResult<()>;
    async fn insert_sts_session(&self, s: StsSessionRecord) -> StoreResult<()>;
    async fn get_sts_session(&self, access_key_id: &str) -> StoreResult<Option<StsSessionRecord>>;
    /// Removes sessions expired before `now`; returns how many.
    async fn purge_sts_sessions(&self, now: i64) -> StoreResult<u64>;
    /// A number that changes whenever RAM data or an access key changes (here or,
    /// announced, on another node): what the caches of compiled policies and of resolved
    /// access keys key on. None: this store cannot tell (do not cache).
    fn ram_epoch(&self) -> Option<u64> {
        None
    }
}

/// How far a signed timestamp may be from the server's time (the signature time check), so
/// how long after its timestamp a shared nonce claim must be kept.
pub const NONCE_WINDOW_SECONDS: i64 = 15 * 60;

/// Signature nonces shared by every node on one database.
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Whether this store shares nonces between processes. A store serving a single process
    /// (SQLite) leaves replay protection to the in-memory nonce cache.
    fn shares_nonces(&self) -> bool {
        false
    }
    /// Claims a signature nonce (its digest) of a request signed at `timestamp` (the
    /// request's own signed time, so a replay claims exactly what the original did) for
    /// every node sharing this store: false if another request already holds it. A claim is
    /// kept at least until `timestamp` could no longer pass the time check
    /// ([`NONCE_WINDOW_SECONDS`] after it). Always yes where nothing is shared.
    async fn claim_nonce(&self, _digest: &[u8], _timestamp: i64) -> StoreResult<bool> {
        Ok(true)
    }
    /// Forgets claims whose requests' timestamps could no longer pass the time check at
    /// `now`; returns how many groups of claims (PostgreSQL: tables) were dropped.
    async fn purge_nonces(&self, _now: i64) -> StoreResult<u64> {
        Ok(0)
    }
}

/// A change to a secret's versions made together with a secret update.
#[derive(Debug, Clone)]
pub enum SecretChange {
    InsertVersion(SecretVersionRecord),
    DeleteVersion(String),
}

/// The service's read-modify-write step inside [`SecretStore::update_secret`]: it gets the
/// secret and its versions (with their stages, which it may edit; the store writes the
/// stages back as they are when it returns). Its error refuses the change (nothing is
/// written) and comes back as [`StoreError::Refused`].
pub type SecretMutation = Box<
    dyn FnOnce(
            &mut SecretRecord,
            &mut Vec<SecretVersionMeta>,
        ) -> Result<Vec<SecretChange>, KmsError>
        + Send,
>;

/// Secrets (Secrets Manager): metadata, sealed versions, stages and tags. The secret row and
/// the versions GetSecretValue reads are cached ([`cache::CachedStore`]); every write announces
/// [`cache::Change::Secret`], so other nodes drop what they hold of that secret.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Inserts a secret with its first version (stages `stages`) and tags, unless the account
    /// already has `max_secrets` secrets in the region ([`StoreError::LimitExceeded`]) or the
    /// name is taken ([`StoreError::Duplicate`]).
    async fn insert_secret(
        &self,
        secret: SecretRecord,
        first: SecretVersionRecord,
        stages: Vec<String>,
        tags: Vec<Tag>,
        max_secrets: i64,
    ) -> StoreResult<()>;
    async fn get_secret(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<SecretRecord>>;
    /// An account's secrets in a region, by creation date then name.
    async fn list_secrets(&self, account_id: &str, region: &str) -> StoreResult<Vec<SecretRecord>>;
    /// Read-modify-write of one secret in a transaction; `Ok(None)` if there is no such
    /// secret. Returns the secret and its versions as written.
    async fn update_secret(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        mutation: SecretMutation,
    ) -> StoreResult<Option<(SecretRecord, Vec<SecretVersionMeta>)>>;
    /// One version with its sealed value.
    async fn get_secret_version(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<SecretVersionRecord>>;
    /// The version holding `stage`.
    async fn get_secret_version_by_stage(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> StoreResult<Option<SecretVersionRecord>>;
    /// A secret's versions with their stages, newest first.
    async fn list_secret_versions(&self, secret_id: &str) -> StoreResult<Vec<SecretVersionMeta>>;
    /// Deletes a secret with its versions, stages and tags now; false if it was not there.
    async fn delete_secret(&self, secret_id: &str) -> StoreResult<bool>;
    /// Deletes a secret only if it is in its recovery window and the window ended at or
    /// before `now` (a RestoreSecret that won the race is never undone).
    async fn delete_secret_if_due(&self, secret_id: &str, now: i64) -> StoreResult<bool>;
    /// Secrets whose recovery window ended at or before `now`.
    async fn due_secret_deletions(&self, now: i64) -> StoreResult<Vec<String>>;
    /// A secret's tags, by tag key.
    async fn list_secret_tags(&self, secret_id: &str) -> StoreResult<Vec<Tag>>;
    /// Adds or replaces tags, unless the secret would then have more than `max`.
    async fn put_secret_tags(&self, secret_id: &str, tags: Vec<Tag>, max: usize)
        -> StoreResult<()>;
    /// Removes the named tags (all with `None`).
    async fn remove_secret_tags(
        &self,
        secret_id: &str,
        tag_keys: Option<Vec<String>>,
    ) -> StoreResult<()>;
    /// Every (secret id, tag) of an account's secrets in a region.
    async fn list_account_secret_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<(String, Tag)>>;

    /// [`SecretStore::get_secret`], shared: a cache hands out the row it holds without
    /// copying it (GetSecretValue's hot path). The default wraps the owned row.
    async fn get_secret_shared(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<std::sync::Arc<SecretRecord>>> {
        Ok(self
            .get_secret(account_id, region, name)
            .await?
            .map(std::sync::Arc::new))
    }
    /// [`SecretStore::get_secret_version`], shared (see [`SecretStore::get_secret_shared`]).
    async fn get_secret_version_shared(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<std::sync::Arc<SecretVersionRecord>>> {
        Ok(self
            .get_secret_version(secret_id, version_id)
            .await?
            .map(std::sync::Arc::new))
    }
    /// [`SecretStore::list_secret_versions`], shared (see
    /// [`SecretStore::get_secret_shared`]).
    async fn list_secret_versions_shared(
        &self,
        secret_id: &str,
    ) -> StoreResult<std::sync::Arc<Vec<SecretVersionMeta>>> {
        Ok(std::sync::Arc::new(
            self.list_secret_versions(secret_id).await?,
        ))
    }

    /// The opened value of a secret version whose sealed data key is `sealed_data_key`, if
    /// this store holds one younger than its cache lifetime at `now` (Unix seconds, the
    /// service's clock). Only a cache holds them ([`cache::CachedStore`]); the default holds
    /// none. The caller still checks the encryption key's state on every use.
    fn cached_secret_value(
        &self,
        _secret_id: &str,
        _version_id: &str,
        _sealed_data_key: &[u8],
        _now: i64,
    ) -> Option<std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>> {
        None
    }

    /// Offers the opened value of a secret version (`key_id`: the key that sealed its data
    /// key) to the cache, which keeps it, zeroizing, only alongside its cached version and
    /// drops it with that secret, with its key, or after its lifetime. The default keeps
    /// nothing.
    fn keep_secret_value(
        &self,
        _secret_id: &str,
        _version_id: &str,
        _key_id: &str,
        _sealed_data_key: &[u8],
        _value: &[u8],
        _now: i64,
    ) {
    }
}

/// Every row at once, for `kms admin migrate-store`.
#[async_trait]
pub trait DumpStore: Send + Sync {
    /// Reads every row (for migration and its verification), from one snapshot.
    async fn export(&self) -> StoreResult<Dump>;
    /// Writes every row of `dump` in one transaction into a store that holds no keys and no
    /// access keys yet ([`StoreError::NotEmpty`] otherwise).
    async fn import(&self, dump: Dump) -> StoreResult<()> {
        self.import_with_progress(dump, crate::progress::Progress::hidden())
            .await
    }
    /// [`DumpStore::import`], moving `progress` on by one per row written (see
    /// [`Dump::rows`]).
    async fn import_with_progress(
        &self,
        dump: Dump,
        progress: crate::progress::Progress,
    ) -> StoreResult<()>;
}

/// A column of sealed values, for a root-key rotation (`crate::rotation` lists them all):
/// its table, the table's primary-key columns (text), and the column (a blob; NULL means
/// nothing sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedColumn {
    pub table: &'static str,
    pub key: &'static [&'static str],
    pub column: &'static str,
}

/// One sealed value of a [`SealedColumn`]: its row's primary key and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub key: Vec<String>,
    pub sealed: Vec<u8>,
}

/// What a root-key rotation needs from the store: every sealed value, page by page, and
/// replacing them in transactions.
#[async_trait]
pub trait SealedStore: Send + Sync {
    /// Up to `limit` sealed (non-NULL) values of `col` whose row comes after the primary key
    /// `after` (all rows when `None`), in primary-key order.
    async fn sealed_page(
        &self,
        col: SealedColumn,
        after: Option<Vec<String>>,
        limit: i64,
    ) -> StoreResult<Vec<SealedValue>>;
    /// In one transaction: each value still equal to the one read becomes the new one (a row
    /// changed or removed meanwhile is left alone); returns how many were replaced.
    async fn reseal(
        &self,
        col: SealedColumn,
        changes: Vec<(SealedValue, Vec<u8>)>,
    ) -> StoreResult<u64>;
    /// In one transaction: sets the entries of `set` and removes those named in `remove`.
    async fn change_meta(&self, set: Vec<(String, String)>, remove: Vec<String>)
        -> StoreResult<()>;
}

/// All the aggregates: what the service, console, server and admin commands hold (as
/// `Arc<dyn Store>`). Implemented for every type that implements each aggregate.
pub trait Store:
    MetaStore
    + AccountStore
    + KeyStore
    + TagStore
    + AliasStore
    + ImportStore
    + ConsoleStore
    + NonceStore
    + DumpStore
    + SecretStore
    + RamStore
    + SealedStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: MetaStore
        + AccountStore
        + KeyStore
        + TagStore
        + AliasStore
        + ImportStore
        + ConsoleStore
        + NonceStore
        + DumpStore
        + SecretStore
        + RamStore
        + SealedStore
        + Send
        + Sync
        + 'static
{
}
