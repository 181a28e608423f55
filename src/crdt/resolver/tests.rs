//! The resolver: operations and argument checks, conflict stats, updates and type
//! conflicts, hostile bytes; three resolvers converging under random operations and
//! delivery orders; encode/decode round trips.

use super::format::STATE;
use super::*;
use crate::codec::{Kind, Writer};
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
