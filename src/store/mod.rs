//! The local store: a real SQLite database (rusqlite) in every runtime.
//!
//! Natively it is the bundled C SQLite, on wasm32 the same C code compiled by
//! `sqlite-wasm-rs`. [`Store`] runs the same `execute` / `batch` calls the remote client
//! does and returns the same [`ResultSet`]s, so a replica answers locally exactly what
//! the server would.
//!
//! ```
//! use edgesync::store::Store;
//! use edgesync::Statement;
//! let db = Store::open(":memory:").unwrap();
//! db.execute(&Statement::new("create table t (id integer primary key, name text)")).unwrap();
//! let rs = db.execute(&Statement::new("insert into t (name) values (?)").arg("ada")).unwrap();
//! assert_eq!(rs.rows_affected, 1);
//! let rs = db.execute(&Statement::new("select name from t where id = 1")).unwrap();
//! assert_eq!(rs.rows[0][0], edgesync::Value::Text("ada".into()));
//! ```

pub mod changes;
mod codes;
mod convert;
mod prepared;

/// The packed argument layout moved to [`crate::sql::packed`] (the remote client reads it too).
pub use crate::sql::packed;
pub mod vfs;

use std::cell::RefCell;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result, SqlCode};
use crate::sql::{ResultSet, Statement, TransactionMode};

pub use convert::{read_value, sql_error, value_ref};
pub use prepared::{Run, CAPACITY as PREPARED_CAPACITY};

/// Receives a statement's result as SQLite produces it: the columns, then each row's
/// values, then the summary.
pub trait RowSink {
    fn column(&mut self, name: &str, decl_type: &str);
    fn begin_row(&mut self, width: usize);
    fn value(&mut self, v: rusqlite::types::ValueRef<'_>);
    fn finish(&mut self, rows_affected: u64, last_insert_rowid: Option<i64>);
}

impl RowSink for ResultSet {
    fn column(&mut self, name: &str, decl_type: &str) {
        self.columns.push(name.to_string());
        self.column_types.push(decl_type.to_string());
    }
    fn begin_row(&mut self, width: usize) {
        self.rows.push(Vec::with_capacity(width));
    }
    fn value(&mut self, v: rusqlite::types::ValueRef<'_>) {
        if let Some(row) = self.rows.last_mut() {
            row.push(read_value(v));
        }
    }
    fn finish(&mut self, rows_affected: u64, last_insert_rowid: Option<i64>) {
        self.rows_affected = rows_affected;
        self.last_insert_rowid = last_insert_rowid;
    }
}

/// The file a local database URL names, or `None` for an in-memory database:
/// `":memory:"`, `""` and `file::memory:` are memory; `file:///abs/path`,
/// `file://localhost/abs/path`, `file:path` and a bare path are files. Paths are taken
/// literally (no percent-decoding); query parameters are refused.
///
/// ```
/// use edgesync::store::file_path;
/// assert_eq!(file_path(":memory:").unwrap(), None);
/// assert_eq!(file_path("file:data/app.db").unwrap(), Some("data/app.db"));
/// assert_eq!(file_path("file:///var/lib/app.db").unwrap(), Some("/var/lib/app.db"));
/// assert_eq!(file_path("file://other-host/app.db").unwrap_err().code(), "INVALID_ARGUMENT");
/// ```
pub fn file_path(url: &str) -> Result<Option<&str>> {
    let bad = |why: &str| Error::InvalidArgument(format!("local database URL {url:?}: {why}"));
    let path = match url.strip_prefix("file:") {
        None => url,
        Some(rest) => match rest.strip_prefix("//") {
            None => rest,
            Some(authority) => {
                let (host, abs) = authority.split_at(authority.find('/').unwrap_or(authority.len()));
                if !(host.is_empty() || host == "localhost") || abs.is_empty() {
                    return Err(bad(
                        "a file URL names a path on this machine (file:///abs/path or file:rel/path)",
                    ));
                }
                abs
            }
        },
    };
    if path.contains('?') {
        return Err(bad("query parameters are not supported"));
    }
    Ok(match path {
        "" | ":memory:" => None,
        p => Some(p),
    })
}

/// One local SQLite database.
pub struct Store {
    /// Declared before `conn`: its statements are finalized before the connection
    /// closes (rusqlite cannot close a connection with statements still open).
    prepared: RefCell<prepared::Prepared>,
    conn: Connection,
    /// The tables changed since the binding last asked ([`changes`]).
    changes: changes::ChangeLog,
}

impl Store {
    /// Opens `":memory:"` or a file (`path`, `file:path` or `file:///abs/path`; created
    /// if missing) through SQLite's own file system. Files use WAL with
    /// `synchronous = NORMAL`: a commit survives a process crash, and only an OS crash
    /// can lose the last few commits — the usual setting for embedded replicas.
    pub fn open(path: &str) -> Result<Store> {
        Self::open_on(path, None)
    }

