//! Property tests shared by every CRDT: the semilattice laws, convergence of replicas
//! exchanging merges and delta updates in any order, and checked decoding.
//!
//! Each type plugs into [`Harness`] with a strategy for its local operations; the
//! `crdt_properties!` macro then instantiates the same properties for it.

use std::fmt::Debug;

use proptest::prelude::*;

use super::*;
use crate::codec::Kind;

pub(super) trait Harness: Crdt + Clone + Debug {
    type Op: Debug + Clone;
    const KINDS: [Kind; 2];
    fn op() -> BoxedStrategy<Self::Op>;
    fn fresh(site: u64) -> Self;
    /// Applies a local operation; overflow errors are allowed and must change nothing.
    fn apply(&mut self, op: &Self::Op);
    /// What a user sees (value, elements, entries), for comparisons beyond encodings.
    fn observe(&self) -> String;
}

/// One step of a three-replica history.
#[derive(Debug, Clone)]
pub(super) enum Step<O> {
    Local(usize, O),
    Merge(usize, usize),
    /// Replica `.1` sends `.0` what `.0` lacks; the update is also kept in the mailbox.
    Sync(usize, usize),
    /// Replica `.0` encodes an update since an old version (index into the history of
    /// versions) into the mailbox, to be delivered later, anywhere, any number of times.
    Stale(usize, usize),
    Deliver(usize, usize),
}

fn steps<H: Harness>(max: usize) -> impl Strategy<Value = Vec<Step<H::Op>>> {
    let r = 0usize..3;
    let step = prop_oneof![
        4 => (r.clone(), H::op()).prop_map(|(i, o)| Step::Local(i, o)),
        1 => (r.clone(), r.clone()).prop_map(|(i, j)| Step::Merge(i, j)),
        1 => (r.clone(), r.clone()).prop_map(|(i, j)| Step::Sync(i, j)),
        1 => (r.clone(), any::<usize>()).prop_map(|(i, v)| Step::Stale(i, v)),
        2 => (any::<usize>(), r).prop_map(|(m, i)| Step::Deliver(m, i)),
    ];
    proptest::collection::vec(step, 0..max)
}

/// Runs a history; returns the replicas. Every update application must either succeed
/// or fail with `INVALID_OPERATION` (an ORSet update whose base is unseen) leaving the
/// replica unchanged.
pub(super) fn run<H: Harness>(steps: &[Step<H::Op>]) -> [H; 3] {
    let mut reps = [H::fresh(11), H::fresh(22), H::fresh(33)];
    let mut versions = vec![crate::clock::VersionVector::new()];
    let mut mailbox: Vec<Vec<u8>> = Vec::new();
    for s in steps {
        match s {
            Step::Local(i, op) => reps[*i].apply(op),
            Step::Merge(i, j) => {
                let other = reps[*j].clone();
                reps[*i].merge(&other);
            }
            Step::Sync(i, j) => {
                let u = reps[*j].encode_update_since(&reps[*i].version());
                reps[*i]
                    .apply_update(&u)
                    .expect("an update since my own version applies");
                mailbox.push(u);
            }
            Step::Stale(i, v) => mailbox.push(reps[*i].encode_update_since(&versions[v % versions.len()])),
            Step::Deliver(m, i) => {
                if !mailbox.is_empty() {
                    let before = reps[*i].encode();
                    if let Err(e) = reps[*i].apply_update(&mailbox[m % mailbox.len()]) {
                        assert_eq!(e.code(), "INVALID_OPERATION", "{e}");
                        assert_eq!(reps[*i].encode(), before, "a failed update changed the replica");
                    }
                }
            }
        }
        versions.extend(reps.iter().map(|r| r.version()));
    }
    reps
}

fn merged<H: Harness>(a: &H, b: &H) -> H {
    let mut m = a.clone();
    m.merge(b);
    m
}

pub(super) fn same<H: Harness>(a: &H, b: &H) -> bool {
    a.encode() == b.encode() && a.observe() == b.observe() && a.version() == b.version()
}

