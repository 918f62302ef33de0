//! Tags on keys.

use async_trait::async_trait;

use super::conn::{args, Conn, Row};
use super::keys::lock_key;
use super::{run, Backend, Mode, SqlStore};
use crate::model::Tag;
use crate::store::{StoreError, StoreResult, TagStore};

/// A `(key_id, tag_key, tag_value)` row.
pub(super) fn key_tag(r: &mut Row) -> StoreResult<(String, Tag)> {
    Ok((
        r.get()?,
        Tag {
            key: r.get()?,
            value: r.get()?,
        },
    ))
}

pub(super) async fn insert_tag(c: &mut dyn Conn, key_id: &str, t: &Tag) -> StoreResult<()> {
    c.execute(
        "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES ($1,$2,$3)",
        args![key_id, t.key, t.value],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> TagStore for SqlStore<B> {
    async fn list_tags(&self, key_id: &str) -> StoreResult<Vec<Tag>> {
        let k = key_id.to_string();
        run!(self, Mode::Auto, |c| {
            c.query_all(
                "SELECT tag_key, tag_value FROM key_tags WHERE key_id=$1 ORDER BY tag_key",
                args![k],
                |r| {
                    Ok(Tag {
                        key: r.get()?,
                        value: r.get()?,
                    })
                },
            )
            .await
        })
    }

    async fn put_tags(&self, key_id: &str, tags: Vec<Tag>, max: usize) -> StoreResult<()> {
        let k = key_id.to_string();
        run!(self, Mode::Write, |c| {
            lock_key(c, &k).await?;
            for t in &tags {
                c.execute(
                    "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES ($1,$2,$3) \
                         ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value=excluded.tag_value",
                    args![k, t.key, t.value],
                )
                .await?;
            }
            let n: i64 = c
                .query_value("SELECT COUNT(*) FROM key_tags WHERE key_id=$1", args![k])
                .await?;
            if usize::try_from(n).map_or(true, |n| n > max) {
                // Rolls back the tags written above.
                return Err(StoreError::LimitExceeded(format!(
                    "at most {max} tags per key"
                )));
            }
            Ok(())
        })
    }

    async fn remove_tags(&self, key_id: &str, tag_keys: Option<Vec<String>>) -> StoreResult<()> {
        let k = key_id.to_string();
        run!(self, Mode::Write, |c| {
            match tag_keys {
                None => {
                    c.execute("DELETE FROM key_tags WHERE key_id=$1", args![k])
                        .await?;
                }
                Some(keys) => {
                    for t in keys {
                        c.execute(
                            "DELETE FROM key_tags WHERE key_id=$1 AND tag_key=$2",
                            args![k, t],
                        )
                        .await?;
                    }
                }
            }
            Ok(())
        })
    }

    async fn list_account_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<(String, Tag)>> {
        let (a, r) = (account_id.to_string(), region.to_string());
        run!(self, Mode::Auto, |c| {
            c.query_all(
                "SELECT t.key_id, t.tag_key, t.tag_value FROM key_tags t \
                     JOIN keys k ON k.key_id = t.key_id \
                     WHERE k.account_id=$1 AND k.region=$2 ORDER BY t.key_id, t.tag_key",
                args![a, r],
                key_tag,
            )
            .await
        })
    }
}
