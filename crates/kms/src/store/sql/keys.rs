//! Keys and their versions: the per-region limit, ListKeys' page, read-modify-write of a
//! key, deletion when due, and the sweeper's queries.

use async_trait::async_trait;

use super::conn::{args, Conn, Dialect, Param, ToParam};
use super::table::Table;
use super::tags::insert_tag;
use super::{run, sql, Backend, Mode, SqlStore};
use crate::model::{KeyLocator, KeyRecord, KeyState, KeyVersionRecord, Origin, Tag};
use crate::store::cache::Change;
use crate::store::{
    KeyCount, KeyField, KeyMutation, KeyStore, StoreError, StoreResult, VersionChange,
};

/// The state ListKeys shows, in SQL: imported material past its expiry (at `$3`) reads as
/// PendingImport. The SQL form of [`KeyRecord::material_expired`] and
/// [`KeyRecord::remove_material`], for filtering by state before paging; the store tests
/// check that the two agree.
pub fn shown_state(d: Dialect) -> &'static str {
    sql!(
        d,
        "(CASE WHEN {} AND material_expire IS NOT NULL AND material_expire <= $3 \
         AND state <> 'PendingDeletion' THEN 'PendingImport' ELSE state END)",
        d.is_true("material_present")
    )
}

/// Keys past their deletion date (at `$3`), which ListKeys leaves out.
const GONE: &str = "(state='PendingDeletion' AND delete_date IS NOT NULL AND delete_date <= $3)";

/// The key count of an account and region, kept by triggers (exact, no scan). With `lock`,
/// its row is created if missing and locked, so concurrent inserts check the limit in turn.
async fn key_count(
    c: &mut dyn Conn,
    account_id: &str,
    region: &str,
    lock: bool,
) -> StoreResult<i64> {
    let d = c.dialect();
    if lock {
        c.execute(
            "INSERT INTO key_counts (account_id, region, n) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
            args![account_id, region],
        )
        .await?;
    }
    let sql = if lock {
        sql!(
            d,
            "SELECT n FROM key_counts WHERE account_id=$1 AND region=$2{}",
            d.for_update()
        )
    } else {
        "SELECT n FROM key_counts WHERE account_id=$1 AND region=$2"
    };
    match c.query_opt(sql, args![account_id, region]).await? {
        Some(mut r) => r.get(),
        None => Ok(0),
    }
}

/// Locks a key row until the transaction ends (serialises per-key limit checks where rows
/// are locked one by one).
pub(super) async fn lock_key(c: &mut dyn Conn, key_id: &str) -> StoreResult<()> {
    if c.dialect().row_locks() {
        c.query(
            "SELECT 1 FROM keys WHERE key_id=$1 FOR UPDATE",
            args![key_id],
        )
        .await?;
    }
    Ok(())
}

async fn insert_version(c: &mut dyn Conn, v: &KeyVersionRecord) -> StoreResult<()> {
    c.execute(KeyVersionRecord::insert(), &v.params()).await?;
    Ok(())
}

/// One key by its locator (with `lock`, locked until the transaction ends).
async fn select_key(
    c: &mut dyn Conn,
    loc: &KeyLocator,
    lock: bool,
) -> StoreResult<Option<KeyRecord>> {
    let d = c.dialect();
    let rest = if lock {
        sql!(d, "{WHERE_LOCATOR}{}", d.for_update())
    } else {
        WHERE_LOCATOR
    };
    c.select_one(rest, args![loc.key_id, loc.account_id, loc.region])
        .await
}

const WHERE_LOCATOR: &str = "WHERE key_id=$1 AND account_id=$2 AND region=$3";

async fn locators(c: &mut dyn Conn, sql: &str, now: i64) -> StoreResult<Vec<KeyLocator>> {
    c.query_all(sql, args![now], |r| {
        Ok(KeyLocator {
            account_id: r.get()?,
            region: r.get()?,
            key_id: r.get()?,
        })
    })
    .await
}