macro_rules! crdt_properties {
    ($name:ident, $ty:ty) => {
        mod $name {
            use super::*;
            type H = $ty;

            proptest! {
                #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

                #[test]
                fn merge_is_commutative_associative_idempotent(s in steps::<H>(40)) {
                    let [a, b, c] = run::<H>(&s);
                    prop_assert!(same(&merged(&a, &b), &merged(&b, &a)));
                    prop_assert!(same(&merged(&merged(&a, &b), &c), &merged(&a, &merged(&b, &c))));
                    prop_assert!(same(&merged(&a, &a), &a));
                    prop_assert!(same(&merged(&merged(&a, &b), &b), &merged(&a, &b)));
                }

                /// Replicas that exchanged merges and (stale, duplicated, reordered)
                /// updates converge, after one round of syncing, to exactly the merge
                /// of everything.
                #[test]
                fn replicas_converge(s in steps::<H>(60)) {
                    let mut reps = run::<H>(&s);
                    let all = merged(&merged(&reps[0], &reps[1]), &reps[2]);
                    for _ in 0..2 {
                        for i in 0..3 {
                            for j in 0..3 {
                                let u = reps[j].encode_update_since(&reps[i].version());
                                reps[i].apply_update(&u).unwrap();
                            }
                        }
                    }
                    for r in &reps {
                        prop_assert!(same(r, &all), "{:?}\n!=\n{:?}", r, all);
                    }
                }

                #[test]
                fn update_since_equals_merge(s in steps::<H>(40), i in 0usize..3, j in 0usize..3) {
                    let reps = run::<H>(&s);
                    let mut a = reps[i].clone();
                    let u = reps[j].encode_update_since(&a.version());
                    a.apply_update(&u).unwrap();
                    prop_assert!(same(&a, &merged(&reps[i], &reps[j])));
                    // Twice is once.
                    a.apply_update(&u).unwrap();
                    prop_assert!(same(&a, &merged(&reps[i], &reps[j])));
                    // Everything, into a fresh replica.
                    let mut fresh = H::fresh(99);
                    fresh.apply_update(&reps[j].encode_update_since(&Default::default())).unwrap();
                    prop_assert!(same(&fresh, &reps[j]));
                    // Nothing new: an update since my own version changes nothing.
                    let mut b = reps[j].clone();
                    b.apply_update(&reps[j].encode_update_since(&reps[j].version())).unwrap();
                    prop_assert!(same(&b, &reps[j]));
                }

                #[test]
                fn encode_decode_round_trip(s in steps::<H>(40), i in 0usize..3) {
                    let r = &run::<H>(&s)[i];
                    let back = H::decode(&r.encode(), r.site()).unwrap();
                    prop_assert!(same(&back, r));
                    // A restored replica keeps editing in step with the original.
                    let (mut x, mut y) = (r.clone(), back);
                    x.apply(&op_sample::<H>()); y.apply(&op_sample::<H>());
                    prop_assert!(same(&x, &y));
                }

                #[test]
                fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80), k in 0usize..2) {
                    let _ = H::decode(&b, 1);
                    let _ = H::fresh(1).apply_update(&b);
                    let mut framed = vec![b'E', b'S', crate::codec::FORMAT_VERSION, H::KINDS[k] as u8];
                    framed.extend(&b);
                    let _ = H::decode(&framed, 1);
                    let _ = H::fresh(1).apply_update(&framed);
                }

                /// Truncations never decode; flipped bytes never panic.
                #[test]
                fn corrupted_encodings(s in steps::<H>(30), i in 0usize..3, at in any::<usize>(), x in 1u8..=255) {
                    let r = &run::<H>(&s)[i];
                    for bytes in [r.encode(), r.encode_update_since(&Default::default())] {
                        let cut = at % bytes.len();
                        prop_assert!(H::decode(&bytes[..cut], 1).is_err());
                        prop_assert!(H::fresh(1).apply_update(&bytes[..cut]).is_err());
                        let mut flipped = bytes.clone();
                        flipped[cut] ^= x;
                        let _ = H::decode(&flipped, 1);
                        let _ = H::fresh(1).apply_update(&flipped);
                    }
                }
            }

            /// "Here come 2^62 items" is refused before anything is allocated.
            #[test]
            fn hostile_lengths_are_bounded() {
                for kind in H::KINDS {
                    for prefix_vvs in 0..3 {
                        let mut w = crate::codec::Writer::new(kind);
                        for _ in 0..prefix_vvs {
                            w.uvar(0); // empty version vectors (the update's base, version)
                        }
                        w.uvar(u64::MAX >> 2);
                        w.raw(&[1, 2, 3]);
                        let b = w.finish();
                        assert_eq!(H::decode(&b, 1).unwrap_err().code(), "DECODE_ERROR");
                        assert_eq!(H::fresh(1).apply_update(&b).unwrap_err().code(), "DECODE_ERROR");
                    }
                }
            }
        }
    };
}

/// A deterministic operation (the first the strategy would give for a fixed seed).
fn op_sample<H: Harness>() -> H::Op {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    H::op().new_tree(&mut TestRunner::deterministic()).unwrap().current()
}

