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
//! // This machine's clock an hour ahead of the server's: reported, and corrected.
//! let hour = 3_600_000;
//! assert_eq!(c.correct(1_000_000, 1_000_000 + hour).unwrap().code(), "CLOCK_DRIFT");
//! assert!(c.tick(1_000_000 + hour) < (1_100_000i64 << 16));
//! ```

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct PackedClock {
    last: i64,
    max_drift_ms: u64,
    /// Added to the wall clock: the correction learned from the server's time when
    /// this machine's clock is off by more than the drift allowed (see
    /// [`PackedClock::correct`]).
    offset_ms: i64,
}

impl PackedClock {
    pub fn new(max_drift_ms: u64) -> Self {
        PackedClock {
            last: 0,
            max_drift_ms,
            offset_ms: 0,
        }
    }

    pub fn max_drift_ms(&self) -> u64 {
        self.max_drift_ms
    }

    /// The correction applied to the wall clock (ms).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// Sets the correction to the wall clock (ms), e.g. restored after a restart.
    pub fn set_offset(&mut self, offset_ms: i64) {
        self.offset_ms = offset_ms;
    }

    /// Compares this machine's clock (`wall_ms`, uncorrected) with a reference time
    /// (the server's, `reference_ms`): off by more than the drift allowed, later ticks
    /// use the reference's time instead (the offset), and `CLOCK_DRIFT` says so; within
    /// it, no correction. Returns the error to report when the correction changed.
    ///
    /// A clock running fast would otherwise win every last-writer-wins conflict for as
    /// long as it is ahead; a slow one would lose them all. Timestamps already given
    /// out are kept (the clock never goes back): the correction holds from now on.
    pub fn correct(&mut self, reference_ms: u64, wall_ms: u64) -> Option<Error> {
        let skew = wall_ms as i64 - reference_ms as i64;
        let offset = if skew.unsigned_abs() > self.max_drift_ms {
            -skew
        } else {
            0
        };
        let changed =
            (offset - self.offset_ms).unsigned_abs() > self.max_drift_ms / 2 || (offset == 0) != (self.offset_ms == 0);
        self.offset_ms = offset;
        (changed && offset != 0).then_some(Error::LocalClockSkew {
            skew_ms: skew,
            max_drift_ms: self.max_drift_ms,
        })
    }

    fn corrected(&self, wall_ms: u64) -> u64 {
        (wall_ms as i64).saturating_add(self.offset_ms).max(0) as u64
    }

    /// The last value handed out or observed.
    pub fn last(&self) -> i64 {
        self.last
    }

    /// A fresh timestamp for a local write.
    pub fn tick(&mut self, wall_ms: u64) -> i64 {
        let wall = (self.corrected(wall_ms).min(1 << 46) as i64) << 16;
        self.last = wall.max(self.last + 1);
        self.last
    }

    /// Takes a remote timestamp into account (after checking its drift).
    pub fn observe(&mut self, remote: i64, wall_ms: u64) -> Result<()> {
        let wall_ms = self.corrected(wall_ms);
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
