//! A last-writer-wins map: string keys, each an independent LWW register.
//!
//! **Deletes are writes.** `delete` stores a timestamped tombstone in place of the
//! value, so a delete and a concurrent set of the same key are resolved like two sets:
//! the later timestamp wins (a set after the delete brings the key back; a set before
//! it stays deleted). The price is that a deleted key's tombstone (key, timestamp,
//! dot — no value) stays in the map.
//!
//! **Delta updates.** The version counts every write (dot) seen. An update since `v`
//! carries `v` (its base), the sender's version, and each key whose winning write is
//! not in `v`. Applying merges those entries, which is always safe; the receiver also
//! adopts the sender's version only if it has seen `v` — otherwise some writes the
//! sender skipped could be missing here, so the version stays as it was and a later
//! `encode_update_since(version())` sends them.

use std::collections::BTreeMap;

use super::{corrupt, Crdt, LwwEntry};
use crate::clock::{Hlc, Timestamp, VersionVector, DEFAULT_MAX_DRIFT_MS};
use crate::codec::{Kind, Reader, Writer};
use crate::error::Result;
use crate::sql::Value;

/// A map from `String` to [`Value`] with per-key last-writer-wins.
///
/// ```
/// use edgesync::crdt::{Crdt, LWWMap};
/// use edgesync::Value;
/// let mut a = LWWMap::new(1);
/// a.set("color", Value::from("red"), 1_000).unwrap();
/// let mut b = LWWMap::decode(&a.encode(), 2).unwrap();
/// b.delete("color", 2_000).unwrap();          // later: the delete wins…
/// a.set("size", Value::Integer(3), 1_500).unwrap();
/// a.merge(&b);
/// assert_eq!(a.get("color"), None);
/// assert_eq!(a.keys().collect::<Vec<_>>(), ["size"]);
/// a.set("color", Value::from("blue"), 2_500).unwrap(); // …until a later set
/// assert_eq!(a.get("color"), Some(&Value::from("blue")));
/// ```
#[derive(Debug, Clone)]
pub struct LWWMap {
    hlc: Hlc,
    entries: BTreeMap<String, LwwEntry>,
    vv: VersionVector,
}

struct Update {
    base: VersionVector,
    vv: VersionVector,
    entries: BTreeMap<String, LwwEntry>,
}

impl LWWMap {
    /// A map that accepts remote timestamps up to one minute ahead
    /// ([`DEFAULT_MAX_DRIFT_MS`]) in [`LWWMap::apply_update_at`].
    pub fn new(site: u64) -> Self {
        Self::with_max_drift(site, DEFAULT_MAX_DRIFT_MS)
    }

    pub fn with_max_drift(site: u64, max_drift_ms: u64) -> Self {
        LWWMap {
            hlc: Hlc::new(site, max_drift_ms),
            entries: BTreeMap::new(),
            vv: VersionVector::new(),
        }
    }

    /// Sets `key` at wall-clock time `wall_ms`; returns the write's timestamp.
    pub fn set(&mut self, key: &str, value: Value, wall_ms: u64) -> Result<Timestamp> {
        self.write(key, Some(value), wall_ms)
    }

    /// Deletes `key` (a tombstone write); returns whether it was present. Deleting an
    /// absent key is not an operation.
    pub fn delete(&mut self, key: &str, wall_ms: u64) -> Result<bool> {
        if self.get(key).is_none() {
            return Ok(false);
        }
        self.write(key, None, wall_ms)?;
        Ok(true)
    }

    fn write(&mut self, key: &str, value: Option<Value>, wall_ms: u64) -> Result<Timestamp> {
        let ts = self.hlc.now(wall_ms)?;
        let counter = self.vv.increment(self.hlc.site())?;
        self.entries.insert(key.to_owned(), LwwEntry { value, ts, counter });
        Ok(ts)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key).and_then(|e| e.value.as_ref())
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The timestamp of `key`'s winning write (a set or a delete).
    pub fn timestamp(&self, key: &str) -> Option<Timestamp> {
        self.entries.get(key).map(|e| e.ts)
    }

