//! The edge classes: `EdgeRouter` (src/router/), `SessionStore` (src/session/),
//! `MetricsRegistry` (src/metrics/) and `classify`. The TypeScript wrappers with typed
//! results are in `js/edge.ts`.
//!
//! Structured results (plans, statuses, health, sessions) cross the boundary as JSON
//! text parsed by `JSON.parse`: one call instead of a property set per field. The hot
//! cached-read path (`cached`) returns the stored JSON text itself.

use js_sys::Array;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::metrics::{Exposition, HealthThresholds, Kind, Registry};
use crate::router::{self, Failure, Location, Router, RouterOptions};
use crate::session::{KeyRing, Lookup, SessionOptions, SessionView, Sessions, SqlWrite, StoredRow, Validity};
use crate::wasm::auth::principal_of;
use crate::wasm::convert::IntMode;
use crate::wasm::error::{invalid, to_js};
use crate::wasm::values::value_to_js;

type JsResult<T> = std::result::Result<T, JsValue>;

/// Serialized with serde_json and parsed on the JS side.
fn to_js_json<T: Serialize>(v: &T) -> JsValue {
    match serde_json::to_string(v) {
        Ok(s) => js_sys::JSON::parse(&s).unwrap_or(JsValue::UNDEFINED),
        Err(_) => JsValue::UNDEFINED,
    }
}

fn index(v: Option<f64>) -> Option<u64> {
    v.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64)
}

/// Classifies SQL text as the router does (`kind`, `statements`, `reads`, `writes`,
/// `writesUnknown`, `deterministic`).
#[wasm_bindgen]
pub fn classify(sql: &str) -> JsResult<JsValue> {
    router::classify(sql).map(|c| to_js_json(&c)).map_err(to_js)
}

/// The query router. Region indices in plans are positions in `regions()`.
#[wasm_bindgen(js_name = EdgeRouter)]
pub struct JsEdgeRouter {
    inner: Router,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanJs<'a> {
    kind: router::StatementKind,
    statements: usize,
    targets: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    min_replication_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_key: Option<&'a str>,
    reads: &'a [String],
    writes: &'a [String],
    writes_unknown: bool,
}

fn plan_js(plan: &router::Plan) -> JsValue {
    to_js_json(&PlanJs {
        kind: plan.kind,
        statements: plan.statements,
        targets: &plan.targets,
        min_replication_index: plan.min_replication_index,
        cache_key: plan.cache_key.as_deref(),
        reads: &plan.reads,
        writes: &plan.writes,
        writes_unknown: plan.writes_unknown,
    })
}

#[wasm_bindgen(js_class = EdgeRouter)]
impl JsEdgeRouter {
    /// `regions`: JSON array; `options`: JSON (camelCase) or undefined; `seed`: the
    /// power-of-two-choices PRNG seed (a Worker may not draw randomness at load time).
    #[wasm_bindgen(constructor)]
    pub fn new(regions: &str, options: Option<String>, seed: f64) -> JsResult<JsEdgeRouter> {
        let regions = router::parse_regions(regions).map_err(to_js)?;
        let mut opts = match options {
            Some(o) => RouterOptions::from_json(&o).map_err(to_js)?,
            None => RouterOptions::default(),
        };
        opts.seed = seed.abs() as u64 ^ 0x9e37_79b9_7f4a_7c15;
        Ok(JsEdgeRouter {
            inner: Router::new(regions, opts).map_err(to_js)?,
        })
    }

    /// The cached answer for this read in `scope` by this client, or undefined (no
    /// classification: only cacheable reads are ever stored under a key).
    pub fn cached(
        &mut self,
        sql: &str,
        args_key: &str,
        scope: &str,
        client: Option<String>,
        now_ms: f64,
    ) -> Option<String> {
        self.inner
            .cached(sql, args_key, scope, client.as_deref(), now_ms)
            .map(str::to_owned)
    }

    /// The worker's own statement (no authorization).
    pub fn route(
        &mut self,
        sql: &str,
        args_key: &str,
        scope: &str,
        client: Option<String>,
        location: Option<String>,
        now_ms: f64,
    ) -> JsResult<JsValue> {
        // A malformed location header only loses the locality hint.
        let user = location.as_deref().and_then(|l| Location::parse(l).ok());
        let plan = self
            .inner
            .route(sql, args_key, scope, client.as_deref(), user, now_ms)
            .map_err(to_js)?;
        Ok(plan_js(&plan))
    }

