//! `Replica`, the exported class behind `createClient({ url: ":memory:" | "file:…",
//! syncUrl })`: the local SQLite replica and its sync engine.

use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::error::{Error, Result};
use crate::sql::Value;
use crate::sync::{ConflictResolver, Env, Event, Mirror, Outcome, Policy, Replica, ReplicaConfig, Status};
use crate::wasm::client::{custom_fetch, field, int_mode, optional_string as opt_string, parse_mode, timeout};
use crate::wasm::convert::{decode_args, decode_statements, IntMode};
use crate::wasm::error::{invalid, to_js};
use crate::wasm::fetch::FetchTransport;
use crate::wasm::result::{result_sets_to_js, ResultWriter};
use crate::wasm::values::{js_to_value, sql_value_to_js};

fn opt_number(o: &JsValue, key: &str, min: f64, max: f64) -> Result<Option<f64>> {
    let v = field(o, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_f64()
        .filter(|n| n.fract() == 0.0 && *n >= min && *n <= max)
        .map(Some)
        .ok_or_else(|| invalid(format!("`{key}` must be a whole number from {min} to {max}")))
}

/// `mirror`: `true`/absent (every table), `false` (none), or a list of table names.
fn mirror_option(v: &JsValue) -> Result<Mirror> {
    if v.is_undefined() || v.is_null() || v.as_bool() == Some(true) {
        return Ok(Mirror::All);
    }
    if v.as_bool() == Some(false) {
        return Ok(Mirror::Off);
    }
    if Array::is_array(v) {
        let names: Option<Vec<String>> = Array::from(v).iter().map(|n| n.as_string()).collect();
        return names
            .map(Mirror::Only)
            .ok_or_else(|| invalid("`mirror` lists table names (strings)"));
    }
    Err(invalid("`mirror` must be true, false or a list of table names"))
}

/// A value kept on the one wasm thread, for callbacks the store requires to be `Send`.
struct OneThread<T>(T);

// SAFETY: this module is built for wasm32 without threads; nothing leaves the thread.
unsafe impl<T> Send for OneThread<T> {}

impl<T> OneThread<T> {
    /// The value (a method, so that a closure captures the wrapper, not its field).
    fn get(&self) -> &T {
        &self.0
    }
}

fn set(o: &Object, key: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &JsValue::from_str(key), &v.into());
}

fn env() -> Env {
    fn now() -> u64 {
        js_sys::Date::now() as u64
    }
    fn random() -> u64 {
        let hi = (js_sys::Math::random() * 4_294_967_296.0) as u64;
        let lo = (js_sys::Math::random() * 4_294_967_296.0) as u64;
        (hi << 32) | lo
    }
    Env { now_ms: now, random }
}

/// A local SQLite replica that syncs with a libSQL server. Use `createClient` from the
/// `edgesync` package rather than this class directly.
#[wasm_bindgen(js_name = Replica)]
pub struct JsReplica {
    pub(crate) inner: Rc<Replica<FetchTransport>>,
    int_mode: IntMode,
    /// The buffers of the fast path (src/wasm/fast.rs).
    pub(crate) fast: crate::wasm::fast::Buffers,
}

fn outcome_js(o: &Option<Outcome>) -> JsValue {
    match o {
        None => JsValue::NULL,
        Some(o) => {
            let obj = Object::new();
            set(&obj, "at", o.at_ms as f64);
            set(&obj, "ok", o.ok);
            set(
                &obj,
                "error",
                o.error.clone().map(JsValue::from).unwrap_or(JsValue::NULL),
            );
            obj.into()
        }
    }
}

fn status_js(s: &Status) -> JsValue {
    let o = Object::new();
    set(&o, "pendingChanges", s.pending as f64);
    set(&o, "lastPush", outcome_js(&s.last_push));
    set(&o, "lastPull", outcome_js(&s.last_pull));
    set(&o, "lagMs", s.lag_ms as f64);
    set(&o, "retryCount", s.retries);
    set(&o, "online", s.online);
    set(&o, "cursor", s.cursor as f64);
    set(&o, "nextSyncInMs", s.next_sync_in_ms as f64);
    set(&o, "writesInDoubt", s.in_doubt as f64);
    set(&o, "rejectedChanges", s.rejected as f64);
    o.into()
}