/// ListKeys: the total that match and one page, as the keys read at `now`.
async fn keys_page(
    c: &mut dyn Conn,
    account_id: &str,
    region: &str,
    now: i64,
    filters: &[(KeyField, Vec<String>)],
    offset: usize,
    limit: usize,
) -> StoreResult<(Vec<KeyRecord>, usize)> {
    let d = c.dialect();
    let mut filter_sql = String::new();
    let mut args: Vec<Param<'_>> = vec![account_id.param(), region.param(), now.param()];
    for (field, accepted) in filters {
        let column = match field {
            KeyField::State => shown_state(d),
            KeyField::Spec => "key_spec",
            KeyField::Usage => "key_usage",
            KeyField::ProtectionLevel => "protection_level",
            KeyField::Origin => "origin",
        };
        let mut marks = Vec::with_capacity(accepted.len());
        for v in accepted {
            args.push(v.param());
            marks.push(format!("${}", args.len()));
        }
        filter_sql.push_str(&format!(" AND {column} IN ({})", marks.join(",")));
    }
    let base = format!("FROM keys WHERE account_id=$1 AND region=$2 AND NOT {GONE}{filter_sql}");
    let total = if filters.is_empty() {
        // Exact without a scan: the trigger-kept count, less the keys already past their
        // deletion date that no sweeper has removed yet (an index range).
        let due: i64 = c
            .query_value(
                sql!(
                    d,
                    "SELECT COUNT(*) FROM keys{} WHERE delete_date IS NOT NULL AND delete_date <= $3 \
                     AND state='PendingDeletion' AND account_id=$1 AND region=$2",
                    d.indexed_by("keys_by_delete_date")
                ),
                args![account_id, region, now],
            )
            .await?;
        (key_count(c, account_id, region, false).await? - due).max(0) as usize
    } else {
        let n: i64 = c
            .query_once(&format!("SELECT COUNT(*) {base}"), &args)
            .await?
            .first_mut()
            .map(|r| r.get())
            .transpose()?
            .unwrap_or(0);
        n as usize
    };
    if offset >= total {
        return Ok((Vec::new(), total));
    }
    // Pages in the second half are read from the end, so the last page is as quick as the
    // first (OFFSET walks the index).
    let from_end = offset > total / 2;
    let (order, skip, take) = if from_end {
        let end = offset.saturating_add(limit).min(total);
        ("DESC", total - end, end - offset)
    } else {
        ("ASC", offset, limit)
    };
    let (take, skip) = (
        i64::try_from(take).unwrap_or(i64::MAX),
        i64::try_from(skip).unwrap_or(i64::MAX),
    );
    args.push(take.param());
    args.push(skip.param());
    let n = args.len();
    let sql = format!(
        "SELECT {} {base} ORDER BY creation_date {order}, key_id {order} LIMIT ${} OFFSET ${n}",
        KeyRecord::columns(),
        n - 1,
    );
    let mut keys = c.query_once(&sql, &args).await?;
    if from_end {
        keys.reverse();
    }
    keys.iter_mut()
        .map(|r| {
            let mut k = KeyRecord::read(r)?;
            k.as_of(now);
            Ok(k)
        })
        .collect::<StoreResult<Vec<_>>>()
        .map(|keys| (keys, total))
}

#[async_trait]
impl<B: Backend> KeyStore for SqlStore<B> {
    async fn insert_key(
        &self,
        key: KeyRecord,
        first: KeyVersionRecord,
        tags: Vec<Tag>,
        max_keys: i64,
    ) -> StoreResult<()> {
        run!(self, Mode::Write, |c| {
            if key_count(c, &key.account_id, &key.region, true).await? >= max_keys {
                return Err(StoreError::LimitExceeded(format!(
                    "at most {max_keys} keys per account and region"
                )));
            }
            c.execute(KeyRecord::insert(), &key.params()).await?;
            insert_version(c, &first).await?;
            for t in &tags {
                insert_tag(c, &key.key_id, t).await?;
            }
            Ok(())
        })
    }

