//! Session options and the plain data types that cross into the worker.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Value};

/// How sessions live. Every field is optional in JSON (camelCase); unknown fields
/// are rejected so that a typo does not silently fall back to a default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SessionOptions {
    /// Sliding idle lifetime: each use pushes expiry to `now + idle_ttl_ms`
    /// (never past the absolute expiry). Default 30 minutes.
    pub idle_ttl_ms: f64,
    /// Lifetime from creation, never extended. Default 24 hours.
    pub absolute_ttl_ms: f64,
    /// Session data longer than this many bytes is deflated before sealing (when
    /// that makes it smaller). Default 1024.
    pub compress_threshold: usize,
    /// Larger session data is refused with `INVALID_ARGUMENT`. Default 64 KiB, at
    /// most 1 MiB − 64.
    pub max_data_bytes: usize,
    /// Sessions kept opened in the isolate (least recently used evicted). Default
    /// 200 000.
    pub cache_max_entries: usize,
    /// A hit writes the slid expiry back only when it moved more than this fraction
    /// of `idle_ttl_ms` past the value last written: 0.5 means at most about two
    /// writes per idle period per session. 0 writes on every hit. Default 0.5.
    pub touch_after_fraction: f64,
    /// A cached session is confirmed against the session ledger on the primary (one
    /// small read) before it is served, so a logout or an update in any isolate takes
    /// effect everywhere at once. A copy confirmed less than this many ms ago is
    /// served without that read: a larger value trades that guarantee for latency
    /// (a destroyed session may then be served here for up to this long). Default 0.
    pub revalidate_ms: f64,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            idle_ttl_ms: 30.0 * 60_000.0,
            absolute_ttl_ms: 24.0 * 3_600_000.0,
            compress_threshold: 1024,
            max_data_bytes: 64 * 1024,
            cache_max_entries: 200_000,
            touch_after_fraction: 0.5,
            revalidate_ms: 0.0,
        }
    }
}

/// Upper bound for `max_data_bytes`: the sealed plaintext (data + a 24-byte
/// prefix) must stay under the envelope's inflate cap.
pub const MAX_DATA_BYTES_LIMIT: usize = super::envelope::MAX_PLAINTEXT - 64;

impl SessionOptions {
    /// Parses and validates options from JSON (`"{}"` gives the defaults).
    ///
    /// ```
    /// use edgesync::session::SessionOptions;
    /// let o = SessionOptions::from_json(r#"{"idleTtlMs": 60000}"#).unwrap();
    /// assert_eq!(o.idle_ttl_ms, 60000.0);
    /// assert_eq!(o.compress_threshold, 1024);
    /// assert_eq!(SessionOptions::from_json(r#"{"idleTTL": 1}"#).unwrap_err().code(), "CONFIG_ERROR");
    /// ```
    pub fn from_json(json: &str) -> Result<Self> {
        if !json.trim_start().starts_with('{') {
            return Err(Error::Config("session options must be a JSON object".into()));
        }
        let o: SessionOptions =
            serde_json::from_str(json).map_err(|e| Error::Config(format!("session options: {e}")))?;
        o.validate()?;
        Ok(o)
    }

    /// Checks ranges: TTLs finite and positive, `touch_after_fraction` in [0, 1],
    /// `max_data_bytes` in 1..=[`MAX_DATA_BYTES_LIMIT`], `cache_max_entries` in
    /// 1..=2^32−2.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("session options: {m}")));
        if !(self.idle_ttl_ms.is_finite() && self.idle_ttl_ms > 0.0) {
            return bad("idleTtlMs must be a positive number of milliseconds");
        }
        if !(self.absolute_ttl_ms.is_finite() && self.absolute_ttl_ms > 0.0) {
            return bad("absoluteTtlMs must be a positive number of milliseconds");
        }
        if !(0.0..=1.0).contains(&self.touch_after_fraction) {
            return bad("touchAfterFraction must be between 0 and 1");
        }
        if !(self.revalidate_ms.is_finite() && self.revalidate_ms >= 0.0) {
            return bad("revalidateMs must be a finite number of milliseconds ≥ 0");
        }
        if self.max_data_bytes == 0 || self.max_data_bytes > MAX_DATA_BYTES_LIMIT {
            return bad(&format!("maxDataBytes must be between 1 and {MAX_DATA_BYTES_LIMIT}"));
        }
        if self.cache_max_entries == 0 || self.cache_max_entries > u32::MAX as usize - 1 {
            return bad("cacheMaxEntries must be between 1 and 4294967294");
        }
        Ok(())
    }
}

