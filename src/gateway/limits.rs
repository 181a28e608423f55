//! Per-user limits of the gateway: request size, records per push, records per minute.
//!
//! The rate is a token bucket per user (`sub`): `recordsPerMinute` tokens, refilled
//! continuously; a push takes one token per record, or is refused with the time until
//! it would fit (`429` and `Retry-After`). The buckets live in the isolate that serves
//! the user's requests (sans-I/O here: time is an argument), so the figure holds per
//! isolate; the audit trail and the rules are the guarantees, the rate is a brake.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// `SYNC_LIMITS` (JSON, camelCase; every key optional).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body of any step, bytes (413 beyond). sqld refuses one value
    /// over 5,000,000 bytes, and a push is one value.
    pub max_body_bytes: usize,
    /// Most records in one push (413 beyond).
    pub max_records: usize,
    /// Records a user may push per minute (429 beyond).
    pub records_per_minute: u32,
    /// Largest pull page and bootstrap page.
    pub max_page: usize,
    /// How far ahead of the Worker's clock a record's time may be, ms.
    pub max_drift_ms: u64,
    /// How many users' buckets an isolate keeps (the idlest are dropped beyond).
    pub max_users: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4_000_000,
            max_records: 5_000,
            records_per_minute: 60_000,
            max_page: 5_000,
            max_drift_ms: 60_000,
            max_users: 10_000,
        }
    }
}

impl Limits {
    pub fn parse(json: Option<&str>) -> Result<Limits> {
        let l: Limits = match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => Limits::default(),
            Some(j) => serde_json::from_str(j).map_err(|e| Error::Config(format!("SYNC_LIMITS: {e}")))?,
        };
        if l.max_body_bytes == 0 || l.max_records == 0 || l.records_per_minute == 0 || l.max_page == 0 {
            return Err(Error::Config("SYNC_LIMITS: limits must be positive".into()));
        }
        if l.max_records as u64 > l.records_per_minute as u64 {
            return Err(Error::Config(
                "SYNC_LIMITS: maxRecords cannot exceed recordsPerMinute (such a push could never pass)".into(),
            ));
        }
        Ok(l)
    }
}

struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Token buckets per user.
pub struct RateLimiter {
    per_minute: f64,
    max_users: usize,
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new(limits: &Limits) -> Self {
        RateLimiter {
            per_minute: limits.records_per_minute as f64,
            max_users: limits.max_users.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes `n` tokens from `sub`'s bucket, or says in how many ms they will be there.
    pub fn take(&mut self, sub: &str, n: usize, now_ms: u64) -> std::result::Result<(), u64> {
        if !self.buckets.contains_key(sub) && self.buckets.len() >= self.max_users {
            // Forget the fullest bucket: it is the one closest to its start anyway.
            if let Some(k) = self
                .buckets
                .iter()
                .max_by(|a, b| a.1.tokens.total_cmp(&b.1.tokens))
                .map(|(k, _)| k.clone())
            {
                self.buckets.remove(&k);
            }
        }
        let cap = self.per_minute;
        let b = self.buckets.entry(sub.to_string()).or_insert(Bucket {
            tokens: cap,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64;
        b.tokens = (b.tokens + elapsed * cap / 60_000.0).min(cap);
        b.at_ms = b.at_ms.max(now_ms);
        let want = n as f64;
        if b.tokens >= want {
            b.tokens -= want;
            Ok(())
        } else {
            Err((((want - b.tokens) * 60_000.0 / cap).ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_over_a_minute() {
        let limits = Limits {
            records_per_minute: 600,
            ..Limits::default()
        };
        let mut r = RateLimiter::new(&limits);
        assert!(r.take("a", 600, 0).is_ok());
        let wait = r.take("a", 10, 0).unwrap_err();
        assert_eq!(wait, 1_000);
        assert!(r.take("b", 600, 0).is_ok(), "buckets are per user");
        assert!(r.take("a", 10, 1_000).is_ok());
        assert!(r.take("a", 600, 1_000).is_err());
        assert!(r.take("a", 600, 61_000).is_ok());
    }

    #[test]
    fn parses_limits() {
        assert_eq!(Limits::parse(None).unwrap(), Limits::default());
        let l = Limits::parse(Some(r#"{"recordsPerMinute": 100, "maxRecords": 50}"#)).unwrap();
        assert_eq!(l.records_per_minute, 100);
        for bad in [
            r#"{"nope": 1}"#,
            r#"{"maxRecords": 0}"#,
            r#"{"recordsPerMinute": 10}"#,
            "[",
        ] {
            assert_eq!(Limits::parse(Some(bad)).unwrap_err().code(), "CONFIG_ERROR", "{bad}");
        }
    }

    #[test]
    fn keeps_a_bounded_number_of_users() {
        let limits = Limits {
            max_users: 2,
            ..Limits::default()
        };
        let mut r = RateLimiter::new(&limits);
        for u in ["a", "b", "c", "d"] {
            r.take(u, 1, 0).unwrap();
        }
        assert!(r.buckets.len() <= 2);
    }
}
