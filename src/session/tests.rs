//! Behaviour of [`Sessions`] end to end, with a tiny in-memory "table" standing in
//! for libSQL where a test needs the row back.

use base64::Engine as _;

use super::*;
use crate::Value;

pub(crate) const MIN: f64 = 60_000.0;
pub(crate) const OWNER: &str = "alice";

/// A key ring of `(kid, byte)` keys, each key 32 copies of its byte.
pub(crate) fn ring(spec: &[(&str, u8)]) -> KeyRing {
    let s: Vec<String> = spec
        .iter()
        .map(|(kid, b)| {
            let k = base64::engine::general_purpose::STANDARD.encode([*b; 32]);
            format!("{kid}:{k}")
        })
        .collect();
    KeyRing::parse(&s.join(",")).unwrap()
}

/// A well-formed session id (32 base64url characters) spelling `name`.
pub(crate) fn id(name: &str) -> String {
    format!("{name:_<32}")
}

pub(crate) fn sessions(spec: &[(&str, u8)], opts: SessionOptions) -> Sessions {
    Sessions::new(ring(spec), opts, [3; 16])
}

pub(crate) fn default_sessions() -> Sessions {
    sessions(&[("k1", 1)], SessionOptions::default())
}

/// The row an INSERT would store, with the ledger entry its trigger writes.
pub(crate) fn row_of(insert: &SqlWrite) -> StoredRow {
    let a = &insert.args;
    let (Value::Text(home), Value::Real(c), Value::Real(e), Value::Real(x), Value::Integer(v), Value::Blob(b)) =
        (&a[1], &a[2], &a[3], &a[4], &a[5], &a[6])
    else {
        panic!("not an insert: {insert:?}")
    };
    StoredRow {
        home: home.clone(),
        created_ms: *c,
        expires_ms: *e,
        absolute_ms: *x,
        version: *v as u64,
        body: b.clone(),
        ledger_version: Some(*v as u64),
        revoked: false,
    }
}

/// Applies an UPDATE's body, version and expiry to a row (and its ledger trigger).
pub(crate) fn apply_update(row: &mut StoredRow, update: &SqlWrite) {
    let (Value::Blob(b), Value::Integer(v), Value::Real(e)) = (&update.args[0], &update.args[1], &update.args[3])
    else {
        panic!()
    };
    row.body = b.clone();
    row.version = *v as u64;
    row.expires_ms = *e;
    row.ledger_version = row.ledger_version.max(Some(*v as u64));
}

/// Applies a touch (a reseal with a later idle expiry) to a row.
pub(crate) fn apply_touch(row: &mut StoredRow, touch: &SqlWrite) {
    assert!(
        touch.sql.starts_with("UPDATE es_sessions SET body = ?"),
        "{}",
        touch.sql
    );
    let (Value::Blob(b), Value::Real(e)) = (&touch.args[0], &touch.args[2]) else {
        panic!()
    };
    row.body = b.clone();
    row.expires_ms = *e;
}

pub(crate) fn hit(l: Lookup) -> (SessionView, Option<SqlWrite>) {
    match l {
        Lookup::Hit { session, write, .. } => (session, write),
        other => panic!("expected a hit, got {other:?}"),
    }
}

fn no_placeholders_filled(w: &SqlWrite) {
    let n = w.sql.matches('?').count();
    assert_eq!(n, w.args.len(), "{}", w.sql);
    for a in &w.args {
        if let Value::Text(t) = a {
            assert!(!w.sql.contains(t.as_str()) || t.len() < 3, "value in SQL text");
        }
    }
}

