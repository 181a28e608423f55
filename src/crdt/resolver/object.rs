//! The object types a resolver holds ([`CrdtType`]) and one object of any of them
//! ([`Object`]): creation, decoding, updates and merges dispatched to the CRDT inside.

use super::super::text::Text;
use super::super::{Crdt, GCounter, LWWMap, LWWRegister, ORSet, PNCounter};
use crate::clock::{Timestamp, VersionVector};
use crate::codec::Kind;
use crate::error::{Error, Result};

/// The object types a resolver holds. The discriminants are part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CrdtType {
    GCounter = 0,
    PNCounter = 1,
    ORSet = 2,
    LWWRegister = 3,
    LWWMap = 4,
    Text = 5,
}

pub(super) const TYPES: [CrdtType; 6] = [
    CrdtType::GCounter,
    CrdtType::PNCounter,
    CrdtType::ORSet,
    CrdtType::LWWRegister,
    CrdtType::LWWMap,
    CrdtType::Text,
];

impl CrdtType {
    /// The lowercase name used by `get_crdt`: `gcounter`, `pncounter`, `orset`,
    /// `lwwregister`, `lwwmap`, `text`.
    pub fn name(self) -> &'static str {
        match self {
            CrdtType::GCounter => "gcounter",
            CrdtType::PNCounter => "pncounter",
            CrdtType::ORSet => "orset",
            CrdtType::LWWRegister => "lwwregister",
            CrdtType::LWWMap => "lwwmap",
            CrdtType::Text => "text",
        }
    }

    /// Parses a type name (case-insensitive).
    pub fn parse(name: &str) -> Result<CrdtType> {
        let lower = name.to_ascii_lowercase();
        TYPES.into_iter().find(|t| t.name() == lower).ok_or_else(|| {
            Error::InvalidOperation(format!(
                "unknown CRDT type {name:?}; use one of gcounter, pncounter, orset, lwwregister, lwwmap, text"
            ))
        })
    }

    pub(super) fn from_byte(b: u8) -> Option<CrdtType> {
        TYPES.into_iter().find(|t| *t as u8 == b)
    }

    /// How concurrent writes to this type are resolved.
    pub fn rule(self) -> &'static str {
        match self {
            CrdtType::GCounter | CrdtType::PNCounter => "counter: sum",
            CrdtType::ORSet => "orset: add-wins",
            CrdtType::LWWRegister | CrdtType::LWWMap => "lww: later timestamp wins",
            CrdtType::Text => "text: merged",
        }
    }

    pub(super) fn is_lww(self) -> bool {
        matches!(self, CrdtType::LWWRegister | CrdtType::LWWMap)
    }

    pub(super) fn operations(self) -> &'static str {
        match self {
            CrdtType::GCounter => "increment",
            CrdtType::PNCounter => "increment, decrement",
            CrdtType::ORSet => "add, remove",
            CrdtType::LWWRegister => "set",
            CrdtType::LWWMap => "set, delete",
            CrdtType::Text => "insert, deleteText",
        }
    }

    pub(super) fn update_kind(self) -> Kind {
        match self {
            CrdtType::GCounter => Kind::GCounterUpdate,
            CrdtType::PNCounter => Kind::PNCounterUpdate,
            CrdtType::ORSet => Kind::ORSetUpdate,
            CrdtType::LWWRegister => Kind::LWWRegisterUpdate,
            CrdtType::LWWMap => Kind::LWWMapUpdate,
            CrdtType::Text => Kind::TextUpdate,
        }
    }
}

/// One named object.
#[derive(Debug, Clone)]
pub enum Object {
    GCounter(GCounter),
    PNCounter(PNCounter),
    ORSet(ORSet),
    LWWRegister(LWWRegister),
    LWWMap(LWWMap),
    Text(Text),
}

/// Calls `$body` with `$o` bound to the inner CRDT, whatever its type.
macro_rules! each {
    ($obj:expr, $o:ident => $body:expr) => {
        match $obj {
            Object::GCounter($o) => $body,
            Object::PNCounter($o) => $body,
            Object::ORSet($o) => $body,
            Object::LWWRegister($o) => $body,
            Object::LWWMap($o) => $body,
            Object::Text($o) => $body,
        }
    };
}

impl Object {
    pub(super) fn new(ty: CrdtType, site: u64) -> Object {
        match ty {
            CrdtType::GCounter => Object::GCounter(GCounter::new(site)),
            CrdtType::PNCounter => Object::PNCounter(PNCounter::new(site)),
            CrdtType::ORSet => Object::ORSet(ORSet::new(site)),
            CrdtType::LWWRegister => Object::LWWRegister(LWWRegister::new(site)),
            CrdtType::LWWMap => Object::LWWMap(LWWMap::new(site)),
            CrdtType::Text => Object::Text(Text::new(site)),
        }
    }

