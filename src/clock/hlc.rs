//! The hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
//!
//! A [`Timestamp`] is `(ms, counter, site)`: wall-clock milliseconds, a logical counter
//! that orders events within one millisecond (or while the wall clock stands still or
//! runs backwards), and the site id that makes every timestamp unique. Timestamps are
//! totally ordered by `(ms, counter, site)`, so two writes never tie.
//!
//! Why hybrid: timestamps stay close to real time (a last-writer-wins register picks
//! the write that happened later, as users expect), yet respect causality even when
//! clocks are skewed — a replica that has seen timestamp `t` only issues timestamps
//! greater than `t`.
//!
//! **Counter overflow.** If 2^32 events happen within one millisecond of clock time,
//! the clock moves to the next millisecond with counter 0 instead of failing: the
//! clock then runs at most 1 ms ahead of the wall clock per 4 billion events. Only at
//! `ms == u64::MAX` does it fail, with [`Error::InvalidOperation`].
//!
//! **Drift.** A remote timestamp more than `max_drift_ms` ahead of the local wall clock
//! is rejected with [`Error::ClockDrift`] and not adopted: otherwise one replica with a
//! clock set to 2099 would drag every clock it talks to into 2099.

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};

/// The default maximum drift accepted from a remote timestamp: one minute.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

/// A point in hybrid logical time. The derived order compares `ms`, then `counter`,
/// then `site` (field order matters).
///
/// ```
/// use edgesync::clock::Timestamp;
/// let a = Timestamp { ms: 5, counter: 9, site: 1 };
/// let b = Timestamp { ms: 6, counter: 0, site: 0 };
/// assert!(a < b);
/// assert!(Timestamp { site: 2, ..a } > a); // same instant: the site breaks the tie
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub ms: u64,
    pub counter: u32,
    pub site: u64,
}

impl Timestamp {
    /// Three varints: a current time in ms is 6 bytes, a small counter 1 byte.
    pub fn write(&self, w: &mut Writer) {
        w.uvar(self.ms);
        w.uvar(u64::from(self.counter));
        w.uvar(self.site);
    }

    pub fn read(r: &mut Reader) -> Result<Timestamp> {
        let ms = r.uvar()?;
        let counter = r.len(u32::MAX as usize)? as u32;
        let site = r.uvar()?;
        Ok(Timestamp { ms, counter, site })
    }
}

/// A hybrid logical clock for one site. Wall time is passed in by the caller (e.g.
/// `Date.now()` in JS), which keeps the clock deterministic and testable and works on
/// targets without a system clock.
///
/// ```
/// use edgesync::clock::{Hlc, Timestamp};
/// let mut hlc = Hlc::new(7, 1_000);
/// let t = hlc.now(50).unwrap();
/// assert_eq!(t, Timestamp { ms: 50, counter: 0, site: 7 });
/// // A remote event 500 ms in our future is within drift: adopted.
/// let r = hlc.observe(Timestamp { ms: 550, counter: 3, site: 9 }, 50).unwrap();
/// assert_eq!(r, Timestamp { ms: 550, counter: 4, site: 7 });
/// // 5 s in the future is not.
/// let far = Timestamp { ms: 5_050, counter: 0, site: 9 };
/// assert_eq!(hlc.observe(far, 50).unwrap_err().code(), "CLOCK_DRIFT");
/// ```
#[derive(Debug, Clone)]
pub struct Hlc {
    site: u64,
    max_drift_ms: u64,
    ms: u64,
    counter: u32,
}

impl Hlc {
    pub fn new(site: u64, max_drift_ms: u64) -> Self {
        Hlc {
            site,
            max_drift_ms,
            ms: 0,
            counter: 0,
        }
    }

    pub fn site(&self) -> u64 {
        self.site
    }

    pub fn max_drift_ms(&self) -> u64 {
        self.max_drift_ms
    }

    /// The last timestamp issued or witnessed (with this clock's site).
    pub fn last(&self) -> Timestamp {
        Timestamp {
            ms: self.ms,
            counter: self.counter,
            site: self.site,
        }
    }

    /// A new timestamp for a local event: greater than every timestamp this clock has
    /// issued or witnessed, even if `wall_ms` went backwards.
    pub fn now(&mut self, wall_ms: u64) -> Result<Timestamp> {
        if wall_ms > self.ms {
            self.ms = wall_ms;
            self.counter = 0;
        } else {
            self.tick()?;
        }
        Ok(self.last())
    }

    /// Merges a remote timestamp (a received event) and returns the timestamp of the
    /// receipt, which is greater than both `remote` and everything seen locally.
    /// Fails with [`Error::ClockDrift`], leaving the clock unchanged, if `remote` is more
    /// than `max_drift_ms` ahead of `wall_ms`.
    pub fn observe(&mut self, remote: Timestamp, wall_ms: u64) -> Result<Timestamp> {
        self.check_drift(remote, wall_ms)?;
        let ms = wall_ms.max(self.ms).max(remote.ms);
        let base = match (ms == self.ms, ms == remote.ms) {
            (true, true) => Some(self.counter.max(remote.counter)),
            (true, false) => Some(self.counter),
            (false, true) => Some(remote.counter),
            (false, false) => None,
        };
        self.ms = ms;
        match base {
            Some(c) => {
                self.counter = c;
                self.tick()?;
            }
            None => self.counter = 0,
        }
        Ok(self.last())
    }

    /// Fails with [`Error::ClockDrift`] if `remote` is too far ahead of `wall_ms`.
    pub fn check_drift(&self, remote: Timestamp, wall_ms: u64) -> Result<()> {
        if remote.ms > wall_ms.saturating_add(self.max_drift_ms) {
            return Err(Error::ClockDrift {
                remote_ms: remote.ms,
                drift_ms: remote.ms - wall_ms,
                max_drift_ms: self.max_drift_ms,
            });
        }
        Ok(())
    }

