//! [`Gateway`]: one request of the records protocol in, one answer out — the only
//! part of the gateway that does I/O, through a [`RemoteClient`] to the primary (ureq
//! natively in tests, `fetch` in the Worker's wasm). The Worker authenticates the token
//! and hands over its verified claims; the database token stays in the client.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value as Json};

use super::limits::{Limits, RateLimiter};
use super::protocol::*;
use super::rules::SyncRules;
use super::schema::{self, Loaded};
use super::{pull, push, text, validate};
use crate::error::{Error, SqlCode};
use crate::remote::{HttpTransport, RemoteClient};
use crate::sql::{ResultSet, Statement, TransactionMode, Value};

/// How long a failed or partial schema load is reused before the server is asked again.
const RELOAD_MS: u64 = 2_000;
/// How many times a push is tried when its text cells keep changing meanwhile.
const TEXT_ATTEMPTS: u32 = 8;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    /// JSON: the step's answer, or `{"error": {"code", "message"}}`.
    pub body: String,
    /// For 429: when to come back.
    pub retry_after_ms: Option<u64>,
    /// When the primary failed (not a statement error): `timeout`, `unreachable` or
    /// `server`, for the router's breaker.
    pub upstream_failure: Option<&'static str>,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub retry_after_ms: Option<u64>,
    pub upstream_failure: Option<&'static str>,
}

impl Failure {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status,
            code,
            message: message.into(),
            retry_after_ms: None,
            upstream_failure: None,
        }
    }

    fn reply(self) -> Reply {
        Reply {
            status: self.status,
            body: json!({"error": {"code": self.code, "message": self.message}}).to_string(),
            retry_after_ms: self.retry_after_ms,
            upstream_failure: self.upstream_failure,
        }
    }
}

type Res<T> = std::result::Result<T, Failure>;

