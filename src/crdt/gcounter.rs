//! A grow-only counter.
//!
//! Each site keeps its own `(ops, total)`: how many increments it made and their sum.
//! The counter's value is the sum of the totals; merging takes, per site, the entry
//! with more operations. Because an entry is absolute (not a difference), a delta
//! update is simply the entries a version lacks, and applying one is a merge —
//! duplicates and out-of-order delivery are harmless.

use std::collections::BTreeMap;

use super::{corrupt, overflow, Crdt};
use crate::clock::VersionVector;
use crate::codec::{Kind, Reader, Writer};
use crate::error::Result;

/// A grow-only counter (G-Counter).
///
/// ```
/// use edgesync::crdt::{Crdt, GCounter};
/// let mut a = GCounter::new(1);
/// a.increment(5).unwrap();
/// let mut b = GCounter::decode(&a.encode(), 2).unwrap();
/// b.increment(1).unwrap();
/// a.merge(&b);
/// assert_eq!(a.value().unwrap(), 6);
/// assert_eq!(a.increment(u64::MAX).unwrap_err().code(), "INVALID_OPERATION");
/// ```
#[derive(Debug, Clone)]
pub struct GCounter {
    site: u64,
    /// site → (operations, total)
    entries: BTreeMap<u64, (u64, u64)>,
}

impl GCounter {
    pub fn new(site: u64) -> Self {
        GCounter {
            site,
            entries: BTreeMap::new(),
        }
    }

    /// Adds `amount` and returns the new value. Adding 0 is not an operation. Fails
    /// with `INVALID_OPERATION`, changing nothing, if the value would pass `u64::MAX`.
    pub fn increment(&mut self, amount: u64) -> Result<u64> {
        let value = self
            .value()?
            .checked_add(amount)
            .ok_or_else(|| overflow("the counter"))?;
        if amount > 0 {
            let (ops, total) = self.entries.get(&self.site).copied().unwrap_or((0, 0));
            let ops = ops.checked_add(1).ok_or_else(|| overflow("the operation count"))?;
            // total ≤ value, so this cannot overflow once the value check passed.
            self.entries.insert(self.site, (ops, total + amount));
        }
        Ok(value)
    }

    /// The sum over all sites; `INVALID_OPERATION` if merged replicas together pass
    /// `u64::MAX`.
    pub fn value(&self) -> Result<u64> {
        self.entries
            .values()
            .try_fold(0u64, |acc, (_, t)| acc.checked_add(*t))
            .ok_or_else(|| overflow("the counter"))
    }

    fn join(&mut self, site: u64, entry: (u64, u64)) {
        let e = self.entries.entry(site).or_insert(entry);
        *e = (*e).max(entry);
    }

    fn write_entries<'a>(w: &mut Writer, entries: impl Iterator<Item = (&'a u64, &'a (u64, u64))> + Clone) {
        w.uvar(entries.clone().count() as u64);
        for (site, (ops, total)) in entries {
            w.uvar(*site);
            w.uvar(*ops);
            w.uvar(*total);
        }
    }

    fn read_entries(r: &mut Reader) -> Result<BTreeMap<u64, (u64, u64)>> {
        let n = r.count(3)?;
        let mut map = BTreeMap::new();
        let mut prev = None;
        for _ in 0..n {
            let (site, ops, total) = (r.uvar()?, r.uvar()?, r.uvar()?);
            if prev.is_some_and(|p| p >= site) || ops == 0 {
                return Err(corrupt(
                    "counter entries must have increasing sites and non-zero operation counts",
                ));
            }
            prev = Some(site);
            map.insert(site, (ops, total));
        }
        r.end()?;
        Ok(map)
    }
}

impl Crdt for GCounter {
    fn site(&self) -> u64 {
        self.site
    }

    fn merge(&mut self, other: &Self) {
        for (site, e) in &other.entries {
            self.join(*site, *e);
        }
    }

    fn version(&self) -> VersionVector {
        self.entries.iter().map(|(s, (ops, _))| (*s, *ops)).collect()
    }

    fn encode_update_since(&self, since: &VersionVector) -> Vec<u8> {
        let mut w = Writer::new(Kind::GCounterUpdate);
        Self::write_entries(
            &mut w,
            self.entries.iter().filter(|(s, (ops, _))| !since.includes(**s, *ops)),
        );
        w.finish()
    }

    fn apply_update(&mut self, update: &[u8]) -> Result<()> {
        let entries = Self::read_entries(&mut Reader::new(update, Kind::GCounterUpdate)?)?;
        for (site, e) in entries {
            self.join(site, e);
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::GCounter);
        Self::write_entries(&mut w, self.entries.iter());
        w.finish()
    }

    fn decode(bytes: &[u8], site: u64) -> Result<Self> {
        let entries = Self::read_entries(&mut Reader::new(bytes, Kind::GCounter)?)?;
        Ok(GCounter { site, entries })
    }
}
