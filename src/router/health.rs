//! Per-region health: latency and error-rate EWMAs, in-flight count, replication
//! progress, and a circuit breaker.
//!
//! The breaker exists so that a dead region costs one timeout per cooldown instead
//! of one per request: after `breaker_failures` consecutive wire failures it opens,
//! reads stop going there, and after the cooldown exactly one request (a real read
//! or an explicit probe) is let through to test it.
//!
//! Cooldown policy: the first open uses `breaker_cooldown_ms`; each failed probe
//! doubles the cooldown, capped at [`MAX_COOLDOWN_FACTOR`] × the base, so a region
//! that stays down is probed less and less often; a success resets it. A probe that
//! is never reported (the isolate died mid-request) is considered lost after
//! max(cooldown, [`PROBE_LEASE_MIN_MS`]) and the slot frees again.
//!
//! All times are caller-supplied milliseconds (`now_ms`): no clock is read here.

use serde::Serialize;

use super::region::Role;

/// Cap on cooldown doubling, as a multiple of the configured cooldown.
pub const MAX_COOLDOWN_FACTOR: f64 = 8.0;
/// Minimum time a claimed half-open probe slot stays claimed without a report.
pub const PROBE_LEASE_MIN_MS: f64 = 10_000.0;

/// A region's circuit-breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BreakerState {
    /// Healthy: traffic flows.
    Closed,
    /// Failing: no traffic until the cooldown ends.
    Open,
    /// Cooldown over: one probe request decides between Closed and Open.
    HalfOpen,
}

#[derive(Debug, Clone)]
pub(crate) struct Health {
    pub ewma_latency_ms: Option<f64>,
    pub last_sample_ms: f64,
    pub error_rate: f64,
    pub inflight: u32,
    pub replication_index: Option<u64>,
    pub requests: u64,
    pub failures: u64,
    consecutive_failures: u32,
    open: bool,
    open_until_ms: f64,
    cooldown_ms: f64,
    probe_claimed_at: Option<f64>,
    /// When a latency-refresh probe was last handed out.
    refresh_claimed_ms: f64,
}

impl Health {
    pub fn new() -> Self {
        Health {
            ewma_latency_ms: None,
            last_sample_ms: 0.0,
            error_rate: 0.0,
            inflight: 0,
            replication_index: None,
            requests: 0,
            failures: 0,
            consecutive_failures: 0,
            open: false,
            open_until_ms: 0.0,
            cooldown_ms: 0.0,
            probe_claimed_at: None,
            refresh_claimed_ms: f64::NEG_INFINITY,
        }
    }

    /// A closed region with no sample (and no refresh handed out) for `every` ms:
    /// claims a refresh probe. Keeps latency estimates current for regions the
    /// scoring would otherwise never pick again.
    pub fn claim_refresh(&mut self, now_ms: f64, every: f64) -> bool {
        let last = self.last_sample_ms.max(self.refresh_claimed_ms);
        if self.state(now_ms) == BreakerState::Closed && now_ms - last >= every {
            self.refresh_claimed_ms = now_ms;
            return true;
        }
        false
    }

    pub fn state(&self, now_ms: f64) -> BreakerState {
        if !self.open {
            BreakerState::Closed
        } else if now_ms < self.open_until_ms {
            BreakerState::Open
        } else {
            BreakerState::HalfOpen
        }
    }

    /// Half-open with nobody holding the probe slot (or the holder's lease lapsed).
    pub fn probe_free(&self, now_ms: f64) -> bool {
        self.state(now_ms) == BreakerState::HalfOpen
            && self
                .probe_claimed_at
                .is_none_or(|at| now_ms - at >= self.cooldown_ms.max(PROBE_LEASE_MIN_MS))
    }

    /// May take a request now: closed, or half-open with the probe slot free.
    pub fn usable(&self, now_ms: f64) -> bool {
        match self.state(now_ms) {
            BreakerState::Closed => true,
            BreakerState::HalfOpen => self.probe_free(now_ms),
            BreakerState::Open => false,
        }
    }

    /// Takes the half-open probe slot if it is free; true if taken.
    pub fn claim_probe(&mut self, now_ms: f64) -> bool {
        if self.probe_free(now_ms) {
            self.probe_claimed_at = Some(now_ms);
            true
        } else {
            false
        }
    }

