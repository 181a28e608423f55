//! [`RouterOptions`] (the router's tuning) and [`Failure`] (what went wrong on the wire).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Router tuning. Every field has a default; from JSON (camelCase) any subset may be
/// given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RouterOptions {
    /// Weight of a new sample in the latency and error-rate EWMAs, in (0, 1].
    pub ewma_alpha: f64,
    /// Consecutive wire failures that open a region's breaker (≥ 1).
    pub breaker_failures: u32,
    /// How long a breaker stays open before a probe is allowed.
    pub breaker_cooldown_ms: f64,
    /// Lifetime of a cached read (0 disables the cache).
    pub cache_ttl_ms: f64,
    /// Cache bound in entries (0 disables the cache).
    pub cache_max_entries: usize,
    /// Cache bound in key + value bytes.
    pub cache_max_bytes: usize,
    /// How long a client's read-your-writes floor lasts after its write (0 disables).
    pub ryw_ttl_ms: f64,
    /// PRNG seed for the power-of-two choice.
    pub seed: u64,
    /// Half-life of a latency sample's weight in scoring (0: samples never age).
    pub latency_decay_ms: f64,
    /// Most clients with a read-your-writes floor tracked at once.
    pub ryw_max_clients: usize,
    /// A region with a closed breaker and no latency sample for this long is offered
    /// to `probes_due`, so a region that once looked slow is measured again instead of
    /// starving (0: never).
    pub refresh_probe_ms: f64,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            ewma_alpha: 0.3,
            breaker_failures: 3,
            breaker_cooldown_ms: 5000.0,
            cache_ttl_ms: 2000.0,
            cache_max_entries: 10_000,
            cache_max_bytes: 32 << 20,
            ryw_ttl_ms: 60_000.0,
            seed: 0x5EED_ED6E_5EED_ED6E,
            latency_decay_ms: 30_000.0,
            ryw_max_clients: 100_000,
            refresh_probe_ms: 5_000.0,
        }
    }
}

impl RouterOptions {
    /// Parses options from JSON; missing fields take their defaults.
    ///
    /// ```
    /// use edgesync::router::RouterOptions;
    /// let o = RouterOptions::from_json(r#"{"ewmaAlpha": 0.5, "cacheTtlMs": 0}"#).unwrap();
    /// assert_eq!(o.ewma_alpha, 0.5);
    /// assert_eq!(o.breaker_failures, 3);
    /// assert_eq!(RouterOptions::from_json(r#"{"ewmaAlpha": 0}"#).unwrap_err().code(), "CONFIG_ERROR");
    /// ```
    pub fn from_json(json: &str) -> Result<Self> {
        let bad = |e: serde_json::Error| Error::Config(format!("invalid router options: {e}"));
        let value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
        if !value.is_object() {
            return Err(Error::Config("router options must be a JSON object".into()));
        }
        let o: RouterOptions = serde_json::from_value(value).map_err(bad)?;
        o.validate()?;
        Ok(o)
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return bad(format!("ewmaAlpha must be in (0, 1], got {}", self.ewma_alpha));
        }
        if self.breaker_failures == 0 {
            return bad("breakerFailures must be at least 1".into());
        }
        for (name, v) in [
            ("breakerCooldownMs", self.breaker_cooldown_ms),
            ("cacheTtlMs", self.cache_ttl_ms),
            ("rywTtlMs", self.ryw_ttl_ms),
            ("latencyDecayMs", self.latency_decay_ms),
            ("refreshProbeMs", self.refresh_probe_ms),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a finite number ≥ 0, got {v}"));
            }
        }
        if self.ryw_max_clients == 0 {
            return bad("rywMaxClients must be at least 1".into());
        }
        Ok(())
    }
}

/// What went wrong on the wire. A SQL error is *not* a failure: the region answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Failure {
    /// No answer within the worker's deadline.
    Timeout,
    /// Connection refused, DNS, TLS or reset.
    Unreachable,
    /// HTTP 5xx (or another non-SQL server error).
    Server,
}

impl Failure {
    /// `"timeout"`, `"unreachable"` or `"server"` (for the JS binding).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "timeout" => Ok(Failure::Timeout),
            "unreachable" => Ok(Failure::Unreachable),
            "server" => Ok(Failure::Server),
            _ => Err(Error::InvalidArgument(format!(
                "failure must be \"timeout\", \"unreachable\" or \"server\", got {s:?}"
            ))),
        }
    }
}