    async fn insert_keys_bulk(&self, keys: Vec<(KeyRecord, KeyVersionRecord)>) -> StoreResult<()> {
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            let chunk: Vec<_> = keys.by_ref().take(5_000).collect();
            run!(self, Mode::Write, |c| {
                for (k, v) in &chunk {
                    c.execute(KeyRecord::insert(), &k.params()).await?;
                    insert_version(c, v).await?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    async fn list_keys_page(
        &self,
        account_id: &str,
        region: &str,
        now: i64,
        filters: &[(KeyField, Vec<String>)],
        offset: usize,
        limit: usize,
    ) -> StoreResult<(Vec<KeyRecord>, usize)> {
        let (a, r, filters) = (account_id.to_string(), region.to_string(), filters.to_vec());
        run!(self, Mode::Snapshot, |c| {
            keys_page(c, &a, &r, now, &filters, offset, limit).await
        })
    }

    async fn get_key(&self, loc: &KeyLocator) -> StoreResult<Option<KeyRecord>> {
        let loc = loc.clone();
        run!(self, Mode::Auto, |c| { select_key(c, &loc, false).await })
    }

    async fn list_keys(&self, account_id: &str, region: &str) -> StoreResult<Vec<KeyRecord>> {
        let (a, r) = (account_id.to_string(), region.to_string());
        run!(self, Mode::Auto, |c| {
            c.select_all::<KeyRecord>(
                "WHERE account_id=$1 AND region=$2 ORDER BY creation_date, key_id",
                args![a, r],
            )
            .await
        })
    }

    async fn update_key(
        &self,
        loc: &KeyLocator,
        mutation: KeyMutation,
    ) -> StoreResult<Option<KeyRecord>> {
        let loc = loc.clone();
        run!(self, Mode::Write, |c| {
            let Some(mut key) = select_key(c, &loc, true).await? else {
                return Ok(None);
            };
            let changes = mutation(&mut key).map_err(StoreError::Refused)?;
            c.execute(KeyRecord::update(), &key.params()).await?;
            for change in changes {
                match change {
                    VersionChange::SetMaterial {
                        version_id,
                        sealed_material,
                    } => {
                        c.execute(
                                "UPDATE key_versions SET sealed_material=$3 WHERE key_id=$1 AND version_id=$2",
                                args![key.key_id, version_id, sealed_material],
                            )
                            .await?;
                    }
                    VersionChange::Insert(v) => insert_version(c, &v).await?,
                }
            }
            c.notify(&Change::Key(&key.key_id).payload()).await?;
            Ok(Some(key))
        })
    }

    async fn delete_key_if_due(&self, loc: &KeyLocator, now: i64) -> StoreResult<bool> {
        let loc = loc.clone();
        run!(self, Mode::Write, |c| {
            let n = c
                    .execute(
                        "DELETE FROM keys WHERE key_id=$1 AND account_id=$2 AND region=$3 \
                         AND state='PendingDeletion' AND delete_date IS NOT NULL AND delete_date <= $4",
                        args![loc.key_id, loc.account_id, loc.region, now],
                    )
                    .await?;
            if n > 0 {
                c.notify(&Change::Key(&loc.key_id).payload()).await?;
            }
            Ok(n > 0)
        })
    }

    async fn get_version(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> StoreResult<Option<KeyVersionRecord>> {
        let (k, v) = (key_id.to_string(), version_id.to_string());
        run!(self, Mode::Auto, |c| {
            c.select_one::<KeyVersionRecord>("WHERE key_id=$1 AND version_id=$2", args![k, v])
                .await
        })
    }

    async fn list_versions(&self, key_id: &str) -> StoreResult<Vec<KeyVersionRecord>> {
        let k = key_id.to_string();
        run!(self, Mode::Auto, |c| {
            let d = c.dialect();
            let rest = sql!(
                d,
                "WHERE key_id=$1 ORDER BY creation_date, {}",
                d.insertion_seq()
            );
            c.select_all::<KeyVersionRecord>(rest, args![k]).await
        })
    }

    async fn due_rotations(&self, now: i64) -> StoreResult<Vec<KeyLocator>> {
        run!(self, Mode::Auto, |c| {
            let d = c.dialect();
            let sql = sql!(
                d,
                "SELECT account_id, region, key_id FROM keys WHERE {} AND state='Enabled' \
                     AND rotation_interval IS NOT NULL AND last_rotation_date IS NOT NULL \
                     AND last_rotation_date + rotation_interval <= $1",
                d.is_true("automatic_rotation")
            );
            locators(c, sql, now).await
        })
    }

    async fn due_deletions(&self, now: i64) -> StoreResult<Vec<KeyLocator>> {
        run!(self, Mode::Auto, |c| {
            locators(
                c,
                "SELECT account_id, region, key_id FROM keys WHERE state='PendingDeletion' \
                     AND delete_date IS NOT NULL AND delete_date <= $1",
                now,
            )
            .await
        })
    }

    async fn due_material_expiry(&self, now: i64) -> StoreResult<Vec<KeyLocator>> {
        run!(self, Mode::Auto, |c| {
            let d = c.dialect();
            let sql = sql!(
                d,
                "SELECT account_id, region, key_id FROM keys WHERE {} \
                     AND material_expire IS NOT NULL AND material_expire <= $1",
                d.is_true("material_present")
            );
            locators(c, sql, now).await
        })
    }

    async fn count_keys_by_state(&self) -> StoreResult<Vec<KeyCount>> {
        run!(self, Mode::Auto, |c| {
            let rows: Vec<(String, String, i64)> = c
                .query_all(
                    "SELECT state, origin, COUNT(*) FROM keys GROUP BY state, origin",
                    &[],
                    |r| Ok((r.get()?, r.get()?, r.get()?)),
                )
                .await?;
            rows.into_iter()
                .map(|(state, origin, n)| {
                    Ok(KeyCount {
                        state: KeyState::parse(&state).ok_or_else(|| {
                            StoreError::Corrupt(format!("keys: unknown state {state:?}"))
                        })?,
                        origin: Origin::parse(&origin).ok_or_else(|| {
                            StoreError::Corrupt(format!("keys: unknown origin {origin:?}"))
                        })?,
                        keys: u64::try_from(n).unwrap_or(0),
                    })
                })
                .collect()
        })
    }
}
