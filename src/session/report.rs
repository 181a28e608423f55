//! Session analytics as Prometheus series (`edgesync_sessions_*`), for the worker's
//! `GET /metrics`.

use crate::metrics::{Exposition, Kind};

use super::Sessions;

impl Sessions {
    /// Writes the analytics counters and the cache gauges.
    ///
    /// ```
    /// use edgesync::metrics::Exposition;
    /// use edgesync::session::{KeyRing, SessionOptions, Sessions};
    /// let ring = KeyRing::parse("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    /// let mut s = Sessions::new(ring, SessionOptions::default(), [7; 16]);
    /// s.create(&Sessions::new_id([1; 24]), "alice", "{}", "fra", 0.0).unwrap();
    /// let mut out = Exposition::new();
    /// s.export_metrics(&mut out);
    /// assert!(out.finish().contains("edgesync_sessions_created_total 1"));
    /// ```
    pub fn export_metrics(&self, out: &mut Exposition) {
        let a = self.analytics();
        let counters: [(&str, &str, u64); 17] = [
            ("created", "Sessions created.", a.created),
            ("gets", "Session lookups in the isolate's cache.", a.gets),
            ("cache_hits", "Lookups answered from the cache.", a.hits),
            ("cache_misses", "Lookups that went to libSQL.", a.misses),
            ("loads", "Sessions loaded from libSQL.", a.loads),
            (
                "expired",
                "Sessions found past their idle or absolute lifetime.",
                a.expired,
            ),
            ("destroyed", "Sessions destroyed.", a.destroyed),
            ("updates", "Session updates.", a.updates),
            (
                "migrations",
                "Home-region changes (a session accessed from another region).",
                a.migrations,
            ),
            ("touches", "Sliding-expiry write-backs.", a.touches),
            (
                "gc_removed",
                "Expired sessions removed from the cache by garbage collection.",
                a.gc_removed,
            ),
            (
                "lru_evicted",
                "Sessions evicted from the cache by its size bound.",
                a.lru_evicted,
            ),
            (
                "tampered",
                "Stored sessions that failed authentication, disagreed with their row or were replayed (never returned).",
                a.tampered,
            ),
            (
                "key_unknown",
                "Stored sessions sealed under a key id the worker does not have.",
                a.key_unknown,
            ),
            ("conflicts", "Updates that lost to a concurrent update.", a.conflicts),
            (
                "validations",
                "Cached sessions confirmed against the session ledger before use.",
                a.validations,
            ),
            (
                "stale",
                "Cached sessions found updated or destroyed by another isolate.",
                a.stale,
            ),
        ];
        for (name, help, v) in counters {
            let name = format!("edgesync_sessions_{name}_total");
            out.family(&name, Kind::Counter, help);
            out.sample(&name, &[], v as f64);
        }
        out.family(
            "edgesync_sessions_cached",
            Kind::Gauge,
            "Live sessions in the isolate's cache.",
        );
        out.sample("edgesync_sessions_cached", &[], a.live_cached as f64);
        out.family(
            "edgesync_sessions_cache_hit_ratio",
            Kind::Gauge,
            "Cache hits / lookups.",
        );
        out.sample("edgesync_sessions_cache_hit_ratio", &[], a.cache_hit_rate);
    }
}
