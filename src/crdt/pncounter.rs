//! A counter that goes up and down.
//!
//! Each site keeps `(ops, increments, decrements)` — two grow-only totals and how many
//! operations produced them; the value is `Σ increments − Σ decrements`. Merging takes,
//! per site, the entry with more operations, so as with [`super::GCounter`] a delta
//! update is just the entries a version lacks.

use std::collections::BTreeMap;

use super::{corrupt, overflow, Crdt};
use crate::clock::VersionVector;
use crate::codec::{Kind, Reader, Writer};
use crate::error::Result;

/// `(ops, increments, decrements)` of one site.
type Entry = (u64, u64, u64);

/// A positive-negative counter (PN-Counter) with an `i64` value.
///
/// ```
/// use edgesync::crdt::{Crdt, PNCounter};
/// let mut stock = PNCounter::new(1);
/// stock.increment(10).unwrap();
/// let mut shop2 = PNCounter::new(2);
/// shop2.decrement(3).unwrap();
/// stock.apply_update(&shop2.encode_update_since(&stock.version())).unwrap();
/// assert_eq!(stock.value().unwrap(), 7);
/// ```
#[derive(Debug, Clone)]
pub struct PNCounter {
    site: u64,
    entries: BTreeMap<u64, Entry>,
}

impl PNCounter {
    pub fn new(site: u64) -> Self {
        PNCounter {
            site,
            entries: BTreeMap::new(),
        }
    }

    /// Adds `amount`; returns the new value.
    pub fn increment(&mut self, amount: u64) -> Result<i64> {
        self.change(amount, 0)
    }

    /// Subtracts `amount`; returns the new value.
    pub fn decrement(&mut self, amount: u64) -> Result<i64> {
        self.change(0, amount)
    }

    /// Fails with `INVALID_OPERATION`, changing nothing, if a site total would pass
    /// `u64::MAX` or the value would leave the `i64` range.
    fn change(&mut self, inc: u64, dec: u64) -> Result<i64> {
        if inc == 0 && dec == 0 {
            return self.value();
        }
        let (ops, p, n) = self.entries.get(&self.site).copied().unwrap_or((0, 0, 0));
        let next = (
            ops.checked_add(1).ok_or_else(|| overflow("the operation count"))?,
            p.checked_add(inc).ok_or_else(|| overflow("the increments"))?,
            n.checked_add(dec).ok_or_else(|| overflow("the decrements"))?,
        );
        let old = self.entries.insert(self.site, next);
        match self.value() {
            Ok(v) => Ok(v),
            Err(e) => {
                match old {
                    Some(o) => self.entries.insert(self.site, o),
                    None => self.entries.remove(&self.site),
                };
                Err(e)
            }
        }
    }

    /// `INVALID_OPERATION` if the merged value is outside the `i64` range.
    pub fn value(&self) -> Result<i64> {
        let (p, n) = self
            .entries
            .values()
            .fold((0u128, 0u128), |(p, n), e| (p + u128::from(e.1), n + u128::from(e.2)));
        // Each sum is below 2^64 per site times the number of sites: far inside i128.
        let v = p as i128 - n as i128;
        i64::try_from(v).map_err(|_| overflow("the counter value"))
    }

    fn join(&mut self, site: u64, entry: Entry) {
        let e = self.entries.entry(site).or_insert(entry);
        *e = (*e).max(entry);
    }

    fn write_entries<'a>(w: &mut Writer, entries: impl Iterator<Item = (&'a u64, &'a Entry)> + Clone) {
        w.uvar(entries.clone().count() as u64);
        for (site, (ops, p, n)) in entries {
            w.uvar(*site);
            w.uvar(*ops);
            w.uvar(*p);
            w.uvar(*n);
        }
    }

    fn read_entries(r: &mut Reader) -> Result<BTreeMap<u64, Entry>> {
        let count = r.count(4)?;
        let mut map = BTreeMap::new();
        let mut prev = None;
        for _ in 0..count {
            let (site, ops, p, n) = (r.uvar()?, r.uvar()?, r.uvar()?, r.uvar()?);
            if prev.is_some_and(|q| q >= site) || ops == 0 {
                return Err(corrupt(
                    "counter entries must have increasing sites and non-zero operation counts",
                ));
            }
            prev = Some(site);
            map.insert(site, (ops, p, n));
        }
        r.end()?;
        Ok(map)
    }
}

impl Crdt for PNCounter {
    fn site(&self) -> u64 {
        self.site
    }

    fn merge(&mut self, other: &Self) {
        for (site, e) in &other.entries {
            self.join(*site, *e);
        }
    }

    fn version(&self) -> VersionVector {
        self.entries.iter().map(|(s, e)| (*s, e.0)).collect()
    }

    fn encode_update_since(&self, since: &VersionVector) -> Vec<u8> {
        let mut w = Writer::new(Kind::PNCounterUpdate);
        Self::write_entries(&mut w, self.entries.iter().filter(|(s, e)| !since.includes(**s, e.0)));
        w.finish()
    }

    fn apply_update(&mut self, update: &[u8]) -> Result<()> {
        let entries = Self::read_entries(&mut Reader::new(update, Kind::PNCounterUpdate)?)?;
        for (site, e) in entries {
            self.join(site, e);
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::PNCounter);
        Self::write_entries(&mut w, self.entries.iter());
        w.finish()
    }

    fn decode(bytes: &[u8], site: u64) -> Result<Self> {
        let entries = Self::read_entries(&mut Reader::new(bytes, Kind::PNCounter)?)?;
        Ok(PNCounter { site, entries })
    }
}
