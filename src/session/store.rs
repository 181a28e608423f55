//! [`Sessions`]: the session logic. It never does I/O: every operation returns the
//! parameterized SQL the worker must run against `es_sessions`, and the worker
//! reports back what it read ([`Sessions::load`]) or what failed
//! ([`Sessions::conflict`], [`Sessions::evict`]).
//!
//! The sealed body carries, before the JSON data, the version, creation time and
//! absolute expiry (24 bytes, authenticated). Those columns exist in the table for
//! queries and GC, but on load the sealed copies win, so whoever can write the
//! table cannot extend a session's absolute lifetime or pass off an old body under
//! a newer version (that is reported as tampering).

use std::sync::Arc;

use super::cache::{Cache, Entry};
use super::envelope;
use super::keys::KeyRing;
use super::nonce::NonceSource;
use super::options::{Analytics, Lookup, SessionOptions, SessionView, SqlWrite, StoredRow};
use crate::{Error, Result, Value};

const PREFIX: usize = 24;

/// Distributed sessions: TTLs, a bounded LRU cache, home-region migration, sealed
/// storage. See the module docs for the worker's side of each call.
pub struct Sessions {
    keys: KeyRing,
    opts: SessionOptions,
    nonces: NonceSource,
    cache: Cache,
    /// Interned region names; entries store a u16 index.
    regions: Vec<Box<str>>,
    stats: Analytics,
}

const INSERT: &str = "INSERT INTO es_sessions(id, home, created_ms, expires_ms, absolute_ms, version, body) VALUES (?, ?, ?, ?, ?, ?, ?)";
const TOUCH: &str = "UPDATE es_sessions SET home = ?, expires_ms = max(expires_ms, ?) WHERE id = ?";
const UPDATE: &str = "UPDATE es_sessions SET body = ?, version = ?, home = ?, expires_ms = max(expires_ms, ?) WHERE id = ? AND version = ?";
const DELETE: &str = "DELETE FROM es_sessions WHERE id = ?";
const DELETE_EXPIRED: &str = "DELETE FROM es_sessions WHERE id = ? AND (expires_ms <= ? OR absolute_ms <= ?)";
const GC: &str = "DELETE FROM es_sessions WHERE expires_ms <= ? OR absolute_ms <= ?";

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Error::InvalidArgument(
            "a session id is 1-128 printable ASCII characters without spaces".into(),
        ));
    }
    Ok(())
}

fn check_now(now_ms: f64) -> Result<()> {
    if !now_ms.is_finite() {
        return Err(Error::InvalidArgument("now_ms must be finite".into()));
    }
    Ok(())
}

impl Sessions {
    /// The table and its indexes, as two statements separated by `;` (see
    /// [`Sessions::SCHEMA_STATEMENTS`] to run them one at a time).
    pub const SCHEMA: &'static str = "CREATE TABLE IF NOT EXISTS es_sessions(id TEXT PRIMARY KEY, home TEXT NOT NULL, created_ms REAL NOT NULL, expires_ms REAL NOT NULL, absolute_ms REAL NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL);\nCREATE INDEX IF NOT EXISTS es_sessions_expires ON es_sessions(expires_ms);\nCREATE INDEX IF NOT EXISTS es_sessions_absolute ON es_sessions(absolute_ms)";
    /// [`Sessions::SCHEMA`] split into single statements.
    pub const SCHEMA_STATEMENTS: [&'static str; 3] = [
        "CREATE TABLE IF NOT EXISTS es_sessions(id TEXT PRIMARY KEY, home TEXT NOT NULL, created_ms REAL NOT NULL, expires_ms REAL NOT NULL, absolute_ms REAL NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL)",
        "CREATE INDEX IF NOT EXISTS es_sessions_expires ON es_sessions(expires_ms)",
        "CREATE INDEX IF NOT EXISTS es_sessions_absolute ON es_sessions(absolute_ms)",
    ];
    /// Reads one session; one argument, the id. Columns in [`StoredRow`] order.
    pub const SELECT: &'static str =
        "SELECT home, created_ms, expires_ms, absolute_ms, version, body FROM es_sessions WHERE id = ?";

