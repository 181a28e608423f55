//! The isolate-local session cache: a hash map into a dense slab of entries that
//! are threaded on an intrusive doubly linked LRU list (u32 links).
//!
//! Memory per entry is what matters (100 000 live sessions per isolate), so an
//! entry is one `Arc<str>` id shared with the map key, the JSON data and the owner
//! as `Box<str>`s, five `f64` times, the version, a `u16` interned home region and
//! two `u32` links — 112 bytes plus the three string allocations. Removal swaps the last
//! slab entry into the hole, so the slab has no free list and no tombstones.
//!
//! The hash is SipHash keyed by a per-instance secret (see [`Seeded`]): session ids
//! come from clients, so a predictable hash would let them build collisions.

use std::collections::HashMap;
use std::hash::{BuildHasher, DefaultHasher, Hasher};
use std::sync::Arc;

const NIL: u32 = u32::MAX;

/// A cached, opened session.
#[derive(Debug)]
pub(crate) struct Entry {
    pub id: Arc<str>,
    pub data: Box<str>,
    /// The subject the session belongs to (sealed in its body).
    pub owner: Box<str>,
    pub created_ms: f64,
    /// The next idle expiry as this isolate knows it (slides on every hit).
    pub expires_ms: f64,
    pub absolute_ms: f64,
    /// The idle expiry last written to the table: touches are throttled against it.
    pub written_expires_ms: f64,
    /// When this copy was last confirmed current against the session ledger.
    pub validated_ms: f64,
    pub version: u64,
    /// Index into the store's interned region names.
    pub home: u16,
    prev: u32,
    next: u32,
}

impl Entry {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: Arc<str>,
        data: Box<str>,
        owner: Box<str>,
        created_ms: f64,
        expires_ms: f64,
        absolute_ms: f64,
        written_expires_ms: f64,
        version: u64,
        home: u16,
    ) -> Self {
        Entry {
            id,
            data,
            owner,
            created_ms,
            expires_ms,
            absolute_ms,
            written_expires_ms,
            validated_ms: f64::NEG_INFINITY,
            version,
            home,
            prev: NIL,
            next: NIL,
        }
    }

    pub fn expired(&self, now_ms: f64) -> bool {
        self.expires_ms <= now_ms || self.absolute_ms <= now_ms
    }
}

/// SipHash-1-3 (std's `DefaultHasher`, whose keys are zero) with 16 secret bytes
/// absorbed before the key: the internal state is then secret-dependent, which is
/// what keyed SipHash gives, without needing std's OS-random `RandomState` (the
/// worker has no OS randomness to offer).
#[derive(Clone)]
pub(crate) struct Seeded(pub [u8; 16]);

impl BuildHasher for Seeded {
    type Hasher = DefaultHasher;
    fn build_hasher(&self) -> DefaultHasher {
        let mut h = DefaultHasher::new();
        h.write(&self.0);
        h
    }
}

pub(crate) struct Cache {
    map: HashMap<Arc<str>, u32, Seeded>,
    nodes: Vec<Entry>,
    /// Most recently used.
    head: u32,
    /// Least recently used: evicted first.
    tail: u32,
    max: usize,
}

impl Cache {
    /// `max` is clamped to 1..u32::MAX (links are u32).
    pub fn new(max: usize, hash_key: [u8; 16]) -> Self {
        Cache {
            map: HashMap::with_hasher(Seeded(hash_key)),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            max: max.clamp(1, (NIL - 1) as usize),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Looks `id` up and marks it most recently used.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        let i = *self.map.get(id)?;
        self.unlink(i);
        self.push_front(i);
        Some(&mut self.nodes[i as usize])
    }

    /// Looks `id` up without touching the LRU order.
    pub fn peek(&self, id: &str) -> Option<&Entry> {
        self.map.get(id).map(|&i| &self.nodes[i as usize])
    }

    /// Inserts or replaces; returns how many entries were evicted to make room.
    pub fn insert(&mut self, entry: Entry) -> usize {
        self.remove(&entry.id);
        let mut evicted = 0;
        while self.nodes.len() >= self.max && self.tail != NIL {
            self.remove_at(self.tail);
            evicted += 1;
        }
        let i = self.nodes.len() as u32;
        self.map.insert(entry.id.clone(), i);
        self.nodes.push(entry);
        self.push_front(i);
        evicted
    }

    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        let i = *self.map.get(id)?;
        Some(self.remove_at(i))
    }

    /// Removes every entry expired at `now_ms`; returns how many.
    pub fn remove_expired(&mut self, now_ms: f64) -> usize {
        let mut n = 0;
        // Backwards: `remove_at` swaps the last entry into the hole, and that one
        // has already been looked at.
        for i in (0..self.nodes.len()).rev() {
            if self.nodes[i].expired(now_ms) {
                self.remove_at(i as u32);
                n += 1;
            }
        }
        n
    }

