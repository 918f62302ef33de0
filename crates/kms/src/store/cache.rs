//! A read-through cache in front of any [`Store`], so the hot path (Encrypt, Decrypt,
//! GenerateDataKey, DescribeKey on a warm key) makes no database round trip.
//!
//! Cached: key rows, key versions (their material stays *sealed* in the cache; it is opened
//! per request, which costs well under a microsecond), and aliases. Every mutation that goes
//! through this store invalidates what it touches. A generation counter closes the race
//! where a reader loads an old row just before a writer invalidates it: a read only fills the
//! cache if no invalidation happened since it started. Entries also expire after a bounded
//! lifetime, the safety net for changes made by other processes (other server nodes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::*;

/// Entries are dropped wholesale past this many, to bound memory.
const MAX_ENTRIES: usize = 200_000;

struct Entry<T> {
    value: T,
    at: Instant,
}

type AliasKey = (String, String, String);

/// Opened secret values are dropped wholesale past this many (each zeroized on drop).
const MAX_DATA_KEYS: usize = 10_000;

/// The opened value of one secret version (no `Debug`: it must never be printed). Holding
/// the value rather than its data key spares every read the AES key schedule and the
/// decryption; it is no more exposure than the data key it opens with (and the sealed value
/// beside it), and it goes with the version, the secret, its key or its lifetime.
struct DataKeyEntry {
    /// The key that sealed it: a change of that key drops it.
    key_id: String,
    /// The sealed data key of the version it is the value of: it answers for that blob only.
    sealed: Vec<u8>,
    /// Shared with the requests using it (no copy per request); zeroized when the last
    /// holder drops it.
    value: Arc<zeroize::Zeroizing<Vec<u8>>>,
    /// When it was opened, on the service's clock (Unix seconds).
    at: i64,
}
/// Key versions, shared, by (key id, version id).
type KeyVersionMap = RwLock<HashMap<(String, String), Entry<Arc<KeyVersionRecord>>>>;
/// (account, region, secret name).
type SecretKey = (String, String, String);
/// Secret versions, shared, by (secret id, version id or stage).
type VersionMap = RwLock<HashMap<(String, String), Entry<Arc<SecretVersionRecord>>>>;

pub struct CachedStore {
    inner: Arc<dyn Store>,
    ttl: Duration,
    generation: AtomicU64,
    /// Key rows and versions, held as `Arc`s: handed out shared to the crypto actions
    /// (`get_key_shared`, `get_version_shared`) and copied only for the owned reads.
    keys: RwLock<HashMap<String, Entry<Arc<KeyRecord>>>>,
    versions: KeyVersionMap,
    aliases: RwLock<HashMap<AliasKey, Entry<AliasRecord>>>,
    /// Access keys (secret still sealed), for at most [`ACCESS_KEY_TTL`]: `kms admin` may
    /// change them from another process.
    access_keys: RwLock<HashMap<String, Entry<AccessKeyRecord>>>,
    /// Secret rows by (account, region, name), and their versions by (secret id, version
    /// id) and (secret id, stage); values stay sealed. Dropped by [`Change::Secret`].
    /// Rows, versions and version lists are held as `Arc`s, handed out shared to
    /// GetSecretValue (the `*_shared` reads) and copied only for the owned reads.
    secrets: RwLock<HashMap<SecretKey, Entry<Arc<SecretRecord>>>>,
    secret_versions: VersionMap,
    secret_stages: VersionMap,
    /// A secret's versions with their stages (no values), by secret id.
    secret_version_lists: RwLock<HashMap<String, Entry<Arc<Vec<SecretVersionMeta>>>>>,
    /// Opened data keys by (secret id, version id), kept only alongside their cached
    /// version, at most [`MAX_DATA_KEYS`]; dropped (zeroized) with their secret, with the
    /// key that sealed them, and after the cache lifetime on the service's clock.
    data_keys: RwLock<HashMap<(String, String), DataKeyEntry>>,
    /// Bumped by every RAM or access-key change (here, or announced by another node).
    ram_epoch: AtomicU64,
    /// Lookups answered from the cache, and those that went to the store (for the metrics).
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Lifetime of a cached access key: a key disabled or deleted with `kms admin` (another
/// process) stops working within this time; changes through this store take effect at once.
pub const ACCESS_KEY_TTL: Duration = Duration::from_secs(1);

/// A (String, String) map key looked up as a pair of `&str`, without building the owned
/// key (GetSecretValue's hot path looks up a few per request). Hashes and compares exactly
/// as the tuple does (`Hash` for a tuple hashes its fields in order), as `Borrow` requires.
trait StrPair {
    fn pair(&self) -> (&str, &str);
}
impl StrPair for (String, String) {
    fn pair(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}
impl StrPair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}
impl<'a> std::borrow::Borrow<dyn StrPair + 'a> for (String, String) {
    fn borrow(&self) -> &(dyn StrPair + 'a) {
        self
    }
}
impl std::hash::Hash for dyn StrPair + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pair().hash(state);
    }
}
impl PartialEq for dyn StrPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}
impl Eq for dyn StrPair + '_ {}

/// [`StrPair`] for the (account, region, name) keys of secrets.
trait StrTriple {
    fn triple(&self) -> (&str, &str, &str);
}
impl StrTriple for SecretKey {
    fn triple(&self) -> (&str, &str, &str) {
        (&self.0, &self.1, &self.2)
    }
}
impl StrTriple for (&str, &str, &str) {
    fn triple(&self) -> (&str, &str, &str) {
        (self.0, self.1, self.2)
    }
}
impl<'a> std::borrow::Borrow<dyn StrTriple + 'a> for SecretKey {
    fn borrow(&self) -> &(dyn StrTriple + 'a) {
        self
    }
}
impl std::hash::Hash for dyn StrTriple + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.triple().hash(state);
    }
}
impl PartialEq for dyn StrTriple + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.triple() == other.triple()
    }
}
impl Eq for dyn StrTriple + '_ {}

