//! Native benchmark of the text CRDT on the editing traces: the physical-limit
//! reference for the wasm figures (diamond-types applies automerge-paper natively in
//! about 16 ms). `cargo bench --bench text`
#[path = "../tests/traces/mod.rs"]
mod traces;

use std::time::{Duration, Instant};

use edgesync::crdt::text::Text;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time<T>(rounds: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let out = f();
        times.push(t0.elapsed());
        last = Some(out);
    }
    (median(times), last.expect("rounds > 0"))
}

fn main() {
    if let Ok(name) = std::env::var("TEXT_LOAD_LOOP") {
        // Profiling aid: load one trace's snapshot over and over.
        let trace = traces::load(&name);
        let bytes = traces::replay_sequential(&trace, 1).encode();
        let t0 = Instant::now();
        for _ in 0..500 {
            let d = Text::decode(&bytes, 2).expect("decode");
            assert_eq!(d.text().len(), trace.end.len());
        }
        println!("load {:.3} ms", t0.elapsed().as_secs_f64() * 1e3 / 500.0);
        return;
    }
    println!("edgesync text CRDT, native (median of 5)");
    println!(
        "{:<18} {:>10} {:>10} {:>12} {:>10} {:>8}",
        "trace", "apply ms", "load ms", "encoded B", "runs", "ops"
    );
    for name in ["automerge-paper", "rustcode"] {
        let trace = traces::load(name);
        let ops: usize = trace.txns.iter().map(|t| t.patches.len()).sum();
        let (apply, doc) = time(5, || traces::replay_sequential(&trace, 1));
        assert_eq!(doc.text(), trace.end);
        let bytes = doc.encode();
        let (load, back) = time(5, || {
            let d = Text::decode(&bytes, 2).expect("decode");
            let s = d.text();
            (d, s)
        });
        assert_eq!(back.1, trace.end);
        println!(
            "{:<18} {:>10.2} {:>10.2} {:>12} {:>10} {:>8}",
            name,
            apply.as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e3,
            bytes.len(),
            back.0.stats().expect("a loaded snapshot is valid").runs,
            ops
        );
        println!("  {:?}", doc.stats().expect("stats"));
    }
    let trace = traces::load("friendsforever");
    let (replay, docs) = time(3, || traces::replay_concurrent(&trace));
    let (merge, merged) = time(5, || traces::merge_all(&docs));
    assert_eq!(merged.text(), trace.end);
    println!(
        "friendsforever: replay {:.2} ms, merging the agents' branches {:.2} ms",
        replay.as_secs_f64() * 1e3,
        merge.as_secs_f64() * 1e3
    );
}
