//! The fuzz harness: one function per decoder, shared by the cargo-fuzz targets in
//! `fuzz/fuzz_targets/` and by `tests/fuzz_regressions.rs` (which includes this file
//! with `#[path]`), so a committed regression input replays through exactly the code
//! that found it.
//!
//! Each function feeds arbitrary bytes to one decoder. The decoder must return `Ok` or
//! `Err` — never panic, abort, or allocate without bound. When it returns `Ok`, the
//! harness also exercises the value it produced (re-encode and decode again, merge,
//! local edits, delta updates), because a decoder that accepts an inconsistent state
//! only moves the panic to the next operation. The assertions below are invariants of
//! the format, not of the fuzzer: a failure is a bug in `src/`.

use edgesync::clock::{Hlc, Timestamp, VersionVector, DEFAULT_MAX_DRIFT_MS};
use edgesync::codec::{Kind, Reader, Writer};
use edgesync::crdt::text::Text;
use edgesync::crdt::{Crdt, GCounter, LWWMap, LWWRegister, ORSet, PNCounter};
use edgesync::remote::hrana;
use edgesync::Value;

/// The site a decoded replica edits as (any fixed site works: the encodings carry none).
const SITE: u64 = 0xF022;
/// A wall clock for LWW operations: 2025-01-01 in ms.
const WALL_MS: u64 = 1_735_689_600_000;

/// Every fuzz target, by name (= `fuzz/fuzz_targets/<name>.rs` and `fuzz/regressions/<name>/`).
pub const TARGETS: &[&str] = &[
    "version_vector",
    "timestamp",
    "gcounter_decode",
    "gcounter_apply_update",
    "pncounter_decode",
    "pncounter_apply_update",
    "orset_decode",
    "orset_apply_update",
    "lww_register_decode",
    "lww_register_apply_update",
    "lww_map_decode",
    "lww_map_apply_update",
    "text_decode",
    "text_apply_update",
    "hrana_execute",
    "hrana_batch",
];

/// Runs the harness of the target `name` on `data`. Panics on an unknown name.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "version_vector" => version_vector(data),
        "timestamp" => timestamp(data),
        "gcounter_decode" => crdt_decode::<GCounter>(data),
        "gcounter_apply_update" => crdt_apply_update::<GCounter>(data),
        "pncounter_decode" => crdt_decode::<PNCounter>(data),
        "pncounter_apply_update" => crdt_apply_update::<PNCounter>(data),
        "orset_decode" => crdt_decode::<ORSet>(data),
        "orset_apply_update" => crdt_apply_update::<ORSet>(data),
        "lww_register_decode" => crdt_decode::<LWWRegister>(data),
        "lww_register_apply_update" => lww_register_apply_update(data),
        "lww_map_decode" => crdt_decode::<LWWMap>(data),
        "lww_map_apply_update" => lww_map_apply_update(data),
        "text_decode" => text_decode(data),
        "text_apply_update" => text_apply_update(data),
        "hrana_execute" => hrana_execute(data),
        "hrana_batch" => hrana_batch(data),
        _ => panic!("unknown fuzz target {name:?}"),
    }
}

/// `VersionVector::decode`; accepted vectors round-trip exactly and merge/compare.
pub fn version_vector(data: &[u8]) {
    let Ok(v) = VersionVector::decode(data) else { return };
    let bytes = v.encode();
    let again = VersionVector::decode(&bytes).expect("a decoded version vector re-encodes to valid bytes");
    assert_eq!(again, v, "version vector round trip");
    let mut m = VersionVector::new();
    m.merge(&v);
    assert_eq!(m, v, "merging into an empty vector copies it");
    let _ = v.compare(&VersionVector::new());
    let _ = m.increment(SITE);
}

/// `Timestamp::read` (the HLC timestamp inside LWW encodings), then what an HLC does
/// with a remote timestamp: the drift check and `observe` at a wall time taken from the
/// input's first 8 bytes (so the fuzzer controls both sides of the arithmetic).
pub fn timestamp(data: &[u8]) {
    let (wall, rest) = match data.split_first_chunk::<8>() {
        Some((w, rest)) => (u64::from_le_bytes(*w), rest),
        None => (WALL_MS, data),
    };
    let mut w = Writer::new(Kind::LWWRegister);
    w.raw(rest);
    let buf = w.finish();
    let mut r = Reader::new(&buf, Kind::LWWRegister).expect("a valid header");
    let Ok(ts) = Timestamp::read(&mut r) else { return };
    let mut w = Writer::new(Kind::LWWRegister);
    ts.write(&mut w);
    let buf = w.finish();
    let mut r = Reader::new(&buf, Kind::LWWRegister).expect("a valid header");
    assert_eq!(Timestamp::read(&mut r).ok(), Some(ts), "timestamp round trip");
    for drift in [0, DEFAULT_MAX_DRIFT_MS, u64::MAX] {
        let mut hlc = Hlc::new(SITE, drift);
        let _ = hlc.check_drift(ts, wall);
        if let Ok(t) = hlc.observe(ts, wall) {
            assert!(
                t > ts || t.site != ts.site,
                "observe moves the clock past the remote event"
            );
            let _ = hlc.now(wall);
        }
        hlc.witness(ts);
        let _ = hlc.now(wall);
        let _ = hlc.now(0);
    }
}

