//! Every row at once: export (one snapshot) and import (one transaction, into an empty
//! store), for `kms admin migrate-store`.

use async_trait::async_trait;

use super::conn::{args, Conn, ToParam};
use super::table::Table;
use super::tags::{insert_tag, key_tag};
use super::{run, sql, Backend, Mode, SqlStore};
use crate::model::{
    AccessKeyRecord, AliasRecord, ConsoleUserRecord, KeyRecord, KeyVersionRecord, WrappingKeyRecord,
};
use crate::progress::Progress;
use crate::store::cache::Change;
use crate::store::{Dump, DumpStore, StoreError, StoreResult};

async fn export(c: &mut dyn Conn) -> StoreResult<Dump> {
    let d = c.dialect();
    Ok(Dump {
        meta: c
            .query_all("SELECT name, value FROM meta ORDER BY name", &[], |r| {
                Ok((r.get()?, r.get()?))
            })
            .await?,
        accounts: c
            .query_all(
                "SELECT account_id, creation_date FROM accounts ORDER BY account_id",
                &[],
                |r| Ok((r.get()?, r.get()?)),
            )
            .await?,
        access_keys: c.select_all("ORDER BY access_key_id", &[]).await?,
        keys: c.select_all("ORDER BY key_id", &[]).await?,
        versions: c
            .select_all(
                sql!(d, "ORDER BY key_id, creation_date, {}", d.insertion_seq()),
                &[],
            )
            .await?,
        tags: c
            .query_all(
                "SELECT key_id, tag_key, tag_value FROM key_tags ORDER BY key_id, tag_key",
                &[],
                key_tag,
            )
            .await?,
        aliases: c
            .select_all("ORDER BY account_id, region, alias_name", &[])
            .await?,
        wrapping_keys: c
            .query_all(
                sql!(
                    d,
                    "SELECT {}, failures FROM wrapping_keys ORDER BY wrapping_key_id",
                    WrappingKeyRecord::columns()
                ),
                &[],
                |r| Ok((WrappingKeyRecord::read(r)?, r.get()?)),
            )
            .await?,
        console_users: c.select_all("ORDER BY user_name", &[]).await?,
    })
}

async fn import(c: &mut dyn Conn, dump: &Dump, progress: &Progress) -> StoreResult<()> {
    let existing: i64 = c
        .query_value(
            "SELECT (SELECT COUNT(*) FROM keys) + (SELECT COUNT(*) FROM access_keys)",
            &[],
        )
        .await?;
    if existing > 0 {
        return Err(StoreError::NotEmpty);
    }
    for (name, value) in &dump.meta {
        c.execute(
            "INSERT INTO meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value=excluded.value",
            args![name, value],
        )
        .await?;
        progress.inc(1);
    }
    for (id, date) in &dump.accounts {
        c.execute(
            "INSERT INTO accounts (account_id, creation_date) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            args![id, date],
        )
        .await?;
        progress.inc(1);
    }
    for ak in &dump.access_keys {
        c.execute(AccessKeyRecord::insert(), &ak.params()).await?;
        progress.inc(1);
    }
    for k in &dump.keys {
        c.execute(KeyRecord::insert(), &k.params()).await?;
        progress.inc(1);
    }
    for v in &dump.versions {
        c.execute(KeyVersionRecord::insert(), &v.params()).await?;
        progress.inc(1);
    }
    for (key_id, t) in &dump.tags {
        insert_tag(c, key_id, t).await?;
        progress.inc(1);
    }
    for a in &dump.aliases {
        c.execute(AliasRecord::insert(), &a.params()).await?;
        progress.inc(1);
    }
    let d = c.dialect();
    for (wk, failures) in &dump.wrapping_keys {
        let mut params = wk.params();
        params.push(failures.param());
        c.execute(
            sql!(
                d,
                "INSERT INTO wrapping_keys ({}, failures) VALUES ($1,$2,$3,$4,$5,$6,$7)",
                WrappingKeyRecord::columns()
            ),
            &params,
        )
        .await?;
        progress.inc(1);
    }
    for u in &dump.console_users {
        c.execute(ConsoleUserRecord::insert(), &u.params()).await?;
        progress.inc(1);
    }
    c.notify(&Change::All.payload()).await
}

#[async_trait]
impl<B: Backend> DumpStore for SqlStore<B> {
    async fn export(&self) -> StoreResult<Dump> {
        self.run(Mode::Snapshot, |c| Box::pin(export(c))).await
    }

    async fn import_with_progress(&self, dump: Dump, progress: Progress) -> StoreResult<()> {
        run!(self, Mode::Write, |c| { import(c, &dump, &progress).await })
    }
}