    /// [`Store::open`] through the SQLite VFS named `vfs`: a host file system
    /// registered with [`vfs::register`] (wasm in Node), where the database runs in
    /// exclusive locking mode and has one owner (see [`vfs`]).
    pub fn open_on(path: &str, vfs: Option<&str>) -> Result<Store> {
        let file = file_path(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        vfs::take_open_error();
        let mut conn = match (file, vfs) {
            (None, _) => Connection::open_in_memory(),
            (Some(p), None) => Connection::open_with_flags(p, flags),
            (Some(p), Some(v)) => Connection::open_with_flags_and_vfs(p, flags, v),
        }
        .map_err(|e| {
            vfs::take_open_error()
                .unwrap_or_else(|| Error::InvalidArgument(format!("cannot open the local database {path:?}: {e}")))
        })?;
        if file.is_some() {
            if vfs.is_some() {
                // No shared memory on a host VFS: WAL needs the exclusive mode.
                conn.pragma_update(None, "locking_mode", "exclusive")
                    .map_err(sql_error)?;
            }
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))
                .map_err(sql_error)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::InvalidArgument(format!(
                    "the local database {path:?} cannot use WAL (journal mode {mode})"
                )));
            }
            conn.pragma_update(None, "synchronous", "normal").map_err(sql_error)?;
        }
        conn.set_prepared_statement_cache_capacity(256);
        let changes = changes::ChangeLog::attach(&mut conn)?;
        Ok(Store {
            prepared: RefCell::new(prepared::Prepared::new()),
            conn,
            changes,
        })
    }

    /// The tables this database changed since the last [`changes::ChangeLog::take`].
    pub fn changes(&self) -> &changes::ChangeLog {
        &self.changes
    }

    /// The underlying connection, for the sync engine's own statements.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs one statement (in its own implicit transaction unless one is open).
    pub fn execute(&self, stmt: &Statement) -> Result<ResultSet> {
        let mut rs = ResultSet::default();
        self.execute_into(stmt, &mut rs)?;
        Ok(rs)
    }

    /// Runs one statement, handing its result to `sink` as it is read — without
    /// building a [`ResultSet`] first (the wasm binding writes the bytes JS reads
    /// straight from SQLite's row).
    pub fn execute_into(&self, stmt: &Statement, sink: &mut impl RowSink) -> Result<()> {
        stmt.check()?;
        let mut prepared = self.conn.prepare_cached(&stmt.sql).map_err(sql_error)?;
        convert::bind(&mut prepared, stmt)?;
        let before = self.total_changes();
        // The columns are read after the first step: that step re-prepares a statement
        // whose tables changed since it was cached (`ALTER TABLE`, drop and re-create),
        // and only then does the statement have its new columns.
        let mut header = false;
        {
            let mut cursor = prepared.raw_query();
            while let Some(row) = cursor.next().map_err(sql_error)? {
                let st = row.as_ref();
                let width = st.column_count();
                if !header {
                    header = true;
                    for c in st.columns() {
                        sink.column(c.name(), c.decl_type().unwrap_or(""));
                    }
                }
                sink.begin_row(width);
                for i in 0..width {
                    sink.value(row.get_ref(i).map_err(sql_error)?);
                }
            }
        }
        if !header {
            for c in prepared.columns() {
                sink.column(c.name(), c.decl_type().unwrap_or(""));
            }
        }
        let (rows_affected, last_insert_rowid) = summary(
            self.total_changes() != before,
            self.conn.changes(),
            self.conn.last_insert_rowid(),
            prepared.column_count(),
            is_insert(&stmt.sql),
        );
        sink.finish(rows_affected, last_insert_rowid);
        Ok(())
    }

    /// Prepares `sql` and keeps it for [`Store::run_prepared`] (the fast path of a
    /// repeated statement). `Ok(None)`: the text is not one statement (empty, or more
    /// follow); run it with [`Store::execute_into`]. A statement that does not
    /// prepare is the same error `execute_into` gives.
    pub fn prepare_kept(&self, sql: &str) -> Result<Option<u32>> {
        let mut p = self.prepared.try_borrow_mut().map_err(|_| busy())?;
        // SAFETY: the handle is only used while `self.conn` is open, on this thread.
        match p.prepare(unsafe { self.conn.handle() }, sql) {
            Ok(h) => Ok(h),
            // The generic path's own wording (rusqlite reports offsets and a few cases
            // its own way); if it unexpectedly accepts the text, use that path.
            Err(()) => match self.conn.prepare(sql) {
                Err(e) => Err(sql_error(e)),
                Ok(_) => Ok(None),
            },
        }
    }

    /// Runs a statement kept by [`Store::prepare_kept`] with arguments packed as
    /// [`packed`] describes, with the same rules and results as `execute_into`; the
    /// sink gets the column header only when it is new or changed (see [`Run`]).
    pub fn run_prepared(&self, handle: u32, args: &[u8], sink: &mut impl RowSink) -> Result<Run> {
        let mut p = self.prepared.try_borrow_mut().map_err(|_| busy())?;
        // SAFETY: as in `prepare_kept`.
        p.run(unsafe { self.conn.handle() }, handle, args, sink)
    }

    /// Runs `stmts` in one transaction: all commit or none do. A failing statement's
    /// index is the error's `step`, as from the remote client.
    pub fn batch(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
        let begin = match mode {
            TransactionMode::Write => "BEGIN IMMEDIATE",
            // SQLite has no read-only BEGIN; the statements are checked instead.
            TransactionMode::Read | TransactionMode::Deferred => "BEGIN DEFERRED",
        };
        self.conn.execute_batch(begin).map_err(sql_error)?;
        let mut out = Vec::with_capacity(stmts.len());
        for (i, s) in stmts.iter().enumerate() {
            let res = if mode == TransactionMode::Read && !self.is_readonly(&s.sql)? {
                Err(Error::Sql {
                    code: SqlCode::SqliteReadonly,
                    message: "attempt to write a readonly database (a \"read\" batch cannot write)".into(),
                    server_code: None,
                    extended: None,
                    statement_index: None,
                })
            } else {
                self.execute(s)
            };
            match res {
                Ok(rs) => out.push(rs),
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(e.at_statement(i));
                }
            }
        }
        self.conn.execute_batch("COMMIT").map_err(sql_error)?;
        Ok(out)
    }

    fn is_readonly(&self, sql: &str) -> Result<bool> {
        Ok(self.conn.prepare_cached(sql).map_err(sql_error)?.readonly())
    }

    fn total_changes(&self) -> i64 {
        // SAFETY: the connection is open for as long as `self` lives.
        unsafe { rusqlite::ffi::sqlite3_total_changes64(self.conn.handle()) }
    }

    /// Whether a transaction is open (autocommit is off).
    pub fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }
}