    /// `nonce_seed` must be fresh randomness per instance (see [`NonceSource`]).
    /// Options are assumed validated ([`SessionOptions::from_json`] does it); out
    /// of range values are clamped rather than trusted.
    ///
    /// ```
    /// use edgesync::session::{KeyRing, Lookup, SessionOptions, Sessions};
    /// let ring = KeyRing::parse("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    /// let mut s = Sessions::new(ring, SessionOptions::default(), [42; 16]);
    /// let (view, insert) = s.create("sid-1", r#"{"user":7}"#, "ams", 0.0).unwrap();
    /// assert!(insert.sql.starts_with("INSERT"));
    /// assert_eq!(view.version, 1);
    /// match s.get_cached("sid-1", "ams", 1_000.0) {
    ///     Lookup::Hit { session, write } => {
    ///         assert_eq!(session.data, r#"{"user":7}"#);
    ///         assert!(write.is_none()); // touch throttled
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// // Another region: the session migrates there.
    /// let Lookup::Hit { session, write } = s.get_cached("sid-1", "sin", 2_000.0) else { panic!() };
    /// assert_eq!(session.home, "sin");
    /// assert!(write.is_some());
    /// ```
    pub fn new(keys: KeyRing, options: SessionOptions, nonce_seed: [u8; 16]) -> Self {
        let hash_key = keys.derive(nonce_seed);
        Sessions {
            cache: Cache::new(options.cache_max_entries, hash_key),
            keys,
            opts: options,
            nonces: NonceSource::new(nonce_seed),
            regions: Vec::new(),
            stats: Analytics::default(),
        }
    }

    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }

    /// Creates a session homed in `region`. The returned INSERT fails on the
    /// primary key if the id exists in the table (the worker maps that
    /// SQLITE_CONSTRAINT to 409 and should call [`Sessions::evict`]). An id live in this
    /// cache is refused with `SESSION_CONFLICT` without a round trip.
    pub fn create(&mut self, id: &str, data: &str, region: &str, now_ms: f64) -> Result<(SessionView, SqlWrite)> {
        check_id(id)?;
        check_now(now_ms)?;
        self.check_data(data)?;
        let home = self.intern(region)?;
        if let Some(e) = self.cache.get_mut(id) {
            if !e.expired(now_ms) {
                return Err(Error::SessionConflict(format!("session {id:?} exists")));
            }
        }
        let absolute_ms = now_ms + self.opts.absolute_ttl_ms;
        let expires_ms = (now_ms + self.opts.idle_ttl_ms).min(absolute_ms);
        let body = self.seal(id, data, 1, now_ms, absolute_ms)?;
        let id: Arc<str> = id.into();
        let entry = Entry::new(
            id.clone(),
            data.into(),
            now_ms,
            expires_ms,
            absolute_ms,
            expires_ms,
            1,
            home,
        );
        let view = self.view(&entry);
        self.insert(entry);
        self.stats.created += 1;
        let args = vec![
            text(&id),
            text(region),
            Value::Real(now_ms),
            Value::Real(expires_ms),
            Value::Real(absolute_ms),
            Value::Integer(1),
            Value::Blob(body),
        ];
        Ok((view, SqlWrite { sql: INSERT, args }))
    }

    /// Looks a session up in this isolate's cache. One hash lookup; the view clones
    /// the id, data and home strings (cheap next to handing them to JavaScript).
    /// See [`Lookup`] for what the worker does with each answer.
    pub fn get_cached(&mut self, id: &str, region: &str, now_ms: f64) -> Lookup {
        self.stats.gets += 1;
        if !now_ms.is_finite() {
            self.stats.misses += 1;
            return Lookup::Miss;
        }
        let Some(e) = self.cache.get_mut(id) else {
            self.stats.misses += 1;
            return Lookup::Miss;
        };
        if e.expired(now_ms) {
            self.cache.remove(id);
            self.stats.expired += 1;
            return Lookup::Expired {
                write: self.expired_delete(id, now_ms),
            };
        }
        self.stats.hits += 1;
        // An uninternable region (never in practice) just doesn't migrate.
        let region_ix = self.intern(region).ok();
        let write = self.slide(id, region_ix, now_ms);
        match self.cache.peek(id) {
            Some(e) => Lookup::Hit {
                session: self.view(e),
                write,
            },
            None => Lookup::Miss,
        }
    }

    /// The conditional DELETE for a session found expired at `now_ms` (it deletes
    /// nothing if another isolate has meanwhile extended the idle expiry).
    pub fn expired_delete(&self, id: &str, now_ms: f64) -> SqlWrite {
        SqlWrite {
            sql: DELETE_EXPIRED,
            args: vec![text(id), Value::Real(now_ms), Value::Real(now_ms)],
        }
    }

    /// Opens a row the worker read with [`Sessions::SELECT`] after a miss, caches it
    /// and slides its expiry (the write, when due, is a touch and/or migration).
    ///
    /// Errors: `SESSION_EXPIRED` (run [`Sessions::expired_delete`]),
    /// `SESSION_TAMPERED`, `SESSION_KEY_UNKNOWN`, `INVALID_ARGUMENT` (bad id,
    /// region or time).
    pub fn load(
        &mut self,
        id: &str,
        row: StoredRow,
        region: &str,
        now_ms: f64,
    ) -> Result<(SessionView, Option<SqlWrite>)> {
        check_id(id)?;
        check_now(now_ms)?;
        let region_ix = self.intern(region)?;
        self.stats.loads += 1;
        if row.expires_ms <= now_ms || row.absolute_ms <= now_ms || row.expires_ms.is_nan() {
            self.stats.expired += 1;
            return Err(Error::SessionExpired(id.into()));
        }
        let plain = match envelope::open(&self.keys, id, &row.body) {
            Ok(p) => p,
            Err(e) => {
                match e {
                    Error::SessionKeyUnknown(_) => self.stats.key_unknown += 1,
                    _ => self.stats.tampered += 1,
                }
                return Err(e);
            }
        };
        let Some((version, created_ms, absolute_ms, data)) = split_plain(plain) else {
            self.stats.tampered += 1;
            return Err(Error::SessionTampered("malformed session body".into()));
        };
        if version != row.version {
            self.stats.tampered += 1;
            return Err(Error::SessionTampered(format!(
                "body is version {version}, row says {}",
                row.version
            )));
        }
        if absolute_ms <= now_ms {
            self.stats.expired += 1;
            return Err(Error::SessionExpired(id.into()));
        }
        let home = self.intern(&row.home).unwrap_or(region_ix);
        let expires_ms = row.expires_ms.min(absolute_ms);
        let entry = Entry::new(
            id.into(),
            data,
            created_ms,
            expires_ms,
            absolute_ms,
            expires_ms,
            version,
            home,
        );
        self.insert(entry);
        let write = self.slide(id, Some(region_ix), now_ms);
        let view = match self.cache.peek(id) {
            Some(e) => self.view(e),
            None => return Err(Error::SessionNotFound(id.into())),
        };
        Ok((view, write))
    }

    /// Replaces a cached session's data, bumping its version and resealing under
    /// the current key (this is how sessions move onto a rotated key). The UPDATE
    /// only matches the version this isolate had: if it affects no row, call
    /// [`Sessions::conflict`] and answer `SESSION_CONFLICT`. If it fails for any
    /// other reason call [`Sessions::evict`] (the cache already holds the new data).
    ///
    /// Errors: `SESSION_NOT_FOUND` if not cached (load first), `SESSION_EXPIRED`
    /// (evicted; run [`Sessions::expired_delete`]), `INVALID_ARGUMENT`.
    pub fn update(&mut self, id: &str, data: &str, region: &str, now_ms: f64) -> Result<(SessionView, SqlWrite)> {
        check_id(id)?;
        check_now(now_ms)?;
        self.check_data(data)?;
        let region_ix = self.intern(region)?;
        let Some(e) = self.cache.get_mut(id) else {
            return Err(Error::SessionNotFound(id.into()));
        };
        if e.expired(now_ms) {
            self.cache.remove(id);
            self.stats.expired += 1;
            return Err(Error::SessionExpired(id.into()));
        }
        let (old, created_ms, absolute_ms) = (e.version, e.created_ms, e.absolute_ms);
        let old_sql = i64::try_from(old)
            .ok()
            .filter(|v| *v < i64::MAX)
            .ok_or_else(|| Error::InvalidOperation("session version overflow".into()))?;
        let body = self.seal(id, data, old + 1, created_ms, absolute_ms)?;
        let expires_ms = (now_ms + self.opts.idle_ttl_ms).min(absolute_ms);
        let Some(e) = self.cache.get_mut(id) else {
            return Err(Error::SessionNotFound(id.into()));
        };
        e.data = data.into();
        e.version = old + 1;
        e.expires_ms = expires_ms;
        e.written_expires_ms = expires_ms;
        let migrated = e.home != region_ix;
        e.home = region_ix;
        let view = match self.cache.peek(id) {
            Some(e) => self.view(e),
            None => return Err(Error::SessionNotFound(id.into())),
        };
        self.stats.updates += 1;
        self.stats.migrations += migrated as u64;
        let args = vec![
            Value::Blob(body),
            Value::Integer(old_sql + 1),
            text(region),
            Value::Real(expires_ms),
            text(id),
            Value::Integer(old_sql),
        ];
        Ok((view, SqlWrite { sql: UPDATE, args }))
    }

    /// Forgets the session here and returns the DELETE for the table.
    pub fn destroy(&mut self, id: &str) -> SqlWrite {
        self.cache.remove(id);
        self.stats.destroyed += 1;
        SqlWrite {
            sql: DELETE,
            args: vec![text(id)],
        }
    }

    /// The worker's UPDATE matched no row: someone else wrote a newer version.
    /// Evicts (the next request loads the winner) and counts.
    pub fn conflict(&mut self, id: &str) {
        self.cache.remove(id);
        self.stats.conflicts += 1;
    }

    /// Drops a session from this isolate's cache only (e.g. a write failed).
    /// Returns whether it was cached.
    pub fn evict(&mut self, id: &str) -> bool {
        self.cache.remove(id).is_some()
    }

    /// Evicts every expired cached session (a scan of the cache) and returns the
    /// table-wide DELETE of expired rows (it uses the two expiry indexes).
    pub fn gc(&mut self, now_ms: f64) -> (usize, SqlWrite) {
        let n = if now_ms.is_finite() {
            self.cache.remove_expired(now_ms)
        } else {
            0
        };
        self.stats.gc_removed += n as u64;
        // A non-finite time cannot be bound; -1 deletes nothing.
        let t = if now_ms.is_finite() { now_ms } else { -1.0 };
        let write = SqlWrite {
            sql: GC,
            args: vec![Value::Real(t), Value::Real(t)],
        };
        (n, write)
    }

    pub fn analytics(&self) -> Analytics {
        let mut a = self.stats.clone();
        a.live_cached = self.cache.len();
        a.cache_hit_rate = if a.gets == 0 {
            0.0
        } else {
            a.hits as f64 / a.gets as f64
        };
        a
    }

    /// Sessions currently cached.
    pub fn cached_len(&self) -> usize {
        self.cache.len()
    }

    /// Bytes held by the cache's tables (slab and hash table, not the strings).
    pub fn cache_table_bytes(&self) -> usize {
        self.cache.table_bytes()
    }

    /// Slides a cached entry's idle expiry and moves its home to `region`; returns
    /// the write when a touch is due or the home changed.
    fn slide(&mut self, id: &str, region: Option<u16>, now_ms: f64) -> Option<SqlWrite> {
        let threshold = self.opts.touch_after_fraction * self.opts.idle_ttl_ms;
        let idle = self.opts.idle_ttl_ms;
        let e = self.cache.get_mut(id)?;
        e.expires_ms = e.expires_ms.max((now_ms + idle).min(e.absolute_ms));
        let touch = e.expires_ms - e.written_expires_ms > threshold;
        let migrate = region.is_some_and(|r| r != e.home);
        if !touch && !migrate {
            return None;
        }
        if let Some(r) = region {
            e.home = r;
        }
        e.written_expires_ms = e.expires_ms;
        let (home, expires) = (e.home, e.expires_ms);
        self.stats.touches += touch as u64;
        self.stats.migrations += migrate as u64;
        Some(SqlWrite {
            sql: TOUCH,
            args: vec![text(self.region_name(home)), Value::Real(expires), text(id)],
        })
    }

    fn insert(&mut self, entry: Entry) {
        self.stats.lru_evicted += self.cache.insert(entry) as u64;
    }

    fn check_data(&self, data: &str) -> Result<()> {
        if data.len() > self.opts.max_data_bytes {
            return Err(Error::InvalidArgument(format!(
                "session data is {} bytes, over the {} byte limit",
                data.len(),
                self.opts.max_data_bytes
            )));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(data)
            .map_err(|e| Error::InvalidArgument(format!("session data is not JSON: {e}")))?;
        Ok(())
    }

    fn seal(&mut self, id: &str, data: &str, version: u64, created: f64, abs: f64) -> Result<Vec<u8>> {
        let mut plain = Vec::with_capacity(PREFIX + data.len());
        plain.extend_from_slice(&version.to_be_bytes());
        plain.extend_from_slice(&created.to_be_bytes());
        plain.extend_from_slice(&abs.to_be_bytes());
        plain.extend_from_slice(data.as_bytes());
        let nonce = self.nonces.next()?;
        // The threshold is about the data: don't count the prefix.
        let threshold = self.opts.compress_threshold.saturating_add(PREFIX);
        envelope::seal(&self.keys, nonce, id, &plain, threshold)
    }

    /// Interns a region name (1–64 printable ASCII characters; at most 65 535
    /// distinct names, far beyond any deployment).
    fn intern(&mut self, region: &str) -> Result<u16> {
        if let Some(i) = self.regions.iter().position(|r| &**r == region) {
            return Ok(i as u16);
        }
        if region.is_empty() || region.len() > 64 || !region.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(Error::InvalidArgument(
                "a region is 1-64 printable ASCII characters".into(),
            ));
        }
        if self.regions.len() >= u16::MAX as usize {
            return Err(Error::InvalidArgument("too many distinct regions".into()));
        }
        self.regions.push(region.into());
        Ok((self.regions.len() - 1) as u16)
    }

    fn region_name(&self, ix: u16) -> &str {
        self.regions.get(ix as usize).map_or("", |r| r)
    }

    fn view(&self, e: &Entry) -> SessionView {
        SessionView {
            id: e.id.to_string(),
            data: e.data.to_string(),
            home: self.region_name(e.home).to_owned(),
            created_ms: e.created_ms,
            expires_ms: e.expires_ms,
            absolute_ms: e.absolute_ms,
            version: e.version,
        }
    }
}

/// Splits an opened body into (version, created, absolute, data).
fn split_plain(plain: Vec<u8>) -> Option<(u64, f64, f64, Box<str>)> {
    if plain.len() < PREFIX {
        return None;
    }
    let word = |i: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&plain[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let (version, created, abs) = (word(0), f64::from_bits(word(8)), f64::from_bits(word(16)));
    let data = String::from_utf8(plain[PREFIX..].to_vec()).ok()?;
    Some((version, created, abs, data.into_boxed_str()))
}
