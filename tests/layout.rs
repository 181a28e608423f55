//! The source layout the project keeps (issue 15): the pure subsystems never reach into
//! the remote client, and no non-test source file grows past what a reader can hold.
//! Checked here so that a change that breaks either fails in `cargo test`, not in review.

use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !matches!(
                path.file_name().and_then(|n| n.to_str()),
                Some("node_modules" | "vendor" | "dist")
            ) {
                files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn crdt_store_and_clock_do_not_import_the_remote_client() {
    let mut found = Vec::new();
    for dir in ["src/crdt", "src/store", "src/clock"] {
        let mut all = Vec::new();
        files(&root().join(dir), &mut all);
        for f in all.iter().filter(|f| f.extension().is_some_and(|e| e == "rs")) {
            if fs::read_to_string(f).unwrap().contains("crate::remote") {
                found.push(f.display().to_string());
            }
        }
    }
    assert!(
        found.is_empty(),
        "these import crate::remote (use crate::sql): {found:?}"
    );
}

/// Tests and generated or vendored files are exempt; 650 leaves room for the "~600".
#[test]
fn no_source_file_is_past_what_a_reader_can_hold() {
    const MAX: usize = 650;
    let mut all = Vec::new();
    for dir in ["src", "js", "www/worker/src", "www/dashboard"] {
        let d = root().join(dir);
        if d.exists() {
            files(&d, &mut all);
        }
    }
    let mut long = Vec::new();
    for f in &all {
        let name = f.file_name().unwrap().to_string_lossy();
        let source = ["rs", "ts", "js", "mjs"]
            .iter()
            .any(|e| f.extension().is_some_and(|x| x == *e));
        let test = name.starts_with("tests") || name.ends_with("_tests.rs") || name.contains(".test.");
        if !source || test || name.ends_with(".d.ts") {
            continue;
        }
        let lines = fs::read_to_string(f).map(|s| s.lines().count()).unwrap_or(0);
        if lines > MAX {
            long.push(format!("{} ({lines} lines)", f.strip_prefix(root()).unwrap().display()));
        }
    }
    assert!(long.is_empty(), "split these by job: {long:?}");
}