/// What the harness needs of each CRDT beyond [`Crdt`]: an empty replica, one with
/// some local state, and the type's own operations to run on an accepted replica.
trait Fuzzable: Crdt + Clone {
    fn empty() -> Self;
    fn seeded() -> Self;
    fn ops(&mut self);
}

impl Fuzzable for GCounter {
    fn empty() -> Self {
        GCounter::new(SITE)
    }
    fn seeded() -> Self {
        let mut c = GCounter::new(SITE);
        c.increment(3).unwrap();
        c
    }
    fn ops(&mut self) {
        let _ = self.value();
        let _ = self.increment(1);
        let _ = self.increment(u64::MAX);
        let _ = self.value();
    }
}

impl Fuzzable for PNCounter {
    fn empty() -> Self {
        PNCounter::new(SITE)
    }
    fn seeded() -> Self {
        let mut c = PNCounter::new(SITE);
        c.increment(5).unwrap();
        c.decrement(2).unwrap();
        c
    }
    fn ops(&mut self) {
        let _ = self.value();
        let _ = self.increment(1);
        let _ = self.decrement(u64::MAX);
        let _ = self.value();
    }
}

impl Fuzzable for ORSet {
    fn empty() -> Self {
        ORSet::new(SITE)
    }
    fn seeded() -> Self {
        let mut s = ORSet::new(SITE);
        s.add(Value::Text("a".into())).unwrap();
        s.add(Value::Integer(7)).unwrap();
        s.remove(&Value::Integer(7)).unwrap();
        s
    }
    fn ops(&mut self) {
        let values: Vec<Value> = self.values().cloned().collect();
        let _ = self.len();
        for v in values.iter().take(4) {
            assert!(self.has(v), "a listed value is in the set");
            let _ = self.remove(v);
        }
        let _ = self.add(Value::Blob(vec![1, 2]));
    }
}

impl Fuzzable for LWWRegister {
    fn empty() -> Self {
        LWWRegister::new(SITE)
    }
    fn seeded() -> Self {
        let mut r = LWWRegister::new(SITE);
        r.set(Value::Text("x".into()), WALL_MS).unwrap();
        r
    }
    fn ops(&mut self) {
        let _ = self.get();
        let _ = self.timestamp();
        let _ = self.set(Value::Integer(1), WALL_MS);
        let _ = self.set(Value::Null, 0);
    }
}

impl Fuzzable for LWWMap {
    fn empty() -> Self {
        LWWMap::new(SITE)
    }
    fn seeded() -> Self {
        let mut m = LWWMap::new(SITE);
        m.set("a", Value::Integer(1), WALL_MS).unwrap();
        m.set("b", Value::Integer(2), WALL_MS).unwrap();
        m.delete("b", WALL_MS + 1).unwrap();
        m
    }
    fn ops(&mut self) {
        let keys: Vec<String> = self.keys().map(str::to_owned).collect();
        let _ = self.len();
        for k in keys.iter().take(4) {
            assert!(self.contains_key(k), "a listed key is in the map");
            let _ = self.timestamp(k);
            let _ = self.delete(k, WALL_MS);
        }
        let _ = self.set("k", Value::Real(0.5), WALL_MS);
        let _ = self.set("k", Value::Null, 0);
    }
}

/// Encoding a decoded (or updated) replica gives bytes that decode again, to a replica
/// that encodes the same: the first encoding is the canonical form.
fn check_roundtrip<T: Crdt>(c: &T) {
    let bytes = c.encode();
    let again = T::decode(&bytes, SITE).expect("an accepted state re-encodes to bytes that decode");
    assert_eq!(again.encode(), bytes, "encode(decode(encode(x))) == encode(x)");
}

/// Exercises an accepted replica: round trip, its full update into a fresh replica,
/// its own updates applied to itself, merges, then the type's own operations.
fn exercise<T: Fuzzable>(c: &T) {
    check_roundtrip(c);
    let full = c.encode_update_since(&VersionVector::new());
    let mut fresh = T::empty();
    fresh
        .apply_update(&full)
        .expect("a replica's full update applies to an empty replica");
    check_roundtrip(&fresh);
    let mut twin = c.clone();
    twin.apply_update(&c.encode_update_since(&c.version()))
        .expect("an empty delta applies");
    twin.apply_update(&full)
        .expect("a replica's full update applies to itself");
    let mut merged = c.clone();
    merged.merge(c);
    merged.merge(&twin);
    merged.merge(&T::seeded());
    check_roundtrip(&merged);
    let mut edited = c.clone();
    edited.ops();
    check_roundtrip(&edited);
    let _ = edited.encode_update_since(&c.version());
}

fn crdt_decode<T: Fuzzable>(data: &[u8]) {
    let Ok(c) = T::decode(data, SITE) else { return };
    exercise(&c);
}

