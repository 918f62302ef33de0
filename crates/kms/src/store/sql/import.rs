//! BYOK wrapping keys: one per import token, withdrawn after too many failed unwraps.

use async_trait::async_trait;

use super::conn::args;
use super::table::{select, Table};
use super::{sql, Backend, Mode, SqlStore};
use crate::model::WrappingKeyRecord;
use crate::store::{ImportStore, StoreResult};

#[async_trait]
impl<B: Backend> ImportStore for SqlStore<B> {
    async fn insert_wrapping_key(&self, wk: WrappingKeyRecord) -> StoreResult<()> {
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                c.execute(WrappingKeyRecord::insert(), &wk.params()).await?;
                Ok(())
            })
        })
        .await
    }

    async fn get_wrapping_key(&self, id: &str) -> StoreResult<Option<WrappingKeyRecord>> {
        let id = id.to_string();
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                let sql = sql!(
                    c.dialect(),
                    "{}",
                    select::<WrappingKeyRecord>("wrapping_keys WHERE wrapping_key_id=$1")
                );
                c.query_opt(sql, args![id])
                    .await?
                    .map(|mut r| WrappingKeyRecord::read(&mut r))
                    .transpose()
            })
        })
        .await
    }

    async fn record_unwrap_failure(&self, id: &str, max: i64) -> StoreResult<bool> {
        let id = id.to_string();
        self.run(Mode::Write, move |c| {
            Box::pin(async move {
                c.execute(
                    "UPDATE wrapping_keys SET failures = failures + 1 WHERE wrapping_key_id=$1",
                    args![id],
                )
                .await?;
                let withdrawn = c
                    .execute(
                        "DELETE FROM wrapping_keys WHERE wrapping_key_id=$1 AND failures >= $2",
                        args![id, max],
                    )
                    .await?;
                Ok(withdrawn > 0)
            })
        })
        .await
    }

    async fn purge_wrapping_keys(&self, now: i64) -> StoreResult<u64> {
        self.run(Mode::Auto, move |c| {
            Box::pin(async move {
                c.execute("DELETE FROM wrapping_keys WHERE expires < $1", args![now])
                    .await
            })
        })
        .await
    }
}
