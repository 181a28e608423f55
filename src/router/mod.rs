//! Edge query routing: send each SQL request to the best libSQL region.
//!
//! The [`Router`] is pure decision logic — it performs no I/O, reads no clock and
//! uses no OS randomness (time comes in as `now_ms`, randomness from a seeded
//! PRNG), so the same code runs natively, in tests and inside a Cloudflare Worker.
//! The worker does the HTTP and tells the router what happened:
//!
//! 1. [`Router::route`] classifies the SQL ([`classify`]) and returns a [`Plan`]:
//!    region indices to try in order, a read-your-writes floor, a cache key.
//! 2. For a cacheable read, [`Router::cache_get`] first; on a hit, done.
//! 3. For each target tried: [`Router::begin`], then [`Router::report_success`] or
//!    [`Router::report_failure`] (wire failures only — a SQL error is a success:
//!    the region answered).
//! 4. After a successful write: [`Router::record_write`] (read-your-writes floor,
//!    cache invalidation). After a successful cacheable read: [`Router::cache_put`].
//! 5. Periodically: [`Router::probes_due`] and send a cheap probe (`select 1`) to
//!    each returned region, reporting the outcome like any request.
//!
//! Region indices are positions in the region list given to [`Router::new`].
//!
//! Reads pick their first region by *power of two choices*: two random eligible
//! regions, the one with the lower score wins. Scoring alone would herd every
//! request onto the momentarily-best region; two random choices keep the load
//! spread while still avoiding slow or busy regions.

mod cache;
mod classify;
mod guard;
mod health;
pub(crate) mod lexer;
mod options;
mod region;
mod report;
mod ryw;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;

pub use classify::{classify, Classification, StatementKind};
pub use guard::{DETERMINISTIC_FNS, RESERVED_TABLE_PREFIX};
pub use health::{BreakerState, RegionStatus, MAX_COOLDOWN_FACTOR, PROBE_LEASE_MIN_MS};
pub use options::{Failure, RouterOptions};
pub use region::{parse_regions, Location, RegionConfig, Role, DEFAULT_PRIORITY};

use cache::Cache;
use health::Health;
use lexer::Token;
use ryw::{Floors, Rng};

use crate::auth::{authorize_sql, Principal};
use crate::Result;

/// The routing decision for one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub kind: StatementKind,
    /// Region indices to try, in order. Writes: the primary only. Reads: the chosen
    /// region, then fallbacks by score, regions with an open breaker last.
    pub targets: Vec<usize>,
    /// Read-your-writes floor: a reply whose replication index is below it is stale
    /// for this client (retry on the next target; the primary is always listed).
    pub min_replication_index: Option<u64>,
    /// Key for [`Router::cache_get`]/[`Router::cache_put`]; `None` if not cacheable.
    pub cache_key: Option<String>,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
    pub writes_unknown: bool,
    /// Number of statements in the SQL text.
    pub statements: usize,
}

/// Router counters (see [`Router::stats`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterStats {
    pub reads: u64,
    pub writes: u64,
    /// First-choice routings per region id.
    pub routed: BTreeMap<String, u64>,
    /// `report_failure` calls (each one means the worker moved on or gave up).
    pub failovers: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_entries: usize,
    pub cache_bytes: usize,
    pub cache_evictions: u64,
    pub cache_expirations: u64,
    pub cache_invalidations: u64,
    /// Reads sent first to the primary because every replica was behind the
    /// client's read-your-writes floor.
    pub ryw_primary_reads: u64,
    /// Times a breaker opened (including re-opens after a failed probe).
    pub breaker_opens: u64,
    /// Requests `route` refused as unparseable.
    pub rejected: u64,
    /// Clients with a read-your-writes floor currently tracked.
    pub ryw_clients: usize,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    reads: u64,
    writes: u64,
    failovers: u64,
    ryw_primary_reads: u64,
    breaker_opens: u64,
    rejected: u64,
}