    /// Advances the clock to at least `ts` without a drift check and without issuing a
    /// timestamp. Used for timestamps already inside a document (a merged replica, a
    /// decoded state), so that the next local write is ordered after them.
    pub fn witness(&mut self, ts: Timestamp) {
        if (ts.ms, ts.counter) > (self.ms, self.counter) {
            self.ms = ts.ms;
            self.counter = ts.counter;
        }
    }

    /// counter + 1, or the next millisecond when the counter is exhausted.
    fn tick(&mut self) -> Result<()> {
        match self.counter.checked_add(1) {
            Some(c) => self.counter = c,
            None => {
                self.ms = self
                    .ms
                    .checked_add(1)
                    .ok_or_else(|| Error::InvalidOperation("hybrid clock exhausted (ms = u64::MAX)".into()))?;
                self.counter = 0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Kind;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Now(u64),
        Observe(Timestamp, u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        let ms = 0u64..2_000;
        prop_oneof![
            ms.clone().prop_map(Step::Now),
            (ms.clone(), any::<u32>(), 0u64..4, ms).prop_map(|(m, c, s, w)| Step::Observe(
                Timestamp {
                    ms: m,
                    counter: c % 4 + if c % 7 == 0 { u32::MAX - 4 } else { 0 },
                    site: s
                },
                w
            )),
        ]
    }

    proptest! {
        /// Every issued timestamp is greater than everything issued or observed before,
        /// whatever the wall clock does; rejected observations change nothing.
        #[test]
        fn monotonic_and_after_observed(steps in proptest::collection::vec(step(), 1..60)) {
            let mut hlc = Hlc::new(1, 500);
            let mut max_seen = Timestamp::default();
            for s in steps {
                let before = hlc.last();
                match s {
                    Step::Now(w) => {
                        let t = hlc.now(w).unwrap();
                        prop_assert!(t > max_seen && t.ms >= w);
                        max_seen = t;
                    }
                    Step::Observe(r, w) => match hlc.observe(r, w) {
                        Ok(t) => {
                            prop_assert!(t > max_seen && t > r && t.ms >= w);
                            max_seen = t;
                        }
                        Err(e) => {
                            prop_assert_eq!(e.code(), "CLOCK_DRIFT");
                            prop_assert!(r.ms > w + 500);
                            prop_assert_eq!(hlc.last(), before);
                        }
                    },
                }
            }
        }

        #[test]
        fn order_is_total_and_lexicographic(a in any::<(u64, u32, u64)>(), b in any::<(u64, u32, u64)>()) {
            let ta = Timestamp { ms: a.0, counter: a.1, site: a.2 };
            let tb = Timestamp { ms: b.0, counter: b.1, site: b.2 };
            prop_assert_eq!(ta.cmp(&tb), a.cmp(&b));
            prop_assert_eq!(ta == tb, a == b);
        }

        #[test]
        fn timestamp_round_trip(a in any::<(u64, u32, u64)>()) {
            let t = Timestamp { ms: a.0, counter: a.1, site: a.2 };
            let mut w = Writer::new(Kind::LWWRegister);
            t.write(&mut w);
            let b = w.finish();
            let mut r = Reader::new(&b, Kind::LWWRegister).unwrap();
            prop_assert_eq!(Timestamp::read(&mut r).unwrap(), t);
            r.end().unwrap();
        }
    }

    #[test]
    fn backwards_wall_clock() {
        let mut hlc = Hlc::new(3, 0);
        let a = hlc.now(1_000).unwrap();
        let b = hlc.now(10).unwrap();
        let c = hlc.now(1_000).unwrap();
        assert!(a < b && b < c);
        assert_eq!((b.ms, b.counter), (1_000, 1));
        assert_eq!(hlc.now(1_001).unwrap().counter, 0);
    }

    #[test]
    fn counter_overflow_moves_to_next_ms() {
        let mut hlc = Hlc::new(3, 0);
        hlc.witness(Timestamp {
            ms: 10,
            counter: u32::MAX,
            site: 9,
        });
        let t = hlc.now(10).unwrap();
        assert_eq!((t.ms, t.counter), (11, 0));
        hlc.witness(Timestamp {
            ms: u64::MAX,
            counter: u32::MAX,
            site: 9,
        });
        assert_eq!(hlc.now(0).unwrap_err().code(), "INVALID_OPERATION");
    }

    #[test]
    fn drift_is_rejected_not_adopted() {
        let mut hlc = Hlc::new(1, 100);
        hlc.now(1_000).unwrap();
        let far = Timestamp {
            ms: 1_101,
            counter: 0,
            site: 2,
        };
        match hlc.observe(far, 1_000) {
            Err(Error::ClockDrift {
                remote_ms,
                drift_ms,
                max_drift_ms,
            }) => {
                assert_eq!((remote_ms, drift_ms, max_drift_ms), (1_101, 101, 100));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(hlc.now(1_000).unwrap().ms, 1_000);
        assert!(hlc.observe(Timestamp { ms: 1_100, ..far }, 1_000).is_ok());
        // Saturating: a wall clock near u64::MAX cannot overflow the check.
        assert!(hlc.check_drift(far, u64::MAX).is_ok());
    }

    #[test]
    fn hostile_counter_is_rejected() {
        let mut w = Writer::new(Kind::LWWRegister);
        w.uvar(1);
        w.uvar(u64::from(u32::MAX) + 1);
        w.uvar(1);
        let b = w.finish();
        assert!(Timestamp::read(&mut Reader::new(&b, Kind::LWWRegister).unwrap()).is_err());
    }
}
