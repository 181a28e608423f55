//! Which tables a connection changed: the source of `db.on("change", ({ tables }) => …)`
//! (live queries in a UI re-run when a table they read changed — by a local write, a
//! write forwarded from another browser tab, or a pull).
//!
//! A hook on the connection notes every changed row's table, whoever changed it: an
//! application statement, a trigger, the sync engine applying a pull. It notes only
//! while someone watches ([`ChangeLog::set_notify`] with a callback: the binding sets
//! one while a `change` listener exists, the browser store's owner always): unwatched,
//! a row change costs the hook one flag check, and no notification is made. The noted
//! tables are drained by [`ChangeLog::take`]; the first change after a drain calls the
//! notify callback once, so a binding can schedule one event per burst of writes
//! instead of one per statement. A table is remembered with a changed flag, so noting
//! and draining allocate nothing once a table has been seen (only `take`'s answer).
//!
//! Watching stops without dropping what was noted: the drain the last notification
//! scheduled still takes it, and a consumer that watches again before that drain gets
//! it too — changes are never lost across stop/start, and never stuck (a drain is
//! always scheduled while anything is noted).
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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::error::Result;
use crate::store::sql_error;

/// Called on the first change after a [`ChangeLog::take`], inside SQLite's hook: it
/// must only schedule work (the binding queues a microtask), never use the database.
pub type Notify = Box<dyn FnMut() + Send>;

/// Tables remembered beyond which a drain forgets the unchanged ones (dropped tables).
const KEEP_TABLES: usize = 256;

#[derive(Default)]
struct Pending {
    /// Every table seen changing, and whether it changed since the last drain.
    tables: BTreeMap<String, bool>,
    /// How many of `tables` changed since the last drain (0: none, nothing scheduled).
    changed: usize,
    notify: Option<Notify>,
}

#[derive(Default)]
struct Shared {
    /// Whether the hook notes changes: set with the notify callback.
    watching: AtomicBool,
    pending: Mutex<Pending>,
}

/// The tables changed since the last [`ChangeLog::take`]; shared with the hook.
#[derive(Clone, Default)]
pub struct ChangeLog {
    inner: Arc<Shared>,
}

impl ChangeLog {
    /// Installs the hook on `conn` and returns the log it writes to (not watching yet).
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
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a change to `db`.`table` (called by the hook, inside SQLite, for every row).
    #[inline]
    fn note(&self, db: &str, table: &str) {
        // Nobody watching: the whole cost of a row change.
        if !self.inner.watching.load(Ordering::Relaxed) {
            return;
        }
        if db != "main" || table.starts_with("_es_") || table.starts_with("sqlite_") {
            return;
        }
        let mut p = self.lock();
        match p.tables.get_mut(table) {
            Some(true) => return,
            Some(changed) => *changed = true,
            None => {
                p.tables.insert(table.to_string(), true);
            }
        }
        p.changed += 1;
        if p.changed > 1 {
            return;
        }
        // Called without the lock held: the callback may read the log.
        let Some(mut f) = p.notify.take() else {
            return;
        };
        drop(p);
        f();
        let mut p = self.lock();
        if p.notify.is_none() && self.inner.watching.load(Ordering::Relaxed) {
            p.notify = Some(f);
        }
    }

    /// Calls `f` with each table changed since the last drain, in name order, and
    /// forgets them (allocates nothing itself).
    pub fn take_with(&self, mut f: impl FnMut(&str)) {
        let mut p = self.lock();
        if p.changed == 0 {
            return;
        }
        p.changed = 0;
        for (table, changed) in p.tables.iter_mut() {
            if std::mem::take(changed) {
                f(table);
            }
        }
        if p.tables.len() > KEEP_TABLES {
            p.tables.clear();
        }
    }

    /// The changed tables, sorted, and forgets them.
    pub fn take(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.take_with(|t| out.push(t.to_string()));
        out
    }

    /// Starts watching, with `f` called on the first change after each drain, or stops
    /// (`None`). What was noted stays for the drain already scheduled.
    pub fn set_notify(&self, f: Option<Notify>) {
        let mut p = self.lock();
        self.inner.watching.store(f.is_some(), Ordering::Relaxed);
        p.notify = f;
    }

    /// Whether the hook notes changes (a notify callback is set).
    pub fn watching(&self) -> bool {
        self.inner.watching.load(Ordering::Relaxed)
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

    #[test]
    fn unwatched_notes_nothing_and_watching_again_loses_nothing() {
        let db = Store::open(":memory:").unwrap();
        let calls = std::sync::Arc::new(AtomicUsize::new(0));
        let watch = |db: &Store| {
            let c = calls.clone();
            db.changes().set_notify(Some(Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            })));
        };
        exec(&db, "create table a (id integer primary key, x)");
        exec(&db, "create table b (id integer primary key, x)");
        assert!(!db.changes().watching());
        exec(&db, "insert into a (x) values (1)");
        assert!(db.changes().take().is_empty(), "nobody watching: nothing noted");

        watch(&db);
        exec(&db, "insert into a (x) values (2)");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Stopped before the drain: what was noted stays for it, and a watcher that
        // comes back before the drain gets it with what follows, in the same burst.
        db.changes().set_notify(None);
        exec(&db, "insert into b (x) values (1)");
        watch(&db);
        exec(&db, "insert into b (x) values (2)");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "still one burst: no second notification"
        );
        assert_eq!(db.changes().take(), ["a", "b"]);
        assert!(db.changes().take().is_empty());
        // After the drain the next change notifies again (nothing left stuck).
        exec(&db, "update a set x = 0");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(db.changes().take(), ["a"]);
        // Stopped with nothing pending: the next watcher's first change notifies.
        db.changes().set_notify(None);
        exec(&db, "insert into a (x) values (3)");
        watch(&db);
        exec(&db, "insert into b (x) values (3)");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(db.changes().take(), ["b"]);
    }
}