fn event_js(e: &Event, mode: IntMode) -> JsValue {
    let o = Object::new();
    match e {
        Event::Completed {
            changes_pushed,
            changes_applied,
            duration_ms,
        } => {
            set(&o, "changesPushed", *changes_pushed as f64);
            set(&o, "changesApplied", *changes_applied as f64);
            set(&o, "duration", *duration_ms);
        }
        Event::Error {
            code,
            message,
            retryable,
        } => {
            set(&o, "code", code.as_str());
            set(&o, "message", message.as_str());
            set(&o, "retryable", *retryable);
        }
        Event::Conflict {
            table,
            pk,
            column,
            local,
            remote,
            base,
            resolved,
        } => {
            set(&o, "table", table.as_str());
            set(&o, "key", pk.as_str());
            set(&o, "column", column.as_str());
            set(&o, "local", sql_value_to_js(local, mode));
            set(&o, "remote", sql_value_to_js(remote, mode));
            set(
                &o,
                "base",
                base.as_ref().map(|b| sql_value_to_js(b, mode)).unwrap_or(JsValue::NULL),
            );
            set(&o, "resolved", sql_value_to_js(resolved, mode));
        }
        Event::Refused {
            table,
            pk,
            op,
            code,
            reason,
        } => {
            set(&o, "table", table.as_str());
            set(&o, "key", pk.as_str());
            set(&o, "op", op.as_str());
            set(&o, "code", code.as_str());
            set(&o, "reason", reason.as_str());
        }
    }
    o.into()
}

/// The message of a thrown value: an `Error`'s own `message` (never its stack), or the
/// value as a string.
fn thrown_message(e: &JsValue) -> String {
    if let Some(m) = e
        .dyn_ref::<js_sys::Error>()
        .and_then(|e| Reflect::get(e, &JsValue::from_str("message")).ok())
        .and_then(|m| m.as_string())
    {
        return m;
    }
    e.as_string()
        .or_else(|| js_sys::JSON::stringify(e).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| "a value that is not an Error".into())
}

/// Wraps a JS `(local, remote, base) => value` function as a resolver. What it throws
/// becomes a `RESOLVER_ERROR` with its message, and is kept as the error's `cause`.
fn js_resolver(f: Function, mode: IntMode) -> ConflictResolver {
    Box::new(move |local: &Value, remote: &Value, base: Option<&Value>| {
        let b = base.map(|b| sql_value_to_js(b, mode)).unwrap_or(JsValue::NULL);
        let out = f
            .call3(
                &JsValue::NULL,
                &sql_value_to_js(local, mode),
                &sql_value_to_js(remote, mode),
                &b,
            )
            .map_err(|e| {
                let message = thrown_message(&e);
                crate::wasm::error::remember_thrown(e);
                Error::Resolver(message)
            })?;
        js_to_value(&out, &|| "the resolver's result".into()).map_err(|e| Error::Resolver(e.to_string()))
    })
}

