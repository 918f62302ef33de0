//! BYOK wrapping keys: one per import token, withdrawn after too many failed unwraps.

use async_trait::async_trait;

use super::conn::args;
use super::table::Table;
use super::{run, Backend, Mode, SqlStore};
use crate::model::WrappingKeyRecord;
use crate::store::{ImportStore, StoreResult};

#[async_trait]
impl<B: Backend> ImportStore for SqlStore<B> {
    async fn insert_wrapping_key(&self, wk: WrappingKeyRecord) -> StoreResult<()> {
        run!(self, Mode::Auto, |c| {
            c.execute(WrappingKeyRecord::insert(), &wk.params()).await?;
            Ok(())
        })
    }

    async fn get_wrapping_key(&self, id: &str) -> StoreResult<Option<WrappingKeyRecord>> {
        let id = id.to_string();
        run!(self, Mode::Auto, |c| {
            c.select_one::<WrappingKeyRecord>("WHERE wrapping_key_id=$1", args![id])
                .await
        })
    }

    async fn record_unwrap_failure(&self, id: &str, max: i64) -> StoreResult<bool> {
        let id = id.to_string();
        run!(self, Mode::Write, |c| {
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
    }

    async fn purge_wrapping_keys(&self, now: i64) -> StoreResult<u64> {
        run!(self, Mode::Auto, |c| {
            c.execute("DELETE FROM wrapping_keys WHERE expires < $1", args![now])
                .await
        })
    }
}
