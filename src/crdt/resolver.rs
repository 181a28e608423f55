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
//! of its object ([`VersionVector::compare`]): `Concurrent` means both sides wrote
//! without seeing each other, which [`ConflictStats::concurrent`] counts. For LWW
//! types it also counts values replaced by a winning remote write vs. concurrent
//! updates that left every local value in place. Stats are local observations: they
//! are persisted by `encode` but not synced.
//!
//! **Format** ([`Kind::Resolver`]): a sub-kind byte (state, updates or version), then
//! the payload. Encodings do not contain the site: `decode(bytes, site)` says which
//! site the restored resolver edits as.
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

use std::collections::BTreeMap;

use super::text::Text;
use super::{corrupt, read_value, write_value, Crdt, GCounter, LWWMap, LWWRegister, ORSet, PNCounter};
use crate::clock::{Causality, Hlc, Timestamp, VersionVector, DEFAULT_MAX_DRIFT_MS};
use crate::codec::{Kind, Reader, Writer};
use crate::error::{Error, Result};
use crate::remote::Value;

/// Named operation arguments, in the order given.
pub type Args = Vec<(String, Value)>;

// Sub-kinds inside `Kind::Resolver`: part of the format, never reuse one.
const STATE: u8 = 0;
const UPDATES: u8 = 1;
const VERSION: u8 = 2;

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

const TYPES: [CrdtType; 6] = [
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

    fn from_byte(b: u8) -> Option<CrdtType> {
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

    fn is_lww(self) -> bool {
        matches!(self, CrdtType::LWWRegister | CrdtType::LWWMap)
    }

    fn operations(self) -> &'static str {
        match self {
            CrdtType::GCounter => "increment",
            CrdtType::PNCounter => "increment, decrement",
            CrdtType::ORSet => "add, remove",
            CrdtType::LWWRegister => "set",
            CrdtType::LWWMap => "set, delete",
            CrdtType::Text => "insert, deleteText",
        }
    }

    fn update_kind(self) -> Kind {
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
    fn new(ty: CrdtType, site: u64) -> Object {
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

    fn decode(ty: CrdtType, bytes: &[u8], site: u64) -> Result<Object> {
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
    fn apply_update(&mut self, bytes: &[u8], wall_ms: u64) -> Result<()> {
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
    fn merge(&mut self, other: &Object) -> Result<()> {
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
    fn lww_fingerprint(&self) -> Vec<(String, Timestamp)> {
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

fn type_mismatch(id: &str, have: CrdtType, want: CrdtType) -> Error {
    Error::InvalidOperation(format!("object {id:?} is a {}, not a {}", have.name(), want.name()))
}

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

/// One local operation, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub object: String,
    pub op: String,
    pub args: Args,
    /// When, by the resolver's hybrid logical clock; `time.site` is the writer.
    pub time: Timestamp,
}

/// Each object's version vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverVersion(pub BTreeMap<String, VersionVector>);

impl ResolverVersion {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Resolver);
        w.u8(VERSION);
        w.uvar(self.0.len() as u64);
        for (id, vv) in &self.0 {
            w.str(id);
            vv.write(&mut w);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<ResolverVersion> {
        let mut r = Reader::new(bytes, Kind::Resolver)?;
        sub_kind(&mut r, VERSION)?;
        let n = r.count(2)?;
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let id = r.str()?.to_owned();
            let vv = VersionVector::read(&mut r)?;
            if map.insert(id, vv).is_some() {
                return Err(corrupt("an object id appears twice"));
            }
        }
        r.end()?;
        Ok(ResolverVersion(map))
    }
}

fn sub_kind(r: &mut Reader, want: u8) -> Result<()> {
    let got = r.u8()?;
    if got == want {
        return Ok(());
    }
    let name = |k| match k {
        STATE => "a resolver state",
        UPDATES => "resolver updates",
        VERSION => "a resolver version",
        _ => "unknown resolver data",
    };
    Err(corrupt(&format!(
        "expected {}, found {} (sub-kind {got})",
        name(want),
        name(got)
    )))
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

fn arg<'a>(args: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    args.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn required<'a>(args: &'a [(String, Value)], op: &str, name: &str) -> Result<&'a Value> {
    arg(args, name).ok_or_else(|| Error::InvalidArgument(format!("{op}: argument `{name}` is required")))
}

fn non_negative(v: &Value, op: &str, name: &str) -> Result<u64> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        other => Err(Error::InvalidArgument(format!(
            "{op}: `{name}` must be a non-negative integer, not {other:?}"
        ))),
    }
}

fn string<'a>(v: &'a Value, op: &str, name: &str) -> Result<&'a str> {
    match v {
        Value::Text(s) => Ok(s),
        other => Err(Error::InvalidArgument(format!(
            "{op}: `{name}` must be a string, not {other:?}"
        ))),
    }
}

/// Rejects arguments the operation does not take (typos must not pass silently).
fn only(args: &[(String, Value)], op: &str, allowed: &[&str]) -> Result<()> {
    for (k, _) in args {
        if !allowed.contains(&k.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "{op}: unknown argument `{k}` (takes {})",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            )));
        }
    }
    let mut seen: Vec<&str> = args.iter().map(|(k, _)| k.as_str()).collect();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::InvalidArgument(format!("{op}: an argument is given twice")));
    }
    Ok(())
}