/// One read candidate while routing.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    /// 0 eligible, 1 behind the RYW floor, 2 breaker open / probe slot taken.
    tier: u8,
    score: f64,
    priority: u32,
    region: usize,
}

/// Load-, latency- and health-aware routing over one primary and its replicas.
///
/// ```
/// use edgesync::router::{parse_regions, Router, RouterOptions, StatementKind};
/// let regions = parse_regions(r#"[
///   {"id": "iad", "url": "https://iad.example", "role": "primary", "location": "38.9,-77.4"},
///   {"id": "fra", "url": "https://fra.example", "role": "replica", "location": "50.1,8.7"}
/// ]"#).unwrap();
/// let mut router = Router::new(regions, RouterOptions::default()).unwrap();
/// let paris = edgesync::router::Location::parse("48.85,2.35").ok();
///
/// // A read from Paris with no latency samples yet: the nearby replica, primary as fallback.
/// let plan = router.route("select * from users where id = ?", "[1]", "service", Some("alice"), paris, 0.0).unwrap();
/// assert_eq!(plan.kind, StatementKind::Read);
/// assert_eq!(plan.targets, vec![1, 0]);
/// router.begin(1);
/// router.report_success(1, 12.0, Some(40), 12.0);
/// router.cache_put(plan.cache_key.clone().unwrap(), &plan.reads, Some(40), "[...]".into(), 12.0);
/// assert_eq!(router.cache_get(plan.cache_key.as_deref().unwrap(), None, 13.0), Some("[...]"));
///
/// // A write goes to the primary; recording it sets alice's floor and invalidates `users`.
/// let w = router.route("update users set name = ? where id = ?", "", "service", Some("alice"), paris, 20.0).unwrap();
/// assert_eq!(w.targets, vec![0]);
/// router.record_write(Some("alice"), Some(41), &w.writes, w.writes_unknown, 90.0);
/// assert_eq!(router.cache_get(plan.cache_key.as_deref().unwrap(), None, 91.0), None);
/// let r = router.route("select * from users where id = ?", "[1]", "service", Some("alice"), paris, 95.0).unwrap();
/// assert_eq!(r.min_replication_index, Some(41));
/// assert_eq!(r.targets[0], 0); // fra is known only at 40
/// ```
pub struct Router {
    regions: Vec<RegionConfig>,
    health: Vec<Health>,
    routed: Vec<u64>,
    primary: usize,
    options: RouterOptions,
    rng: Rng,
    cache: Cache,
    floors: Floors,
    counters: Counters,
    /// Latest `now_ms` seen, for calls that take no time (`begin`).
    now_ms: f64,
    toks: Vec<Token>,
    candidates: Vec<Candidate>,
    /// The cache key buffer of [`Router::cached`], reused so a hit allocates nothing.
    scratch: String,
}

impl Router {
    /// A router over `regions` (exactly one primary; validated like
    /// [`parse_regions`]) with validated `options`.
    pub fn new(regions: Vec<RegionConfig>, options: RouterOptions) -> Result<Self> {
        options.validate()?;
        let primary = region::validate_regions(&regions)?;
        let n = regions.len();
        Ok(Router {
            health: vec![Health::new(); n],
            routed: vec![0; n],
            primary,
            rng: Rng::new(options.seed),
            cache: Cache::new(options.cache_max_entries, options.cache_max_bytes, options.cache_ttl_ms),
            floors: Floors::new(options.ryw_max_clients),
            counters: Counters::default(),
            now_ms: f64::NEG_INFINITY,
            toks: Vec::new(),
            candidates: Vec::with_capacity(n),
            scratch: String::new(),
            regions,
            options,
        })
    }

