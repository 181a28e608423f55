use super::*;
use proptest::prelude::*;

fn text(site: u64, s: &str) -> Text {
    let mut t = Text::new(site);
    t.insert(0, s).unwrap();
    t
}

#[test]
fn local_editing() {
    let mut t = Text::new(1);
    t.insert(0, "hello").unwrap();
    t.insert(5, " world").unwrap();
    t.insert(0, "¡").unwrap();
    assert_eq!(t.text(), "¡hello world");
    assert_eq!(t.len(), 12);
    t.delete(1, 6).unwrap();
    assert_eq!(t.text(), "¡world");
    t.insert(6, "!").unwrap();
    t.delete(5, 1).unwrap(); // backspace
    t.delete(4, 1).unwrap();
    assert_eq!(t.text(), "¡wor!");
    assert_eq!(t.insert(99, "x").unwrap_err().code(), "INVALID_OPERATION");
    assert_eq!(t.delete(3, 9).unwrap_err().code(), "INVALID_OPERATION");
    assert_eq!(t.delete(usize::MAX, 2).unwrap_err().code(), "INVALID_OPERATION");
}

#[test]
fn typing_stays_run_length_encoded() {
    let mut t = Text::new(7);
    for (i, c) in "the quick brown fox".chars().enumerate() {
        t.insert(i, &c.to_string()).unwrap();
    }
    assert_eq!(t.b().seq.runs().count(), 1);
    // Backspacing is one reversed delete run.
    for i in (10..19).rev() {
        t.delete(i, 1).unwrap();
    }
    assert_eq!(t.b().deletes.len(), 1);
    assert!(t.b().deletes[0].reversed);
    assert_eq!(t.text(), "the quick ");
}

#[test]
fn concurrent_inserts_converge_without_interleaving() {
    let base = text(1, "ab");
    let mut x = Text::decode(&base.encode(), 2).unwrap();
    let mut y = Text::decode(&base.encode(), 3).unwrap();
    x.insert(1, "XXX").unwrap();
    y.insert(1, "YYY").unwrap();
    let (x0, y0) = (x.clone(), y.clone());
    x.merge(&y0).unwrap();
    y.merge(&x0).unwrap();
    assert_eq!(x.text(), y.text());
    assert!(x.text() == "aXXXYYYb" || x.text() == "aYYYXXXb", "{}", x.text());
}

#[test]
fn delete_vs_insert_and_double_delete() {
    let base = text(1, "abcdef");
    let mut x = Text::decode(&base.encode(), 2).unwrap();
    let mut y = Text::decode(&base.encode(), 3).unwrap();
    x.delete(1, 4).unwrap(); // "af"
    y.insert(3, "Z").unwrap(); // "abcZdef"
    y.delete(2, 1).unwrap(); // both delete 'c'
    let (x0, y0) = (x.clone(), y.clone());
    x.merge(&y0).unwrap();
    y.merge(&x0).unwrap();
    assert_eq!(x.text(), "aZf");
    assert_eq!(y.text(), "aZf");
}

#[test]
fn updates_out_of_order_wait_for_dependencies() {
    let mut a = Text::new(1);
    a.insert(0, "one").unwrap();
    let v1 = a.version().clone();
    a.insert(3, " two").unwrap();
    let v2 = a.version().clone();
    a.delete(0, 4).unwrap();
    let u1 = a.encode_update_since(&Version::new());
    let u2 = a.encode_update_since(&v1);
    let u3 = a.encode_update_since(&v2);
    let mut b = Text::new(2);
    b.apply_update(&u3).unwrap();
    assert_eq!(b.text(), "");
    assert!(b.pending_ops() > 0);
    b.apply_update(&u2).unwrap();
    b.apply_update(&u2).unwrap();
    b.apply_update(&u1).unwrap();
    assert_eq!(b.pending_ops(), 0);
    assert_eq!(b.text(), "two");
    assert_eq!(b.version(), a.version());
}

