//! Every store operation, written once for both SQL engines.
//!
//! [`SqlStore`] implements the aggregates of [`super::Store`] over a [`Backend`]: the engine
//! supplies a [`Conn`] in a transaction of the [`Mode`] asked for, and the statements and
//! the logic around them (limit checks, the ListKeys page, read-modify-write of a key,
//! export and import) are here, once. The statement texts are the same on both engines
//! (see [`conn`]) except for the few fragments a [`Dialect`] supplies; a text that depends
//! on the dialect is built once per dialect ([`sql!`]).
//!
//! - [`accounts`]: metadata, accounts and access keys.
//! - [`keys`]: keys and versions, ListKeys.
//! - [`tags`], [`aliases`], [`import`] (wrapping keys), [`console`], [`dump`].
//! - [`secrets`]: Secrets Manager (secrets, sealed versions, stages, tags).
//! - [`tags`], [`aliases`], [`import`] (wrapping keys), [`console`], [`dump`], [`sealed`]
//!   (every sealed value, for a root-key rotation).

pub mod conn;
pub mod table;

mod accounts;
mod aliases;
mod console;
mod dump;
mod import;
mod keys;
mod ram;
mod sealed;
mod secrets;
mod tags;

use std::future::Future;
use std::pin::Pin;

pub use conn::{Conn, Dialect, Param, Row, Value};
pub use keys::shown_state;

use super::StoreError;

/// How an operation uses the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each statement on its own (one statement, or several that need not agree).
    Auto,
    /// Reads that must agree with each other: one read-only snapshot.
    Snapshot,
    /// Reads and writes that commit together or not at all; rows read
    /// [`Dialect::for_update`] stay locked until the end (SQLite: the whole database).
    Write,
    /// [`Mode::Write`], committed without waiting for the disk: visible to everyone at once
    /// and safe from a crash of this process, but a power loss (PostgreSQL: a crash of the
    /// database server) may undo the last such commits. For counters whose loss fails safe or
    /// costs little (unwrap attempts), so that they add no disk flush to a request.
    Lazy,
}

/// A boxed future borrowing the connection.
pub type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// An operation handed to the engine: runs with the connection, in a transaction of the mode
/// asked for, which commits if it returns `Ok` and rolls back otherwise.
pub type Job<T> =
    Box<dyn for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StoreError>> + Send>;

/// What an engine supplies: connections and transactions.
pub trait Backend: Send + Sync + 'static {
    /// Runs `job` on a connection, in a transaction of `mode`.
    fn run<T: Send + 'static>(
        &self,
        mode: Mode,
        job: Job<T>,
    ) -> impl Future<Output = Result<T, StoreError>> + Send;
}

/// The store over an engine: every aggregate, once.
pub struct SqlStore<B> {
    pub(crate) backend: B,
}

impl<B: Backend> SqlStore<B> {
    pub(crate) fn new(backend: B) -> Self {
        Self { backend }
    }

    /// Runs `f` in a transaction of `mode` (see [`Job`]).
    pub(crate) async fn run<T, F>(&self, mode: Mode, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        self.backend.run(mode, Box::new(f)).await
    }

    /// The highest migration applied (the schema version a backup records).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(Mode::Auto, |c| {
            Box::pin(async move {
                c.query_value(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )
                .await
            })
        })
        .await
    }
}

/// `run!(store, mode, |c| { … })`: runs the block as a [`Job`] (an `async move` block with
/// `c: &mut dyn Conn`; the values it uses move in) in a transaction of `mode`, and awaits it.
macro_rules! run {
    ($store:expr, $mode:expr, |$c:ident| $body:block) => {
        $store
            .run($mode, move |$c| Box::pin(async move $body))
            .await
    };
}
pub(crate) use run;

/// A statement text built from fixed parts (column lists, [`Dialect`] fragments) once per
/// call site and dialect: `sql!(d, "SELECT … {}", d.for_update())` with `d` the dialect.
macro_rules! sql {
    ($dialect:expr, $($format:tt)+) => {{
        static TEXT: [std::sync::OnceLock<String>; 2] = [
            std::sync::OnceLock::new(),
            std::sync::OnceLock::new(),
        ];
        TEXT[$dialect as usize].get_or_init(|| format!($($format)+)).as_str()
    }};
}
pub(crate) use sql;

/// The job that applies migration `version` (the statements `sql`) unless it is recorded as
/// applied, and records it.
pub(crate) fn migration(version: i64, sql: &'static str) -> Job<bool> {
    Box::new(move |c| {
        Box::pin(async move {
            c.batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
            )
            .await?;
            let done = c
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    conn::args![version],
                )
                .await?;
            if done.is_some() {
                return Ok(false);
            }
            c.batch(sql).await?;
            c.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                conn::args![version, crate::clock::system_now()],
            )
            .await?;
            Ok(true)
        })
    })
}
