//! The resolver: one replica's collection of named CRDT objects, as edge apps use it.
//!
//! A [`Resolver`] belongs to one site (replica). It holds any number of objects, each
//! named by a string id and of one [`CrdtType`]; [`Resolver::get_crdt`] creates or
//! returns them, and [`Resolver::apply_operation`] edits them by operation name with
//! named [`Value`] arguments, so a JS app can drive every type through one call:
//!
//! | type | operations (arguments) |
//! |---|---|
//! | `gcounter` | `increment` (`amount` = 1, `nodeId`?) |
//! | `pncounter` | `increment`, `decrement` (`amount` = 1, `nodeId`?) |
//! | `orset` | `add`, `remove` (`value`) |
//! | `lwwregister` | `set` (`value`) |
//! | `lwwmap` | `set` (`key`, `value`), `delete` (`key`) |
//! | `text` | `insert` (`index`, `text`), `deleteText` (`index`, `length`) |
//!
//! `nodeId` (a string or integer) is recorded in the log only: a replica can only
//! write its own entries, so every increment is attributed to the resolver's site.
//! Unknown arguments, missing ones and wrongly typed ones are `INVALID_ARGUMENT`; an
//! operation the type does not have, an unknown type, a missing object, or an id
//! reused with another type is `INVALID_OPERATION`.
//!
//! **Operation log.** Every successful local operation is appended to the log (object
//! id, operation, arguments, HLC timestamp with the site). The log is local history:
//! it is persisted by [`Resolver::encode`] but not synced.
//!
//! **Sync.** [`Resolver::version`] is a [`ResolverVersion`]: each object's version
//! vector. [`Resolver::encode_updates_since`] packs, for every object the peer lacks
//! (unknown id, or operations not in its vector), that object's delta update, its
//! type, and the sender's version of it; [`Resolver::apply_updates`] applies them
//! (creating objects it does not have). Duplicates and stale updates are harmless. An
//! update whose object has another type here is refused before anything is applied.
//! Each object's update applies all or nothing; if one fails (e.g. `CLOCK_DRIFT`), the
//! objects before it in the update stay applied — which is harmless, as re-applying is
//! idempotent.
//!
//! **Conflict stats.** Every remote update or merge is compared with the local version
//! of its object ([`VersionVector::compare`](crate::clock::VersionVector::compare)):
//! `Concurrent` means both sides wrote without seeing each other, which
//! [`ConflictStats::concurrent`] counts. For LWW types it also counts values replaced
//! by a winning remote write vs. concurrent updates that left every local value in
//! place. Stats are local observations: they
//! are persisted by `encode` but not synced.
//!
//! **Format** ([`Kind::Resolver`](crate::codec::Kind::Resolver)): a sub-kind byte
//! (state, updates or version), then the payload. Encodings do not contain the site:
//! `decode(bytes, site)` says which site the restored resolver edits as.
//!
//! Files: `object.rs` (the types and one object of any of them), `ops.rs` (operations
//! by name and their arguments), `stats.rs` (conflict stats), `format.rs` (encodings
//! and sync), this file (the registry of named objects and the operation log).
//!
//! ```
//! use edgesync::crdt::resolver::{Args, Resolver};
//! use edgesync::Value;
//! let mut a = Resolver::new(1);
//! let mut b = Resolver::new(2);
//! a.get_crdt("likes", "pncounter").unwrap();
//! a.apply_operation("likes", "increment", &[("amount".into(), Value::Integer(3))], 1_000).unwrap();
//! b.apply_updates(&a.encode_updates_since(&b.version()), 1_000).unwrap();
//! b.apply_operation("likes", "decrement", &Args::new(), 1_001).unwrap();
//! a.merge(&b).unwrap();
//! assert_eq!(a.get("likes").unwrap().value_string(), "2");
//! assert_eq!(a.operation_log().len(), 1);
//! let restored = Resolver::decode(&a.encode(), 1).unwrap();
//! assert_eq!(restored.encode(), a.encode());
//! ```

mod format;
mod object;
mod ops;
mod stats;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::clock::{Hlc, Timestamp, DEFAULT_MAX_DRIFT_MS};
use crate::error::{Error, Result};
use crate::sql::Value;

pub use format::ResolverVersion;
use object::type_mismatch;
pub use object::{CrdtType, Object};
pub use ops::Args;
use stats::record;
pub use stats::ConflictStats;

/// One local operation, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub object: String,
    pub op: String,
    pub args: Args,
    /// When, by the resolver's hybrid logical clock; `time.site` is the writer.
    pub time: Timestamp,
}

struct Entry {
    object: Object,
    stats: ConflictStats,
}

