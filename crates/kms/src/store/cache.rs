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
use crate::error::KmsError;

/// Entries are dropped wholesale past this many, to bound memory.
const MAX_ENTRIES: usize = 200_000;

struct Entry<T> {
    value: T,
    at: Instant,
}

type AliasKey = (String, String, String);

pub struct CachedStore {
    inner: Arc<dyn Store>,
    ttl: Duration,
    generation: AtomicU64,
    keys: RwLock<HashMap<String, Entry<KeyRecord>>>,
    versions: RwLock<HashMap<(String, String), Entry<KeyVersionRecord>>>,
    aliases: RwLock<HashMap<AliasKey, Entry<AliasRecord>>>,
    /// Access keys (secret still sealed), for at most [`ACCESS_KEY_TTL`]: `kms admin` may
    /// change them from another process.
    access_keys: RwLock<HashMap<String, Entry<AccessKeyRecord>>>,
}

/// Lifetime of a cached access key: a key disabled or deleted with `kms admin` (another
/// process) stops working within this time; changes through this store take effect at once.
pub const ACCESS_KEY_TTL: Duration = Duration::from_secs(1);

fn get_fresh<K: std::hash::Hash + Eq, T: Clone>(
    map: &RwLock<HashMap<K, Entry<T>>>,
    key: &K,
    ttl: Duration,
) -> Option<T> {
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
        }
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
    }

    fn invalidate_alias(&self, account_id: &str, region: &str, name: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.aliases.write() {
            m.remove(&(account_id.to_string(), region.to_string(), name.to_string()));
        }
    }

    /// Applies a change notification from another node (see
    /// [`super::postgres::key_payload`]); `None` or an unknown payload forgets everything.
    pub fn apply_remote(&self, payload: Option<&str>) {
        let mut parts = payload.unwrap_or("*").split('\n');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("k"), Some(key_id), None, None) => self.invalidate_key(key_id, true),
            (Some("ak"), Some(id), None, None) => self.invalidate_access_key(id),
            (Some("a"), Some(account), Some(region), Some(name)) => {
                self.invalidate_alias(account, region, name)
            }
            _ => self.invalidate_all(),
        }
    }

    fn invalidate_access_key(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.access_keys.write() {
            m.remove(id);
        }
    }

    /// Forgets everything (used when another node announces changes it cannot name).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.access_keys.write() {
            m.clear();
        }
        if let Ok(mut m) = self.keys.write() {
            m.clear();
        }
        if let Ok(mut m) = self.versions.write() {
            m.clear();
        }
        if let Ok(mut m) = self.aliases.write() {
            m.clear();
        }
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn get_meta(&self, name: &str) -> Result<Option<String>, KmsError> {
        self.inner.get_meta(name).await
    }
    async fn set_meta(&self, name: &str, value: &str) -> Result<(), KmsError> {
        self.inner.set_meta(name, value).await
    }
    async fn init_meta(&self, name: &str, value: &str) -> Result<String, KmsError> {
        self.inner.init_meta(name, value).await
    }
    async fn ensure_account(&self, account_id: &str, now: i64) -> Result<(), KmsError> {
        self.inner.ensure_account(account_id, now).await
    }
    fn shares_nonces(&self) -> bool {
        self.inner.shares_nonces()
    }
    async fn claim_nonce(&self, digest: &[u8], until: i64) -> Result<bool, KmsError> {
        self.inner.claim_nonce(digest, until).await
    }
    async fn purge_nonces(&self, now: i64) -> Result<u64, KmsError> {
        self.inner.purge_nonces(now).await
    }
    async fn export(&self) -> Result<Dump, KmsError> {
        self.inner.export().await
    }
    async fn import(&self, dump: Dump) -> Result<(), KmsError> {
        let r = self.inner.import(dump).await;
        self.invalidate_all();
        r
    }
    async fn insert_access_key(&self, ak: AccessKeyRecord) -> Result<(), KmsError> {
        self.inner.insert_access_key(ak).await
    }
    async fn get_access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, KmsError> {
        let ttl = self.ttl.min(ACCESS_KEY_TTL);
        if let Some(ak) = get_fresh(&self.access_keys, &id.to_string(), ttl) {
            return Ok(Some(ak));
        }
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self.inner.get_access_key(id).await?;
        if let Some(ak) = &found {
            self.fill(&self.access_keys, gen, ak.access_key_id.clone(), ak.clone());
        }
        Ok(found)
    }
    async fn list_access_keys(&self) -> Result<Vec<AccessKeyRecord>, KmsError> {
        self.inner.list_access_keys().await
    }
    async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> Result<bool, KmsError> {
        let r = self.inner.set_access_key_enabled(id, enabled).await;
        self.invalidate_access_key(id);
        r
    }
    async fn delete_access_key(&self, id: &str) -> Result<bool, KmsError> {
        let r = self.inner.delete_access_key(id).await;
        self.invalidate_access_key(id);
        r
    }

    async fn insert_key(
        &self,
        key: KeyRecord,
        first: KeyVersionRecord,
        tags: Vec<Tag>,
        max_keys: i64,
    ) -> Result<(), KmsError> {
        self.inner.insert_key(key, first, tags, max_keys).await
    }

    async fn insert_keys_bulk(
        &self,
        keys: Vec<(KeyRecord, KeyVersionRecord)>,
    ) -> Result<(), KmsError> {
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
    ) -> Result<(Vec<KeyRecord>, usize), KmsError> {
        self.inner
            .list_keys_page(account_id, region, now, filters, offset, limit)
            .await
    }
    async fn list_tags(&self, key_id: &str) -> Result<Vec<Tag>, KmsError> {
        self.inner.list_tags(key_id).await
    }
    async fn put_tags(&self, key_id: &str, tags: Vec<Tag>, max: usize) -> Result<(), KmsError> {
        self.inner.put_tags(key_id, tags, max).await
    }
    async fn remove_tags(
        &self,
        key_id: &str,
        tag_keys: Option<Vec<String>>,
    ) -> Result<(), KmsError> {
        self.inner.remove_tags(key_id, tag_keys).await
    }
    async fn list_account_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> Result<Vec<(String, Tag)>, KmsError> {
        self.inner.list_account_tags(account_id, region).await
    }

    async fn get_key(&self, loc: &KeyLocator) -> Result<Option<KeyRecord>, KmsError> {
        if let Some(k) = get_fresh(&self.keys, &loc.key_id, self.ttl) {
            if k.account_id == loc.account_id && k.region == loc.region {
                return Ok(Some(k));
            }
            return Ok(None);
        }
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self.inner.get_key(loc).await?;
        if let Some(k) = &found {
            self.fill(&self.keys, gen, k.key_id.clone(), k.clone());
        }
        Ok(found)
    }

    async fn list_keys(&self, account_id: &str, region: &str) -> Result<Vec<KeyRecord>, KmsError> {
        self.inner.list_keys(account_id, region).await
    }

    async fn update_key(
        &self,
        loc: &KeyLocator,
        mutation: KeyMutation,
    ) -> Result<Option<KeyRecord>, KmsError> {
        let result = self.inner.update_key(loc, mutation).await;
        self.invalidate_key(&loc.key_id, false);
        result
    }

    async fn delete_key_if_due(&self, loc: &KeyLocator, now: i64) -> Result<bool, KmsError> {
        let result = self.inner.delete_key_if_due(loc, now).await;
        self.invalidate_key(&loc.key_id, true);
        result
    }

    async fn get_version(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> Result<Option<KeyVersionRecord>, KmsError> {
        let k = (key_id.to_string(), version_id.to_string());
        if let Some(v) = get_fresh(&self.versions, &k, self.ttl) {
            return Ok(Some(v));
        }
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self.inner.get_version(key_id, version_id).await?;
        if let Some(v) = &found {
            self.fill(&self.versions, gen, k, v.clone());
        }
        Ok(found)
    }

    async fn list_versions(&self, key_id: &str) -> Result<Vec<KeyVersionRecord>, KmsError> {
        self.inner.list_versions(key_id).await
    }
    async fn due_deletions(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.inner.due_deletions(now).await
    }
    async fn due_material_expiry(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.inner.due_material_expiry(now).await
    }
    async fn insert_wrapping_key(&self, wk: WrappingKeyRecord) -> Result<(), KmsError> {
        self.inner.insert_wrapping_key(wk).await
    }
    async fn get_wrapping_key(&self, id: &str) -> Result<Option<WrappingKeyRecord>, KmsError> {
        self.inner.get_wrapping_key(id).await
    }
    async fn record_unwrap_failure(&self, id: &str, max: i64) -> Result<bool, KmsError> {
        self.inner.record_unwrap_failure(id, max).await
    }
    async fn insert_console_user(&self, user: ConsoleUserRecord) -> Result<bool, KmsError> {
        self.inner.insert_console_user(user).await
    }
    async fn get_console_user(&self, name: &str) -> Result<Option<ConsoleUserRecord>, KmsError> {
        self.inner.get_console_user(name).await
    }
    async fn list_console_users(&self) -> Result<Vec<ConsoleUserRecord>, KmsError> {
        self.inner.list_console_users().await
    }
    async fn delete_console_user(&self, name: &str) -> Result<bool, KmsError> {
        self.inner.delete_console_user(name).await
    }
    async fn insert_console_session(&self, s: ConsoleSessionRecord) -> Result<(), KmsError> {
        self.inner.insert_console_session(s).await
    }
    async fn get_console_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<ConsoleSessionRecord>, KmsError> {
        self.inner.get_console_session(id_hash).await
    }
    async fn touch_console_session(&self, id_hash: &str, now: i64) -> Result<(), KmsError> {
        self.inner.touch_console_session(id_hash, now).await
    }
    async fn delete_console_session(&self, id_hash: &str) -> Result<(), KmsError> {
        self.inner.delete_console_session(id_hash).await
    }
    async fn purge_console_sessions(&self, idle_before: i64) -> Result<u64, KmsError> {
        self.inner.purge_console_sessions(idle_before).await
    }
    async fn purge_wrapping_keys(&self, now: i64) -> Result<u64, KmsError> {
        self.inner.purge_wrapping_keys(now).await
    }

    async fn create_alias(&self, alias: AliasRecord, max_per_key: i64) -> Result<(), KmsError> {
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
    ) -> Result<bool, KmsError> {
        let result = self
            .inner
            .update_alias(account_id, region, name, key_id, max_per_key)
            .await;
        self.invalidate_alias(account_id, region, name);
        result
    }
    async fn delete_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> Result<bool, KmsError> {
        let result = self.inner.delete_alias(account_id, region, name).await;
        self.invalidate_alias(account_id, region, name);
        result
    }
    async fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>, KmsError> {
        let k = (account_id.to_string(), region.to_string(), name.to_string());
        if let Some(a) = get_fresh(&self.aliases, &k, self.ttl) {
            return Ok(Some(a));
        }
        let gen = self.generation.load(Ordering::SeqCst);
        let found = self.inner.get_alias(account_id, region, name).await?;
        if let Some(a) = &found {
            self.fill(&self.aliases, gen, k, a.clone());
        }
        Ok(found)
    }
    async fn list_aliases(
        &self,
        account_id: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<AliasRecord>, KmsError> {
        self.inner.list_aliases(account_id, region, key_id).await
    }
    async fn due_rotations(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.inner.due_rotations(now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn key(id: &str) -> KeyRecord {
        crate::service::keys::new_key_record(id, "1", "r", "Aliyun_KMS", "v", 0)
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
        cache.invalidate_all();
        assert_eq!(
            cache.get_key(&loc).await.unwrap().unwrap().description,
            "through"
        );
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