#[test]
fn anchors_follow_edits() {
    let mut a = text(1, "hello world");
    let caret = a.anchor(6, Assoc::After).unwrap(); // before 'w'
    let end = a.anchor(11, Assoc::After).unwrap();
    let mut b = Text::decode(&a.encode(), 2).unwrap();
    b.insert(0, ">> ").unwrap();
    b.delete(8, 1).unwrap(); // drop the space
    a.merge(&b).unwrap();
    assert_eq!(a.text(), ">> helloworld");
    assert_eq!(a.resolve(caret).unwrap(), 8);
    assert_eq!(a.resolve(end).unwrap(), 13);
    let before = a.anchor(3, Assoc::Before).unwrap(); // after "> "
    a.insert(3, "X").unwrap();
    assert_eq!(a.resolve(before).unwrap(), 3);
}

#[test]
fn versions_snapshots_and_restore() {
    let mut a = text(1, "draft one");
    let v1 = a.version().clone();
    a.delete(6, 3).unwrap();
    a.insert(6, "two, much better").unwrap();
    assert_eq!(a.text_at(&v1).unwrap(), "draft one");
    a.restore(&v1).unwrap();
    assert_eq!(a.text(), "draft one");
    let mut b = Text::new(2);
    b.merge(&a).unwrap();
    assert_eq!(b.text(), "draft one");
    let mut future = Version::new();
    future.observe(1, 10_000);
    assert!(a.text_at(&future).is_err());
}

#[test]
fn snapshots_without_history_drop_deleted_text_only() {
    let mut a = text(1, "draft one");
    let v1 = a.version().clone();
    a.delete(0, 6).unwrap();
    a.insert(0, "final ").unwrap();
    let plain = a.encode();
    let full = a.encode_with_history();
    assert!(plain.len() < full.len());
    let mut b = Text::decode(&plain, 2).unwrap();
    assert_eq!(b.text(), "final one");
    assert!(!b.has_full_history());
    assert_eq!(b.text_at(&v1).unwrap_err().code(), "INVALID_OPERATION");
    assert_eq!(b.text_at(b.version()).unwrap(), "final one");
    assert_eq!(b.restore(&v1).unwrap_err().code(), "INVALID_OPERATION");
    assert_eq!(b.text(), "final one", "a refused restore changes nothing");
    assert_eq!(b.encode(), plain);
    assert_eq!(b.encode_with_history(), plain, "nothing to add");
    let c = Text::decode(&full, 3).unwrap();
    assert!(c.has_full_history());
    assert_eq!(c.text_at(&v1).unwrap(), "draft one");
    assert_eq!(c.encode_with_history(), full);
    // Slices that would need the dropped text are refused by the checked variant.
    assert_eq!(
        b.try_encode_update_between(&Version::new(), &v1).unwrap_err().code(),
        "INVALID_OPERATION"
    );
    assert!(b.try_encode_update_between(&Version::new(), b.version()).is_ok());
    // Edits after loading work as usual.
    b.insert(9, "!").unwrap();
    assert_eq!(b.text(), "final one!");
}

#[test]
fn a_replica_without_history_merges_with_concurrent_edits_around_deleted_text() {
    // The peer saw "hello cruel world" and types inside "cruel" while `a` deletes it;
    // `b` is `a` loaded without history: the peer's insert refers to characters whose
    // text `b` no longer holds, only their ids.
    let mut a = text(1, "hello cruel world");
    let mut peer = Text::decode(&a.encode_with_history(), 2).unwrap();
    a.delete(6, 6).unwrap();
    let mut b = Text::decode(&a.encode(), 3).unwrap();
    peer.insert(9, "XX").unwrap(); // "hello cruXXel world"
    let p0 = peer.clone();
    b.merge(&p0).unwrap();
    a.merge(&p0).unwrap();
    peer.merge(&b).unwrap();
    assert_eq!(a.text(), "hello XXworld");
    assert_eq!(b.text(), a.text());
    assert_eq!(peer.text(), a.text());
    // A fresh replica fed by `b` gets the deleted characters as ids only, converges,
    // and knows it cannot show the old text.
    let mut fresh = Text::new(4);
    fresh.apply_update(&b.encode_update_since(&Version::new())).unwrap();
    assert_eq!(fresh.text(), a.text());
    assert_eq!(fresh.version(), a.version());
    let mut v0 = Version::new();
    v0.observe(1, 17);
    assert_eq!(fresh.text_at(&v0).unwrap_err().code(), "INVALID_OPERATION");
    assert_eq!(a.text_at(&v0).unwrap(), "hello cruel world");
    // And it keeps merging with everyone.
    fresh.insert(0, ">").unwrap();
    a.merge(&fresh).unwrap();
    b.merge(&fresh).unwrap();
    assert_eq!(a.text(), ">hello XXworld");
    assert_eq!(b.text(), a.text());
}

