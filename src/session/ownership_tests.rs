//! Ownership, the sealed expiry and the ledger: replay, rollback, confirming cached
//! copies (issue 14). Helpers from [`super::tests`].

use super::tests::{apply_touch, apply_update, default_sessions, hit, id, row_of, sessions, MIN, OWNER};
use super::*;

#[test]
fn the_owner_is_sealed_and_travels_with_the_session() {
    let mut s = default_sessions();
    let (v, ins) = s.create(&id("o"), "auth0|bob", r#"{"k":1}"#, "ams", 0.0).unwrap();
    assert_eq!(v.owner, "auth0|bob");
    assert_eq!(hit(s.get_cached(&id("o"), "ams", 1.0)).0.owner, "auth0|bob");
    let mut fresh = default_sessions();
    let (v, _) = fresh.load(&id("o"), row_of(&ins), "ams", 1.0).unwrap();
    assert_eq!(v.owner, "auth0|bob");
    // An update keeps the owner; nobody can hand the session to someone else.
    let (v, up) = fresh.update(&id("o"), "{}", "ams", None, 2.0).unwrap();
    assert_eq!(v.owner, "auth0|bob");
    let mut row = row_of(&ins);
    apply_update(&mut row, &up);
    assert_eq!(
        default_sessions().load(&id("o"), row, "ams", 3.0).unwrap().0.owner,
        "auth0|bob"
    );
    // Another subject's body moved onto this id does not open.
    let (_, other) = s.create(&id("p"), "mallory", "{}", "ams", 0.0).unwrap();
    let mut stolen = row_of(&ins);
    stolen.body = row_of(&other).body;
    assert_eq!(
        default_sessions()
            .load(&id("o"), stolen, "ams", 1.0)
            .unwrap_err()
            .code(),
        "SESSION_TAMPERED"
    );
}

#[test]
fn a_replayed_or_rolled_back_body_is_refused() {
    let mut s = default_sessions();
    let (_, ins) = s.create(&id("r"), OWNER, r#"{"v":1}"#, "ams", 0.0).unwrap();
    let v1 = row_of(&ins);
    let (_, up) = s.update(&id("r"), r#"{"v":2}"#, "ams", None, 1.0).unwrap();
    let mut v2 = v1.clone();
    apply_update(&mut v2, &up);
    assert_eq!(v2.ledger_version, Some(2));
    default_sessions().load(&id("r"), v2.clone(), "ams", 2.0).unwrap();
    // Rollback: version 1's body and version written back; the ledger saw version 2.
    let mut rolled = v1.clone();
    rolled.ledger_version = v2.ledger_version;
    let e = default_sessions().load(&id("r"), rolled, "ams", 2.0).unwrap_err();
    assert_eq!(e.code(), "SESSION_TAMPERED");
    assert!(e.to_string().contains("rollback"), "{e}");
    // Replay: the session was destroyed (the trigger marks the ledger) and the copied
    // row inserted again (the insert trigger keeps the mark).
    let mut replayed = v2.clone();
    replayed.revoked = true;
    let e = default_sessions().load(&id("r"), replayed, "ams", 2.0).unwrap_err();
    assert_eq!(e.code(), "SESSION_TAMPERED");
    assert!(e.to_string().contains("replay"), "{e}");
    // A row the worker never stored (no ledger entry).
    let mut forged = v2.clone();
    forged.ledger_version = None;
    assert_eq!(
        default_sessions()
            .load(&id("r"), forged, "ams", 2.0)
            .unwrap_err()
            .code(),
        "SESSION_TAMPERED"
    );
    // A ledger behind the body (tampered ledger) is refused too.
    let mut behind = v2;
    behind.ledger_version = Some(1);
    assert_eq!(
        default_sessions()
            .load(&id("r"), behind, "ams", 2.0)
            .unwrap_err()
            .code(),
        "SESSION_TAMPERED"
    );
}

#[test]
fn cached_copies_are_confirmed_against_the_ledger() {
    let mut s = default_sessions();
    s.create(&id("c"), OWNER, "{}", "ams", 0.0).unwrap();
    let validate = |l: Lookup| match l {
        Lookup::Hit { validate, .. } => validate,
        other => panic!("{other:?}"),
    };
    // revalidateMs 0 (the default): every hit is confirmed.
    assert!(validate(s.get_cached(&id("c"), "ams", 1.0)));
    assert_eq!(s.validated(&id("c"), Some((1, false)), 1.0), Validity::Current);
    assert!(validate(s.get_cached(&id("c"), "ams", 1.0)));
    // Another isolate updated it: stale, evicted, the next lookup loads.
    assert_eq!(s.validated(&id("c"), Some((2, false)), 2.0), Validity::Stale);
    assert_eq!(s.get_cached(&id("c"), "ams", 2.0), Lookup::Miss);
    // Destroyed elsewhere (revoked, or the ledger entry collected): gone.
    for ledger in [Some((1, true)), None] {
        s.create(&id("d"), OWNER, "{}", "ams", 3.0).unwrap();
        assert_eq!(s.validated(&id("d"), ledger, 3.0), Validity::Gone);
        assert_eq!(s.get_cached(&id("d"), "ams", 3.0), Lookup::Miss);
    }
    // Not cached any more (evicted meanwhile): load it.
    assert_eq!(s.validated(&id("zz"), Some((1, false)), 3.0), Validity::Stale);
    let a = s.analytics();
    assert_eq!((a.validations, a.stale), (5, 4));

    // With a window, a copy confirmed less than revalidateMs ago is served as is.
    let mut w = sessions(
        &[("k1", 1)],
        SessionOptions {
            revalidate_ms: 1000.0,
            ..Default::default()
        },
    );
    w.create(&id("w"), OWNER, "{}", "ams", 0.0).unwrap();
    assert!(!validate(w.get_cached(&id("w"), "ams", 999.0)));
    assert!(validate(w.get_cached(&id("w"), "ams", 1000.0)));
    assert_eq!(w.validated(&id("w"), Some((1, false)), 1000.0), Validity::Current);
    assert!(!validate(w.get_cached(&id("w"), "ams", 1500.0)));
    assert_eq!(
        SessionOptions::from_json(r#"{"revalidateMs": -1}"#).unwrap_err().code(),
        "CONFIG_ERROR"
    );
}

#[test]
fn a_touch_reseals_and_the_row_still_opens() {
    let opts = SessionOptions {
        idle_ttl_ms: 10.0 * MIN,
        ..Default::default()
    };
    let mut s = sessions(&[("k1", 1)], opts.clone());
    let (_, ins) = s.create(&id("t"), OWNER, r#"{"n":1}"#, "ams", 0.0).unwrap();
    let mut row = row_of(&ins);
    let touch = hit(s.get_cached(&id("t"), "ams", 6.0 * MIN)).1.expect("a touch");
    apply_touch(&mut row, &touch);
    assert_eq!(row.expires_ms, 16.0 * MIN);
    // Past the original idle expiry, before the touched one: opens, with its data.
    let (v, _) = sessions(&[("k1", 1)], opts.clone())
        .load(&id("t"), row.clone(), "ams", 12.0 * MIN)
        .unwrap();
    assert_eq!((v.data.as_str(), v.expires_ms), (r#"{"n":1}"#, 22.0 * MIN)); // slid on load
                                                                             // The pre-touch body with the touched column: tampering.
    let mut mixed = row;
    mixed.body = row_of(&ins).body;
    assert_eq!(
        sessions(&[("k1", 1)], opts)
            .load(&id("t"), mixed, "ams", 1.0)
            .unwrap_err()
            .code(),
        "SESSION_TAMPERED"
    );
}

#[test]
fn if_match_updates() {
    let mut s = default_sessions();
    s.create(&id("m"), OWNER, "{}", "ams", 0.0).unwrap();
    assert_eq!(
        s.update(&id("m"), "[1]", "ams", Some(2), 1.0).unwrap_err().code(),
        "SESSION_CONFLICT"
    );
    let (v, _) = s.update(&id("m"), "[1]", "ams", Some(1), 1.0).unwrap();
    assert_eq!(v.version, 2);
    assert_eq!(
        s.update(&id("m"), "[2]", "ams", Some(1), 2.0).unwrap_err().code(),
        "SESSION_CONFLICT"
    );
}

#[test]
fn version_1_bodies_are_refused() {
    let mut s = default_sessions();
    let (_, ins) = s.create(&id("old"), OWNER, "{}", "ams", 0.0).unwrap();
    let mut row = row_of(&ins);
    row.body[3] = 1;
    let e = default_sessions().load(&id("old"), row, "ams", 1.0).unwrap_err();
    assert_eq!(e.code(), "SESSION_TAMPERED");
    assert!(e.to_string().contains("version 1"), "{e}");
}

#[test]
fn region_names_are_bounded() {
    let mut s = default_sessions();
    s.create(&id("a"), OWNER, "{}", "r0", 0.0).unwrap();
    for i in 1..1024 {
        hit(s.get_cached(&id("a"), &format!("r{i}"), i as f64));
    }
    // The table is full: a new name is refused where it is needed, ignored on a hit.
    assert_eq!(
        s.create(&id("b"), OWNER, "{}", "r-new", 0.0).unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
    assert_eq!(hit(s.get_cached(&id("a"), "r-new", 2000.0)).0.home, "r1023");
    s.create(&id("c"), OWNER, "{}", "r5", 0.0).unwrap();
}
