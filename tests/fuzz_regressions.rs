//! Replays the fuzzers' inputs through the decoders in plain `cargo test`: every file
//! under `fuzz/regressions/<target>/` (inputs that once crashed a decoder, kept forever)
//! and `fuzz/seeds/<target>/` (small valid encodings the fuzzers start from).
//!
//! The harness is `fuzz/src/lib.rs`, included here as a module, so each input runs
//! through exactly the code of the cargo-fuzz target that found it: a decoder must
//! return `Ok` or `Err`, never panic (see that file for what else is checked on `Ok`).
//! The fuzzers themselves run with `scripts/fuzz.sh`, which copies any new crash into
//! `fuzz/regressions/<target>/`.
//!
//! `cargo test --test fuzz_regressions -- --ignored write_seeds` regenerates the seeds.

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use edgesync::clock::{Timestamp, VersionVector};
use edgesync::codec::{Kind, Writer};
use edgesync::crdt::text::Text;
use edgesync::crdt::{Crdt, GCounter, LWWMap, LWWRegister, ORSet, PNCounter};
use edgesync::Value;

/// Regression inputs that still crash because of an open bug in `src/` (the fuzz
/// harness's job is to find these, not to fix them): `(target, file name, the bug)`.
/// They are skipped by the per-target tests and replayed by the ignored test
/// `open_src_bugs`. Remove an entry once the bug is fixed: its input then replays with
/// the others, guarding against the bug coming back.
const OPEN_SRC_BUGS: &[(&str, &str, &str)] = &[];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none if the directory is missing).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.expect("read a fuzz input directory").path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

fn is_open_bug(target: &str, file: &Path) -> bool {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    OPEN_SRC_BUGS
        .iter()
        .any(|(t, f, _)| *t == target && name.as_deref() == Some(*f))
}

/// Runs one input through the harness; `Err` with the panic message if it panicked.
fn replay(target: &str, file: &Path) -> Result<(), String> {
    let data = fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    panic::catch_unwind(|| harness::run(target, &data)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned())
    })
}

fn replay_target(target: &str) {
    let mut failures = Vec::new();
    let mut n = 0;
    for kind in ["regressions", "seeds"] {
        for file in inputs(kind, target) {
            if is_open_bug(target, &file) {
                eprintln!("skipping {} (open src/ bug, see OPEN_SRC_BUGS)", file.display());
                continue;
            }
            n += 1;
            if let Err(msg) = replay(target, &file) {
                failures.push(format!("{}: {msg}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} fuzz inputs for `{target}` panic (a decoder bug in src/; reproduce with \
         `cargo fuzz run {target} <file>` in fuzz/):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay_target(stringify!($name));
            }
        )*

        /// Every harness target has a test here, and every fixture directory a target.
        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($name)),*];
            assert_eq!(tested.as_slice(), harness::TARGETS, "a fuzz target without a replay test");
            for kind in ["regressions", "seeds"] {
                let Ok(dir) = fs::read_dir(fuzz_dir().join(kind)) else { continue };
                for entry in dir {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    assert!(
                        name.starts_with('.') || harness::TARGETS.contains(&name.as_str()),
                        "fuzz/{kind}/{name} names no fuzz target"
                    );
                }
            }
        }
    };
}

replay_tests!(
    version_vector,
    timestamp,
    gcounter_decode,
    gcounter_apply_update,
    pncounter_decode,
    pncounter_apply_update,
    orset_decode,
    orset_apply_update,
    lww_register_decode,
    lww_register_apply_update,
    lww_map_decode,
    lww_map_apply_update,
    text_decode,
    text_apply_update,
    hrana_execute,
    hrana_batch,
);

