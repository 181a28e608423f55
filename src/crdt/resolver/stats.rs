//! Conflict stats: how many remote updates and merges each object saw, how many of
//! them were concurrent with the local version, and for LWW types which side won.

use std::collections::{BTreeMap, BTreeSet};

use super::object::Object;
use crate::clock::{Causality, Timestamp};

/// How many concurrent writes one object saw, and how they were resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConflictStats {
    /// Remote updates and merges that brought something new.
    pub remote_updates: u64,
    /// Of those, how many were concurrent with the local version.
    pub concurrent: u64,
    /// LWW types: values (a register's, a map key's) replaced by a winning remote write
    /// in a concurrent update.
    pub overwritten_by_remote: u64,
    /// LWW types: concurrent updates that left every local value in place.
    pub kept_local: u64,
}

/// Counts one remote update or merge: `causality` is the local version before it
/// compared with the remote one; `lww_before` the LWW fingerprint before it.
pub(super) fn record(
    stats: &mut ConflictStats,
    causality: Causality,
    lww_before: Option<Vec<(String, Timestamp)>>,
    after: &Object,
) {
    if matches!(causality, Causality::After | Causality::Equal) {
        return; // nothing new
    }
    stats.remote_updates += 1;
    if causality != Causality::Concurrent {
        return;
    }
    stats.concurrent += 1;
    if let Some(before) = lww_before {
        let now = after.lww_fingerprint();
        let before: BTreeMap<_, _> = before.into_iter().collect();
        let now: BTreeMap<_, _> = now.into_iter().collect();
        let changed = before
            .keys()
            .chain(now.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| before.get(*k) != now.get(*k))
            .count() as u64;
        if changed == 0 {
            stats.kept_local += 1;
        } else {
            stats.overwritten_by_remote += changed;
        }
    }
}