    pub fn note_index(&mut self, index: Option<u64>) {
        if let Some(i) = index {
            self.replication_index = Some(self.replication_index.map_or(i, |old| old.max(i)));
        }
    }

    /// Latency estimate for scoring. Samples age: the estimate halves every
    /// `decay_ms` without a fresh sample, so a region penalised by a past spike is
    /// eventually retried instead of starved forever (0 disables ageing).
    pub fn expected_latency(&self, now_ms: f64, decay_ms: f64) -> Option<f64> {
        let ewma = self.ewma_latency_ms?;
        if decay_ms > 0.0 {
            let age = (now_ms - self.last_sample_ms).max(0.0);
            Some(ewma * 0.5f64.powf(age / decay_ms))
        } else {
            Some(ewma)
        }
    }

    pub fn success(&mut self, latency_ms: f64, index: Option<u64>, alpha: f64, now_ms: f64) {
        self.inflight = self.inflight.saturating_sub(1);
        self.requests += 1;
        if latency_ms.is_finite() && latency_ms >= 0.0 {
            self.ewma_latency_ms = Some(match self.ewma_latency_ms {
                None => latency_ms,
                Some(old) => alpha * latency_ms + (1.0 - alpha) * old,
            });
            self.last_sample_ms = now_ms;
        }
        self.error_rate *= 1.0 - alpha;
        self.note_index(index);
        // Any answer proves the region is up, whatever the breaker thought.
        self.consecutive_failures = 0;
        self.open = false;
        self.probe_claimed_at = None;
    }

    /// Records a wire failure; true if this opened (or re-opened) the breaker.
    pub fn failure(&mut self, alpha: f64, threshold: u32, base_cooldown_ms: f64, now_ms: f64) -> bool {
        self.inflight = self.inflight.saturating_sub(1);
        self.requests += 1;
        self.failures += 1;
        self.error_rate = alpha + (1.0 - alpha) * self.error_rate;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state(now_ms) {
            BreakerState::Closed if self.consecutive_failures >= threshold => {
                self.trip(base_cooldown_ms, now_ms);
                true
            }
            BreakerState::HalfOpen => {
                let doubled = (self.cooldown_ms * 2.0).min(base_cooldown_ms * MAX_COOLDOWN_FACTOR);
                self.trip(doubled.max(base_cooldown_ms), now_ms);
                true
            }
            _ => false,
        }
    }

    fn trip(&mut self, cooldown_ms: f64, now_ms: f64) {
        self.open = true;
        self.cooldown_ms = cooldown_ms;
        self.open_until_ms = now_ms + cooldown_ms;
        self.probe_claimed_at = None;
    }
}

/// A region's health as reported by [`super::Router::region_status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionStatus {
    pub id: String,
    pub role: Role,
    pub state: BreakerState,
    /// Not open: closed, or half-open (a probe may go through).
    pub healthy: bool,
    /// EWMA of successful request latency; `None` before the first sample.
    pub ewma_latency_ms: Option<f64>,
    /// EWMA of failure (1) vs success (0) outcomes.
    pub error_rate: f64,
    pub inflight: u32,
    /// Highest replication index this region has reported.
    pub replication_index: Option<u64>,
    /// How many frames behind the primary (both indices known; `None` for the primary).
    pub lag_frames: Option<u64>,
    /// Outcomes reported (successes + failures).
    pub requests: u64,
    pub failures: u64,
    /// When an open breaker turns half-open (ms, caller's clock); `None` unless open.
    pub retry_at_ms: Option<f64>,
}

impl Health {
    pub fn status(&self, id: &str, role: Role, primary_index: Option<u64>, now_ms: f64) -> RegionStatus {
        let state = self.state(now_ms);
        let lag_frames = match (role, primary_index, self.replication_index) {
            (Role::Replica, Some(p), Some(r)) => Some(p.saturating_sub(r)),
            _ => None,
        };
        RegionStatus {
            id: id.to_owned(),
            role,
            state,
            healthy: state != BreakerState::Open,
            ewma_latency_ms: self.ewma_latency_ms,
            error_rate: self.error_rate,
            inflight: self.inflight,
            replication_index: self.replication_index,
            lag_frames,
            requests: self.requests,
            failures: self.failures,
            retry_at_ms: (state == BreakerState::Open).then_some(self.open_until_ms),
        }
    }
}
