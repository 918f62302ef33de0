//! The PostgreSQL adapter, for several stateless `kms server` nodes on one database
//! (`--database-url postgres://…`).
//!
//! - **Migrations** are the numbered files in `migrations/postgres/`, applied in order, each in
//!   its own transaction, while holding a session advisory lock: nodes that start at once
//!   queue on the lock and find the work done.
//! - **State changes** are transactions that lock the key row (`SELECT … FOR UPDATE`) before
//!   the service's closure runs, so two nodes racing on one key serialise and the second sees
//!   the first's result (two first imports with different material: one binds, the other
//!   gets `InvalidKeyMaterial`; two rotations: one new version).
//! - **Cache invalidation:** every write sends `pg_notify('kms_changes', …)` in its own
//!   transaction; each node LISTENs on a dedicated connection ([`listen`]) and drops what
//!   the payload names from its [`super::cache::CachedStore`]. After a reconnect a node drops
//!   its whole cache (notifications may have been missed); cached entries also live at most
//!   [`CACHE_TTL`], the safety net.
//! - **Nonces** are claimed in the `nonces` table, so a request replayed to another node is
//!   refused too.
//! - **Background work** (deletion, material expiry, rotation) runs on every node; each item
//!   is re-checked under the row lock inside the transaction that does it, so it is done
//!   exactly once whichever node gets there first.
//!
//! The connection has no TLS (tokio-postgres `NoTls`): run the database on loopback, a unix
//! socket or a private network. Everything secret in it is sealed under the root key.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls, Row};

use super::*;
use crate::error::KmsError;

/// The migrations, in order. Add a file and a line here to change the schema.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_console.sql"),
    ),
];

/// Advisory lock key held while migrating ("kmsmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x006b_6d73_6d69_6772;

/// The notification channel.
pub const CHANNEL: &str = "kms_changes";

/// Lifetime of a cached key row, version or alias on a PostgreSQL node: the bound on how long
/// a node can serve a key changed on another node if a notification is lost.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

pub struct PostgresStore {
    pool: Pool,
    /// Nonce claims go to a few batching workers (see [`claim_batch`]).
    nonces: tokio::sync::mpsc::Sender<NonceClaim>,
}

/// A nonce digest, the time until which it is claimed, and where to send the answer.
type NonceClaim = (
    Vec<u8>,
    i64,
    tokio::sync::oneshot::Sender<Result<bool, String>>,
);

/// Claims per statement, at most.
const NONCE_BATCH: usize = 512;
/// Workers claiming nonces, each with its own connection.
const NONCE_WORKERS: usize = 4;

/// Starts the nonce workers on `pool`, whose sessions run with `synchronous_commit = off`: a
/// claim is visible to every node at once but is not waited on to reach the disk (a database
/// crash may forget the claims of its last moments, re-opening a replay window of at most 15
/// minutes for those requests); this keeps an fsync off every request. Each worker takes
/// every claim waiting when it is free and makes them in one statement, so under load one
/// round trip serves many requests.
fn start_nonce_workers(pool: Pool) -> tokio::sync::mpsc::Sender<NonceClaim> {
    let (tx, rx) = tokio::sync::mpsc::channel::<NonceClaim>(65_536);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..NONCE_WORKERS {
        let (rx, pool) = (rx.clone(), pool.clone());
        tokio::spawn(async move {
            loop {
                let mut batch = Vec::new();
                {
                    let mut rx = rx.lock().await;
                    match rx.recv().await {
                        Some(claim) => batch.push(claim),
                        None => return,
                    }
                    while batch.len() < NONCE_BATCH {
                        match rx.try_recv() {
                            Ok(claim) => batch.push(claim),
                            Err(_) => break,
                        }
                    }
                }
                claim_batch(&pool, batch).await;
            }
        });
    }
    tx
}

/// One statement for a batch of claims. Within a batch the first claim of a digest is the one
/// sent (a later one is a replay); a claim succeeds if its row was inserted, or replaced a row
/// whose time had passed.
async fn claim_batch(pool: &Pool, batch: Vec<NonceClaim>) {
    let mut first: HashMap<&[u8], usize> = HashMap::with_capacity(batch.len());
    let (mut digests, mut untils): (Vec<&[u8]>, Vec<i64>) = (Vec::new(), Vec::new());
    for (i, (digest, until, _)) in batch.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(e) = first.entry(digest.as_slice()) {
            e.insert(i);
            digests.push(digest);
            untils.push(*until);
        }
    }
    let now = crate::clock::system_now();
    let claimed: Result<HashSet<Vec<u8>>, String> = async {
        let c = pool.get().await.map_err(|e| e.to_string())?;
        let stmt = c
            .prepare_cached(
                "INSERT INTO nonces (digest, until) SELECT * FROM unnest($1::bytea[], $2::bigint[]) \
                 ON CONFLICT (digest) DO UPDATE SET until = excluded.until WHERE nonces.until < $3 \
                 RETURNING digest",
            )
            .await
            .map_err(|e| e.to_string())?;
        let rows = c
            .query(&stmt, &[&digests, &untils, &now])
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<_, Vec<u8>>(0).ok())
            .collect())
    }
    .await;
    let answers: Vec<Result<bool, String>> = batch
        .iter()
        .enumerate()
        .map(|(i, (digest, _, _))| match &claimed {
            Ok(set) => Ok(first.get(digest.as_slice()) == Some(&i) && set.contains(digest)),
            Err(e) => Err(e.clone()),
        })
        .collect();
    for ((_, _, reply), answer) in batch.into_iter().zip(answers) {
        let _ = reply.send(answer);
    }
}

