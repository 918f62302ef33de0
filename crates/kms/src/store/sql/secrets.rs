//! Secrets Manager: secrets, their sealed versions, stages and tags, once for both engines.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::conn::{args, Conn};
use super::table::Table;
use super::tags::SECRET_TAGS;
use super::{run, sql, Backend, Mode, SqlStore};
use crate::model::{SecretRecord, SecretVersionMeta, SecretVersionRecord, Tag};
use crate::store::cache::Change;
use crate::store::{SecretChange, SecretMutation, SecretStore, StoreError, StoreResult};

/// The versions of a secret with their stages, newest first.
pub(super) async fn version_metas(
    c: &mut dyn Conn,
    secret_id: &str,
) -> StoreResult<Vec<SecretVersionMeta>> {
    let d = c.dialect();
    let mut versions: Vec<SecretVersionMeta> = c
        .query_all(
            sql!(
                d,
                "SELECT version_id, creation_date FROM secret_versions WHERE secret_id=$1 \
                 ORDER BY creation_date DESC, {} DESC",
                d.insertion_seq()
            ),
            args![secret_id],
            |r| {
                Ok(SecretVersionMeta {
                    version_id: r.get()?,
                    creation_date: r.get()?,
                    stages: Vec::new(),
                })
            },
        )
        .await?;
    let stages: Vec<(String, String)> = c
        .query_all(
            "SELECT stage, version_id FROM secret_stages WHERE secret_id=$1 ORDER BY stage",
            args![secret_id],
            |r| Ok((r.get()?, r.get()?)),
        )
        .await?;
    for (stage, version) in stages {
        if let Some(v) = versions.iter_mut().find(|v| v.version_id == version) {
            v.stages.push(stage);
        }
    }
    Ok(versions)
}

async fn insert_stage(
    c: &mut dyn Conn,
    secret_id: &str,
    stage: &str,
    version_id: &str,
) -> StoreResult<()> {
    c.execute(
        "INSERT INTO secret_stages (secret_id, stage, version_id) VALUES ($1,$2,$3)",
        args![secret_id, stage, version_id],
    )
    .await?;
    Ok(())
}

pub(super) async fn insert_secret_tag(
    c: &mut dyn Conn,
    secret_id: &str,
    t: &Tag,
) -> StoreResult<()> {
    SECRET_TAGS.insert(c, secret_id, t).await
}