fn get_fresh<K, Q, T: Clone>(
    map: &RwLock<HashMap<K, Entry<T>>>,
    key: &Q,
    ttl: Duration,
) -> Option<T>
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    let m = map.read().ok()?;
    let e = m.get(key)?;
    (e.at.elapsed() < ttl).then(|| e.value.clone())
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            generation: AtomicU64::new(0),
            keys: RwLock::new(HashMap::new()),
            versions: RwLock::new(HashMap::new()),
            aliases: RwLock::new(HashMap::new()),
            access_keys: RwLock::new(HashMap::new()),
            secrets: RwLock::new(HashMap::new()),
            secret_versions: RwLock::new(HashMap::new()),
            secret_stages: RwLock::new(HashMap::new()),
            secret_version_lists: RwLock::new(HashMap::new()),
            data_keys: RwLock::new(HashMap::new()),
            ram_epoch: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// (hits, misses) of the cached lookups (keys, versions, aliases, access keys) since
    /// start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// [`get_fresh`], counted as a hit or a miss.
    fn lookup<K, Q, T: Clone>(
        &self,
        map: &RwLock<HashMap<K, Entry<T>>>,
        key: &Q,
        ttl: Duration,
    ) -> Option<T>
    where
        K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let found = get_fresh(map, key, ttl);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn fill<K: std::hash::Hash + Eq, T>(
        &self,
        map: &RwLock<HashMap<K, Entry<T>>>,
        gen: u64,
        key: K,
        value: T,
    ) {
        if let Ok(mut m) = map.write() {
            if self.generation.load(Ordering::SeqCst) != gen {
                return;
            }
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.insert(
                key,
                Entry {
                    value,
                    at: Instant::now(),
                },
            );
        }
    }

    /// Forgets a key, its versions, and (with `aliases`) the aliases pointing at it.
    fn invalidate_key(&self, key_id: &str, aliases: bool) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.keys.write() {
            m.remove(key_id);
        }
        if let Ok(mut m) = self.versions.write() {
            m.retain(|(k, _), _| k != key_id);
        }
        if aliases {
            if let Ok(mut m) = self.aliases.write() {
                m.retain(|_, e| e.value.key_id != key_id);
            }
        }
        if let Ok(mut m) = self.data_keys.write() {
            m.retain(|_, e| e.key_id != key_id);
        }
    }

    /// Forgets a secret (by id: its row under any name) and its versions and stages.
    fn invalidate_secret(&self, secret_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.secrets.write() {
            m.retain(|_, e| e.value.secret_id != secret_id);
        }
        for map in [&self.secret_versions, &self.secret_stages] {
            if let Ok(mut m) = map.write() {
                m.retain(|(s, _), _| s != secret_id);
            }
        }
        if let Ok(mut m) = self.secret_version_lists.write() {
            m.remove(secret_id);
        }
        if let Ok(mut m) = self.data_keys.write() {
            m.retain(|(s, _), _| s != secret_id);
        }
    }

    /// Whether a data key opened at `at` is still young at `now` (whole seconds: a lifetime
    /// under one second keeps none; a clock moved back keeps none either).
    fn data_key_fresh(&self, at: i64, now: i64) -> bool {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        at <= now && now - at < ttl
    }

    fn invalidate_alias(&self, account_id: &str, region: &str, name: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.aliases.write() {
            m.remove(&(account_id.to_string(), region.to_string(), name.to_string()));
        }
    }

    /// Applies a change notification from another node ([`Change::parse`]); `None` (the
    /// connection was lost) or an unknown payload forgets everything.
    pub fn apply_remote(&self, payload: Option<&str>) {
        match payload.map_or(Change::All, Change::parse) {
            Change::Key(key_id) => self.invalidate_key(key_id, true),
            Change::AccessKey(id) => self.invalidate_access_key(id),
            Change::Alias(account, region, name) => self.invalidate_alias(account, region, name),
            Change::Secret(secret_id) => self.invalidate_secret(secret_id),
            Change::Ram => self.invalidate_ram(),
            Change::All => self.invalidate_all(),
        }
    }

    /// Also moves the RAM epoch (last, once the record is gone): the service's cache of
    /// resolved access keys ([`crate::service::sts::AuthCache`]) is keyed on it.
    fn invalidate_access_key(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.access_keys.write() {
            m.remove(id);
        }
        self.ram_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Forgets everything (used when another node announces changes it cannot name).
    /// RAM data changed: compiled policies keyed on [`RamStore::ram_epoch`] start over.
    /// Access keys too (a RAM user's key may have been deleted with its user).
    /// The epoch moves last, so whoever reads the new epoch finds the access keys gone.
    pub fn invalidate_ram(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.access_keys.write() {
            m.clear();
        }
        self.ram_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.access_keys.write() {
            m.clear();
        }
        self.ram_epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.keys.write() {
            m.clear();
        }
        if let Ok(mut m) = self.versions.write() {
            m.clear();
        }
        if let Ok(mut m) = self.aliases.write() {
            m.clear();
        }
        if let Ok(mut m) = self.secrets.write() {
            m.clear();
        }
        for map in [&self.secret_versions, &self.secret_stages] {
            if let Ok(mut m) = map.write() {
                m.clear();
            }
        }
        if let Ok(mut m) = self.secret_version_lists.write() {
            m.clear();
        }
        if let Ok(mut m) = self.data_keys.write() {
            m.clear();
        }
    }
}