    /// A client's statement: authorized for the principal, then routed in its scope.
    #[wasm_bindgen(js_name = routeFor)]
    #[allow(clippy::too_many_arguments)]
    pub fn route_for(
        &mut self,
        sub: &str,
        role: &str,
        access: &str,
        sql: &str,
        args_key: &str,
        location: Option<String>,
        now_ms: f64,
    ) -> JsResult<JsValue> {
        let p = principal_of(sub, role, access)?;
        let user = location.as_deref().and_then(|l| Location::parse(l).ok());
        let plan = self.inner.route_for(&p, sql, args_key, user, now_ms).map_err(to_js)?;
        Ok(plan_js(&plan))
    }

    /// The cached answer for this principal, or undefined; `FORBIDDEN` for a user.
    #[wasm_bindgen(js_name = cachedFor)]
    pub fn cached_for(
        &mut self,
        sub: &str,
        role: &str,
        access: &str,
        sql: &str,
        args_key: &str,
        now_ms: f64,
    ) -> JsResult<Option<String>> {
        let p = principal_of(sub, role, access)?;
        Ok(self
            .inner
            .cached_for(&p, sql, args_key, now_ms)
            .map_err(to_js)?
            .map(str::to_owned))
    }

    pub fn begin(&mut self, region: usize) {
        self.inner.begin(region);
    }

    #[wasm_bindgen(js_name = reportSuccess)]
    pub fn report_success(&mut self, region: usize, latency_ms: f64, replication_index: Option<f64>, now_ms: f64) {
        self.inner
            .report_success(region, latency_ms, index(replication_index), now_ms);
    }

    /// `failure`: "timeout" | "unreachable" | "server".
    #[wasm_bindgen(js_name = reportFailure)]
    pub fn report_failure(&mut self, region: usize, failure: &str, now_ms: f64) {
        let f = match failure {
            "timeout" => Failure::Timeout,
            "unreachable" => Failure::Unreachable,
            _ => Failure::Server,
        };
        self.inner.report_failure(region, f, now_ms);
    }

    #[wasm_bindgen(js_name = recordWrite)]
    pub fn record_write(
        &mut self,
        client: Option<String>,
        replication_index: Option<f64>,
        writes: Vec<String>,
        writes_unknown: bool,
        now_ms: f64,
    ) {
        self.inner.record_write(
            client.as_deref(),
            index(replication_index),
            &writes,
            writes_unknown,
            now_ms,
        );
    }

    /// A plan's cache entry as `min_replication_index` allows (counts a hit or a miss).
    #[wasm_bindgen(js_name = cacheGet)]
    pub fn cache_get(&mut self, key: &str, min_replication_index: Option<f64>, now_ms: f64) -> Option<String> {
        self.inner
            .cache_get(key, index(min_replication_index), now_ms)
            .map(str::to_owned)
    }

    #[wasm_bindgen(js_name = cachePut)]
    pub fn cache_put(
        &mut self,
        key: String,
        reads: Vec<String>,
        replication_index: Option<f64>,
        value: String,
        now_ms: f64,
    ) {
        self.inner
            .cache_put(key, &reads, index(replication_index), value, now_ms);
    }

    #[wasm_bindgen(js_name = probesDue)]
    pub fn probes_due(&mut self, now_ms: f64) -> Vec<u32> {
        self.inner.probes_due(now_ms).into_iter().map(|i| i as u32).collect()
    }

    pub fn regions(&self) -> JsValue {
        to_js_json(&self.inner.regions())
    }

    #[wasm_bindgen(js_name = regionStatus)]
    pub fn region_status(&self, now_ms: f64) -> JsValue {
        to_js_json(&self.inner.region_status(now_ms))
    }

    pub fn stats(&self) -> JsValue {
        to_js_json(&self.inner.stats())
    }

    /// Cluster health from the regions' figures against `thresholds` (JSON or undefined).
    pub fn health(&self, thresholds: Option<String>, now_ms: f64) -> JsResult<JsValue> {
        let t = match thresholds {
            Some(t) => HealthThresholds::from_json(&t).map_err(to_js)?,
            None => HealthThresholds::default(),
        };
        Ok(to_js_json(&self.inner.health(&t, now_ms)))
    }

    #[wasm_bindgen(js_name = metricsText)]
    pub fn metrics_text(&self, now_ms: f64) -> String {
        let mut out = Exposition::new();
        self.inner.export_metrics(&mut out, now_ms);
        out.finish()
    }
}

