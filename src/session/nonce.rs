//! AES-GCM nonces that never repeat under one key.
//!
//! A nonce is `prefix (32 bits) || counter (64 bits, big-endian)`. Both the prefix
//! and the counter's starting value come from a 16-byte seed that the worker takes
//! from `crypto.getRandomValues` once per isolate; the counter then increments by
//! one per seal.
//!
//! Why this is unique enough:
//! - Within one `NonceSource` nonces are distinct by construction: the counter
//!   visits 2^64 values before coming back to its start, and [`NonceSource::next`]
//!   fails instead of wrapping there.
//! - Across isolates (which share the key), each isolate uses a run of consecutive
//!   values starting at a uniformly random 96-bit point. Two runs of lengths `a` and
//!   `b` overlap with probability at most `(a + b) / 2^96` — no worse than picking
//!   every nonce at random, which is what NIST SP 800-38D's bound assumes. So the
//!   usual rule applies: keep the total number of seals under one key well below
//!   2^32 (rotate the key long before; prepend a new one to the ring).
//!
//! An all-zero seed means the caller forgot to seed; it still works (unique within
//! the instance) but loses the cross-isolate argument, so don't.

use crate::{Error, Result};

/// Produces unique 96-bit nonces from a caller-provided random seed.
#[derive(Debug, Clone)]
pub struct NonceSource {
    prefix: [u8; 4],
    start: u64,
    issued: u64,
}

impl NonceSource {
    /// `seed` must be fresh randomness (e.g. `crypto.getRandomValues`). Bytes 0–3
    /// (xored with 12–15) form the prefix, bytes 4–11 the counter's start.
    ///
    /// ```
    /// use edgesync::session::NonceSource;
    /// let mut n = NonceSource::new([7; 16]);
    /// let (a, b) = (n.next().unwrap(), n.next().unwrap());
    /// assert_ne!(a, b);
    /// assert_eq!(a[..4], b[..4]);
    /// ```
    pub fn new(seed: [u8; 16]) -> Self {
        let mut prefix = [0; 4];
        for (i, p) in prefix.iter_mut().enumerate() {
            *p = seed[i] ^ seed[12 + i];
        }
        let mut start = [0; 8];
        start.copy_from_slice(&seed[4..12]);
        NonceSource {
            prefix,
            start: u64::from_be_bytes(start),
            issued: 0,
        }
    }

    /// The next nonce, or an error once 2^64 − 1 have been issued (reseed: build a
    /// new source from fresh randomness).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<[u8; 12]> {
        if self.issued == u64::MAX {
            return Err(Error::InvalidOperation(
                "nonce counter exhausted; reseed the session store".into(),
            ));
        }
        let counter = self.start.wrapping_add(self.issued);
        self.issued += 1;
        let mut n = [0; 12];
        n[..4].copy_from_slice(&self.prefix);
        n[4..].copy_from_slice(&counter.to_be_bytes());
        Ok(n)
    }

    /// How many nonces this source has issued.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    #[cfg(test)]
    pub(crate) fn set_issued(&mut self, n: u64) {
        self.issued = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_and_wraps_the_counter_not_the_nonce() {
        let mut seed = [0; 16];
        seed[4..12].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        let mut n = NonceSource::new(seed);
        let a = n.next().unwrap();
        let b = n.next().unwrap();
        let c = n.next().unwrap();
        assert_eq!(a[4..], (u64::MAX - 1).to_be_bytes());
        assert_eq!(b[4..], u64::MAX.to_be_bytes());
        assert_eq!(c[4..], 0u64.to_be_bytes());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(n.next().unwrap()));
        }
        assert_eq!(n.issued(), 10_003);
    }

    #[test]
    fn exhaustion_is_an_error() {
        let mut n = NonceSource::new([1; 16]);
        n.set_issued(u64::MAX - 1);
        assert!(n.next().is_ok());
        assert_eq!(n.next().unwrap_err().code(), "INVALID_OPERATION");
        assert_eq!(n.next().unwrap_err().code(), "INVALID_OPERATION");
    }

    #[test]
    fn prefix_mixes_both_ends_of_the_seed() {
        let mut s = [0; 16];
        s[12] = 0xAA;
        assert_eq!(NonceSource::new(s).next().unwrap()[0], 0xAA);
    }
}