    /// Decides where `sql` goes, for the worker's own statements (no authorization:
    /// see [`Router::route_for`] for a client's). `args_key` is any stable
    /// serialization of the bound arguments and `scope` names who may see the result
    /// (both become part of the cache key); `client` identifies whose writes must be
    /// visible to this read; `user` is the caller's location.
    ///
    /// Errors with `QueryUnparseable` for SQL that cannot be classified safely.
    pub fn route(
        &mut self,
        sql: &str,
        args_key: &str,
        scope: &str,
        client: Option<&str>,
        user: Option<Location>,
        now_ms: f64,
    ) -> Result<Plan> {
        self.observe(now_ms);
        let c = self.classify_counted(sql)?;
        Ok(self.plan(c, sql, args_key, scope, client, user, now_ms))
    }

    /// [`Router::route`] for a client's statement: authorized first
    /// ([`crate::auth::authorize_sql`]: `FORBIDDEN`, `SQL_NOT_ALLOWED`,
    /// `PERMISSION_DENIED`), then routed with the principal's cache scope and its
    /// subject as the read-your-writes client.
    ///
    /// ```
    /// use edgesync::auth::{AuthConfig, Principal};
    /// use edgesync::router::{parse_regions, Router, RouterOptions};
    /// let regions = parse_regions(r#"[{"id":"p","url":"http://p","role":"primary"}]"#).unwrap();
    /// let mut router = Router::new(regions, RouterOptions::default()).unwrap();
    /// let config = AuthConfig::default();
    /// let svc = Principal::from_claims(&serde_json::json!({"sub": "api", "role": "service"}), &config).unwrap();
    /// let user = Principal::from_claims(&serde_json::json!({"sub": "eve"}), &config).unwrap();
    /// assert!(router.route_for(&svc, "select 1", "", None, 0.0).unwrap().cache_key.is_some());
    /// assert_eq!(router.route_for(&user, "select 1", "", None, 0.0).unwrap_err().code(), "FORBIDDEN");
    /// ```
    pub fn route_for(
        &mut self,
        principal: &Principal,
        sql: &str,
        args_key: &str,
        user: Option<Location>,
        now_ms: f64,
    ) -> Result<Plan> {
        principal.require_service("running SQL through /query and /batch")?;
        self.observe(now_ms);
        let c = self.classify_counted(sql)?;
        if let Err(e) = authorize_sql(principal, &c) {
            self.counters.rejected += 1;
            return Err(e);
        }
        let scope = principal.cache_scope();
        Ok(self.plan(c, sql, args_key, &scope, Some(&principal.sub), user, now_ms))
    }

