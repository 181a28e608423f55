//! What a replica reports about its syncing: `status()`, events, metrics and their
//! Prometheus text exposition.

use std::cell::RefCell;

use crate::remote::Value;

/// The outcome of the last push or pull.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub at_ms: u64,
    pub ok: bool,
    /// The error code when it failed.
    pub error: Option<String>,
}

/// A replica's sync state, as `status()` returns it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// Local writes not yet on the server.
    pub pending: u64,
    pub last_push: Option<Outcome>,
    pub last_pull: Option<Outcome>,
    /// Age of the oldest pending change (ms), 0 when nothing is pending.
    pub lag_ms: u64,
    /// Consecutive failed syncs (reset by a success).
    pub retries: u32,
    /// Whether the last attempt reached the server.
    pub online: bool,
    /// The last server log position applied.
    pub cursor: i64,
    /// Delay before the next background attempt (ms): the interval, or the backoff.
    pub next_sync_in_ms: u64,
    /// Write-through writes whose answer was lost and that are not settled yet (see
    /// `net/doubts.rs`): the next write-through call or sync settles them.
    pub in_doubt: u64,
    /// Changes set aside because the server cannot take them (`ROW_TOO_LARGE`; kept
    /// in `_es_rejected`).
    pub rejected: u64,
}

/// Something that happened while syncing.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `sync:completed`
    Completed {
        changes_pushed: u64,
        changes_applied: u64,
        duration_ms: f64,
    },
    /// `sync:error`
    Error {
        code: String,
        message: String,
        retryable: bool,
    },
    /// `conflict`: a custom column lost its compare-and-set and was resolved.
    Conflict {
        table: String,
        pk: String,
        column: String,
        local: Value,
        remote: Value,
        base: Option<Value>,
        resolved: Value,
    },
    /// `sync:refused`: the edge gateway refused a pushed record (its rules, or a record
    /// it cannot take). The record left the outbox and the row is back to the server's
    /// version (or gone, when the user may not read it).
    Refused {
        table: String,
        pk: String,
        op: String,
        code: String,
        reason: String,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Completed { .. } => "sync:completed",
            Event::Error { .. } => "sync:error",
            Event::Conflict { .. } => "conflict",
            Event::Refused { .. } => "sync:refused",
        }
    }

    /// The row written to the `_es_sync_log` table: event name and JSON details.
    pub fn log_line(&self) -> (&'static str, String) {
        let details = match self {
            Event::Completed {
                changes_pushed,
                changes_applied,
                duration_ms,
            } => {
                serde_json::json!({"changesPushed": changes_pushed, "changesApplied": changes_applied, "duration": duration_ms})
            }
            Event::Error { code, message, .. } => serde_json::json!({"code": code, "message": message}),
            Event::Conflict {
                table,
                pk,
                column,
                local,
                remote,
                base,
                resolved,
            } => {
                use super::record::encode_value as v;
                serde_json::json!({
                    "table": table, "key": pk, "column": column, "local": v(local), "remote": v(remote),
                    "base": base.as_ref().map(v), "resolved": v(resolved),
                })
            }
            Event::Refused {
                table,
                pk,
                op,
                code,
                reason,
            } => serde_json::json!({"table": table, "key": pk, "op": op, "code": code, "reason": reason}),
        };
        (self.name(), details.to_string())
    }
}

/// Counters and the recent sync durations.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub syncs: u64,
    pub failures: u64,
    pub changes_pushed: u64,
    pub changes_applied: u64,
    pub conflicts: u64,
    pub http_requests: u64,
    pub bytes_sent: u64,
    /// The last 1 024 successful sync durations (ms), for percentiles.
    pub durations_ms: Vec<f64>,
    pub duration_sum_ms: f64,
}

impl Metrics {
    pub fn success_rate(&self) -> f64 {
        if self.syncs == 0 {
            1.0
        } else {
            (self.syncs - self.failures) as f64 / self.syncs as f64
        }
    }