async fn lock_secret(c: &mut dyn Conn, secret_id: &str) -> StoreResult<()> {
    if c.dialect().row_locks() {
        c.query(
            "SELECT 1 FROM secrets WHERE secret_id=$1 FOR UPDATE",
            args![secret_id],
        )
        .await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> SecretStore for SqlStore<B> {
    async fn insert_secret(
        &self,
        secret: SecretRecord,
        first: SecretVersionRecord,
        stages: Vec<String>,
        tags: Vec<Tag>,
        max_secrets: i64,
    ) -> StoreResult<()> {
        run!(self, Mode::Write, |c| {
            let n: i64 = c
                .query_value(
                    "SELECT COUNT(*) FROM secrets WHERE account_id=$1 AND region=$2",
                    args![secret.account_id, secret.region],
                )
                .await?;
            if n >= max_secrets {
                return Err(StoreError::LimitExceeded(format!(
                    "at most {max_secrets} secrets per account and region"
                )));
            }
            c.execute(SecretRecord::insert(), &secret.params()).await?;
            c.execute(SecretVersionRecord::insert(), &first.params())
                .await?;
            for s in &stages {
                insert_stage(c, &secret.secret_id, s, &first.version_id).await?;
            }
            for t in &tags {
                insert_secret_tag(c, &secret.secret_id, t).await?;
            }
            Ok(())
        })
    }

    async fn get_secret(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<SecretRecord>> {
        let (a, r, n) = (account_id.to_string(), region.to_string(), name.to_string());
        run!(self, Mode::Auto, |c| {
            c.select_one::<SecretRecord>(
                "WHERE account_id=$1 AND region=$2 AND secret_name=$3",
                args![a, r, n],
            )
            .await
        })
    }

    async fn list_secrets(&self, account_id: &str, region: &str) -> StoreResult<Vec<SecretRecord>> {
        let (a, r) = (account_id.to_string(), region.to_string());
        run!(self, Mode::Auto, |c| {
            c.select_all::<SecretRecord>(
                "WHERE account_id=$1 AND region=$2 ORDER BY creation_date, secret_name",
                args![a, r],
            )
            .await
        })
    }

    async fn update_secret(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        mutation: SecretMutation,
    ) -> StoreResult<Option<(SecretRecord, Vec<SecretVersionMeta>)>> {
        let (a, r, n) = (account_id.to_string(), region.to_string(), name.to_string());
        run!(self, Mode::Write, |c| {
            let d = c.dialect();
            let Some(mut secret) = c
                .select_one::<SecretRecord>(
                    sql!(
                        d,
                        "WHERE account_id=$1 AND region=$2 AND secret_name=$3{}",
                        d.for_update()
                    ),
                    args![a, r, n],
                )
                .await?
            else {
                return Ok(None);
            };
            let mut versions = version_metas(c, &secret.secret_id).await?;
            let changes = mutation(&mut secret, &mut versions).map_err(StoreError::Refused)?;
            c.execute(SecretRecord::update(), &secret.params()).await?;
            for change in changes {
                match change {
                    SecretChange::InsertVersion(v) => {
                        c.execute(SecretVersionRecord::insert(), &v.params())
                            .await?;
                    }
                    SecretChange::DeleteVersion(id) => {
                        c.execute(
                            "DELETE FROM secret_versions WHERE secret_id=$1 AND version_id=$2",
                            args![secret.secret_id, id],
                        )
                        .await?;
                    }
                }
            }
            // The stages as the mutation left them; a stage is on one version at most.
            c.execute(
                "DELETE FROM secret_stages WHERE secret_id=$1",
                args![secret.secret_id],
            )
            .await?;
            let mut seen = BTreeMap::new();
            for v in &versions {
                for s in &v.stages {
                    if seen.insert(s.clone(), v.version_id.clone()).is_some() {
                        return Err(StoreError::Corrupt(format!("stage {s} on two versions")));
                    }
                    insert_stage(c, &secret.secret_id, s, &v.version_id).await?;
                }
            }
            c.notify(&Change::Secret(&secret.secret_id).payload())
                .await?;
            Ok(Some((secret, versions)))
        })
    }

    async fn get_secret_version(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<SecretVersionRecord>> {
        let (s, v) = (secret_id.to_string(), version_id.to_string());
        run!(self, Mode::Auto, |c| {
            c.select_one::<SecretVersionRecord>("WHERE secret_id=$1 AND version_id=$2", args![s, v])
                .await
        })
    }

    async fn get_secret_version_by_stage(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> StoreResult<Option<SecretVersionRecord>> {
        let (s, st) = (secret_id.to_string(), stage.to_string());
        run!(self, Mode::Auto, |c| {
            c.select_one::<SecretVersionRecord>(
                "WHERE secret_id=$1 AND version_id = \
                 (SELECT version_id FROM secret_stages WHERE secret_id=$1 AND stage=$2)",
                args![s, st],
            )
            .await
        })
    }

    async fn list_secret_versions(&self, secret_id: &str) -> StoreResult<Vec<SecretVersionMeta>> {
        let s = secret_id.to_string();
        run!(self, Mode::Snapshot, |c| { version_metas(c, &s).await })
    }

    async fn delete_secret(&self, secret_id: &str) -> StoreResult<bool> {
        let s = secret_id.to_string();
        run!(self, Mode::Write, |c| {
            let n = c
                .execute("DELETE FROM secrets WHERE secret_id=$1", args![s])
                .await?;
            if n > 0 {
                c.notify(&Change::Secret(&s).payload()).await?;
            }
            Ok(n > 0)
        })
    }

    async fn delete_secret_if_due(&self, secret_id: &str, now: i64) -> StoreResult<bool> {
        let s = secret_id.to_string();
        run!(self, Mode::Write, |c| {
            let n = c
                .execute(
                    "DELETE FROM secrets WHERE secret_id=$1 \
                     AND planned_delete_time IS NOT NULL AND planned_delete_time <= $2",
                    args![s, now],
                )
                .await?;
            if n > 0 {
                c.notify(&Change::Secret(&s).payload()).await?;
            }
            Ok(n > 0)
        })
    }

    async fn due_secret_deletions(&self, now: i64) -> StoreResult<Vec<String>> {
        run!(self, Mode::Auto, |c| {
            c.query_all(
                "SELECT secret_id FROM secrets \
                 WHERE planned_delete_time IS NOT NULL AND planned_delete_time <= $1",
                args![now],
                |r| r.get(),
            )
            .await
        })
    }

    async fn list_secret_tags(&self, secret_id: &str) -> StoreResult<Vec<Tag>> {
        let s = secret_id.to_string();
        run!(self, Mode::Auto, |c| { SECRET_TAGS.list(c, &s).await })
    }

    async fn put_secret_tags(
        &self,
        secret_id: &str,
        tags: Vec<Tag>,
        max: usize,
    ) -> StoreResult<()> {
        let s = secret_id.to_string();
        run!(self, Mode::Write, |c| {
            lock_secret(c, &s).await?;
            SECRET_TAGS.put(c, &s, &tags, max).await
        })
    }

    async fn remove_secret_tags(
        &self,
        secret_id: &str,
        tag_keys: Option<Vec<String>>,
    ) -> StoreResult<()> {
        let s = secret_id.to_string();
        run!(self, Mode::Write, |c| {
            SECRET_TAGS.remove(c, &s, tag_keys.as_deref()).await
        })
    }

    async fn list_account_secret_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<(String, Tag)>> {
        let (a, r) = (account_id.to_string(), region.to_string());
        run!(self, Mode::Auto, |c| {
            c.query_all(
                "SELECT t.secret_id, t.tag_key, t.tag_value FROM secret_tags t \
                 JOIN secrets s ON s.secret_id = t.secret_id \
                 WHERE s.account_id=$1 AND s.region=$2 ORDER BY t.secret_id, t.tag_key",
                args![a, r],
                super::tags::key_tag,
            )
            .await
        })
    }
}