/// A kept statement used from inside another one (a SQL function calling back).
fn busy() -> Error {
    Error::InvalidOperation("the local database is busy running another statement".into())
}

/// What a statement reports after it ran, as the official client's local databases
/// report it: `rowsAffected` is the rows it changed — 0 when it changed none (SQLite's
/// own count is that of the last statement that wrote: a `CREATE TABLE` after an
/// `INSERT` would report the insert's) — and `lastInsertRowid` the connection's last
/// rowid for a statement without result columns, or for an `INSERT … RETURNING` that
/// inserted.
pub(crate) fn summary(wrote: bool, changes: u64, last_rowid: i64, width: usize, insert: bool) -> (u64, Option<i64>) {
    let rows = if wrote { changes } else { 0 };
    let rowid = (width == 0 || (insert && rows > 0)).then_some(last_rowid);
    (rows, rowid)
}

/// `INSERT`/`REPLACE` statements report `lastInsertRowid`, like the remote.
fn is_insert(sql: &str) -> bool {
    let head = sql.trim_start();
    let word: String = head.chars().take(7).collect::<String>().to_ascii_lowercase();
    word.starts_with("insert") || word.starts_with("replace") || word.starts_with("with")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Value;

    #[test]
    fn values_round_trip_exactly() {
        let db = Store::open(":memory:").unwrap();
        db.execute(&Statement::new("create table v (a, b, c, d, e)")).unwrap();
        let vals = [
            Value::Null,
            Value::Integer(i64::MIN),
            Value::Real(1.5),
            Value::Text("héllo ✓".into()),
            Value::Blob(vec![0, 255, 7]),
        ];
        let mut s = Statement::new("insert into v values (?, ?, ?, ?, ?)");
        s.args = vals.to_vec();
        let rs = db.execute(&s).unwrap();
        assert_eq!((rs.rows_affected, rs.last_insert_rowid), (1, Some(1)));
        let rs = db.execute(&Statement::new("select * from v")).unwrap();
        assert_eq!(rs.rows[0], vals);
        assert_eq!(rs.columns, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn named_args_and_decltypes() {
        let db = Store::open(":memory:").unwrap();
        db.execute(&Statement::new("create table t (id integer primary key, name text)"))
            .unwrap();
        db.execute(
            &Statement::new("insert into t values (:id, $name)")
                .named("id", 7)
                .named("$name", "x"),
        )
        .unwrap();
        let rs = db
            .execute(&Statement::new("select id, name, 1 + 1 as two from t"))
            .unwrap();
        assert_eq!(rs.column_types, ["INTEGER", "TEXT", ""]);
        assert_eq!(
            rs.rows[0],
            [Value::Integer(7), Value::Text("x".into()), Value::Integer(2)]
        );
        let err = db
            .execute(&Statement::new("insert into t (id) values (:nope)").named("id", 1))
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn batch_is_atomic_and_reports_the_step() {
        let db = Store::open(":memory:").unwrap();
        db.execute(&Statement::new("create table t (id integer primary key)"))
            .unwrap();
        let err = db
            .batch(
                &[
                    Statement::new("insert into t values (1)"),
                    Statement::new("insert into t values (1)"),
                ],
                TransactionMode::Write,
            )
            .unwrap_err();
        assert_eq!(err.code(), "SQLITE_CONSTRAINT");
        assert!(matches!(
            err,
            Error::Sql {
                statement_index: Some(1),
                ..
            }
        ));
        let rs = db.execute(&Statement::new("select count(*) from t")).unwrap();
        assert_eq!(rs.rows[0][0], Value::Integer(0));
        let err = db
            .batch(&[Statement::new("insert into t values (2)")], TransactionMode::Read)
            .unwrap_err();
        assert!(matches!(
            err,
            Error::Sql {
                statement_index: Some(0),
                ..
            }
        ));
        assert!(!db.in_transaction());
    }

    #[test]
    fn a_cached_statement_shows_the_columns_after_a_schema_change() {
        let db = Store::open(":memory:").unwrap();
        db.execute(&Statement::new("create table t (a integer)")).unwrap();
        db.execute(&Statement::new("insert into t values (1)")).unwrap();
        let q = Statement::new("select * from t");
        assert_eq!(db.execute(&q).unwrap().columns, ["a"]);
        db.execute(&Statement::new("alter table t add column b text default 'x'"))
            .unwrap();
        let rs = db.execute(&q).unwrap();
        assert_eq!(rs.columns, ["a", "b"]);
        assert_eq!(rs.column_types, ["INTEGER", "TEXT"]);
        assert_eq!(rs.rows, [vec![Value::Integer(1), Value::Text("x".into())]]);
        // And with no rows to step through.
        db.execute(&Statement::new("drop table t")).unwrap();
        db.execute(&Statement::new("create table t (c real, d blob, e)"))
            .unwrap();
        let rs = db.execute(&q).unwrap();
        assert_eq!(rs.columns, ["c", "d", "e"]);
        assert!(rs.rows.is_empty());
    }

    #[test]
    fn errors_have_codes() {
        let db = Store::open(":memory:").unwrap();
        assert_eq!(
            db.execute(&Statement::new("selec 1")).unwrap_err().code(),
            "SQLITE_ERROR"
        );
        assert_eq!(
            db.execute(&Statement::new("select * from nope")).unwrap_err().code(),
            "SQLITE_ERROR"
        );
        let nan = Statement::new("select ?").arg(f64::NAN);
        assert_eq!(db.execute(&nan).unwrap_err().code(), "INVALID_ARGUMENT");
    }
}