impl Delegate for CachedStore {
    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}

#[async_trait]
impl AccountStore for CachedStore {
    async fn get_access_key(&self, id: &str) -> StoreResult<Option<AccessKeyRecord>> {
        let ttl = self.ttl.min(ACCESS_KEY_TTL);
        if let Some(ak) = self.lookup(&self.access_keys, &id.to_string(), ttl) {
            return Ok(Some(ak));
        }
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self.inner.get_access_key(id).await?;
        if let Some(ak) = &found {
            self.fill(&self.access_keys, gen, ak.access_key_id.clone(), ak.clone());
        }
        Ok(found)
    }
    async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> StoreResult<bool> {
        let r = self.inner.set_access_key_enabled(id, enabled).await;
        self.invalidate_access_key(id);
        r
    }
    async fn delete_access_key(&self, id: &str) -> StoreResult<bool> {
        let r = self.inner.delete_access_key(id).await;
        self.invalidate_access_key(id);
        r
    }
    // Not cached:
    async fn ensure_account(&self, account_id: &str, now: i64) -> StoreResult<()> {
        self.inner.ensure_account(account_id, now).await
    }
    async fn insert_access_key(&self, ak: AccessKeyRecord) -> StoreResult<()> {
        self.inner.insert_access_key(ak).await
    }
    async fn list_access_keys(&self) -> StoreResult<Vec<AccessKeyRecord>> {
        self.inner.list_access_keys().await
    }
}

