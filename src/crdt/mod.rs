//! Conflict-free replicated data types.
//!
//! Every type implements [`Crdt`]: local operations are methods of the type, and
//! replicas exchange state two ways —
//!
//! - **merge** a whole other replica (`merge(&other)`), or
//! - **delta updates**: `encode_update_since(&their_version)` carries only what a
//!   replica at `their_version` lacks; `apply_update(&bytes)` applies it. Applying an
//!   update twice, or an old update after newer ones, is harmless.
//!
//! Both are joins in a semilattice: commutative, associative and idempotent, so
//! replicas that have received the same operations — in any order, with duplicates —
//! are identical (the property tests in `tests.rs` check exactly this for every type).
//!
//! Each replica has a site id (`u64`, see [`crate::clock::site_id_from_str`]) that
//! must be unique among the replicas that edit one object: it names the replica's
//! operations. Encodings do not contain the site: `decode(bytes, site)` says which
//! site the restored replica edits as.
//!
//! ```
//! use edgesync::crdt::{Crdt, GCounter};
//! let mut a = GCounter::new(1);
//! let mut b = GCounter::new(2);
//! a.increment(2).unwrap();
//! b.increment(3).unwrap();
//! let update = a.encode_update_since(&b.version()); // only what b lacks
//! b.apply_update(&update).unwrap();
//! b.apply_update(&update).unwrap(); // a duplicate changes nothing
//! a.merge(&b);
//! assert_eq!((a.value().unwrap(), b.value().unwrap()), (5, 5));
//! assert_eq!(a.encode(), b.encode());
//! ```

mod gcounter;
mod lww_map;
mod lww_register;
mod orset;
mod pncounter;

pub mod resolver;
pub mod text;

#[cfg(test)]
mod tests;

pub use gcounter::GCounter;
pub use lww_map::LWWMap;
pub use lww_register::LWWRegister;
pub use orset::ORSet;
pub use pncounter::PNCounter;

use crate::clock::{Timestamp, VersionVector};
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::sql::Value;

/// The operations every CRDT in this module shares.
pub trait Crdt: Sized {
    /// The site this replica's local operations are attributed to.
    fn site(&self) -> u64;

    /// Joins `other` into `self`. Infallible: any two replicas can merge.
    fn merge(&mut self, other: &Self);

    /// Which operations this replica has seen, per site.
    fn version(&self) -> VersionVector;

    /// What a replica at `since` lacks, as a delta update (`since` empty: everything).
    fn encode_update_since(&self, since: &VersionVector) -> Vec<u8>;

    /// Applies an update from [`Crdt::encode_update_since`]. All or nothing: on error
    /// the replica is unchanged.
    fn apply_update(&mut self, update: &[u8]) -> Result<()>;

    /// The full state (without the site id).
    fn encode(&self) -> Vec<u8>;

    /// Restores a full state as a replica editing as `site`. Use the site the state was
    /// encoded by, or a fresh one: two live replicas must never share a site.
    fn decode(bytes: &[u8], site: u64) -> Result<Self>;
}

/// One operation's identity: the `counter`-th operation of `site`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    pub site: u64,
    pub counter: u64,
}

pub(crate) fn corrupt(reason: &str) -> Error {
    Error::Decode {
        reason: reason.to_owned(),
        offset: 0,
    }
}

pub(crate) fn overflow(what: &str) -> Error {
    Error::InvalidOperation(format!("{what} would overflow 64 bits"))
}

// Value tags: part of the format, never reuse one.
const NULL: u8 = 0;
const INTEGER: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;
/// An LWW-Map tombstone in place of a value.
const DELETED: u8 = 5;

/// A tag byte, then the payload: zigzag varint, 8-byte little-endian float, or
/// length-prefixed bytes.
pub(crate) fn write_value(w: &mut Writer, v: &Value) {
    match v {
        Value::Null => w.u8(NULL),
        Value::Integer(i) => {
            w.u8(INTEGER);
            w.ivar(*i);
        }
        Value::Real(f) => {
            w.u8(REAL);
            w.f64(*f);
        }
        Value::Text(s) => {
            w.u8(TEXT);
            w.str(s);
        }
        Value::Blob(b) => {
            w.u8(BLOB);
            w.bytes(b);
        }
    }
}

pub(crate) fn read_value(r: &mut Reader) -> Result<Value> {
    read_opt_value(r)?.ok_or_else(|| corrupt("a deleted marker where a value must be"))
}

/// `None` is the tombstone of an LWW-Map entry.
pub(crate) fn write_opt_value(w: &mut Writer, v: Option<&Value>) {
    match v {
        Some(v) => write_value(w, v),
        None => w.u8(DELETED),
    }
}

pub(crate) fn read_opt_value(r: &mut Reader) -> Result<Option<Value>> {
    Ok(Some(match r.u8()? {
        NULL => Value::Null,
        INTEGER => Value::Integer(r.ivar()?),
        REAL => Value::Real(r.f64()?),
        TEXT => Value::Text(r.str()?.to_owned()),
        BLOB => Value::Blob(r.bytes()?.to_vec()),
        DELETED => return Ok(None),
        t => return Err(corrupt(&format!("unknown value tag {t}"))),
    }))
}

/// A value's identity as bytes: its encoding. Sets and tie-breaks compare values by
/// it, so `Integer(1)` and `Real(1.0)` are different elements, and equal floats are
/// equal bit patterns.
pub(crate) fn value_key(v: &Value) -> Vec<u8> {
    let mut w = Writer::new(crate::codec::Kind::ORSet);
    write_value(&mut w, v);
    w.finish().split_off(4)
}

/// One last-writer-wins write, shared by [`LWWRegister`] and [`LWWMap`]: the value
/// (`None`: deleted), its HLC timestamp, and its dot `(ts.site, counter)` which
/// versions and delta updates track.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LwwEntry {
    pub value: Option<Value>,
    pub ts: Timestamp,
    pub counter: u64,
}

impl LwwEntry {
    pub fn dot(&self) -> Dot {
        Dot {
            site: self.ts.site,
            counter: self.counter,
        }
    }

    /// Whether `self` beats `other`. Timestamps are unique per write, so ties only
    /// happen for the same write — or two replicas misusing one site id, where the
    /// counter and the value's bytes still give every replica the same winner.
    pub fn wins_over(&self, other: &LwwEntry) -> bool {
        let key = |e: &LwwEntry| e.value.as_ref().map(value_key);
        (self.ts, self.counter)
            .cmp(&(other.ts, other.counter))
            .then_with(|| key(self).cmp(&key(other)))
            .is_gt()
    }

    pub fn write(&self, w: &mut Writer) {
        self.ts.write(w);
        w.uvar(self.counter);
        write_opt_value(w, self.value.as_ref());
    }

    pub fn read(r: &mut Reader) -> Result<LwwEntry> {
        let ts = Timestamp::read(r)?;
        let counter = r.uvar()?;
        if counter == 0 {
            return Err(corrupt("operation counter 0"));
        }
        let value = read_opt_value(r)?;
        Ok(LwwEntry { value, ts, counter })
    }
}
