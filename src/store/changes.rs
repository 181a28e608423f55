//! Which tables a connection changed: the source of `db.on("change", ({ tables }) => …)`
//! (live queries in a UI re-run when a table they read changed — by a local write, a
//! write forwarded from another browser tab, or a pull).
//!
//! A hook on the connection notes every changed row's table, whoever changed it: an
//! application statement, a trigger, the sync engine applying a pull. The set is
//! drained by [`ChangeLog::take`]; the first change after a drain calls the notify
//! callback once, so a binding can schedule one event per burst of writes instead of
//! one per statement.
//!
//! In wasm the hook is SQLite's pre-update hook, which sees every row change (rowid
//! and `WITHOUT ROWID` tables, and `DELETE` without `WHERE`, whose truncate
//! optimization it turns off). Natively the pre-update hook would need bindgen at build
//! time, so the update hook is used, with an authorizer that turns the truncate
//! optimization off; natively `WITHOUT ROWID` tables are not reported.
//!
//! The engine's own tables (`_es_…`) and SQLite's (`sqlite_…`) are never reported, nor
//! are temporary tables. A write that fails and rolls back may still be reported (a
//! spurious event only makes a live query re-run).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rusqlite::Connection;

use crate::error::Result;
use crate::store::sql_error;

/// Called on the first change after a [`ChangeLog::take`].
pub type Notify = Box<dyn FnMut() + Send>;

#[derive(Default)]
struct Pending {
    tables: BTreeSet<String>,
    notify: Option<Notify>,
}

/// The tables changed since the last [`ChangeLog::take`]; shared with the hook.
#[derive(Clone, Default)]
pub struct ChangeLog {
    inner: Arc<Mutex<Pending>>,
}

impl ChangeLog {
    /// Installs the hook on `conn` and returns the log it writes to.
    pub(crate) fn attach(conn: &mut Connection) -> Result<ChangeLog> {
        let log = ChangeLog::default();
        let hook = log.clone();
        #[cfg(target_arch = "wasm32")]
        conn.preupdate_hook(Some(
            move |_: rusqlite::hooks::Action, db: &str, table: &str, _: &rusqlite::hooks::PreUpdateCase| {
                hook.note(db, table)
            },
        ))
        .map_err(sql_error)?;
        #[cfg(not(target_arch = "wasm32"))]
        conn.update_hook(Some(
            move |_: rusqlite::hooks::Action, db: &str, table: &str, _: i64| hook.note(db, table),
        ))
        .map_err(sql_error)?;
        Ok(log)
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a change to `db`.`table` (called by the hook, inside SQLite).
    fn note(&self, db: &str, table: &str) {
        if db != "main" || table.starts_with("_es_") || table.starts_with("sqlite_") {
            return;
        }
        let mut p = self.lock();
        if p.tables.contains(table) {
            return;
        }
        let first = p.tables.is_empty();
        p.tables.insert(table.to_string());
        if !first {
            return;
        }
        // Called without the lock held: the callback may read the log.
        let Some(mut f) = p.notify.take() else {
            return;
        };
        drop(p);
        f();
        let mut p = self.lock();
        if p.notify.is_none() {
            p.notify = Some(f);
        }
    }

    /// The changed tables, sorted, and forgets them.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().tables).into_iter().collect()
    }

    /// Sets (or clears) the callback for the first change after a drain.
    pub fn set_notify(&self, f: Option<Notify>) {
        self.lock().notify = f;
    }

    /// A handle that does not keep the log alive (for the notify callback, which the
    /// log itself holds).
    pub fn weak(&self) -> WeakChangeLog {
        WeakChangeLog(Arc::downgrade(&self.inner))
    }
}

/// See [`ChangeLog::weak`].
#[derive(Clone)]
pub struct WeakChangeLog(Weak<Mutex<Pending>>);

impl WeakChangeLog {
    /// [`ChangeLog::take`], or nothing once the database is gone.
    pub fn take(&self) -> Vec<String> {
        self.0
            .upgrade()
            .map(|inner| ChangeLog { inner }.take())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::sql::Statement;
    use crate::store::Store;

    fn exec(db: &Store, sql: &str) {
        db.execute(&Statement::new(sql)).unwrap();
    }

    #[test]
    fn every_kind_of_write_is_reported_once_per_table() {
        let db = Store::open(":memory:").unwrap();
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        db.changes().set_notify(Some(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })));
        exec(&db, "create table a (id integer primary key, x)");
        exec(&db, "create table b (id integer primary key, x)");
        exec(&db, "create table _es_internal (x)");
        assert!(db.changes().take().is_empty(), "DDL alone changes no rows");
        exec(&db, "insert into a (x) values (1), (2)");
        exec(&db, "insert into _es_internal values (1)");
        exec(&db, "create temp table t (x)");
        exec(&db, "insert into t values (1)");
        assert_eq!(db.changes().take(), ["a"]);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one notification per burst");
        exec(&db, "update a set x = 3 where id = 1");
        exec(&db, "insert into b (x) values (1)");
        assert_eq!(db.changes().take(), ["a", "b"]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        exec(&db, "delete from a where id > 0");
        assert_eq!(db.changes().take(), ["a"]);
        // A trigger's writes are reported.
        exec(
            &db,
            "create trigger tb after insert on b begin insert into a (x) values (new.x); end",
        );
        exec(&db, "insert into b (x) values (9)");
        assert_eq!(db.changes().take(), ["a", "b"]);
        exec(&db, "select * from a");
        assert!(db.changes().take().is_empty(), "reads change nothing");
    }
}
