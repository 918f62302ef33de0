//! RAM identities: entities (users, groups, roles, custom policies), links (memberships,
//! attachments), RAM users' access keys and STS sessions. Every write announces
//! [`Change::Ram`].

use async_trait::async_trait;

use super::conn::{args, Conn};
use super::table::Table;
use super::{run, sql, Backend, Mode, SqlStore};
use crate::model::StsSessionRecord;
use crate::model::{AccessKeyRecord, RamEntityRecord, RamKind, RamLinkKind, RamLinkRecord};
use crate::store::cache::Change;
use crate::store::{RamMutation, RamStore, RamUsage, RamWrite, StoreError, StoreResult};

/// Locks an account's row (PostgreSQL; a SQLite write transaction holds the database), so
/// that two inserts racing for the last place under a limit check in turn.
async fn lock_account(c: &mut dyn Conn, account_id: &str) -> StoreResult<()> {
    let d = c.dialect();
    if d.row_locks() {
        c.query(
            sql!(
                d,
                "SELECT 1 FROM accounts WHERE account_id=$1{}",
                d.for_update()
            ),
            args![account_id],
        )
        .await?;
    }
    Ok(())
}

async fn lock_entity(c: &mut dyn Conn, entity_id: &str) -> StoreResult<()> {
    let d = c.dialect();
    if d.row_locks() {
        c.query(
            sql!(
                d,
                "SELECT 1 FROM ram_entities WHERE entity_id=$1{}",
                d.for_update()
            ),
            args![entity_id],
        )
        .await?;
    }
    Ok(())
}

fn duplicate_is(e: StoreError, what: &str) -> StoreError {
    match e {
        StoreError::Duplicate(_) => StoreError::Duplicate(what.to_string()),
        e => e,
    }
}

#[async_trait]
impl<B: Backend> RamStore for SqlStore<B> {
    async fn insert_ram_entity(&self, e: RamEntityRecord, max: i64) -> StoreResult<()> {
        run!(self, Mode::Write, |c| {
            lock_account(c, &e.account_id).await?;
            let n: i64 = c
                .query_value(
                    "SELECT COUNT(*) FROM ram_entities WHERE account_id=$1 AND kind=$2",
                    args![e.account_id, e.kind],
                )
                .await?;
            if n >= max {
                return Err(StoreError::LimitExceeded(format!(
                    "at most {max} of kind {}",
                    e.kind
                )));
            }
            c.execute(RamEntityRecord::insert(), &e.params())
                .await
                .map_err(|x| duplicate_is(x, &e.name))?;
            c.notify(&Change::Ram.payload()).await
        })
    }

    async fn get_ram_entity(
        &self,
        account_id: &str,
        kind: RamKind,
        name: &str,
    ) -> StoreResult<Option<RamEntityRecord>> {
        let (a, n) = (account_id.to_string(), name.to_string());
        let k = kind.as_str();
        run!(self, Mode::Auto, |c| {
            c.select_one::<RamEntityRecord>(
                "WHERE account_id=$1 AND kind=$2 AND name=$3",
                args![a, k, n],
            )
            .await
        })
    }

    async fn get_ram_entity_by_id(&self, entity_id: &str) -> StoreResult<Option<RamEntityRecord>> {
        let id = entity_id.to_string();
        run!(self, Mode::Auto, |c| {
            c.select_one::<RamEntityRecord>("WHERE entity_id=$1", args![id])
                .await
        })
    }

    async fn list_ram_entities(
        &self,
        account_id: &str,
        kind: RamKind,
    ) -> StoreResult<Vec<RamEntityRecord>> {
        let a = account_id.to_string();
        let k = kind.as_str();
        run!(self, Mode::Auto, |c| {
            c.select_all::<RamEntityRecord>(
                "WHERE account_id=$1 AND kind=$2 ORDER BY name",
                args![a, k],
            )
            .await
        })
    }

    async fn update_ram_entity(
        &self,
        account_id: &str,
        kind: RamKind,
        name: &str,
        mutation: RamMutation,
    ) -> StoreResult<Option<RamEntityRecord>> {
        let (a, n) = (account_id.to_string(), name.to_string());
        let k = kind.as_str();
        run!(self, Mode::Write, |c| {
            let d = c.dialect();
            let Some(mut e) = c
                .select_one::<RamEntityRecord>(
                    sql!(
                        d,
                        "WHERE account_id=$1 AND kind=$2 AND name=$3{}",
                        d.for_update()
                    ),
                    args![a, k, n],
                )
                .await?
            else {
                return Ok(None);
            };
            let id = e.entity_id.clone();
            let mut links = c
                .select_all::<RamLinkRecord>(
                    "WHERE source_id=$1 OR target_id=$1 ORDER BY created, source_id, target_id",
                    args![id],
                )
                .await?;
            links.sort_by(|x, y| (x.created, &x.source_id).cmp(&(y.created, &y.source_id)));
            let access_keys: i64 = c
                .query_value(
                    "SELECT COUNT(*) FROM access_keys WHERE user_id=$1",
                    args![id],
                )
                .await?;
            let usage = RamUsage { links, access_keys };
            let before = e.clone();
            match mutation(&mut e, &usage).map_err(StoreError::Refused)? {
                RamWrite::Keep => return Ok(Some(e)),
                RamWrite::Update => {
                    // The id, account and kind never change.
                    e.entity_id = before.entity_id.clone();
                    e.account_id = before.account_id.clone();
                    e.kind = before.kind.clone();
                    c.execute(RamEntityRecord::update(), &e.params())
                        .await
                        .map_err(|x| duplicate_is(x, &e.name))?;
                }
                RamWrite::Delete => {
                    c.execute(
                        "DELETE FROM ram_links WHERE source_id=$1 OR target_id=$1",
                        args![id],
                    )
                    .await?;
                    c.execute("DELETE FROM access_keys WHERE user_id=$1", args![id])
                        .await?;
                    c.execute("DELETE FROM ram_entities WHERE entity_id=$1", args![id])
                        .await?;
                    e = before;
                }
            }
            c.notify(&Change::Ram.payload()).await?;
            Ok(Some(e))
        })
    }

