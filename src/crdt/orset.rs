//! An add-wins observed-remove set without tombstones (ORSWOT, Bieniusa et al. 2012).
//!
//! Every `add` is an operation with a unique dot `(site, counter)`; the set holds, per
//! element, the dots of the adds that are still live, plus a causal context — a
//! version vector of every dot this replica has seen. A dot the context covers but no
//! element holds was removed. That is how removes are remembered without a tombstone
//! per removed element: the whole history of removals costs one counter per site.
//!
//! Merge keeps a dot if both replicas hold it, or if one holds it and the other has
//! never seen it. An add concurrent with a remove therefore survives (its dot is new to
//! the remover): add wins.
//!
//! `remove` also takes a dot (held by no element), so that a removal changes the
//! version and `encode_update_since` notices it.
//!
//! **Delta updates.** An update since version `v` carries: `v` itself (the base), the
//! sender's context, the live dots newer than `v` with their elements, and the live
//! dots at or below `v` as bare dots — the receiver already knows their elements, and
//! a dot it holds that is absent from the list was removed. Applying it is exactly a
//! merge with the sender, provided the receiver has seen `v`; an update whose base the
//! receiver has not seen yet is refused with `INVALID_OPERATION` and changes nothing
//! (ask the sender for `encode_update_since(version())` instead).

use std::collections::{BTreeMap, BTreeSet};

use super::{corrupt, read_value, value_key, write_value, Crdt, Dot};
use crate::clock::VersionVector;
use crate::codec::{Kind, Reader, Writer};
use crate::error::{Error, Result};
use crate::sql::Value;

#[derive(Debug, Clone, PartialEq)]
struct Elem {
    value: Value,
    dots: BTreeSet<Dot>,
}

/// An add-wins set of [`Value`]s. Elements are compared by their encoding, so
/// `Integer(1)` and `Real(1.0)` are distinct.
///
/// ```
/// use edgesync::crdt::{Crdt, ORSet};
/// use edgesync::Value;
/// let mut a = ORSet::new(1);
/// a.add(Value::from("milk")).unwrap();
/// let mut b = ORSet::decode(&a.encode(), 2).unwrap();
/// b.remove(&Value::from("milk")).unwrap(); // b removes what it saw…
/// a.add(Value::from("milk")).unwrap();     // …while a adds it again
/// a.merge(&b);
/// assert!(a.has(&Value::from("milk")));   // add wins
/// ```
#[derive(Debug, Clone)]
pub struct ORSet {
    site: u64,
    elems: BTreeMap<Vec<u8>, Elem>,
    ctx: VersionVector,
}

/// A decoded delta update (see the module docs).
struct Update {
    base: VersionVector,
    ctx: VersionVector,
    new: BTreeMap<Vec<u8>, Elem>,
    old_live: BTreeSet<Dot>,
}

impl ORSet {
    pub fn new(site: u64) -> Self {
        ORSet {
            site,
            elems: BTreeMap::new(),
            ctx: VersionVector::new(),
        }
    }

    /// Adds `value` (again, if present: the new add supersedes the ones seen).
    pub fn add(&mut self, value: Value) -> Result<()> {
        let counter = self.ctx.increment(self.site)?;
        let dot = Dot {
            site: self.site,
            counter,
        };
        self.elems.insert(
            value_key(&value),
            Elem {
                value,
                dots: BTreeSet::from([dot]),
            },
        );
        Ok(())
    }

    /// Removes `value` as seen here; returns whether it was present. Concurrent adds
    /// elsewhere survive.
    pub fn remove(&mut self, value: &Value) -> Result<bool> {
        let key = value_key(value);
        if !self.elems.contains_key(&key) {
            return Ok(false);
        }
        self.ctx.increment(self.site)?;
        self.elems.remove(&key);
        Ok(true)
    }

    pub fn has(&self, value: &Value) -> bool {
        self.elems.contains_key(&value_key(value))
    }

