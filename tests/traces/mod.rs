//! Loading and replaying the editing traces in `tests/data/editing-traces/` (see the
//! README there for their source and licence), for the trace tests and the native
//! benchmark.

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

use edgesync::crdt::text::{Text, Version};

pub struct Patch {
    pub pos: usize,
    pub del: usize,
    pub ins: String,
}

pub struct Txn {
    pub agent: usize,
    pub parents: Vec<usize>,
    pub patches: Vec<Patch>,
}

pub struct Trace {
    pub start: String,
    pub end: String,
    pub txns: Vec<Txn>,
}

/// `tests/data/editing-traces` in the repo, or `$EDGESYNC_TRACES`.
pub fn dir() -> PathBuf {
    std::env::var_os("EDGESYNC_TRACES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/editing-traces"))
}

pub fn load(name: &str) -> Trace {
    let path = dir().join(format!("{name}.json.gz"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut json = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut json)
        .expect("gunzip trace");
    let v: serde_json::Value = serde_json::from_str(&json).expect("trace JSON");
    let txns = v["txns"]
        .as_array()
        .expect("txns")
        .iter()
        .map(|t| Txn {
            agent: t["agent"].as_u64().unwrap_or(0) as usize,
            parents: t["parents"]
                .as_array()
                .map(|p| p.iter().map(|x| x.as_u64().expect("parent") as usize).collect())
                .unwrap_or_default(),
            patches: t["patches"]
                .as_array()
                .expect("patches")
                .iter()
                .map(|p| Patch {
                    pos: p[0].as_u64().expect("pos") as usize,
                    del: p[1].as_u64().expect("del") as usize,
                    ins: p[2].as_str().expect("text").to_owned(),
                })
                .collect(),
        })
        .collect();
    Trace {
        start: v["startContent"].as_str().unwrap_or("").to_owned(),
        end: v["endContent"].as_str().expect("endContent").to_owned(),
        txns,
    }
}

/// Replays a sequential trace: every patch is one local operation.
pub fn replay_sequential(trace: &Trace, site: u64) -> Text {
    let mut t = Text::new(site);
    t.insert(0, &trace.start).unwrap();
    for txn in &trace.txns {
        for p in &txn.patches {
            if p.del > 0 {
                t.delete(p.pos, p.del).unwrap();
            }
            if !p.ins.is_empty() {
                t.insert(p.pos, &p.ins).unwrap();
            }
        }
    }
    t
}

/// The per-agent replicas after replaying a concurrent trace: each transaction edits
/// its agent's replica after bringing it to exactly the merged state of the
/// transaction's parents (the other agents' operations in that window, as updates).
pub fn replay_concurrent(trace: &Trace) -> Vec<Text> {
    let agents = trace.txns.iter().map(|t| t.agent).max().map_or(0, |m| m + 1);
    let mut docs: Vec<Text> = (0..agents).map(|a| Text::new(a as u64 + 1)).collect();
    let mut versions: Vec<Version> = Vec::with_capacity(trace.txns.len());
    for txn in &trace.txns {
        let mut want = Version::new();
        for &p in &txn.parents {
            want.merge(&versions[p]);
        }
        let a = txn.agent;
        for b in 0..agents {
            if b == a {
                continue;
            }
            let site = b as u64 + 1;
            let have = docs[a].version().get(site);
            let need = want.get(site);
            if need > have {
                let mut until = docs[a].version().clone();
                until.observe(site, need);
                let update = docs[b].encode_update_between(docs[a].version(), &until);
                docs[a].apply_update(&update).unwrap();
            }
        }
        assert_eq!(
            docs[a].version().get(a as u64 + 1),
            want.get(a as u64 + 1),
            "an agent's previous transaction is an ancestor of its next"
        );
        for p in &txn.patches {
            if p.del > 0 {
                docs[a].delete(p.pos, p.del).unwrap();
            }
            if !p.ins.is_empty() {
                docs[a].insert(p.pos, &p.ins).unwrap();
            }
        }
        versions.push(docs[a].version().clone());
    }
    docs
}

/// Merges every replica into the first.
pub fn merge_all(docs: &[Text]) -> Text {
    let mut out = docs[0].clone();
    for d in &docs[1..] {
        out.merge(d).unwrap();
    }
    out
}