/// Distributed sessions (see `js/edge.ts`).
#[wasm_bindgen(js_name = SessionStore)]
pub struct JsSessionStore {
    inner: Sessions,
}

fn write_js(w: &SqlWrite) -> JsValue {
    let o = js_sys::Object::new();
    let args: Array = w.args.iter().map(|v| value_to_js(v, IntMode::BigInt)).collect();
    let _ = js_sys::Reflect::set(&o, &"sql".into(), &JsValue::from_str(w.sql));
    let _ = js_sys::Reflect::set(&o, &"args".into(), &args);
    o.into()
}

fn pair(session: Option<&SessionView>, write: Option<&SqlWrite>, status: Option<&str>) -> js_sys::Object {
    let o = js_sys::Object::new();
    if let Some(s) = status {
        let _ = js_sys::Reflect::set(&o, &"status".into(), &JsValue::from_str(s));
    }
    if let Some(s) = session {
        let _ = js_sys::Reflect::set(&o, &"session".into(), &to_js_json(s));
    }
    if let Some(w) = write {
        let _ = js_sys::Reflect::set(&o, &"write".into(), &write_js(w));
    }
    o
}

fn ledger_index(v: Option<f64>) -> Option<u64> {
    v.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64)
}

#[wasm_bindgen(js_class = SessionStore)]
impl JsSessionStore {
    #[wasm_bindgen(constructor)]
    pub fn new(keys: &str, options: Option<String>, seed: &[u8]) -> JsResult<JsSessionStore> {
        let ring = KeyRing::parse(keys).map_err(to_js)?;
        let opts = match options {
            Some(o) => SessionOptions::from_json(&o).map_err(to_js)?,
            None => SessionOptions::default(),
        };
        let seed: [u8; 16] = seed
            .try_into()
            .map_err(|_| to_js(invalid("the session nonce seed must be 16 random bytes".to_string())))?;
        Ok(JsSessionStore {
            inner: Sessions::new(ring, opts, seed),
        })
    }

    pub fn schema() -> Vec<String> {
        Sessions::SCHEMA_STATEMENTS.iter().map(|s| s.to_string()).collect()
    }

    #[wasm_bindgen(js_name = selectSql)]
    pub fn select_sql() -> String {
        Sessions::SELECT.to_string()
    }

    /// `SELECT version, revoked FROM es_session_ledger WHERE id = ?`
    #[wasm_bindgen(js_name = validateSql)]
    pub fn validate_sql() -> String {
        Sessions::VALIDATE.to_string()
    }

    /// A session id from 24 random bytes (`crypto.getRandomValues`).
    #[wasm_bindgen(js_name = newId)]
    pub fn new_id(random: &[u8]) -> JsResult<String> {
        let bytes: [u8; 24] = random
            .try_into()
            .map_err(|_| to_js(invalid("a session id takes 24 random bytes".to_string())))?;
        Ok(Sessions::new_id(bytes))
    }

    /// Whether `id` has the shape of a generated session id.
    #[wasm_bindgen(js_name = isId)]
    pub fn is_id(id: &str) -> bool {
        Sessions::is_id(id)
    }

    pub fn create(&mut self, id: &str, owner: &str, data: &str, region: &str, now_ms: f64) -> JsResult<JsValue> {
        let (s, w) = self.inner.create(id, owner, data, region, now_ms).map_err(to_js)?;
        Ok(pair(Some(&s), Some(&w), None).into())
    }

    #[wasm_bindgen(js_name = getCached)]
    pub fn get_cached(&mut self, id: &str, region: &str, now_ms: f64) -> JsValue {
        match self.inner.get_cached(id, region, now_ms) {
            Lookup::Hit {
                session,
                write,
                validate,
            } => {
                let o = pair(Some(&session), write.as_ref(), Some("hit"));
                let _ = js_sys::Reflect::set(&o, &"validate".into(), &JsValue::from_bool(validate));
                o.into()
            }
            Lookup::Miss => pair(None, None, Some("miss")).into(),
            Lookup::Expired { write } => pair(None, Some(&write), Some("expired")).into(),
        }
    }

