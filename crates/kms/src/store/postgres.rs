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
//!   the payload names ([`super::cache::Change`]) from its [`super::cache::CachedStore`]. After a reconnect a node drops
//!   its whole cache (notifications may have been missed); cached entries also live at most
//!   [`CACHE_TTL`], the safety net.
//! - **Nonces** are claimed in the `nonce_claims_<n>` tables, so a request replayed to another
//!   node is refused too: one row (8 bytes of the nonce's digest) in the table of the
//!   request's signed-time bucket, tables truncated whole once their time has passed
//!   (see [`nonce_slot`]).
//! - **Background work** (deletion, material expiry, rotation) runs on every node; each item
//!   is re-checked under the row lock inside the transaction that does it, so it is done
//!   exactly once whichever node gets there first.
//!
//! The connection has no TLS (tokio-postgres `NoTls`): run the database on loopback, a unix
//! socket or a private network. Everything secret in it is sealed under the root key.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls};

use super::sql::{self, Backend, Conn, Dialect, Job, Mode, Param, Row, SqlStore, Value};
use super::{NonceStore, StoreError, StoreResult};

/// The migrations, in order. Add a file and a line here to change the schema.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/postgres/0002_console.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_wrapping_keys_by_key.sql"),
    ),
    // Secrets Manager (issue 18).
    (
        4,
        include_str!("../../migrations/postgres/0004_secrets.sql"),
    ),
    (5, include_str!("../../migrations/postgres/0005_ram.sql")),
    // Nonce claims in a ring of tables by signed-time bucket (issue 21).
    (
        9,
        include_str!("../../migrations/postgres/0009_nonce_claims.sql"),
    ),
];

/// Advisory lock key held while migrating ("kmsmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x006b_6d73_6d69_6772;

/// The notification channel.
pub const CHANNEL: &str = "kms_changes";

/// Lifetime of a cached key row, version or alias on a PostgreSQL node: the bound on how long
/// a node can serve a key changed on another node if a notification is lost.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// The store on PostgreSQL.
pub type PostgresStore = SqlStore<Postgres>;

/// A PostgreSQL pool's connections (for the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Lent to an operation.
    pub in_use: usize,
    /// Open and waiting in the pool.
    pub idle: usize,
    /// The most the pool opens (`--database-pool`).
    pub max: usize,
    /// Operations waiting for a connection.
    pub waiting: usize,
}

/// The PostgreSQL engine: a connection pool, and the nonce workers with their own.
pub struct Postgres {
    pool: Pool,
    /// Nonce claims go to one batching worker (see [`NonceQueue`]).
    nonces: NonceWorker,
}

/// Width of a claim bucket, in seconds of signed time.
const NONCE_BUCKET_SECONDS: i64 = 300;
/// Tables of claims (migration 0009): bucket `b` is filed in `nonce_claims_<b mod NONCE_SLOTS>`.
const NONCE_SLOTS: i64 = 16;
/// How far the clocks of the nodes may disagree before a claim could be purged by one node
/// while another still accepts its timestamp: a table is truncated only when no
/// timestamp it can hold is within the time check's window plus this margin.
const NONCE_CLOCK_MARGIN: i64 = NONCE_BUCKET_SECONDS;
// The buckets whose claims must be kept (the window on both sides of now, plus the margin on
// both sides, plus the partial buckets at the ends) must leave some tables to truncate,
// so that a table is never reused by a new bucket while an old one could still be live.
const _: () = assert!(
    (2 * super::NONCE_WINDOW_SECONDS + 2 * NONCE_CLOCK_MARGIN) / NONCE_BUCKET_SECONDS + 2
        < NONCE_SLOTS
);

/// The table of a claim: the bucket of the request's signed timestamp, modulo
/// [`NONCE_SLOTS`]. A replay carries the same timestamp (it is signed), so it lands in the
/// same table as the original, on every node and after every restart.
fn nonce_slot(timestamp: i64) -> i16 {
    i16::try_from(
        timestamp
            .div_euclid(NONCE_BUCKET_SECONDS)
            .rem_euclid(NONCE_SLOTS),
    )
    .unwrap_or_default()
}