    /// Live entries in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.value.as_ref().map(|v| (k.as_str(), v)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries().map(|(k, _)| k)
    }

    /// The number of live keys.
    pub fn len(&self) -> usize {
        self.entries().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`Crdt::apply_update`] with a drift check: fails with `CLOCK_DRIFT`, changing
    /// nothing, if any write in the update is more than the max drift ahead of `wall_ms`.
    pub fn apply_update_at(&mut self, update: &[u8], wall_ms: u64) -> Result<()> {
        let u = Self::read_update(update)?;
        for e in u.entries.values() {
            self.hlc.check_drift(e.ts, wall_ms)?;
        }
        self.apply(u);
        Ok(())
    }

    /// [`Crdt::merge`] with the drift check of [`Self::apply_update_at`]: a whole
    /// replica's state is no more trusted than an update from it.
    pub fn merge_at(&mut self, other: &Self, wall_ms: u64) -> Result<()> {
        other.check_drift(&self.hlc, wall_ms)?;
        self.merge(other);
        Ok(())
    }

    /// Fails with `CLOCK_DRIFT` if any write (set or delete) of this map is more than
    /// `hlc`'s max drift ahead of `wall_ms`.
    pub(crate) fn check_drift(&self, hlc: &Hlc, wall_ms: u64) -> Result<()> {
        self.entries.values().try_for_each(|e| hlc.check_drift(e.ts, wall_ms))
    }

    fn join(&mut self, key: &str, theirs: &LwwEntry) {
        self.hlc.witness(theirs.ts);
        match self.entries.get_mut(key) {
            Some(mine) if !theirs.wins_over(mine) => {}
            Some(mine) => *mine = theirs.clone(),
            None => {
                self.entries.insert(key.to_owned(), theirs.clone());
            }
        }
    }

    fn apply(&mut self, u: Update) {
        for (k, e) in &u.entries {
            self.join(k, e);
        }
        if self.vv.includes_all(&u.base) {
            self.vv.merge(&u.vv);
        }
    }

    fn write_entries<'a>(w: &mut Writer, entries: impl ExactSizeIterator<Item = (&'a String, &'a LwwEntry)>) {
        w.uvar(entries.len() as u64);
        for (k, e) in entries {
            w.str(k);
            e.write(w);
        }
    }

    /// Keys strictly increasing; in an update, every write newer than `base`. (A write
    /// need not be covered by the version: after an out-of-order update a replica holds
    /// writes its version does not claim yet.)
    fn read_entries(r: &mut Reader, base: &VersionVector) -> Result<BTreeMap<String, LwwEntry>> {
        let n = r.count(6)?;
        let mut entries = BTreeMap::new();
        let mut prev: Option<&str> = None;
        for _ in 0..n {
            let key = r.str()?;
            let e = LwwEntry::read(r)?;
            let d = e.dot();
            if prev.is_some_and(|p| p >= key) || base.includes(d.site, d.counter) {
                return Err(corrupt("map keys out of order, or an update's write inside its base"));
            }
            prev = Some(key);
            entries.insert(key.to_owned(), e);
        }
        Ok(entries)
    }

    fn read_update(bytes: &[u8]) -> Result<Update> {
        let mut r = Reader::new(bytes, Kind::LWWMapUpdate)?;
        let base = VersionVector::read(&mut r)?;
        let vv = VersionVector::read(&mut r)?;
        let entries = Self::read_entries(&mut r, &base)?;
        r.end()?;
        Ok(Update { base, vv, entries })
    }
}

impl Crdt for LWWMap {
    fn site(&self) -> u64 {
        self.hlc.site()
    }

    fn merge(&mut self, other: &Self) {
        for (k, e) in &other.entries {
            self.join(k, e);
        }
        self.vv.merge(&other.vv);
    }

    fn version(&self) -> VersionVector {
        self.vv.clone()
    }

    fn encode_update_since(&self, since: &VersionVector) -> Vec<u8> {
        let mut w = Writer::new(Kind::LWWMapUpdate);
        since.write(&mut w);
        self.vv.write(&mut w);
        let new: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| !since.includes(e.ts.site, e.counter))
            .collect();
        Self::write_entries(&mut w, new.into_iter());
        w.finish()
    }

    fn apply_update(&mut self, update: &[u8]) -> Result<()> {
        let u = Self::read_update(update)?;
        self.apply(u);
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::LWWMap);
        self.vv.write(&mut w);
        Self::write_entries(&mut w, self.entries.iter());
        w.finish()
    }

    fn decode(bytes: &[u8], site: u64) -> Result<Self> {
        let mut r = Reader::new(bytes, Kind::LWWMap)?;
        let vv = VersionVector::read(&mut r)?;
        let entries = Self::read_entries(&mut r, &VersionVector::new())?;
        r.end()?;
        let mut map = LWWMap::new(site);
        for e in entries.values() {
            map.hlc.witness(e.ts);
        }
        map.entries = entries;
        map.vv = vv;
        Ok(map)
    }
}
