//! BYOK wrapping keys: one per import token, at most so many per key (the oldest withdrawn
//! first), each withdrawn after too many failed unwraps, counted before each unwrap.

use async_trait::async_trait;

use super::conn::args;
use super::keys::lock_key;
use super::table::Table;
use super::{run, sql, Backend, Mode, SqlStore};
use crate::model::WrappingKeyRecord;
use crate::store::{ImportStore, StoreResult};

#[async_trait]
impl<B: Backend> ImportStore for SqlStore<B> {
    async fn insert_wrapping_key(
        &self,
        wk: WrappingKeyRecord,
        max_per_key: i64,
    ) -> StoreResult<u64> {
        run!(self, Mode::Write, |c| {
            // Issues for one key queue on its row, so the count below is exact.
            lock_key(c, &wk.key_id).await?;
            c.execute(WrappingKeyRecord::insert(), &wk.params()).await?;
            // The newest row has the highest sequence number: everything at or below that of
            // the (max_per_key + 1)-th newest goes, the new row never.
            let d = c.dialect();
            let seq = d.insertion_seq();
            let sql = sql!(
                d,
                "DELETE FROM wrapping_keys WHERE key_id=$1 AND {seq} <= \
                 (SELECT {seq} FROM wrapping_keys WHERE key_id=$1 ORDER BY {seq} DESC LIMIT 1 OFFSET $2)"
            );
            c.execute(sql, args![wk.key_id, max_per_key.max(1)]).await
        })
    }

    async fn get_wrapping_key(&self, id: &str) -> StoreResult<Option<WrappingKeyRecord>> {
        let id = id.to_string();
        run!(self, Mode::Auto, |c| {
            c.select_one::<WrappingKeyRecord>("WHERE wrapping_key_id=$1", args![id])
                .await
        })
    }

    async fn claim_unwrap_attempt(
        &self,
        id: &str,
        key_id: &str,
        algorithm: &str,
        max: i64,
    ) -> StoreResult<Option<WrappingKeyRecord>> {
        let (id, key_id, algorithm) = (id.to_string(), key_id.to_string(), algorithm.to_string());
        // One statement: the count is checked and raised under the row's write lock, so racing
        // claims see each other's (PostgreSQL re-checks the condition on the row it waited for;
        // SQLite runs one writer at a time). Lazy: no disk flush on the import path; a power
        // loss could forget the last counts (a few more attempts, never fewer).
        run!(self, Mode::Lazy, |c| {
            let d = c.dialect();
            let sql = sql!(
                d,
                "UPDATE wrapping_keys SET failures = failures + 1 \
                 WHERE wrapping_key_id=$1 AND key_id=$2 AND algorithm=$3 AND failures < $4 \
                 RETURNING {}",
                WrappingKeyRecord::columns()
            );
            c.query_opt(sql, args![id, key_id, algorithm, max])
                .await?
                .map(|mut r| WrappingKeyRecord::read(&mut r))
                .transpose()
        })
    }

    async fn finish_unwrap_attempt(
        &self,
        id: &str,
        succeeded: bool,
        max: i64,
    ) -> StoreResult<bool> {
        let id = id.to_string();
        run!(self, Mode::Lazy, |c| {
            if succeeded {
                c.execute(
                    "UPDATE wrapping_keys SET failures = failures - 1 \
                     WHERE wrapping_key_id=$1 AND failures > 0",
                    args![id],
                )
                .await?;
                return Ok(false);
            }
            let withdrawn = c
                .execute(
                    "DELETE FROM wrapping_keys WHERE wrapping_key_id=$1 AND failures >= $2",
                    args![id, max],
                )
                .await?;
            Ok(withdrawn > 0)
        })
    }

    async fn purge_wrapping_keys(&self, now: i64) -> StoreResult<u64> {
        run!(self, Mode::Auto, |c| {
            c.execute("DELETE FROM wrapping_keys WHERE expires < $1", args![now])
                .await
        })
    }
}