    pub fn crdt_type(&self) -> CrdtType {
        match self {
            Object::GCounter(_) => CrdtType::GCounter,
            Object::PNCounter(_) => CrdtType::PNCounter,
            Object::ORSet(_) => CrdtType::ORSet,
            Object::LWWRegister(_) => CrdtType::LWWRegister,
            Object::LWWMap(_) => CrdtType::LWWMap,
            Object::Text(_) => CrdtType::Text,
        }
    }

    pub fn version(&self) -> VersionVector {
        match self {
            Object::GCounter(o) => o.version(),
            Object::PNCounter(o) => o.version(),
            Object::ORSet(o) => o.version(),
            Object::LWWRegister(o) => o.version(),
            Object::LWWMap(o) => o.version(),
            Object::Text(t) => t.version().clone(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        each!(self, o => o.encode())
    }

    pub fn encode_update_since(&self, since: &VersionVector) -> Vec<u8> {
        each!(self, o => o.encode_update_since(since))
    }

    pub(super) fn decode(ty: CrdtType, bytes: &[u8], site: u64) -> Result<Object> {
        Ok(match ty {
            CrdtType::GCounter => Object::GCounter(GCounter::decode(bytes, site)?),
            CrdtType::PNCounter => Object::PNCounter(PNCounter::decode(bytes, site)?),
            CrdtType::ORSet => Object::ORSet(ORSet::decode(bytes, site)?),
            CrdtType::LWWRegister => Object::LWWRegister(LWWRegister::decode(bytes, site)?),
            CrdtType::LWWMap => Object::LWWMap(LWWMap::decode(bytes, site)?),
            CrdtType::Text => {
                // Checked whole: the resolver encodes updates from it without asking.
                let t = Text::decode(bytes, site)?;
                t.validate()?;
                Object::Text(t)
            }
        })
    }

    /// LWW writes are drift-checked against `wall_ms`.
    pub(super) fn apply_update(&mut self, bytes: &[u8], wall_ms: u64) -> Result<()> {
        match self {
            Object::GCounter(o) => o.apply_update(bytes),
            Object::PNCounter(o) => o.apply_update(bytes),
            Object::ORSet(o) => o.apply_update(bytes),
            Object::LWWRegister(o) => o.apply_update_at(bytes, wall_ms),
            Object::LWWMap(o) => o.apply_update_at(bytes, wall_ms),
            Object::Text(o) => o.apply_update(bytes),
        }
    }

    /// Same type required (checked by the caller).
    pub(super) fn merge(&mut self, other: &Object) -> Result<()> {
        match (self, other) {
            (Object::GCounter(a), Object::GCounter(b)) => a.merge(b),
            (Object::PNCounter(a), Object::PNCounter(b)) => a.merge(b),
            (Object::ORSet(a), Object::ORSet(b)) => a.merge(b),
            (Object::LWWRegister(a), Object::LWWRegister(b)) => a.merge(b),
            (Object::LWWMap(a), Object::LWWMap(b)) => a.merge(b),
            (Object::Text(a), Object::Text(b)) => a.merge(b)?,
            (a, b) => return Err(type_mismatch("?", a.crdt_type(), b.crdt_type())),
        }
        Ok(())
    }

    /// The LWW timestamps that decide the visible values (register: its write; map:
    /// each live key's), to see what a remote update overwrote.
    pub(super) fn lww_fingerprint(&self) -> Vec<(String, Timestamp)> {
        match self {
            Object::LWWRegister(r) => r.timestamp().map(|t| (String::new(), t)).into_iter().collect(),
            Object::LWWMap(m) => m
                .keys()
                .filter_map(|k| m.timestamp(k).map(|t| (k.to_owned(), t)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// What a user sees, as text: the counter value, the set's values, the register's
    /// value, the map's entries, the text itself. For tests and debugging.
    pub fn value_string(&self) -> String {
        match self {
            Object::GCounter(c) => c.value().map_or_else(|e| e.to_string(), |v| v.to_string()),
            Object::PNCounter(c) => c.value().map_or_else(|e| e.to_string(), |v| v.to_string()),
            Object::ORSet(s) => format!("{:?}", s.values().collect::<Vec<_>>()),
            Object::LWWRegister(r) => format!("{:?}", r.get()),
            Object::LWWMap(m) => format!("{:?}", m.entries().collect::<Vec<_>>()),
            Object::Text(t) => t.text(),
        }
    }
}

pub(super) fn type_mismatch(id: &str, have: CrdtType, want: CrdtType) -> Error {
    Error::InvalidOperation(format!("object {id:?} is a {}, not a {}", have.name(), want.name()))
}
