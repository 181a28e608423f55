//! The sync engine's hybrid logical clock, packed into one integer so SQL can compare it.
//!
//! `hlc = wall_ms << 16 | counter`. Every capture takes a fresh value, strictly above
//! the previous one even when the wall clock goes backwards; pulled records are
//! observed so a later local write always sorts after what the replica has seen. A
//! remote time further ahead than `max_drift_ms` is refused with `CLOCK_DRIFT` instead
//! of dragging the clock forward.
//!
//! ```
//! use edgesync::clock::PackedClock;
//! let mut c = PackedClock::new(60_000);
//! let a = c.tick(1_000);
//! let b = c.tick(999); // the wall clock went back: still later
//! assert!(b > a);
//! assert!(c.observe(5_000i64 << 16, 1_000).is_ok());
//! assert!(c.tick(1_000) > 5_000i64 << 16);
//! assert_eq!(c.observe(900_000i64 << 16, 1_000).unwrap_err().code(), "CLOCK_DRIFT");
//! ```

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct PackedClock {
    last: i64,
    max_drift_ms: u64,
}

impl PackedClock {
    pub fn new(max_drift_ms: u64) -> Self {
        PackedClock { last: 0, max_drift_ms }
    }

    /// The last value handed out or observed.
    pub fn last(&self) -> i64 {
        self.last
    }

    /// A fresh timestamp for a local write.
    pub fn tick(&mut self, wall_ms: u64) -> i64 {
        let wall = (wall_ms.min(1 << 46) as i64) << 16;
        self.last = wall.max(self.last + 1);
        self.last
    }

    /// Takes a remote timestamp into account (after checking its drift).
    pub fn observe(&mut self, remote: i64, wall_ms: u64) -> Result<()> {
        let remote_ms = (remote >> 16).max(0) as u64;
        if remote_ms > wall_ms.saturating_add(self.max_drift_ms) {
            return Err(Error::ClockDrift {
                remote_ms,
                drift_ms: remote_ms - wall_ms,
                max_drift_ms: self.max_drift_ms,
            });
        }
        self.last = self.last.max(remote);
        Ok(())
    }

    /// Restores the clock after a restart (the largest value in the database).
    pub fn restore(&mut self, last: i64) {
        self.last = self.last.max(last);
    }
}
