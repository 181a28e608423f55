//! A last-writer-wins register: one value, the write with the greatest HLC timestamp
//! wins. Timestamps carry the site id, so two different writes never tie.
//!
//! The version is the set of writes seen (a version vector of write dots). Every write
//! a replica has seen is either its current value or was overwritten by it, so a delta
//! update is simply the current write plus the version — or nothing, when the receiver
//! has already seen every write. Applying an update is a merge.

use super::{corrupt, Crdt, LwwEntry};
use crate::clock::{Hlc, Timestamp, VersionVector, DEFAULT_MAX_DRIFT_MS};
use crate::codec::{Kind, Reader, Writer};
use crate::error::Result;
use crate::sql::Value;

/// A last-writer-wins register of a [`Value`].
///
/// Writes take the wall clock as an argument (`Date.now()` in JS), which the hybrid
/// clock makes monotonic; a write is always ordered after every write this replica has
/// seen, even if its wall clock is behind.
///
/// ```
/// use edgesync::crdt::{Crdt, LWWRegister};
/// use edgesync::Value;
/// let mut a = LWWRegister::new(1);
/// let mut b = LWWRegister::new(2);
/// a.set(Value::from("draft"), 1_000).unwrap();
/// b.set(Value::from("final"), 2_000).unwrap();
/// a.merge(&b);
/// assert_eq!(a.get(), Some(&Value::from("final")));
/// a.set(Value::from("edited"), 1_500).unwrap(); // a's wall clock is behind: still wins
/// b.apply_update(&a.encode_update_since(&b.version())).unwrap();
/// assert_eq!(b.get(), Some(&Value::from("edited")));
/// ```
#[derive(Debug, Clone)]
pub struct LWWRegister {
    hlc: Hlc,
    entry: Option<LwwEntry>,
    vv: VersionVector,
}

impl LWWRegister {
    /// A register that accepts remote timestamps up to one minute ahead
    /// ([`DEFAULT_MAX_DRIFT_MS`]) in [`LWWRegister::apply_update_at`].
    pub fn new(site: u64) -> Self {
        Self::with_max_drift(site, DEFAULT_MAX_DRIFT_MS)
    }

    pub fn with_max_drift(site: u64, max_drift_ms: u64) -> Self {
        LWWRegister {
            hlc: Hlc::new(site, max_drift_ms),
            entry: None,
            vv: VersionVector::new(),
        }
    }

    /// Writes `value` at wall-clock time `wall_ms`; returns the write's timestamp.
    pub fn set(&mut self, value: Value, wall_ms: u64) -> Result<Timestamp> {
        let ts = self.hlc.now(wall_ms)?;
        let counter = self.vv.increment(self.hlc.site())?;
        self.entry = Some(LwwEntry {
            value: Some(value),
            ts,
            counter,
        });
        Ok(ts)
    }

    /// The current value; `None` if never written.
    pub fn get(&self) -> Option<&Value> {
        self.entry.as_ref().and_then(|e| e.value.as_ref())
    }

    /// The winning write's timestamp.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.entry.as_ref().map(|e| e.ts)
    }

    /// [`Crdt::apply_update`] with a drift check: fails with `CLOCK_DRIFT`, changing
    /// nothing, if the update's write is more than the max drift ahead of `wall_ms`.
    pub fn apply_update_at(&mut self, update: &[u8], wall_ms: u64) -> Result<()> {
        let (entry, vv) = Self::read(update, Kind::LWWRegisterUpdate)?;
        if let Some(e) = &entry {
            self.hlc.check_drift(e.ts, wall_ms)?;
        }
        self.join(entry.as_ref(), &vv);
        Ok(())
    }

    /// [`Crdt::merge`] with the drift check of [`Self::apply_update_at`]: a whole
    /// replica's state is no more trusted than an update from it.
    pub fn merge_at(&mut self, other: &Self, wall_ms: u64) -> Result<()> {
        other.check_drift(&self.hlc, wall_ms)?;
        self.merge(other);
        Ok(())
    }

    /// Fails with `CLOCK_DRIFT` if this register's write is more than `hlc`'s max drift
    /// ahead of `wall_ms`.
    pub(crate) fn check_drift(&self, hlc: &Hlc, wall_ms: u64) -> Result<()> {
        match &self.entry {
            Some(e) => hlc.check_drift(e.ts, wall_ms),
            None => Ok(()),
        }
    }

    fn join(&mut self, entry: Option<&LwwEntry>, vv: &VersionVector) {
        if let Some(theirs) = entry {
            self.hlc.witness(theirs.ts);
            if self.entry.as_ref().is_none_or(|mine| theirs.wins_over(mine)) {
                self.entry = Some(theirs.clone());
            }
        }
        self.vv.merge(vv);
    }

    fn write(w: &mut Writer, entry: Option<&LwwEntry>, vv: &VersionVector) {
        vv.write(w);
        if let Some(e) = entry {
            e.write(w);
        }
    }

    /// The entry is present exactly when the version is not empty, and is covered by it.
    fn read(bytes: &[u8], kind: Kind) -> Result<(Option<LwwEntry>, VersionVector)> {
        let mut r = Reader::new(bytes, kind)?;
        let vv = VersionVector::read(&mut r)?;
        let entry = if vv.is_empty() {
            None
        } else {
            let e = LwwEntry::read(&mut r)?;
            if e.value.is_none() || !vv.includes(e.ts.site, e.counter) {
                return Err(corrupt("register write missing or outside its version"));
            }
            Some(e)
        };
        r.end()?;
        Ok((entry, vv))
    }
}

impl Crdt for LWWRegister {
    fn site(&self) -> u64 {
        self.hlc.site()
    }

    fn merge(&mut self, other: &Self) {
        self.join(other.entry.as_ref(), &other.vv);
    }

    fn version(&self) -> VersionVector {
        self.vv.clone()
    }

    fn encode_update_since(&self, since: &VersionVector) -> Vec<u8> {
        let mut w = Writer::new(Kind::LWWRegisterUpdate);
        if since.includes_all(&self.vv) {
            Self::write(&mut w, None, &VersionVector::new());
        } else {
            Self::write(&mut w, self.entry.as_ref(), &self.vv);
        }
        w.finish()
    }

    fn apply_update(&mut self, update: &[u8]) -> Result<()> {
        let (entry, vv) = Self::read(update, Kind::LWWRegisterUpdate)?;
        self.join(entry.as_ref(), &vv);
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::LWWRegister);
        Self::write(&mut w, self.entry.as_ref(), &self.vv);
        w.finish()
    }

    fn decode(bytes: &[u8], site: u64) -> Result<Self> {
        let (entry, vv) = Self::read(bytes, Kind::LWWRegister)?;
        let mut reg = LWWRegister::new(site);
        reg.join(entry.as_ref(), &vv);
        Ok(reg)
    }
}
