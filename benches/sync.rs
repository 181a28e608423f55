//! Native benchmark of the sync engine (issue 4). `cargo bench --bench sync`
//!
//! 1. Local writes and point reads on a replicated table, each INSERT timed on its own
//!    (p50/p99), against the same work on edgesync's store with the table *not*
//!    replicated (no capture trigger) and on plain rusqlite (the physical limit).
//! 2. Pushing 10,000 queued rows to a real sqld on loopback, split into `fold_all()`
//!    (captures → outbox records, local) and `sync()` (push + pull over HTTP).
//!
//! Every figure is the median of ROUNDS runs (default 3). The JS half of the benchmark
//! (wasm in Node, with @libsql/client as the peer) is bench/sync.mjs.
//!
//! Profiling aid: `SYNC_PROFILE=write|read|push` runs only that part, longer, e.g.
//!   CARGO_PROFILE_BENCH_DEBUG=true cargo bench --bench sync --no-run
//!   SYNC_PROFILE=write perf record -g target/release/deps/sync-*
#[path = "../tests/common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use edgesync::remote::{HttpRequest, HttpResponse, HttpTransport, TransportError, UreqTransport};
use edgesync::sync::{Env, Replica, ReplicaConfig};
use edgesync::{Statement, Value};
use rusqlite::{params, Connection};

type R = Replica<UreqTransport>;

/// One HTTP exchange as seen by [`Timed`].
struct Exchange {
    ms: f64,
    sent: usize,
    received: usize,
    /// What the request was: push (staging records), pull (reading the log) or other.
    kind: &'static str,
    /// Request and response bodies of push batches.
    bodies: Option<(Vec<u8>, Vec<u8>)>,
}

fn kind_of(body: &str) -> &'static str {
    if body.contains("_es_chunk") {
        "push"
    } else if body.contains("FROM _es_log WHERE seq >") {
        "pull"
    } else {
        "other"
    }
}