#[test]
fn utf16_positions() {
    let mut t = text(1, "a😀b");
    assert_eq!(t.len(), 3);
    assert_eq!(t.len_utf16(), 4);
    t.insert_utf16(3, "c").unwrap();
    assert_eq!(t.text(), "a😀cb");
    assert!(t.insert_utf16(2, "x").is_err(), "inside a surrogate pair");
    t.delete_utf16(1, 2).unwrap();
    assert_eq!(t.text(), "acb");
}

#[test]
fn decode_rejects_garbage() {
    let t = text(1, "hello");
    let good = t.encode();
    for cut in 0..good.len() {
        assert!(Text::decode(&good[..cut], 2).is_err(), "cut at {cut}");
    }
    let upd = t.encode_update_since(&Version::new());
    for cut in 0..upd.len() {
        assert!(Text::new(2).apply_update(&upd[..cut]).is_err(), "cut at {cut}");
    }
    assert_eq!(Text::decode(&upd, 2).unwrap_err().code(), "DECODE_ERROR");
}

/// A random edit: (replica, position fraction, insert text or delete length).
#[derive(Clone, Debug)]
enum Step {
    Insert(usize, u16, String),
    Delete(usize, u16, u8),
    Merge(usize, usize),
    Update(usize, usize),
}

fn step(replicas: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..replicas, any::<u16>(), "[a-c😀]{1,4}").prop_map(|(r, p, s)| Step::Insert(r, p, s)),
        2 => (0..replicas, any::<u16>(), 1u8..4).prop_map(|(r, p, n)| Step::Delete(r, p, n)),
        1 => (0..replicas, 0..replicas).prop_map(|(a, b)| Step::Merge(a, b)),
        1 => (0..replicas, 0..replicas).prop_map(|(a, b)| Step::Update(a, b)),
    ]
}