    /// The elements, in the order of their encodings.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.elems.values().map(|e| &e.value)
    }

    pub fn len(&self) -> usize {
        self.elems.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// Drops every local dot the sender has seen (`their_ctx`) but no longer holds
    /// (`their_live`), then adds the sender's dots this replica has never seen.
    fn join(
        &mut self,
        their_ctx: &VersionVector,
        their_live: impl Fn(&Dot) -> bool,
        their_elems: &BTreeMap<Vec<u8>, Elem>,
    ) {
        self.elems.retain(|_, e| {
            e.dots
                .retain(|d| !their_ctx.includes(d.site, d.counter) || their_live(d));
            !e.dots.is_empty()
        });
        for (key, theirs) in their_elems {
            let unseen: Vec<Dot> = theirs
                .dots
                .iter()
                .filter(|d| !self.ctx.includes(d.site, d.counter))
                .copied()
                .collect();
            if unseen.is_empty() {
                continue;
            }
            let mine = self.elems.entry(key.clone()).or_insert_with(|| Elem {
                value: theirs.value.clone(),
                dots: BTreeSet::new(),
            });
            mine.dots.extend(unseen);
        }
        self.ctx.merge(their_ctx);
    }

    fn write_elems<'a>(w: &mut Writer, elems: impl ExactSizeIterator<Item = (&'a Value, Vec<&'a Dot>)>) {
        w.uvar(elems.len() as u64);
        for (value, dots) in elems {
            write_value(w, value);
            write_dots(w, dots.into_iter());
        }
    }

    /// Elements in strictly increasing key order, each with at least one dot, every
    /// dot unique and covered by `ctx`, and (for updates) newer than `base`.
    fn read_elems(
        r: &mut Reader,
        ctx: &VersionVector,
        base: &VersionVector,
        seen: &mut BTreeSet<Dot>,
    ) -> Result<BTreeMap<Vec<u8>, Elem>> {
        let n = r.count(3)?;
        let mut elems = BTreeMap::new();
        let mut prev: Option<Vec<u8>> = None;
        for _ in 0..n {
            let value = read_value(r)?;
            let key = value_key(&value);
            if prev.as_ref().is_some_and(|p| *p >= key) {
                return Err(corrupt("set elements out of order or repeated"));
            }
            let dots = read_dots(r)?;
            if dots.is_empty() {
                return Err(corrupt("a set element without dots"));
            }
            for d in &dots {
                let fresh = seen.insert(*d);
                if !fresh || !ctx.includes(d.site, d.counter) || base.includes(d.site, d.counter) {
                    return Err(corrupt("a set dot is repeated or outside its version"));
                }
            }
            prev = Some(key.clone());
            elems.insert(key, Elem { value, dots });
        }
        Ok(elems)
    }

    fn read_update(bytes: &[u8]) -> Result<Update> {
        let mut r = Reader::new(bytes, Kind::ORSetUpdate)?;
        let base = VersionVector::read(&mut r)?;
        let ctx = VersionVector::read(&mut r)?;
        let mut seen = BTreeSet::new();
        let new = Self::read_elems(&mut r, &ctx, &base, &mut seen)?;
        let old_live = read_dots(&mut r)?;
        for d in &old_live {
            if !seen.insert(*d) || !base.includes(d.site, d.counter) || !ctx.includes(d.site, d.counter) {
                return Err(corrupt("an old set dot is repeated or outside its version"));
            }
        }
        r.end()?;
        Ok(Update {
            base,
            ctx,
            new,
            old_live,
        })
    }
}

/// Dots grouped by site: `sites`, then per site `site, count, counters` with the
/// counters delta-coded (consecutive adds of one site cost one byte each).
fn write_dots<'a>(w: &mut Writer, dots: impl Iterator<Item = &'a Dot>) {
    let mut by_site: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for d in dots {
        by_site.entry(d.site).or_default().push(d.counter);
    }
    w.uvar(by_site.len() as u64);
    for (site, mut counters) in by_site {
        counters.sort_unstable();
        w.uvar(site);
        w.uvar(counters.len() as u64);
        let mut prev = 0;
        for c in counters {
            w.uvar(c - prev);
            prev = c;
        }
    }
}

/// Rejects repeated sites or counters and counter 0.
fn read_dots(r: &mut Reader) -> Result<BTreeSet<Dot>> {
    let sites = r.count(3)?;
    let mut dots = BTreeSet::new();
    let mut prev_site = None;
    for _ in 0..sites {
        let site = r.uvar()?;
        if prev_site.is_some_and(|p| p >= site) {
            return Err(corrupt("dot sites out of order"));
        }
        prev_site = Some(site);
        let n = r.count(1)?;
        if n == 0 {
            return Err(corrupt("a dot site without dots"));
        }
        let mut counter = 0u64;
        for _ in 0..n {
            let gap = r.uvar()?;
            counter = counter
                .checked_add(gap)
                .filter(|_| gap > 0)
                .ok_or_else(|| corrupt("dot counters must increase"))?;
            dots.insert(Dot { site, counter });
        }
    }
    Ok(dots)
}

impl Crdt for ORSet {
    fn site(&self) -> u64 {
        self.site
    }

    fn merge(&mut self, other: &Self) {
        let live: BTreeSet<Dot> = other.elems.values().flat_map(|e| e.dots.iter().copied()).collect();
        self.join(&other.ctx, |d| live.contains(d), &other.elems);
    }

    fn version(&self) -> VersionVector {
        self.ctx.clone()
    }

    fn encode_update_since(&self, since: &VersionVector) -> Vec<u8> {
        let mut w = Writer::new(Kind::ORSetUpdate);
        since.write(&mut w);
        self.ctx.write(&mut w);
        let is_new = |d: &&Dot| !since.includes(d.site, d.counter);
        let new: Vec<_> = self
            .elems
            .values()
            .map(|e| (&e.value, e.dots.iter().filter(is_new).collect::<Vec<_>>()))
            .filter(|(_, dots)| !dots.is_empty())
            .collect();
        Self::write_elems(&mut w, new.into_iter());
        write_dots(
            &mut w,
            self.elems.values().flat_map(|e| e.dots.iter()).filter(|d| !is_new(d)),
        );
        w.finish()
    }

    fn apply_update(&mut self, update: &[u8]) -> Result<()> {
        let u = Self::read_update(update)?;
        if !self.ctx.includes_all(&u.base) {
            return Err(Error::InvalidOperation(
                "this set update builds on operations this replica has not seen; apply the earlier updates first, \
                 or ask the sender for encodeUpdateSince(version())"
                    .into(),
            ));
        }
        let mut live = u.old_live;
        live.extend(u.new.values().flat_map(|e| e.dots.iter().copied()));
        self.join(&u.ctx, |d| live.contains(d), &u.new);
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::ORSet);
        self.ctx.write(&mut w);
        Self::write_elems(&mut w, self.elems.values().map(|e| (&e.value, e.dots.iter().collect())));
        w.finish()
    }

    fn decode(bytes: &[u8], site: u64) -> Result<Self> {
        let mut r = Reader::new(bytes, Kind::ORSet)?;
        let ctx = VersionVector::read(&mut r)?;
        let elems = Self::read_elems(&mut r, &ctx, &VersionVector::new(), &mut BTreeSet::new())?;
        r.end()?;
        Ok(ORSet { site, elems, ctx })
    }
}