fn amount(args: &[(String, Value)], op: &str) -> Result<u64> {
    only(args, op, &["amount", "nodeId"])?;
    if let Some(n) = arg(args, "nodeId") {
        if !matches!(n, Value::Text(_) | Value::Integer(_) | Value::Null) {
            return Err(Error::InvalidArgument(format!(
                "{op}: `nodeId` must be a string or an integer, not {n:?}"
            )));
        }
    }
    arg(args, "amount").map_or(Ok(1), |v| non_negative(v, op, "amount"))
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
        let ty = entry.object.crdt_type();
        let unknown = || {
            Error::InvalidOperation(format!(
                "a {} has no operation {op:?} (it has: {})",
                ty.name(),
                ty.operations()
            ))
        };
        // Time first: a clock failure must not leave an unlogged edit behind.
        let mut hlc = self.hlc.clone();
        let time = hlc.now(wall_ms)?;
        match (&mut entry.object, op) {
            (Object::GCounter(c), "increment") => {
                c.increment(amount(args, op)?)?;
            }
            (Object::PNCounter(c), "increment") => {
                c.increment(amount(args, op)?)?;
            }
            (Object::PNCounter(c), "decrement") => {
                c.decrement(amount(args, op)?)?;
            }
            (Object::ORSet(s), "add" | "remove") => {
                only(args, op, &["value"])?;
                let v = required(args, op, "value")?;
                if op == "add" {
                    s.add(v.clone())?;
                } else {
                    s.remove(v)?;
                }
            }
            (Object::LWWRegister(r), "set") => {
                only(args, op, &["value"])?;
                r.set(required(args, op, "value")?.clone(), wall_ms)?;
            }
            (Object::LWWMap(m), "set") => {
                only(args, op, &["key", "value"])?;
                let key = string(required(args, op, "key")?, op, "key")?;
                m.set(key, required(args, op, "value")?.clone(), wall_ms)?;
            }
            (Object::LWWMap(m), "delete") => {
                only(args, op, &["key"])?;
                let key = string(required(args, op, "key")?, op, "key")?;
                m.delete(key, wall_ms)?;
            }
            (Object::Text(t), "insert") => {
                only(args, op, &["index", "text"])?;
                let index = non_negative(required(args, op, "index")?, op, "index")?;
                let text = string(required(args, op, "text")?, op, "text")?;
                t.insert(to_usize(index)?, text)?;
            }
            (Object::Text(t), "deleteText") => {
                only(args, op, &["index", "length"])?;
                let index = non_negative(required(args, op, "index")?, op, "index")?;
                let length = non_negative(required(args, op, "length")?, op, "length")?;
                t.delete(to_usize(index)?, to_usize(length)?)?;
            }
            _ => return Err(unknown()),
        }
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

    /// What a resolver at `since` lacks: objects it does not know, and for the others
    /// the operations not in its vector.
    pub fn encode_updates_since(&self, since: &ResolverVersion) -> Vec<u8> {
        let mut w = Writer::new(Kind::Resolver);
        w.u8(UPDATES);
        let parts: Vec<(&String, &Entry, VersionVector)> = self
            .objects
            .iter()
            .filter_map(|(id, e)| {
                let mine = e.object.version();
                match since.0.get(id) {
                    Some(theirs) if theirs.includes_all(&mine) => None,
                    _ => Some((id, e, mine)),
                }
            })
            .collect();
        w.uvar(parts.len() as u64);
        let empty = VersionVector::new();
        for (id, e, mine) in parts {
            w.str(id);
            w.u8(e.object.crdt_type() as u8);
            mine.write(&mut w);
            w.bytes(&e.object.encode_update_since(since.0.get(id).unwrap_or(&empty)));
        }
        w.finish()
    }

    /// Applies [`Resolver::encode_updates_since`] output; LWW writes more than the max
    /// drift ahead of `wall_ms` are refused (`CLOCK_DRIFT`).
    pub fn apply_updates(&mut self, bytes: &[u8], wall_ms: u64) -> Result<()> {
        let mut r = Reader::new(bytes, Kind::Resolver)?;
        sub_kind(&mut r, UPDATES)?;
        let n = r.count(4)?;
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.str()?;
            let ty = read_type(&mut r)?;
            let vv = VersionVector::read(&mut r)?;
            let update = r.bytes()?;
            if Reader::peek_kind(update)? != ty.update_kind() {
                return Err(corrupt(&format!("object {id:?}: not a {} update", ty.name())));
            }
            if let Some(e) = self.objects.get(id) {
                let have = e.object.crdt_type();
                if have != ty {
                    return Err(type_mismatch(id, have, ty));
                }
            }
            parts.push((id, ty, vv, update));
        }
        r.end()?;
        for (id, ty, vv, update) in parts {
            let site = self.site;
            let entry = self.objects.entry(id.to_owned()).or_insert_with(|| Entry {
                object: Object::new(ty, site),
                stats: ConflictStats::default(),
            });
            let before = entry.object.version();
            let causality = before.compare(&vv);
            let lww = ty.is_lww().then(|| entry.object.lww_fingerprint());
            entry.object.apply_update(update, wall_ms)?;
            record(&mut entry.stats, causality, lww, &entry.object);
        }
        Ok(())
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

    /// The whole resolver: objects (with their stats) and the operation log.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Resolver);
        w.u8(STATE);
        w.uvar(self.objects.len() as u64);
        for (id, e) in &self.objects {
            w.str(id);
            w.u8(e.object.crdt_type() as u8);
            w.bytes(&e.object.encode());
            let s = e.stats;
            for n in [s.remote_updates, s.concurrent, s.overwritten_by_remote, s.kept_local] {
                w.uvar(n);
            }
        }
        w.uvar(self.log.len() as u64);
        for l in &self.log {
            w.str(&l.object);
            w.str(&l.op);
            w.uvar(l.args.len() as u64);
            for (k, v) in &l.args {
                w.str(k);
                write_value(&mut w, v);
            }
            l.time.write(&mut w);
        }
        w.finish()
    }

    /// Restores [`Resolver::encode`] output as a resolver editing as `site`.
    pub fn decode(bytes: &[u8], site: u64) -> Result<Resolver> {
        let mut r = Reader::new(bytes, Kind::Resolver)?;
        sub_kind(&mut r, STATE)?;
        let mut res = Resolver::new(site);
        let n = r.count(8)?;
        for _ in 0..n {
            let id = r.str()?.to_owned();
            let ty = read_type(&mut r)?;
            let object = Object::decode(ty, r.bytes()?, site)?;
            let mut s = [0u64; 4];
            for x in &mut s {
                *x = r.uvar()?;
            }
            let stats = ConflictStats {
                remote_updates: s[0],
                concurrent: s[1],
                overwritten_by_remote: s[2],
                kept_local: s[3],
            };
            if res.objects.insert(id, Entry { object, stats }).is_some() {
                return Err(corrupt("an object id appears twice"));
            }
        }
        let n = r.count(6)?;
        res.log.reserve(n);
        for _ in 0..n {
            let object = r.str()?.to_owned();
            let op = r.str()?.to_owned();
            let k = r.count(2)?;
            let mut args = Vec::with_capacity(k);
            for _ in 0..k {
                let name = r.str()?.to_owned();
                args.push((name, read_value(&mut r)?));
            }
            let time = Timestamp::read(&mut r)?;
            // The next local operation must be logged after every one restored.
            res.hlc.witness(time);
            res.log.push(LogEntry { object, op, args, time });
        }
        r.end()?;
        Ok(res)
    }
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::InvalidArgument(format!("{n} is too large a position")))
}

