//! The SQLite adapter: one file `kms.db` in the data dir, WAL journal, `synchronous=FULL`
//! (an acknowledged change survives a crash of the process or the machine), foreign keys on.
//! Migrations are the numbered files in `migrations/sqlite/`, embedded in the binary and
//! applied in order inside one transaction each, recorded in `schema_migrations`.
//!
//! rusqlite is synchronous: every call runs on the blocking thread pool with the one
//! connection behind a mutex (SQLite serialises writers anyway).

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::*;
use crate::error::KmsError;

/// The migrations, in order. Add a file and a line here to change the schema.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_aliases_versions.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_key_counts.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_unwrap_failures.sql"),
    ),
    (5, include_str!("../../migrations/sqlite/0005_console.sql")),
];

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn db_err(e: impl std::fmt::Display) -> KmsError {
    KmsError::internal(format!("sqlite: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, KmsError> {
        let conn = Connection::open(path).map_err(db_err)?;
        Self::init(conn)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, KmsError> {
        Self::init(Connection::open_in_memory().map_err(db_err)?)
    }

    fn init(mut conn: Connection) -> Result<Self, KmsError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )
        .map_err(db_err)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, KmsError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, KmsError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| KmsError::internal("sqlite connection lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(KmsError::internal)?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), KmsError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    )
    .map_err(db_err)?;
    for (version, sql) in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let done: Option<i64> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        if done.is_none() {
            tx.execute_batch(sql).map_err(db_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES (?1, strftime('%s','now'))",
                [version],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
    }
    Ok(())
}

const KEY_COLUMNS: &str = "key_id, account_id, region, description, key_spec, key_usage, origin, \
    protection_level, state, creation_date, creator, primary_version, delete_date, \
    material_present, material_expire, material_commitment, deletion_protection, \
    deletion_protection_description, automatic_rotation, rotation_interval, last_rotation_date, \
    version_count";

fn key_from_row(r: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let state: String = r.get(8)?;
    Ok(KeyRecord {
        key_id: r.get(0)?,
        account_id: r.get(1)?,
        region: r.get(2)?,
        description: r.get(3)?,
        key_spec: r.get(4)?,
        key_usage: r.get(5)?,
        origin: r.get(6)?,
        protection_level: r.get(7)?,
        state: KeyState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                8,
                rusqlite::types::Type::Text,
                format!("bad key state {state}").into(),
            )
        })?,
        creation_date: r.get(9)?,
        creator: r.get(10)?,
        primary_version: r.get(11)?,
        delete_date: r.get(12)?,
        material_present: r.get(13)?,
        material_expire: r.get(14)?,
        material_commitment: r.get(15)?,
        deletion_protection: r.get(16)?,
        deletion_protection_description: r.get(17)?,
        automatic_rotation: r.get(18)?,
        rotation_interval: r.get(19)?,
        last_rotation_date: r.get(20)?,
        version_count: r.get(21)?,
    })
}