/// What an upstream error means for the client: the primary failing is a 503 (and a
/// failure for the breaker); a statement error is the gateway's own (500). Upstream
/// URLs and tokens never appear in the message.
fn upstream(e: Error) -> Failure {
    let kind = match &e {
        Error::Timeout { .. } => Some("timeout"),
        Error::Unreachable { .. } => Some("unreachable"),
        Error::Server { .. } | Error::Protocol(_) => Some("server"),
        Error::AuthInvalid { .. } | Error::PermissionDenied { .. } => Some("server"),
        _ => None,
    };
    match kind {
        Some(k) => Failure {
            upstream_failure: Some(k),
            ..Failure::new(
                503,
                "PRIMARY_UNAVAILABLE",
                format!("the primary did not complete the request ({k})"),
            )
        },
        None => Failure::new(500, "GATEWAY_ERROR", format!("the gateway's statement failed: {e}")),
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStats {
    pub pushes: u64,
    pub records_accepted: u64,
    pub records_refused: u64,
    pub pulls: u64,
    pub records_pulled: u64,
    pub scope_checks: u64,
    pub scope_mismatches: u64,
    pub bootstraps: u64,
    pub rate_limited: u64,
    pub too_large: u64,
    /// Pushes read again because a text cell changed between the gateway's read of its
    /// document and the push's batch (a concurrent edit).
    pub text_retries: u64,
}

/// The last schema load (or its failure) and when it happened.
type LoadedAt = (Result<Rc<Loaded>, Failure>, u64);

/// The sync gateway of one isolate.
pub struct Gateway<T: HttpTransport> {
    rules: SyncRules,
    limits: Limits,
    remote: RemoteClient<T>,
    setup_done: Cell<bool>,
    loaded: RefCell<Option<LoadedAt>>,
    /// `(site, sub)` pairs the primary has confirmed.
    sites: RefCell<HashSet<(String, String)>>,
    rate: RefCell<RateLimiter>,
    stats: RefCell<GatewayStats>,
}

impl<T: HttpTransport> Gateway<T> {
    /// `rules`: `SYNC_RULES`; `limits`: `SYNC_LIMITS` (optional); `remote`: the primary.
    pub fn new(rules: &str, limits: Option<&str>, remote: RemoteClient<T>) -> crate::Result<Self> {
        let rules = SyncRules::parse(rules)?;
        let limits = Limits::parse(limits)?;
        Ok(Gateway {
            rate: RefCell::new(RateLimiter::new(&limits)),
            rules,
            limits,
            remote,
            setup_done: Cell::new(false),
            loaded: RefCell::new(None),
            sites: RefCell::new(HashSet::new()),
            stats: RefCell::new(GatewayStats::default()),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn stats(&self) -> GatewayStats {
        self.stats.borrow().clone()
    }

    /// Serves one step (`schema`, `push`, `pull`, `scope`, `rows`, `bootstrap`) for the
    /// verified `claims`.
    pub async fn handle(&self, step: &str, claims: &Json, body: &[u8], now_ms: u64) -> Reply {
        match self.dispatch(step, claims, body, now_ms).await {
            Ok(body) => Reply {
                status: 200,
                body,
                retry_after_ms: None,
                upstream_failure: None,
            },
            Err(f) => f.reply(),
        }
    }

    async fn dispatch(&self, step: &str, claims: &Json, body: &[u8], now_ms: u64) -> Res<String> {
        let sub = claims
            .get("sub")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| Failure::new(401, "AUTH_INVALID", "the token has no subject (sub)"))?;
        if body.len() > self.limits.max_body_bytes {
            self.stats.borrow_mut().too_large += 1;
            return Err(Failure::new(
                413,
                "BODY_TOO_LARGE",
                format!("request body over {} bytes", self.limits.max_body_bytes),
            ));
        }
        let out = match step {
            "schema" => to_json(&self.schema(now_ms).await?),
            "push" => {
                let req: PushRequest = serde_json::from_slice(body)
                    .map_err(|e| Failure::new(400, "BAD_REQUEST", format!("malformed request: {e}")))?;
                to_json(&self.push(sub, claims, req, now_ms).await?)
            }
            "pull" => to_json(&self.pull(claims, parse(body)?, now_ms).await?),
            "scope" => to_json(&self.scope(claims, parse(body)?, now_ms).await?),
            "rows" => to_json(&self.rows(claims, parse(body)?, now_ms).await?),
            "bootstrap" => to_json(&self.bootstrap(claims, parse(body)?, now_ms).await?),
            _ => return Err(Failure::new(404, "NOT_FOUND", format!("no sync step {step:?}"))),
        };
        Ok(out)
    }

    /// A batch on the primary. A statement error may mean the server's tables changed
    /// under the gateway (the change log dropped, say): the next request sets them up
    /// and reads the schema again.
    ///
    /// A write batch the primary refused as busy ("database is locked": another write
    /// held the lock past the server's busy timeout, e.g. the replica's other chunk in
    /// flight on a loaded machine) is sent again, up to [`BUSY_RETRIES`] times: it was
    /// rolled back whole, and every write batch of the gateway is idempotent.
    async fn batch(&self, stmts: &[Statement], mode: TransactionMode) -> crate::Result<Vec<ResultSet>> {
        let mut tries = 0;
        loop {
            let res = self.remote.batch(stmts, mode).await;
            match &res {
                Err(e) if matches!(mode, TransactionMode::Write) && busy(e) && tries < BUSY_RETRIES => {
                    tries += 1;
                    continue;
                }
                Err(Error::Sql { .. }) => self.forget_schema(true),
                _ => {}
            }
            return res;
        }
    }

    /// Drops the loaded schema (and, with `setup`, the setup) so the next request
    /// reads it again.
    fn forget_schema(&self, setup: bool) {
        if setup {
            self.setup_done.set(false);
        }
        *self.loaded.borrow_mut() = None;
    }

    /// The rules' tables as the server has them (loaded once, again while some are
    /// missing or the rules failed to compile).
    async fn loaded(&self, now_ms: u64) -> Res<Rc<Loaded>> {
        if let Some((l, at)) = &*self.loaded.borrow() {
            let fresh = now_ms.saturating_sub(*at) < RELOAD_MS;
            match l {
                Ok(l) if l.missing.is_empty() || fresh => return Ok(l.clone()),
                Err(f) if fresh => return Err(f.clone()),
                _ => {}
            }
        }
        let res = self.load().await;
        let res = res.map(Rc::new);
        *self.loaded.borrow_mut() = Some((res.clone(), now_ms));
        res
    }

    async fn load(&self) -> Res<Loaded> {
        if !self.setup_done.get() {
            self.batch(&schema::setup(), TransactionMode::Write)
                .await
                .map_err(upstream)?;
            self.setup_done.set(true);
        }
        let rs = self
            .batch(
                &[
                    schema::load(&self.rules),
                    schema::load_defs(&self.rules),
                    schema::facts(&self.rules),
                ],
                TransactionMode::Read,
            )
            .await
            .map_err(upstream)?;
        let mut loaded =
            schema::specs(&self.rules, &rs[0], &rs[1]).map_err(|e| Failure::new(500, "CONFIG_ERROR", e.to_string()))?;
        (loaded.epoch, loaded.version) = schema::read_facts(&rs[2]);
        schema::check_columns(&self.rules, &loaded).map_err(|e| Failure::new(500, "CONFIG_ERROR", e.to_string()))?;
        let args = self.rules.args(&Json::Null);
        let checks = schema::rule_checks(&self.rules, &loaded, &args);
        if !checks.is_empty() {
            let stmts: Vec<Statement> = checks.iter().map(|(_, s)| s.clone()).collect();
            if let Err(e) = self.batch(&stmts, TransactionMode::Read).await {
                let which = match &e {
                    Error::Sql {
                        statement_index: Some(i),
                        ..
                    } => checks.get(*i).map(|c| c.0.clone()),
                    _ => None,
                };
                return Err(match which {
                    Some(rule) => Failure::new(
                        500,
                        "CONFIG_ERROR",
                        format!("SYNC_RULES: the rule {rule} does not compile against the server's schema: {e}"),
                    ),
                    None => upstream(e),
                });
            }
        }
        Ok(loaded)
    }

    async fn schema(&self, now_ms: u64) -> Res<SchemaResponse> {
        let l = self.loaded(now_ms).await?;
        Ok(SchemaResponse {
            protocol: PROTOCOL,
            tables: l.info.clone(),
            epoch: l.epoch.clone(),
            version: Some(l.version.clone()),
        })
    }

    fn args(&self, claims: &Json, site: Option<&str>) -> Vec<(String, Value)> {
        let mut a = self.rules.args(claims);
        if let Some(s) = site {
            a.push((":_es_site".into(), Value::from(s)));
        }
        a
    }

    async fn push(&self, sub: &str, claims: &Json, req: PushRequest<'_>, now_ms: u64) -> Res<PushResponse> {
        if !validate::valid_site(&req.site) {
            return Err(Failure::new(400, "BAD_REQUEST", "site must be 16 lowercase hex digits"));
        }
        if req.records.len() > self.limits.max_records {
            self.stats.borrow_mut().too_large += 1;
            return Err(Failure::new(
                413,
                "BODY_TOO_LARGE",
                format!("at most {} records per push", self.limits.max_records),
            ));
        }
        if req.records.is_empty() {
            return Ok(PushResponse::default());
        }
        if let Err(wait) = self.rate.borrow_mut().take(sub, req.records.len(), now_ms) {
            self.stats.borrow_mut().rate_limited += 1;
            return Err(Failure {
                retry_after_ms: Some(wait),
                ..Failure::new(
                    429,
                    "RATE_LIMITED",
                    format!(
                        "more than {} records per minute; retry in {wait} ms",
                        self.limits.records_per_minute
                    ),
                )
            });
        }
        let loaded = self.loaded(now_ms).await?;
        let checked = validate::check_records(
            &req.records,
            &self.rules,
            &loaded.specs,
            now_ms,
            self.limits.max_drift_ms,
        );
        if let Some(ahead) = checked.ahead_ms {
            return Err(Failure::new(
                409,
                "CLOCK_DRIFT",
                format!(
                    "a record's clock is {ahead} ms ahead of the server's (at most {} ms); {SERVER_TIME}{now_ms}",
                    self.limits.max_drift_ms
                ),
            ));
        }
        let key = (req.site.clone(), sub.to_string());
        let check_site = !self.sites.borrow().contains(&key);
        let args = self.rules.args(claims);
        let who = push::Pusher {
            sub,
            site: &req.site,
            now_ms,
            args: &args,
            check_site,
        };
        let mut early = checked.refused;
        let cells = text::cells(&checked.valid, &loaded.specs);
        let mut attempt = 0;
        let (plan, results) = loop {
            attempt += 1;
            // Text cells: the chunk's updates merged into the server's documents first
            // (a read), the texts written in the batch if no cell changed meanwhile.
            let (valid, merged) = if cells.is_empty() {
                (checked.valid.clone(), None)
            } else {
                let rs = self
                    .batch(&text::reads(&cells), TransactionMode::Read)
                    .await
                    .map_err(upstream)?;
                let (valid, refused, m) = text::merge(checked.valid.clone(), &cells, &rs).map_err(|e| {
                    Failure::new(
                        500,
                        "GATEWAY_ERROR",
                        format!("the server's text state did not merge: {e}"),
                    )
                })?;
                (valid, Some((m, refused)))
            };
            let mut all_early = early.clone();
            if let Some((_, r)) = &merged {
                all_early.extend(r.iter().cloned());
            }
            let plan = push::plan(
                valid,
                &all_early,
                &self.rules,
                &loaded.specs,
                &who,
                merged.as_ref().map(|(m, _)| m),
            );
            let (site_step, text_step) = (plan.site_step, plan.text_step);
            match self.remote.batch(&plan.stmts, TransactionMode::Write).await {
                Ok(r) => {
                    early = all_early;
                    break (plan, r);
                }
                Err(Error::Sql {
                    statement_index: step, ..
                }) if step.is_some() && step == site_step => {
                    return Err(Failure::new(
                        403,
                        "PERMISSION_DENIED",
                        "this site id belongs to another writer: a replica pushes under its own site id only",
                    ))
                }
                // A text cell changed between the read and the batch: read it again.
                Err(Error::Sql {
                    statement_index: step, ..
                }) if step.is_some() && step == text_step => {
                    self.stats.borrow_mut().text_retries += 1;
                    if attempt >= TEXT_ATTEMPTS {
                        return Err(Failure::new(
                            503,
                            "TRANSACTION_BUSY",
                            "the text cells this push edits kept changing meanwhile: nothing was applied; retry",
                        ));
                    }
                }
                Err(e) => {
                    if let Error::Sql { .. } = &e {
                        self.forget_schema(true);
                    }
                    return Err(upstream(e));
                }
            }
        };
        self.sites.borrow_mut().insert(key);
        let resp = push::finish(plan, &results, early).map_err(upstream)?;
        let mut st = self.stats.borrow_mut();
        st.pushes += 1;
        st.records_accepted += resp.accepted as u64;
        st.records_refused += resp.refused.len() as u64;
        Ok(resp)
    }

    fn page(&self, limit: Option<usize>) -> usize {
        limit.unwrap_or(self.limits.max_page).clamp(1, self.limits.max_page)
    }

    async fn pull(&self, claims: &Json, req: PullRequest, now_ms: u64) -> Res<PullResponse> {
        if !validate::valid_site(&req.site) {
            return Err(Failure::new(400, "BAD_REQUEST", "site must be 16 lowercase hex digits"));
        }
        let limit = self.page(req.limit);
        // The page is read with the log's epoch and the tables' declarations: when they
        // are not what the gateway loaded (a column added, the log replaced), the
        // schema is read again (the log's epoch made anew if it was lost) and the
        // page too, once; the replica compares both with its schema step's.
        let mut fresh = false;
        let (resp, loaded) = loop {
            let loaded = self.loaded(now_ms).await?;
            let (mut stmts, tables) = pull::pull_plan(
                &self.rules,
                &loaded.specs,
                &self.args(claims, Some(&req.site)),
                req.cursor,
                limit,
                req.tables.as_deref(),
                req.digests,
            );
            stmts.push(schema::facts(&self.rules));
            let rs = self.batch(&stmts, TransactionMode::Read).await.map_err(upstream)?;
            let (epoch, version) = schema::read_facts(rs.last().unwrap_or(&ResultSet::default()));
            if !fresh && (epoch.is_none() || epoch != loaded.epoch || version != loaded.version) {
                self.forget_schema(epoch.is_none());
                fresh = true;
                continue;
            }
            break (
                pull::pull_finish(&rs, req.cursor, limit, &tables).map_err(upstream)?,
                loaded,
            );
        };
        let resp = PullResponse {
            epoch: loaded.epoch.clone(),
            version: Some(loaded.version.clone()),
            ..resp
        };
        let mut st = self.stats.borrow_mut();
        st.pulls += 1;
        st.records_pulled += resp.records.len() as u64;
        Ok(resp)
    }

    async fn scope(&self, claims: &Json, req: ScopeRequest, now_ms: u64) -> Res<ScopeResponse> {
        let loaded = self.loaded(now_ms).await?;
        let tables: Vec<&str> = req
            .digests
            .keys()
            .map(String::as_str)
            .filter(|t| loaded.specs.contains_key(*t) && self.rules.table(t).is_some())
            .collect();
        let stmts = pull::scope_plan(&self.rules, &loaded.specs, &self.args(claims, None), &tables);
        let rs = self.batch(&stmts, TransactionMode::Read).await.map_err(upstream)?;
        let resp = pull::scope_finish(&rs, &tables, &req.digests, req.cursor).map_err(upstream)?;
        let mut st = self.stats.borrow_mut();
        st.scope_checks += 1;
        st.scope_mismatches += resp.tables.len() as u64;
        Ok(resp)
    }

    async fn rows(&self, claims: &Json, req: RowsRequest, now_ms: u64) -> Res<State> {
        let total: usize = req.tables.values().map(Vec::len).sum();
        if total > self.limits.max_page {
            return Err(Failure::new(
                413,
                "BODY_TOO_LARGE",
                format!("at most {} keys per request", self.limits.max_page),
            ));
        }
        let loaded = self.loaded(now_ms).await?;
        let keys: BTreeMap<String, Vec<Json>> = req
            .tables
            .into_iter()
            .filter(|(t, _)| loaded.specs.contains_key(t) && self.rules.table(t).is_some())
            .collect();
        let (stmts, steps) = pull::rows_plan(&self.rules, &loaded.specs, &self.args(claims, None), &keys);
        if stmts.is_empty() {
            return Ok(State::default());
        }
        let rs = self.batch(&stmts, TransactionMode::Read).await.map_err(upstream)?;
        pull::rows_finish(&rs, &steps, &keys).map_err(upstream)
    }

    async fn bootstrap(&self, claims: &Json, req: BootstrapRequest, now_ms: u64) -> Res<BootstrapResponse> {
        let loaded = self.loaded(now_ms).await?;
        let denied = || {
            Failure::new(
                403,
                "PERMISSION_DENIED",
                format!(
                    "table {:?} is not synced through this gateway",
                    req.table.chars().take(64).collect::<String>()
                ),
            )
        };
        let spec = loaded.specs.get(&req.table).ok_or_else(denied)?;
        let limit = self.page(req.limit);
        let after = req.after.clone().unwrap_or_default();
        let (stmts, steps) =
            pull::bootstrap_plan(spec, &self.rules, &self.args(claims, None), &after, limit).ok_or_else(denied)?;
        let rs = self.batch(&stmts, TransactionMode::Read).await.map_err(upstream)?;
        self.stats.borrow_mut().bootstraps += 1;
        pull::bootstrap_finish(&req.table, &rs, &steps, limit).map_err(upstream)
    }

    /// The audit trail of refused records after id `since` (for the admin endpoint).
    pub async fn audit(&self, since: i64, limit: usize) -> Reply {
        let stmt = Statement::new(
            "SELECT id, at, sub, site, tbl, pk, op, code, reason FROM _es_gw_audit WHERE id > ?1 ORDER BY id LIMIT ?2",
        )
        .arg(since)
        .arg(limit.clamp(1, 1_000) as i64);
        let res = async {
            if !self.setup_done.get() {
                self.batch(&schema::setup(), TransactionMode::Write)
                    .await
                    .map_err(upstream)?;
                self.setup_done.set(true);
            }
            self.batch(&[stmt], TransactionMode::Read).await.map_err(upstream)
        }
        .await;
        match res {
            Ok(rs) => {
                let cols = ["id", "at", "sub", "site", "table", "pk", "op", "code", "reason"];
                let entries: Vec<Json> = rs[0]
                    .rows
                    .iter()
                    .map(|r| {
                        Json::Object(
                            cols.iter()
                                .zip(r)
                                .map(|(k, v)| (k.to_string(), crate::sync::record::encode_value(v)))
                                .collect(),
                        )
                    })
                    .collect();
                Reply {
                    status: 200,
                    body: json!({ "entries": entries }).to_string(),
                    retry_after_ms: None,
                    upstream_failure: None,
                }
            }
            Err(f) => f.reply(),
        }
    }
}

/// How many times a write batch refused as busy is sent again.
const BUSY_RETRIES: u32 = 3;

/// Whether the primary refused a statement because another write held the database.
fn busy(e: &Error) -> bool {
    match e {
        Error::Sql { code, message, .. } => {
            matches!(code, SqlCode::SqliteBusy | SqlCode::SqliteLocked) || message.contains("database is locked")
        }
        _ => false,
    }
}

fn parse<R: DeserializeOwned>(body: &[u8]) -> Res<R> {
    serde_json::from_slice(body).map_err(|e| Failure::new(400, "BAD_REQUEST", format!("malformed request: {e}")))
}

fn to_json<R: Serialize>(r: &R) -> String {
    serde_json::to_string(r).unwrap_or_else(|_| "{}".into())
}