fn run(steps: &[Step], n: usize) -> Vec<Text> {
    let mut rs: Vec<Text> = (0..n as u64).map(|i| Text::new(i + 1)).collect();
    for s in steps {
        match s {
            Step::Insert(r, p, text) => {
                let t = &mut rs[*r];
                let pos = *p as usize % (t.len() + 1);
                t.insert(pos, text).unwrap();
            }
            Step::Delete(r, p, k) => {
                let t = &mut rs[*r];
                if !t.is_empty() {
                    let pos = *p as usize % t.len();
                    let k = (*k as usize).min(t.len() - pos);
                    t.delete(pos, k).unwrap();
                }
            }
            Step::Merge(a, b) => {
                let other = rs[*b].clone();
                rs[*a].merge(&other).unwrap();
            }
            Step::Update(a, b) => {
                let u = rs[*b].encode_update_since(rs[*a].version());
                rs[*a].apply_update(&u).unwrap();
            }
        }
    }
    rs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Replicas that exchange everything, in any order, end identical.
    #[test]
    fn replicas_converge(steps in proptest::collection::vec(step(3), 1..40), order in any::<u64>()) {
        let mut rs = run(&steps, 3);
        // Full exchange in an order picked by `order`, twice (duplicates are harmless).
        for round in 0..2 {
            for i in 0..3 {
                let a = (i + (order as usize >> (round * 4))) % 3;
                for b in 0..3 {
                    let u = rs[b].encode_update_since(&Version::new());
                    rs[a].apply_update(&u).unwrap();
                }
            }
        }
        let t0 = rs[0].text();
        for r in &rs {
            prop_assert_eq!(r.text(), t0.clone());
            prop_assert_eq!(r.version(), rs[0].version());
        }
    }

    /// Merge is commutative, associative and idempotent.
    #[test]
    fn merge_laws(steps in proptest::collection::vec(step(3), 1..30)) {
        let rs = run(&steps, 3);
        let m = |a: &Text, b: &Text| { let mut x = a.clone(); x.merge(b).unwrap(); x };
        prop_assert_eq!(m(&rs[0], &rs[1]).text(), m(&rs[1], &rs[0]).text());
        prop_assert_eq!(m(&m(&rs[0], &rs[1]), &rs[2]).text(), m(&rs[0], &m(&rs[1], &rs[2])).text());
        let once = m(&rs[0], &rs[1]);
        prop_assert_eq!(m(&once, &rs[1]).text(), once.text());
    }

    /// Snapshots round-trip exactly, and a loaded replica keeps converging.
    #[test]
    fn snapshot_round_trip(steps in proptest::collection::vec(step(2), 1..30)) {
        let rs = run(&steps, 2);
        let bytes = rs[0].encode();
        let mut back = Text::decode(&bytes, 99).unwrap();
        prop_assert_eq!(back.text(), rs[0].text());
        prop_assert_eq!(back.version(), rs[0].version());
        prop_assert_eq!(back.encode(), bytes);
        back.merge(&rs[1]).unwrap();
        let mut direct = rs[0].clone();
        direct.merge(&rs[1]).unwrap();
        prop_assert_eq!(back.text(), direct.text());
        // With history, every version this replica saw reads the same after loading.
        let full = Text::decode(&rs[0].encode_with_history(), 98).unwrap();
        prop_assert_eq!(full.encode_with_history(), rs[0].encode_with_history());
        let mut v = Version::new();
        for (site, n) in rs[0].version().iter() {
            v.observe(site, n / 2);
            prop_assert_eq!(full.text_at(&v).unwrap(), rs[0].text_at(&v).unwrap());
        }
    }

    /// A replica loaded without history converges with replicas that kept everything,
    /// in every direction, and never shows wrong old text.
    #[test]
    fn without_history_converges(steps in proptest::collection::vec(step(3), 1..40)) {
        let mut rs = run(&steps, 3);
        let mut light = Text::decode(&rs[0].encode(), 97).unwrap();
        for r in rs.iter_mut() {
            r.merge(&light).unwrap();
            light.merge(r).unwrap();
        }
        for r in rs.iter_mut() {
            r.merge(&light).unwrap();
        }
        for r in &rs {
            prop_assert_eq!(r.text(), light.text());
        }
        let mut fresh = Text::new(96);
        fresh.apply_update(&light.encode_update_since(&Version::new())).unwrap();
        prop_assert_eq!(fresh.text(), light.text());
        let mut v = Version::new();
        for (site, n) in light.version().iter() {
            v.observe(site, n / 2);
            if let Ok(old) = fresh.text_at(&v) {
                prop_assert_eq!(old, rs[0].text_at(&v).unwrap());
            }
        }
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Text::decode(&bytes, 1);
        let _ = Text::new(1).apply_update(&bytes);
    }

    /// Valid headers with random bodies: the decoders' field checks, not just the header.
    #[test]
    fn decoders_never_panic_past_header(kind in 7u8..9, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![b'E', b'S', 1, kind];
        bytes.extend(body);
        let _ = Text::decode(&bytes, 1);
        let _ = Text::new(1).apply_update(&bytes);
    }
}

#[test]
fn regression_extend_after_merge() {
    let rs = run(
        &[
            Step::Insert(0, 0, "a".into()),
            Step::Merge(1, 0),
            Step::Insert(0, 15481, "a".into()),
            Step::Insert(0, 17318, "a".into()),
        ],
        3,
    );
    let mut rs = rs;
    for a in 0..3 {
        for b in 0..3 {
            let u = rs[b].encode_update_since(&Version::new());
            rs[a].apply_update(&u).unwrap();
        }
    }
    for r in &rs {
        assert_eq!(r.text(), "aaa");
    }
}

#[test]
fn forged_delete_over_non_characters_is_an_error_not_a_panic() {
    // Site 1: insert "ab" (seq 0-1), delete 'a' (seq 2), insert "c" (seq 3).
    let mut a = Text::new(1);
    a.insert(0, "ab").unwrap();
    a.delete(0, 1).unwrap();
    a.insert(1, "c").unwrap();
    let mut b = Text::new(2);
    b.merge(&a).unwrap();
    // A forged delete by site 3 of site 1's seq 1..=3: seq 2 is a delete, not a character.
    let forged = super::integrate::Op::Delete(DelRun {
        id: Id::new(3, 0),
        len: 3,
        lamport: 100,
        target: Id::new(1, 1),
        reversed: false,
    });
    let before = b.text();
    assert_eq!(b.apply_ops(vec![forged]).unwrap_err().code(), "INVALID_OPERATION");
    assert_eq!(b.text(), before, "nothing applied");
    b.insert(0, "still works").unwrap();
}