    /// The ledger's answer for a cached copy (`ledgerVersion` undefined: no entry):
    /// "current", "stale" or "gone".
    pub fn validated(&mut self, id: &str, ledger_version: Option<f64>, revoked: bool, now_ms: f64) -> String {
        let ledger = ledger_index(ledger_version).map(|v| (v, revoked));
        match self.inner.validated(id, ledger, now_ms) {
            Validity::Current => "current",
            Validity::Stale => "stale",
            Validity::Gone => "gone",
        }
        .to_string()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn load(
        &mut self,
        id: &str,
        home: String,
        created_ms: f64,
        expires_ms: f64,
        absolute_ms: f64,
        version: f64,
        body: Vec<u8>,
        ledger_version: Option<f64>,
        revoked: bool,
        region: &str,
        now_ms: f64,
    ) -> JsResult<JsValue> {
        let row = StoredRow {
            home,
            created_ms,
            expires_ms,
            absolute_ms,
            version: version.max(0.0) as u64,
            body,
            ledger_version: ledger_index(ledger_version),
            revoked,
        };
        let (s, w) = self.inner.load(id, row, region, now_ms).map_err(to_js)?;
        Ok(pair(Some(&s), w.as_ref(), None).into())
    }

    /// `expected_version`: refuse unless the session is at that version (If-Match).
    pub fn update(
        &mut self,
        id: &str,
        data: &str,
        region: &str,
        expected_version: Option<f64>,
        now_ms: f64,
    ) -> JsResult<JsValue> {
        let expected = match expected_version {
            None => None,
            Some(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 => Some(v as u64),
            Some(_) => return Err(to_js(invalid("version must be a whole number ≥ 0".to_string()))),
        };
        let (s, w) = self.inner.update(id, data, region, expected, now_ms).map_err(to_js)?;
        Ok(pair(Some(&s), Some(&w), None).into())
    }

    pub fn destroy(&mut self, id: &str) -> JsValue {
        write_js(&self.inner.destroy(id))
    }

    pub fn conflict(&mut self, id: &str) {
        self.inner.conflict(id);
    }

    /// Drops `id` from this isolate's cache (its write failed); whether it was there.
    pub fn evict(&mut self, id: &str) -> bool {
        self.inner.evict(id)
    }

    /// The DELETE for a session found expired on load (only if still expired).
    #[wasm_bindgen(js_name = expiredDelete)]
    pub fn expired_delete(&self, id: &str, now_ms: f64) -> JsValue {
        write_js(&self.inner.expired_delete(id, now_ms))
    }

    pub fn gc(&mut self, now_ms: f64) -> JsValue {
        let (evicted, writes) = self.inner.gc(now_ms);
        let o = js_sys::Object::new();
        let list: Array = writes.iter().map(write_js).collect();
        let _ = js_sys::Reflect::set(&o, &"evicted".into(), &JsValue::from_f64(evicted as f64));
        let _ = js_sys::Reflect::set(&o, &"writes".into(), &list);
        o.into()
    }

    pub fn analytics(&self) -> JsValue {
        to_js_json(&self.inner.analytics())
    }

    #[wasm_bindgen(js_name = metricsText)]
    pub fn metrics_text(&self) -> String {
        let mut out = Exposition::new();
        self.inner.export_metrics(&mut out);
        out.finish()
    }
}

/// Named counters, gauges and histograms (the Worker's own HTTP metrics).
#[wasm_bindgen(js_name = MetricsRegistry)]
pub struct JsMetricsRegistry {
    inner: Registry,
}

fn label_pairs(flat: &[String]) -> Vec<(&str, &str)> {
    flat.chunks_exact(2).map(|c| (c[0].as_str(), c[1].as_str())).collect()
}

#[wasm_bindgen(js_class = MetricsRegistry)]
impl JsMetricsRegistry {
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> JsMetricsRegistry {
        JsMetricsRegistry { inner: Registry::new() }
    }

    /// `kind`: "counter" | "gauge" | "histogram" (latency buckets in ms).
    pub fn describe(&mut self, name: &str, kind: &str, help: &str) -> JsResult<()> {
        let kind = match kind {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            other => return Err(to_js(Error::InvalidArgument(format!("unknown metric kind {other:?}")))),
        };
        self.inner.describe(name, kind, help).map_err(to_js)
    }

    pub fn inc(&mut self, name: &str, labels: Vec<String>, by: f64) {
        let _ = self.inner.inc(name, &label_pairs(&labels), by);
    }

    pub fn set(&mut self, name: &str, labels: Vec<String>, value: f64) {
        let _ = self.inner.set(name, &label_pairs(&labels), value);
    }

    pub fn observe(&mut self, name: &str, labels: Vec<String>, value: f64) {
        let _ = self.inner.observe(name, &label_pairs(&labels), value);
    }

    pub fn render(&self) -> String {
        let mut out = Exposition::new();
        self.inner.render_into(&mut out);
        out.finish()
    }
}
