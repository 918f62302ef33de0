//! The SQLite engine: one file `kms.db` in the data dir, WAL journal, `synchronous=FULL`
//! (an acknowledged change survives a crash of the process or the machine; [`Mode::Lazy`]
//! operations alone run with `synchronous=NORMAL`, surviving a crash of the process only),
//! foreign keys on.
//! Migrations are the numbered files in `migrations/sqlite/`, embedded in the binary and
//! applied in order inside one transaction each, recorded in `schema_migrations`.
//!
//! rusqlite is synchronous: every operation runs on the blocking thread pool with the one
//! connection behind a mutex (SQLite serialises writers anyway), and the shared SQL's
//! futures complete without ever waiting ([`complete`]). The statements are those of
//! [`super::sql`]; this file holds only the connection, transactions and binding.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use rusqlite::types::{Null, ValueRef};
use rusqlite::{Connection, ErrorCode, Statement};

use super::sql::{self, Backend, BoxFuture, Conn, Dialect, Job, Mode, Param, Row, SqlStore, Value};
use super::{NonceStore, StoreError};

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
    (
        6,
        include_str!("../../migrations/sqlite/0006_wrapping_keys_by_key.sql"),
    ),
    // Secrets Manager (issue 18).
    (7, include_str!("../../migrations/sqlite/0007_secrets.sql")),
    (8, include_str!("../../migrations/sqlite/0008_ram.sql")),
];

/// The newest schema version this build knows (its last migration).
pub fn latest_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// The store on SQLite.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite engine: one connection.
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
}

fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == ErrorCode::ConstraintViolation
                && matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                        | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                ) =>
        {
            StoreError::Duplicate(format!("sqlite: {e}"))
        }
        _ => StoreError::Database(format!("sqlite: {e}")),
    }
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(Connection::open(path).map_err(db_err)?)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(db_err)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )
        .map_err(db_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        for (version, sql) in MIGRATIONS {
            exec(&mut conn, Mode::Write, sql::migration(*version, sql))?;
        }
        Ok(SqlStore::new(Sqlite {
            conn: Arc::new(Mutex::new(conn)),
        }))
    }
}

impl Backend for Sqlite {
    async fn run<T: Send + 'static>(&self, mode: Mode, job: Job<T>) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic in an earlier operation leaves the connection as it was; `exec`
            // rolls back anything it left open.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            exec(&mut conn, mode, job)
        })
        .await
        .map_err(|e| StoreError::Database(format!("sqlite: {e}")))?
    }
}

/// Runs `job` in a transaction of `mode` on `conn`, now.
fn exec<T>(conn: &mut Connection, mode: Mode, job: Job<T>) -> Result<T, StoreError> {
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK").map_err(db_err)?;
    }
    let begin = match mode {
        Mode::Auto => None,
        Mode::Snapshot => Some("BEGIN DEFERRED"),
        Mode::Write => Some("BEGIN IMMEDIATE"),
        // WAL with synchronous=NORMAL: the commit reaches the kernel, not the disk (the next
        // FULL commit flushes it too).
        Mode::Lazy => Some("PRAGMA synchronous=NORMAL; BEGIN IMMEDIATE"),
    };
    if let Some(begin) = begin {
        if let Err(e) = conn.execute_batch(begin) {
            restore_synchronous(conn, mode);
            return Err(db_err(e));
        }
    }
    let result = complete(job(&mut SqliteConn { conn }));
    if begin.is_some() {
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        if let Err(e) = conn.execute_batch(end) {
            let _ = conn.execute_batch("ROLLBACK");
            restore_synchronous(conn, mode);
            return Err(db_err(e));
        }
    }
    restore_synchronous(conn, mode);
    result
}

/// Back to `synchronous=FULL` after a [`Mode::Lazy`] operation (setting a flag of the
/// connection: it fails only on a broken connection, which the next operation reports).
fn restore_synchronous(conn: &mut Connection, mode: Mode) {
    if mode == Mode::Lazy {
        if let Err(e) = conn.execute_batch("PRAGMA synchronous=FULL") {
            tracing::error!(error = %e, "sqlite: cannot set synchronous=FULL again");
        }
    }
}

/// Drives a future that never waits (every [`SqliteConn`] call completes at once) to its
/// end. Written by hand because it is one poll: an executor would only add a thread park
/// that can never happen. A future that does wait is a bug, reported as an error.
fn complete<T>(mut job: BoxFuture<'_, Result<T, StoreError>>) -> Result<T, StoreError> {
    match job.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Database(
            "sqlite: an operation waited on something other than the connection".into(),
        )),
    }
}

struct SqliteConn<'a> {
    conn: &'a mut Connection,
}

/// Binds `params[i]` to the parameter named `$<i+1>` (see [`super::sql::conn`]).
fn bind(stmt: &mut Statement<'_>, params: &[Param<'_>]) -> Result<(), StoreError> {
    if stmt.parameter_count() != params.len() {
        return Err(StoreError::Database(format!(
            "sqlite: statement takes {} parameters, given {}",
            stmt.parameter_count(),
            params.len()
        )));
    }
    for (i, p) in params.iter().enumerate() {
        let index = stmt
            .parameter_index(&format!("${}", i + 1))
            .map_err(db_err)?
            .ok_or_else(|| StoreError::Database(format!("sqlite: no parameter ${}", i + 1)))?;
        match *p {
            Param::Null => stmt.raw_bind_parameter(index, Null),
            Param::Int(v) => stmt.raw_bind_parameter(index, v),
            Param::Bool(v) => stmt.raw_bind_parameter(index, v),
            Param::Text(v) => stmt.raw_bind_parameter(index, v),
            Param::Blob(v) => stmt.raw_bind_parameter(index, v),
        }
        .map_err(db_err)?;
    }
    Ok(())
}

fn rows(stmt: &mut Statement<'_>, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
    bind(stmt, params)?;
    let n = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db_err)? {
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(match r.get_ref(i).map_err(db_err)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::Int(v),
                ValueRef::Text(t) => Value::Text(
                    std::str::from_utf8(t)
                        .map_err(|e| StoreError::Corrupt(format!("sqlite: column {i}: {e}")))?
                        .to_string(),
                ),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                ValueRef::Real(_) => {
                    return Err(StoreError::Corrupt(format!("sqlite: column {i} is REAL")))
                }
            });
        }
        out.push(Row::new(values));
    }
    Ok(out)
}

#[async_trait]
impl Conn for SqliteConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db_err)?;
        bind(&mut stmt, params)?;
        Ok(stmt.raw_execute().map_err(db_err)? as u64)
    }

    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db_err)?;
        rows(&mut stmt, params)
    }

    async fn query_once(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, StoreError> {
        rows(&mut self.conn.prepare(sql).map_err(db_err)?, params)
    }

    async fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(db_err)
    }
}

/// A SQLite database serves one process: its in-memory nonce cache is enough.
impl NonceStore for SqliteStore {}