/// Pairs each step of a Hrana batch request with the time sqld reports for it.
fn step_times(req: &[u8], resp: &[u8]) -> Vec<(String, f64)> {
    let (Ok(req), Ok(resp)) = (
        serde_json::from_slice::<serde_json::Value>(req),
        serde_json::from_slice::<serde_json::Value>(resp),
    ) else {
        return vec![];
    };
    let steps = req["requests"][0]["batch"]["steps"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let results = resp["results"][0]["response"]["result"]["step_results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    steps
        .iter()
        .zip(results.iter())
        .map(|(st, r)| {
            let sql: String = st["stmt"]["sql"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let head: String = sql.chars().take(72).collect();
            (head, r["query_duration_ms"].as_f64().unwrap_or(0.0))
        })
        .collect()
}

/// UreqTransport that records every exchange, to split `sync()` into time spent waiting
/// on HTTP (network + sqld) and time spent in the replica (local CPU).
#[derive(Default)]
struct Timed {
    inner: UreqTransport,
    log: Rc<RefCell<Vec<Exchange>>>,
}

impl HttpTransport for Timed {
    async fn post(&self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        let sent = req.body.len();
        let body = String::from_utf8_lossy(&req.body[..sent.min(4096)]).into_owned();
        let kind = kind_of(&body);
        let req_body = if kind == "push" { req.body.clone() } else { vec![] };
        let t0 = Instant::now();
        let res = self.inner.post(req).await;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let received = res.as_ref().map(|r| r.body.len()).unwrap_or(0);
        // Bodies are kept (a copy, ~0.1 ms) and parsed only when reporting.
        let bodies = match (&res, kind) {
            (Ok(r), "push") => Some((req_body, r.body.clone())),
            _ => None,
        };
        self.log.borrow_mut().push(Exchange {
            ms,
            sent,
            received,
            kind,
            bodies,
        });
        res
    }
}

const N_WRITES: usize = 20_000;
const N_READS: usize = 200_000;
const N_PUSH: usize = 10_000;
const SCHEMA: &str = "(id integer primary key, device text, ts integer, temp real, note text)";

/// Goals from issue 4.
const GOAL_WRITE_P50_US: f64 = 20.0;

/// Row `i` of the benchmark table (the same values as bench/sync.mjs).
fn row(i: usize) -> (i64, String, i64, f64, String) {
    (
        i as i64,
        format!("dev-{:04}", i % 1000),
        1_763_780_000_000 + i as i64 * 1000,
        15.0 + ((i * 37) % 200) as f64 / 10.0 + 0.05,
        format!("reading {i} ok"),
    )
}

/// The row's payload: its values as a JSON array (`[id,"device",ts,temp,"note"]`).
fn payload_bytes(i: usize) -> usize {
    let (id, device, ts, temp, note) = row(i);
    serde_json::json!([id, device, ts, temp, note]).to_string().len()
}

fn insert_stmt(table: &str, i: usize) -> Statement {
    let (id, device, ts, temp, note) = row(i);
    Statement::new(format!("insert into {table} values (?, ?, ?, ?, ?)"))
        .arg(id)
        .arg(device)
        .arg(ts)
        .arg(temp)
        .arg(note)
}

/// xorshift64*: deterministic random ids without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn id(&mut self, n: usize) -> i64 {
        (self.next() % n as u64) as i64
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn local_replica() -> R {
    Replica::open(
        ReplicaConfig {
            path: ":memory:".into(),
            ..Default::default()
        },
        UreqTransport::default(),
        Env::default(),
    )
    .expect("open replica")
}

/// The work measured: a table, N timed single-row inserts, then random point reads.
trait Target {
    fn name(&self) -> &'static str;
    fn insert(&self, table: &str, i: usize);
    fn read(&self, table: &str, id: i64) -> usize;
}

struct Edgesync {
    r: R,
    replicated: bool,
}

impl Edgesync {
    fn new(replicated: bool) -> Self {
        let r = local_replica();
        for t in ["readings", "warmup"] {
            r.execute(&Statement::new(format!("create table {t} {SCHEMA}")))
                .unwrap();
            if replicated {
                r.replicate(t, &[], vec![]).unwrap();
            }
        }
        Edgesync { r, replicated }
    }
}

impl Target for Edgesync {
    fn name(&self) -> &'static str {
        if self.replicated {
            "edgesync (replicated)"
        } else {
            "edgesync (not replicated)"
        }
    }
    fn insert(&self, table: &str, i: usize) {
        let rs = self.r.execute(&insert_stmt(table, i)).unwrap();
        debug_assert_eq!(rs.rows_affected, 1);
    }
    fn read(&self, table: &str, id: i64) -> usize {
        let rs = self
            .r
            .execute(&Statement::new(format!("select * from {table} where id = ?")).arg(id))
            .unwrap();
        rs.rows.len()
    }
}

struct Plain(Connection);

impl Plain {
    fn new() -> Self {
        let c = Connection::open_in_memory().unwrap();
        for t in ["readings", "warmup"] {
            c.execute_batch(&format!("create table {t} {SCHEMA}")).unwrap();
        }
        Plain(c)
    }
}

impl Target for Plain {
    fn name(&self) -> &'static str {
        "rusqlite (plain)"
    }
    fn insert(&self, table: &str, i: usize) {
        let (id, device, ts, temp, note) = row(i);
        self.0
            .prepare_cached(&format!("insert into {table} values (?, ?, ?, ?, ?)"))
            .unwrap()
            .execute(params![id, device, ts, temp, note])
            .unwrap();
    }
    fn read(&self, table: &str, id: i64) -> usize {
        let mut st = self
            .0
            .prepare_cached(&format!("select * from {table} where id = ?"))
            .unwrap();
        let mut rows = st.query([id]).unwrap();
        let mut n = 0;
        while let Some(r) = rows.next().unwrap() {
            let _: (i64, String, i64, f64, String) = (
                r.get(0).unwrap(),
                r.get(1).unwrap(),
                r.get(2).unwrap(),
                r.get(3).unwrap(),
                r.get(4).unwrap(),
            );
            n += 1;
        }
        n
    }
}

struct LocalResult {
    p50: f64,
    p99: f64,
    reads_per_s: f64,
}

fn run_local(t: &dyn Target, n_writes: usize, n_reads: usize) -> LocalResult {
    // Warm-up: caches, statement cache, allocator.
    for i in 0..2_000 {
        t.insert("warmup", i);
    }
    for i in 0..20_000 {
        t.read("warmup", (i % 2_000) as i64);
    }
    let mut lat = Vec::with_capacity(n_writes);
    for i in 0..n_writes {
        let t0 = Instant::now();
        t.insert("readings", i);
        lat.push(us(t0.elapsed()));
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = Instant::now();
    let mut found = 0;
    for _ in 0..n_reads {
        found += t.read("readings", rng.id(n_writes));
    }
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(found, n_reads, "{}: every point read finds its row", t.name());
    LocalResult {
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        reads_per_s: n_reads as f64 / secs,
    }
}

struct PushResult {
    fold_ms: f64,
    sync_ms: f64,
    requests: u64,
    bytes: u64,
    pushed: u64,
    /// HTTP exchanges during the timed `sync()`.
    log: Vec<Exchange>,
}

impl PushResult {
    /// (requests, ms waiting on HTTP, bytes sent, bytes received) of one kind.
    fn http(&self, kind: &str) -> (usize, f64, usize, usize) {
        let xs = self.log.iter().filter(|x| kind == "all" || x.kind == kind);
        xs.fold((0, 0.0, 0, 0), |a, x| {
            (a.0 + 1, a.1 + x.ms, a.2 + x.sent, a.3 + x.received)
        })
    }
}

fn run_push(s: &common::Sqld, round: usize, n: usize) -> PushResult {
    let transport = Timed::default();
    let log = transport.log.clone();
    let r: Replica<Timed> = Replica::open(
        ReplicaConfig {
            path: ":memory:".into(),
            sync_url: Some(s.url.clone()),
            auth_token: Some(s.rw.clone()),
            timeout_ms: Some(60_000),
            ..Default::default()
        },
        transport,
        Env::default(),
    )
    .unwrap();
    let table = format!("push_native_{round}");
    r.execute(&Statement::new(format!("create table {table} {SCHEMA}")))
        .unwrap();
    r.replicate(&table, &[], vec![]).unwrap();
    common::block(r.sync()).expect("first sync (schema, bootstrap)");
    for i in 0..n {
        r.execute(&insert_stmt(&table, i)).unwrap();
    }
    let before = r.metrics();
    let t0 = Instant::now();
    let folded = r.fold_all().unwrap();
    let fold_ms = t0.elapsed().as_secs_f64() * 1e3;
    assert_eq!(folded, n);
    log.borrow_mut().clear();
    let t0 = Instant::now();
    let rep = common::block(r.sync()).expect("sync");
    let sync_ms = t0.elapsed().as_secs_f64() * 1e3;
    let after = r.metrics();
    let log = std::mem::take(&mut *log.borrow_mut());
    // The rows are on the server.
    let rs = common::block(
        s.client()
            .execute(&Statement::new(format!("select count(*) from {table}"))),
    )
    .unwrap();
    assert_eq!(rs.rows[0][0], Value::Integer(n as i64), "every row reached the server");
    PushResult {
        fold_ms,
        sync_ms,
        requests: after.http_requests - before.http_requests,
        bytes: after.bytes_sent - before.bytes_sent,
        pushed: rep.changes_pushed,
        log,
    }
}

fn profile(what: &str) {
    match what {
        "write" | "read" => {
            let e = Edgesync::new(true);
            let n = 200_000;
            let t0 = Instant::now();
            for i in 0..n {
                e.insert("readings", i);
            }
            println!("{} inserts: {:.2} µs each", n, us(t0.elapsed()) / n as f64);
            if what == "read" {
                let mut rng = Rng(1);
                let t0 = Instant::now();
                for _ in 0..2_000_000 {
                    e.read("readings", rng.id(n));
                }
                println!("reads: {:.0}/s", 2e6 / t0.elapsed().as_secs_f64());
            }
        }
        "push" => {
            let s = common::Sqld::start();
            for round in 0..5 {
                let p = run_push(&s, round, N_PUSH);
                println!("fold {:.1} ms, sync {:.1} ms", p.fold_ms, p.sync_ms);
                breakdown(&p);
            }
        }
        other => panic!("SYNC_PROFILE={other}: expected write, read or push"),
    }
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

fn main() {
    if let Ok(what) = std::env::var("SYNC_PROFILE") {
        return profile(&what);
    }
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nedgesync sync engine, native (release), median of {rounds} rounds; {cores} cores, loadavg {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    // 1. Local writes and point reads.
    let mut res: Vec<(&'static str, Vec<LocalResult>)> = vec![];
    for round in 0..rounds {
        // Alternate the order so a burst of outside load does not hit one target only.
        let mut targets: Vec<Box<dyn Target>> = vec![
            Box::new(Edgesync::new(true)),
            Box::new(Edgesync::new(false)),
            Box::new(Plain::new()),
        ];
        if round % 2 == 1 {
            targets.reverse();
        }
        for t in &targets {
            let r = run_local(t.as_ref(), N_WRITES, N_READS);
            match res.iter_mut().find(|(n, _)| *n == t.name()) {
                Some((_, v)) => v.push(r),
                None => res.push((t.name(), vec![r])),
            }
        }
    }
    res.sort_by_key(|(n, _)| match *n {
        "edgesync (replicated)" => 0,
        "edgesync (not replicated)" => 1,
        _ => 2,
    });
    let summary: Vec<(&str, f64, f64, f64)> = res
        .iter()
        .map(|(n, v)| {
            (
                *n,
                median(v.iter().map(|r| r.p50).collect()),
                median(v.iter().map(|r| r.p99).collect()),
                median(v.iter().map(|r| r.reads_per_s).collect()),
            )
        })
        .collect();
    let (_, e50, e99, er) = summary[0];
    println!("\n1. local writes ({N_WRITES} single-row INSERTs, each timed) and point reads ({N_READS} by random id)");
    println!(
        "{:<27} {:>9} {:>9} {:>12} {:>14} {:>14}",
        "", "p50 µs", "p99 µs", "reads/s", "p50 ratio", "reads ratio"
    );
    for (n, p50, p99, rps) in &summary {
        println!(
            "{:<27} {:>9.2} {:>9.2} {:>12.0} {:>14} {:>14}",
            n,
            p50,
            p99,
            rps,
            format!("{:.2}×", e50 / p50),
            format!("{:.2}×", er / rps)
        );
    }
    println!(
        "(ratios: edgesync replicated ÷ row; write ratio > 1 = edgesync slower, reads ratio < 1 = edgesync slower)"
    );
    println!(
        "goal: write p50 ≤ {GOAL_WRITE_P50_US} µs native → {:.2} µs {}   (p99 {:.2} µs, reads {:.0}/s: no native goal)",
        e50,
        mark(e50 <= GOAL_WRITE_P50_US),
        e99,
        er
    );

    // 2. Push of 10,000 queued rows, split.
    let s = common::Sqld::start();
    let mut pushes = Vec::new();
    for round in 0..rounds {
        pushes.push(run_push(&s, round, N_PUSH));
    }
    let payload = (0..N_PUSH).map(payload_bytes).sum::<usize>() as f64 / N_PUSH as f64;
    let fold = median(pushes.iter().map(|p| p.fold_ms).collect());
    let sync = median(pushes.iter().map(|p| p.sync_ms).collect());
    let req = median(pushes.iter().map(|p| p.requests as f64).collect());
    let bytes = median(pushes.iter().map(|p| p.bytes as f64).collect()) / N_PUSH as f64;
    assert!(pushes.iter().all(|p| p.pushed == N_PUSH as u64));
    println!("\n2. push of {N_PUSH} queued rows to sqld on loopback (fresh replica and table per round)");
    println!("{:<34} {:>10} {:>10} {:>10}", "", "fold ms", "sync ms", "total ms");
    for (i, p) in pushes.iter().enumerate() {
        println!(
            "{:<34} {:>10.1} {:>10.1} {:>10.1}",
            format!("round {}", i + 1),
            p.fold_ms,
            p.sync_ms,
            p.fold_ms + p.sync_ms
        );
    }
    println!(
        "{:<34} {:>10.1} {:>10.1} {:>10.1}",
        "median",
        fold,
        sync,
        median(pushes.iter().map(|p| p.fold_ms + p.sync_ms).collect())
    );
    println!(
        "HTTP requests per sync(): {req:.0}; bytes sent per row {bytes:.1} vs payload {payload:.1} B/row \
         (payload = JSON.stringify([id, device, ts, temp, note]).length) → {:.2}× payload, goal ≤ 3× {}",
        bytes / payload,
        mark(bytes / payload <= 3.0)
    );
    let mid = {
        let mut by: Vec<&PushResult> = pushes.iter().collect();
        by.sort_by(|a, b| a.sync_ms.partial_cmp(&b.sync_ms).unwrap());
        by[by.len() / 2]
    };
    breakdown(mid);
}

fn breakdown(p: &PushResult) {
    println!("where sync() time goes (the median round; HTTP = wall time inside the transport: loopback + sqld):");
    for kind in ["push", "pull", "other"] {
        let (n, ms, sent, recv) = p.http(kind);
        if n > 0 {
            println!(
                "  {kind:<5} {n} requests {ms:>8.1} ms  sent {:>9} B  received {:>9} B",
                sent, recv
            );
        }
    }
    // sqld's own time per statement of the push batches, summed over the chunks.
    let mut per: Vec<(String, f64)> = vec![];
    for x in p.log.iter().filter(|x| x.kind == "push") {
        let Some((req, resp)) = &x.bodies else { continue };
        for (sql, ms) in step_times(req, resp) {
            match per.iter_mut().find(|(s, _)| *s == sql) {
                Some((_, t)) => *t += ms,
                None => per.push((sql, ms)),
            }
        }
    }
    if !per.is_empty() {
        let total: f64 = per.iter().map(|(_, t)| t).sum();
        println!("  sqld's query_duration_ms over the push batches: {total:.1} ms in all; by statement:");
        for (sql, ms) in per.iter().filter(|(_, t)| *t >= 1.0) {
            println!("    {ms:>8.1} ms  {sql}");
        }
    }
    let (_, http_ms, _, _) = p.http("all");
    println!(
        "  local (fold already done: read outbox, build JSON, encode/decode, apply pulled) {:.1} ms of {:.1} ms",
        p.sync_ms - http_ms,
        p.sync_ms
    );
}
