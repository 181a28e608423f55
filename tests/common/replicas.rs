//! Embedded replicas on a test sqld, and small readers (shared by the sync tests).

use edgesync::remote::UreqTransport;
use edgesync::sync::{Env, Replica, ReplicaConfig};
use edgesync::{ResultSet, Statement, Value};

use super::{block, Sqld};

pub type R = Replica<UreqTransport>;

/// An in-memory replica syncing with `s`.
pub fn replica(s: &Sqld) -> R {
    replica_with(s, Env::default())
}

/// [`replica`] with the given clock and randomness.
pub fn replica_with(s: &Sqld, env: Env) -> R {
    let config = ReplicaConfig {
        path: ":memory:".into(),
        sync_url: Some(s.url.clone()),
        auth_token: Some(s.rw.clone()),
        timeout_ms: Some(10_000),
        ..Default::default()
    };
    Replica::open(config, UreqTransport::default(), env).unwrap()
}

pub fn exec(r: &R, sql: &str) -> ResultSet {
    r.execute(&Statement::new(sql)).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `sql` with `args` and returns the error's code (or "ok").
pub fn try_exec(r: &R, sql: &str, args: Vec<Value>) -> String {
    let mut s = Statement::new(sql);
    s.args = args;
    match r.execute(&s) {
        Ok(_) => "ok".into(),
        Err(e) => e.code().into(),
    }
}

pub fn query(r: &R, sql: &str) -> Vec<Vec<Value>> {
    exec(r, sql).rows
}

/// The same query on the server, through a plain Hrana client.
pub fn server_query(s: &Sqld, sql: &str) -> Vec<Vec<Value>> {
    block(s.client().execute(&Statement::new(sql)))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
}

/// Runs `sql` on the server as another client would; the error code, or "ok".
pub fn server_exec(s: &Sqld, sql: &str) -> String {
    match block(s.client().execute(&Statement::new(sql))) {
        Ok(_) => "ok".into(),
        Err(e) => format!("{}: {e}", e.code()),
    }
}

pub fn sync(r: &R) {
    block(r.sync()).unwrap_or_else(|e| panic!("sync: {} {e}", e.code()));
}

/// Syncs each replica, twice round, so every replica has everyone's records.
pub fn sync_all(rs: &[&R]) {
    for _ in 0..2 {
        for r in rs {
            sync(r);
        }
    }
}