#[test]
fn a_flipped_bit_in_a_snapshot_is_detected() {
    let t = text(1, "integrity matters");
    let good = t.encode();
    for i in 4..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        assert_eq!(Text::decode(&bad, 2).unwrap_err().code(), "DECODE_ERROR", "byte {i}");
    }
}

#[test]
fn a_missing_origin_in_a_loaded_document_is_an_error_not_a_panic() {
    // "ab" where 'b' claims a right origin this document does not have (a forged
    // snapshot: loading trusts the listed order and does not look every origin up).
    let mut t = Text::new(9);
    t.bm().chars = vec!['a', 'b'];
    t.bm().seq = Seq::from_runs(vec![
        Run {
            id: Id::new(1, 0),
            len: 1,
            lamport: 0,
            origin_left: None,
            origin_right: None,
            content: 0,
            deleted: false,
            gone: false,
        },
        Run {
            id: Id::new(1, 1),
            len: 1,
            lamport: 1,
            origin_left: Some(Id::new(1, 0)),
            origin_right: Some(Id::new(5, 5)),
            content: 1,
            deleted: false,
            gone: false,
        },
    ]);
    t.version.observe(1, 2);
    t.lamport = 2;
    // A remote insert after 'a' must scan past 'b' and look up its right origin.
    let op = super::integrate::Op::Insert {
        id: Id::new(2, 0),
        lamport: 3,
        origin_left: Some(Id::new(1, 0)),
        origin_right: None,
        content: super::integrate::Content::Chars(vec!['X']),
    };
    assert_eq!(t.apply_ops(vec![op]).unwrap_err().code(), "INVALID_OPERATION");
    assert_eq!(t.text(), "ab", "nothing applied");
    assert_eq!(t.b().chars.len(), 2, "nothing left behind");
    t.insert(2, "c").unwrap();
    assert_eq!(t.text(), "abc");
}

#[test]
fn a_loaded_text_builds_its_structure_on_first_need() {
    let mut a = Text::new(1);
    a.insert(0, "héllo wörld").unwrap();
    a.delete(1, 4).unwrap();
    for (bytes, history) in [(a.encode(), false), (a.encode_with_history(), true)] {
        let d = Text::decode(&bytes, 2).unwrap();
        assert!(d.body.get().is_none(), "decode builds nothing");
        assert_eq!(d.len(), a.len());
        assert_eq!(d.text(), a.text());
        // (With history the stored characters are not the text: reading builds.)
        assert_eq!(d.body.get().is_none(), !history, "reading the text builds nothing");
        // A clone taken before the build builds its own.
        let mut c = d.clone();
        let mut d = d;
        d.insert(1, "X").unwrap();
        c.delete(0, 1).unwrap();
        assert_eq!(d.text(), "hX wörld");
        assert_eq!(c.text(), " wörld");
        // (c shares d's site, so only d merges with a third replica.)
        let mut e = Text::decode(&bytes, 3).unwrap();
        e.insert(0, "¡").unwrap();
        d.merge(&e).unwrap();
        e.merge(&d).unwrap();
        assert_eq!(d.text(), "¡hX wörld");
        assert_eq!(e.text(), d.text());
        assert_eq!(Text::decode(&bytes, 3).unwrap().encode(), a.encode());
    }
}

