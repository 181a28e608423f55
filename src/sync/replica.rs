//! [`Replica`]: a local SQLite database that captures writes to replicated tables and
//! syncs them with a stock libSQL server.
//!
//! The local half lives here (opening, `replicate`, capture) and in `apply.rs`
//! (folding captures, applying records); the network half (push, pull, bootstrap) is in `net/`, and status,
//! metrics and the sync log in `status.rs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, OptionalExtension};
use serde_json::Value as Json;

pub(crate) use super::apply::Apply;
use super::evolve;
use super::policy::{Policy, TableSpec};
use super::record::encode_row;
use super::rows;
use super::rules;
use super::status::{Event, Monitor};
use crate::clock::PackedClock;
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, RemoteClient, RemoteConfig, ResultSet, Statement, TransactionMode, Value};
use crate::store::{read_value, sql_error, Store};

/// The replica's own bookkeeping tables (the state tables are in [`rules::STATE_DDL`]).
const LOCAL_DDL: &str = "
CREATE TABLE IF NOT EXISTS _es_meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS _es_capture (id INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL, old BLOB, new BLOB, hlc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _es_outbox (id INTEGER PRIMARY KEY, hlc INTEGER NOT NULL, rec TEXT NOT NULL, base BLOB);
CREATE TABLE IF NOT EXISTS _es_text (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, doc BLOB NOT NULL,
  render TEXT, rver TEXT, PRIMARY KEY (tbl, pk, col)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _es_tables (tbl TEXT PRIMARY KEY, pol TEXT NOT NULL, create_sql TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _es_doubt (id INTEGER PRIMARY KEY, rec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _es_intent (lid TEXT PRIMARY KEY, wid INTEGER NOT NULL, rec TEXT NOT NULL, base BLOB);
CREATE TABLE IF NOT EXISTS _es_wt_req (key TEXT PRIMARY KEY, wid INTEGER, ok INTEGER NOT NULL, answer BLOB NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _es_rejected (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL, rec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _es_sync_log (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, event TEXT NOT NULL, details TEXT);
CREATE TABLE IF NOT EXISTS _es_held (id INTEGER PRIMARY KEY, rec TEXT NOT NULL, base BLOB, conflict TEXT NOT NULL);
";

/// What the runtime provides: wall-clock time and randomness (wasm32 has neither in
/// `std`; the binding passes `Date.now` and `crypto.getRandomValues`).
#[derive(Clone, Copy)]
pub struct Env {
    pub now_ms: fn() -> u64,
    pub random: fn() -> u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl Default for Env {
    fn default() -> Self {
        fn now() -> u64 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        }
        fn random() -> u64 {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(now());
            h.finish()
        }
        Env { now_ms: now, random }
    }
}

/// How a replica is opened.
#[derive(Debug, Clone, Default)]
pub struct ReplicaConfig {
    /// `":memory:"`, `file:path` or a path.
    pub path: String,
    /// The libSQL server (`libsql://`, `https://`, `http://`); `None` = local only.
    pub sync_url: Option<String>,
    pub auth_token: Option<String>,
    /// Per-request timeout for sync traffic (ms).
    pub timeout_ms: Option<u32>,
    /// Largest clock skew accepted from other replicas (ms, default 60 000).
    pub max_drift_ms: Option<u64>,
    /// Records per push batch (default 2 000).
    pub push_chunk: Option<usize>,
    /// Records per pull request (default 5 000).
    pub pull_chunk: Option<usize>,
    /// The SQLite VFS for a file `path`: a host file system registered with
    /// [`crate::store::vfs::register`] (wasm in Node); `None` = SQLite's own.
    pub vfs: Option<String>,
    /// Which of the server's other tables `sync()` brings down as read-only mirrors.
    pub mirror: super::net::Mirror,
}

/// An application resolver for a custom column: `(local, remote, base) -> value`.
pub type ConflictResolver = Box<dyn Fn(&Value, &Value, Option<&Value>) -> Result<Value>>;

/// State the SQL functions share with the replica (they must be `Send`).
pub(crate) struct Capture {
    pub enabled: AtomicBool,
    pub clock: Mutex<PackedClock>,
}

pub(crate) struct Inner {
    pub tables: HashMap<String, TableSpec>,
    pub resolvers: HashMap<(String, String), std::rc::Rc<ConflictResolver>>,
    /// The tables `replicate()` declared in this session (the others are known from the
    /// file only, their custom columns' resolvers not passed in yet: see `net/held.rs`).
    pub declared: std::collections::HashSet<String>,
    pub schema_ready: bool,
    /// What the server's schema check read when it last matched this replica (see
    /// `net::schema`): every pull reads it again, and a difference sends the replica
    /// back through the schema step.
    pub server_fingerprint: Option<String>,
}

/// A local SQLite replica of a libSQL database.
pub struct Replica<T: HttpTransport> {
    pub(crate) store: Store,
    pub(crate) remote: Option<RemoteClient<T>>,
    pub(crate) capture: Arc<Capture>,
    pub(crate) inner: RefCell<Inner>,
    pub(crate) monitor: Monitor,
    pub(crate) site: String,
    pub(crate) env: Env,
    /// Records per push chunk, and per pull or bootstrap page: the configured sizes,
    /// halved after a request timed out (see `net/pace.rs`).
    pub(crate) push_size: super::net::Pace,
    pub(crate) pull_size: super::net::Pace,
    pub(crate) mirror: super::net::Mirror,
    /// Set while a write-through call runs (calls must not overlap).
    pub(crate) write_through_busy: std::cell::Cell<bool>,
    /// Text cells merged since the last render check (see `net/pull.rs`, `render_back`).
    pub(crate) text_touched: RefCell<std::collections::BTreeSet<(String, String, String)>>,
}

impl<T: HttpTransport> Replica<T> {
    /// Opens (or creates) the local database and restores its replication state.
    pub fn open(config: ReplicaConfig, transport: T, env: Env) -> Result<Self> {
        let remote = match &config.sync_url {
            Some(url) => {
                let mut c = RemoteConfig::parse(url, config.auth_token.as_deref())?;
                if let Some(ms) = config.timeout_ms {
                    c = c.with_timeout_ms(ms)?;
                }
                Some(RemoteClient::new(c, transport))
            }
            None => None,
        };
        let store = Store::open_on(&config.path, config.vfs.as_deref())?;
        let capture = Arc::new(Capture {
            enabled: AtomicBool::new(true),
            clock: Mutex::new(PackedClock::new(config.max_drift_ms.unwrap_or(60_000))),
        });
        register_functions(&store, &capture, env)?;
        let conn = store.conn();
        conn.execute_batch(LOCAL_DDL).map_err(sql_error)?;
        conn.execute_batch(rules::STATE_DDL).map_err(sql_error)?;
        conn.execute_batch(evolve::COLUMNS_DDL).map_err(sql_error)?;
        let site: String = match meta(&store, "site")? {
            Some(Value::Text(s)) => s,
            _ => {
                let s = format!("{:016x}", (env.random)());
                set_meta(&store, "site", &Value::Text(s.clone()))?;
                s
            }
        };
        // The clock resumes after everything this database has seen.
        let last: i64 = conn
            .query_row(
                "SELECT max(coalesce((SELECT max(hlc) FROM _es_capture), 0), coalesce((SELECT max(hlc) FROM _es_outbox), 0),
                        coalesce((SELECT value FROM _es_meta WHERE key = 'hlc'), 0))",
                [],
                |r| r.get(0),
            )
            .map_err(sql_error)?;
        {
            let mut clock = capture.clock.lock().unwrap_or_else(|e| e.into_inner());
            clock.restore(last);
            if let Some(Value::Integer(offset)) = meta(&store, "clock_offset")? {
                clock.set_offset(offset);
            }
        }
        let mut tables = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT tbl, pol, create_sql FROM _es_tables")
                .map_err(sql_error)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(sql_error)?;
            for row in rows {
                // What was declared, not the live table: an `ALTER` not yet followed
                // by `replicate()` must not change what the triggers capture.
                let (tbl, pol, create_sql) = row.map_err(sql_error)?;
                let spec = evolve::declared_spec(conn, &tbl, &create_sql, &parse_policies(&pol)?)?;
                tables.insert(tbl, spec);
            }
        }
        // Row state made by an earlier edgesync lacks the NULL flags of counter and set
        // columns: added before anything reads it.
        for spec in tables.values() {
            for sql in rows::add_columns_sql(spec, &evolve::shadow_columns(conn, &spec.name)?) {
                conn.execute(&sql, []).map_err(sql_error)?;
            }
        }
        Ok(Replica {
            store,
            remote,
            capture,
            inner: RefCell::new(Inner {
                tables,
                resolvers: HashMap::new(),
                declared: Default::default(),
                schema_ready: false,
                server_fingerprint: None,
            }),
            monitor: Monitor::default(),
            site,
            env,
            text_touched: RefCell::new(Default::default()),
            write_through_busy: Default::default(),
            mirror: config.mirror.clone(),
            push_size: super::net::Pace::new(config.push_chunk.unwrap_or(2_000)),
            pull_size: super::net::Pace::new(config.pull_chunk.unwrap_or(5_000)),
        })
    }

    /// This replica's site id (16 hex digits), stable across restarts.
    pub fn site(&self) -> &str {
        &self.site
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The transport sync traffic goes through, when a `syncUrl` was given.
    pub fn transport(&self) -> Option<&T> {
        self.remote.as_ref().map(|r| r.transport())
    }

    /// Whether a `syncUrl` was given.
    pub fn has_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Sets the one event listener (`sync:completed`, `sync:error`, `conflict`).
    pub fn set_listener(&self, f: Option<super::status::Listener>) {
        self.monitor.set_listener(f);
    }

    pub(crate) fn now(&self) -> u64 {
        (self.env.now_ms)()
    }

    /// Declares `table` replicated. `policies` names the columns that do not use
    /// last-writer-wins; `resolvers` supplies the function for each `custom` column.
    /// Rows already in the table are queued as inserts the first time. Calling it again
    /// with the same policies is a no-op (apps call it at every start); after `ALTER
    /// TABLE … ADD COLUMN` it adds the new columns (see [`super::evolve`]); other
    /// changes (a policy, a type, a dropped column) are refused.
    pub fn replicate(
        &self,
        table: &str,
        policies: &[(String, Policy)],
        resolvers: Vec<(String, ConflictResolver)>,
    ) -> Result<()> {
        let conn = self.store.conn();
        let mut spec = TableSpec::introspect(conn, table, policies)?;
        // A read-only mirror of the server's table becomes a replicated table.
        self.unmirror(table)?;
        for (col, _) in &resolvers {
            if !spec
                .columns
                .iter()
                .any(|c| &c.name == col && c.policy == Policy::Custom)
            {
                return Err(Error::Schema(format!(
                    "a resolver was given for {table}.{col}, which is not a custom column"
                )));
            }
        }
        let pol = spec.policies_json().to_string();
        let existing: Option<(String, String)> = conn
            .query_row("SELECT pol, create_sql FROM _es_tables WHERE tbl = ?1", [table], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(sql_error)?;
        let added = match &existing {
            Some((p, create_sql)) => {
                let old = evolve::declared_spec(conn, table, create_sql, &parse_policies(p)?)?;
                let names: Vec<String> = evolve::added_columns(&old, &spec)?
                    .iter()
                    .map(|c| c.name.clone())
                    .collect();
                if names.is_empty() {
                    // Same columns: the declaration stays as it was written.
                    spec.create_sql = old.create_sql;
                }
                names
            }
            None => Vec::new(),
        };
        conn.execute_batch(&rows::ddl(&spec)).map_err(sql_error)?;
        for sql in rows::add_columns_sql(&spec, &evolve::shadow_columns(conn, table)?) {
            conn.execute(&sql, []).map_err(sql_error)?;
        }
        migrate_legacy_state(conn, &spec)?;
        match existing {
            Some(_) if added.is_empty() => {
                // Tables declared before the value checks existed get them now.
                conn.execute_batch(&spec.trigger_sql()).map_err(sql_error)?;
            }
            Some((_, old_sql)) => self.add_columns(&spec, &old_sql, &added)?,
            None => {
                conn.execute_batch("SAVEPOINT es_replicate").map_err(sql_error)?;
                let res = (|| {
                    conn.execute_batch(&spec.trigger_sql()).map_err(sql_error)?;
                    conn.execute(
                        "INSERT INTO _es_tables (tbl, pol, create_sql) VALUES (?1, ?2, ?3)",
                        params![table, pol, spec.create_sql],
                    )
                    .map_err(sql_error)?;
                    let cols: Vec<String> = spec.columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
                    conn.execute(
                        &format!(
                            "INSERT INTO _es_capture (tbl, op, old, new, hlc) SELECT ?1, 'i', NULL, es_row({}), es_hlc() FROM \"{table}\"",
                            cols.join(", ")
                        ),
                        [table],
                    )
                    .map_err(sql_error)?;
                    Ok(())
                })();
                finish_savepoint(conn, "es_replicate", res.is_ok())?;
                res?;
            }
        }
        let mut inner = self.inner.borrow_mut();
        for (col, r) in resolvers {
            inner.resolvers.insert((table.to_string(), col), std::rc::Rc::new(r));
        }
        inner.tables.insert(table.to_string(), spec);
        inner.declared.insert(table.to_string());
        inner.schema_ready = false;
        drop(inner);
        // Conflicts met before this session's resolvers were passed in are resolved now.
        self.resolve_held()?;
        Ok(())
    }

    /// `replicate()` of a declared table that gained the columns `added`: the queued
    /// captures are folded with the old declaration, then the triggers, definitions
    /// and declaration are remade for `spec`, in one local transaction.
    fn add_columns(&self, spec: &TableSpec, old_sql: &str, added: &[String]) -> Result<()> {
        let conn = self.store.conn();
        self.fold_all()?;
        let added: Vec<&super::policy::Column> = spec.columns.iter().filter(|c| added.contains(&c.name)).collect();
        let defs = evolve::column_defs(conn, &spec.name, old_sql, &spec.create_sql, &added)?;
        conn.execute_batch("SAVEPOINT es_alter").map_err(sql_error)?;
        let res = (|| {
            conn.execute_batch(&spec.drop_triggers_sql()).map_err(sql_error)?;
            conn.execute_batch(&spec.trigger_sql()).map_err(sql_error)?;
            evolve::store_defs(conn, &spec.name, &added, &defs)?;
            conn.execute(
                "UPDATE _es_tables SET pol = ?2, create_sql = ?3 WHERE tbl = ?1",
                params![spec.name, spec.policies_json().to_string(), spec.create_sql],
            )
            .map_err(sql_error)?;
            conn.execute(&evolve::capture_added_sql(spec, &added), [])
                .map_err(sql_error)?;
            Ok(())
        })();
        finish_savepoint(conn, "es_alter", res.is_ok())?;
        res
    }

    /// The replicated tables.
    pub fn tables(&self) -> Vec<String> {
        let mut t: Vec<String> = self.inner.borrow().tables.keys().cloned().collect();
        crate::sort::sort(&mut t);
        t
    }

    /// Runs a statement locally (replicated tables capture the write).
    pub fn execute(&self, stmt: &Statement) -> Result<ResultSet> {
        self.store.execute(stmt)
    }

    /// Runs statements locally in one transaction.
    pub fn batch(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
        self.store.batch(stmts, mode)
    }

    pub(crate) fn tick(&self) -> i64 {
        self.capture
            .clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tick(self.now())
    }

    pub(crate) fn observe(&self, hlc: i64) -> Result<()> {
        let now = self.now();
        self.capture
            .clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(hlc, now)
    }

    /// Persists the clock so a restart never reuses a timestamp.
    pub(crate) fn save_clock(&self) -> Result<()> {
        let last = self.capture.clock.lock().unwrap_or_else(|e| e.into_inner()).last();
        set_meta(&self.store, "hlc", &Value::Integer(last))
    }

    /// Emits an event to the listener and records it in the sync log.
    pub(crate) fn emit(&self, event: Event) {
        let (name, details) = event.log_line();
        let _ = self
            .store
            .conn()
            .prepare_cached("INSERT INTO _es_sync_log (at, event, details) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![self.now() as i64, name, details]));
        let _ = self.store.conn().execute(
            "DELETE FROM _es_sync_log WHERE id <= (SELECT max(id) FROM _es_sync_log) - 1000",
            [],
        );
        self.monitor.emit(&event);
    }
}

/// Moves `spec`'s state out of the earlier per-cell layout, if this database has it
/// (see [`rows::migrate_sql`]); drops the old tables once they are empty.
fn migrate_legacy_state(conn: &rusqlite::Connection, spec: &TableSpec) -> Result<()> {
    let legacy: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_es_cv')",
            [],
            |r| r.get(0),
        )
        .map_err(sql_error)?;
    if !legacy {
        return Ok(());
    }
    conn.execute_batch("SAVEPOINT es_migrate").map_err(sql_error)?;
    let res = (|| {
        for sql in rows::migrate_sql(spec) {
            conn.execute(&sql, []).map_err(sql_error)?;
        }
        let left: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM _es_cv)", [], |r| r.get(0))
            .map_err(sql_error)?;
        if !left {
            conn.execute_batch("DROP TABLE _es_cv; DROP TABLE IF EXISTS _es_stage")
                .map_err(sql_error)?;
        }
        Ok(())
    })();
    finish_savepoint(conn, "es_migrate", res.is_ok())?;
    res
}

/// Records as one JSON array.
pub(crate) fn chunk_json<'a>(records: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, r) in records.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r);
    }
    out.push(']');
    out
}

/// Whether `spec` has columns merged through staged cells (counters, sets).
pub(crate) fn has_cells(spec: &TableSpec) -> bool {
    spec.columns
        .iter()
        .any(|c| matches!(c.policy, Policy::Counter | Policy::Set))
}

/// The text CRDT's site number for this replica.
pub(crate) fn text_site(site: &str) -> u64 {
    u64::from_str_radix(site, 16).unwrap_or_else(|_| crate::clock::site_id_from_str(site)) & ((1 << 53) - 1)
}

/// Turns capture off while alive (remote changes being applied are not local writes).
pub(crate) struct CaptureOff<'a>(&'a Capture, bool);

impl<'a> CaptureOff<'a> {
    pub(crate) fn new(c: &'a Capture) -> Self {
        let was = c.enabled.swap(false, Ordering::SeqCst);
        CaptureOff(c, was)
    }
}

impl Drop for CaptureOff<'_> {
    fn drop(&mut self) {
        self.0.enabled.store(self.1, Ordering::SeqCst);
    }
}

pub(crate) fn finish_savepoint(conn: &rusqlite::Connection, name: &str, ok: bool) -> Result<()> {
    if !ok {
        conn.execute_batch(&format!("ROLLBACK TO {name}")).map_err(sql_error)?;
    }
    conn.execute_batch(&format!("RELEASE {name}")).map_err(sql_error)
}

fn register_functions(store: &Store, capture: &Arc<Capture>, env: Env) -> Result<()> {
    let conn = store.conn();
    let c = capture.clone();
    conn.create_scalar_function("es_capture", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        Ok(c.enabled.load(Ordering::SeqCst))
    })
    .map_err(sql_error)?;
    let c = capture.clone();
    conn.create_scalar_function("es_hlc", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        Ok(c.clock.lock().unwrap_or_else(|e| e.into_inner()).tick((env.now_ms)()))
    })
    .map_err(sql_error)?;
    conn.create_scalar_function(
        "es_row",
        -1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let mut vals = Vec::with_capacity(ctx.len());
            for i in 0..ctx.len() {
                let raw = ctx.get_raw(i);
                // SQLite does not check that TEXT is UTF-8 (`CAST(x'ff' AS TEXT)`); such a
                // value cannot be replicated as it is (every reader would see another
                // text), so the writing statement is refused.
                if let rusqlite::types::ValueRef::Text(t) = raw {
                    if std::str::from_utf8(t).is_err() {
                        return Err(rusqlite::Error::UserFunctionError(
                            format!(
                                "{}a TEXT value is not valid UTF-8; store bytes as a BLOB",
                                crate::error::UNSUPPORTED_VALUE_PREFIX
                            )
                            .into(),
                        ));
                    }
                }
                vals.push(read_value(raw));
            }
            Ok(encode_row(&vals))
        },
    )
    .map_err(sql_error)?;
    Ok(())
}

pub(crate) fn parse_policies(pol: &str) -> Result<Vec<(String, Policy)>> {
    let j: Json = serde_json::from_str(pol).map_err(|e| Error::Schema(format!("bad stored policies {pol}: {e}")))?;
    let mut out = Vec::new();
    if let Json::Object(m) = j {
        for (k, v) in m {
            out.push((k, Policy::parse(v.as_str().unwrap_or("lww"))?));
        }
    }
    Ok(out)
}

pub(crate) fn meta(store: &Store, key: &str) -> Result<Option<Value>> {
    store
        .conn()
        .prepare_cached("SELECT value FROM _es_meta WHERE key = ?1")
        .map_err(sql_error)?
        .query_row([key], |r| Ok(read_value(r.get_ref(0)?)))
        .optional()
        .map_err(sql_error)
}

pub(crate) fn set_meta(store: &Store, key: &str, v: &Value) -> Result<()> {
    store
        .conn()
        .prepare_cached("INSERT OR REPLACE INTO _es_meta (key, value) VALUES (?1, ?2)")
        .map_err(sql_error)?
        .execute(params![key, v])
        .map_err(sql_error)?;
    Ok(())
}