/// Reads a replica config (`new Replica(config)`). `open`: whether this runtime opens
/// the database itself — a browser page checks the config of a `file:` replica its
/// worker will open (`checkReplicaConfig`), and has no file system of its own.
fn parse_config(config: &JsValue, open: bool) -> Result<(ReplicaConfig, IntMode, Option<Function>)> {
    if !config.is_object() {
        return Err(invalid("createClient() takes a config object"));
    }
    let url = opt_string(config, "url")?.ok_or_else(|| invalid("`url` is required"))?;
    // A file needs a host file system: Node's, given by the package's Node entry, or
    // OPFS in the browser worker that owns the database. Elsewhere SQLite in wasm would
    // open the name in memory, which would look persistent and lose data on restart:
    // refused.
    let vfs = match crate::store::file_path(&url)? {
        None => None,
        Some(_) if crate::wasm::hostfs::files_vfs().is_some() => crate::wasm::hostfs::files_vfs().map(String::from),
        Some(_) if !open => None,
        Some(_) => {
            return Err(invalid(format!(
                "{url:?}: this runtime gives edgesync no file system (Node.js does); use \":memory:\" here"
            )))
        }
    };
    let int_mode = int_mode(config)?;
    let custom = custom_fetch(config)?;
    let cfg = ReplicaConfig {
        path: url,
        sync_url: opt_string(config, "syncUrl")?,
        auth_token: opt_string(config, "authToken")?,
        timeout_ms: timeout(config)?,
        max_drift_ms: opt_number(config, "maxDriftMs", 0.0, 9e15)?.map(|n| n as u64),
        push_chunk: opt_number(config, "pushChunk", 1.0, 1e6)?.map(|n| n as usize),
        pull_chunk: opt_number(config, "pullChunk", 1.0, 1e6)?.map(|n| n as usize),
        vfs,
        mirror: mirror_option(&field(config, "mirror"))?,
    };
    Ok((cfg, int_mode, custom))
}

/// Checks a replica config as `new Replica(config)` would — the same errors — without
/// opening anything: a browser page's `createClient` for a replica its worker opens.
#[wasm_bindgen(js_name = checkReplicaConfig)]
pub fn check_replica_config(config: JsValue) -> std::result::Result<(), JsValue> {
    (|| -> Result<()> {
        let (cfg, _, _) = parse_config(&config, false)?;
        if let Some(url) = &cfg.sync_url {
            let remote = crate::remote::RemoteConfig::parse(url, cfg.auth_token.as_deref())?;
            if let Some(ms) = cfg.timeout_ms {
                remote.with_timeout_ms(ms)?;
            }
        }
        Ok(())
    })()
    .map_err(to_js)
}