    /// The `q` quantile (0..=1) of recent durations, nearest rank.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.durations_ms.is_empty() {
            return 0.0;
        }
        let mut d = self.durations_ms.clone();
        crate::sort::sort_by(&mut d, f64::total_cmp);
        let rank = ((q * d.len() as f64).ceil() as usize).clamp(1, d.len());
        d[rank - 1]
    }

    /// Prometheus text exposition format 0.0.4 (written with
    /// [`crate::metrics::Exposition`]).
    pub fn prometheus(&self, status: &Status) -> String {
        use crate::metrics::Kind;
        let mut out = crate::metrics::Exposition::new();
        let ok = self.syncs.saturating_sub(self.failures);
        let secs = |ms: f64| fmt(ms / 1000.0);
        out.family("edgesync_syncs_total", Kind::Counter, "Sync attempts by outcome.");
        out.sample("edgesync_syncs_total", &[("outcome", "ok")], ok as f64);
        out.sample("edgesync_syncs_total", &[("outcome", "error")], self.failures as f64);
        out.family(
            "edgesync_sync_success_ratio",
            Kind::Gauge,
            "Successful syncs / all syncs.",
        );
        out.sample("edgesync_sync_success_ratio", &[], fmt(self.success_rate()));
        let name = "edgesync_sync_duration_seconds";
        out.family(name, Kind::Summary, "Duration of successful syncs.");
        for p in [0.5, 0.95, 0.99] {
            out.sample(name, &[("quantile", &p.to_string())], secs(self.quantile(p)));
        }
        out.sample("edgesync_sync_duration_seconds_sum", &[], secs(self.duration_sum_ms));
        out.sample("edgesync_sync_duration_seconds_count", &[], ok as f64);
        let single: [(&str, Kind, &str, f64); 9] = [
            (
                "edgesync_changes_pushed_total",
                Kind::Counter,
                "Change records pushed to the server.",
                self.changes_pushed as f64,
            ),
            (
                "edgesync_changes_applied_total",
                Kind::Counter,
                "Change records pulled and applied.",
                self.changes_applied as f64,
            ),
            (
                "edgesync_conflicts_total",
                Kind::Counter,
                "Custom-policy conflicts resolved.",
                self.conflicts as f64,
            ),
            (
                "edgesync_sync_http_requests_total",
                Kind::Counter,
                "HTTP requests made by sync.",
                self.http_requests as f64,
            ),
            (
                "edgesync_sync_bytes_sent_total",
                Kind::Counter,
                "Request body bytes sent by sync.",
                self.bytes_sent as f64,
            ),
            (
                "edgesync_pending_changes",
                Kind::Gauge,
                "Local changes not yet on the server.",
                status.pending as f64,
            ),
            (
                "edgesync_sync_lag_seconds",
                Kind::Gauge,
                "Age of the oldest pending change.",
                secs(status.lag_ms as f64),
            ),
            (
                "edgesync_sync_retries",
                Kind::Gauge,
                "Consecutive failed syncs.",
                status.retries as f64,
            ),
            (
                "edgesync_online",
                Kind::Gauge,
                "1 when the last sync reached the server.",
                status.online as u8 as f64,
            ),
        ];
        for (name, kind, help, v) in single {
            out.family(name, kind, help);
            out.sample(name, &[], v);
        }
        out.finish()
    }
}

/// Non-finite values are exposed as `NaN` (as before the exposition writer).
fn fmt(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        f64::NAN
    }
}

/// Receives every [`Event`].
pub type Listener = Box<dyn Fn(&Event)>;

/// Status, metrics and the event listener of one replica.
#[derive(Default)]
pub struct Monitor {
    pub(crate) status: RefCell<Status>,
    pub(crate) metrics: RefCell<Metrics>,
    /// Shared, so that a listener may replace or remove itself (a JS listener calling
    /// `close()`) while it runs.
    listener: RefCell<Option<std::rc::Rc<Listener>>>,
    /// Changes set aside as too large since the sync in progress began: it reports
    /// the first once everything else is done.
    pub(crate) rejected: RefCell<Vec<crate::error::Error>>,
}

impl Monitor {
    /// Sets the one listener (the JS binding fans out to `on(event, fn)` handlers).
    pub fn set_listener(&self, f: Option<Listener>) {
        *self.listener.borrow_mut() = f.map(std::rc::Rc::new);
    }

    pub(crate) fn emit(&self, e: &Event) {
        // No borrow is held while the listener runs (it may call set_listener).
        let l = self.listener.borrow().clone();
        if let Some(l) = l {
            l(e);
        }
    }

    pub(crate) fn record_sync(&self, ok: bool, duration_ms: f64) {
        let mut m = self.metrics.borrow_mut();
        m.syncs += 1;
        if ok {
            if m.durations_ms.len() == 1024 {
                m.durations_ms.remove(0);
            }
            m.durations_ms.push(duration_ms);
            m.duration_sum_ms += duration_ms;
        } else {
            m.failures += 1;
        }
    }
}

/// Exponential backoff with jitter: `base · 2^retries`, capped, then scaled by a
/// random factor in [0.5, 1) so that replicas that failed together do not retry in
/// lockstep.
///
/// ```
/// use edgesync::sync::backoff_ms;
/// assert_eq!(backoff_ms(0, 1_000, 60_000, 0.0), 500);
/// assert_eq!(backoff_ms(3, 1_000, 60_000, 0.0), 4_000);
/// assert_eq!(backoff_ms(30, 1_000, 60_000, 0.999), 59_970);
/// ```
pub fn backoff_ms(retries: u32, base_ms: u64, max_ms: u64, random01: f64) -> u64 {
    let raw = base_ms.saturating_mul(1u64 << retries.min(32)).min(max_ms);
    (raw as f64 * (0.5 + random01.clamp(0.0, 1.0) * 0.5)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_exposition() {
        let mut m = Metrics::default();
        for d in 1..=100 {
            m.durations_ms.push(d as f64);
            m.duration_sum_ms += d as f64;
        }
        m.syncs = 101;
        m.failures = 1;
        assert_eq!(m.quantile(0.5), 50.0);
        assert_eq!(m.quantile(0.99), 99.0);
        let text = m.prometheus(&Status::default());
        assert!(text.contains("edgesync_sync_duration_seconds{quantile=\"0.99\"} 0.099"));
        assert!(text.contains("edgesync_syncs_total{outcome=\"error\"} 1"));
        assert!(text.contains("edgesync_sync_duration_seconds_count 100"));
    }
}