#[async_trait]
impl KeyStore for CachedStore {
    async fn get_key(&self, loc: &KeyLocator) -> StoreResult<Option<KeyRecord>> {
        Ok(self.get_key_shared(loc).await?.map(Arc::unwrap_or_clone))
    }
    fn peek_key_shared(&self, loc: &KeyLocator) -> Option<Arc<KeyRecord>> {
        let k = get_fresh(&self.keys, loc.key_id.as_str(), self.ttl)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        (k.account_id == loc.account_id && k.region == loc.region).then_some(k)
    }
    fn peek_version_shared(&self, key_id: &str, version_id: &str) -> Option<Arc<KeyVersionRecord>> {
        let borrowed: &dyn StrPair = &(key_id, version_id);
        let v = get_fresh(&self.versions, borrowed, self.ttl)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(v)
    }
    async fn get_key_shared(&self, loc: &KeyLocator) -> StoreResult<Option<Arc<KeyRecord>>> {
        if let Some(k) = self.lookup(&self.keys, loc.key_id.as_str(), self.ttl) {
            if k.account_id == loc.account_id && k.region == loc.region {
                return Ok(Some(k));
            }
            return Ok(None);
        }
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self.inner.get_key(loc).await?.map(Arc::new);
        if let Some(k) = &found {
            self.fill(&self.keys, gen, k.key_id.clone(), k.clone());
        }
        Ok(found)
    }
    async fn update_key(
        &self,
        loc: &KeyLocator,
        mutation: KeyMutation,
    ) -> StoreResult<Option<KeyRecord>> {
        let result = self.inner.update_key(loc, mutation).await;
        self.invalidate_key(&loc.key_id, false);
        result
    }
    async fn delete_key_if_due(&self, loc: &KeyLocator, now: i64) -> StoreResult<bool> {
        let result = self.inner.delete_key_if_due(loc, now).await;
        self.invalidate_key(&loc.key_id, true);
        result
    }
    async fn get_version(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<KeyVersionRecord>> {
        Ok(self
            .get_version_shared(key_id, version_id)
            .await?
            .map(Arc::unwrap_or_clone))
    }
    async fn get_version_shared(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<Arc<KeyVersionRecord>>> {
        let borrowed: &dyn StrPair = &(key_id, version_id);
        if let Some(v) = self.lookup(&self.versions, borrowed, self.ttl) {
            return Ok(Some(v));
        }
        let k = (key_id.to_string(), version_id.to_string());
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self
            .inner
            .get_version(key_id, version_id)
            .await?
            .map(Arc::new);
        if let Some(v) = &found {
            self.fill(&self.versions, gen, k, v.clone());
        }
        Ok(found)
    }
    // Not cached:
    async fn insert_key(
        &self,
        key: KeyRecord,
        first: KeyVersionRecord,
        tags: Vec<Tag>,
        max_keys: i64,
    ) -> StoreResult<()> {
        self.inner.insert_key(key, first, tags, max_keys).await
    }
    async fn insert_keys_bulk(&self, keys: Vec<(KeyRecord, KeyVersionRecord)>) -> StoreResult<()> {
        self.inner.insert_keys_bulk(keys).await
    }
    async fn list_keys_page(
        &self,
        account_id: &str,
        region: &str,
        now: i64,
        filters: &[(KeyField, Vec<String>)],
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<KeyRecord>, usize)> {
        self.inner
            .list_keys_page(account_id, region, now, filters, offset, limit)
            .await
    }
    async fn list_keys(&self, account_id: &str, region: &str) -> StoreResult<Vec<KeyRecord>> {
        self.inner.list_keys(account_id, region).await
    }
    async fn list_versions(&self, key_id: &str) -> StoreResult<Vec<KeyVersionRecord>> {
        self.inner.list_versions(key_id).await
    }
    async fn due_rotations(&self, now: i64) -> StoreResult<Vec<KeyLocator>> {
        self.inner.due_rotations(now).await
    }
    async fn due_deletions(&self, now: i64) -> StoreResult<Vec<KeyLocator>> {
        self.inner.due_deletions(now).await
    }
    async fn due_material_expiry(&self, now: i64) -> StoreResult<Vec<KeyLocator>> {
        self.inner.due_material_expiry(now).await
    }
    async fn count_keys_by_state(&self) -> StoreResult<Vec<KeyCount>> {
        self.inner.count_keys_by_state().await
    }
}

#[async_trait]
impl AliasStore for CachedStore {
    async fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        let k = (account_id.to_string(), region.to_string(), name.to_string());
        if let Some(a) = self.lookup(&self.aliases, &k, self.ttl) {
            return Ok(Some(a));
        }
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self.inner.get_alias(account_id, region, name).await?;
        if let Some(a) = &found {
            self.fill(&self.aliases, gen, k, a.clone());
        }
        Ok(found)
    }
    async fn create_alias(&self, alias: AliasRecord, max_per_key: i64) -> StoreResult<()> {
        let (a, r, n) = (
            alias.account_id.clone(),
            alias.region.clone(),
            alias.alias_name.clone(),
        );
        let result = self.inner.create_alias(alias, max_per_key).await;
        self.invalidate_alias(&a, &r, &n);
        result
    }
    async fn update_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        key_id: &str,
        max_per_key: i64,
    ) -> StoreResult<bool> {
        let result = self
            .inner
            .update_alias(account_id, region, name, key_id, max_per_key)
            .await;
        self.invalidate_alias(account_id, region, name);
        result
    }
    async fn delete_alias(&self, account_id: &str, region: &str, name: &str) -> StoreResult<bool> {
        let result = self.inner.delete_alias(account_id, region, name).await;
        self.invalidate_alias(account_id, region, name);
        result
    }
    // Not cached:
    async fn list_aliases(
        &self,
        account_id: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> StoreResult<Vec<AliasRecord>> {
        self.inner.list_aliases(account_id, region, key_id).await
    }
}

#[async_trait]
impl SecretStore for CachedStore {
    async fn get_secret(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<SecretRecord>> {
        Ok(self
            .get_secret_shared(account_id, region, name)
            .await?
            .map(Arc::unwrap_or_clone))
    }
    async fn get_secret_shared(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<Arc<SecretRecord>>> {
        let borrowed: &dyn StrTriple = &(account_id, region, name);
        if let Some(s) = self.lookup(&self.secrets, borrowed, self.ttl) {
            return Ok(Some(s));
        }
        let k = (account_id.to_string(), region.to_string(), name.to_string());
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self
            .inner
            .get_secret(account_id, region, name)
            .await?
            .map(Arc::new);
        if let Some(s) = &found {
            self.fill(&self.secrets, gen, k, s.clone());
        }
        Ok(found)
    }
    async fn get_secret_version(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<SecretVersionRecord>> {
        Ok(self
            .get_secret_version_shared(secret_id, version_id)
            .await?
            .map(Arc::unwrap_or_clone))
    }
    async fn get_secret_version_shared(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<Arc<SecretVersionRecord>>> {
        let borrowed: &dyn StrPair = &(secret_id, version_id);
        if let Some(v) = self.lookup(&self.secret_versions, borrowed, self.ttl) {
            return Ok(Some(v));
        }
        let k = (secret_id.to_string(), version_id.to_string());
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self
            .inner
            .get_secret_version(secret_id, version_id)
            .await?
            .map(Arc::new);
        if let Some(v) = &found {
            self.fill(&self.secret_versions, gen, k, v.clone());
        }
        Ok(found)
    }
    async fn get_secret_version_by_stage(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> StoreResult<Option<SecretVersionRecord>> {
        let k = (secret_id.to_string(), stage.to_string());
        if let Some(v) = self.lookup(&self.secret_stages, &k, self.ttl) {
            return Ok(Some(Arc::unwrap_or_clone(v)));
        }
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self
            .inner
            .get_secret_version_by_stage(secret_id, stage)
            .await?;
        if let Some(v) = &found {
            self.fill(&self.secret_stages, gen, k, Arc::new(v.clone()));
        }
        Ok(found)
    }
    async fn insert_secret(
        &self,
        secret: SecretRecord,
        first: SecretVersionRecord,
        stages: Vec<String>,
        tags: Vec<Tag>,
        max_secrets: i64,
    ) -> StoreResult<()> {
        let id = secret.secret_id.clone();
        let r = self
            .inner
            .insert_secret(secret, first, stages, tags, max_secrets)
            .await;
        self.invalidate_secret(&id);
        r
    }
    async fn update_secret(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        mutation: SecretMutation,
    ) -> StoreResult<Option<(SecretRecord, Vec<SecretVersionMeta>)>> {
        // The id is known only after the write: forget the name's entry first (whatever it
        // holds), then the secret by id.
        let cached = get_fresh(
            &self.secrets,
            &(account_id.to_string(), region.to_string(), name.to_string()),
            Duration::MAX,
        );
        let r = self
            .inner
            .update_secret(account_id, region, name, mutation)
            .await;
        match (&r, cached) {
            (Ok(Some((s, _))), _) => self.invalidate_secret(&s.secret_id),
            (_, Some(s)) => self.invalidate_secret(&s.secret_id),
            // Nothing cached under this name and nothing written: still close the fill race.
            _ => {
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
        }
        r
    }
    async fn delete_secret(&self, secret_id: &str) -> StoreResult<bool> {
        let r = self.inner.delete_secret(secret_id).await;
        self.invalidate_secret(secret_id);
        r
    }
    async fn delete_secret_if_due(&self, secret_id: &str, now: i64) -> StoreResult<bool> {
        let r = self.inner.delete_secret_if_due(secret_id, now).await;
        self.invalidate_secret(secret_id);
        r
    }
    // Not cached (the list of secrets, tags: GetSecretValue does not read them):
    async fn list_secrets(&self, account_id: &str, region: &str) -> StoreResult<Vec<SecretRecord>> {
        self.inner.list_secrets(account_id, region).await
    }
    async fn list_secret_versions(&self, secret_id: &str) -> StoreResult<Vec<SecretVersionMeta>> {
        Ok(Arc::unwrap_or_clone(
            self.list_secret_versions_shared(secret_id).await?,
        ))
    }
    async fn list_secret_versions_shared(
        &self,
        secret_id: &str,
    ) -> StoreResult<Arc<Vec<SecretVersionMeta>>> {
        if let Some(v) = self.lookup(&self.secret_version_lists, secret_id, self.ttl) {
            return Ok(v);
        }
        let k = secret_id.to_string();
        let gen = self.generation.load(Ordering::SeqCst);
        let found = Arc::new(self.inner.list_secret_versions(secret_id).await?);
        self.fill(&self.secret_version_lists, gen, k, found.clone());
        Ok(found)
    }
    async fn due_secret_deletions(&self, now: i64) -> StoreResult<Vec<String>> {
        self.inner.due_secret_deletions(now).await
    }
    async fn list_secret_tags(&self, secret_id: &str) -> StoreResult<Vec<Tag>> {
        self.inner.list_secret_tags(secret_id).await
    }
    async fn put_secret_tags(
        &self,
        secret_id: &str,
        tags: Vec<Tag>,
        max: usize,
    ) -> StoreResult<()> {
        self.inner.put_secret_tags(secret_id, tags, max).await
    }
    async fn remove_secret_tags(
        &self,
        secret_id: &str,
        tag_keys: Option<Vec<String>>,
    ) -> StoreResult<()> {
        self.inner.remove_secret_tags(secret_id, tag_keys).await
    }
    async fn list_account_secret_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<(String, Tag)>> {
        self.inner
            .list_account_secret_tags(account_id, region)
            .await
    }

    fn cached_secret_value(
        &self,
        secret_id: &str,
        version_id: &str,
        sealed_data_key: &[u8],
        now: i64,
    ) -> Option<Arc<zeroize::Zeroizing<Vec<u8>>>> {
        let m = self.data_keys.read().ok()?;
        let e = m.get(&(secret_id, version_id) as &dyn StrPair)?;
        (e.sealed == sealed_data_key && self.data_key_fresh(e.at, now)).then(|| e.value.clone())
    }

    fn keep_secret_value(
        &self,
        secret_id: &str,
        version_id: &str,
        key_id: &str,
        sealed_data_key: &[u8],
        value: &[u8],
        now: i64,
    ) {
        let k = (secret_id.to_string(), version_id.to_string());
        // Only alongside the cached version it opens (so it goes when that goes): a write
        // that dropped the version meanwhile leaves nothing behind.
        let Ok(versions) = self.secret_versions.read() else {
            return;
        };
        let Some(v) = versions.get(&k) else {
            return;
        };
        if v.value.sealed_data_key != sealed_data_key || v.at.elapsed() >= self.ttl {
            return;
        }
        // Taken while the version map is read-locked: an invalidation (which write-locks it
        // first) is either wholly before this (the version is gone) or wholly after.
        if let Ok(mut m) = self.data_keys.write() {
            if m.len() >= MAX_DATA_KEYS {
                m.clear();
            }
            m.insert(
                k,
                DataKeyEntry {
                    key_id: key_id.to_string(),
                    sealed: sealed_data_key.to_vec(),
                    value: Arc::new(zeroize::Zeroizing::new(value.to_vec())),
                    at: now,
                },
            );
        }
    }
}

#[async_trait]
impl DumpStore for CachedStore {
    async fn import_with_progress(
        &self,
        dump: Dump,
        progress: crate::progress::Progress,
    ) -> StoreResult<()> {
        let r = self.inner.import_with_progress(dump, progress).await;
        self.invalidate_all();
        r
    }
    async fn export(&self) -> StoreResult<Dump> {
        self.inner.export().await
    }
}

#[async_trait]
impl RamStore for CachedStore {
    async fn insert_ram_entity(&self, e: RamEntityRecord, max: i64) -> StoreResult<()> {
        let r = self.inner.insert_ram_entity(e, max).await;
        self.invalidate_ram();
        r
    }
    async fn get_ram_entity(
        &self,
        account_id: &str,
        kind: RamKind,
        name: &str,
    ) -> StoreResult<Option<RamEntityRecord>> {
        self.inner.get_ram_entity(account_id, kind, name).await
    }
    async fn get_ram_entity_by_id(&self, entity_id: &str) -> StoreResult<Option<RamEntityRecord>> {
        self.inner.get_ram_entity_by_id(entity_id).await
    }
    async fn list_ram_entities(
        &self,
        account_id: &str,
        kind: RamKind,
    ) -> StoreResult<Vec<RamEntityRecord>> {
        self.inner.list_ram_entities(account_id, kind).await
    }
    async fn update_ram_entity(
        &self,
        account_id: &str,
        kind: RamKind,
        name: &str,
        mutation: RamMutation,
    ) -> StoreResult<Option<RamEntityRecord>> {
        let r = self
            .inner
            .update_ram_entity(account_id, kind, name, mutation)
            .await;
        self.invalidate_ram();
        r
    }
    async fn add_ram_link(&self, link: RamLinkRecord, max: i64) -> StoreResult<()> {
        let r = self.inner.add_ram_link(link, max).await;
        self.invalidate_ram();
        r
    }
    async fn remove_ram_link(
        &self,
        kind: RamLinkKind,
        source_id: &str,
        target_id: &str,
    ) -> StoreResult<bool> {
        let r = self.inner.remove_ram_link(kind, source_id, target_id).await;
        self.invalidate_ram();
        r
    }
    async fn list_ram_links(
        &self,
        kind: RamLinkKind,
        source_id: Option<&str>,
        target_id: Option<&str>,
    ) -> StoreResult<Vec<RamLinkRecord>> {
        self.inner.list_ram_links(kind, source_id, target_id).await
    }
    async fn list_user_access_keys(&self, user_id: &str) -> StoreResult<Vec<AccessKeyRecord>> {
        self.inner.list_user_access_keys(user_id).await
    }
    async fn insert_user_access_key(&self, ak: AccessKeyRecord, max: i64) -> StoreResult<()> {
        self.inner.insert_user_access_key(ak, max).await
    }
    async fn insert_sts_session(&self, s: StsSessionRecord) -> StoreResult<()> {
        self.inner.insert_sts_session(s).await
    }
    async fn get_sts_session(&self, access_key_id: &str) -> StoreResult<Option<StsSessionRecord>> {
        self.inner.get_sts_session(access_key_id).await
    }
    async fn purge_sts_sessions(&self, now: i64) -> StoreResult<u64> {
        self.inner.purge_sts_sessions(now).await
    }
    fn ram_epoch(&self) -> Option<u64> {
        Some(self.ram_epoch.load(Ordering::SeqCst))
    }
}

/// What a write changed, as the caches of other nodes need to hear it: the payload of a
/// PostgreSQL notification (`k\n<key id>`: a key, its versions and the aliases pointing at
/// it; `ak\n<access key id>`; `a\n<account>\n<region>\n<alias name>`: one alias;
/// `s\n<secret id>`: a secret, its versions and stages; `ram`:
/// RAM data; `*`:
/// everything).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    Key(&'a str),
    AccessKey(&'a str),
    Alias(&'a str, &'a str, &'a str),
    /// A secret (by id): its row, versions and stages.
    Secret(&'a str),
    /// Any RAM identity, membership, attachment or policy (compiled policies start over).
    Ram,
    All,
}

impl<'a> Change<'a> {
    pub fn payload(&self) -> String {
        match self {
            Change::Key(id) => format!("k\n{id}"),
            Change::AccessKey(id) => format!("ak\n{id}"),
            Change::Alias(account, region, name) => format!("a\n{account}\n{region}\n{name}"),
            Change::Secret(id) => format!("s\n{id}"),
            Change::Ram => "ram".to_string(),
            Change::All => "*".to_string(),
        }
    }

    /// Reads a payload; anything unknown means everything.
    pub fn parse(payload: &'a str) -> Self {
        let mut parts = payload.split('\n');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some("k"), Some(id), None, None, None) => Change::Key(id),
            (Some("ak"), Some(id), None, None, None) => Change::AccessKey(id),
            (Some("s"), Some(id), None, None, None) => Change::Secret(id),
            (Some("ram"), None, None, None, None) => Change::Ram,
            (Some("a"), Some(account), Some(region), Some(name), None) => {
                Change::Alias(account, region, name)
            }
            _ => Change::All,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    /// The borrowed lookups find exactly the entries the owned keys do (same hash, same
    /// equality), and nothing else.
    #[test]
    fn borrowed_keys_find_the_owned_entries() {
        let mut pairs: HashMap<(String, String), u8> = HashMap::new();
        let mut triples: HashMap<SecretKey, u8> = HashMap::new();
        for (i, (a, b, c)) in [("s1", "v1", "n"), ("s1", "v2", "n"), ("s", "1v1", "n")]
            .into_iter()
            .enumerate()
        {
            pairs.insert((a.to_string(), b.to_string()), i as u8);
            triples.insert((a.to_string(), b.to_string(), c.to_string()), i as u8);
        }
        for (i, (a, b)) in [("s1", "v1"), ("s1", "v2"), ("s", "1v1")]
            .into_iter()
            .enumerate()
        {
            assert_eq!(pairs.get(&(a, b) as &dyn StrPair), Some(&(i as u8)));
            assert_eq!(
                triples.get(&(a, b, "n") as &dyn StrTriple),
                Some(&(i as u8))
            );
        }
        assert_eq!(pairs.get(&("s1v", "1") as &dyn StrPair), None);
        assert_eq!(triples.get(&("s1", "v1", "m") as &dyn StrTriple), None);
    }

    fn key(id: &str) -> KeyRecord {
        crate::service::keys::new_key_record(id, "1", "r", crate::model::Origin::AliyunKms, "v", 0)
    }

    #[tokio::test]
    async fn reads_are_cached_and_writes_invalidate() {
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let cache = CachedStore::new(inner.clone(), Duration::from_secs(60));
        cache.ensure_account("1", 0).await.unwrap();
        let v = KeyVersionRecord {
            key_id: "k".into(),
            version_id: "v".into(),
            creation_date: 0,
            sealed_material: Some(vec![1]),
        };
        cache.insert_key(key("k"), v, vec![], 10).await.unwrap();
        let loc = KeyLocator {
            account_id: "1".into(),
            region: "r".into(),
            key_id: "k".into(),
        };
        assert_eq!(cache.get_key(&loc).await.unwrap().unwrap().description, "");
        // A change made behind the cache's back is not seen (until the TTL)...
        inner
            .update_key(
                &loc,
                Box::new(|k| {
                    k.description = "behind".into();
                    Ok(vec![])
                }),
            )
            .await
            .unwrap();
        assert_eq!(cache.get_key(&loc).await.unwrap().unwrap().description, "");
        // ...a change through the cache is.
        cache
            .update_key(
                &loc,
                Box::new(|k| {
                    k.description = "through".into();
                    Ok(vec![])
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            cache.get_key(&loc).await.unwrap().unwrap().description,
            "through"
        );
        // Another account never sees it.
        let other = KeyLocator {
            account_id: "2".into(),
            ..loc.clone()
        };
        assert!(cache.get_key(&other).await.unwrap().is_none());
        assert!(cache.get_version("k", "v").await.unwrap().is_some());
        // The synchronous peeks see exactly what the cache holds fresh: the row, never
        // another account's, and nothing once a write or an invalidation dropped it.
        let peeked = cache.peek_key_shared(&loc).unwrap();
        assert_eq!(peeked.description, "through");
        assert!(cache.peek_key_shared(&other).is_none());
        assert!(cache.peek_version_shared("k", "v").is_some());
        assert!(cache.peek_version_shared("k", "nope").is_none());
        cache
            .update_key(
                &loc,
                Box::new(|k| {
                    k.description = "again".into();
                    Ok(vec![])
                }),
            )
            .await
            .unwrap();
        assert!(cache.peek_key_shared(&loc).is_none());
        assert!(
            inner.peek_key_shared(&loc).is_none(),
            "a store without a cache"
        );
        assert_eq!(
            cache.get_key(&loc).await.unwrap().unwrap().description,
            "again"
        );
        cache.invalidate_all();
        assert!(cache.peek_key_shared(&loc).is_none());
        assert!(cache.peek_version_shared("k", "v").is_none());
        assert_eq!(
            cache.get_key(&loc).await.unwrap().unwrap().description,
            "again"
        );
    }

    #[test]
    fn change_payloads_round_trip() {
        for c in [
            Change::Key("k"),
            Change::AccessKey("LTAI"),
            Change::Alias("1", "cn-hangzhou", "alias/x"),
            Change::Secret("s-1"),
            Change::All,
        ] {
            assert_eq!(Change::parse(&c.payload()), c);
        }
        // Anything unknown or malformed forgets everything.
        for p in ["", "k", "x\ny", "a\n1\nr", "k\na\nb", "a\n1\nr\nn\nextra"] {
            assert_eq!(Change::parse(p), Change::All, "{p:?}");
        }
    }

    /// A secret read on this node is served from the cache until a write here or another
    /// node's announcement ([`Change::Secret`]) drops it; then the new value is read.
    #[tokio::test]
    async fn secrets_are_cached_until_a_write_or_an_announcement() {
        use crate::store::tests::{secret, secret_version, ACCOUNT};
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let cache = CachedStore::new(inner.clone(), Duration::from_secs(60));
        cache.ensure_account(ACCOUNT, 0).await.unwrap();
        let s = secret("sid", "app/db");
        let (a, r, n) = (
            s.account_id.clone(),
            s.region.clone(),
            s.secret_name.clone(),
        );
        let stage = vec!["ACSCurrent".to_string()];
        cache
            .insert_secret(s, secret_version("sid", "v1", 1), stage, vec![], 10)
            .await
            .unwrap();
        assert!(cache.get_secret(&a, &r, &n).await.unwrap().is_some());
        let v = cache
            .get_secret_version_by_stage("sid", "ACSCurrent")
            .await
            .unwrap();
        assert_eq!(v.unwrap().version_id, "v1");
        assert_eq!(cache.list_secret_versions("sid").await.unwrap().len(), 1);
        // Another node (the inner store, behind the cache's back) puts v2 and moves the stage.
        let put = |id: &'static str| -> SecretMutation {
            Box::new(move |_, versions| {
                versions.insert(
                    0,
                    SecretVersionMeta {
                        version_id: id.into(),
                        creation_date: 2,
                        stages: vec![],
                    },
                );
                crate::service::secrets::attach_stage(versions, "ACSCurrent", id);
                Ok(vec![SecretChange::InsertVersion(secret_version(
                    "sid", id, 2,
                ))])
            })
        };
        inner.update_secret(&a, &r, &n, put("v2")).await.unwrap();
        let v = cache
            .get_secret_version_by_stage("sid", "ACSCurrent")
            .await
            .unwrap();
        assert_eq!(v.unwrap().version_id, "v1", "served from the cache");
        assert_eq!(cache.list_secret_versions("sid").await.unwrap().len(), 1);
        // Its announcement arrives: the next read is fresh.
        cache.apply_remote(Some(&Change::Secret("sid").payload()));
        let list = cache.list_secret_versions("sid").await.unwrap();
        assert_eq!(list[0].version_id, "v2");
        assert_eq!(list[0].stages, ["ACSCurrent"]);
        let v = cache
            .get_secret_version_by_stage("sid", "ACSCurrent")
            .await
            .unwrap();
        assert_eq!(v.unwrap().version_id, "v2");
        assert!(cache
            .get_secret_version("sid", "v2")
            .await
            .unwrap()
            .is_some());
        // A write through the cache is seen at once.
        cache.update_secret(&a, &r, &n, put("v3")).await.unwrap();
        let v = cache
            .get_secret_version_by_stage("sid", "ACSCurrent")
            .await
            .unwrap();
        assert_eq!(v.unwrap().version_id, "v3");
        // A deletion too: the row, its versions and stages are gone.
        assert!(cache.delete_secret("sid").await.unwrap());
        assert!(cache.get_secret(&a, &r, &n).await.unwrap().is_none());
        assert!(cache
            .get_secret_version("sid", "v2")
            .await
            .unwrap()
            .is_none());
        let v = cache
            .get_secret_version_by_stage("sid", "ACSCurrent")
            .await
            .unwrap();
        assert!(v.is_none());
    }

    /// An opened secret data key is kept only alongside its cached version, answers for its
    /// own sealed data key only, and is dropped by a secret write here, by another node's
    /// secret or key announcement, by a change of its key here, and by age on the service's
    /// (injectable) clock.
    #[tokio::test]
    async fn secret_data_keys_are_dropped_on_every_invalidation() {
        use crate::clock::{Clock, ManualClock};
        use crate::store::tests::{secret, secret_version, ACCOUNT};
        let clock = ManualClock::new(1_000);
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let cache = CachedStore::new(inner.clone(), Duration::from_secs(10));
        cache.ensure_account(ACCOUNT, 0).await.unwrap();
        let s = secret("sid", "app/db");
        let (a, r, n) = (
            s.account_id.clone(),
            s.region.clone(),
            s.secret_name.clone(),
        );
        let v1 = secret_version("sid", "v1", 1);
        let sealed = v1.sealed_data_key.clone();
        let stage = vec!["ACSCurrent".to_string()];
        cache.insert_secret(s, v1, stage, vec![], 10).await.unwrap();
        let dk = [7u8; 32];
        let has = |now: i64| {
            cache
                .cached_secret_value("sid", "v1", &sealed, now)
                .map(|k| k.to_vec())
        };
        // Not kept without its version in the cache.
        cache.keep_secret_value("sid", "v1", "key-1", &sealed, &dk, clock.now());
        assert_eq!(has(clock.now()), None);
        let fill = || async {
            cache
                .get_secret_version("sid", "v1")
                .await
                .unwrap()
                .unwrap();
            cache.keep_secret_value("sid", "v1", "key-1", &sealed, &dk, clock.now());
        };
        fill().await;
        assert_eq!(has(clock.now()), Some(dk.to_vec()));
        // Another sealed data key under the same ids is not answered by it.
        assert!(cache
            .cached_secret_value("sid", "v1", &[9, 9], clock.now())
            .is_none());

        // TTL on the injectable clock: 10 s lifetime.
        clock.advance(9);
        assert_eq!(has(clock.now()), Some(dk.to_vec()));
        clock.advance(1);
        assert_eq!(has(clock.now()), None, "expired at 10 s");
        // A clock moved back does not revive or extend it either.
        assert_eq!(has(clock.now() - 20), None);

        // A secret write through this cache.
        fill().await;
        assert!(has(clock.now()).is_some());
        let touch: SecretMutation = Box::new(|s, _| {
            s.description = "changed".into();
            Ok(vec![])
        });
        cache.update_secret(&a, &r, &n, touch).await.unwrap();
        assert_eq!(has(clock.now()), None, "dropped by a secret write");

        // Another node's secret announcement.
        fill().await;
        assert!(has(clock.now()).is_some());
        cache.apply_remote(Some(&Change::Secret("sid").payload()));
        assert_eq!(has(clock.now()), None, "dropped by Change::Secret");

        // Another node's key announcement (DisableKey, ScheduleKeyDeletion, material
        // deleted or expired there), for the key that sealed it; another key's is ignored.
        fill().await;
        cache.apply_remote(Some(&Change::Key("key-2").payload()));
        assert!(has(clock.now()).is_some());
        cache.apply_remote(Some(&Change::Key("key-1").payload()));
        assert_eq!(has(clock.now()), None, "dropped by Change::Key");

        // A key change through this cache.
        fill().await;
        let loc = KeyLocator {
            account_id: ACCOUNT.into(),
            region: r.clone(),
            key_id: "key-1".into(),
        };
        let _ = cache.update_key(&loc, Box::new(|_| Ok(vec![]))).await;
        assert_eq!(has(clock.now()), None, "dropped by a key change here");

        // Deletion, and everything at once.
        fill().await;
        assert!(cache.delete_secret("sid").await.unwrap());
        assert_eq!(has(clock.now()), None, "dropped with the secret");
        cache.apply_remote(Some(&Change::All.payload()));
        assert!(cache.data_keys.read().unwrap().is_empty());
    }

    #[tokio::test]
    async fn ttl_bounds_staleness() {
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let cache = CachedStore::new(inner.clone(), Duration::from_millis(0));
        cache.ensure_account("1", 0).await.unwrap();
        let v = KeyVersionRecord {
            key_id: "k".into(),
            version_id: "v".into(),
            creation_date: 0,
            sealed_material: None,
        };
        cache.insert_key(key("k"), v, vec![], 10).await.unwrap();
        let loc = KeyLocator {
            account_id: "1".into(),
            region: "r".into(),
            key_id: "k".into(),
        };
        cache.get_key(&loc).await.unwrap();
        inner
            .update_key(
                &loc,
                Box::new(|k| {
                    k.description = "behind".into();
                    Ok(vec![])
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            cache.get_key(&loc).await.unwrap().unwrap().description,
            "behind"
        );
    }
}