#[wasm_bindgen(js_class = Replica)]
impl JsReplica {
    /// `config`: `{ url, syncUrl?, authToken?, timeout?, intMode?, fetch?, maxDriftMs?,
    /// pushChunk?, pullChunk?, mirror? }`.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> std::result::Result<JsReplica, JsValue> {
        (|| -> Result<JsReplica> {
            let (cfg, int_mode, custom) = parse_config(&config, true)?;
            let replica = Replica::open(cfg, FetchTransport::new(custom), env())?;
            // Opening wrote the replica's own bookkeeping: the connection's last rowid is
            // the app's from here on, starting at 0 as on a fresh connection.
            // SAFETY: the connection is open; this only resets a counter.
            unsafe { rusqlite::ffi::sqlite3_set_last_insert_rowid(replica.store().conn().handle(), 0) };
            Ok(JsReplica {
                inner: Rc::new(replica),
                int_mode,
                fast: Default::default(),
            })
        })()
        .map_err(to_js)
    }

    /// Runs one statement locally, its arguments packed by `encodeStatement`
    /// (js/args.ts): the fast path of `execute`.
    #[wasm_bindgen(js_name = executePacked)]
    pub fn execute_packed(&self, sql: String, args: &[u8]) -> std::result::Result<JsValue, JsValue> {
        let stmt = decode_args(sql, args).map_err(to_js)?;
        let mut out = ResultWriter::generic(self.int_mode);
        self.inner.store().execute_into(&stmt, &mut out).map_err(to_js)?;
        Ok(out.to_js())
    }

    /// Runs statements (packed by `encodeStatements`, js/args.ts) locally in one
    /// transaction.
    pub fn batch(&self, stmts: &[u8], mode: Option<String>) -> std::result::Result<JsValue, JsValue> {
        let stmts = decode_statements(stmts).map_err(to_js)?;
        let mode = parse_mode(mode).map_err(to_js)?;
        let out = self.inner.batch(&stmts, mode).map_err(to_js)?;
        Ok(result_sets_to_js(&out, self.int_mode))
    }

    /// Runs SQL statements separated by semicolons locally, one after the other
    /// (`executeMultiple`); the first failure stops them.
    #[wasm_bindgen(js_name = executeMultiple)]
    pub fn execute_multiple(&self, sql: &str) -> std::result::Result<(), JsValue> {
        self.inner
            .store()
            .conn()
            .execute_batch(sql)
            .map_err(|e| to_js(crate::store::sql_error(e)))
    }

    /// Whether a transaction is open on the local database.
    #[wasm_bindgen(getter, js_name = inTransaction)]
    pub fn in_transaction(&self) -> bool {
        self.inner.store().in_transaction()
    }

    /// Write-through: the statements' changes are on the server before this resolves.
    /// `request`: a key under which the same call may come again (a browser tab's call
    /// sent again to the next owner of the store); a second arrival gets the first
    /// answer if the first attempt committed, instead of writing twice.
    #[wasm_bindgen(js_name = executeRemote)]
    pub fn execute_remote(&self, stmts: &[u8], mode: Option<String>, request: Option<String>) -> Promise {
        let parsed = decode_statements(stmts).and_then(|s| Ok((s, parse_mode(mode)?)));
        let (stmts, mode) = match parsed {
            Ok(p) => p,
            Err(e) => return Promise::reject(&to_js(e)),
        };
        let (inner, int_mode) = (self.inner.clone(), self.int_mode);
        future_to_promise(async move {
            let out = inner
                .execute_remote_once(&stmts, mode, request.as_deref())
                .await
                .map_err(to_js)?;
            Ok(result_sets_to_js(&out, int_mode))
        })
    }

    /// Whether `sql` only reads (used by write-through mode to route statements).
    #[wasm_bindgen(js_name = isReadonly)]
    pub fn is_readonly(&self, sql: &str) -> std::result::Result<bool, JsValue> {
        let stmt = self
            .inner
            .store()
            .conn()
            .prepare(sql)
            .map_err(|e| to_js(crate::store::sql_error(e)))?;
        Ok(stmt.readonly())
    }

    /// `policies`: `{ column: "lww" | "counter" | "set" | "text" | "custom" | fn }`; a
    /// function makes the column custom with that resolver.
    pub fn replicate(&self, table: &str, policies: JsValue) -> std::result::Result<(), JsValue> {
        (|| -> Result<()> {
            let mut pols = Vec::new();
            let mut resolvers = Vec::new();
            if !policies.is_undefined() && !policies.is_null() {
                if !policies.is_object() {
                    return Err(invalid("replicate(table, policies): policies must be an object"));
                }
                let obj: &Object = policies.unchecked_ref();
                for entry in Object::entries(obj).iter() {
                    let pair: Array = entry.unchecked_into();
                    let col = pair.get(0).as_string().unwrap_or_default();
                    let v = pair.get(1);
                    if let Some(f) = v.dyn_ref::<Function>() {
                        pols.push((col.clone(), Policy::Custom));
                        resolvers.push((col, js_resolver(f.clone(), self.int_mode)));
                    } else if let Some(s) = v.as_string() {
                        pols.push((col, Policy::parse(&s)?));
                    } else {
                        return Err(invalid(format!(
                            "the policy for {col:?} must be a string or a function"
                        )));
                    }
                }
            }
            self.inner.replicate(table, &pols, resolvers)
        })()
        .map_err(to_js)
    }

    /// Adds the columns another replica added to replicated tables on the server;
    /// resolves to the `ALTER TABLE` statements it ran.
    pub fn migrate(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let ran = inner.migrate().await.map_err(to_js)?;
            Ok(ran.into_iter().map(JsValue::from).collect::<Array>().into())
        })
    }

    /// Push then pull. Resolves to `{ changesPushed, changesApplied, duration }`.
    pub fn sync(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let r = inner.sync().await.map_err(to_js)?;
            let o = Object::new();
            set(&o, "changesPushed", r.changes_pushed as f64);
            set(&o, "changesApplied", r.changes_applied as f64);
            set(&o, "duration", r.duration_ms);
            Ok(o.into())
        })
    }

    pub fn status(&self) -> std::result::Result<JsValue, JsValue> {
        Ok(status_js(&self.inner.status().map_err(to_js)?))
    }

    /// Prometheus text exposition of the sync metrics.
    #[wasm_bindgen(js_name = metricsText)]
    pub fn metrics_text(&self) -> std::result::Result<String, JsValue> {
        self.inner.metrics_text().map_err(to_js)
    }

    /// `{ syncs, failures, successRate, p50, p95, p99, changesPushed, changesApplied,
    /// conflicts, httpRequests, bytesSent }` (durations in ms).
    pub fn metrics(&self) -> JsValue {
        let m = self.inner.metrics();
        let o = Object::new();
        set(&o, "syncs", m.syncs as f64);
        set(&o, "failures", m.failures as f64);
        set(&o, "successRate", m.success_rate());
        set(&o, "p50", m.quantile(0.5));
        set(&o, "p95", m.quantile(0.95));
        set(&o, "p99", m.quantile(0.99));
        set(&o, "changesPushed", m.changes_pushed as f64);
        set(&o, "changesApplied", m.changes_applied as f64);
        set(&o, "conflicts", m.conflicts as f64);
        set(&o, "httpRequests", m.http_requests as f64);
        set(&o, "bytesSent", m.bytes_sent as f64);
        o.into()
    }

    /// Sets the one event listener for the sync events: `(name, detail) => void`.
    /// (`change` events come through `watchChanges` and `takeChanges`.)
    #[wasm_bindgen(js_name = setListener)]
    pub fn set_listener(&self, f: Option<Function>) {
        let mode = self.int_mode;
        self.inner.set_listener(f.map(|f| {
            Box::new(move |e: &Event| {
                let _ = f.call2(&JsValue::NULL, &JsValue::from_str(e.name()), &event_js(e, mode));
            }) as Box<dyn Fn(&Event)>
        }));
    }

    /// Watches which tables writes change, for `change` events (src/store/changes.rs):
    /// while `schedule` is set, the first row change after a `takeChanges()` calls it,
    /// inside SQLite — it must only schedule the drain (a microtask), never use the
    /// database. Unset, a write notes nothing and calls nothing; what was noted stays
    /// for the drain already scheduled.
    #[wasm_bindgen(js_name = watchChanges)]
    pub fn watch_changes(&self, schedule: Option<Function>) {
        self.inner.store().changes().set_notify(schedule.map(|f| {
            let f = OneThread(f);
            Box::new(move || {
                let _ = f.get().call0(&JsValue::NULL);
            }) as crate::store::changes::Notify
        }));
    }

    /// The tables whose rows changed since the last call, sorted; forgets them.
    #[wasm_bindgen(js_name = takeChanges)]
    pub fn take_changes(&self) -> Array {
        let out = Array::new();
        self.inner.store().changes().take_with(|t| {
            out.push(&JsValue::from_str(t));
        });
        out
    }

    #[wasm_bindgen(getter, js_name = siteId)]
    pub fn site_id(&self) -> String {
        self.inner.site().to_string()
    }

    #[wasm_bindgen(getter, js_name = hasRemote)]
    pub fn has_remote(&self) -> bool {
        self.inner.has_remote()
    }

    /// The keys (JSON arrays) of `table`'s rows with local changes not yet on the server.
    #[wasm_bindgen(js_name = pendingKeys)]
    pub fn pending_keys(&self, table: &str) -> std::result::Result<Vec<String>, JsValue> {
        self.inner.pending_keys(table).map_err(to_js)
    }

    /// Ends the network work of this replica (`close()`): requests in flight fail at
    /// once with `CLIENT_CLOSED`, later ones are not made.
    pub fn cancel(&self) {
        self.inner.cancel_remote();
    }

    /// Back-off delay for the next background attempt after a failure (never 0: it
    /// does not read the database, which may be what fails).
    #[wasm_bindgen(js_name = retryDelay)]
    pub fn retry_delay(&self) -> f64 {
        self.inner.retry_delay_ms() as f64
    }
}
