//! What the shared SQL needs from an engine: a connection ([`Conn`]) that runs a statement
//! with parameters and returns rows of plain values, and the few places the two SQL
//! dialects differ ([`Dialect`]).
//!
//! Statements are written once, with PostgreSQL's `$1`, `$2`, … placeholders. SQLite reads
//! `$1` as a *named* parameter, so the SQLite connection binds each value to the parameter
//! of that name (not by position): the same text is valid on both engines.

use async_trait::async_trait;

use super::super::StoreError;
use crate::model::{KeySpec, KeyState, KeyUsage, Origin, ProtectionLevel};

/// The SQL differences between the engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Whether rows can be locked one by one. PostgreSQL locks the rows a transaction reads
    /// `FOR UPDATE`; a SQLite write transaction (`BEGIN IMMEDIATE`) already holds the whole
    /// database.
    pub fn row_locks(self) -> bool {
        self == Dialect::Postgres
    }

    /// The suffix that locks the rows a `SELECT` reads until the transaction ends.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// A boolean column as a condition (SQLite stores booleans as 0/1, and its partial
    /// indexes are written `WHERE col = 1`, which the planner matches only literally).
    pub fn is_true(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column}=1"),
            Dialect::Postgres => column.to_string(),
        }
    }

    /// The column that orders rows by insertion: key versions created in the same second,
    /// a key's wrapping keys (import tokens) by issue.
    pub fn insertion_seq(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "seq",
        }
    }

    /// An index hint after a table name (SQLite's planner misjudges the deletion-date
    /// count without it; PostgreSQL has no hints).
    pub fn indexed_by(self, index: &str) -> String {
        match self {
            Dialect::Sqlite => format!(" INDEXED BY {index}"),
            Dialect::Postgres => String::new(),
        }
    }
}

/// A statement parameter, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A value that binds as a statement parameter.
pub trait ToParam {
    fn param(&self) -> Param<'_>;
}

impl ToParam for bool {
    fn param(&self) -> Param<'_> {
        Param::Bool(*self)
    }
}
impl ToParam for str {
    fn param(&self) -> Param<'_> {
        Param::Text(self)
    }
}
impl ToParam for [u8] {
    fn param(&self) -> Param<'_> {
        Param::Blob(self)
    }
}
impl<T: ToParam + ?Sized> ToParam for &T {
    fn param(&self) -> Param<'_> {
        (**self).param()
    }
}
impl<T: ToParam> ToParam for Option<T> {
    fn param(&self) -> Param<'_> {
        self.as_ref().map_or(Param::Null, ToParam::param)
    }
}

/// Owned column values read back from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// The kind of value, for errors (never the value: it may be sealed material).
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
        }
    }
}

/// A column type a row value converts into.
pub trait FromValue: Sized {
    fn from_value(v: Value) -> Option<Self>;
}

impl FromValue for bool {
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(b),
            // SQLite stores booleans as integers.
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }
}

/// A type stored as one kind of value: `type: param(self) / Value::Kind(x) => x`.
macro_rules! column_type {
    ($($t:ty: |$this:ident| $param:expr, $pat:pat => $value:expr;)+) => {$(
        impl ToParam for $t {
            fn param(&self) -> Param<'_> {
                let $this = self;
                $param
            }
        }
        impl FromValue for $t {
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    $pat => Some($value),
                    _ => None,
                }
            }
        }
    )+};
}
column_type! {
    i64: |n| Param::Int(*n), Value::Int(n) => n;
    String: |s| Param::Text(s), Value::Text(s) => s;
    Vec<u8>: |b| Param::Blob(b), Value::Blob(b) => b;
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// The domain enums are stored as their wire names.
macro_rules! wire_name_columns {
    ($($t:ty),+) => {$(
        impl ToParam for $t {
            fn param(&self) -> Param<'_> {
                Param::Text(self.as_str())
            }
        }
        impl FromValue for $t {
            fn from_value(v: Value) -> Option<Self> {
                match v {
                    Value::Text(s) => <$t>::parse(&s),
                    _ => None,
                }
            }
        }
    )+};
}
wire_name_columns!(KeyState, KeySpec, KeyUsage, Origin, ProtectionLevel);

/// One result row, read column by column in the order the statement selects them.
#[derive(Debug, Clone)]
pub struct Row {
    values: std::vec::IntoIter<Value>,
    next: usize,
}

impl Row {
    pub fn new(values: Vec<Value>) -> Self {
        Self {
            values: values.into_iter(),
            next: 0,
        }
    }

    /// The next column, converted; an error names the column if it is missing or of
    /// another type.
    pub fn get<T: FromValue>(&mut self) -> Result<T, StoreError> {
        let i = self.next;
        self.next += 1;
        let v = self
            .values
            .next()
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} missing")))?;
        let kind = v.kind();
        T::from_value(v).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "column {i}: unexpected {kind} (or a value this version does not know)"
            ))
        })
    }
}

/// A connection (or a transaction on one) as the shared SQL sees it. The engine decides
/// what a transaction is ([`super::Mode`]); statements here just run in it.
///
/// On SQLite every method completes without waiting (the connection is synchronous and the
/// whole operation runs on a blocking thread); shared code must therefore await nothing but
/// these methods.
#[async_trait]
pub trait Conn: Send {
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns the number of rows it changed. The prepared statement is
    /// kept per connection (write only fixed texts here).
    async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError>;

    /// Runs a query; returns its rows. The prepared statement is kept per connection.
    async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError>;

    /// Like [`Conn::query`] for a text built at run time (not kept: a client could
    /// otherwise fill the statement cache).
    async fn query_once(&mut self, sql: &str, params: &[Param<'_>])
        -> Result<Vec<Row>, StoreError>;

    /// Runs several statements without parameters (migrations).
    async fn batch(&mut self, sql: &str) -> Result<(), StoreError>;

    /// Tells the other nodes what this transaction changed, when it commits (PostgreSQL
    /// `NOTIFY`, see [`super::super::cache::Change`]). A store serving one process has
    /// nobody to tell.
    async fn notify(&mut self, _payload: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

impl dyn Conn + '_ {
    /// At most one row.
    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// The first column of exactly one row (`COUNT(*)` and the like).
    pub async fn query_value<T: FromValue>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<T, StoreError> {
        match self.query_opt(sql, params).await? {
            Some(mut row) => row.get(),
            None => Err(StoreError::Corrupt(format!("no row from {sql:?}"))),
        }
    }

    /// Every row, each read with `read`.
    pub async fn query_all<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        read: impl Fn(&mut Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, params)
            .await?
            .iter_mut()
            .map(read)
            .collect()
    }
}

/// Statement parameters: `args![a, b, …]` is `&[a.param(), b.param(), …]`.
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        &[$($crate::store::sql::conn::ToParam::param(&$e)),*][..]
    };
}
pub(crate) use args;