fn small_value() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        (-2i64..3).prop_map(Value::Integer),
        Just(Value::Real(1.0)),
        prop_oneof![Just("a"), Just("b"), Just("é")].prop_map(Value::from),
        Just(Value::Blob(vec![0, 255])),
    ]
    .boxed()
}

/// Small wall-clock times, often equal across replicas and going backwards: clock ties
/// and skew are the interesting cases.
fn wall() -> impl Strategy<Value = u64> {
    0u64..20
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..4, 1 => Just(u64::MAX / 2), 1 => Just(u64::MAX)]
}

impl Harness for GCounter {
    type Op = u64;
    const KINDS: [Kind; 2] = [Kind::GCounter, Kind::GCounterUpdate];
    fn op() -> BoxedStrategy<u64> {
        amount().boxed()
    }
    fn fresh(site: u64) -> Self {
        GCounter::new(site)
    }
    fn apply(&mut self, op: &u64) {
        let before = self.encode();
        if self.increment(*op).is_err() {
            assert_eq!(self.encode(), before);
        }
    }
    fn observe(&self) -> String {
        format!("{:?}", self.value().map_err(|e| e.code()))
    }
}

impl Harness for PNCounter {
    type Op = (bool, u64);
    const KINDS: [Kind; 2] = [Kind::PNCounter, Kind::PNCounterUpdate];
    fn op() -> BoxedStrategy<(bool, u64)> {
        (any::<bool>(), amount()).boxed()
    }
    fn fresh(site: u64) -> Self {
        PNCounter::new(site)
    }
    fn apply(&mut self, (up, n): &(bool, u64)) {
        let before = self.encode();
        let r = if *up { self.increment(*n) } else { self.decrement(*n) };
        if r.is_err() {
            assert_eq!(self.encode(), before);
        }
    }
    fn observe(&self) -> String {
        format!("{:?}", self.value().map_err(|e| e.code()))
    }
}

impl Harness for ORSet {
    type Op = (bool, Value);
    const KINDS: [Kind; 2] = [Kind::ORSet, Kind::ORSetUpdate];
    fn op() -> BoxedStrategy<(bool, Value)> {
        (prop::bool::weighted(0.6), small_value()).boxed()
    }
    fn fresh(site: u64) -> Self {
        ORSet::new(site)
    }
    fn apply(&mut self, (add, v): &(bool, Value)) {
        if *add {
            self.add(v.clone()).unwrap();
            assert!(self.has(v));
        } else {
            self.remove(v).unwrap();
            assert!(!self.has(v));
        }
    }
    fn observe(&self) -> String {
        format!("{:?}", self.values().collect::<Vec<_>>())
    }
}

impl Harness for LWWRegister {
    type Op = (Value, u64);
    const KINDS: [Kind; 2] = [Kind::LWWRegister, Kind::LWWRegisterUpdate];
    fn op() -> BoxedStrategy<(Value, u64)> {
        (small_value(), wall()).boxed()
    }
    fn fresh(site: u64) -> Self {
        LWWRegister::new(site)
    }
    fn apply(&mut self, (v, wall): &(Value, u64)) {
        self.set(v.clone(), *wall).unwrap();
        assert_eq!(self.get(), Some(v));
    }
    fn observe(&self) -> String {
        format!("{:?} {:?}", self.get(), self.timestamp())
    }
}

impl Harness for LWWMap {
    type Op = (Option<Value>, &'static str, u64);
    const KINDS: [Kind; 2] = [Kind::LWWMap, Kind::LWWMapUpdate];
    fn op() -> BoxedStrategy<Self::Op> {
        let key = prop_oneof![Just("x"), Just("y"), Just("")];
        (prop::option::weighted(0.7, small_value()), key, wall()).boxed()
    }
    fn fresh(site: u64) -> Self {
        LWWMap::new(site)
    }
    fn apply(&mut self, (v, k, wall): &Self::Op) {
        match v {
            Some(v) => {
                self.set(k, v.clone(), *wall).unwrap();
            }
            None => {
                self.delete(k, *wall).unwrap();
            }
        }
        assert_eq!(self.get(k), v.as_ref());
    }
    fn observe(&self) -> String {
        format!("{:?}", self.entries().collect::<Vec<_>>())
    }
}

crdt_properties!(gcounter, GCounter);
crdt_properties!(pncounter, PNCounter);
crdt_properties!(orset, ORSet);
crdt_properties!(lww_register, LWWRegister);
crdt_properties!(lww_map, LWWMap);

/// Concrete scenarios the properties cover only by chance.
mod scenarios {
    use super::*;

