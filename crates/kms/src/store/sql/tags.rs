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

/// A table of tags on one kind of resource: the statements each tag action runs, written
/// once for keys and secrets.
pub(super) struct TagTable {
    /// The resource, in the limit's message ("at most 20 tags per key").
    noun: &'static str,
    list: &'static str,
    insert: &'static str,
    upsert: &'static str,
    count: &'static str,
    delete_all: &'static str,
    delete_one: &'static str,
}

pub(super) const KEY_TAGS: TagTable = TagTable {
    noun: "key",
    list: "SELECT tag_key, tag_value FROM key_tags WHERE key_id=$1 ORDER BY tag_key",
    insert: "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES ($1,$2,$3)",
    upsert: "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES ($1,$2,$3) \
             ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value=excluded.tag_value",
    count: "SELECT COUNT(*) FROM key_tags WHERE key_id=$1",
    delete_all: "DELETE FROM key_tags WHERE key_id=$1",
    delete_one: "DELETE FROM key_tags WHERE key_id=$1 AND tag_key=$2",
};

pub(super) const SECRET_TAGS: TagTable = TagTable {
    noun: "secret",
    list: "SELECT tag_key, tag_value FROM secret_tags WHERE secret_id=$1 ORDER BY tag_key",
    insert: "INSERT INTO secret_tags (secret_id, tag_key, tag_value) VALUES ($1,$2,$3)",
    upsert: "INSERT INTO secret_tags (secret_id, tag_key, tag_value) VALUES ($1,$2,$3) \
             ON CONFLICT (secret_id, tag_key) DO UPDATE SET tag_value=excluded.tag_value",
    count: "SELECT COUNT(*) FROM secret_tags WHERE secret_id=$1",
    delete_all: "DELETE FROM secret_tags WHERE secret_id=$1",
    delete_one: "DELETE FROM secret_tags WHERE secret_id=$1 AND tag_key=$2",
};

impl TagTable {
    /// The tags of resource `id`, by tag key.
    pub(super) async fn list(&self, c: &mut dyn Conn, id: &str) -> StoreResult<Vec<Tag>> {
        c.query_all(self.list, args![id], |r| {
            Ok(Tag {
                key: r.get()?,
                value: r.get()?,
            })
        })
        .await
    }

    /// Adds one tag to a new resource (no tag of that key yet).
    pub(super) async fn insert(&self, c: &mut dyn Conn, id: &str, t: &Tag) -> StoreResult<()> {
        c.execute(self.insert, args![id, t.key, t.value]).await?;
        Ok(())
    }

    /// Sets `tags` on resource `id` (a tag key already there takes the new value); more than
    /// `max` tags in all is refused and, the caller's transaction rolled back, writes nothing.
    /// The caller holds the resource's row lock.
    pub(super) async fn put(
        &self,
        c: &mut dyn Conn,
        id: &str,
        tags: &[Tag],
        max: usize,
    ) -> StoreResult<()> {
        for t in tags {
            c.execute(self.upsert, args![id, t.key, t.value]).await?;
        }
        let n: i64 = c.query_value(self.count, args![id]).await?;
        if usize::try_from(n).map_or(true, |n| n > max) {
            // Rolls back the tags written above.
            return Err(StoreError::LimitExceeded(format!(
                "at most {max} tags per {}",
                self.noun
            )));
        }
        Ok(())
    }

    /// Removes the tags of `tag_keys` from resource `id`, or all of them when `None`.
    pub(super) async fn remove(
        &self,
        c: &mut dyn Conn,
        id: &str,
        tag_keys: Option<&[String]>,
    ) -> StoreResult<()> {
        match tag_keys {
            None => {
                c.execute(self.delete_all, args![id]).await?;
            }
            Some(keys) => {
                for t in keys {
                    c.execute(self.delete_one, args![id, t]).await?;
                }
            }
        }
        Ok(())
    }
}

pub(super) async fn insert_tag(c: &mut dyn Conn, key_id: &str, t: &Tag) -> StoreResult<()> {
    KEY_TAGS.insert(c, key_id, t).await
}

#[async_trait]
impl<B: Backend> TagStore for SqlStore<B> {
    async fn list_tags(&self, key_id: &str) -> StoreResult<Vec<Tag>> {
        let k = key_id.to_string();
        run!(self, Mode::Auto, |c| { KEY_TAGS.list(c, &k).await })
    }

    async fn put_tags(&self, key_id: &str, tags: Vec<Tag>, max: usize) -> StoreResult<()> {
        let k = key_id.to_string();
        run!(self, Mode::Write, |c| {
            lock_key(c, &k).await?;
            KEY_TAGS.put(c, &k, &tags, max).await
        })
    }

    async fn remove_tags(&self, key_id: &str, tag_keys: Option<Vec<String>>) -> StoreResult<()> {
        let k = key_id.to_string();
        run!(self, Mode::Write, |c| {
            KEY_TAGS.remove(c, &k, tag_keys.as_deref()).await
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
