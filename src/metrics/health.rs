//! Cluster health from per-region signals (circuit breaker, latency, error rate,
//! replication lag), for a `/health` endpoint and alerting.
//!
//! A region is *unhealthy* when its breaker is open or its error rate is above the
//! limit (it cannot be relied on to serve); *degraded* when it serves but slowly or
//! behind (latency or lag above the limit) — it still counts as healthy. The
//! cluster is unhealthy when the primary is unhealthy (writes fail) or too few
//! regions are healthy; degraded when any region is not plainly healthy.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Limits; every field optional in JSON (camelCase), unknown fields rejected.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct HealthThresholds {
    /// Default 250 ms.
    pub max_latency_ms: f64,
    /// Fraction of failed requests, default 0.2.
    pub max_error_rate: f64,
    /// Replication lag in frames, default 1000.
    pub max_lag_frames: u64,
    /// Healthy regions / all regions below this → unhealthy. Default 0.5.
    pub min_healthy_fraction: f64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            max_latency_ms: 250.0,
            max_error_rate: 0.2,
            max_lag_frames: 1000,
            min_healthy_fraction: 0.5,
        }
    }
}

impl HealthThresholds {
    /// Parses and validates (`CONFIG_ERROR` on bad JSON or ranges).
    pub fn from_json(json: &str) -> Result<Self> {
        if !json.trim_start().starts_with('{') {
            return Err(Error::Config("health thresholds must be a JSON object".into()));
        }
        let t: HealthThresholds =
            serde_json::from_str(json).map_err(|e| Error::Config(format!("health thresholds: {e}")))?;
        if !(t.max_latency_ms.is_finite() && t.max_latency_ms >= 0.0) {
            return Err(Error::Config("maxLatencyMs must be a non-negative number".into()));
        }
        if !(t.max_error_rate.is_finite() && t.max_error_rate >= 0.0) {
            return Err(Error::Config("maxErrorRate must be a non-negative number".into()));
        }
        if !(0.0..=1.0).contains(&t.min_healthy_fraction) {
            return Err(Error::Config("minHealthyFraction must be between 0 and 1".into()));
        }
        Ok(t)
    }
}

/// What the router knows about one region.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionHealthInput {
    pub id: String,
    #[serde(default)]
    pub primary: bool,
    #[serde(default)]
    pub breaker_open: bool,
    /// Recent latency (e.g. an EWMA or p95); `None` when not measured yet.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// Fraction of recent requests that failed, 0..=1.
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default)]
    pub lag_frames: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionHealth {
    pub id: String,
    pub primary: bool,
    pub status: HealthStatus,
    pub latency_ms: Option<f64>,
    pub error_rate: f64,
    pub lag_frames: Option<u64>,
    /// Why the region is not healthy, e.g. `"latency 300 ms > 250 ms"`.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    pub status: HealthStatus,
    /// Regions that are healthy or degraded.
    pub healthy: usize,
    pub total: usize,
    /// Every primary region is healthy or degraded (false if none is marked).
    pub primary_healthy: bool,
    pub regions: Vec<RegionHealth>,
}

fn region(r: &RegionHealthInput, t: &HealthThresholds) -> RegionHealth {
    let mut reasons = Vec::new();
    let mut status = HealthStatus::Healthy;
    if r.breaker_open {
        reasons.push("circuit breaker open".to_owned());
        status = HealthStatus::Unhealthy;
    }
    if r.error_rate.is_nan() || r.error_rate > t.max_error_rate {
        reasons.push(format!("error rate {} > {}", r.error_rate, t.max_error_rate));
        status = HealthStatus::Unhealthy;
    }
    let mut degrade = |reason: String| {
        reasons.push(reason);
        if status == HealthStatus::Healthy {
            status = HealthStatus::Degraded;
        }
    };
    if let Some(l) = r.latency_ms {
        if l.is_nan() || l > t.max_latency_ms {
            degrade(format!("latency {l} ms > {} ms", t.max_latency_ms));
        }
    }
    if let Some(lag) = r.lag_frames {
        if lag > t.max_lag_frames {
            degrade(format!("lag {lag} frames > {} frames", t.max_lag_frames));
        }
    }
    RegionHealth {
        id: r.id.clone(),
        primary: r.primary,
        status,
        latency_ms: r.latency_ms,
        error_rate: r.error_rate,
        lag_frames: r.lag_frames,
        reasons,
    }
}