type Param<'a> = &'a (dyn ToSql + Sync);

fn db_err(e: impl std::fmt::Display) -> KmsError {
    KmsError::internal(format!("postgres: {e}"))
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The connection settings of a `postgres://` URL, without the password in errors.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| format!("invalid database URL: {e}"))
}

impl PostgresStore {
    /// Connects a pool of `pool_size` connections and applies pending migrations.
    pub async fn connect(
        config: tokio_postgres::Config,
        pool_size: usize,
    ) -> Result<Self, KmsError> {
        let build = |config: tokio_postgres::Config, size: usize| {
            let mgr = Manager::from_config(
                config,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(mgr)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(30)))
                .create_timeout(Some(Duration::from_secs(10)))
                .build()
                .map_err(db_err)
        };
        let mut async_config = config.clone();
        let options = match config.get_options() {
            Some(o) => format!("{o} -c synchronous_commit=off"),
            None => "-c synchronous_commit=off".to_string(),
        };
        async_config.options(&options);
        let store = Self {
            pool: build(config, pool_size.max(2))?,
            nonces: start_nonce_workers(build(async_config, NONCE_WORKERS)?),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, KmsError> {
        self.pool.get().await.map_err(db_err)
    }

    async fn migrate(&self) -> Result<(), KmsError> {
        let mut c = self.client().await?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_err)?;
        let result = apply_migrations(&mut c).await;
        let unlocked = c
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_err);
        result.and(unlocked.map(|_| ()))
    }

    async fn locators(&self, sql: &str, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        let c = self.client().await?;
        let rows = c.query(sql, &[&now]).await.map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(KeyLocator {
                    account_id: r.try_get(0).map_err(db_err)?,
                    region: r.try_get(1).map_err(db_err)?,
                    key_id: r.try_get(2).map_err(db_err)?,
                })
            })
            .collect()
    }
}

async fn apply_migrations(c: &mut deadpool_postgres::Object) -> Result<(), KmsError> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
    )
    .await
    .map_err(db_err)?;
    for (version, sql) in MIGRATIONS {
        let tx = c.transaction().await.map_err(db_err)?;
        let done = tx
            .query_opt(
                "SELECT version FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await
            .map_err(db_err)?;
        if done.is_none() {
            tx.batch_execute(sql).await.map_err(db_err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, extract(epoch from now())::bigint)",
                &[version],
            )
            .await
            .map_err(db_err)?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        tx.commit().await.map_err(db_err)?;
    }
    Ok(())
}

/// Keeps a LISTEN connection open and calls `on_change` with each notification's payload
/// (see [`super::cache::CachedStore::apply_remote`]), and with `None` after every (re)connect:
/// whatever changed while the connection was down is unknown, so the caller drops it all.
pub async fn listen<F>(config: tokio_postgres::Config, on_change: F)
where
    F: Fn(Option<&str>) + Send + Sync + 'static,
{
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_string()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "PostgreSQL LISTEN connection lost");
                                break;
                            }
                        }
                    }
                });
                if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    tracing::warn!(error = %e, "LISTEN failed");
                } else {
                    on_change(None);
                    while let Some(payload) = rx.recv().await {
                        on_change(Some(&payload));
                    }
                }
                driver.abort();
                on_change(None);
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the PostgreSQL LISTEN connection"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Notification payloads: `k\n<key id>` (a key, its versions and the aliases pointing at it),
/// `a\n<account>\n<region>\n<alias name>` (one alias), `ak\n<access key id>`, `*` (everything).
pub fn key_payload(key_id: &str) -> String {
    format!("k\n{key_id}")
}

pub fn access_key_payload(id: &str) -> String {
    format!("ak\n{id}")
}

pub fn alias_payload(account_id: &str, region: &str, name: &str) -> String {
    format!("a\n{account_id}\n{region}\n{name}")
}

const NOTIFY: &str = "SELECT pg_notify('kms_changes', $1)";

const KEY_COLUMNS: &str = "key_id, account_id, region, description, key_spec, key_usage, origin, \
    protection_level, state, creation_date, creator, primary_version, delete_date, \
    material_present, material_expire, material_commitment, deletion_protection, \
    deletion_protection_description, automatic_rotation, rotation_interval, last_rotation_date, \
    version_count";

const INSERT_KEY: &str = "INSERT INTO keys (key_id, account_id, region, description, key_spec, \
    key_usage, origin, protection_level, state, creation_date, creator, primary_version, \
    delete_date, material_present, material_expire, material_commitment, deletion_protection, \
    deletion_protection_description, automatic_rotation, rotation_interval, last_rotation_date, \
    version_count) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22)";

const UPDATE_KEY: &str = "UPDATE keys SET account_id=$2, region=$3, description=$4, key_spec=$5, \
    key_usage=$6, origin=$7, protection_level=$8, state=$9, creation_date=$10, creator=$11, \
    primary_version=$12, delete_date=$13, material_present=$14, material_expire=$15, \
    material_commitment=$16, deletion_protection=$17, deletion_protection_description=$18, \
    automatic_rotation=$19, rotation_interval=$20, last_rotation_date=$21, version_count=$22 \
    WHERE key_id=$1";