    async fn add_ram_link(&self, link: RamLinkRecord, max: i64) -> StoreResult<()> {
        run!(self, Mode::Write, |c| {
            lock_entity(c, &link.source_id).await?;
            let system = link.target_id.starts_with("system:");
            let targets: Vec<String> = c
                .query_all(
                    "SELECT target_id FROM ram_links WHERE kind=$1 AND source_id=$2",
                    args![link.kind, link.source_id],
                    |r| r.get(),
                )
                .await?;
            if targets.contains(&link.target_id) {
                return Err(StoreError::Duplicate(link.target_id.clone()));
            }
            let n = targets
                .iter()
                .filter(|t| t.starts_with("system:") == system)
                .count();
            if n as i64 >= max {
                return Err(StoreError::LimitExceeded(format!("at most {max} links")));
            }
            c.execute(RamLinkRecord::insert(), &link.params())
                .await
                .map_err(|x| duplicate_is(x, &link.target_id))?;
            c.notify(&Change::Ram.payload()).await
        })
    }

    async fn remove_ram_link(
        &self,
        kind: RamLinkKind,
        source_id: &str,
        target_id: &str,
    ) -> StoreResult<bool> {
        let (s, t) = (source_id.to_string(), target_id.to_string());
        let k = kind.as_str();
        run!(self, Mode::Write, |c| {
            let n = c
                .execute(
                    "DELETE FROM ram_links WHERE kind=$1 AND source_id=$2 AND target_id=$3",
                    args![k, s, t],
                )
                .await?;
            c.notify(&Change::Ram.payload()).await?;
            Ok(n > 0)
        })
    }

    async fn list_ram_links(
        &self,
        kind: RamLinkKind,
        source_id: Option<&str>,
        target_id: Option<&str>,
    ) -> StoreResult<Vec<RamLinkRecord>> {
        let (s, t) = (source_id.map(str::to_string), target_id.map(str::to_string));
        let k = kind.as_str();
        run!(self, Mode::Auto, |c| {
            const ORDER: &str = " ORDER BY created, source_id, target_id";
            match (s, t) {
                (Some(s), Some(t)) => {
                    let q = sql!(
                        c.dialect(),
                        "WHERE kind=$1 AND source_id=$2 AND target_id=$3{ORDER}"
                    );
                    c.select_all::<RamLinkRecord>(q, args![k, s, t]).await
                }
                (Some(s), None) => {
                    let q = sql!(c.dialect(), "WHERE kind=$1 AND source_id=$2{ORDER}");
                    c.select_all::<RamLinkRecord>(q, args![k, s]).await
                }
                (None, Some(t)) => {
                    let q = sql!(c.dialect(), "WHERE kind=$1 AND target_id=$2{ORDER}");
                    c.select_all::<RamLinkRecord>(q, args![k, t]).await
                }
                (None, None) => {
                    let q = sql!(c.dialect(), "WHERE kind=$1{ORDER}");
                    c.select_all::<RamLinkRecord>(q, args![k]).await
                }
            }
        })
    }

    async fn list_user_access_keys(&self, user_id: &str) -> StoreResult<Vec<AccessKeyRecord>> {
        let id = user_id.to_string();
        run!(self, Mode::Auto, |c| {
            c.select_all::<AccessKeyRecord>(
                "WHERE user_id=$1 ORDER BY creation_date, access_key_id",
                args![id],
            )
            .await
        })
    }

    async fn insert_user_access_key(&self, ak: AccessKeyRecord, max: i64) -> StoreResult<()> {
        run!(self, Mode::Write, |c| {
            let user = ak.user_id.clone().unwrap_or_default();
            lock_entity(c, &user).await?;
            let n: i64 = c
                .query_value(
                    "SELECT COUNT(*) FROM access_keys WHERE user_id=$1",
                    args![user],
                )
                .await?;
            if n >= max {
                return Err(StoreError::LimitExceeded(format!(
                    "at most {max} access keys per user"
                )));
            }
            c.execute(AccessKeyRecord::insert(), &ak.params()).await?;
            c.notify(&Change::AccessKey(&ak.access_key_id).payload())
                .await
        })
    }

    async fn insert_sts_session(&self, s: StsSessionRecord) -> StoreResult<()> {
        run!(self, Mode::Auto, |c| {
            c.execute(StsSessionRecord::insert(), &s.params()).await?;
            Ok(())
        })
    }

    async fn get_sts_session(&self, access_key_id: &str) -> StoreResult<Option<StsSessionRecord>> {
        let id = access_key_id.to_string();
        run!(self, Mode::Auto, |c| {
            c.select_one::<StsSessionRecord>("WHERE access_key_id=$1", args![id])
                .await
        })
    }

    async fn purge_sts_sessions(&self, now: i64) -> StoreResult<u64> {
        run!(self, Mode::Auto, |c| {
            c.execute("DELETE FROM sts_sessions WHERE expiration < $1", args![now])
                .await
        })
    }
}