/// The key of a claim: the first 8 bytes of the nonce's digest (zero-padded), as a BIGINT,
/// which is a cheaper primary key than BYTEA. Two different nonces of live requests in one
/// table share a key with probability about n / 2^64 (n the claims in the table):
/// at 40,000 requests a second a bucket holds 12 million, so about 1 request in 1.5 * 10^12
/// is refused as a replay (`SignatureNonceUsed`; a client retries with a fresh nonce).
fn nonce_key(digest: &[u8]) -> i64 {
    let mut first = [0u8; 8];
    let n = digest.len().min(8);
    first[..n].copy_from_slice(&digest[..n]);
    i64::from_be_bytes(first)
}

/// The tables no claim can be live in at `now`: every timestamp they can hold (in the
/// buckets they receive now) is beyond the time check's window plus [`NONCE_CLOCK_MARGIN`]
/// on either side.
fn dead_nonce_slots(now: i64) -> Vec<i16> {
    let reach = super::NONCE_WINDOW_SECONDS + NONCE_CLOCK_MARGIN;
    let first = now.saturating_sub(reach).div_euclid(NONCE_BUCKET_SECONDS);
    let last = now.saturating_add(reach).div_euclid(NONCE_BUCKET_SECONDS);
    let live: HashSet<i16> = (first..=last)
        .map(|b| nonce_slot(b.saturating_mul(NONCE_BUCKET_SECONDS)))
        .collect();
    (0..NONCE_SLOTS)
        .filter_map(|s| i16::try_from(s).ok())
        .filter(|s| !live.contains(s))
        .collect()
}

/// Claims per statement, at most.
const NONCE_BATCH: usize = 1024;
/// Claims waiting for the worker, at most: a claim that finds this many waits for the worker
/// to take them (back-pressure, as the bounded channel did before).
const NONCE_QUEUE: usize = 65_536;

/// Times the worker yields to the runtime before it takes the waiting claims: the requests
/// already running get to reach their claim, so a statement carries about 20 claims instead
/// of 9 at c=32 on two cores, and PostgreSQL spends about 10 µs a claim instead of 15
/// (docs/performance-notes.md; 8 or 16 yields gained nothing more). A yield with nothing
/// else to run returns at once, so an idle node adds no latency.
const NONCE_YIELDS: usize = 4;

/// The hand-off between the requests and the nonce worker (one worker, with one connection:
/// while its statement is out, the claims that arrive wait and all go in the next one, so
/// the batches grow with the load and the database runs one statement where four workers
/// ran four small ones; docs/performance-notes.md).
///
/// A request pushes its claim into the forming batch under a short lock and keeps an `Arc`
/// of that batch and its index in it; the claim that finds the batch empty wakes the worker
/// (once a batch, not once a claim). The worker swaps the forming batch for a fresh one,
/// makes the claims, stores the answers in the batch and wakes all its waiters with one
/// `notify_waiters`. Before, every claim went through a bounded `mpsc` channel with its own
/// `oneshot` reply (an allocation, a channel send and a wake of the worker per claim,
/// docs/performance-postgres-notes.md "Round three").
struct NonceQueue {
    forming: std::sync::Mutex<Forming>,
    /// Wakes the worker: a permit left by the first claim of a batch (or by the store's
    /// drop), so a claim made while the worker is busy is not missed.
    work: tokio::sync::Notify,
    /// Wakes the claims that found the forming batch full, when the worker takes it.
    room: tokio::sync::Notify,
}

/// The batch being filled: its claims (table, key) and where their answers will be.
struct Forming {
    claims: Vec<(i16, i64)>,
    batch: Arc<NonceBatch>,
    /// The store was dropped or the worker ended: no claim will be made any more.
    closed: bool,
}

/// The answers of one batch, once made, and its waiters.
#[derive(Default)]
struct NonceBatch {
    outcome: std::sync::OnceLock<BatchOutcome>,
    done: tokio::sync::Notify,
}