    /// Bytes held by the cache's own tables (not the strings), for estimates.
    pub fn table_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Entry>()
            + self.map.capacity() * (std::mem::size_of::<(Arc<str>, u32)>() + 1)
    }

    fn remove_at(&mut self, i: u32) -> Entry {
        self.unlink(i);
        let last = (self.nodes.len() - 1) as u32;
        if i != last {
            let (p, n) = {
                let e = &self.nodes[last as usize];
                (e.prev, e.next)
            };
            match p {
                NIL => self.head = i,
                p => self.nodes[p as usize].next = i,
            }
            match n {
                NIL => self.tail = i,
                n => self.nodes[n as usize].prev = i,
            }
            if let Some(slot) = self.map.get_mut(&*self.nodes[last as usize].id) {
                *slot = i;
            }
        }
        let e = self.nodes.swap_remove(i as usize);
        self.map.remove(&*e.id);
        e
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = {
            let e = &self.nodes[i as usize];
            (e.prev, e.next)
        };
        match p {
            NIL => self.head = n,
            p => self.nodes[p as usize].next = n,
        }
        match n {
            NIL => self.tail = p,
            n => self.nodes[n as usize].prev = p,
        }
        let e = &mut self.nodes[i as usize];
        e.prev = NIL;
        e.next = NIL;
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let e = &mut self.nodes[i as usize];
            e.prev = NIL;
            e.next = old;
        }
        match old {
            NIL => self.tail = i,
            old => self.nodes[old as usize].prev = i,
        }
        self.head = i;
    }

    #[cfg(test)]
    fn order(&self) -> Vec<String> {
        let mut v = vec![];
        let mut i = self.head;
        while i != NIL {
            v.push(self.nodes[i as usize].id.to_string());
            i = self.nodes[i as usize].next;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(id: &str, exp: f64) -> Entry {
        Entry::new(id.into(), "{}".into(), "o".into(), 0.0, exp, 1e9, exp, 1, 0)
    }

    #[test]
    fn lru_order_and_bound() {
        let mut c = Cache::new(3, [1; 16]);
        for id in ["a", "b", "c"] {
            assert_eq!(c.insert(entry(id, 10.0)), 0);
        }
        assert_eq!(c.order(), ["c", "b", "a"]);
        c.get_mut("a").unwrap();
        assert_eq!(c.order(), ["a", "c", "b"]);
        assert_eq!(c.insert(entry("d", 10.0)), 1);
        assert_eq!(c.order(), ["d", "a", "c"]);
        assert!(c.get_mut("b").is_none());
        assert_eq!(c.insert(entry("a", 5.0)), 0);
        assert_eq!(c.order(), ["a", "d", "c"]);
        assert_eq!(c.get_mut("a").unwrap().expires_ms, 5.0);
        assert_eq!(c.remove_expired(6.0), 1);
        assert_eq!(c.order(), ["d", "c"]);
        assert_eq!(c.len(), 2);
    }

    proptest! {
        /// Random operations against a simple model (a Vec in MRU order).
        #[test]
        fn matches_model(ops in proptest::collection::vec((0u8..4, 0u8..12, 0u8..20), 0..200), max in 1usize..8) {
            let mut c = Cache::new(max, [9; 16]);
            let mut model: Vec<(String, f64)> = vec![];
            for (op, k, t) in ops {
                let id = format!("s{k}");
                match op {
                    0 => {
                        model.retain(|(m, _)| *m != id);
                        c.insert(entry(&id, t as f64));
                        model.insert(0, (id, t as f64));
                        model.truncate(max);
                    }
                    1 => {
                        let got = c.get_mut(&id).map(|e| e.expires_ms);
                        let pos = model.iter().position(|(m, _)| *m == id);
                        prop_assert_eq!(got, pos.map(|p| model[p].1));
                        if let Some(p) = pos { let e = model.remove(p); model.insert(0, e); }
                    }
                    2 => {
                        let got = c.remove(&id).is_some();
                        let before = model.len();
                        model.retain(|(m, _)| *m != id);
                        prop_assert_eq!(got, before != model.len());
                    }
                    _ => {
                        let before = model.len();
                        model.retain(|(_, e)| *e > t as f64);
                        prop_assert_eq!(c.remove_expired(t as f64), before - model.len());
                    }
                }
                let ids: Vec<String> = model.iter().map(|(m, _)| m.clone()).collect();
                prop_assert_eq!(c.order(), ids);
                prop_assert_eq!(c.map.len(), c.nodes.len());
            }
        }
    }
}