/// `apply_update` onto an empty replica and onto one with local state; all or nothing
/// on error (the encoding is unchanged).
fn crdt_apply_update<T: Fuzzable>(data: &[u8]) {
    for mut c in [T::empty(), T::seeded()] {
        let before = c.encode();
        match c.apply_update(data) {
            Ok(()) => exercise(&c),
            Err(_) => assert_eq!(c.encode(), before, "a failed apply_update changes nothing"),
        }
    }
}

fn lww_register_apply_update(data: &[u8]) {
    crdt_apply_update::<LWWRegister>(data);
    for mut r in [LWWRegister::empty(), LWWRegister::seeded()] {
        let before = r.encode();
        match r.apply_update_at(data, WALL_MS) {
            Ok(()) => exercise(&r),
            Err(_) => assert_eq!(r.encode(), before, "a failed apply_update_at changes nothing"),
        }
    }
}

fn lww_map_apply_update(data: &[u8]) {
    crdt_apply_update::<LWWMap>(data);
    for mut m in [LWWMap::empty(), LWWMap::seeded()] {
        let before = m.encode();
        match m.apply_update_at(data, WALL_MS) {
            Ok(()) => exercise(&m),
            Err(_) => assert_eq!(m.encode(), before, "a failed apply_update_at changes nothing"),
        }
    }
}

/// Exercises an accepted text: round trip, its full update into a fresh text gives the
/// same string, merges, edits at both ends, and old versions.
///
/// `integrated`: the text was built by integrating operations. A snapshot carries its
/// document order as written (loading does not re-integrate — that is what makes it
/// fast), and its CRC-32 guards it against accidental corruption; the fuzz build skips
/// the CRC, so a fuzzed snapshot may list runs in an order integration would not
/// produce. For those, only panics and round trips are checked, not that order.
fn exercise_text(t: &Text, integrated: bool) {
    let s = t.text();
    assert_eq!(s.chars().count(), t.len(), "len() counts the text's code points");
    let bytes = t.encode();
    let again = Text::decode(&bytes, SITE).expect("an accepted text re-encodes to bytes that decode");
    assert_eq!(again.text(), s, "text round trip");
    assert_eq!(again.encode(), bytes, "encode(decode(encode(x))) == encode(x)");
    let mut fresh = Text::new(SITE + 1);
    fresh
        .apply_update(&t.encode_update_since(&VersionVector::new()))
        .expect("a text's full update applies to a fresh text");
    if integrated && t.pending_ops() == 0 {
        assert_eq!(fresh.text(), s, "a fresh text with the full update reads the same");
    }
    let mut merged = t.clone();
    merged.merge(&fresh).expect("merge");
    merged.merge(t).expect("merge");
    let mut e = t.clone();
    let _ = e.len_utf16();
    let _ = e.anchor(0, edgesync::crdt::text::Assoc::Before).map(|a| e.resolve(a));
    e.insert(e.len(), "z").expect("insert at the end");
    e.insert(0, "é").expect("insert at the start");
    e.delete(0, e.len().min(3)).expect("delete a prefix");
    let _ = e.text_at(t.version());
    let _ = e.restore(t.version());
    let _ = Text::decode(&e.encode(), SITE).expect("an edited text re-decodes");
}

pub fn text_decode(data: &[u8]) {
    let Ok(t) = Text::decode(data, SITE) else { return };
    // The structure is checked on first need: a snapshot whose structure is invalid
    // reads as loaded, refuses every call that needs it, and encodes back unchanged.
    if t.validate().is_err() {
        let text = t.text();
        assert_eq!(text.chars().count(), t.len(), "len() counts the loaded text");
        let mut e = t.clone();
        assert!(e.insert(0, "x").is_err(), "an invalid structure refuses edits");
        assert!(e.merge(&Text::new(SITE + 1)).is_err(), "and merges");
        assert!(Text::new(SITE + 1).merge(&t).is_err(), "and being merged from");
        assert!(t.stats().is_err() && t.text_at(t.version()).is_err());
        assert_eq!(e.text(), text, "a refused call changes nothing");
        assert_eq!(e.encode(), data, "it encodes to the bytes it was loaded from");
        return;
    }
    exercise_text(&t, false);
}

pub fn text_apply_update(data: &[u8]) {
    let mut seeded = Text::new(SITE);
    seeded.insert(0, "hello").unwrap();
    seeded.delete(1, 2).unwrap();
    for mut t in [Text::new(SITE), seeded] {
        let before = t.encode();
        match t.apply_update(data) {
            Ok(()) => exercise_text(&t, true),
            Err(_) => assert_eq!(t.encode(), before, "a failed apply_update changes nothing"),
        }
    }
}

/// `hrana::decode_execute` on a response body.
pub fn hrana_execute(data: &[u8]) {
    let _ = hrana::decode_execute(data);
}

/// `hrana::decode_batch`: the first byte is the statement count `n`, the rest the body.
pub fn hrana_batch(data: &[u8]) {
    let Some((&n, body)) = data.split_first() else { return };
    let _ = hrana::decode_batch(body, usize::from(n));
}
