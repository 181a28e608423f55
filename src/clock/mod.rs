//! Clocks: the [`Hlc`] (hybrid logical clock) that timestamps last-writer-wins writes,
//! the [`VersionVector`] that says which operations a replica has seen, and the
//! [`PackedClock`], the same hybrid clock packed into one integer for the sync engine's
//! SQL.
//!
//! Site ids are `u64` everywhere. Applications that name their nodes with strings use
//! [`site_id_from_str`], a stable hash, so every runtime maps a name to the same id.
//!
//! ```
//! use edgesync::clock::{site_id_from_str, Hlc, VersionVector, Causality};
//! let site = site_id_from_str("edge-node-7");
//! let mut clock = Hlc::new(site, 60_000);
//! let t1 = clock.now(1_000).unwrap();
//! let t2 = clock.now(900).unwrap(); // the wall clock went backwards
//! assert!(t2 > t1);
//!
//! let mut a = VersionVector::new();
//! a.increment(1).unwrap();
//! let b = VersionVector::new();
//! assert_eq!(b.compare(&a), Causality::Before);
//! ```

mod hlc;
mod packed;
mod version_vector;

pub use hlc::{Hlc, Timestamp, DEFAULT_MAX_DRIFT_MS};
pub use packed::PackedClock;
pub use version_vector::{Causality, VersionVector};

/// A stable 64-bit site id for a string node id: FNV-1a 64 over its UTF-8 bytes.
///
/// FNV-1a is tiny, has no seed (so Rust, wasm and any other implementation agree
/// forever), and spreads short similar names ("node-1", "node-2") well. It is not
/// collision-resistant against an adversary: two replicas with the same site id would
/// corrupt each other's dots, so untrusted parties should not choose site names.
///
/// ```
/// use edgesync::clock::site_id_from_str;
/// assert_eq!(site_id_from_str(""), 0xcbf2_9ce4_8422_2325); // the FNV offset basis
/// assert_eq!(site_id_from_str("a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn site_id_from_str(name: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes().fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}