/// The regression inputs of [`OPEN_SRC_BUGS`]: each still panics until its bug in
/// `src/` is fixed. `cargo test --test fuzz_regressions -- --ignored open_src_bugs`.
#[test]
#[ignore = "open src/ bugs found by fuzzing (see OPEN_SRC_BUGS); run with --ignored"]
fn open_src_bugs() {
    let mut failures = Vec::new();
    for (target, file, bug) in OPEN_SRC_BUGS {
        let path = fuzz_dir().join("regressions").join(target).join(file);
        if let Err(msg) = replay(target, &path) {
            failures.push(format!("{target}/{file}: {bug}\n  panicked: {msg}"));
        }
    }
    assert!(failures.is_empty(), "open src/ bugs:\n{}", failures.join("\n"));
}

/// Regenerates `fuzz/seeds/`: small valid encodings of each kind, so the fuzzers start
/// from inputs that pass the header and structure checks.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand after an encoding changes"]
fn write_seeds() {
    let mut seeds: Vec<(&str, &str, Vec<u8>)> = Vec::new();

    let mut vv = VersionVector::new();
    seeds.push(("version_vector", "empty", vv.encode()));
    vv.increment(1).unwrap();
    vv.increment(300).unwrap();
    vv.increment(300).unwrap();
    vv.increment(u64::MAX).unwrap();
    seeds.push(("version_vector", "three_sites", vv.encode()));

    for (name, wall, ts) in [
        (
            "small",
            5u64,
            Timestamp {
                ms: 1,
                counter: 2,
                site: 3,
            },
        ),
        (
            "now",
            1_735_689_600_000,
            Timestamp {
                ms: 1_735_689_600_500,
                counter: 7,
                site: 0xABCD,
            },
        ),
        (
            "max",
            u64::MAX,
            Timestamp {
                ms: u64::MAX,
                counter: u32::MAX,
                site: u64::MAX,
            },
        ),
    ] {
        let mut w = Writer::new(Kind::LWWRegister);
        ts.write(&mut w);
        let mut bytes = wall.to_le_bytes().to_vec();
        bytes.extend_from_slice(&w.finish()[4..]);
        seeds.push(("timestamp", name, bytes));
    }

    let values = [
        Value::Null,
        Value::Integer(-42),
        Value::Real(1.5),
        Value::Text("héllo".into()),
        Value::Blob(vec![0, 255]),
    ];
    const WALL: u64 = 1_735_689_600_000;

    fn push_crdt<T: Crdt>(seeds: &mut Vec<(&str, &str, Vec<u8>)>, ty: &'static str, a: &T, b: &T) {
        let decode: &'static str = Box::leak(format!("{ty}_decode").into_boxed_str());
        let update: &'static str = Box::leak(format!("{ty}_apply_update").into_boxed_str());
        seeds.push((decode, "a", a.encode()));
        seeds.push((decode, "b", b.encode()));
        seeds.push((update, "full", a.encode_update_since(&VersionVector::new())));
        seeds.push((update, "delta", a.encode_update_since(&b.version())));
        seeds.push((update, "none", a.encode_update_since(&a.version())));
    }

    let (mut a, mut b) = (GCounter::new(1), GCounter::new(2));
    a.increment(5).unwrap();
    b.increment(300).unwrap();
    a.merge(&b);
    a.increment(1).unwrap();
    push_crdt(&mut seeds, "gcounter", &a, &b);

    let (mut a, mut b) = (PNCounter::new(1), PNCounter::new(2));
    a.increment(5).unwrap();
    b.decrement(300).unwrap();
    a.merge(&b);
    a.decrement(1).unwrap();
    push_crdt(&mut seeds, "pncounter", &a, &b);

    let (mut a, mut b) = (ORSet::new(1), ORSet::new(2));
    for v in &values {
        a.add(v.clone()).unwrap();
    }
    b.add(Value::Integer(-42)).unwrap();
    a.merge(&b);
    a.remove(&Value::Null).unwrap();
    a.remove(&Value::Integer(-42)).unwrap();
    push_crdt(&mut seeds, "orset", &a, &b);

    let (mut a, mut b) = (LWWRegister::new(1), LWWRegister::new(2));
    a.set(Value::Text("a".into()), WALL).unwrap();
    b.set(Value::Blob(vec![1]), WALL + 5).unwrap();
    a.merge(&b);
    a.set(Value::Real(-0.0), WALL + 10).unwrap();
    push_crdt(&mut seeds, "lww_register", &a, &b);

    let (mut a, mut b) = (LWWMap::new(1), LWWMap::new(2));
    for (i, v) in values.iter().enumerate() {
        a.set(&format!("k{i}"), v.clone(), WALL + i as u64).unwrap();
    }
    b.set("k1", Value::Integer(9), WALL + 100).unwrap();
    b.set("only-b", Value::Null, WALL).unwrap();
    a.merge(&b);
    a.delete("k0", WALL + 200).unwrap();
    push_crdt(&mut seeds, "lww_map", &a, &b);

    let (mut a, mut b) = (Text::new(1), Text::new(2));
    a.insert(0, "hello world").unwrap();
    b.merge(&a).unwrap();
    let base = a.version().clone();
    a.insert(5, ", dear").unwrap();
    b.delete(0, 6).unwrap();
    b.insert(0, "héllo 👋 ").unwrap();
    a.merge(&b).unwrap();
    a.delete(2, 3).unwrap();
    seeds.push(("text_decode", "merged", a.encode()));
    seeds.push(("text_decode", "b", b.encode()));
    seeds.push(("text_decode", "empty", Text::new(3).encode()));
    seeds.push((
        "text_apply_update",
        "full",
        a.encode_update_since(&VersionVector::new()),
    ));
    seeds.push(("text_apply_update", "since_base", a.encode_update_since(&base)));
    seeds.push(("text_apply_update", "b_since_base", b.encode_update_since(&base)));

    let execute = [
        (
            "rows",
            r#"{"baton":null,"base_url":null,"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[{"name":"a","decltype":"INTEGER"},{"name":"b","decltype":null},{"name":null}],"rows":[[{"type":"integer","value":"-9223372036854775808"},{"type":"float","value":1.5},{"type":"text","value":"h\u00e9"}],[{"type":"null"},{"type":"blob","base64":"AP8="},{"type":"blob","base64":"AP8"}]],"affected_row_count":2,"last_insert_rowid":"3","replication_index":null}}},{"type":"ok","response":{"type":"close"}}]}"#,
        ),
        (
            "error",
            r#"{"results":[{"type":"error","error":{"message":"UNIQUE constraint failed: t.id","code":"SQLITE_CONSTRAINT_UNIQUE"}}]}"#,
        ),
        (
            "empty",
            r#"{"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[],"rows":[],"affected_row_count":0,"last_insert_rowid":null}}}]}"#,
        ),
    ];
    for (name, body) in execute {
        seeds.push(("hrana_execute", name, body.as_bytes().to_vec()));
    }
    let ok = r#"{"cols":[{"name":"x","decltype":null}],"rows":[[{"type":"integer","value":"1"}]],"affected_row_count":1,"last_insert_rowid":null}"#;
    let err = r#"{"message":"near \"selec\": syntax error","code":"SQL_PARSE_ERROR"}"#;
    let batch_ok = format!(
        r#"{{"results":[{{"type":"ok","response":{{"type":"batch","result":{{"step_results":[{ok},{ok},{ok},{ok},null],"step_errors":[null,null,null,null,null]}}}}}},{{"type":"ok","response":{{"type":"close"}}}}]}}"#
    );
    let batch_err = format!(
        r#"{{"results":[{{"type":"ok","response":{{"type":"batch","result":{{"step_results":[{ok},{ok},null,null,{ok}],"step_errors":[null,null,{err},null,null]}}}}}}]}}"#
    );
    // The first byte is the statement count n (a batch has n + 3 steps).
    seeds.push(("hrana_batch", "ok", [&[2u8][..], batch_ok.as_bytes()].concat()));
    seeds.push(("hrana_batch", "error", [&[2u8][..], batch_err.as_bytes()].concat()));

    let root = fuzz_dir().join("seeds");
    let _ = fs::remove_dir_all(&root);
    for (target, name, bytes) in seeds {
        assert!(harness::TARGETS.contains(&target), "{target}");
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    }
}
