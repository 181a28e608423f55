//! [`Replica`]: a local SQLite database that captures writes to replicated tables and
//! syncs them with a stock libSQL server.
//!
//! The local half lives here (opening, `replicate`, capture, folding, applying
//! records); the network half (push, pull, bootstrap) is in `net/`, and status,
//! metrics and the sync log in `status.rs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rusqlite::functions::FunctionFlags;
use rusqlite::{params, OptionalExtension};
use serde_json::Value as Json;

use super::evolve;
use super::fold::{self, FoldContext};
use super::policy::{Policy, TableSpec};
use super::record::{encode_row, Record};
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
CREATE TABLE IF NOT EXISTS _es_rejected (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL, rec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _es_sync_log (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, event TEXT NOT NULL, details TEXT);
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
    pub(crate) push_chunk: usize,
    pub(crate) pull_chunk: usize,
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
                schema_ready: false,
                server_fingerprint: None,
            }),
            monitor: Monitor::default(),
            site,
            env,
            text_touched: RefCell::new(Default::default()),
            write_through_busy: Default::default(),
            mirror: config.mirror.clone(),
            push_chunk: config.push_chunk.unwrap_or(2_000).max(1),
            pull_chunk: config.pull_chunk.unwrap_or(5_000).max(1),
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
        inner.schema_ready = false;
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
        t.sort();
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

    /// Turns every pending capture into outbox records, applying each to the local
    /// state in the same transaction. Returns how many records were queued.
    pub fn fold_all(&self) -> Result<usize> {
        let mut total = 0;
        while let Some(n) = self.fold_batch()? {
            total += n;
        }
        Ok(total)
    }

    /// Folds the next 2,000 captures (one local transaction): how many records were
    /// queued, `None` when there was nothing to fold.
    pub(crate) fn fold_batch(&self) -> Result<Option<usize>> {
        let conn = self.store.conn();
        let caps = fold::read_captures(conn, 2_000)?;
        if caps.is_empty() {
            return Ok(None);
        }
        conn.execute_batch("SAVEPOINT es_fold").map_err(sql_error)?;
        let res = self.fold_captures(&caps);
        finish_savepoint(conn, "es_fold", res.is_ok())?;
        res.map(Some)
    }

    fn fold_captures(&self, caps: &[fold::Capture]) -> Result<usize> {
        let conn = self.store.conn();
        let inner = self.inner.borrow();
        let ctx = FoldContext {
            conn,
            tables: &inner.tables,
            site: &self.site,
            text_site: text_site(&self.site),
            rebuild: Default::default(),
        };
        let mut pending: Vec<fold::Outgoing> = Vec::new();
        let mut touched = std::collections::HashSet::new();
        let mut queued = 0;
        for cap in caps {
            // A second write to a row must see the state after the first one.
            let Some(spec) = inner.tables.get(&cap.table) else {
                continue;
            };
            let keys: Vec<(String, String)> = [&cap.old, &cap.new]
                .into_iter()
                .flatten()
                .map(|row| (cap.table.clone(), fold::pk_json(spec, row).to_string()))
                .collect();
            if keys.iter().any(|k| touched.contains(k)) {
                queued += self.apply_own_as(&pending, ctx.rebuild.take())?;
                pending.clear();
                touched.clear();
            }
            touched.extend(keys);
            pending.extend(ctx.fold(cap)?);
        }
        queued += self.apply_own_as(&pending, ctx.rebuild.take())?;
        let last = caps.last().map(|c| c.id).unwrap_or(0);
        conn.execute("DELETE FROM _es_capture WHERE id <= ?1", [last])
            .map_err(sql_error)?;
        Ok(queued)
    }

    /// Applies this replica's own new records locally and queues them.
    pub(crate) fn apply_own(&self, out: &[fold::Outgoing]) -> Result<usize> {
        self.apply_own_as(out, false)
    }

    /// [`Self::apply_own`]; `rebuild`: the rows must be rebuilt from the merged state
    /// (see [`fold::FoldContext::rebuild`]) instead of left as written.
    fn apply_own_as(&self, out: &[fold::Outgoing], rebuild: bool) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let records: Vec<&Record> = out.iter().map(|o| &o.record).collect();
        let rows: Vec<(String, Option<Vec<u8>>)> = out
            .iter()
            .map(|o| (o.record.to_json().to_string(), fold::encode_base(&o.base_value)))
            .collect();
        self.apply_chunk(
            &records,
            &chunk_json(rows.iter().map(|r| r.0.as_str())),
            &self.site,
            if rebuild { Apply::Rebuild } else { Apply::Captured },
        )?;
        let args: Vec<&dyn rusqlite::ToSql> = out
            .iter()
            .zip(&rows)
            .flat_map(|(o, (rec, base))| [&o.record.hlc as &dyn rusqlite::ToSql, rec, base])
            .collect();
        super::multirow::insert_rows(
            self.store.conn(),
            ("INSERT INTO _es_outbox (hlc, rec, base) VALUES", ""),
            3,
            &args,
        )?;
        Ok(out.len())
    }

    /// Applies records written by `site` to the local state, then rebuilds the touched
    /// rows (with capture off, so applying is never captured again).
    pub(crate) fn apply_records(&self, records: &[&Record], site: &str, mode: Apply) -> Result<()> {
        let json: Vec<String> = records.iter().map(|r| r.to_json().to_string()).collect();
        self.apply_chunk(records, &chunk_json(json.iter().map(String::as_str)), site, mode)
    }

    /// [`Self::apply_records`] with the records also as one JSON array (`chunk`), which
    /// the row-state statements read ([`rows`]).
    fn apply_chunk(&self, records: &[&Record], chunk: &str, site: &str, mode: Apply) -> Result<()> {
        let conn = self.store.conn();
        let inner = self.inner.borrow();
        let _off = CaptureOff::new(&self.capture);
        let mut names: Vec<&str> = records.iter().map(|r| r.table.as_str()).collect();
        names.sort();
        names.dedup();
        let specs: Vec<&TableSpec> = names.iter().filter_map(|n| inner.tables.get(*n)).collect();
        let run = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<()> {
            conn.prepare_cached(sql)
                .map_err(sql_error)?
                .execute(args)
                .map_err(sql_error)?;
            Ok(())
        };
        let staged = specs.iter().any(|s| has_cells(s)) && self.stage(records, site, &inner)?;
        if staged {
            for sql in rules::merge_sql() {
                run(sql, &[])?;
            }
        }
        // This replica's own writes almost always win whole: then their rows are
        // already as the rules would leave them.
        let taken = mode == Apply::Captured
            && super::own::eligible(&inner.tables, records)
            && super::own::apply(conn, &inner.tables, records, site)?;
        if taken {
            if staged {
                run(rules::UNSTAGE, &[])?;
            }
            return Ok(());
        }
        for spec in &specs {
            run(&rows::upsert_sql(spec, rows::LOCAL, false), &[&chunk, &site])?;
        }
        if mode == Apply::Remote {
            self.merge_text(records, site, &inner)?;
        }
        for spec in &specs {
            // A local write already left its row as the rules would — unless a set
            // column needs normalizing (sorted, distinct), or the write lost to a newer
            // version already merged (a clock running behind another replica's).
            let lost = mode == Apply::Captured
                && conn
                    .prepare_cached(&rows::lost_sql(spec))
                    .map_err(sql_error)?
                    .query_row(params![chunk, site], |r| r.get::<_, bool>(0))
                    .map_err(sql_error)?;
            let sets = spec.columns.iter().any(|c| c.policy == Policy::Set);
            if mode == Apply::Captured && !lost && !sets {
                continue;
            }
            let [upsert, delete] = rows::materialize_sql(spec, rows::LOCAL);
            run(&upsert, &[&chunk])?;
            if lost || records.iter().any(|r| r.op == 'd' && r.table == spec.name) {
                run(&delete, &[&chunk])?;
            }
        }
        if staged {
            run(rules::UNSTAGE, &[])?;
        }
        Ok(())
    }

    /// Stages the counter and set cells of `records` for the merge rules: the same rows
    /// the server's `rules::STAGE` statement makes from JSON, written directly. Whether
    /// there was any.
    fn stage(&self, records: &[&Record], site: &str, inner: &Inner) -> Result<bool> {
        let conn = self.store.conn();
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO _es_cells (tbl, pk, col, pol, jv, ver, site) VALUES (?1, json(?2), ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql_error)?;
        let mut any = false;
        for r in records.iter().filter(|r| matches!(r.op, 'i' | 'u')) {
            let Some(spec) = inner.tables.get(&r.table) else {
                continue;
            };
            let (pk, ver) = (r.pk.to_string(), super::record::version(r.hlc, site));
            for (col, v) in r.data.as_object().into_iter().flatten() {
                let pol = spec.columns.iter().find(|c| &c.name == col).map(|c| c.policy);
                let pol = match (pol, v) {
                    (Some(Policy::Counter), Json::Array(_)) => "counter",
                    (Some(Policy::Set), Json::Object(_)) => "set",
                    _ => continue,
                };
                stmt.execute(params![r.table, pk, col, pol, v.to_string(), ver, site])
                    .map_err(sql_error)?;
                any = true;
            }
        }
        Ok(any)
    }

    /// Merges pulled text updates into the local documents; the merged text replaces
    /// whatever rendering the record carried.
    fn merge_text(&self, records: &[&Record], site: &str, inner: &Inner) -> Result<()> {
        let conn = self.store.conn();
        for r in records {
            let (Some(spec), Json::Object(data)) = (inner.tables.get(&r.table), &r.data) else {
                continue;
            };
            for (col, v) in data {
                if spec.columns.iter().any(|c| &c.name == col && c.policy == Policy::Text) {
                    let pk = r.pk.to_string();
                    let cell = (r.table.as_str(), pk.as_str(), col.as_str());
                    let mut doc = fold::load_text(conn, cell, text_site(&self.site))?;
                    if let Some(u) = v.get("u").and_then(Json::as_str).filter(|u| !u.is_empty()) {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(u)
                            .map_err(|e| Error::Protocol(format!("bad text update in {}: {e}", r.table)))?;
                        doc.apply_update(&bytes)?;
                        fold::save_text(conn, cell, &doc)?;
                    } else if let (Some(true), Some(t)) =
                        (v.get("seed").and_then(Json::as_bool), v.get("t").and_then(Json::as_str))
                    {
                        // A text inserted on the server by plain SQL: every replica
                        // makes the same characters of it (see `server::seed_update`).
                        doc.apply_update(&super::server::seed_update(&super::record::version(r.hlc, site), t)?)?;
                        fold::save_text(conn, cell, &doc)?;
                    }
                    let render = v.get("t").and_then(Json::as_str);
                    fold::set_render_or_null(conn, cell, &super::record::version(r.hlc, site), render)?;
                    // The merged text is the cell's value — unless the newest write to
                    // the cell was a NULL (the shadow already holds it: `c_` NULL with
                    // a version), which stays NULL until a newer edit.
                    let nulled = conn
                        .prepare_cached(&format!(
                            "UPDATE {} SET c_{col} = ?2 WHERE pk = json(?1) AND c_{col} IS NOT NULL",
                            rows::shadow(&r.table)
                        ))
                        .map_err(sql_error)?
                        .execute(params![cell.1, doc.text()])
                        .map_err(sql_error)?
                        == 0;
                    let key = (cell.0.to_string(), pk.clone(), col.clone());
                    if nulled {
                        self.text_touched.borrow_mut().remove(&key);
                    } else {
                        self.text_touched.borrow_mut().insert(key);
                    }
                }
            }
        }
        Ok(())
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

/// Where records being applied locally come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Apply {
    /// Just folded from this replica's own writes: the rows are already written.
    Captured,
    /// Pulled from the server: text updates are merged, rows rebuilt.
    Remote,
    /// This replica's own records that change rows (conflict resolutions, bootstrap).
    Rebuild,
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