/// Per claim (by its index in the batch): granted, refused (a replay), or not known
/// (`error` says why; the request fails with a database error, never as granted).
struct BatchOutcome {
    answers: Vec<Answer>,
    error: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Granted,
    Refused,
    Failed,
}

impl NonceBatch {
    /// Stores the outcome (the first one stored wins) and wakes every waiter.
    fn finish(&self, outcome: BatchOutcome) {
        let _ = self.outcome.set(outcome);
        self.done.notify_waiters();
    }

    /// The answer of claim `index`, once the batch is done.
    async fn answer(&self, index: usize) -> Result<bool, String> {
        loop {
            // Made before the check: a `notify_waiters` after this point completes it.
            let done = self.done.notified();
            if let Some(o) = self.outcome.get() {
                return match o.answers.get(index) {
                    Some(Answer::Granted) => Ok(true),
                    Some(Answer::Refused) => Ok(false),
                    // A batch failed whole (its worker gone) has no answers, only the error.
                    Some(Answer::Failed) | None => Err(o.error.clone()),
                };
            }
            done.await;
        }
    }
}

/// Fails a batch that the worker took but did not finish (its task cancelled or unwound):
/// its requests get a database error instead of waiting for ever.
struct TakenBatch(Arc<NonceBatch>);

impl Drop for TakenBatch {
    fn drop(&mut self) {
        if self.0.outcome.get().is_none() {
            self.0.finish(BatchOutcome {
                answers: Vec::new(),
                error: "nonce worker dropped a claim".to_string(),
            });
        }
    }
}

