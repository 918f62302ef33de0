//! Aliases: unique names per account and region, a limit per key.

use async_trait::async_trait;

use super::conn::{args, Conn};
use super::keys::lock_key;
use super::table::Table;
use super::{run, sql, Backend, Mode, SqlStore};
use crate::model::AliasRecord;
use crate::store::cache::Change;
use crate::store::{AliasStore, StoreError, StoreResult};

/// Refuses a key that already has `max_per_key` aliases (its row locked first, so two
/// aliases racing for the last place check in turn).
async fn alias_limit(c: &mut dyn Conn, key_id: &str, max_per_key: i64) -> StoreResult<()> {
    lock_key(c, key_id).await?;
    let n: i64 = c
        .query_value(
            "SELECT COUNT(*) FROM aliases WHERE key_id=$1",
            args![key_id],
        )
        .await?;
    if n >= max_per_key {
        return Err(StoreError::LimitExceeded(format!(
            "at most {max_per_key} aliases per key"
        )));
    }
    Ok(())
}

const WHERE_NAME: &str = "account_id=$1 AND region=$2 AND alias_name=$3";

#[async_trait]
impl<B: Backend> AliasStore for SqlStore<B> {
    async fn create_alias(&self, alias: AliasRecord, max_per_key: i64) -> StoreResult<()> {
        run!(self, Mode::Write, |c| {
            let a = &alias;
            let taken = c
                .query_opt(
                    sql!(c.dialect(), "SELECT 1 FROM aliases WHERE {WHERE_NAME}"),
                    args![a.account_id, a.region, a.alias_name],
                )
                .await?;
            if taken.is_some() {
                return Err(StoreError::AliasExists);
            }
            alias_limit(c, &a.key_id, max_per_key).await?;
            // A concurrent create of the same name that committed first shows here.
            c.execute(AliasRecord::insert(), &a.params())
                .await
                .map_err(|e| match e {
                    StoreError::Duplicate(_) => StoreError::AliasExists,
                    e => e,
                })?;
            c.notify(&Change::Alias(&a.account_id, &a.region, &a.alias_name).payload())
                .await
        })
    }

    async fn update_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        key_id: &str,
        max_per_key: i64,
    ) -> StoreResult<bool> {
        let (a, r, n, k) = (
            account_id.to_string(),
            region.to_string(),
            name.to_string(),
            key_id.to_string(),
        );
        run!(self, Mode::Write, |c| {
            let d = c.dialect();
            let sql = sql!(
                d,
                "SELECT key_id FROM aliases WHERE {WHERE_NAME}{}",
                d.for_update()
            );
            let Some(mut current) = c.query_opt(sql, args![a, r, n]).await? else {
                return Ok(false);
            };
            if current.get::<String>()? != k {
                alias_limit(c, &k, max_per_key).await?;
            }
            c.execute(
                sql!(d, "UPDATE aliases SET key_id=$4 WHERE {WHERE_NAME}"),
                args![a, r, n, k],
            )
            .await?;
            c.notify(&Change::Alias(&a, &r, &n).payload()).await?;
            Ok(true)
        })
    }

    async fn delete_alias(&self, account_id: &str, region: &str, name: &str) -> StoreResult<bool> {
        let (a, r, n) = (account_id.to_string(), region.to_string(), name.to_string());
        run!(self, Mode::Write, |c| {
            let deleted = c
                .execute(
                    sql!(c.dialect(), "DELETE FROM aliases WHERE {WHERE_NAME}"),
                    args![a, r, n],
                )
                .await?;
            c.notify(&Change::Alias(&a, &r, &n).payload()).await?;
            Ok(deleted > 0)
        })
    }

    async fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        let (a, r, n) = (account_id.to_string(), region.to_string(), name.to_string());
        run!(self, Mode::Auto, |c| {
            c.select_one::<AliasRecord>(&format!("WHERE {WHERE_NAME}"), args![a, r, n])
                .await
        })
    }

    async fn list_aliases(
        &self,
        account_id: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> StoreResult<Vec<AliasRecord>> {
        let (a, r, k) = (
            account_id.to_string(),
            region.to_string(),
            key_id.map(str::to_string),
        );
        run!(self, Mode::Auto, |c| {
            c.select_all::<AliasRecord>(
                "WHERE account_id=$1 AND region=$2 AND (CAST($3 AS TEXT) IS NULL OR key_id=$3) \
                 ORDER BY alias_name",
                args![a, r, k],
            )
            .await
        })
    }
}
