//! Statements, their arguments, and query results.

use crate::error::Result;
use crate::sql::Value;

/// A SQL statement with positional (`?`, `?1`) or named (`:name`, `@name`, `$name`)
/// arguments.
///
/// ```
/// use edgesync::{Statement, Value};
/// let s = Statement::new("insert into t values (?, ?)").arg(1).arg("one");
/// assert_eq!(s.args, vec![Value::Integer(1), Value::Text("one".into())]);
/// let n = Statement::new("select :x").named(":x", 2.5);
/// assert_eq!(n.named_args[0].0, ":x");
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Statement {
    pub sql: String,
    pub args: Vec<Value>,
    /// Names as written by the caller; the server accepts them with or without the
    /// `:`/`@`/`$` prefix.
    pub named_args: Vec<(String, Value)>,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Self {
        Statement {
            sql: sql.into(),
            ..Default::default()
        }
    }

    /// Appends a positional argument.
    pub fn arg(mut self, v: impl Into<Value>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Adds a named argument.
    pub fn named(mut self, name: impl Into<String>, v: impl Into<Value>) -> Self {
        self.named_args.push((name.into(), v.into()));
        self
    }

    /// Checks every argument can be sent exactly (see [`Value::check_sendable`]).
    pub fn check(&self) -> Result<()> {
        self.args
            .iter()
            .chain(self.named_args.iter().map(|(_, v)| v))
            .try_for_each(Value::check_sendable)
    }
}

impl From<&str> for Statement {
    fn from(sql: &str) -> Self {
        Statement::new(sql)
    }
}

/// How a batch's transaction begins, as in `@libsql/client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransactionMode {
    /// `BEGIN IMMEDIATE`: takes the write lock up front.
    Write,
    /// `BEGIN TRANSACTION READONLY`: only reads; may run on replicas.
    Read,
    /// `BEGIN DEFERRED`: SQLite's default.
    #[default]
    Deferred,
}

impl TransactionMode {
    /// Parses `"write" | "read" | "deferred"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "write" => Some(TransactionMode::Write),
            "read" => Some(TransactionMode::Read),
            "deferred" => Some(TransactionMode::Deferred),
            _ => None,
        }
    }

    pub fn begin_sql(self) -> &'static str {
        match self {
            TransactionMode::Write => "BEGIN IMMEDIATE",
            TransactionMode::Read => "BEGIN TRANSACTION READONLY",
            TransactionMode::Deferred => "BEGIN DEFERRED",
        }
    }
}

/// The result of one statement.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultSet {
    pub columns: Vec<String>,
    /// Declared column types (`""` for expressions).
    pub column_types: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub rows_affected: u64,
    pub last_insert_rowid: Option<i64>,
    /// The libSQL server's replication index (frame number) after the statement, when
    /// it reports one. On a replica it says how far the replica has caught up with the
    /// primary, which is what read-your-writes routing compares. Local results: `None`.
    pub replication_index: Option<u64>,
}

impl ResultSet {
    /// The value at (`row`, column `name`), if both exist.
    pub fn get(&self, row: usize, name: &str) -> Option<&Value> {
        let col = self.columns.iter().position(|c| c == name)?;
        self.rows.get(row)?.get(col)
    }
}