fn write_key(conn: &Connection, k: &KeyRecord, insert: bool) -> Result<(), KmsError> {
    let sql = if insert {
        format!("INSERT INTO keys ({KEY_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22)")
    } else {
        "UPDATE keys SET account_id=?2, region=?3, description=?4, key_spec=?5, key_usage=?6, \
         origin=?7, protection_level=?8, state=?9, creation_date=?10, creator=?11, \
         primary_version=?12, delete_date=?13, material_present=?14, material_expire=?15, \
         material_commitment=?16, deletion_protection=?17, deletion_protection_description=?18, \
         automatic_rotation=?19, rotation_interval=?20, last_rotation_date=?21, version_count=?22 \
         WHERE key_id=?1"
            .to_string()
    };
    conn.execute(
        &sql,
        params![
            k.key_id,
            k.account_id,
            k.region,
            k.description,
            k.key_spec,
            k.key_usage,
            k.origin,
            k.protection_level,
            k.state.as_str(),
            k.creation_date,
            k.creator,
            k.primary_version,
            k.delete_date,
            k.material_present,
            k.material_expire,
            k.material_commitment,
            k.deletion_protection,
            k.deletion_protection_description,
            k.automatic_rotation,
            k.rotation_interval,
            k.last_rotation_date,
            k.version_count,
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

fn insert_version(conn: &Connection, v: &KeyVersionRecord) -> Result<(), KmsError> {
    conn.execute(
        "INSERT INTO key_versions (key_id, version_id, creation_date, sealed_material) VALUES (?1,?2,?3,?4)",
        params![v.key_id, v.version_id, v.creation_date, v.sealed_material],
    )
    .map_err(db_err)?;
    Ok(())
}

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<KeyVersionRecord> {
    Ok(KeyVersionRecord {
        key_id: r.get(0)?,
        version_id: r.get(1)?,
        creation_date: r.get(2)?,
        sealed_material: r.get(3)?,
    })
}

fn console_user_from_row(r: &Row<'_>) -> rusqlite::Result<ConsoleUserRecord> {
    Ok(ConsoleUserRecord {
        user_name: r.get(0)?,
        account_id: r.get(1)?,
        password_hash: r.get(2)?,
        creation_date: r.get(3)?,
    })
}

fn access_key_from_row(r: &Row<'_>) -> rusqlite::Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: r.get(0)?,
        account_id: r.get(1)?,
        sealed_secret: r.get(2)?,
        enabled: r.get(3)?,
        creation_date: r.get(4)?,
    })
}

fn locators(conn: &Connection, sql: &str, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
    let mut stmt = conn.prepare(sql).map_err(db_err)?;
    let rows = stmt
        .query_map([now], |r| {
            Ok(KeyLocator {
                account_id: r.get(0)?,
                region: r.get(1)?,
                key_id: r.get(2)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_meta(&self, name: &str) -> Result<Option<String>, KmsError> {
        let name = name.to_string();
        self.run(move |c| {
            c.query_row("SELECT value FROM meta WHERE name=?1", [name], |r| r.get(0))
                .optional()
                .map_err(db_err)
        })
        .await
    }

    async fn set_meta(&self, name: &str, value: &str) -> Result<(), KmsError> {
        let (name, value) = (name.to_string(), value.to_string());
        self.run(move |c| {
            c.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                [name, value],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn init_meta(&self, name: &str, value: &str) -> Result<String, KmsError> {
        let (name, value) = (name.to_string(), value.to_string());
        self.run(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES (?1, ?2)",
                [&name, &value],
            )
            .map_err(db_err)?;
            c.query_row("SELECT value FROM meta WHERE name=?1", [name], |r| r.get(0))
                .map_err(db_err)
        })
        .await
    }

    async fn ensure_account(&self, account_id: &str, now: i64) -> Result<(), KmsError> {
        let id = account_id.to_string();
        self.run(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO accounts (account_id, creation_date) VALUES (?1, ?2)",
                params![id, now],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn insert_access_key(&self, ak: AccessKeyRecord) -> Result<(), KmsError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO access_keys (access_key_id, account_id, sealed_secret, enabled, creation_date) VALUES (?1,?2,?3,?4,?5)",
                params![ak.access_key_id, ak.account_id, ak.sealed_secret, ak.enabled, ak.creation_date],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, KmsError> {
        let id = id.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT access_key_id, account_id, sealed_secret, enabled, creation_date FROM access_keys WHERE access_key_id=?1",
                [id],
                access_key_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_access_keys(&self) -> Result<Vec<AccessKeyRecord>, KmsError> {
        self.run(|c| {
            let mut stmt = c
                .prepare("SELECT access_key_id, account_id, sealed_secret, enabled, creation_date FROM access_keys ORDER BY creation_date, access_key_id")
                .map_err(db_err)?;
            let rows = stmt.query_map([], access_key_from_row).map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> Result<bool, KmsError> {
        let id = id.to_string();
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE access_keys SET enabled=?2 WHERE access_key_id=?1",
                    params![id, enabled],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_access_key(&self, id: &str) -> Result<bool, KmsError> {
        let id = id.to_string();
        self.run(move |c| {
            let n = c
                .execute("DELETE FROM access_keys WHERE access_key_id=?1", [id])
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_key(
        &self,
        key: KeyRecord,
        first: KeyVersionRecord,
        tags: Vec<Tag>,
        max_keys: i64,
    ) -> Result<(), KmsError> {
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let n = key_count(&tx, &key.account_id, &key.region)?;
            if n >= max_keys {
                return Err(KmsError::LimitExceeded(format!(
                    "at most {max_keys} keys per account and region"
                )));
            }
            write_key(&tx, &key, true)?;
            insert_version(&tx, &first)?;
            for t in &tags {
                tx.execute(
                    "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES (?1,?2,?3)",
                    params![key.key_id, t.key, t.value],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn get_key(&self, loc: &KeyLocator) -> Result<Option<KeyRecord>, KmsError> {
        let loc = loc.clone();
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id=?1 AND account_id=?2 AND region=?3"),
                params![loc.key_id, loc.account_id, loc.region],
                key_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_keys(&self, account_id: &str, region: &str) -> Result<Vec<KeyRecord>, KmsError> {
        let (account, region) = (account_id.to_string(), region.to_string());
        self.run(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} FROM keys WHERE account_id=?1 AND region=?2 ORDER BY creation_date, key_id"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![account, region], key_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn update_key(
        &self,
        loc: &KeyLocator,
        mutation: KeyMutation,
    ) -> Result<Option<KeyRecord>, KmsError> {
        let loc = loc.clone();
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let Some(mut key) = tx
                .query_row(
                    &format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id=?1 AND account_id=?2 AND region=?3"),
                    params![loc.key_id, loc.account_id, loc.region],
                    key_from_row,
                )
                .optional()
                .map_err(db_err)?
            else {
                return Ok(None);
            };
            let changes = mutation(&mut key)?;
            write_key(&tx, &key, false)?;
            for change in changes {
                match change {
                    VersionChange::SetMaterial {
                        version_id,
                        sealed_material,
                    } => {
                        tx.execute(
                            "UPDATE key_versions SET sealed_material=?3 WHERE key_id=?1 AND version_id=?2",
                            params![key.key_id, version_id, sealed_material],
                        )
                        .map_err(db_err)?;
                    }
                    VersionChange::Insert(v) => insert_version(&tx, &v)?,
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(Some(key))
        })
        .await
    }

    async fn delete_key_if_due(&self, loc: &KeyLocator, now: i64) -> Result<bool, KmsError> {
        let loc = loc.clone();
        self.run(move |c| {
            let n = c
                .execute(
                    "DELETE FROM keys WHERE key_id=?1 AND account_id=?2 AND region=?3 \
                     AND state='PendingDeletion' AND delete_date IS NOT NULL AND delete_date <= ?4",
                    params![loc.key_id, loc.account_id, loc.region, now],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_tags(&self, key_id: &str) -> Result<Vec<Tag>, KmsError> {
        let k = key_id.to_string();
        self.run(move |c| {
            let mut stmt = c
                .prepare("SELECT tag_key, tag_value FROM key_tags WHERE key_id=?1 ORDER BY tag_key")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([k], |r| {
                    Ok(Tag {
                        key: r.get(0)?,
                        value: r.get(1)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn get_version(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> Result<Option<KeyVersionRecord>, KmsError> {
        let (k, v) = (key_id.to_string(), version_id.to_string());
        self.run(move |c| {
            c.query_row(
                "SELECT key_id, version_id, creation_date, sealed_material FROM key_versions WHERE key_id=?1 AND version_id=?2",
                [k, v],
                version_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_versions(&self, key_id: &str) -> Result<Vec<KeyVersionRecord>, KmsError> {
        let k = key_id.to_string();
        self.run(move |c| {
            let mut stmt = c
                .prepare("SELECT key_id, version_id, creation_date, sealed_material FROM key_versions WHERE key_id=?1 ORDER BY creation_date, rowid")
                .map_err(db_err)?;
            let rows = stmt.query_map([k], version_from_row).map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn due_deletions(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.run(move |c| {
            locators(
                c,
                "SELECT account_id, region, key_id FROM keys WHERE state='PendingDeletion' AND delete_date IS NOT NULL AND delete_date <= ?1",
                now,
            )
        })
        .await
    }

    async fn due_material_expiry(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.run(move |c| {
            locators(
                c,
                "SELECT account_id, region, key_id FROM keys WHERE material_present=1 AND material_expire IS NOT NULL AND material_expire <= ?1",
                now,
            )
        })
        .await
    }

    async fn insert_wrapping_key(&self, wk: WrappingKeyRecord) -> Result<(), KmsError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO wrapping_keys (wrapping_key_id, key_id, account_id, algorithm, sealed_private_key, expires) VALUES (?1,?2,?3,?4,?5,?6)",
                params![wk.wrapping_key_id, wk.key_id, wk.account_id, wk.algorithm, wk.sealed_private_key, wk.expires],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_wrapping_key(&self, id: &str) -> Result<Option<WrappingKeyRecord>, KmsError> {
        let id = id.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT wrapping_key_id, key_id, account_id, algorithm, sealed_private_key, expires FROM wrapping_keys WHERE wrapping_key_id=?1",
                [id],
                |r| {
                    Ok(WrappingKeyRecord {
                        wrapping_key_id: r.get(0)?,
                        key_id: r.get(1)?,
                        account_id: r.get(2)?,
                        algorithm: r.get(3)?,
                        sealed_private_key: r.get(4)?,
                        expires: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn record_unwrap_failure(&self, id: &str, max: i64) -> Result<bool, KmsError> {
        let id = id.to_string();
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            tx.execute(
                "UPDATE wrapping_keys SET failures = failures + 1 WHERE wrapping_key_id=?1",
                [&id],
            )
            .map_err(db_err)?;
            let withdrawn = tx
                .execute(
                    "DELETE FROM wrapping_keys WHERE wrapping_key_id=?1 AND failures >= ?2",
                    params![id, max],
                )
                .map_err(db_err)?
                > 0;
            tx.commit().map_err(db_err)?;
            Ok(withdrawn)
        })
        .await
    }

    async fn insert_console_user(&self, user: ConsoleUserRecord) -> Result<bool, KmsError> {
        self.run(move |c| {
            let n = c
                .execute(
                    "INSERT INTO console_users (user_name, account_id, password_hash, creation_date) \
                     VALUES (?1,?2,?3,?4) ON CONFLICT(user_name) DO NOTHING",
                    params![user.user_name, user.account_id, user.password_hash, user.creation_date],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_console_user(&self, name: &str) -> Result<Option<ConsoleUserRecord>, KmsError> {
        let name = name.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT user_name, account_id, password_hash, creation_date FROM console_users WHERE user_name=?1",
                [name],
                console_user_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_console_users(&self) -> Result<Vec<ConsoleUserRecord>, KmsError> {
        self.run(|c| {
            let mut stmt = c
                .prepare("SELECT user_name, account_id, password_hash, creation_date FROM console_users ORDER BY user_name")
                .map_err(db_err)?;
            let rows = stmt.query_map([], console_user_from_row).map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_console_user(&self, name: &str) -> Result<bool, KmsError> {
        let name = name.to_string();
        self.run(move |c| {
            let n = c
                .execute("DELETE FROM console_users WHERE user_name=?1", [name])
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_console_session(&self, s: ConsoleSessionRecord) -> Result<(), KmsError> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO console_sessions (id_hash, account_id, principal, created, last_seen) VALUES (?1,?2,?3,?4,?5)",
                params![s.id_hash, s.account_id, s.principal, s.created, s.last_seen],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn get_console_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<ConsoleSessionRecord>, KmsError> {
        let id = id_hash.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT id_hash, account_id, principal, created, last_seen FROM console_sessions WHERE id_hash=?1",
                [id],
                |r| {
                    Ok(ConsoleSessionRecord {
                        id_hash: r.get(0)?,
                        account_id: r.get(1)?,
                        principal: r.get(2)?,
                        created: r.get(3)?,
                        last_seen: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn touch_console_session(&self, id_hash: &str, now: i64) -> Result<(), KmsError> {
        let id = id_hash.to_string();
        self.run(move |c| {
            c.execute(
                "UPDATE console_sessions SET last_seen=MAX(last_seen, ?2) WHERE id_hash=?1",
                params![id, now],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_console_session(&self, id_hash: &str) -> Result<(), KmsError> {
        let id = id_hash.to_string();
        self.run(move |c| {
            c.execute("DELETE FROM console_sessions WHERE id_hash=?1", [id])
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn purge_console_sessions(&self, idle_before: i64) -> Result<u64, KmsError> {
        self.run(move |c| {
            let n = c
                .execute(
                    "DELETE FROM console_sessions WHERE last_seen < ?1",
                    [idle_before],
                )
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn purge_wrapping_keys(&self, now: i64) -> Result<u64, KmsError> {
        self.run(move |c| {
            let n = c
                .execute("DELETE FROM wrapping_keys WHERE expires < ?1", [now])
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn put_tags(&self, key_id: &str, tags: Vec<Tag>, max: usize) -> Result<(), KmsError> {
        let k = key_id.to_string();
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            for t in &tags {
                tx.execute(
                    "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES (?1,?2,?3) \
                     ON CONFLICT(key_id, tag_key) DO UPDATE SET tag_value=excluded.tag_value",
                    params![k, t.key, t.value],
                )
                .map_err(db_err)?;
            }
            let n: i64 = tx
                .query_row("SELECT COUNT(*) FROM key_tags WHERE key_id=?1", [&k], |r| {
                    r.get(0)
                })
                .map_err(db_err)?;
            if n as usize > max {
                return Err(KmsError::LimitExceeded(format!(
                    "at most {max} tags per key"
                )));
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn remove_tags(
        &self,
        key_id: &str,
        tag_keys: Option<Vec<String>>,
    ) -> Result<(), KmsError> {
        let k = key_id.to_string();
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            match tag_keys {
                None => {
                    tx.execute("DELETE FROM key_tags WHERE key_id=?1", [&k])
                        .map_err(db_err)?;
                }
                Some(keys) => {
                    for t in keys {
                        tx.execute(
                            "DELETE FROM key_tags WHERE key_id=?1 AND tag_key=?2",
                            params![k, t],
                        )
                        .map_err(db_err)?;
                    }
                }
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn list_account_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> Result<Vec<(String, Tag)>, KmsError> {
        let (a, r) = (account_id.to_string(), region.to_string());
        self.run(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT t.key_id, t.tag_key, t.tag_value FROM key_tags t JOIN keys k ON k.key_id = t.key_id \
                     WHERE k.account_id=?1 AND k.region=?2 ORDER BY t.key_id, t.tag_key",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![a, r], |row| {
                    Ok((row.get(0)?, Tag { key: row.get(1)?, value: row.get(2)? }))
                })
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn create_alias(&self, alias: AliasRecord, max_per_key: i64) -> Result<(), KmsError> {
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let taken: Option<String> = tx
                .query_row(
                    "SELECT key_id FROM aliases WHERE account_id=?1 AND region=?2 AND alias_name=?3",
                    params![alias.account_id, alias.region, alias.alias_name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            if taken.is_some() {
                return Err(KmsError::AliasAlreadyExists);
            }
            alias_limit(&tx, &alias.key_id, max_per_key)?;
            tx.execute(
                "INSERT INTO aliases (account_id, region, alias_name, key_id, creation_date) VALUES (?1,?2,?3,?4,?5)",
                params![alias.account_id, alias.region, alias.alias_name, alias.key_id, alias.creation_date],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn update_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        key_id: &str,
        max_per_key: i64,
    ) -> Result<bool, KmsError> {
        let (a, r, n, k) = (
            account_id.to_string(),
            region.to_string(),
            name.to_string(),
            key_id.to_string(),
        );
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT key_id FROM aliases WHERE account_id=?1 AND region=?2 AND alias_name=?3",
                    params![a, r, n],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db_err)?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current != k {
                alias_limit(&tx, &k, max_per_key)?;
            }
            tx.execute(
                "UPDATE aliases SET key_id=?4 WHERE account_id=?1 AND region=?2 AND alias_name=?3",
                params![a, r, n, k],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn delete_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> Result<bool, KmsError> {
        let (a, r, n) = (account_id.to_string(), region.to_string(), name.to_string());
        self.run(move |c| {
            let deleted = c
                .execute(
                    "DELETE FROM aliases WHERE account_id=?1 AND region=?2 AND alias_name=?3",
                    params![a, r, n],
                )
                .map_err(db_err)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>, KmsError> {
        let (a, r, n) = (account_id.to_string(), region.to_string(), name.to_string());
        self.run(move |c| {
            c.query_row(
                "SELECT account_id, region, alias_name, key_id, creation_date FROM aliases \
                 WHERE account_id=?1 AND region=?2 AND alias_name=?3",
                params![a, r, n],
                alias_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_aliases(
        &self,
        account_id: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<AliasRecord>, KmsError> {
        let (a, r, k) = (
            account_id.to_string(),
            region.to_string(),
            key_id.map(str::to_string),
        );
        self.run(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT account_id, region, alias_name, key_id, creation_date FROM aliases \
                     WHERE account_id=?1 AND region=?2 AND (?3 IS NULL OR key_id=?3) ORDER BY alias_name",
                )
                .map_err(db_err)?;
            let rows = stmt.query_map(params![a, r, k], alias_from_row).map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn insert_keys_bulk(
        &self,
        keys: Vec<(KeyRecord, KeyVersionRecord)>,
    ) -> Result<(), KmsError> {
        self.run(move |c| {
            for chunk in keys.chunks(10_000) {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(db_err)?;
                for (k, v) in chunk {
                    write_key(&tx, k, true)?;
                    insert_version(&tx, v)?;
                }
                tx.commit().map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_keys_page(
        &self,
        account_id: &str,
        region: &str,
        now: i64,
        filters: &[(KeyField, Vec<String>)],
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<KeyRecord>, usize), KmsError> {
        let (a, r) = (account_id.to_string(), region.to_string());
        let filters = filters.to_vec();
        self.run(move |c| {
            // The state ListKeys shows: expired material reads as PendingImport.
            const STATE: &str = "(CASE WHEN material_present=1 AND material_expire IS NOT NULL \
                AND material_expire <= ?3 AND state != 'PendingDeletion' THEN 'PendingImport' ELSE state END)";
            let mut filter_sql = String::new();
            let mut values: Vec<String> = Vec::new();
            for (field, accepted) in &filters {
                let column = match field {
                    KeyField::State => STATE,
                    KeyField::Spec => "key_spec",
                    KeyField::Usage => "key_usage",
                    KeyField::ProtectionLevel => "protection_level",
                    KeyField::Origin => "origin",
                };
                let mut marks = Vec::new();
                for v in accepted {
                    values.push(v.clone());
                    marks.push(format!("?{}", 3 + values.len()));
                }
                filter_sql.push_str(&format!(" AND {column} IN ({})", marks.join(",")));
            }
            let base = format!(
                "FROM keys WHERE account_id=?1 AND region=?2 \
                 AND NOT (state='PendingDeletion' AND delete_date IS NOT NULL AND delete_date <= ?3){filter_sql}"
            );
            let mut args: Vec<rusqlite::types::Value> = vec![a.clone().into(), r.clone().into(), now.into()];
            args.extend(values.into_iter().map(rusqlite::types::Value::from));
            let total = if filters.is_empty() {
                // Exact without a scan: the trigger-kept count, less the keys already past
                // their deletion date that the sweeper has not removed yet (an index range).
                let due: i64 = c
                    .query_row(
                        "SELECT COUNT(*) FROM keys INDEXED BY keys_by_delete_date \
                         WHERE delete_date IS NOT NULL AND delete_date <= ?3 \
                         AND state='PendingDeletion' AND account_id=?1 AND region=?2",
                        params![a, r, now],
                        |row| row.get(0),
                    )
                    .map_err(db_err)?;
                (key_count(c, &a, &r)? - due).max(0) as usize
            } else {
                let n: i64 = c
                    .query_row(&format!("SELECT COUNT(*) {base}"), rusqlite::params_from_iter(args.iter()), |row| row.get(0))
                    .map_err(db_err)?;
                n as usize
            };
            if offset >= total {
                return Ok((Vec::new(), total));
            }
            // Pages in the second half are read from the end, so the last page is as quick
            // as the first (OFFSET walks the index).
            let from_end = offset > total / 2;
            let (order, skip, take) = if from_end {
                let end = (offset + limit).min(total);
                ("DESC", total - end, end - offset)
            } else {
                ("ASC", offset, limit)
            };
            let mut page_args = args;
            page_args.push((take as i64).into());
            page_args.push((skip as i64).into());
            let n = page_args.len();
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} {base} ORDER BY creation_date {order}, key_id {order} LIMIT ?{} OFFSET ?{}",
                    n - 1,
                    n
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(page_args.iter()), key_from_row)
                .map_err(db_err)?;
            let mut keys = rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?;
            if from_end {
                keys.reverse();
            }
            Ok((keys, total))
        })
        .await
    }

    async fn export(&self) -> Result<Dump, KmsError> {
        self.run(|c| {
            let tx = c.transaction().map_err(db_err)?;
            fn all<T>(
                c: &Connection,
                sql: &str,
                f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
            ) -> Result<Vec<T>, KmsError> {
                let mut stmt = c.prepare(sql).map_err(db_err)?;
                let rows = stmt.query_map([], f).map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            }
            let d = Dump {
                meta: all(&tx, "SELECT name, value FROM meta ORDER BY name", |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?,
                accounts: all(
                    &tx,
                    "SELECT account_id, creation_date FROM accounts ORDER BY account_id",
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?,
                access_keys: all(
                    &tx,
                    "SELECT access_key_id, account_id, sealed_secret, enabled, creation_date FROM access_keys ORDER BY access_key_id",
                    access_key_from_row,
                )?,
                keys: all(
                    &tx,
                    &format!("SELECT {KEY_COLUMNS} FROM keys ORDER BY key_id"),
                    key_from_row,
                )?,
                versions: all(
                    &tx,
                    "SELECT key_id, version_id, creation_date, sealed_material FROM key_versions ORDER BY key_id, creation_date, rowid",
                    version_from_row,
                )?,
                tags: all(
                    &tx,
                    "SELECT key_id, tag_key, tag_value FROM key_tags ORDER BY key_id, tag_key",
                    |r| Ok((r.get(0)?, Tag { key: r.get(1)?, value: r.get(2)? })),
                )?,
                aliases: all(
                    &tx,
                    "SELECT account_id, region, alias_name, key_id, creation_date FROM aliases ORDER BY account_id, region, alias_name",
                    alias_from_row,
                )?,
                wrapping_keys: all(
                    &tx,
                    "SELECT wrapping_key_id, key_id, account_id, algorithm, sealed_private_key, expires, failures FROM wrapping_keys ORDER BY wrapping_key_id",
                    |r| {
                        Ok((
                            WrappingKeyRecord {
                                wrapping_key_id: r.get(0)?,
                                key_id: r.get(1)?,
                                account_id: r.get(2)?,
                                algorithm: r.get(3)?,
                                sealed_private_key: r.get(4)?,
                                expires: r.get(5)?,
                            },
                            r.get(6)?,
                        ))
                    },
                )?,
                console_users: all(
                    &tx,
                    "SELECT user_name, account_id, password_hash, creation_date FROM console_users ORDER BY user_name",
                    console_user_from_row,
                )?,
            };
            Ok(d)
        })
        .await
    }

    async fn import(&self, dump: Dump) -> Result<(), KmsError> {
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let existing: i64 = tx
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM keys) + (SELECT COUNT(*) FROM access_keys)",
                    [],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            if existing > 0 {
                return Err(KmsError::internal(
                    "the target database already holds keys or access keys; migrate into an empty one",
                ));
            }
            for (name, value) in &dump.meta {
                tx.execute(
                    "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                    [name, value],
                )
                .map_err(db_err)?;
            }
            for (id, date) in &dump.accounts {
                tx.execute(
                    "INSERT OR IGNORE INTO accounts (account_id, creation_date) VALUES (?1, ?2)",
                    params![id, date],
                )
                .map_err(db_err)?;
            }
            for ak in &dump.access_keys {
                tx.execute(
                    "INSERT INTO access_keys (access_key_id, account_id, sealed_secret, enabled, creation_date) VALUES (?1,?2,?3,?4,?5)",
                    params![ak.access_key_id, ak.account_id, ak.sealed_secret, ak.enabled, ak.creation_date],
                )
                .map_err(db_err)?;
            }
            for k in &dump.keys {
                write_key(&tx, k, true)?;
            }
            for v in &dump.versions {
                insert_version(&tx, v)?;
            }
            for (key_id, t) in &dump.tags {
                tx.execute(
                    "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES (?1,?2,?3)",
                    params![key_id, t.key, t.value],
                )
                .map_err(db_err)?;
            }
            for a in &dump.aliases {
                tx.execute(
                    "INSERT INTO aliases (account_id, region, alias_name, key_id, creation_date) VALUES (?1,?2,?3,?4,?5)",
                    params![a.account_id, a.region, a.alias_name, a.key_id, a.creation_date],
                )
                .map_err(db_err)?;
            }
            for (wk, failures) in &dump.wrapping_keys {
                tx.execute(
                    "INSERT INTO wrapping_keys (wrapping_key_id, key_id, account_id, algorithm, sealed_private_key, expires, failures) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                    params![wk.wrapping_key_id, wk.key_id, wk.account_id, wk.algorithm, wk.sealed_private_key, wk.expires, failures],
                )
                .map_err(db_err)?;
            }
            for u in &dump.console_users {
                tx.execute(
                    "INSERT INTO console_users (user_name, account_id, password_hash, creation_date) VALUES (?1,?2,?3,?4)",
                    params![u.user_name, u.account_id, u.password_hash, u.creation_date],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn due_rotations(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.run(move |c| {
            locators(
                c,
                "SELECT account_id, region, key_id FROM keys WHERE automatic_rotation=1 AND state='Enabled' \
                 AND rotation_interval IS NOT NULL AND last_rotation_date IS NOT NULL \
                 AND last_rotation_date + rotation_interval <= ?1",
                now,
            )
        })
        .await
    }
}

fn key_count(c: &Connection, account_id: &str, region: &str) -> Result<i64, KmsError> {
    Ok(c.query_row(
        "SELECT n FROM key_counts WHERE account_id=?1 AND region=?2",
        params![account_id, region],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)?
    .unwrap_or(0))
}

fn alias_from_row(r: &Row<'_>) -> rusqlite::Result<AliasRecord> {
    Ok(AliasRecord {
        account_id: r.get(0)?,
        region: r.get(1)?,
        alias_name: r.get(2)?,
        key_id: r.get(3)?,
        creation_date: r.get(4)?,
    })
}

fn alias_limit(tx: &Connection, key_id: &str, max_per_key: i64) -> Result<(), KmsError> {
    let n: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM aliases WHERE key_id=?1",
            [key_id],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if n >= max_per_key {
        return Err(KmsError::LimitExceeded(format!(
            "at most {max_per_key} aliases per key"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod console_tests {
    use super::*;

    #[tokio::test]
    async fn console_users_and_sessions() {
        let s = SqliteStore::in_memory().unwrap();
        let user = ConsoleUserRecord {
            user_name: "alice".into(),
            account_id: "1234567890123456".into(),
            password_hash: "pbkdf2-sha256$1$AA==$AA==".into(),
            creation_date: 10,
        };
        assert!(s.insert_console_user(user.clone()).await.unwrap());
        assert!(!s
            .insert_console_user(ConsoleUserRecord {
                password_hash: "other".into(),
                ..user.clone()
            })
            .await
            .unwrap());
        assert_eq!(
            s.get_console_user("alice").await.unwrap(),
            Some(user.clone())
        );
        assert_eq!(s.list_console_users().await.unwrap(), vec![user]);
        assert!(s.delete_console_user("alice").await.unwrap());
        assert!(!s.delete_console_user("alice").await.unwrap());
        assert_eq!(s.get_console_user("alice").await.unwrap(), None);

        let sess = |id: &str, last_seen| ConsoleSessionRecord {
            id_hash: id.into(),
            account_id: "1234567890123456".into(),
            principal: "console-user:alice".into(),
            created: 100,
            last_seen,
        };
        s.insert_console_session(sess("a", 100)).await.unwrap();
        s.insert_console_session(sess("b", 200)).await.unwrap();
        s.touch_console_session("a", 150).await.unwrap();
        s.touch_console_session("a", 120).await.unwrap(); // never moves back
        assert_eq!(
            s.get_console_session("a").await.unwrap(),
            Some(sess("a", 150))
        );
        assert_eq!(s.purge_console_sessions(160).await.unwrap(), 1);
        assert_eq!(s.get_console_session("a").await.unwrap(), None);
        s.delete_console_session("b").await.unwrap();
        s.delete_console_session("b").await.unwrap();
        assert_eq!(s.get_console_session("b").await.unwrap(), None);
    }
}