/// Classifies every region, then the cluster. No regions → unhealthy.
///
/// ```
/// use edgesync::metrics::{evaluate, HealthStatus, HealthThresholds, RegionHealthInput};
/// let r = |id: &str, primary, latency| RegionHealthInput {
///     id: id.into(), primary, breaker_open: false, latency_ms: Some(latency),
///     error_rate: 0.0, lag_frames: None,
/// };
/// let h = evaluate(&[r("iad", true, 20.0), r("syd", false, 300.0)], &HealthThresholds::default());
/// assert_eq!(h.status, HealthStatus::Degraded);
/// assert_eq!(h.regions[1].reasons, ["latency 300 ms > 250 ms"]);
/// ```
pub fn evaluate(regions: &[RegionHealthInput], t: &HealthThresholds) -> ClusterHealth {
    let regions: Vec<RegionHealth> = regions.iter().map(|r| region(r, t)).collect();
    let total = regions.len();
    let healthy = regions.iter().filter(|r| r.status != HealthStatus::Unhealthy).count();
    let mut primaries = regions.iter().filter(|r| r.primary).peekable();
    let primary_healthy = primaries.peek().is_some() && primaries.all(|r| r.status != HealthStatus::Unhealthy);
    let status = if total == 0 || !primary_healthy || (healthy as f64) < t.min_healthy_fraction * total as f64 {
        HealthStatus::Unhealthy
    } else if regions.iter().any(|r| r.status != HealthStatus::Healthy) {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    ClusterHealth {
        status,
        healthy,
        total,
        primary_healthy,
        regions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::*;

    fn input(id: &str, primary: bool) -> RegionHealthInput {
        RegionHealthInput {
            id: id.into(),
            primary,
            breaker_open: false,
            latency_ms: Some(10.0),
            error_rate: 0.0,
            lag_frames: Some(0),
        }
    }

    #[test]
    fn region_table() {
        let t = HealthThresholds::default();
        let cases: Vec<(RegionHealthInput, HealthStatus, Vec<&str>)> = vec![
            (input("a", false), Healthy, vec![]),
            (
                RegionHealthInput {
                    breaker_open: true,
                    ..input("a", false)
                },
                Unhealthy,
                vec!["circuit breaker open"],
            ),
            (
                RegionHealthInput {
                    error_rate: 0.35,
                    ..input("a", false)
                },
                Unhealthy,
                vec!["error rate 0.35 > 0.2"],
            ),
            (
                RegionHealthInput {
                    error_rate: 0.2,
                    ..input("a", false)
                },
                Healthy,
                vec![],
            ),
            (
                RegionHealthInput {
                    error_rate: f64::NAN,
                    ..input("a", false)
                },
                Unhealthy,
                vec!["error rate NaN > 0.2"],
            ),
            (
                RegionHealthInput {
                    latency_ms: Some(300.0),
                    ..input("a", false)
                },
                Degraded,
                vec!["latency 300 ms > 250 ms"],
            ),
            (
                RegionHealthInput {
                    latency_ms: None,
                    lag_frames: None,
                    ..input("a", false)
                },
                Healthy,
                vec![],
            ),
            (
                RegionHealthInput {
                    lag_frames: Some(1001),
                    ..input("a", false)
                },
                Degraded,
                vec!["lag 1001 frames > 1000 frames"],
            ),
            (
                RegionHealthInput {
                    breaker_open: true,
                    latency_ms: Some(251.5),
                    ..input("a", false)
                },
                Unhealthy,
                vec!["circuit breaker open", "latency 251.5 ms > 250 ms"],
            ),
        ];
        for (i, (r, status, reasons)) in cases.into_iter().enumerate() {
            let h = region(&r, &t);
            assert_eq!(h.status, status, "case {i}");
            assert_eq!(h.reasons, reasons, "case {i}");
        }
    }

    #[test]
    fn cluster_table() {
        let t = HealthThresholds::default();
        let down = |id: &str, p| RegionHealthInput {
            breaker_open: true,
            ..input(id, p)
        };
        let slow = |id: &str, p| RegionHealthInput {
            latency_ms: Some(900.0),
            ..input(id, p)
        };
        let cases = [
            (vec![input("p", true), input("a", false)], Healthy, 2, true),
            (vec![input("p", true), slow("a", false)], Degraded, 2, true),
            (vec![slow("p", true), input("a", false)], Degraded, 2, true),
            (vec![input("p", true), down("a", false)], Degraded, 1, true),
            (vec![down("p", true), input("a", false)], Unhealthy, 1, false),
            (
                vec![input("p", true), down("a", false), down("b", false)],
                Unhealthy,
                1,
                true,
            ),
            (vec![input("a", false)], Unhealthy, 1, false),
            (vec![], Unhealthy, 0, false),
        ];
        for (i, (regions, status, healthy, primary)) in cases.into_iter().enumerate() {
            let h = evaluate(&regions, &t);
            assert_eq!(
                (h.status, h.healthy, h.primary_healthy),
                (status, healthy, primary),
                "case {i}"
            );
            assert_eq!(h.total, regions.len());
        }
    }

    #[test]
    fn json() {
        let t = HealthThresholds::from_json(r#"{"maxLatencyMs": 100}"#).unwrap();
        assert_eq!(t.max_latency_ms, 100.0);
        assert_eq!(t.max_lag_frames, 1000);
        for bad in [
            "",
            "[]",
            r#"{"maxLatencyMs":-1}"#,
            r#"{"minHealthyFraction":2}"#,
            r#"{"x":1}"#,
        ] {
            assert_eq!(HealthThresholds::from_json(bad).unwrap_err().code(), "CONFIG_ERROR");
        }
        let r: Vec<RegionHealthInput> = serde_json::from_str(
            r#"[{"id":"iad","primary":true,"breakerOpen":false,"latencyMs":12,"errorRate":0.01,"lagFrames":3}]"#,
        )
        .unwrap();
        let h = evaluate(&r, &HealthThresholds::default());
        let j = serde_json::to_value(&h).unwrap();
        assert_eq!(j["status"], "healthy");
        assert_eq!(j["primaryHealthy"], true);
        assert_eq!(j["regions"][0]["latencyMs"], 12.0);
        assert_eq!(j["regions"][0]["lagFrames"], 3);
    }
}
