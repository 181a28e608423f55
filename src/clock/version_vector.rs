//! Version vectors: for each site, how many of its operations a replica has seen.
//!
//! A replica's version is the compact summary every delta update is computed
//! against: "send me what I lack" is `encode_update_since(my_version)`.

use std::collections::BTreeMap;

use crate::codec::{Kind, Reader, Writer};
use crate::error::{Error, Result};

/// How two versions relate causally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// `self` has seen strictly less than `other`.
    Before,
    /// `self` has seen strictly more than `other`.
    After,
    Equal,
    /// Each has seen something the other has not.
    Concurrent,
}

/// Site → counter of operations seen. Sites with counter 0 are never stored, so two
/// equal versions have equal maps and equal encodings.
///
/// ```
/// use edgesync::clock::{Causality, VersionVector};
/// let mut a = VersionVector::new();
/// a.increment(1).unwrap();          // {1: 1}
/// let mut b = a.clone();
/// b.increment(2).unwrap();          // {1: 1, 2: 1}
/// a.increment(1).unwrap();          // {1: 2}
/// assert_eq!(a.compare(&b), Causality::Concurrent);
/// assert!(a.includes(1, 2) && !a.includes(2, 1));
/// a.merge(&b);                      // {1: 2, 2: 1}
/// assert_eq!(a.compare(&b), Causality::After);
/// let bytes = a.encode();
/// assert_eq!(VersionVector::decode(&bytes).unwrap(), a);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VersionVector(BTreeMap<u64, u64>);

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter for `site` (0 if never seen).
    pub fn get(&self, site: u64) -> u64 {
        self.0.get(&site).copied().unwrap_or(0)
    }

    /// Whether the operation `(site, counter)` is covered.
    pub fn includes(&self, site: u64, counter: u64) -> bool {
        counter <= self.get(site)
    }

    /// Whether `self` has seen everything `other` has (`compare` is After or Equal).
    pub fn includes_all(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(s, c)| self.includes(*s, *c))
    }

    /// Raises `site`'s counter to at least `counter`.
    pub fn observe(&mut self, site: u64, counter: u64) {
        if counter > 0 {
            let e = self.0.entry(site).or_insert(0);
            *e = (*e).max(counter);
        }
    }

    /// The next counter for a new local operation of `site`, recorded as seen.
    pub fn increment(&mut self, site: u64) -> Result<u64> {
        let next = self
            .get(site)
            .checked_add(1)
            .ok_or_else(|| Error::InvalidOperation(format!("operation counter of site {site} overflowed")))?;
        self.0.insert(site, next);
        Ok(next)
    }

    /// Pointwise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (s, c) in &other.0 {
            self.observe(*s, *c);
        }
    }

    pub fn compare(&self, other: &VersionVector) -> Causality {
        match (self.includes_all(other), other.includes_all(self)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (false, false) => Causality::Concurrent,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `(site, counter)` pairs in site order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(s, c)| (*s, *c))
    }

    /// The standalone encoding ([`Kind::VersionVector`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::VersionVector);
        self.write(&mut w);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Kind::VersionVector)?;
        let v = Self::read(&mut r)?;
        r.end()?;
        Ok(v)
    }

    /// Embedded form: count, then `(site, counter)` varint pairs in increasing site order.
    pub fn write(&self, w: &mut Writer) {
        w.uvar(self.0.len() as u64);
        for (s, c) in &self.0 {
            w.uvar(*s);
            w.uvar(*c);
        }
    }

    /// Rejects non-canonical input (unsorted or repeated sites, zero counters), so a
    /// version has exactly one encoding.
    pub fn read(r: &mut Reader) -> Result<Self> {
        let n = r.count(2)?;
        let mut map = BTreeMap::new();
        let mut prev: Option<u64> = None;
        for _ in 0..n {
            let site = r.uvar()?;
            let counter = r.uvar()?;
            if prev.is_some_and(|p| p >= site) || counter == 0 {
                return Err(Error::Decode {
                    reason: "version vector entries must have increasing sites and non-zero counters".into(),
                    offset: 0,
                });
            }
            prev = Some(site);
            map.insert(site, counter);
        }
        Ok(VersionVector(map))
    }
}

impl FromIterator<(u64, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (u64, u64)>>(iter: I) -> Self {
        let mut v = VersionVector::new();
        for (s, c) in iter {
            v.observe(s, c);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vv() -> impl Strategy<Value = VersionVector> {
        proptest::collection::vec((0u64..5, 0u64..4), 0..6).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn merge_laws(a in vv(), b in vv(), c in vv()) {
            let m = |x: &VersionVector, y: &VersionVector| { let mut z = x.clone(); z.merge(y); z };
            prop_assert_eq!(m(&a, &b), m(&b, &a));
            prop_assert_eq!(m(&m(&a, &b), &c), m(&a, &m(&b, &c)));
            prop_assert_eq!(m(&a, &a), a.clone());
            prop_assert!(m(&a, &b).includes_all(&a));
        }

        #[test]
        fn compare_is_consistent(a in vv(), b in vv()) {
            let flip = |c| match c { Causality::Before => Causality::After, Causality::After => Causality::Before, x => x };
            prop_assert_eq!(a.compare(&b), flip(b.compare(&a)));
            prop_assert_eq!(a.compare(&b) == Causality::Equal, a == b);
        }

        #[test]
        fn round_trip(a in vv()) {
            prop_assert_eq!(VersionVector::decode(&a.encode()).unwrap(), a);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = VersionVector::decode(&b);
            let mut with_header = b"ES\x01\x01".to_vec();
            with_header.extend(b);
            let _ = VersionVector::decode(&with_header);
        }
    }

    #[test]
    fn rejects_non_canonical_and_hostile() {
        let enc = |pairs: &[u64]| {
            let mut w = Writer::new(Kind::VersionVector);
            for p in pairs {
                w.uvar(*p);
            }
            w.finish()
        };
        assert!(VersionVector::decode(&enc(&[2, 5, 1, 3, 1])).is_err(), "unsorted");
        assert!(VersionVector::decode(&enc(&[2, 5, 1, 5, 1])).is_err(), "repeated");
        assert!(VersionVector::decode(&enc(&[1, 5, 0])).is_err(), "zero counter");
        assert!(VersionVector::decode(&enc(&[u64::MAX / 2])).is_err(), "hostile count");
        assert!(VersionVector::decode(&enc(&[1, 5, 1])).is_ok());
        let mut v = VersionVector::new();
        v.observe(1, u64::MAX);
        assert_eq!(v.increment(1).unwrap_err().code(), "INVALID_OPERATION");
    }
}
