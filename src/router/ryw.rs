//! Read-your-writes floors and the router's seeded PRNG.
//!
//! After a client writes, its reads must not come from a replica that has not yet
//! replayed that write. The primary's replication index after the write is the
//! client's *floor*: only regions known to be at or past it may serve the client's
//! reads until the floor expires (`ryw_ttl_ms`, by which time every replica is
//! expected to have caught up).
//!
//! The map is bounded: expired floors are dropped lazily from a FIFO of expiry
//! times, and past the cap the oldest client is evicted (losing a floor only means
//! that client's next read may go to a replica the worker then double-checks).

use std::collections::{HashMap, VecDeque};

pub(crate) struct Floors {
    map: HashMap<String, (u64, f64)>,
    /// (client, expiry when queued), roughly oldest first.
    queue: VecDeque<(String, f64)>,
    cap: usize,
}

impl Floors {
    pub fn new(cap: usize) -> Self {
        Floors {
            map: HashMap::new(),
            queue: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The client's live floor, if any.
    pub fn get(&self, client: &str, now_ms: f64) -> Option<u64> {
        match self.map.get(client) {
            Some(&(floor, expires)) if now_ms < expires => Some(floor),
            _ => None,
        }
    }

    pub fn set(&mut self, client: &str, index: u64, expires_ms: f64, now_ms: f64) {
        self.drain(now_ms, false);
        if let Some(e) = self.map.get_mut(client) {
            e.0 = if now_ms < e.1 { e.0.max(index) } else { index };
            e.1 = expires_ms;
            return;
        }
        while self.map.len() >= self.cap {
            self.drain(now_ms, true);
        }
        self.map.insert(client.to_owned(), (index, expires_ms));
        self.queue.push_back((client.to_owned(), expires_ms));
    }

    /// Pops expired (or, with `force`, the oldest live) entries off the queue front.
    /// A client whose floor was extended since it was queued is re-queued with its
    /// new expiry instead of dropped.
    fn drain(&mut self, now_ms: f64, mut force: bool) {
        while let Some((client, queued)) = self.queue.front() {
            let Some(&(_, expires)) = self.map.get(client) else {
                self.queue.pop_front();
                continue;
            };
            if now_ms >= expires || force {
                if let Some((client, _)) = self.queue.pop_front() {
                    self.map.remove(&client);
                }
                force = false;
            } else if expires > *queued {
                if let Some((client, _)) = self.queue.pop_front() {
                    self.queue.push_back((client, expires));
                }
            } else {
                break;
            }
        }
        if force {
            // Queue exhausted without finding a live entry: cannot happen while the
            // map and queue agree, but never loop forever if they do not.
            self.map.clear();
        }
    }
}

/// SplitMix64: tiny, fast, seeded — no OS randomness (forbidden at a Worker's top
/// level) and reproducible in tests.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_expire_and_are_bounded() {
        let mut f = Floors::new(3);
        f.set("a", 10, 100.0, 0.0);
        assert_eq!(f.get("a", 50.0), Some(10));
        assert_eq!(f.get("a", 100.0), None);
        f.set("a", 5, 150.0, 60.0); // lower index does not lower a live floor
        assert_eq!(f.get("a", 70.0), Some(10));
        f.set("b", 1, 200.0, 70.0);
        f.set("c", 1, 200.0, 70.0);
        f.set("d", 1, 200.0, 70.0); // evicts the oldest: a
        assert_eq!(f.len(), 3);
        assert_eq!(f.get("a", 80.0), None);
        assert_eq!(f.get("d", 80.0), Some(1));
        f.set("e", 1, 400.0, 300.0); // everything else expired
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn rng_is_seeded_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            let x = a.below(5);
            assert!(x < 5);
            assert_eq!(x, b.below(5));
        }
    }
}