#[test]
fn idle_ttl_slides_and_absolute_caps() {
    let opts = SessionOptions {
        idle_ttl_ms: 10.0 * MIN,
        absolute_ttl_ms: 25.0 * MIN,
        ..Default::default()
    };
    let mut s = sessions(&[("k1", 1)], opts);
    let (v, _) = s.create(&id("a"), OWNER, "{}", "ams", 0.0).unwrap();
    assert_eq!((v.expires_ms, v.absolute_ms), (10.0 * MIN, 25.0 * MIN));
    let (v, _) = hit(s.get_cached(&id("a"), "ams", 9.0 * MIN));
    assert_eq!(v.expires_ms, 19.0 * MIN);
    let (v, _) = hit(s.get_cached(&id("a"), "ams", 18.0 * MIN));
    assert_eq!(v.expires_ms, 25.0 * MIN, "capped at absolute");
    let Lookup::Expired { write } = s.get_cached(&id("a"), "ams", 25.0 * MIN) else {
        panic!()
    };
    assert!(write.sql.starts_with("DELETE") && write.sql.contains("expires_ms <= ?"));
    no_placeholders_filled(&write);
    assert_eq!(s.get_cached(&id("a"), "ams", 25.0 * MIN), Lookup::Miss);
    // Idle expiry without use.
    s.create(&id("b"), OWNER, "{}", "ams", 0.0).unwrap();
    assert!(matches!(
        s.get_cached(&id("b"), "ams", 10.0 * MIN),
        Lookup::Expired { .. }
    ));
    let a = s.analytics();
    assert_eq!((a.expired, a.hits, a.misses, a.gets), (2, 2, 1, 5));
    assert_eq!(a.cache_hit_rate, 0.4);
}

#[test]
fn touches_are_throttled() {
    let opts = SessionOptions {
        idle_ttl_ms: 10.0 * MIN,
        touch_after_fraction: 0.5,
        ..Default::default()
    };
    let mut s = sessions(&[("k1", 1)], opts);
    s.create(&id("a"), OWNER, "{}", "ams", 0.0).unwrap();
    // Expiry moved by 4 min (< 5): no write.
    assert!(hit(s.get_cached(&id("a"), "ams", 4.0 * MIN)).1.is_none());
    // Moved 5.5 min past the written 10 min: write.
    let w = hit(s.get_cached(&id("a"), "ams", 5.5 * MIN)).1.unwrap();
    // A touch reseals the body with the new idle expiry, and only moves it forward.
    assert!(w.sql.starts_with("UPDATE es_sessions SET body = ?") && w.sql.ends_with("AND expires_ms < ?"));
    assert_eq!(w.args[2], Value::Real(15.5 * MIN));
    assert_eq!(w.args[5], Value::Real(15.5 * MIN));
    no_placeholders_filled(&w);
    // Measured from the last write now.
    assert!(hit(s.get_cached(&id("a"), "ams", 10.0 * MIN)).1.is_none());
    assert!(hit(s.get_cached(&id("a"), "ams", 11.0 * MIN)).1.is_some());
    assert_eq!(s.analytics().touches, 2);
    // Fraction 0: every hit that moves the expiry writes.
    let mut s = sessions(
        &[("k1", 1)],
        SessionOptions {
            touch_after_fraction: 0.0,
            ..Default::default()
        },
    );
    s.create(&id("a"), OWNER, "{}", "ams", 0.0).unwrap();
    assert!(hit(s.get_cached(&id("a"), "ams", 1.0)).1.is_some());
    assert!(hit(s.get_cached(&id("a"), "ams", 1.0)).1.is_none());
}

