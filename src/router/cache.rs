//! The read cache: an LRU of query results bounded by entry count and bytes, with a
//! TTL, invalidated by table on writes.
//!
//! Each entry remembers the tables it read and the replication index it was read
//! at. Two things keep it honest:
//! - a write to table `t` drops every entry that read `t` (an inverted index makes
//!   that proportional to the entries dropped, not to the cache size);
//! - a write also raises `t`'s *write floor* to the write's replication index, and a
//!   later `put` of a result read at a lower index (a replica that had not caught up
//!   yet, racing the write) is refused, so an invalidation cannot be undone by a
//!   slow read landing after it.
//!
//! `get` is one hash lookup and no allocation on a hit: it is the hot path of a
//! cached read.

use std::collections::HashMap;

const NIL: u32 = u32::MAX;
/// Distinct tables with a tracked write floor before they are folded into one
/// global floor (bounds memory; folding only refuses more puts, never fewer).
const MAX_WRITE_FLOORS: usize = 4096;

struct Slot {
    key: String,
    value: String,
    index: Option<u64>,
    expires_ms: f64,
    /// Bumped when the slot is freed, so stale inverted-index references die.
    gen: u64,
    prev: u32,
    next: u32,
    live: bool,
}

#[derive(Default)]
struct TableRefs {
    refs: Vec<(u32, u64)>,
    compacted_len: usize,
}

pub(crate) struct Cache {
    map: HashMap<String, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    by_table: HashMap<String, TableRefs>,
    write_floors: HashMap<String, u64>,
    write_floor_all: u64,
    pub bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    ttl_ms: f64,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub invalidations: u64,
}

impl Cache {
    pub fn new(max_entries: usize, max_bytes: usize, ttl_ms: f64) -> Self {
        Cache {
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            by_table: HashMap::new(),
            write_floors: HashMap::new(),
            write_floor_all: 0,
            bytes: 0,
            max_entries: max_entries.min(NIL as usize - 1),
            max_bytes,
            ttl_ms,
            hits: 0,
            misses: 0,
            evictions: 0,
            expirations: 0,
            invalidations: 0,
        }
    }

    /// Whether anything can ever be stored (otherwise the router hands out no keys).
    pub fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0 && self.ttl_ms > 0.0
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether `key` has an entry (fresh or not), without counting a hit or a miss.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn get(&mut self, key: &str, min_index: Option<u64>, now_ms: f64) -> Option<&str> {
        let Some(&slot) = self.map.get(key) else {
            self.misses += 1;
            return None;
        };
        let s = &self.slots[slot as usize];
        if now_ms >= s.expires_ms {
            self.remove(slot);
            self.expirations += 1;
            self.misses += 1;
            return None;
        }
        if let Some(min) = min_index {
            // Read before the caller's own write: not good enough for this caller,
            // still fine for everyone else (so it stays).
            if s.index.is_none_or(|i| i < min) {
                self.misses += 1;
                return None;
            }
        }
        self.unlink(slot);
        self.push_front(slot);
        self.hits += 1;
        Some(self.slots[slot as usize].value.as_str())
    }

    pub fn put(&mut self, key: String, tables: &[String], index: Option<u64>, value: String, now_ms: f64) {
        let size = key.len() + value.len();
        if !self.enabled() || size > self.max_bytes || !now_ms.is_finite() {
            return;
        }
        if let Some(i) = index {
            let stale =
                i < self.write_floor_all || tables.iter().any(|t| self.write_floors.get(t).is_some_and(|&f| i < f));
            if stale {
                return;
            }
        }
        if let Some(&old) = self.map.get(&key) {
            self.remove(old);
        }
        while self.map.len() >= self.max_entries || self.bytes + size > self.max_bytes {
            if self.tail == NIL {
                break;
            }
            self.remove(self.tail);
            self.evictions += 1;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    key: String::new(),
                    value: String::new(),
                    index: None,
                    expires_ms: 0.0,
                    gen: 0,
                    prev: NIL,
                    next: NIL,
                    live: false,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let gen = {
            let s = &mut self.slots[slot as usize];
            s.key.clone_from(&key);
            s.value = value;
            s.index = index;
            s.expires_ms = now_ms + self.ttl_ms;
            s.live = true;
            s.gen
        };
        self.map.insert(key, slot);
        self.bytes += size;
        self.push_front(slot);
        for table in tables {
            let refs = self.by_table.entry(table.clone()).or_default();
            refs.refs.push((slot, gen));
            if refs.refs.len() > 16 && refs.refs.len() > 2 * refs.compacted_len {
                let slots = &self.slots;
                refs.refs
                    .retain(|&(s, g)| slots[s as usize].live && slots[s as usize].gen == g);
                refs.compacted_len = refs.refs.len();
            }
        }
    }

    /// Drops every entry that read one of `tables`; raises their write floors.
    pub fn invalidate_tables(&mut self, tables: &[String], index: Option<u64>) {
        for table in tables {
            if let Some(i) = index {
                let floor = self.write_floors.entry(table.clone()).or_insert(0);
                *floor = (*floor).max(i);
            }
            if let Some(refs) = self.by_table.remove(table) {
                for (slot, gen) in refs.refs {
                    let s = &self.slots[slot as usize];
                    if s.live && s.gen == gen {
                        self.remove(slot);
                        self.invalidations += 1;
                    }
                }
            }
        }
        if self.write_floors.len() > MAX_WRITE_FLOORS {
            let max = self.write_floors.values().copied().max().unwrap_or(0);
            self.write_floor_all = self.write_floor_all.max(max);
            self.write_floors.clear();
        }
    }

    /// Drops everything (a write whose tables are unknown).
    pub fn invalidate_all(&mut self, index: Option<u64>) {
        self.invalidations += self.map.len() as u64;
        if let Some(i) = index {
            self.write_floor_all = self.write_floor_all.max(i);
            let all = self.write_floor_all;
            self.write_floors.retain(|_, f| *f > all);
        }
        // The inverted index goes with the slots, so generations can restart.
        self.map.clear();
        self.by_table.clear();
        self.free.clear();
        self.slots.clear();
        self.head = NIL;
        self.tail = NIL;
        self.bytes = 0;
    }

    /// Inverted-index references held for `table` (live or stale), for tests.
    #[cfg(test)]
    pub fn by_table_refs(&self, table: &str) -> usize {
        self.by_table.get(table).map_or(0, |r| r.refs.len())
    }

    fn remove(&mut self, slot: u32) {
        self.unlink(slot);
        let s = &mut self.slots[slot as usize];
        let key = std::mem::take(&mut s.key);
        let value = std::mem::take(&mut s.value);
        s.live = false;
        s.gen += 1;
        self.bytes -= key.len() + value.len();
        self.map.remove(&key);
        self.free.push(slot);
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let s = &self.slots[slot as usize];
            (s.prev, s.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else if self.head == slot {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else if self.tail == slot {
            self.tail = prev;
        }
        let s = &mut self.slots[slot as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_front(&mut self, slot: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[slot as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old != NIL {
            self.slots[old as usize].prev = slot;
        } else {
            self.tail = slot;
        }
        self.head = slot;
    }
}