/// Re-seals a snapshot after editing its bytes (a forgery: the checksum only guards
/// against accidents), and locates the structure section of a split snapshot.
mod forged {
    pub fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = bytes.len() - 4;
        let crc = super::super::codec::crc32_for_tests(&bytes[4..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }
}

#[test]
fn loading_inflates_only_the_text_and_encodes_back_unchanged() {
    let mut a = Text::new(1);
    for i in 0..400 {
        a.insert(a.len() / 2, &format!("line {i}\n")).unwrap();
        if i % 3 == 0 {
            a.delete(a.len() / 3, 2).unwrap();
        }
    }
    let bytes = a.encode();
    let d = Text::decode(&bytes, 2).unwrap();
    assert_eq!(d.text(), a.text());
    assert_eq!(d.len_utf16(), a.len_utf16());
    assert!(d.body.get().is_none(), "text, len and len_utf16 build nothing");
    assert_eq!(
        d.encode(),
        bytes,
        "an unchanged document encodes to the bytes it came from"
    );
    assert!(d.body.get().is_none(), "without building");
    d.validate().unwrap();
    let (ds, as_) = (d.stats().unwrap(), a.stats().unwrap());
    assert_eq!(
        (ds.runs, ds.deleted_runs, ds.delete_log),
        (as_.runs, as_.deleted_runs, as_.delete_log)
    );
    assert_eq!(ds.chars, a.len(), "without history only the visible text is held");
}

#[test]
fn a_forged_structure_fails_on_first_need_and_loses_nothing() {
    let mut a = Text::new(1);
    a.insert(0, "hello world").unwrap();
    a.delete(2, 3).unwrap();
    let good = a.encode();
    // The structure section is the tail before the checksum: corrupt its last bytes
    // (the delete log, stored when this small) and re-seal. Every flip that still
    // decodes must be refused by validate(), not by a panic.
    let mut refused = 0;
    for back in 5..12 {
        for bit in [0x01u8, 0x40] {
            let mut b = good.clone();
            let i = b.len() - back;
            b[i] ^= bit;
            let b = forged::reseal(b);
            let Ok(t) = Text::decode(&b, 2) else { continue };
            if t.validate().is_ok() {
                continue; // a flip that happens to be another valid document
            }
            refused += 1;
            assert_eq!(t.text(), "he world", "the loaded text stays readable");
            assert_eq!(t.len(), 8);
            let mut e = t.clone();
            assert_eq!(e.insert(0, "x").unwrap_err().code(), "DECODE_ERROR");
            assert_eq!(e.delete(0, 1).unwrap_err().code(), "DECODE_ERROR");
            assert_eq!(e.merge(&a).unwrap_err().code(), "DECODE_ERROR");
            assert_eq!(a.clone().merge(&t).unwrap_err().code(), "DECODE_ERROR");
            assert_eq!(t.anchor(1, Assoc::After).unwrap_err().code(), "DECODE_ERROR");
            assert_eq!(t.stats().unwrap_err().code(), "DECODE_ERROR");
            assert!(!t.has_full_history());
            assert_eq!(e.text(), "he world");
            assert_eq!(e.encode(), b, "encodes to exactly what was loaded");
            assert_eq!(e.encode_with_history(), b);
        }
    }
    assert!(refused > 0, "some forgeries reach the structure check");
}

#[test]
fn snapshots_in_the_layout_before_the_split_still_load() {
    // `testdata/legacy-stored.bin`: a stored (not deflated) single-body snapshot.
    let stored: &[u8] = include_bytes!("testdata/legacy-stored.bin");
    let t = Text::decode(stored, 5).unwrap();
    let want = t.text();
    assert!(want.contains("héllo") && want.contains('👋'), "{want}");
    // The same body deflated, as the old encoder wrote larger documents.
    let body = &stored[5..stored.len() - 4];
    let mut w = crate::codec::Writer::new(crate::codec::Kind::Text);
    w.u8(1);
    w.uvar(body.len() as u64);
    w.raw(&miniz_oxide::deflate::compress_to_vec(body, 6));
    let mut deflated = w.finish();
    deflated.extend_from_slice(&[0; 4]);
    let deflated = forged::reseal(deflated);
    let d = Text::decode(&deflated, 5).unwrap();
    assert_eq!(d.text(), want);
    // Old snapshots are checked whole at load, and re-encode in the current layout.
    let mut d2 = Text::decode(&deflated, 6).unwrap();
    d2.insert(0, ">").unwrap();
    let again = Text::decode(&d2.encode(), 7).unwrap();
    assert_eq!(again.text(), format!(">{want}"));
    assert_eq!(again.encode()[4], 2, "written split");
}