    #[test]
    fn orset_add_wins_over_concurrent_remove() {
        let v = Value::from("x");
        let mut a = ORSet::new(1);
        a.add(v.clone()).unwrap();
        let mut b = ORSet::decode(&a.encode(), 2).unwrap();
        b.remove(&v).unwrap();
        a.add(v.clone()).unwrap();
        let mut c = b.clone();
        c.apply_update(&a.encode_update_since(&b.version())).unwrap();
        a.apply_update(&b.encode_update_since(&a.version())).unwrap();
        assert!(a.has(&v) && c.has(&v));
        assert_eq!(a.encode(), c.encode());
    }

    #[test]
    fn orset_remove_travels_in_an_update() {
        let v = Value::Integer(7);
        let mut a = ORSet::new(1);
        a.add(v.clone()).unwrap();
        let mut b = ORSet::decode(&a.encode(), 2).unwrap();
        let before = a.version();
        assert!(a.remove(&v).unwrap());
        assert_ne!(a.version(), before, "a remove is an operation");
        b.apply_update(&a.encode_update_since(&b.version())).unwrap();
        assert!(!b.has(&v));
        // Compact: no tombstone for the removed element.
        assert_eq!(b.encode(), {
            let mut e = ORSet::new(0);
            e.merge(&b);
            e.encode()
        });
        assert!(b.encode().len() < 12, "{:?}", b.encode());
    }

    #[test]
    fn orset_refuses_an_update_on_an_unseen_base() {
        let mut a = ORSet::new(1);
        a.add(Value::Integer(1)).unwrap();
        let v1 = a.version();
        a.add(Value::Integer(2)).unwrap();
        let u = a.encode_update_since(&v1);
        let mut b = ORSet::new(2);
        assert_eq!(b.apply_update(&u).unwrap_err().code(), "INVALID_OPERATION");
        assert!(b.is_empty());
    }

    #[test]
    fn lww_map_delete_vs_set_follows_timestamps() {
        let mut a = LWWMap::new(1);
        a.set("k", Value::Integer(1), 10).unwrap();
        let mut b = LWWMap::decode(&a.encode(), 2).unwrap();
        b.delete("k", 30).unwrap();
        a.set("k", Value::Integer(2), 20).unwrap(); // earlier than the delete
        a.merge(&b);
        assert_eq!(a.get("k"), None);
        a.set("k", Value::Integer(3), 25).unwrap(); // wall clock behind: HLC still orders it last
        b.apply_update(&a.encode_update_since(&b.version())).unwrap();
        assert_eq!(b.get("k"), Some(&Value::Integer(3)));
    }

    #[test]
    fn lww_drift_is_rejected_atomically() {
        let mut a = LWWMap::new(1);
        a.set("k", Value::Integer(1), 1_000_000).unwrap();
        let mut b = LWWMap::with_max_drift(2, 1_000);
        let u = a.encode_update_since(&b.version());
        assert_eq!(b.apply_update_at(&u, 10_000).unwrap_err().code(), "CLOCK_DRIFT");
        assert!(b.is_empty() && b.version().is_empty());
        b.apply_update_at(&u, 999_500).unwrap();
        assert_eq!(b.get("k"), Some(&Value::Integer(1)));

        let mut r = LWWRegister::new(1);
        r.set(Value::Null, u64::MAX / 2).unwrap();
        let mut s = LWWRegister::new(2);
        let u = r.encode_update_since(&s.version());
        assert_eq!(s.apply_update_at(&u, 0).unwrap_err().code(), "CLOCK_DRIFT");
        assert_eq!(s.get(), None);
    }

    #[test]
    fn counters_overflow_is_an_error() {
        let mut g = GCounter::new(1);
        g.increment(u64::MAX).unwrap();
        assert_eq!(g.increment(1).unwrap_err().code(), "INVALID_OPERATION");
        let mut h = GCounter::new(2);
        h.increment(1).unwrap();
        g.merge(&h);
        assert_eq!(g.value().unwrap_err().code(), "INVALID_OPERATION");

        let mut p = PNCounter::new(1);
        p.increment(i64::MAX as u64).unwrap();
        assert_eq!(p.increment(1).unwrap_err().code(), "INVALID_OPERATION");
        assert_eq!(p.value().unwrap(), i64::MAX);
        p.decrement(u64::MAX).unwrap();
        assert_eq!(p.value().unwrap(), i64::MIN);
        assert_eq!(p.decrement(1).unwrap_err().code(), "INVALID_OPERATION");
    }
}
