//! Pass-through of the aggregates a wrapper does not change: a store that wraps another
//! (like [`super::cache::CachedStore`]) implements [`Delegate`] and the aggregates it adds
//! behaviour to; the rest ([`MetaStore`], [`TagStore`], [`ImportStore`], [`ConsoleStore`],
//! [`NonceStore`], [`SealedStore`]) reach the inner store through the impls here, written once.

use async_trait::async_trait;

use super::*;

/// A store that wraps `inner` and leaves these aggregates to it.
pub trait Delegate: Send + Sync {
    fn inner(&self) -> &dyn Store;
}

#[async_trait]
impl<T: Delegate> MetaStore for T {
    async fn get_meta(&self, name: &str) -> StoreResult<Option<String>> {
        self.inner().get_meta(name).await
    }
    async fn set_meta(&self, name: &str, value: &str) -> StoreResult<()> {
        self.inner().set_meta(name, value).await
    }
    async fn init_meta(&self, name: &str, value: &str) -> StoreResult<String> {
        self.inner().init_meta(name, value).await
    }
}

#[async_trait]
impl<T: Delegate> TagStore for T {
    async fn list_tags(&self, key_id: &str) -> StoreResult<Vec<Tag>> {
        self.inner().list_tags(key_id).await
    }
    async fn put_tags(&self, key_id: &str, tags: Vec<Tag>, max: usize) -> StoreResult<()> {
        self.inner().put_tags(key_id, tags, max).await
    }
    async fn remove_tags(&self, key_id: &str, tag_keys: Option<Vec<String>>) -> StoreResult<()> {
        self.inner().remove_tags(key_id, tag_keys).await
    }
    async fn list_account_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<(String, Tag)>> {
        self.inner().list_account_tags(account_id, region).await
    }
}

#[async_trait]
impl<T: Delegate> ImportStore for T {
    async fn insert_wrapping_key(
        &self,
        wk: WrappingKeyRecord,
        max_per_key: i64,
    ) -> StoreResult<u64> {
        self.inner().insert_wrapping_key(wk, max_per_key).await
    }
    async fn get_wrapping_key(&self, id: &str) -> StoreResult<Option<WrappingKeyRecord>> {
        self.inner().get_wrapping_key(id).await
    }
    async fn claim_unwrap_attempt(
        &self,
        id: &str,
        key_id: &str,
        algorithm: &str,
        max: i64,
    ) -> StoreResult<Option<WrappingKeyRecord>> {
        self.inner()
            .claim_unwrap_attempt(id, key_id, algorithm, max)
            .await
    }
    async fn finish_unwrap_attempt(
        &self,
        id: &str,
        succeeded: bool,
        max: i64,
    ) -> StoreResult<bool> {
        self.inner().finish_unwrap_attempt(id, succeeded, max).await
    }
    async fn purge_wrapping_keys(&self, now: i64) -> StoreResult<u64> {
        self.inner().purge_wrapping_keys(now).await
    }
}

#[async_trait]
impl<T: Delegate> ConsoleStore for T {
    async fn insert_console_user(&self, user: ConsoleUserRecord) -> StoreResult<bool> {
        self.inner().insert_console_user(user).await
    }
    async fn get_console_user(&self, name: &str) -> StoreResult<Option<ConsoleUserRecord>> {
        self.inner().get_console_user(name).await
    }
    async fn list_console_users(&self) -> StoreResult<Vec<ConsoleUserRecord>> {
        self.inner().list_console_users().await
    }
    async fn delete_console_user(&self, name: &str) -> StoreResult<bool> {
        self.inner().delete_console_user(name).await
    }
    async fn insert_console_session(&self, s: ConsoleSessionRecord) -> StoreResult<()> {
        self.inner().insert_console_session(s).await
    }
    async fn get_console_session(
        &self,
        id_hash: &str,
    ) -> StoreResult<Option<ConsoleSessionRecord>> {
        self.inner().get_console_session(id_hash).await
    }
    async fn touch_console_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        self.inner().touch_console_session(id_hash, now).await
    }
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        self.inner().delete_console_session(id_hash).await
    }
    async fn purge_console_sessions(&self, idle_before: i64) -> StoreResult<u64> {
        self.inner().purge_console_sessions(idle_before).await
    }
}

#[async_trait]
impl<T: Delegate> NonceStore for T {
    fn shares_nonces(&self) -> bool {
        self.inner().shares_nonces()
    }
    async fn claim_nonce(&self, digest: &[u8], timestamp: i64) -> StoreResult<bool> {
        self.inner().claim_nonce(digest, timestamp).await
    }
    async fn purge_nonces(&self, now: i64) -> StoreResult<u64> {
        self.inner().purge_nonces(now).await
    }
}

#[async_trait]
impl<T: Delegate> SealedStore for T {
    async fn sealed_page(
        &self,
        col: SealedColumn,
        after: Option<Vec<String>>,
        limit: i64,
    ) -> StoreResult<Vec<SealedValue>> {
        self.inner().sealed_page(col, after, limit).await
    }
    async fn reseal(
        &self,
        col: SealedColumn,
        changes: Vec<(SealedValue, Vec<u8>)>,
    ) -> StoreResult<u64> {
        self.inner().reseal(col, changes).await
    }
    async fn change_meta(
        &self,
        set: Vec<(String, String)>,
        remove: Vec<String>,
    ) -> StoreResult<()> {
        self.inner().change_meta(set, remove).await
    }
}