impl NonceQueue {
    fn new() -> Self {
        Self {
            forming: std::sync::Mutex::new(Forming {
                claims: Vec::with_capacity(64),
                batch: Arc::default(),
                closed: false,
            }),
            work: tokio::sync::Notify::new(),
            room: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Forming> {
        // No code panics while holding the lock; a poisoned one is still consistent.
        self.forming.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims `key` in the table of `slot`: true if this claim inserted it, false if it was
    /// there (or claimed earlier in the same batch), an error if the statement failed.
    async fn claim(&self, slot: i16, key: i64) -> Result<bool, String> {
        let (batch, index) = loop {
            // Made before the check: a `notify_waiters` after this point completes it.
            let room = self.room.notified();
            {
                let mut f = self.lock();
                if f.closed {
                    return Err("nonce workers stopped".to_string());
                }
                if f.claims.len() < NONCE_QUEUE {
                    let index = f.claims.len();
                    f.claims.push((slot, key));
                    if index == 0 {
                        self.work.notify_one();
                    }
                    break (f.batch.clone(), index);
                }
            }
            room.await;
        };
        batch.answer(index).await
    }

    /// Marks the queue closed and fails the claims waiting in it.
    fn close(&self) {
        let batch = {
            let mut f = self.lock();
            f.closed = true;
            f.claims.clear();
            std::mem::take(&mut f.batch)
        };
        drop(TakenBatch(batch));
        self.room.notify_waiters();
        self.work.notify_one();
    }
}

/// The store's handle on the nonce worker: dropping the store stops the worker (which
/// returns its connection).
struct NonceWorker(Arc<NonceQueue>);

impl Drop for NonceWorker {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Closes the queue when the worker's task ends however it ends.
struct WorkerRunning(Arc<NonceQueue>);

impl Drop for WorkerRunning {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Starts the nonce worker on `pool`, whose sessions run with `synchronous_commit = off`: a
/// claim is visible to every node at once but is not waited on to reach the disk (a database
/// crash may forget the claims of its last moments, re-opening a replay window of at most 15
/// minutes for those requests); this keeps an fsync off every request. The worker takes
/// every claim waiting when it is free and makes them in one statement per table (up to
/// [`NONCE_BATCH`] claims each), so under load one round trip serves many requests.
fn start_nonce_worker(pool: Pool) -> NonceWorker {
    let queue = Arc::new(NonceQueue::new());
    let running = WorkerRunning(queue.clone());
    tokio::spawn(async move {
        let queue = running.0.clone();
        let sql = NonceSql::new();
        let mut claims: Vec<(i16, i64)> = Vec::with_capacity(64);
        loop {
            queue.work.notified().await;
            for _ in 0..NONCE_YIELDS {
                tokio::task::yield_now().await;
            }
            let batch = {
                let mut f = queue.lock();
                if f.closed {
                    break;
                }
                if f.claims.is_empty() {
                    continue;
                }
                std::mem::swap(&mut f.claims, &mut claims);
                std::mem::take(&mut f.batch)
            };
            queue.room.notify_waiters();
            let taken = TakenBatch(batch);
            let outcome = claim_batch(&pool, &sql, &claims).await;
            taken.0.finish(outcome);
            claims.clear();
        }
        drop(running);
    });
    NonceWorker(queue)
}

/// The two statements of each claim table, written once (`prepare_cached` looks them up).
struct NonceSql {
    plain: Vec<String>,
    careful: Vec<String>,
}

impl NonceSql {
    fn new() -> Self {
        // The slots are the integers 0..NONCE_SLOTS, never text from outside.
        Self {
            plain: (0..NONCE_SLOTS)
                .map(|s| format!("INSERT INTO nonce_claims_{s} (digest) SELECT unnest($1::int8[])"))
                .collect(),
            careful: (0..NONCE_SLOTS)
                .map(|s| {
                    format!(
                        "INSERT INTO nonce_claims_{s} (digest) SELECT unnest($1::int8[]) \
                         ON CONFLICT DO NOTHING RETURNING digest"
                    )
                })
                .collect(),
        }
    }
}

/// A batch of claims: one statement per table the batch touches (nearly always one: the
/// requests of a moment are signed in the same bucket) and per [`NONCE_BATCH`] claims.
/// Within a batch the first claim of a key is the one sent (a later one is a replay); a
/// claim is granted if its row was inserted, and only once its statement has returned
/// (committed: each statement is its own transaction).
async fn claim_batch(pool: &Pool, sql: &NonceSql, claims: &[(i16, i64)]) -> BatchOutcome {
    let mut answers = vec![Answer::Refused; claims.len()];
    let mut error = String::new();
    // The claims in (table, key, arrival) order: the first of each (table, key) run is the
    // one sent, the others are refused.
    let mut order: Vec<u32> = (0..claims.len())
        .filter_map(|i| u32::try_from(i).ok())
        .collect();
    order.sort_unstable_by_key(|&i| (claims[i as usize], i));
    let mut firsts: Vec<u32> = Vec::with_capacity(order.len());
    for &i in &order {
        let same = firsts
            .last()
            .is_some_and(|&p| claims[p as usize] == claims[i as usize]);
        if !same {
            firsts.push(i);
        }
    }
    let conn = match pool.get().await {
        Ok(c) => Some(c),
        Err(e) => {
            error = e.to_string();
            None
        }
    };
    let mut keys: Vec<i64> = Vec::with_capacity(firsts.len().min(NONCE_BATCH));
    for chunk in firsts.chunk_by(|&a, &b| claims[a as usize].0 == claims[b as usize].0) {
        for part in chunk.chunks(NONCE_BATCH) {
            let slot = claims[part[0] as usize].0;
            keys.clear();
            keys.extend(part.iter().map(|&i| claims[i as usize].1));
            let made = match &conn {
                Some(c) => claim_in_table(c, sql, slot, &keys).await,
                None => Err(error.clone()),
            };
            match made {
                Ok(None) => part
                    .iter()
                    .for_each(|&i| answers[i as usize] = Answer::Granted),
                Ok(Some(inserted)) => part.iter().for_each(|&i| {
                    if inserted.binary_search(&claims[i as usize].1).is_ok() {
                        answers[i as usize] = Answer::Granted;
                    }
                }),
                Err(e) => {
                    part.iter()
                        .for_each(|&i| answers[i as usize] = Answer::Failed);
                    error = e;
                }
            }
        }
    }
    BatchOutcome { answers, error }
}

/// Inserts distinct `keys` into the table of `slot`: `None` if all were inserted, else the
/// (sorted) ones that were. First as a plain INSERT, which is all-or-nothing: without a
/// replay among them (nearly always) every key is new. Only if one is already there (a
/// unique violation: the statement inserted nothing) again with `ON CONFLICT DO NOTHING
/// RETURNING` to tell which. The plain INSERT costs PostgreSQL about 40 % less CPU a row
/// than the ON CONFLICT one (measured with pgbench, docs/performance-notes.md); a replay
/// costs the batch one more statement.
async fn claim_in_table(
    c: &deadpool_postgres::Object,
    sql: &NonceSql,
    slot: i16,
    keys: &[i64],
) -> Result<Option<Vec<i64>>, String> {
    let (Some(plain), Some(careful)) = (
        usize::try_from(slot).ok().and_then(|s| sql.plain.get(s)),
        usize::try_from(slot).ok().and_then(|s| sql.careful.get(s)),
    ) else {
        return Err(format!("no nonce table {slot}"));
    };
    let plain = c.prepare_cached(plain).await.map_err(|e| e.to_string())?;
    match c.execute(&plain, &[&keys]).await {
        Ok(_) => return Ok(None),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
        Err(e) => return Err(e.to_string()),
    }
    let careful = c.prepare_cached(careful).await.map_err(|e| e.to_string())?;
    let rows = c
        .query(&careful, &[&keys])
        .await
        .map_err(|e| e.to_string())?;
    let mut inserted: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.try_get::<_, i64>(0).ok())
        .collect();
    inserted.sort_unstable();
    Ok(Some(inserted))
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(format!("postgres: {e}"))
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::Duplicate(format!("postgres: {e}"))
    } else {
        db_err(e)
    }
}

/// The connection settings of a `postgres://` URL, without the password in errors.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| format!("invalid database URL: {e}"))
}

impl SqlStore<Postgres> {
    /// Connects a pool of `pool_size` connections and applies pending migrations.
    pub async fn connect(config: tokio_postgres::Config, pool_size: usize) -> StoreResult<Self> {
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
        let store = SqlStore::new(Postgres {
            pool: build(config, pool_size.max(2))?,
            nonces: start_nonce_worker(build(async_config, 1)?),
        });
        store.backend.migrate().await?;
        Ok(store)
    }

    /// The request pool's connections now (the nonce workers' own few are not counted).
    pub fn pool_use(&self) -> PoolUse {
        let s = self.backend.pool.status();
        PoolUse {
            in_use: s.size.saturating_sub(s.available),
            idle: s.available,
            max: s.max_size,
            waiting: s.waiting,
        }
    }
}

impl Postgres {
    /// Applies pending migrations while holding a session advisory lock, so nodes starting
    /// at once queue on it and find the work done.
    async fn migrate(&self) -> StoreResult<()> {
        let lock = self.pool.get().await.map_err(db_err)?;
        lock.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err)?;
        let mut result = Ok(());
        for (version, sql) in MIGRATIONS {
            match self.run(Mode::Write, sql::migration(*version, sql)).await {
                Ok(true) => tracing::info!(version, "applied PostgreSQL migration"),
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let unlocked = lock
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_err);
        result.and(unlocked.map(|_| ()))
    }
}

impl Backend for Postgres {
    async fn run<T: Send + 'static>(&self, mode: Mode, job: Job<T>) -> StoreResult<T> {
        let mut client = self.pool.get().await.map_err(db_err)?;
        let tx = match mode {
            Mode::Auto => return job(&mut PgConn(&client)).await,
            Mode::Snapshot => client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_err)?,
            Mode::Write => client.transaction().await.map_err(pg_err)?,
            Mode::Lazy => {
                let tx = client.transaction().await.map_err(pg_err)?;
                tx.batch_execute("SET LOCAL synchronous_commit = off")
                    .await
                    .map_err(pg_err)?;
                tx
            }
        };
        let result = job(&mut PgConn(&tx)).await;
        match result {
            Ok(v) => {
                tx.commit().await.map_err(pg_err)?;
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

/// A connection or a transaction on one.
struct PgConn<'a, C>(&'a C);

/// Parameters bind by the type the statement expects.
impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(v) => v.to_sql_checked(ty, out),
            Param::Bool(v) => v.to_sql_checked(ty, out),
            Param::Text(v) => v.to_sql_checked(ty, out),
            Param::Blob(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn params<'a>(params: &'a [Param<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn row(r: &tokio_postgres::Row) -> StoreResult<Row> {
    let mut values = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let ty = column.type_();
        let v = if *ty == Type::BOOL {
            r.try_get::<_, Option<bool>>(i).map(|v| v.map(Value::Bool))
        } else if *ty == Type::INT8 {
            r.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::Int))
        } else if *ty == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)
                .map(|v| v.map(|v| Value::Int(v.into())))
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
            r.try_get::<_, Option<String>>(i)
                .map(|v| v.map(Value::Text))
        } else if *ty == Type::BYTEA {
            r.try_get::<_, Option<Vec<u8>>>(i)
                .map(|v| v.map(Value::Blob))
        } else {
            return Err(StoreError::Corrupt(format!(
                "postgres: column {i} has type {ty}"
            )));
        };
        values.push(v.map_err(pg_err)?.unwrap_or(Value::Null));
    }
    Ok(Row::new(values))
}