fn read_type(r: &mut Reader) -> Result<CrdtType> {
    let b = r.u8()?;
    CrdtType::from_byte(b).ok_or_else(|| corrupt(&format!("unknown object type {b}")))
}

/// Counts one remote update or merge: `causality` is the local version before it
/// compared with the remote one; `lww_before` the LWW fingerprint before it.
fn record(
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
            .collect::<std::collections::BTreeSet<_>>()
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(pairs: &[(&str, Value)]) -> Args {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    const OBJECTS: [(&str, &str); 6] = [
        ("likes", "gcounter"),
        ("stock", "pncounter"),
        ("tags", "orset"),
        ("title", "lwwregister"),
        ("profile", "lwwmap"),
        ("doc", "text"),
    ];

    fn setup(site: u64) -> Resolver {
        let mut r = Resolver::new(site);
        for (id, ty) in OBJECTS {
            r.get_crdt(id, ty).unwrap();
        }
        r
    }

    #[test]
    fn operations_and_validation() {
        let mut r = Resolver::new(7);
        r.get_crdt("likes", "GCounter").unwrap();
        let code = |e: Error| e.code();
        assert_eq!(code(r.get_crdt("likes", "text").unwrap_err()), "INVALID_OPERATION");
        assert_eq!(code(r.get_crdt("x", "nope").unwrap_err()), "INVALID_OPERATION");
        r.apply_operation(
            "likes",
            "increment",
            &a(&[("nodeId", "n1".into()), ("amount", Value::Integer(4))]),
            10,
        )
        .unwrap();
        r.apply_operation("likes", "increment", &Args::new(), 11).unwrap();
        assert_eq!(r.get("likes").unwrap().value_string(), "5");
        let bad = [("likes", "decrement", a(&[])), ("missing", "increment", a(&[]))];
        for (id, op, args) in bad {
            assert_eq!(
                code(r.apply_operation(id, op, &args, 12).unwrap_err()),
                "INVALID_OPERATION"
            );
        }
        let bad_args = [
            a(&[("amount", Value::Integer(-1))]),
            a(&[("amount", Value::Real(1.5))]),
            a(&[("amonut", Value::Integer(1))]),
            a(&[("nodeId", Value::Real(0.5))]),
            a(&[("amount", Value::Integer(1)), ("amount", Value::Integer(2))]),
        ];
        for args in bad_args {
            assert_eq!(
                code(r.apply_operation("likes", "increment", &args, 12).unwrap_err()),
                "INVALID_ARGUMENT"
            );
        }
        r.get_crdt("doc", "text").unwrap();
        r.apply_operation(
            "doc",
            "insert",
            &a(&[("index", Value::Integer(0)), ("text", "héllo".into())]),
            13,
        )
        .unwrap();
        r.apply_operation(
            "doc",
            "deleteText",
            &a(&[("index", Value::Integer(1)), ("length", Value::Integer(1))]),
            14,
        )
        .unwrap();
        assert_eq!(r.get("doc").unwrap().value_string(), "hllo");
        assert!(r
            .apply_operation(
                "doc",
                "insert",
                &a(&[("index", Value::Integer(99)), ("text", "x".into())]),
                15
            )
            .is_err());
        assert_eq!(
            code(
                r.apply_operation("doc", "insert", &a(&[("index", Value::Integer(0))]), 15)
                    .unwrap_err()
            ),
            "INVALID_ARGUMENT"
        );
        r.get_crdt("m", "lwwmap").unwrap();
        r.apply_operation("m", "set", &a(&[("key", "k".into()), ("value", Value::Integer(1))]), 16)
            .unwrap();
        r.apply_operation("m", "delete", &a(&[("key", "k".into())]), 17)
            .unwrap();
        assert_eq!(
            code(
                r.apply_operation(
                    "m",
                    "set",
                    &a(&[("key", Value::Integer(1)), ("value", Value::Null)]),
                    18
                )
                .unwrap_err()
            ),
            "INVALID_ARGUMENT"
        );
        // Only successes are logged, in order, with increasing timestamps.
        let log = r.operation_log();
        assert_eq!(log.len(), 6);
        assert_eq!((log[0].object.as_str(), log[0].op.as_str()), ("likes", "increment"));
        assert!(log.windows(2).all(|w| w[0].time < w[1].time));
        assert!(log.iter().all(|l| l.time.site == 7));
    }

    #[test]
    fn conflict_stats_count_concurrent_writes() {
        let mut a1 = setup(1);
        let mut b1 = setup(2);
        let set = |v: i64| a(&[("value", Value::Integer(v))]);
        a1.apply_operation("title", "set", &set(1), 1_000).unwrap();
        b1.apply_operation("title", "set", &set(2), 2_000).unwrap(); // later: wins
        a1.apply_operation("likes", "increment", &Args::new(), 1_000).unwrap();
        b1.apply_operation("likes", "increment", &Args::new(), 1_000).unwrap();
        // Both send before either receives: each sees the other's write as concurrent.
        let to_a = b1.encode_updates_since(&a1.version());
        let to_b = a1.encode_updates_since(&b1.version());
        a1.apply_updates(&to_a, 2_000).unwrap();
        b1.apply_updates(&to_b, 2_000).unwrap();
        let stats = |r: &Resolver, id: &str| r.conflict_stats().find(|s| s.0 == id).unwrap().2;
        let t = stats(&a1, "title");
        assert_eq!(
            (t.remote_updates, t.concurrent, t.overwritten_by_remote, t.kept_local),
            (1, 1, 1, 0)
        );
        let t = stats(&b1, "title");
        assert_eq!(
            (t.remote_updates, t.concurrent, t.overwritten_by_remote, t.kept_local),
            (1, 1, 0, 1)
        );
        assert_eq!(stats(&a1, "likes").concurrent, 1);
        assert_eq!(a1.get("title").unwrap().value_string(), "Some(Integer(2))");
        // A duplicate is not counted again; a sequential update is not concurrent.
        a1.apply_updates(&b1.encode_updates_since(&ResolverVersion::default()), 2_000)
            .unwrap();
        b1.apply_operation("likes", "increment", &Args::new(), 3_000).unwrap();
        a1.merge(&b1).unwrap();
        let l = stats(&a1, "likes");
        assert_eq!((l.remote_updates, l.concurrent), (2, 1));
        // Stats survive encode/decode.
        let d = Resolver::decode(&a1.encode(), 1).unwrap();
        assert_eq!(stats(&d, "likes"), l);
    }

    #[test]
    fn updates_create_objects_and_refuse_type_conflicts() {
        let mut a1 = Resolver::new(1);
        let mut b1 = Resolver::new(2);
        a1.get_crdt("x", "orset").unwrap();
        a1.get_crdt("y", "gcounter").unwrap();
        b1.get_crdt("y", "text").unwrap();
        // (An object without operations is not sent to a peer that has its id already.)
        a1.apply_operation("y", "increment", &Args::new(), 0).unwrap();
        let before = b1.encode();
        let u = a1.encode_updates_since(&b1.version());
        assert_eq!(b1.apply_updates(&u, 0).unwrap_err().code(), "INVALID_OPERATION");
        assert_eq!(b1.merge(&a1).unwrap_err().code(), "INVALID_OPERATION");
        assert_eq!(b1.encode(), before, "nothing applied");
        let mut c = Resolver::new(3);
        c.apply_updates(&u, 0).unwrap();
        assert_eq!(c.ids().collect::<Vec<_>>(), ["x", "y"]);
        // Nothing to send once the peer has everything.
        let empty = a1.encode_updates_since(&c.version());
        assert_eq!(empty.len(), 6);
        let v = c.version();
        assert_eq!(ResolverVersion::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn garbage_is_an_error() {
        let r = setup(1);
        let good = r.encode();
        for cut in 0..good.len() {
            assert!(Resolver::decode(&good[..cut], 1).is_err());
        }
        let mut hostile = Writer::new(Kind::Resolver);
        hostile.u8(STATE);
        hostile.uvar(u64::MAX / 3);
        assert_eq!(
            Resolver::decode(&hostile.finish(), 1).unwrap_err().code(),
            "DECODE_ERROR"
        );
        // Each kind of resolver data only where it belongs.
        assert!(Resolver::decode(&r.version().encode(), 1).is_err());
        assert!(ResolverVersion::decode(&good).is_err());
        let mut r2 = setup(2);
        assert!(r2.apply_updates(&good, 0).is_err());
        assert!(r2.apply_updates(&[], 0).is_err());
    }

    /// A local operation on object `.0` of [`OBJECTS`], with small operands.
    #[derive(Debug, Clone)]
    struct Op(usize, u8, i64, u8);

    fn local(r: &mut Resolver, op: &Op, wall: u64) {
        let (id, _) = OBJECTS[op.0 % OBJECTS.len()];
        let n = op.2;
        let small = Value::Integer(n % 4);
        let (name, args) = match (id, op.1 % 2) {
            ("likes", _) => ("increment", a(&[("amount", Value::Integer(n))])),
            ("stock", 0) => ("increment", a(&[("amount", Value::Integer(n))])),
            ("stock", _) => ("decrement", a(&[("amount", Value::Integer(n))])),
            ("tags", 0) => ("add", a(&[("value", small)])),
            ("tags", _) => ("remove", a(&[("value", small)])),
            ("title", _) => ("set", a(&[("value", Value::Integer(n))])),
            ("profile", 0) => (
                "set",
                a(&[("key", format!("k{}", n % 3).into()), ("value", Value::Integer(n))]),
            ),
            ("profile", _) => ("delete", a(&[("key", format!("k{}", n % 3).into())])),
            (_, 0) => {
                let len = r.get("doc").map_or(0, |o| o.value_string().chars().count());
                let index = op.3 as usize % (len + 1);
                (
                    "insert",
                    a(&[
                        ("index", Value::Integer(index as i64)),
                        ("text", format!("{}", n % 10).into()),
                    ]),
                )
            }
            (_, _) => {
                let len = r.get("doc").map_or(0, |o| o.value_string().chars().count());
                if len == 0 {
                    return;
                }
                let index = op.3 as usize % len;
                (
                    "deleteText",
                    a(&[("index", Value::Integer(index as i64)), ("length", Value::Integer(1))]),
                )
            }
        };
        r.apply_operation(id, name, &args, wall).unwrap();
    }

    #[derive(Debug, Clone)]
    enum Step {
        Local(usize, Op),
        /// `.1` sends `.0` what `.0` lacks now; the message waits in `.0`'s inbox.
        Send(usize, usize),
        /// `.0` receives its inbox message `.1 % len`; kept for a later duplicate if `.2`.
        Deliver(usize, usize, bool),
        Merge(usize, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        let op = (0..6usize, any::<u8>(), 0..20i64, any::<u8>()).prop_map(|(o, k, n, i)| Op(o, k, n, i));
        prop_oneof![
            4 => (0..3usize, op).prop_map(|(r, o)| Step::Local(r, o)),
            2 => (0..3usize, 0..3usize).prop_map(|(a, b)| Step::Send(a, b)),
            3 => (0..3usize, any::<usize>(), any::<bool>()).prop_map(|(a, i, k)| Step::Deliver(a, i, k)),
            1 => (0..3usize, 0..3usize).prop_map(|(a, b)| Step::Merge(a, b)),
        ]
    }

    /// Each object's value and encoding; for text its version instead, as the text
    /// CRDT's encodings keep the delete log in arrival order (same text and version,
    /// possibly different bytes).
    fn observe(r: &Resolver) -> Vec<(String, Vec<u8>, String)> {
        r.objects
            .iter()
            .map(|(id, e)| {
                let bytes = match &e.object {
                    Object::Text(t) => t.version().encode(),
                    o => o.encode(),
                };
                (id.clone(), bytes, e.object.value_string())
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn three_resolvers_converge(steps in proptest::collection::vec(step(), 0..60)) {
            let mut rs = [setup(1), setup(2), setup(3)];
            let mut inbox: [Vec<Vec<u8>>; 3] = Default::default();
            let mut wall = 1_000u64;
            for s in &steps {
                wall += 1;
                match s {
                    Step::Local(i, op) => local(&mut rs[*i], op, wall),
                    Step::Send(to, from) => {
                        let u = rs[*from].encode_updates_since(&rs[*to].version());
                        inbox[*to].push(u);
                    }
                    Step::Deliver(to, i, keep) => {
                        if !inbox[*to].is_empty() {
                            let k = i % inbox[*to].len();
                            let u = if *keep { inbox[*to][k].clone() } else { inbox[*to].remove(k) };
                            rs[*to].apply_updates(&u, wall).unwrap();
                        }
                    }
                    Step::Merge(to, from) if to != from => {
                        let other = Resolver::decode(&rs[*from].encode(), 99).unwrap();
                        rs[*to].merge(&other).unwrap();
                    }
                    Step::Merge(..) => {}
                }
            }
            // Deliver what is left (in order), then everyone asks everyone.
            for (to, msgs) in inbox.iter().enumerate() {
                for u in msgs {
                    rs[to].apply_updates(u, wall).unwrap();
                }
            }
            for _ in 0..2 {
                for to in 0..3 {
                    for from in 0..3 {
                        if to != from {
                            let u = rs[from].encode_updates_since(&rs[to].version());
                            rs[to].apply_updates(&u, wall).unwrap();
                        }
                    }
                }
            }
            let first = observe(&rs[0]);
            prop_assert_eq!(&observe(&rs[1]), &first);
            prop_assert_eq!(&observe(&rs[2]), &first);
            // Nothing left to send.
            prop_assert_eq!(rs[0].encode_updates_since(&rs[1].version()).len(), 6);
        }

        #[test]
        fn encode_decode_round_trip(ops in proptest::collection::vec((0..3usize, 0..6usize, any::<u8>(), 0..20i64, any::<u8>()), 0..40)) {
            let mut rs = [setup(1), setup(2), setup(3)];
            for (k, (i, o, kind, n, idx)) in ops.iter().enumerate() {
                local(&mut rs[*i], &Op(*o, *kind, *n, *idx), 1_000 + k as u64);
            }
            let m = Resolver::decode(&rs[1].encode(), 50).unwrap();
            rs[0].merge(&m).unwrap();
            rs[0].apply_updates(&rs[2].encode_updates_since(&rs[0].version()), 5_000).unwrap();
            let bytes = rs[0].encode();
            let d = Resolver::decode(&bytes, 1).unwrap();
            prop_assert_eq!(d.encode(), bytes);
            prop_assert_eq!(d.operation_log(), rs[0].operation_log());
            prop_assert_eq!(observe(&d), observe(&rs[0]));
            // The restored resolver logs after everything it restored.
            let mut d = d;
            d.apply_operation("likes", "increment", &Args::new(), 0).unwrap();
            let log = d.operation_log();
            if log.len() >= 2 {
                prop_assert!(log[log.len() - 1].time > log[log.len() - 2].time);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128), flip in any::<(usize, u8)>()) {
            let mut r = setup(1);
            let _ = Resolver::decode(&bytes, 1);
            let _ = ResolverVersion::decode(&bytes);
            let _ = r.apply_updates(&bytes, 0);
            // A valid encoding with one byte changed.
            r.apply_operation("doc", "insert", &a(&[("index", Value::Integer(0)), ("text", "abc".into())]), 5).unwrap();
            let mut good = r.encode();
            let at = flip.0 % good.len();
            good[at] ^= flip.1 | 1;
            let _ = Resolver::decode(&good, 1);
            let mut u = r.encode_updates_since(&ResolverVersion::default());
            let at = flip.0 % u.len();
            u[at] ^= flip.1 | 1;
            let _ = setup(2).apply_updates(&u, 0);
        }
    }
}