/// One replica's named CRDT objects, operation log and conflict stats.
pub struct Resolver {
    site: u64,
    hlc: Hlc,
    objects: BTreeMap<String, Entry>,
    log: Vec<LogEntry>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("site", &self.site)
            .field("objects", &self.objects.keys().collect::<Vec<_>>())
            .field("log", &self.log.len())
            .finish()
    }
}

impl Resolver {
    /// An empty resolver editing as `site` (unique among replicas).
    pub fn new(site: u64) -> Self {
        Resolver {
            site,
            hlc: Hlc::new(site, DEFAULT_MAX_DRIFT_MS),
            objects: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    pub fn site(&self) -> u64 {
        self.site
    }

    /// Creates the object `id` of type `ty` (a [`CrdtType`] name), or returns the
    /// existing one; an existing object of another type is `INVALID_OPERATION`.
    pub fn get_crdt(&mut self, id: &str, ty: &str) -> Result<&mut Object> {
        let ty = CrdtType::parse(ty)?;
        self.get_or_create(id, ty)
    }

    fn get_or_create(&mut self, id: &str, ty: CrdtType) -> Result<&mut Object> {
        let site = self.site;
        let entry = self.objects.entry(id.to_owned()).or_insert_with(|| Entry {
            object: Object::new(ty, site),
            stats: ConflictStats::default(),
        });
        let have = entry.object.crdt_type();
        if have != ty {
            return Err(type_mismatch(id, have, ty));
        }
        Ok(&mut entry.object)
    }

    /// The object `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<&Object> {
        self.objects.get(id).map(|e| &e.object)
    }

    /// The object ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.objects.keys().map(String::as_str)
    }

    /// Applies the local operation `op` to the existing object `id` (see the module
    /// docs for operations and arguments) at wall-clock time `wall_ms`, and logs it.
    /// On error nothing changes and nothing is logged.
    pub fn apply_operation(&mut self, id: &str, op: &str, args: &[(String, Value)], wall_ms: u64) -> Result<()> {
        let entry = self.objects.get_mut(id).ok_or_else(|| {
            Error::InvalidOperation(format!("no object {id:?}; create it first with getCRDT(id, type)"))
        })?;
        // Time first: a clock failure must not leave an unlogged edit behind.
        let mut hlc = self.hlc.clone();
        let time = hlc.now(wall_ms)?;
        ops::apply(&mut entry.object, op, args, wall_ms)?;
        self.hlc = hlc;
        self.log.push(LogEntry {
            object: id.to_owned(),
            op: op.to_owned(),
            args: args.to_vec(),
            time,
        });
        Ok(())
    }

    /// The local operations, oldest first.
    pub fn operation_log(&self) -> &[LogEntry] {
        &self.log
    }

    /// Each object's conflict stats, with its type.
    pub fn conflict_stats(&self) -> impl Iterator<Item = (&str, CrdtType, ConflictStats)> {
        self.objects
            .iter()
            .map(|(id, e)| (id.as_str(), e.object.crdt_type(), e.stats))
    }

    /// Each object's version vector.
    pub fn version(&self) -> ResolverVersion {
        ResolverVersion(
            self.objects
                .iter()
                .map(|(id, e)| (id.clone(), e.object.version()))
                .collect(),
        )
    }

    /// [`Self::merge`] with LWW writes drift-checked against `wall_ms`, as
    /// [`Self::apply_updates`] does: on `CLOCK_DRIFT`, nothing changes.
    pub fn merge_at(&mut self, other: &Resolver, wall_ms: u64) -> Result<()> {
        for entry in other.objects.values() {
            match &entry.object {
                Object::LWWRegister(o) => o.check_drift(&self.hlc, wall_ms)?,
                Object::LWWMap(o) => o.check_drift(&self.hlc, wall_ms)?,
                _ => {}
            }
        }
        self.merge(other)
    }

    /// Joins every object of `other` into this resolver (creating missing ones). Type
    /// conflicts are checked first: on one, nothing changes.
    pub fn merge(&mut self, other: &Resolver) -> Result<()> {
        for (id, theirs) in &other.objects {
            if let Some(mine) = self.objects.get(id) {
                let (have, want) = (mine.object.crdt_type(), theirs.object.crdt_type());
                if have != want {
                    return Err(type_mismatch(id, have, want));
                }
            }
        }
        for (id, theirs) in &other.objects {
            let ty = theirs.object.crdt_type();
            let site = self.site;
            let entry = self.objects.entry(id.clone()).or_insert_with(|| Entry {
                object: Object::new(ty, site),
                stats: ConflictStats::default(),
            });
            let causality = entry.object.version().compare(&theirs.object.version());
            let lww = ty.is_lww().then(|| entry.object.lww_fingerprint());
            entry.object.merge(&theirs.object)?;
            record(&mut entry.stats, causality, lww, &entry.object);
        }
        Ok(())
    }
}