    fn classify_counted(&mut self, sql: &str) -> Result<Classification> {
        classify::classify_with(sql, &mut self.toks).inspect_err(|_| self.counters.rejected += 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn plan(
        &mut self,
        c: Classification,
        sql: &str,
        args_key: &str,
        scope: &str,
        client: Option<&str>,
        user: Option<Location>,
        now_ms: f64,
    ) -> Plan {
        let mut plan = Plan {
            kind: c.kind,
            targets: Vec::new(),
            min_replication_index: None,
            cache_key: None,
            reads: c.reads,
            writes: c.writes,
            writes_unknown: c.writes_unknown,
            statements: c.statements,
        };
        match c.kind {
            StatementKind::Write => {
                // Never a replica, even if the primary looks down: the worker tries
                // it and reports, and the error surfaces as PRIMARY_UNAVAILABLE.
                self.counters.writes += 1;
                plan.targets.push(self.primary);
                self.health[self.primary].claim_probe(now_ms);
            }
            StatementKind::Read => {
                self.counters.reads += 1;
                let floor = client.and_then(|c| self.floors.get(c, now_ms));
                plan.min_replication_index = floor;
                plan.targets = self.choose_read(floor, user, now_ms);
                if c.cacheable && self.cache.enabled() {
                    let mut key = String::new();
                    cache_key(&mut key, scope, sql, args_key);
                    plan.cache_key = Some(key);
                }
            }
        }
        if let Some(&first) = plan.targets.first() {
            self.routed[first] += 1;
        }
        plan
    }

    fn choose_read(&mut self, floor: Option<u64>, user: Option<Location>, now_ms: f64) -> Vec<usize> {
        let mut cands = std::mem::take(&mut self.candidates);
        cands.clear();
        let mut behind = false;
        for i in 0..self.regions.len() {
            let h = &self.health[i];
            let tier = if !h.usable(now_ms) {
                2
            } else if i != self.primary && floor.is_some_and(|f| h.replication_index.is_none_or(|r| r < f)) {
                behind = true;
                1
            } else {
                0
            };
            cands.push(Candidate {
                tier,
                score: self.score(i, user, now_ms),
                priority: self.regions[i].priority,
                region: i,
            });
        }
        // total_cmp: a NaN score (e.g. from a hand-built NaN location) must not
        // make the comparator inconsistent, which the std sort may panic on.
        cands.sort_unstable_by(|a, b| {
            a.tier
                .cmp(&b.tier)
                .then(a.score.total_cmp(&b.score))
                .then(a.priority.cmp(&b.priority))
                .then(a.region.cmp(&b.region))
        });
        let eligible = cands.iter().take_while(|c| c.tier == 0).count();
        let first = if eligible >= 2 {
            // Power of two choices; exact ties go to the first draw (random).
            let a = self.rng.below(eligible);
            let mut b = self.rng.below(eligible - 1);
            if b >= a {
                b += 1;
            }
            let (ca, cb) = (&cands[a], &cands[b]);
            if (cb.score, cb.priority) < (ca.score, ca.priority) {
                b
            } else {
                a
            }
        } else {
            0
        };
        let mut targets = Vec::with_capacity(cands.len());
        targets.push(cands[first].region);
        targets.extend(
            cands
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != first)
                .map(|(_, c)| c.region),
        );
        let chosen = targets[0];
        if cands[first].tier == 0 {
            self.health[chosen].claim_probe(now_ms);
        }
        if behind && chosen == self.primary && cands[first].tier == 0 && eligible == 1 {
            self.counters.ryw_primary_reads += 1;
        }
        self.candidates = cands;
        targets
    }

    /// Expected latency × load × errors. Expected latency = the measured EWMA
    /// (worker ↔ region) plus, when the caller's and the region's locations are
    /// known, 1 ms per 100 km between them (≈ fibre round trip): locality keeps
    /// counting after samples exist, so a user near a replica is served there even
    /// when the worker measures every region alike. Without samples: 1 ms + the
    /// distance term, or the region's priority read as milliseconds when either
    /// location is unknown.
    fn score(&self, i: usize, user: Option<Location>, now_ms: f64) -> f64 {
        let h = &self.health[i];
        let r = &self.regions[i];
        let measured = h.expected_latency(now_ms, self.options.latency_decay_ms);
        let distance = match (user, r.location) {
            (Some(u), Some(l)) => Some(u.distance_km(&l) / 100.0),
            _ => None,
        };
        let latency = match (measured, distance) {
            (Some(m), Some(d)) => m + d,
            (Some(m), None) => m,
            (None, Some(d)) => 1.0 + d,
            (None, None) => r.priority as f64,
        };
        let score = latency * (1.0 + h.inflight as f64 * 0.5) * (1.0 + 2.0 * h.error_rate);
        if score.is_nan() {
            f64::MAX
        } else {
            score
        }
    }

    /// A request is being sent to `region` (counts as in flight; takes a half-open
    /// region's probe slot). Unknown indices are ignored.
    pub fn begin(&mut self, region: usize) {
        let now = self.now_ms;
        if let Some(h) = self.health.get_mut(region) {
            h.inflight = h.inflight.saturating_add(1);
            h.claim_probe(now);
        }
    }

    /// `region` answered (even with a SQL error) after `latency_ms`, at
    /// `replication_index` if the reply carried one. Closes its breaker.
    pub fn report_success(&mut self, region: usize, latency_ms: f64, replication_index: Option<u64>, now_ms: f64) {
        self.observe(now_ms);
        let alpha = self.options.ewma_alpha;
        if let Some(h) = self.health.get_mut(region) {
            h.success(latency_ms, replication_index, alpha, now_ms);
        }
    }

    /// `region` did not answer. Counts towards opening its breaker.
    pub fn report_failure(&mut self, region: usize, failure: Failure, now_ms: f64) {
        let _ = failure; // every wire failure counts the same towards the breaker
        self.observe(now_ms);
        let o = &self.options;
        let Some(h) = self.health.get_mut(region) else {
            return;
        };
        self.counters.failovers += 1;
        if h.failure(o.ewma_alpha, o.breaker_failures, o.breaker_cooldown_ms, now_ms) {
            self.counters.breaker_opens += 1;
        }
    }

    /// A write succeeded on the primary at `replication_index`: raise `client`'s
    /// read-your-writes floor and invalidate cached reads of `writes` (everything if
    /// `writes_unknown`). Pass the plan's `writes`/`writes_unknown`.
    ///
    /// Without an index the client's floor is the primary's last known index (if
    /// any), and cache entries cannot be guarded against racing stale reads.
    pub fn record_write(
        &mut self,
        client: Option<&str>,
        replication_index: Option<u64>,
        writes: &[String],
        writes_unknown: bool,
        now_ms: f64,
    ) {
        self.observe(now_ms);
        let primary = &mut self.health[self.primary];
        primary.note_index(replication_index);
        let floor = replication_index.or(primary.replication_index);
        if let (Some(c), Some(f)) = (client, floor) {
            if self.options.ryw_ttl_ms > 0.0 && now_ms.is_finite() {
                self.floors.set(c, f, now_ms + self.options.ryw_ttl_ms, now_ms);
            }
        }
        if writes_unknown {
            self.cache.invalidate_all(replication_index);
        } else {
            self.cache.invalidate_tables(writes, replication_index);
        }
    }

    /// The hot path of a cached read: the answer stored for `sql` with `args_key` in
    /// `scope`, as `client` may see it (read at or after its read-your-writes floor),
    /// without classifying the statement — only cacheable reads, authorized for that
    /// scope, are ever stored under such a key. A key that was never stored counts
    /// neither a hit nor a miss: the caller goes on to [`Router::route`] and
    /// [`Router::cache_get`], which count it.
    ///
    /// ```
    /// use edgesync::router::{parse_regions, Router, RouterOptions};
    /// let regions = parse_regions(r#"[{"id":"p","url":"http://p","role":"primary"}]"#).unwrap();
    /// let mut router = Router::new(regions, RouterOptions::default()).unwrap();
    /// assert_eq!(router.cached("select 1", "", "service", None, 0.0), None);
    /// let plan = router.route("select 1", "", "service", None, None, 0.0).unwrap();
    /// router.cache_put(plan.cache_key.unwrap(), &plan.reads, Some(3), "[[1]]".into(), 0.0);
    /// assert_eq!(router.cached("select 1", "", "service", None, 1.0), Some("[[1]]"));
    /// assert_eq!(router.cached("select 1", "", "user:eve", None, 1.0), None); // another scope
    /// ```
    pub fn cached(
        &mut self,
        sql: &str,
        args_key: &str,
        scope: &str,
        client: Option<&str>,
        now_ms: f64,
    ) -> Option<&str> {
        if self.cache.len() == 0 {
            return None;
        }
        cache_key(&mut self.scratch, scope, sql, args_key);
        if !self.cache.contains(&self.scratch) {
            return None;
        }
        let floor = client.and_then(|c| self.floors.get(c, now_ms));
        self.cache.get(&self.scratch, floor, now_ms)
    }

    /// [`Router::cached`] for a principal: its scope and its read-your-writes floor.
    /// Only service principals run SQL (`FORBIDDEN` otherwise); what is cached for
    /// their scope was authorized when it was stored.
    pub fn cached_for(
        &mut self,
        principal: &Principal,
        sql: &str,
        args_key: &str,
        now_ms: f64,
    ) -> Result<Option<&str>> {
        principal.require_service("running SQL through /query and /batch")?;
        let scope = principal.cache_scope();
        Ok(self.cached(sql, args_key, &scope, Some(&principal.sub), now_ms))
    }

    /// A cached result for `key` read at an index ≥ `min_replication_index`.
    pub fn cache_get(&mut self, key: &str, min_replication_index: Option<u64>, now_ms: f64) -> Option<&str> {
        self.cache.get(key, min_replication_index, now_ms)
    }

    /// Caches `value` under a plan's `cache_key`, with the plan's `reads` and the
    /// replication index the reply carried. Refused if a write to one of `reads`
    /// at a higher index was already recorded.
    pub fn cache_put(
        &mut self,
        key: String,
        reads: &[String],
        replication_index: Option<u64>,
        value: String,
        now_ms: f64,
    ) {
        self.observe(now_ms);
        self.cache.put(key, reads, replication_index, value, now_ms);
    }

    /// Half-open regions whose probe slot is free; their slots are now taken, so
    /// the worker should send each a probe (`select 1`) and report the outcome.
    pub fn probes_due(&mut self, now_ms: f64) -> Vec<usize> {
        self.observe(now_ms);
        let every = self.options.refresh_probe_ms;
        (0..self.health.len())
            .filter(|&i| {
                let h = &mut self.health[i];
                h.claim_probe(now_ms) || (every > 0.0 && h.claim_refresh(now_ms, every))
            })
            .collect()
    }

    /// Whether a write can be attempted now (the primary's breaker is not open).
    pub fn primary_available(&self, now_ms: f64) -> bool {
        self.health[self.primary].state(now_ms) != BreakerState::Open
    }

    /// Index of the primary in [`Router::regions`].
    pub fn primary(&self) -> usize {
        self.primary
    }

    pub fn regions(&self) -> &[RegionConfig] {
        &self.regions
    }

    pub fn options(&self) -> &RouterOptions {
        &self.options
    }

    pub fn region_status(&self, now_ms: f64) -> Vec<RegionStatus> {
        let primary_index = self.health[self.primary].replication_index;
        self.regions
            .iter()
            .zip(&self.health)
            .map(|(r, h)| h.status(&r.id, r.role, primary_index, now_ms))
            .collect()
    }

    pub fn stats(&self) -> RouterStats {
        let c = &self.counters;
        RouterStats {
            reads: c.reads,
            writes: c.writes,
            routed: self
                .regions
                .iter()
                .zip(&self.routed)
                .map(|(r, &n)| (r.id.clone(), n))
                .collect(),
            failovers: c.failovers,
            cache_hits: self.cache.hits,
            cache_misses: self.cache.misses,
            cache_entries: self.cache.len(),
            cache_bytes: self.cache.bytes,
            cache_evictions: self.cache.evictions,
            cache_expirations: self.cache.expirations,
            cache_invalidations: self.cache.invalidations,
            ryw_primary_reads: c.ryw_primary_reads,
            breaker_opens: c.breaker_opens,
            rejected: c.rejected,
            ryw_clients: self.floors.len(),
        }
    }

    fn observe(&mut self, now_ms: f64) {
        if now_ms > self.now_ms {
            self.now_ms = now_ms;
        }
    }
}

/// A cache key: who may see the result (`scope`), the SQL and the arguments, joined by
/// NUL (which none of them can contain unescaped in a way that makes two keys equal:
/// the scope has no NUL, and the SQL text ends where the argument key begins).
fn cache_key(out: &mut String, scope: &str, sql: &str, args_key: &str) {
    out.clear();
    out.reserve(scope.len() + sql.len() + args_key.len() + 2);
    out.push_str(scope);
    out.push('\u{0}');
    out.push_str(sql);
    out.push('\u{0}');
    out.push_str(args_key);
}
