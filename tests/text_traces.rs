//! The text CRDT replays real editing traces (josephg/editing-traces) to exactly their
//! final content, and what it encodes loads back to the same document.

mod traces;

use edgesync::crdt::text::{Text, Version};

fn check_sequential(name: &str) {
    let trace = traces::load(name);
    let t = traces::replay_sequential(&trace, 1);
    assert_eq!(t.text(), trace.end, "{name}: final text");
    // Snapshot round trip.
    let bytes = t.encode();
    let back = Text::decode(&bytes, 2).unwrap();
    assert_eq!(back.text(), trace.end);
    assert_eq!(back.encode(), bytes);
    // The whole history as one update, into an empty replica.
    let mut fresh = Text::new(3);
    fresh.apply_update(&t.encode_update_since(&Version::new())).unwrap();
    assert_eq!(fresh.text(), trace.end);
    assert_eq!(fresh.version(), t.version());
}

#[test]
fn automerge_paper() {
    check_sequential("automerge-paper");
}

#[test]
fn rustcode() {
    check_sequential("rustcode");
}

#[test]
fn friendsforever_concurrent() {
    let trace = traces::load("friendsforever");
    let docs = traces::replay_concurrent(&trace);
    let merged = traces::merge_all(&docs);
    assert_eq!(merged.text(), trace.end);
    // Merging in the other order gives the same document.
    let mut other = docs[1].clone();
    other.merge(&docs[0]).unwrap();
    assert_eq!(other.text(), trace.end);
    let back = Text::decode(&merged.encode(), 9).unwrap();
    assert_eq!(back.text(), trace.end);
}