fn key_from_row(r: &Row) -> Result<KeyRecord, KmsError> {
    let state: String = r.try_get(8).map_err(db_err)?;
    Ok(KeyRecord {
        key_id: r.try_get(0).map_err(db_err)?,
        account_id: r.try_get(1).map_err(db_err)?,
        region: r.try_get(2).map_err(db_err)?,
        description: r.try_get(3).map_err(db_err)?,
        key_spec: r.try_get(4).map_err(db_err)?,
        key_usage: r.try_get(5).map_err(db_err)?,
        origin: r.try_get(6).map_err(db_err)?,
        protection_level: r.try_get(7).map_err(db_err)?,
        state: KeyState::parse(&state)
            .ok_or_else(|| KmsError::internal(format!("bad key state {state}")))?,
        creation_date: r.try_get(9).map_err(db_err)?,
        creator: r.try_get(10).map_err(db_err)?,
        primary_version: r.try_get(11).map_err(db_err)?,
        delete_date: r.try_get(12).map_err(db_err)?,
        material_present: r.try_get(13).map_err(db_err)?,
        material_expire: r.try_get(14).map_err(db_err)?,
        material_commitment: r.try_get(15).map_err(db_err)?,
        deletion_protection: r.try_get(16).map_err(db_err)?,
        deletion_protection_description: r.try_get(17).map_err(db_err)?,
        automatic_rotation: r.try_get(18).map_err(db_err)?,
        rotation_interval: r.try_get(19).map_err(db_err)?,
        last_rotation_date: r.try_get(20).map_err(db_err)?,
        version_count: r.try_get(21).map_err(db_err)?,
    })
}

fn key_params<'a>(k: &'a KeyRecord, state: &'a &'static str) -> [Param<'a>; 22] {
    [
        &k.key_id,
        &k.account_id,
        &k.region,
        &k.description,
        &k.key_spec,
        &k.key_usage,
        &k.origin,
        &k.protection_level,
        state,
        &k.creation_date,
        &k.creator,
        &k.primary_version,
        &k.delete_date,
        &k.material_present,
        &k.material_expire,
        &k.material_commitment,
        &k.deletion_protection,
        &k.deletion_protection_description,
        &k.automatic_rotation,
        &k.rotation_interval,
        &k.last_rotation_date,
        &k.version_count,
    ]
}

fn version_from_row(r: &Row) -> Result<KeyVersionRecord, KmsError> {
    Ok(KeyVersionRecord {
        key_id: r.try_get(0).map_err(db_err)?,
        version_id: r.try_get(1).map_err(db_err)?,
        creation_date: r.try_get(2).map_err(db_err)?,
        sealed_material: r.try_get(3).map_err(db_err)?,
    })
}

fn access_key_from_row(r: &Row) -> Result<AccessKeyRecord, KmsError> {
    Ok(AccessKeyRecord {
        access_key_id: r.try_get(0).map_err(db_err)?,
        account_id: r.try_get(1).map_err(db_err)?,
        sealed_secret: r.try_get(2).map_err(db_err)?,
        enabled: r.try_get(3).map_err(db_err)?,
        creation_date: r.try_get(4).map_err(db_err)?,
    })
}

fn alias_from_row(r: &Row) -> Result<AliasRecord, KmsError> {
    Ok(AliasRecord {
        account_id: r.try_get(0).map_err(db_err)?,
        region: r.try_get(1).map_err(db_err)?,
        alias_name: r.try_get(2).map_err(db_err)?,
        key_id: r.try_get(3).map_err(db_err)?,
        creation_date: r.try_get(4).map_err(db_err)?,
    })
}

fn wrapping_key_from_row(r: &Row) -> Result<WrappingKeyRecord, KmsError> {
    Ok(WrappingKeyRecord {
        wrapping_key_id: r.try_get(0).map_err(db_err)?,
        key_id: r.try_get(1).map_err(db_err)?,
        account_id: r.try_get(2).map_err(db_err)?,
        algorithm: r.try_get(3).map_err(db_err)?,
        sealed_private_key: r.try_get(4).map_err(db_err)?,
        expires: r.try_get(5).map_err(db_err)?,
    })
}

fn console_user_from_row(r: &Row) -> Result<ConsoleUserRecord, KmsError> {
    Ok(ConsoleUserRecord {
        user_name: r.try_get(0).map_err(db_err)?,
        account_id: r.try_get(1).map_err(db_err)?,
        password_hash: r.try_get(2).map_err(db_err)?,
        creation_date: r.try_get(3).map_err(db_err)?,
    })
}

const ACCESS_KEY_COLUMNS: &str = "access_key_id, account_id, sealed_secret, enabled, creation_date";
const VERSION_COLUMNS: &str = "key_id, version_id, creation_date, sealed_material";
const ALIAS_COLUMNS: &str = "account_id, region, alias_name, key_id, creation_date";
const WRAPPING_COLUMNS: &str =
    "wrapping_key_id, key_id, account_id, algorithm, sealed_private_key, expires";

