//! How many records one request carries, adapted to what the link and the server manage
//! within the client's `timeout`.
//!
//! A push chunk or a pull page is one request, and the client gives each request
//! `timeout` ms. On a slow link (or a server slowed by load) a full chunk of 2,000
//! records may never arrive in time: with a fixed size every attempt would time out
//! the same way and the replica would never converge, however often it synced. So a
//! timed-out request halves the size of the next ones (down to one record), and each
//! request answered in time doubles it again, up to the configured size — the same
//! shape as TCP's congestion window. The size outlives a failed `sync()`: the next
//! sync starts from what the last one learned.
//!
//! Halving is safe for a push whose request timed out but committed late: records are
//! unique in the server's log and every merge rule is idempotent, so sending them again
//! in smaller chunks changes nothing.

use std::cell::Cell;

use crate::error::Error;

/// The current request size (records) of one kind of request, between 1 and `max`.
#[derive(Debug)]
pub(crate) struct Pace {
    max: usize,
    now: Cell<usize>,
}

impl Pace {
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        Pace {
            max,
            now: Cell::new(max),
        }
    }

    /// The size the next request asks for.
    pub(crate) fn get(&self) -> usize {
        self.now.get()
    }

    /// A request answered in time: the next may be twice as large (up to the maximum).
    pub(crate) fn answered(&self) {
        self.now.set(self.now.get().saturating_mul(2).min(self.max));
    }

    /// A request of `sent` records got `e`. A timeout halves the next requests' size
    /// (below what was sent: a chunk cut short by bytes may have held fewer records than
    /// the size); any other failure leaves it. Returns `e`.
    pub(crate) fn failed(&self, sent: usize, e: Error) -> Error {
        if matches!(e, Error::Timeout { .. }) {
            self.now.set((sent.min(self.now.get()) / 2).max(1));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> Error {
        Error::Timeout {
            url: "http://x".into(),
            timeout_ms: 1,
        }
    }

    #[test]
    fn a_timeout_halves_what_was_sent_and_answers_grow_it_back_to_the_maximum() {
        let p = Pace::new(2_000);
        assert_eq!(p.get(), 2_000);
        let _ = p.failed(300, timeout()); // a chunk cut to 300 by bytes
        assert_eq!(p.get(), 150);
        for _ in 0..10 {
            let _ = p.failed(p.get(), timeout());
        }
        assert_eq!(p.get(), 1, "never below one record");
        for _ in 0..20 {
            p.answered();
        }
        assert_eq!(p.get(), 2_000, "never above the configured size");
    }

    #[test]
    fn other_failures_leave_the_size() {
        let p = Pace::new(100);
        let _ = p.failed(
            100,
            Error::Unreachable {
                url: "http://x".into(),
                reason: "refused".into(),
            },
        );
        assert_eq!(p.get(), 100);
        assert_eq!(Pace::new(0).get(), 1);
    }
}
