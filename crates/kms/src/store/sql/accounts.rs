//! Metadata, accounts and access keys.

use async_trait::async_trait;

use super::conn::args;
use super::table::Table;
use super::{run, Backend, Mode, SqlStore};
use crate::store::cache::Change;
use crate::store::{AccessKeyRecord, AccountStore, MetaStore, StoreResult};

const SELECT_META: &str = "SELECT value FROM meta WHERE name=$1";

#[async_trait]
impl<B: Backend> MetaStore for SqlStore<B> {
    async fn get_meta(&self, name: &str) -> StoreResult<Option<String>> {
        let name = name.to_string();
        run!(self, Mode::Auto, |c| {
            match c.query_opt(SELECT_META, args![name]).await? {
                Some(mut r) => Ok(Some(r.get()?)),
                None => Ok(None),
            }
        })
    }

    async fn set_meta(&self, name: &str, value: &str) -> StoreResult<()> {
        let (name, value) = (name.to_string(), value.to_string());
        run!(self, Mode::Auto, |c| {
            c.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value=excluded.value",
                args![name, value],
            )
            .await?;
            Ok(())
        })
    }

    async fn init_meta(&self, name: &str, value: &str) -> StoreResult<String> {
        let (name, value) = (name.to_string(), value.to_string());
        run!(self, Mode::Auto, |c| {
            c.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                args![name, value],
            )
            .await?;
            c.query_value(SELECT_META, args![name]).await
        })
    }
}

#[async_trait]
impl<B: Backend> AccountStore for SqlStore<B> {
    async fn ensure_account(&self, account_id: &str, now: i64) -> StoreResult<()> {
        let id = account_id.to_string();
        run!(self, Mode::Auto, |c| {
            c.execute(
                "INSERT INTO accounts (account_id, creation_date) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                args![id, now],
            )
            .await?;
            Ok(())
        })
    }

    async fn insert_access_key(&self, ak: AccessKeyRecord) -> StoreResult<()> {
        run!(self, Mode::Auto, |c| {
            c.execute(AccessKeyRecord::insert(), &ak.params()).await?;
            Ok(())
        })
    }

    async fn get_access_key(&self, id: &str) -> StoreResult<Option<AccessKeyRecord>> {
        let id = id.to_string();
        run!(self, Mode::Auto, |c| {
            c.select_one::<AccessKeyRecord>("WHERE access_key_id=$1", args![id])
                .await
        })
    }

    async fn list_access_keys(&self) -> StoreResult<Vec<AccessKeyRecord>> {
        run!(self, Mode::Auto, |c| {
            c.select_all::<AccessKeyRecord>("ORDER BY creation_date, access_key_id", &[])
                .await
        })
    }

    async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> StoreResult<bool> {
        let id = id.to_string();
        run!(self, Mode::Write, |c| {
            let n = c
                .execute(
                    "UPDATE access_keys SET enabled=$2 WHERE access_key_id=$1",
                    args![id, enabled],
                )
                .await?;
            c.notify(&Change::AccessKey(&id).payload()).await?;
            Ok(n > 0)
        })
    }

    async fn delete_access_key(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        run!(self, Mode::Write, |c| {
            let n = c
                .execute("DELETE FROM access_keys WHERE access_key_id=$1", args![id])
                .await?;
            c.notify(&Change::AccessKey(&id).payload()).await?;
            Ok(n > 0)
        })
    }
}
