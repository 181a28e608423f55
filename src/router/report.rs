//! What the router knows, reported: cluster health against thresholds (`GET /health`)
//! and Prometheus series (`GET /metrics`). Kept apart from the routing decisions so
//! `mod.rs` stays about routing.

use crate::metrics::{evaluate, ClusterHealth, Exposition, HealthThresholds, Kind, RegionHealthInput};

use super::{BreakerState, RegionStatus, Role, Router};

impl Router {
    /// Cluster health from each region's breaker, latency EWMA, error rate and
    /// replication lag, judged by `thresholds`.
    ///
    /// ```
    /// use edgesync::metrics::{HealthStatus, HealthThresholds};
    /// use edgesync::router::{parse_regions, Router, RouterOptions};
    /// let regions = parse_regions(r#"[{"id":"p","url":"http://p","role":"primary"},
    ///                                 {"id":"r","url":"http://r","role":"replica"}]"#).unwrap();
    /// let mut router = Router::new(regions, RouterOptions::default()).unwrap();
    /// router.report_success(0, 4.0, Some(10), 0.0);
    /// router.report_success(1, 6.0, Some(10), 0.0);
    /// let health = router.health(&HealthThresholds::default(), 1.0);
    /// assert_eq!(health.status, HealthStatus::Healthy);
    /// assert_eq!((health.healthy, health.total), (2, 2));
    /// ```
    pub fn health(&self, thresholds: &HealthThresholds, now_ms: f64) -> ClusterHealth {
        let inputs: Vec<RegionHealthInput> = self
            .region_status(now_ms)
            .into_iter()
            .map(|s| RegionHealthInput {
                primary: s.role == Role::Primary,
                breaker_open: s.state == BreakerState::Open,
                latency_ms: s.ewma_latency_ms,
                error_rate: s.error_rate,
                lag_frames: s.lag_frames,
                id: s.id,
            })
            .collect();
        evaluate(&inputs, thresholds)
    }

    /// Router, cache and per-region series (`edgesync_router_*`).
    pub fn export_metrics(&self, out: &mut Exposition, now_ms: f64) {
        let s = self.stats();
        let counter = |out: &mut Exposition, name: &str, help: &str, v: u64| {
            out.family(name, Kind::Counter, help);
            out.sample(name, &[], v as f64);
        };
        let gauge = |out: &mut Exposition, name: &str, help: &str, v: f64| {
            out.family(name, Kind::Gauge, help);
            out.sample(name, &[], v);
        };
        out.family(
            "edgesync_router_statements_total",
            Kind::Counter,
            "Statements routed, by kind.",
        );
        out.sample("edgesync_router_statements_total", &[("kind", "read")], s.reads as f64);
        out.sample(
            "edgesync_router_statements_total",
            &[("kind", "write")],
            s.writes as f64,
        );
        counter(
            out,
            "edgesync_router_rejected_total",
            "Statements refused as unparseable.",
            s.rejected,
        );
        out.family(
            "edgesync_router_routed_total",
            Kind::Counter,
            "First-choice routings, by region.",
        );
        for (region, n) in &s.routed {
            out.sample("edgesync_router_routed_total", &[("region", region)], *n as f64);
        }
        counter(
            out,
            "edgesync_router_failovers_total",
            "Failed region attempts (the next region was tried or the request failed).",
            s.failovers,
        );
        counter(
            out,
            "edgesync_router_breaker_opens_total",
            "Times a region's circuit breaker opened.",
            s.breaker_opens,
        );
        counter(
            out,
            "edgesync_router_cache_hits_total",
            "Read cache hits.",
            s.cache_hits,
        );
        counter(
            out,
            "edgesync_router_cache_misses_total",
            "Read cache misses (cacheable reads).",
            s.cache_misses,
        );
        counter(
            out,
            "edgesync_router_cache_evictions_total",
            "Cache entries evicted by the entry or byte bound.",
            s.cache_evictions,
        );
        counter(
            out,
            "edgesync_router_cache_expirations_total",
            "Cache entries dropped at their TTL.",
            s.cache_expirations,
        );
        counter(
            out,
            "edgesync_router_cache_invalidations_total",
            "Cache entries dropped by writes to tables they read.",
            s.cache_invalidations,
        );
        gauge(
            out,
            "edgesync_router_cache_entries",
            "Entries in the read cache.",
            s.cache_entries as f64,
        );
        gauge(
            out,
            "edgesync_router_cache_bytes",
            "Bytes (keys and values) in the read cache.",
            s.cache_bytes as f64,
        );
        counter(
            out,
            "edgesync_router_ryw_primary_reads_total",
            "Reads sent to the primary because every replica was behind the client's last write.",
            s.ryw_primary_reads,
        );
        gauge(
            out,
            "edgesync_router_ryw_clients",
            "Clients with a read-your-writes floor.",
            s.ryw_clients as f64,
        );

        let regions = self.region_status(now_ms);
        let role = |r: Role| if r == Role::Primary { "primary" } else { "replica" };
        out.family(
            "edgesync_router_region_up",
            Kind::Gauge,
            "1 unless the region's circuit breaker is open.",
        );
        for r in &regions {
            out.sample(
                "edgesync_router_region_up",
                &[("region", &r.id), ("role", role(r.role))],
                r.healthy as u8 as f64,
            );
        }
        type Field = fn(&RegionStatus) -> Option<f64>;
        let per_region: [(&str, Kind, &str, Field); 7] = [
            (
                "edgesync_router_region_latency_ms",
                Kind::Gauge,
                "EWMA of successful request latency, ms.",
                |r| r.ewma_latency_ms,
            ),
            (
                "edgesync_router_region_error_rate",
                Kind::Gauge,
                "EWMA of failed outcomes (0..1).",
                |r| Some(r.error_rate),
            ),
            (
                "edgesync_router_region_inflight",
                Kind::Gauge,
                "Requests in flight to the region.",
                |r| Some(r.inflight as f64),
            ),
            (
                "edgesync_router_region_replication_index",
                Kind::Gauge,
                "Highest libSQL replication index (frame) the region reported.",
                |r| r.replication_index.map(|i| i as f64),
            ),
            (
                "edgesync_router_region_lag_frames",
                Kind::Gauge,
                "Replication (sync) lag: frames a replica is behind the primary.",
                |r| r.lag_frames.map(|l| l as f64),
            ),
            (
                "edgesync_router_region_requests_total",
                Kind::Counter,
                "Outcomes reported per region.",
                |r| Some(r.requests as f64),
            ),
            (
                "edgesync_router_region_failures_total",
                Kind::Counter,
                "Failed outcomes per region.",
                |r| Some(r.failures as f64),
            ),
        ];
        for (name, kind, help, field) in per_region {
            out.family(name, kind, help);
            for r in &regions {
                if let Some(v) = field(r) {
                    out.sample(name, &[("region", &r.id)], v);
                }
            }
        }
    }
}