async fn insert_version(
    tx: &deadpool_postgres::Transaction<'_>,
    v: &KeyVersionRecord,
) -> Result<(), KmsError> {
    tx.execute(
        "INSERT INTO key_versions (key_id, version_id, creation_date, sealed_material) VALUES ($1,$2,$3,$4)",
        &[&v.key_id, &v.version_id, &v.creation_date, &v.sealed_material],
    )
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn key_count(
    tx: &deadpool_postgres::Transaction<'_>,
    account_id: &str,
    region: &str,
    lock: bool,
) -> Result<i64, KmsError> {
    let sql = if lock {
        "SELECT n FROM key_counts WHERE account_id=$1 AND region=$2 FOR UPDATE"
    } else {
        "SELECT n FROM key_counts WHERE account_id=$1 AND region=$2"
    };
    let row = tx
        .query_opt(sql, &[&account_id, &region])
        .await
        .map_err(db_err)?;
    match row {
        Some(r) => r.try_get(0).map_err(db_err),
        None => Ok(0),
    }
}

/// Locks a key row for the rest of the transaction (serialises per-key limit checks).
async fn lock_key(tx: &deadpool_postgres::Transaction<'_>, key_id: &str) -> Result<(), KmsError> {
    tx.query_opt("SELECT 1 FROM keys WHERE key_id=$1 FOR UPDATE", &[&key_id])
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn alias_limit(
    tx: &deadpool_postgres::Transaction<'_>,
    key_id: &str,
    max_per_key: i64,
) -> Result<(), KmsError> {
    lock_key(tx, key_id).await?;
    let n: i64 = tx
        .query_one("SELECT COUNT(*) FROM aliases WHERE key_id=$1", &[&key_id])
        .await
        .map_err(db_err)?
        .try_get(0)
        .map_err(db_err)?;
    if n >= max_per_key {
        return Err(KmsError::LimitExceeded(format!(
            "at most {max_per_key} aliases per key"
        )));
    }
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn get_meta(&self, name: &str) -> Result<Option<String>, KmsError> {
        let c = self.client().await?;
        let row = c
            .query_opt("SELECT value FROM meta WHERE name=$1", &[&name])
            .await
            .map_err(db_err)?;
        row.map(|r| r.try_get(0).map_err(db_err)).transpose()
    }

    async fn set_meta(&self, name: &str, value: &str) -> Result<(), KmsError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value=excluded.value",
            &[&name, &value],
        )
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn init_meta(&self, name: &str, value: &str) -> Result<String, KmsError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &value],
        )
        .await
        .map_err(db_err)?;
        c.query_one("SELECT value FROM meta WHERE name=$1", &[&name])
            .await
            .map_err(db_err)?
            .try_get(0)
            .map_err(db_err)
    }

    async fn ensure_account(&self, account_id: &str, now: i64) -> Result<(), KmsError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO accounts (account_id, creation_date) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&account_id, &now],
        )
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn insert_access_key(&self, ak: AccessKeyRecord) -> Result<(), KmsError> {
        let c = self.client().await?;
        c.execute(
            &format!("INSERT INTO access_keys ({ACCESS_KEY_COLUMNS}) VALUES ($1,$2,$3,$4,$5)"),
            &[
                &ak.access_key_id,
                &ak.account_id,
                &ak.sealed_secret,
                &ak.enabled,
                &ak.creation_date,
            ],
        )
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn get_access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>, KmsError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE access_key_id=$1"
            ))
            .await
            .map_err(db_err)?;
        let row = c.query_opt(&stmt, &[&id]).await.map_err(db_err)?;
        row.as_ref().map(access_key_from_row).transpose()
    }

    async fn list_access_keys(&self) -> Result<Vec<AccessKeyRecord>, KmsError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {ACCESS_KEY_COLUMNS} FROM access_keys ORDER BY creation_date, access_key_id"),
                &[],
            )
            .await
            .map_err(db_err)?;
        rows.iter().map(access_key_from_row).collect()
    }

    async fn set_access_key_enabled(&self, id: &str, enabled: bool) -> Result<bool, KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let n = tx
            .execute(
                "UPDATE access_keys SET enabled=$2 WHERE access_key_id=$1",
                &[&id, &enabled],
            )
            .await
            .map_err(db_err)?;
        tx.execute(NOTIFY, &[&access_key_payload(id)])
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(n > 0)
    }

    async fn delete_access_key(&self, id: &str) -> Result<bool, KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let n = tx
            .execute("DELETE FROM access_keys WHERE access_key_id=$1", &[&id])
            .await
            .map_err(db_err)?;
        tx.execute(NOTIFY, &[&access_key_payload(id)])
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(n > 0)
    }

    async fn insert_key(
        &self,
        key: KeyRecord,
        first: KeyVersionRecord,
        tags: Vec<Tag>,
        max_keys: i64,
    ) -> Result<(), KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        // The count row exists and is locked, so concurrent inserts check the limit in turn.
        tx.execute(
            "INSERT INTO key_counts (account_id, region, n) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
            &[&key.account_id, &key.region],
        )
        .await
        .map_err(db_err)?;
        let n = key_count(&tx, &key.account_id, &key.region, true).await?;
        if n >= max_keys {
            return Err(KmsError::LimitExceeded(format!(
                "at most {max_keys} keys per account and region"
            )));
        }
        tx.execute(INSERT_KEY, &key_params(&key, &key.state.as_str()))
            .await
            .map_err(db_err)?;
        insert_version(&tx, &first).await?;
        for t in &tags {
            tx.execute(
                "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES ($1,$2,$3)",
                &[&key.key_id, &t.key, &t.value],
            )
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn insert_keys_bulk(
        &self,
        keys: Vec<(KeyRecord, KeyVersionRecord)>,
    ) -> Result<(), KmsError> {
        let mut c = self.client().await?;
        for chunk in keys.chunks(5_000) {
            let tx = c.transaction().await.map_err(db_err)?;
            let insert_key = tx.prepare(INSERT_KEY).await.map_err(db_err)?;
            let insert_version = tx
                .prepare("INSERT INTO key_versions (key_id, version_id, creation_date, sealed_material) VALUES ($1,$2,$3,$4)")
                .await
                .map_err(db_err)?;
            for (k, v) in chunk {
                tx.execute(&insert_key, &key_params(k, &k.state.as_str()))
                    .await
                    .map_err(db_err)?;
                tx.execute(
                    &insert_version,
                    &[
                        &v.key_id,
                        &v.version_id,
                        &v.creation_date,
                        &v.sealed_material,
                    ],
                )
                .await
                .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
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
    ) -> Result<(Vec<KeyRecord>, usize), KmsError> {
        // The state ListKeys shows: expired material reads as PendingImport.
        const STATE: &str = "(CASE WHEN material_present AND material_expire IS NOT NULL \
            AND material_expire <= $3 AND state <> 'PendingDeletion' THEN 'PendingImport' ELSE state END)";
        let mut filter_sql = String::new();
        let mut values: Vec<String> = Vec::new();
        for (field, accepted) in filters {
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
                marks.push(format!("${}", 3 + values.len()));
            }
            filter_sql.push_str(&format!(" AND {column} IN ({})", marks.join(",")));
        }
        let base = format!(
            "FROM keys WHERE account_id=$1 AND region=$2 \
             AND NOT (state='PendingDeletion' AND delete_date IS NOT NULL AND delete_date <= $3){filter_sql}"
        );
        let mut args: Vec<Param<'_>> = vec![&account_id, &region, &now];
        for v in &values {
            args.push(v);
        }
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let total = if filters.is_empty() {
            // Exact without a scan: the trigger-kept count, less the keys already past their
            // deletion date that no sweeper has removed yet (an index range).
            let due: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM keys WHERE delete_date IS NOT NULL AND delete_date <= $3 \
                     AND state='PendingDeletion' AND account_id=$1 AND region=$2",
                    &[&account_id, &region, &now],
                )
                .await
                .map_err(db_err)?
                .try_get(0)
                .map_err(db_err)?;
            (key_count(&tx, account_id, region, false).await? - due).max(0) as usize
        } else {
            let n: i64 = tx
                .query_one(&format!("SELECT COUNT(*) {base}"), &args)
                .await
                .map_err(db_err)?
                .try_get(0)
                .map_err(db_err)?;
            n as usize
        };
        if offset >= total {
            return Ok((Vec::new(), total));
        }
        // Pages in the second half are read from the end, so the last page is as quick as
        // the first (OFFSET walks the index).
        let from_end = offset > total / 2;
        let (order, skip, take) = if from_end {
            let end = (offset + limit).min(total);
            ("DESC", total - end, end - offset)
        } else {
            ("ASC", offset, limit)
        };
        let (take, skip) = (take as i64, skip as i64);
        args.push(&take);
        args.push(&skip);
        let n = args.len();
        let rows = tx
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} {base} ORDER BY creation_date {order}, key_id {order} LIMIT ${} OFFSET ${}",
                    n - 1,
                    n
                ),
                &args,
            )
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let mut keys = rows
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if from_end {
            keys.reverse();
        }
        Ok((keys, total))
    }

    async fn list_tags(&self, key_id: &str) -> Result<Vec<Tag>, KmsError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT tag_key, tag_value FROM key_tags WHERE key_id=$1 ORDER BY tag_key",
                &[&key_id],
            )
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(Tag {
                    key: r.try_get(0).map_err(db_err)?,
                    value: r.try_get(1).map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn put_tags(&self, key_id: &str, tags: Vec<Tag>, max: usize) -> Result<(), KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        lock_key(&tx, key_id).await?;
        for t in &tags {
            tx.execute(
                "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES ($1,$2,$3) \
                 ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value=excluded.tag_value",
                &[&key_id, &t.key, &t.value],
            )
            .await
            .map_err(db_err)?;
        }
        let n: i64 = tx
            .query_one("SELECT COUNT(*) FROM key_tags WHERE key_id=$1", &[&key_id])
            .await
            .map_err(db_err)?
            .try_get(0)
            .map_err(db_err)?;
        if n as usize > max {
            return Err(KmsError::LimitExceeded(format!(
                "at most {max} tags per key"
            )));
        }
        tx.commit().await.map_err(db_err)
    }

    async fn remove_tags(
        &self,
        key_id: &str,
        tag_keys: Option<Vec<String>>,
    ) -> Result<(), KmsError> {
        let c = self.client().await?;
        match tag_keys {
            None => {
                c.execute("DELETE FROM key_tags WHERE key_id=$1", &[&key_id])
                    .await
                    .map_err(db_err)?;
            }
            Some(keys) => {
                c.execute(
                    "DELETE FROM key_tags WHERE key_id=$1 AND tag_key = ANY($2)",
                    &[&key_id, &keys],
                )
                .await
                .map_err(db_err)?;
            }
        }
        Ok(())
    }

    async fn list_account_tags(
        &self,
        account_id: &str,
        region: &str,
    ) -> Result<Vec<(String, Tag)>, KmsError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT t.key_id, t.tag_key, t.tag_value FROM key_tags t JOIN keys k ON k.key_id = t.key_id \
                 WHERE k.account_id=$1 AND k.region=$2 ORDER BY t.key_id, t.tag_key",
                &[&account_id, &region],
            )
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(db_err)?,
                    Tag {
                        key: r.try_get(1).map_err(db_err)?,
                        value: r.try_get(2).map_err(db_err)?,
                    },
                ))
            })
            .collect()
    }

    async fn create_alias(&self, alias: AliasRecord, max_per_key: i64) -> Result<(), KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        alias_limit(&tx, &alias.key_id, max_per_key).await?;
        let inserted = tx
            .execute(
                &format!("INSERT INTO aliases ({ALIAS_COLUMNS}) VALUES ($1,$2,$3,$4,$5)"),
                &[
                    &alias.account_id,
                    &alias.region,
                    &alias.alias_name,
                    &alias.key_id,
                    &alias.creation_date,
                ],
            )
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(KmsError::AliasAlreadyExists),
            other => {
                other.map_err(db_err)?;
            }
        }
        tx.execute(
            NOTIFY,
            &[&alias_payload(
                &alias.account_id,
                &alias.region,
                &alias.alias_name,
            )],
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn update_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
        key_id: &str,
        max_per_key: i64,
    ) -> Result<bool, KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let current = tx
            .query_opt(
                "SELECT key_id FROM aliases WHERE account_id=$1 AND region=$2 AND alias_name=$3 FOR UPDATE",
                &[&account_id, &region, &name],
            )
            .await
            .map_err(db_err)?;
        let Some(current) = current else {
            return Ok(false);
        };
        let current: String = current.try_get(0).map_err(db_err)?;
        if current != key_id {
            alias_limit(&tx, key_id, max_per_key).await?;
        }
        tx.execute(
            "UPDATE aliases SET key_id=$4 WHERE account_id=$1 AND region=$2 AND alias_name=$3",
            &[&account_id, &region, &name, &key_id],
        )
        .await
        .map_err(db_err)?;
        tx.execute(NOTIFY, &[&alias_payload(account_id, region, name)])
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn delete_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> Result<bool, KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let n = tx
            .execute(
                "DELETE FROM aliases WHERE account_id=$1 AND region=$2 AND alias_name=$3",
                &[&account_id, &region, &name],
            )
            .await
            .map_err(db_err)?;
        tx.execute(NOTIFY, &[&alias_payload(account_id, region, name)])
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(n > 0)
    }

    async fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> Result<Option<AliasRecord>, KmsError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {ALIAS_COLUMNS} FROM aliases WHERE account_id=$1 AND region=$2 AND alias_name=$3"
            ))
            .await
            .map_err(db_err)?;
        let row = c
            .query_opt(&stmt, &[&account_id, &region, &name])
            .await
            .map_err(db_err)?;
        row.as_ref().map(alias_from_row).transpose()
    }

    async fn list_aliases(
        &self,
        account_id: &str,
        region: &str,
        key_id: Option<&str>,
    ) -> Result<Vec<AliasRecord>, KmsError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {ALIAS_COLUMNS} FROM aliases WHERE account_id=$1 AND region=$2 \
                     AND ($3::text IS NULL OR key_id=$3) ORDER BY alias_name"
                ),
                &[&account_id, &region, &key_id],
            )
            .await
            .map_err(db_err)?;
        rows.iter().map(alias_from_row).collect()
    }

    async fn due_rotations(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.locators(
            "SELECT account_id, region, key_id FROM keys WHERE automatic_rotation AND state='Enabled' \
             AND rotation_interval IS NOT NULL AND last_rotation_date IS NOT NULL \
             AND last_rotation_date + rotation_interval <= $1",
            now,
        )
        .await
    }

    async fn get_key(&self, loc: &KeyLocator) -> Result<Option<KeyRecord>, KmsError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM keys WHERE key_id=$1 AND account_id=$2 AND region=$3"
            ))
            .await
            .map_err(db_err)?;
        let row = c
            .query_opt(&stmt, &[&loc.key_id, &loc.account_id, &loc.region])
            .await
            .map_err(db_err)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self, account_id: &str, region: &str) -> Result<Vec<KeyRecord>, KmsError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE account_id=$1 AND region=$2 ORDER BY creation_date, key_id"),
                &[&account_id, &region],
            )
            .await
            .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn update_key(
        &self,
        loc: &KeyLocator,
        mutation: KeyMutation,
    ) -> Result<Option<KeyRecord>, KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let row = tx
            .query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM keys WHERE key_id=$1 AND account_id=$2 AND region=$3 FOR UPDATE"),
                &[&loc.key_id, &loc.account_id, &loc.region],
            )
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut key = key_from_row(&row)?;
        let changes = mutation(&mut key)?;
        tx.execute(UPDATE_KEY, &key_params(&key, &key.state.as_str()))
            .await
            .map_err(db_err)?;
        for change in changes {
            match change {
                VersionChange::SetMaterial {
                    version_id,
                    sealed_material,
                } => {
                    tx.execute(
                        "UPDATE key_versions SET sealed_material=$3 WHERE key_id=$1 AND version_id=$2",
                        &[&key.key_id, &version_id, &sealed_material],
                    )
                    .await
                    .map_err(db_err)?;
                }
                VersionChange::Insert(v) => insert_version(&tx, &v).await?,
            }
        }
        tx.execute(NOTIFY, &[&key_payload(&key.key_id)])
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(key))
    }

    async fn delete_key_if_due(&self, loc: &KeyLocator, now: i64) -> Result<bool, KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let n = tx
            .execute(
                "DELETE FROM keys WHERE key_id=$1 AND account_id=$2 AND region=$3 \
                 AND state='PendingDeletion' AND delete_date IS NOT NULL AND delete_date <= $4",
                &[&loc.key_id, &loc.account_id, &loc.region, &now],
            )
            .await
            .map_err(db_err)?;
        if n > 0 {
            tx.execute(NOTIFY, &[&key_payload(&loc.key_id)])
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(n > 0)
    }

    async fn get_version(
        &self,
        key_id: &str,
        version_id: &str,
    ) -> Result<Option<KeyVersionRecord>, KmsError> {
        let c = self.client().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM key_versions WHERE key_id=$1 AND version_id=$2"
            ))
            .await
            .map_err(db_err)?;
        let row = c
            .query_opt(&stmt, &[&key_id, &version_id])
            .await
            .map_err(db_err)?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn list_versions(&self, key_id: &str) -> Result<Vec<KeyVersionRecord>, KmsError> {
        let c = self.client().await?;
        let rows = c
            .query(
                &format!("SELECT {VERSION_COLUMNS} FROM key_versions WHERE key_id=$1 ORDER BY creation_date, seq"),
                &[&key_id],
            )
            .await
            .map_err(db_err)?;
        rows.iter().map(version_from_row).collect()
    }

    async fn due_deletions(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.locators(
            "SELECT account_id, region, key_id FROM keys WHERE state='PendingDeletion' \
             AND delete_date IS NOT NULL AND delete_date <= $1",
            now,
        )
        .await
    }

    async fn due_material_expiry(&self, now: i64) -> Result<Vec<KeyLocator>, KmsError> {
        self.locators(
            "SELECT account_id, region, key_id FROM keys WHERE material_present \
             AND material_expire IS NOT NULL AND material_expire <= $1",
            now,
        )
        .await
    }

    async fn insert_wrapping_key(&self, wk: WrappingKeyRecord) -> Result<(), KmsError> {
        let c = self.client().await?;
        c.execute(
            &format!("INSERT INTO wrapping_keys ({WRAPPING_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6)"),
            &[
                &wk.wrapping_key_id,
                &wk.key_id,
                &wk.account_id,
                &wk.algorithm,
                &wk.sealed_private_key,
                &wk.expires,
            ],
        )
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn get_wrapping_key(&self, id: &str) -> Result<Option<WrappingKeyRecord>, KmsError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                &format!("SELECT {WRAPPING_COLUMNS} FROM wrapping_keys WHERE wrapping_key_id=$1"),
                &[&id],
            )
            .await
            .map_err(db_err)?;
        row.as_ref().map(wrapping_key_from_row).transpose()
    }

    async fn record_unwrap_failure(&self, id: &str, max: i64) -> Result<bool, KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        tx.execute(
            "UPDATE wrapping_keys SET failures = failures + 1 WHERE wrapping_key_id=$1",
            &[&id],
        )
        .await
        .map_err(db_err)?;
        let withdrawn = tx
            .execute(
                "DELETE FROM wrapping_keys WHERE wrapping_key_id=$1 AND failures >= $2",
                &[&id, &max],
            )
            .await
            .map_err(db_err)?
            > 0;
        tx.commit().await.map_err(db_err)?;
        Ok(withdrawn)
    }

    async fn purge_wrapping_keys(&self, now: i64) -> Result<u64, KmsError> {
        let c = self.client().await?;
        c.execute("DELETE FROM wrapping_keys WHERE expires < $1", &[&now])
            .await
            .map_err(db_err)
    }

    async fn insert_console_user(&self, user: ConsoleUserRecord) -> Result<bool, KmsError> {
        let c = self.client().await?;
        let n = c
            .execute(
                "INSERT INTO console_users (user_name, account_id, password_hash, creation_date) \
                 VALUES ($1,$2,$3,$4) ON CONFLICT (user_name) DO NOTHING",
                &[
                    &user.user_name,
                    &user.account_id,
                    &user.password_hash,
                    &user.creation_date,
                ],
            )
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn get_console_user(&self, name: &str) -> Result<Option<ConsoleUserRecord>, KmsError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT user_name, account_id, password_hash, creation_date FROM console_users WHERE user_name=$1",
                &[&name],
            )
            .await
            .map_err(db_err)?;
        row.as_ref().map(console_user_from_row).transpose()
    }

    async fn list_console_users(&self) -> Result<Vec<ConsoleUserRecord>, KmsError> {
        let c = self.client().await?;
        let rows = c
            .query(
                "SELECT user_name, account_id, password_hash, creation_date FROM console_users ORDER BY user_name",
                &[],
            )
            .await
            .map_err(db_err)?;
        rows.iter().map(console_user_from_row).collect()
    }

    async fn delete_console_user(&self, name: &str) -> Result<bool, KmsError> {
        let c = self.client().await?;
        let n = c
            .execute("DELETE FROM console_users WHERE user_name=$1", &[&name])
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn insert_console_session(&self, s: ConsoleSessionRecord) -> Result<(), KmsError> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO console_sessions (id_hash, account_id, principal, created, last_seen) VALUES ($1,$2,$3,$4,$5)",
            &[&s.id_hash, &s.account_id, &s.principal, &s.created, &s.last_seen],
        )
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn get_console_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<ConsoleSessionRecord>, KmsError> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT id_hash, account_id, principal, created, last_seen FROM console_sessions WHERE id_hash=$1",
                &[&id_hash],
            )
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(ConsoleSessionRecord {
                id_hash: r.try_get(0).map_err(db_err)?,
                account_id: r.try_get(1).map_err(db_err)?,
                principal: r.try_get(2).map_err(db_err)?,
                created: r.try_get(3).map_err(db_err)?,
                last_seen: r.try_get(4).map_err(db_err)?,
            })
        })
        .transpose()
    }

    async fn touch_console_session(&self, id_hash: &str, now: i64) -> Result<(), KmsError> {
        let c = self.client().await?;
        c.execute(
            "UPDATE console_sessions SET last_seen=GREATEST(last_seen, $2) WHERE id_hash=$1",
            &[&id_hash, &now],
        )
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_console_session(&self, id_hash: &str) -> Result<(), KmsError> {
        let c = self.client().await?;
        c.execute("DELETE FROM console_sessions WHERE id_hash=$1", &[&id_hash])
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn purge_console_sessions(&self, idle_before: i64) -> Result<u64, KmsError> {
        let c = self.client().await?;
        c.execute(
            "DELETE FROM console_sessions WHERE last_seen < $1",
            &[&idle_before],
        )
        .await
        .map_err(db_err)
    }

    fn shares_nonces(&self) -> bool {
        true
    }

    async fn claim_nonce(&self, digest: &[u8], until: i64) -> Result<bool, KmsError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.nonces
            .send((digest.to_vec(), until, reply))
            .await
            .map_err(|_| KmsError::internal("nonce workers stopped"))?;
        answer
            .await
            .map_err(|_| KmsError::internal("nonce worker dropped a claim"))?
            .map_err(db_err)
    }

    async fn purge_nonces(&self, now: i64) -> Result<u64, KmsError> {
        let c = self.client().await?;
        c.execute("DELETE FROM nonces WHERE until < $1", &[&now])
            .await
            .map_err(db_err)
    }

    async fn export(&self) -> Result<Dump, KmsError> {
        let c = self.client().await?;
        let mut d = Dump::default();
        for r in c
            .query("SELECT name, value FROM meta ORDER BY name", &[])
            .await
            .map_err(db_err)?
        {
            d.meta
                .push((r.try_get(0).map_err(db_err)?, r.try_get(1).map_err(db_err)?));
        }
        for r in c
            .query(
                "SELECT account_id, creation_date FROM accounts ORDER BY account_id",
                &[],
            )
            .await
            .map_err(db_err)?
        {
            d.accounts
                .push((r.try_get(0).map_err(db_err)?, r.try_get(1).map_err(db_err)?));
        }
        d.access_keys = self.list_access_keys().await?;
        d.access_keys
            .sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
        for r in c
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM keys ORDER BY key_id"),
                &[],
            )
            .await
            .map_err(db_err)?
        {
            d.keys.push(key_from_row(&r)?);
        }
        for r in c
            .query(
                &format!("SELECT {VERSION_COLUMNS} FROM key_versions ORDER BY key_id, creation_date, seq"),
                &[],
            )
            .await
            .map_err(db_err)?
        {
            d.versions.push(version_from_row(&r)?);
        }
        for r in c
            .query(
                "SELECT key_id, tag_key, tag_value FROM key_tags ORDER BY key_id, tag_key",
                &[],
            )
            .await
            .map_err(db_err)?
        {
            d.tags.push((
                r.try_get(0).map_err(db_err)?,
                Tag {
                    key: r.try_get(1).map_err(db_err)?,
                    value: r.try_get(2).map_err(db_err)?,
                },
            ));
        }
        for r in c
            .query(
                &format!(
                    "SELECT {ALIAS_COLUMNS} FROM aliases ORDER BY account_id, region, alias_name"
                ),
                &[],
            )
            .await
            .map_err(db_err)?
        {
            d.aliases.push(alias_from_row(&r)?);
        }
        for r in c
            .query(
                &format!("SELECT {WRAPPING_COLUMNS}, failures FROM wrapping_keys ORDER BY wrapping_key_id"),
                &[],
            )
            .await
            .map_err(db_err)?
        {
            d.wrapping_keys
                .push((wrapping_key_from_row(&r)?, r.try_get(6).map_err(db_err)?));
        }
        d.console_users = self.list_console_users().await?;
        Ok(d)
    }

    async fn import(&self, dump: Dump) -> Result<(), KmsError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db_err)?;
        let existing: i64 = tx
            .query_one(
                "SELECT (SELECT COUNT(*) FROM keys) + (SELECT COUNT(*) FROM access_keys)",
                &[],
            )
            .await
            .map_err(db_err)?
            .try_get(0)
            .map_err(db_err)?;
        if existing > 0 {
            return Err(KmsError::internal(
                "the target database already holds keys or access keys; migrate into an empty one",
            ));
        }
        for (name, value) in &dump.meta {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value=excluded.value",
                &[name, value],
            )
            .await
            .map_err(db_err)?;
        }
        for (id, date) in &dump.accounts {
            tx.execute(
                "INSERT INTO accounts (account_id, creation_date) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[id, date],
            )
            .await
            .map_err(db_err)?;
        }
        for ak in &dump.access_keys {
            tx.execute(
                &format!("INSERT INTO access_keys ({ACCESS_KEY_COLUMNS}) VALUES ($1,$2,$3,$4,$5)"),
                &[
                    &ak.access_key_id,
                    &ak.account_id,
                    &ak.sealed_secret,
                    &ak.enabled,
                    &ak.creation_date,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        let insert_key = tx.prepare(INSERT_KEY).await.map_err(db_err)?;
        for k in &dump.keys {
            tx.execute(&insert_key, &key_params(k, &k.state.as_str()))
                .await
                .map_err(db_err)?;
        }
        for v in &dump.versions {
            insert_version(&tx, v).await?;
        }
        for (key_id, t) in &dump.tags {
            tx.execute(
                "INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES ($1,$2,$3)",
                &[key_id, &t.key, &t.value],
            )
            .await
            .map_err(db_err)?;
        }
        for a in &dump.aliases {
            tx.execute(
                &format!("INSERT INTO aliases ({ALIAS_COLUMNS}) VALUES ($1,$2,$3,$4,$5)"),
                &[
                    &a.account_id,
                    &a.region,
                    &a.alias_name,
                    &a.key_id,
                    &a.creation_date,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        for (wk, failures) in &dump.wrapping_keys {
            tx.execute(
                &format!("INSERT INTO wrapping_keys ({WRAPPING_COLUMNS}, failures) VALUES ($1,$2,$3,$4,$5,$6,$7)"),
                &[
                    &wk.wrapping_key_id,
                    &wk.key_id,
                    &wk.account_id,
                    &wk.algorithm,
                    &wk.sealed_private_key,
                    &wk.expires,
                    failures,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        for u in &dump.console_users {
            tx.execute(
                "INSERT INTO console_users (user_name, account_id, password_hash, creation_date) VALUES ($1,$2,$3,$4)",
                &[&u.user_name, &u.account_id, &u.password_hash, &u.creation_date],
            )
            .await
            .map_err(db_err)?;
        }
        tx.execute(NOTIFY, &[&"*"]).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }
}