#[async_trait]
impl<C: GenericClient + Send> Conn for PgConn<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&mut self, sql: &str, p: &[Param<'_>]) -> StoreResult<u64> {
        let stmt = self.0.prepare_cached(sql).await.map_err(pg_err)?;
        self.0.execute(&stmt, &params(p)).await.map_err(pg_err)
    }

    async fn query(&mut self, sql: &str, p: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        let stmt = self.0.prepare_cached(sql).await.map_err(pg_err)?;
        let rows = self.0.query(&stmt, &params(p)).await.map_err(pg_err)?;
        rows.iter().map(row).collect()
    }

    async fn query_once(&mut self, sql: &str, p: &[Param<'_>]) -> StoreResult<Vec<Row>> {
        let rows = self.0.query(sql, &params(p)).await.map_err(pg_err)?;
        rows.iter().map(row).collect()
    }

    async fn batch(&mut self, sql: &str) -> StoreResult<()> {
        self.0.batch_execute(sql).await.map_err(pg_err)
    }

    async fn notify(&mut self, payload: &str) -> StoreResult<()> {
        self.execute(
            "SELECT pg_notify('kms_changes', $1)",
            &[Param::Text(payload)],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl NonceStore for PostgresStore {
    fn shares_nonces(&self) -> bool {
        true
    }

    async fn claim_nonce(&self, digest: &[u8], timestamp: i64) -> StoreResult<bool> {
        self.backend
            .nonces
            .0
            .claim(nonce_slot(timestamp), nonce_key(digest))
            .await
            .map_err(db_err)
    }

    /// Truncates the tables that hold claims but can hold no live one at `now` (see
    /// [`dead_nonce_slots`]): one probe a call, a TRUNCATE about every
    /// [`NONCE_BUCKET_SECONDS`]. A table of a live bucket is never truncated, however
    /// late the purge runs; a table left full by purges that did not run (no node up for
    /// a while) only keeps old keys, which a new claim matches with the 2^-64 odds above.
    async fn purge_nonces(&self, now: i64) -> StoreResult<u64> {
        let dead = dead_nonce_slots(now);
        let c = self.backend.pool.get().await.map_err(db_err)?;
        // The slots are integers of 0..NONCE_SLOTS, never text from outside.
        let probe = dead
            .iter()
            .map(|s| format!("EXISTS (SELECT 1 FROM nonce_claims_{s})"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = c
            .query_one(&format!("SELECT {probe}"), &[])
            .await
            .map_err(pg_err)?;
        let mut truncated = 0;
        for (i, slot) in dead.iter().enumerate() {
            if row.try_get::<_, bool>(i).map_err(pg_err)? {
                c.batch_execute(&format!("TRUNCATE nonce_claims_{slot}"))
                    .await
                    .map_err(pg_err)?;
                truncated += 1;
            }
        }
        Ok(truncated)
    }
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