/// A session as the application sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    /// The subject (`sub`) the session belongs to: only it, or a service token, may
    /// read, change or end it.
    pub owner: String,
    /// The JSON text exactly as given to `create`/`update`.
    pub data: String,
    /// The region the session lives in (where it was last used).
    pub home: String,
    pub created_ms: f64,
    /// The next idle expiry.
    pub expires_ms: f64,
    /// The absolute expiry (never extended).
    pub absolute_ms: f64,
    /// 1 at creation, +1 per update.
    pub version: u64,
}

/// One parameterized statement for the worker to run. Values are only ever bound
/// as arguments, never formatted into the SQL text.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlWrite {
    pub sql: &'static str,
    pub args: Vec<Value>,
}

/// The result of [`super::Sessions::get_cached`].
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Cached and live. `write` is a throttled touch and/or home-region change
    /// that the worker should run (failure to run it is harmless: the next touch
    /// catches up).
    Hit {
        session: SessionView,
        write: Option<SqlWrite>,
        /// Confirm the copy first: run [`super::Sessions::VALIDATE`] on the primary
        /// and pass the answer to [`super::Sessions::validated`]; serve the session
        /// (and run `write`) only if that says [`Validity::Current`].
        validate: bool,
    },
    /// Not cached: run [`super::Sessions::SELECT`] and pass the row to `load`.
    Miss,
    /// The cached copy has expired and was evicted. Run `write` (a *conditional*
    /// DELETE); if it deleted nothing, another isolate kept the session alive, so
    /// treat this as a [`Lookup::Miss`] and load it.
    Expired { write: SqlWrite },
}

/// What [`super::Sessions::validated`] concluded about a cached copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// The ledger has this version: serve the cached copy.
    Current,
    /// Another isolate wrote a newer version: the copy was evicted; load the row.
    Stale,
    /// Destroyed (or never stored): the copy was evicted; answer `SESSION_NOT_FOUND`.
    Gone,
}

/// A row of `es_sessions` joined with its ledger entry, as the worker read it with
/// [`super::Sessions::SELECT`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    pub home: String,
    pub created_ms: f64,
    pub expires_ms: f64,
    pub absolute_ms: f64,
    pub version: u64,
    pub body: Vec<u8>,
    /// The highest version the ledger (`es_session_ledger`) has seen for this id;
    /// `None` when it has no entry.
    pub ledger_version: Option<u64>,
    /// The ledger says the session was destroyed.
    pub revoked: bool,
}

/// Counters since the `Sessions` was built.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Analytics {
    pub created: u64,
    /// `get_cached` calls.
    pub gets: u64,
    pub hits: u64,
    pub misses: u64,
    /// `load` calls.
    pub loads: u64,
    /// Sessions found expired (in the cache or on load).
    pub expired: u64,
    pub destroyed: u64,
    pub updates: u64,
    /// Home-region changes.
    pub migrations: u64,
    /// Expiry write-backs (throttled).
    pub touches: u64,
    /// Cache entries removed by `gc`.
    pub gc_removed: u64,
    /// Cache entries dropped to respect `cache_max_entries`.
    pub lru_evicted: u64,
    /// Bodies that failed authentication or were malformed, rows whose columns
    /// disagree with the sealed copies, and replayed or rolled-back bodies.
    pub tampered: u64,
    /// Cached copies confirmed against the ledger, and those found stale or gone.
    pub validations: u64,
    pub stale: u64,
    /// Bodies sealed under a key id not in the ring.
    pub key_unknown: u64,
    pub conflicts: u64,
    pub live_cached: usize,
    /// hits / gets (0 before the first get).
    pub cache_hit_rate: f64,
}