#[test]
fn migration_moves_home_and_counts() {
    let mut s = default_sessions();
    let (_, ins) = s.create(&id("a"), OWNER, "{}", "ams", 0.0).unwrap();
    assert_eq!(ins.args[1], Value::Text("ams".into()));
    let (v, w) = hit(s.get_cached(&id("a"), "sin", 1.0));
    assert_eq!(v.home, "sin");
    let w = w.unwrap();
    assert_eq!(w.sql, "UPDATE es_sessions SET home = ? WHERE id = ?");
    assert_eq!(w.args, vec![Value::Text("sin".into()), Value::Text(id("a"))]);
    assert!(hit(s.get_cached(&id("a"), "sin", 2.0)).1.is_none());
    assert!(hit(s.get_cached(&id("a"), "ams", 3.0)).1.is_some());
    let a = s.analytics();
    assert_eq!((a.migrations, a.touches), (2, 0));
    // A load from another region migrates too.
    let mut other = default_sessions();
    let (v, w) = other.load(&id("a"), row_of(&ins), "iad", 5.0).unwrap();
    assert_eq!(v.home, "iad");
    assert_eq!(w.unwrap().args[0], Value::Text("iad".into()));
    assert_eq!(other.analytics().migrations, 1);
    // An unusable region is refused where it matters and ignored on a hit.
    assert_eq!(
        s.create(&id("b"), OWNER, "{}", "", 0.0).unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(hit(s.get_cached(&id("a"), "", 4.0)).0.home, "ams");
}

#[test]
fn load_round_trip_and_expiry() {
    let mut s = default_sessions();
    let (v, ins) = s.create(&id("sid"), OWNER, r#"{"cart":[1,2]}"#, "ams", 100.0).unwrap();
    no_placeholders_filled(&ins);
    let mut fresh = default_sessions();
    assert_eq!(fresh.get_cached(&id("sid"), "ams", 200.0), Lookup::Miss);
    let (loaded, w) = fresh.load(&id("sid"), row_of(&ins), "ams", 200.0).unwrap();
    assert!(w.is_none());
    assert_eq!(
        loaded,
        SessionView {
            expires_ms: loaded.expires_ms,
            ..v.clone()
        }
    );
    assert_eq!(hit(fresh.get_cached(&id("sid"), "ams", 300.0)).0.data, v.data);
    // Expired by the sealed idle expiry (30 min after the last write).
    let e = fresh
        .load(&id("sid"), row_of(&ins), "ams", 100.0 + 30.0 * MIN)
        .unwrap_err();
    assert_eq!(e.code(), "SESSION_EXPIRED");
    let del = fresh.expired_delete(&id("sid"), 200.0);
    assert!(del.sql.contains("expires_ms <= ?"));
    no_placeholders_filled(&del);
    // Columns that disagree with the sealed copies are tampering, not a new lifetime:
    // one UPDATE of the table extends no session.
    for (what, edit) in [
        (
            "idle expiry",
            (|r: &mut StoredRow| r.expires_ms = f64::MAX) as fn(&mut StoredRow),
        ),
        ("absolute expiry", |r| r.absolute_ms = f64::MAX),
        ("both", |r| {
            r.absolute_ms = f64::MAX;
            r.expires_ms = f64::MAX
        }),
        ("creation", |r| r.created_ms -= 1.0),
        ("NaN", |r| r.expires_ms = f64::NAN),
    ] {
        let mut row = row_of(&ins);
        edit(&mut row);
        let day = 24.0 * 60.0 * MIN;
        assert_eq!(
            fresh.load(&id("sid"), row.clone(), "ams", 200.0).unwrap_err().code(),
            "SESSION_TAMPERED",
            "{what}"
        );
        assert_eq!(
            fresh.load(&id("sid"), row, "ams", 100.0 + day).unwrap_err().code(),
            "SESSION_TAMPERED",
            "{what}"
        );
    }
    assert_eq!(fresh.analytics().loads, 12);
}

#[test]
fn tampering_and_wrong_id_are_rejected() {
    let mut s = default_sessions();
    let (_, ins) = s.create(&id("a"), OWNER, "{}", "ams", 0.0).unwrap();
    let mut fresh = default_sessions();
    assert_eq!(
        fresh.load(&id("b"), row_of(&ins), "ams", 1.0).unwrap_err().code(),
        "SESSION_TAMPERED"
    );
    let mut row = row_of(&ins);
    let n = row.body.len();
    row.body[n - 1] ^= 1;
    assert_eq!(
        fresh.load(&id("a"), row, "ams", 1.0).unwrap_err().code(),
        "SESSION_TAMPERED"
    );
    let mut row = row_of(&ins);
    row.version = 2;
    assert_eq!(
        fresh.load(&id("a"), row, "ams", 1.0).unwrap_err().code(),
        "SESSION_TAMPERED"
    );
    let mut row = row_of(&ins);
    row.body.truncate(10);
    assert_eq!(
        fresh.load(&id("a"), row, "ams", 1.0).unwrap_err().code(),
        "SESSION_TAMPERED"
    );
    assert_eq!(fresh.analytics().tampered, 4);
    assert_eq!(fresh.cached_len(), 0);
}

#[test]
fn key_rotation() {
    let mut old = sessions(&[("k1", 1)], SessionOptions::default());
    let (_, ins) = old.create(&id("a"), OWNER, r#"{"n":1}"#, "ams", 0.0).unwrap();
    let mut row = row_of(&ins);
    assert_eq!(envelope::kid_of(&row.body), Some("k1"));
    // The new key is prepended: old sessions still open.
    let mut rotated = sessions(&[("k2", 2), ("k1", 1)], SessionOptions::default());
    rotated.load(&id("a"), row.clone(), "ams", 1.0).unwrap();
    // An update reseals under the current key.
    let (v, up) = rotated.update(&id("a"), r#"{"n":2}"#, "ams", None, 2.0).unwrap();
    assert_eq!(v.version, 2);
    apply_update(&mut row, &up);
    assert_eq!(envelope::kid_of(&row.body), Some("k2"));
    // Once everything is rotated the old key can go.
    let mut only_new = sessions(&[("k2", 2)], SessionOptions::default());
    let (v, _) = only_new.load(&id("a"), row.clone(), "ams", 3.0).unwrap();
    assert_eq!((v.data.as_str(), v.version), (r#"{"n":2}"#, 2));
    let mut unknown = sessions(&[("k3", 3)], SessionOptions::default());
    let e = unknown.load(&id("a"), row, "ams", 3.0).unwrap_err();
    assert_eq!(e.code(), "SESSION_KEY_UNKNOWN");
    assert_eq!(unknown.analytics().key_unknown, 1);
}

#[test]
fn compression_only_above_threshold_and_when_smaller() {
    let small = format!(r#"{{"a":"{}"}}"#, "x".repeat(50));
    let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(500));
    // Exactly at the threshold (bytes of data): stays raw although compressible.
    let at = format!(r#"{{"a":"{}"}}"#, "x".repeat(92));
    assert_eq!(at.len(), 100);
    // (Incompressible input above the threshold staying raw is tested in
    // `envelope`: here the sealed prefix always gives deflate something to do.)
    for (name, data, want, threshold) in [
        ("s", &small, false, 100),
        ("b", &big, true, 100),
        ("t", &at, false, 100),
        ("u", &at, true, 99),
    ] {
        let mut s = sessions(
            &[("k1", 1)],
            SessionOptions {
                compress_threshold: threshold,
                ..Default::default()
            },
        );
        let (_, ins) = s.create(&id(name), OWNER, data, "ams", 0.0).unwrap();
        let row = row_of(&ins);
        assert_eq!(envelope::is_deflated(&row.body), Some(want), "{name}");
        let mut fresh = sessions(&[("k1", 1)], SessionOptions::default());
        assert_eq!(&fresh.load(&id(name), row, "ams", 1.0).unwrap().0.data, data);
    }
}

#[test]
fn versions_and_conflicts() {
    let mut a = default_sessions();
    let mut b = sessions(&[("k1", 1)], SessionOptions::default());
    let (_, ins) = a.create(&id("s"), OWNER, "{}", "ams", 0.0).unwrap();
    let mut row = row_of(&ins);
    b.load(&id("s"), row.clone(), "ams", 1.0).unwrap();
    let (_, up_a) = a.update(&id("s"), "[1]", "ams", None, 2.0).unwrap();
    let (_, up_b) = b.update(&id("s"), "[2]", "ams", None, 3.0).unwrap();
    assert!(up_a.sql.ends_with("WHERE id = ? AND version = ?"));
    no_placeholders_filled(&up_a);
    assert_eq!(up_a.args[5], Value::Integer(1));
    assert_eq!(up_b.args[5], Value::Integer(1));
    // The table applies a's update; b's then matches no row.
    apply_update(&mut row, &up_a);
    b.conflict(&id("s"));
    assert_eq!(b.analytics().conflicts, 1);
    assert_eq!(
        b.update(&id("s"), "[3]", "ams", None, 4.0).unwrap_err().code(),
        "SESSION_NOT_FOUND"
    );
    let (v, _) = b.load(&id("s"), row, "ams", 5.0).unwrap();
    assert_eq!((v.data.as_str(), v.version), ("[1]", 2));
    let (v, up) = b.update(&id("s"), "[3]", "ams", None, 6.0).unwrap();
    assert_eq!(v.version, 3);
    assert_eq!(up.args[5], Value::Integer(2));
    // Create over a live cached id: refused locally.
    assert_eq!(
        a.create(&id("s"), OWNER, "{}", "ams", 7.0).unwrap_err().code(),
        "SESSION_CONFLICT"
    );
    // Destroy.
    let d = a.destroy(&id("s"));
    assert_eq!(d.sql, "DELETE FROM es_sessions WHERE id = ?");
    assert_eq!(a.get_cached(&id("s"), "ams", 8.0), Lookup::Miss);
    assert_eq!(a.analytics().destroyed, 1);
}

#[test]
fn gc_evicts_expired_from_cache() {
    let opts = SessionOptions {
        idle_ttl_ms: 10.0,
        ..Default::default()
    };
    let mut s = sessions(&[("k1", 1)], opts);
    for i in 0..10 {
        s.create(&id(&format!("s{i}")), OWNER, "{}", "ams", i as f64).unwrap();
    }
    let (n, w) = s.gc(15.0);
    assert_eq!(n, 6);
    assert_eq!(w[0].args, vec![Value::Real(15.0), Value::Real(15.0)]);
    assert!(w[0].sql.starts_with("DELETE FROM es_sessions WHERE expires_ms <= ?"));
    assert_eq!(w[1].sql, "DELETE FROM es_session_ledger WHERE until_ms <= ?");
    assert_eq!(w[1].args, vec![Value::Real(15.0)]);
    assert_eq!(s.cached_len(), 4);
    assert_eq!(s.analytics().gc_removed, 6);
    assert!(matches!(s.get_cached(&id("s9"), "ams", 15.0), Lookup::Hit { .. }));
    assert_eq!(s.gc(f64::NAN).0, 0);
}

#[test]
fn lru_bound() {
    let opts = SessionOptions {
        cache_max_entries: 3,
        ..Default::default()
    };
    let mut s = sessions(&[("k1", 1)], opts);
    for name in ["a", "b", "c"] {
        s.create(&id(name), OWNER, "{}", "ams", 0.0).unwrap();
    }
    hit(s.get_cached(&id("a"), "ams", 1.0));
    s.create(&id("d"), OWNER, "{}", "ams", 2.0).unwrap();
    assert_eq!(s.get_cached(&id("b"), "ams", 3.0), Lookup::Miss);
    for name in ["a", "c", "d"] {
        hit(s.get_cached(&id(name), "ams", 3.0));
    }
    let a = s.analytics();
    assert_eq!((a.live_cached, a.lru_evicted), (3, 1));
}

#[test]
fn bad_ids_data_and_options() {
    let mut s = sessions(
        &[("k1", 1)],
        SessionOptions {
            max_data_bytes: 20,
            ..Default::default()
        },
    );
    // Ids are generated by the server: 32 base64url characters, nothing else.
    let long = "x".repeat(33);
    let short = "x".repeat(31);
    for bad in [
        "",
        "stats",
        "has space",
        "tab\t",
        "é",
        &long,
        &short,
        &format!("{:+<32}", "a"),
        "a/b_____________________________",
    ] {
        assert_eq!(
            s.create(bad, OWNER, "{}", "ams", 0.0).unwrap_err().code(),
            "INVALID_ARGUMENT",
            "{bad:?}"
        );
    }
    let generated = Sessions::new_id([0xfb; 24]);
    assert_eq!(generated.len(), ID_CHARS);
    assert!(Sessions::is_id(&generated) && generated.contains('-') && generated.contains('_'));
    s.create(&generated, OWNER, "{}", "ams", 0.0).unwrap();
    // Owners are token subjects.
    for bad in ["", "a\u{0}b", &"o".repeat(256)] {
        assert_eq!(
            s.create(&id("o"), bad, "{}", "ams", 0.0).unwrap_err().code(),
            "INVALID_ARGUMENT"
        );
    }
    for data in ["", "{", "{'a':1}", "[1,2] x", r#"{"a":"0123456789012345"}"#] {
        assert_eq!(
            s.create(&id("d"), OWNER, data, "ams", 0.0).unwrap_err().code(),
            "INVALID_ARGUMENT",
            "{data}"
        );
    }
    assert_eq!(
        s.create(&id("d"), OWNER, "{}", "ams", f64::NAN).unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
    s.create(&id("d"), OWNER, " \"str\" ", "ams", 0.0).unwrap();
    assert_eq!(
        s.update(&id("d"), "{", "ams", None, 1.0).unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(s.get_cached(&id("d"), "ams", f64::INFINITY), Lookup::Miss);

    for json in [
        "",
        "[]",
        r#"{"idleTtlMs":0}"#,
        r#"{"idleTtlMs":-5}"#,
        r#"{"absoluteTtlMs":"1"}"#,
        r#"{"touchAfterFraction":1.5}"#,
        r#"{"maxDataBytes":0}"#,
        r#"{"maxDataBytes":2000000}"#,
        r#"{"cacheMaxEntries":0}"#,
        r#"{"compressThreshold":-1}"#,
        r#"{"unknown":1}"#,
    ] {
        let e = SessionOptions::from_json(json).unwrap_err();
        assert_eq!(e.code(), "CONFIG_ERROR", "{json}");
    }
    let o = SessionOptions::from_json(
        r#"{"idleTtlMs":1000,"absoluteTtlMs":5000,"compressThreshold":0,"maxDataBytes":10,"cacheMaxEntries":7,"touchAfterFraction":0}"#,
    )
    .unwrap();
    assert_eq!((o.cache_max_entries, o.max_data_bytes), (7, 10));
    assert_eq!(SessionOptions::from_json("{}").unwrap(), SessionOptions::default());
}

#[test]
fn serializes_camel_case() {
    let mut s = default_sessions();
    let (v, _) = s.create(&id("a"), OWNER, "{}", "ams", 0.0).unwrap();
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["createdMs"], 0.0);
    assert_eq!(j["home"], "ams");
    let a = serde_json::to_value(s.analytics()).unwrap();
    assert_eq!(a["liveCached"], 1);
    assert!(a.get("cacheHitRate").is_some());
}

/// Counts the live heap bytes allocated by the current thread, so that the
/// measurement is not disturbed by tests running on other threads.
mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        pub static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        let _ = LIVE.try_with(|c| c.set(c.get() + n));
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            add(l.size() as isize);
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            add(-(l.size() as isize));
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            add(new as isize - l.size() as isize);
            unsafe { System.realloc(p, l, new) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn live() -> isize {
        LIVE.with(|c| c.get())
    }
}

/// `cargo test --lib session::tests::memory_per_session -- --ignored --nocapture`
#[test]
#[ignore]
fn memory_per_session() {
    let n = 100_000;
    let before = alloc_count::live();
    let mut s = default_sessions();
    for i in 0..n {
        // ~100 bytes of JSON, a generated 32-character id, a 12-character owner.
        let id = format!("{i:0>32}");
        let data =
            format!(r#"{{"userId":{i},"name":"user number {i:06}","roles":["reader","writer"],"theme":"dark"}}"#);
        s.create(&id, &format!("user-{i:07}"), &data, "ams", 0.0).unwrap();
    }
    let bytes = alloc_count::live() - before;
    println!(
        "{n} sessions: {bytes} live heap bytes requested, {} per session; tables {} bytes",
        bytes / n as isize,
        s.cache_table_bytes()
    );
    assert_eq!(s.cached_len(), n);
}
