// Benchmark of the sync engine (issue 4): edgesync embedded replicas (Rust → wasm in
// Node) next to @libsql/client doing the same work, in one process, against one sqld on
// loopback (JWT auth on) started here. Every figure is a median of ROUNDS runs; runs
// alternate which client goes first. The native half is benches/sync.rs.
//
//   1. local writes and point reads: a replicated table, 20,000 single-row INSERTs
//      each timed on its own (p50/p99), then ≥ 200,000 point reads by random id.
//      Peer: @libsql/client on a local ":memory:" database. Also shown: the same table
//      not replicated, and the replica on a file (`file:`, Node's fs).
//   2. push of 10,000 queued rows: time of sync(), HTTP requests, bytes sent per row.
//      Peers: @libsql/client (remote) inserting the same rows one by one, and as one
//      batch(…, "write").
//   3. replica to replica: 1,000 writes on A, A.sync(), B.sync(), rows visible on B.
//      Peer: @libsql/client embedded replicas (file: url + syncUrl) on the same sqld.
//
//   node bench/sync.mjs                  (scripts/bench.sh sync builds first)
//   ROUNDS=3 R2R_ROUNDS=5 ONE_BY_ONE=10000|1000 [CHANGE_LISTENER=1] node bench/sync.mjs [local|push|r2r|split]…
//   (no part named: local, push and r2r; `split` = where a wasm point read's time goes)
import { createClient as edgesyncClient } from "edgesync";
import { createClient as libsqlClient } from "@libsql/client";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { startSqld } from "../tests/support/sqld.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const R2R_ROUNDS = Number(process.env.R2R_ROUNDS ?? 5);
const N_WRITES = 20_000;
const N_READS = Number(process.env.N_READS ?? 200_000);
const N_PUSH = 10_000;
// @libsql/client one statement per HTTP request takes ~4 ms per row here (40+ s for
// 10,000): by default the first 1,000 are timed and the time multiplied by 10 (said so
// in the output); ONE_BY_ONE=10000 times all of them.
const ONE_BY_ONE = Number(process.env.ONE_BY_ONE ?? 1_000);
const N_R2R = 1_000;
const parts = process.argv.slice(2).length ? process.argv.slice(2) : ["local", "push", "r2r"];

const pkgVersion = (name) => JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url))).version;
const SCHEMA = "(id integer primary key, device text, ts integer, temp real, note text)";

/** Row `i` (the same values as benches/sync.rs). `temp` always has a fraction: REAL. */
const row = (i) => [i, `dev-${String(i % 1000).padStart(4, "0")}`, 1_763_780_000_000 + i * 1000, 15 + ((i * 37) % 200) / 10 + 0.05, `reading ${i} ok`];
/** The payload of a row: its values as JSON. */
const payloadBytes = (i) => Buffer.byteLength(JSON.stringify(row(i)));
const insert = (table, i) => ({ sql: `insert into ${table} values (?, ?, ?, ?, ?)`, args: row(i) });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (sorted, p) => sorted[Math.round((sorted.length - 1) * p)];
const now = () => performance.now();
const mark = (ok) => (ok ? "✓" : "✗");
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const fmt = (x, d = 1) => (x >= 10_000 ? Math.round(x).toLocaleString("en-US") : x.toFixed(d));

/** Prints `label | edgesync | peer | ratio | goal | ✓/✗` rows. */
function table(title, rows) {
  console.log(`\n${title}`);
  console.log(`${pad("metric", 50)} ${lpad("edgesync", 12)} ${lpad("peer", 12)} ${lpad("ratio", 9)}  ${pad("goal", 24)}`);
  for (const r of rows) {
    const goal = r.goal ?? "";
    const ok = r.ok === undefined ? "" : mark(r.ok);
    console.log(
      `${pad(r.label, 50)} ${lpad(r.e, 12)} ${lpad(r.p ?? "", 12)} ${lpad(r.ratio ?? "", 9)}  ${pad(goal, 24)} ${ok}`,
    );
  }
}

function header() {
  const wasm = readFileSync(new URL("../pkg/wasm/edgesync_bg.wasm", import.meta.url));
  console.log(
    `\nedgesync sync engine, wasm in Node ${process.version}, peer @libsql/client ${pkgVersion("@libsql/client")} (libsql ${pkgVersion("@libsql/linux-x64-gnu")})`,
  );
  console.log(
    `${availableParallelism()} cores, loadavg at start ${loadavg().map((x) => x.toFixed(2)).join(" ")}; edgesync_bg.wasm ${wasm.length} bytes`,
  );
}

// ---------------------------------------------------------------------------------
// 1. Local writes and point reads
// ---------------------------------------------------------------------------------

async function localTarget(kind) {
  if (kind === "libsql") {
    const c = libsqlClient({ url: ":memory:" });
    for (const t of ["readings", "warmup"]) await c.execute(`create table ${t} ${SCHEMA}`);
    return c;
  }
  // "edgesync-file": the same replica on a file (Node's fs through the host VFS: WAL,
  // synchronous = NORMAL), in a fresh temporary directory removed at close.
  const dir = kind === "edgesync-file" ? mkdtempSync(join(tmpdir(), "edgesync-bench-file-")) : undefined;
  const c = edgesyncClient({ url: dir ? `file:${join(dir, "bench.db")}` : ":memory:" });
  for (const t of ["readings", "warmup"]) {
    await c.execute(`create table ${t} ${SCHEMA}`);
    if (kind !== "edgesync-local") c.replicate(t);
  }
  // CHANGE_LISTENER=1: a `change` listener on each edgesync client (each write then
  // fires one event); without it nobody listens and writes note no changes.
  if (process.env.CHANGE_LISTENER === "1") c.on("change", () => undefined);
  if (dir) {
    const close = c.close.bind(c);
    c.close = () => {
      close();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  return c;
}

async function runLocal(c) {
  // Warm-up: JIT and wasm tier-up, statement caches.
  for (let i = 0; i < 2_000; i++) await c.execute(insert("warmup", i));
  for (let i = 0; i < 20_000; i++) await c.execute({ sql: "select * from warmup where id = ?", args: [i % 2_000] });
  const lat = new Float64Array(N_WRITES);
  for (let i = 0; i < N_WRITES; i++) {
    const stmt = insert("readings", i);
    const t0 = process.hrtime.bigint();
    await c.execute(stmt);
    lat[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  lat.sort();
  let seed = 0x9e3779b9;
  const rand = () => {
    // xorshift32
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % N_WRITES;
  };
  const sql = "select * from readings where id = ?";
  const t0 = now();
  let found = 0;
  for (let i = 0; i < N_READS; i++) {
    const rs = await c.execute({ sql, args: [rand()] });
    found += rs.rows.length;
  }
  const secs = (now() - t0) / 1000;
  if (found !== N_READS) throw new Error(`point reads found ${found} of ${N_READS} rows`);
  return { p50: pct(lat, 0.5), p99: pct(lat, 0.99), rps: N_READS / secs };
}

async function benchLocal() {
  const kinds = ["edgesync", "edgesync-local", "edgesync-file", "libsql"];
  const res = Object.fromEntries(kinds.map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? kinds : [...kinds].reverse();
    for (const k of order) {
      const c = await localTarget(k);
      res[k].push(await runLocal(c));
      c.close();
    }
  }
  const m = Object.fromEntries(
    kinds.map((k) => [k, { p50: median(res[k].map((x) => x.p50)), p99: median(res[k].map((x) => x.p99)), rps: median(res[k].map((x) => x.rps)) }]),
  );
  const e = m.edgesync;
  const l = m.libsql;
  const n = m["edgesync-local"];
  const f = m["edgesync-file"];
  table(`1. local writes (${N_WRITES.toLocaleString("en-US")} single-row INSERTs, each timed) and point reads (${N_READS.toLocaleString("en-US")}, random id) — peer @libsql/client ":memory:", median of ${ROUNDS}`, [
    { label: "write p50 µs (ratio = edgesync ÷ peer)", e: fmt(e.p50, 2), p: fmt(l.p50, 2), ratio: `${(e.p50 / l.p50).toFixed(2)}×`, goal: "p50 ≤ 50 µs (wasm)", ok: e.p50 <= 50 },
    { label: "write p99 µs", e: fmt(e.p99, 2), p: fmt(l.p99, 2), ratio: `${(e.p99 / l.p99).toFixed(2)}×` },
    { label: "point reads/s (ratio = edgesync ÷ peer)", e: fmt(e.rps), p: fmt(l.rps), ratio: `${(e.rps / l.rps).toFixed(2)}×`, goal: "≥ 300,000 reads/s (wasm)", ok: e.rps >= 300_000 },
    { label: "  same table not replicated: write p50 µs", e: fmt(n.p50, 2), p: fmt(l.p50, 2), ratio: `${(n.p50 / l.p50).toFixed(2)}×` },
    { label: "  same table not replicated: reads/s", e: fmt(n.rps), p: fmt(l.rps), ratio: `${(n.rps / l.rps).toFixed(2)}×` },
    { label: "  replica on a file (file:, Node fs): write p50 µs", e: fmt(f.p50, 2), p: fmt(l.p50, 2), ratio: `${(f.p50 / l.p50).toFixed(2)}×` },
    { label: "  replica on a file: write p99 µs", e: fmt(f.p99, 2), p: fmt(l.p99, 2), ratio: `${(f.p99 / l.p99).toFixed(2)}×` },
    { label: "  replica on a file: reads/s", e: fmt(f.rps), p: fmt(l.rps), ratio: `${(f.rps / l.rps).toFixed(2)}×` },
  ]);
  console.log("write ratio < 1 and reads ratio > 1 mean edgesync is faster than the peer");
  console.log("per round (p50 µs / p99 µs / reads/s):");
  for (const k of kinds) console.log(`  ${pad(k, 16)} ${res[k].map((x) => `${x.p50.toFixed(2)} / ${x.p99.toFixed(2)} / ${Math.round(x.rps)}`).join("   ")}`);
}

/**
 * Opt-in (`node bench/sync.mjs split`): where a wasm point read's time goes, using the
 * package's internals (pkg/wasm/edgesync.js `Replica`, pkg/local.js, pkg/args.js,
 * pkg/result.js), which may change.
 */
async function benchReadSplit() {
  const { Replica } = await import("../pkg/wasm/edgesync.js");
  const { encodeStatement, encodeArgs } = await import("../pkg/args.js");
  const { KeptStatements } = await import("../pkg/local.js");
  const { decodeResult } = await import("../pkg/result.js");
  const full = edgesyncClient({ url: ":memory:" });
  await full.execute(`create table readings ${SCHEMA}`);
  full.replicate("readings");
  for (let i = 0; i < N_WRITES; i++) await full.execute(insert("readings", i));
  // A bare Replica (table not replicated), driven through both wasm entry points.
  const raw = new Replica({ url: ":memory:" });
  const kept = new KeptStatements(raw, "auto");
  const packed = (stmt) => raw.executePacked(...encodeStatement(stmt));
  packed({ sql: `create table readings ${SCHEMA}` });
  for (let i = 0; i < N_WRITES; i++) packed(insert("readings", i));
  const sql = "select * from readings where id = ?";
  const handle = raw.prepareKept(sql);
  const one = raw.prepareKept("select 1");
  const run = (h, args) => {
    if (kept.u8.byteLength === 0) kept.reserve(kept.cap);
    const at = raw.run(h, encodeArgs(args, kept));
    if (at < 2) throw new Error(`run(${h}) answered ${at}`);
  };
  const n = 100_000;
  const time = async (label, f) => {
    for (let i = 0; i < 20_000; i++) await f(i % N_WRITES);
    const t0 = now();
    for (let i = 0; i < n; i++) await f((i * 7919) % N_WRITES);
    const us = ((now() - t0) * 1000) / n;
    console.log(`  ${pad(label, 70)} ${lpad(us.toFixed(2), 7)} µs  ${lpad(Math.round(1e6 / us).toLocaleString("en-US"), 9)}/s`);
  };
  console.log(`\nwhere a wasm point read's time goes (${n.toLocaleString("en-US")} reads each, awaited; table not replicated for the bare Replica):`);
  await time("createClient(':memory:').execute (the benchmark's path: kept statements)", (id) => full.execute({ sql, args: [id] }));
  await time("KeptStatements.execute alone (no async client method)", (id) => kept.execute({ sql, args: [id] }));
  await time("wasm Replica.run alone (args into wasm memory, SQLite, result left there)", (id) => run(handle, [id]));
  await time("wasm Replica.run('select 1') (the per-call floor)", () => run(one, undefined));
  await time("generic path: executePacked + decodeResult + ResultSet", (id) => decodeResult(packed({ sql, args: [id] })));
  await time("generic path: wasm Replica.executePacked alone", (id) => packed({ sql, args: [id] }));
  full.close();
}

// ---------------------------------------------------------------------------------
// 2. Push of 10,000 queued rows
// ---------------------------------------------------------------------------------

/** A `fetch` for @libsql/client that counts request body bytes (bytes sent). */
function countingFetch(counter) {
  return async (input, init) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const body = await req.clone().arrayBuffer();
    counter.requests += 1;
    counter.bytes += body.byteLength;
    return fetch(req);
  };
}

/** A `fetch` for edgesync that logs each exchange (wall time incl. reading the body):
 *  sync() time minus HTTP time is the time spent in the replica (wasm + JS). */
function timingFetch(log) {
  const head = new TextDecoder();
  return async (url, init) => {
    const body = init.body;
    const text = head.decode(body instanceof Uint8Array ? body.subarray(0, 4096) : new TextEncoder().encode(String(body).slice(0, 4096)));
    const kind = text.includes("_es_chunk") ? "push" : text.includes("FROM _es_log WHERE seq >") ? "pull" : "other";
    const t0 = now();
    const res = await fetch(url, init);
    const buf = await res.arrayBuffer();
    log.push({ kind, ms: now() - t0, sent: body.byteLength ?? body.length, received: buf.byteLength });
    return new Response(buf, { status: res.status, headers: res.headers });
  };
}

function httpSplit(log) {
  const out = {};
  for (const x of log) {
    const o = (out[x.kind] ??= { n: 0, ms: 0, sent: 0, received: 0 });
    o.n += 1;
    o.ms += x.ms;
    o.sent += x.sent;
    o.received += x.received;
  }
  return out;
}

function printSplit(label, totalMs, log) {
  const split = httpSplit(log);
  const http = Object.values(split).reduce((a, o) => a + o.ms, 0);
  console.log(`${label}: ${totalMs.toFixed(1)} ms = HTTP ${http.toFixed(1)} ms (loopback + sqld) + in the replica ${(totalMs - http).toFixed(1)} ms (wasm + JS: fold, outbox, JSON, apply)`);
  for (const [k, o] of Object.entries(split)) {
    console.log(`  ${pad(k, 5)} ${o.n} requests ${lpad(o.ms.toFixed(1), 8)} ms  sent ${lpad(o.sent, 9)} B  received ${lpad(o.received, 9)} B`);
  }
}

async function serverCount(admin, table) {
  const rs = await admin.execute(`select count(*) as n from ${table}`);
  return Number(rs.rows[0].n);
}

async function pushEdgesync(sqld, admin, round) {
  const t = `push_es_${round}`;
  const log = [];
  const c = edgesyncClient({ url: ":memory:", syncUrl: sqld.url, authToken: sqld.tokens.rw, timeout: 120_000, fetch: timingFetch(log) });
  await c.execute(`create table ${t} ${SCHEMA}`);
  c.replicate(t);
  await c.sync(); // schema on the server, bootstrap: not measured
  for (let i = 0; i < N_PUSH; i++) await c.execute(insert(t, i));
  log.length = 0;
  const m0 = c.metrics();
  const t0 = now();
  const rep = await c.sync();
  const ms = now() - t0;
  const m1 = c.metrics();
  c.close();
  if (rep.changesPushed !== N_PUSH) throw new Error(`pushed ${rep.changesPushed}, expected ${N_PUSH}`);
  if ((await serverCount(admin, t)) !== N_PUSH) throw new Error("not every row reached the server");
  return { ms, requests: m1.httpRequests - m0.httpRequests, bytes: m1.bytesSent - m0.bytesSent, log: [...log] };
}

/** The same push with the fold timed on its own: a sync() whose first request fails at
 *  once folds every capture into the outbox and stops; the next sync() pushes. */
async function pushEdgesyncSplit(sqld, admin) {
  const t = "push_es_split";
  const log = [];
  const timed = timingFetch(log);
  let fail = false;
  const fetchFn = (url, init) => (fail ? Promise.reject(new Error("offline (benchmark)")) : timed(url, init));
  const c = edgesyncClient({ url: ":memory:", syncUrl: sqld.url, authToken: sqld.tokens.rw, timeout: 120_000, fetch: fetchFn });
  await c.execute(`create table ${t} ${SCHEMA}`);
  c.replicate(t);
  await c.sync();
  for (let i = 0; i < N_PUSH; i++) await c.execute(insert(t, i));
  fail = true;
  const t0 = now();
  await c.sync().then(
    () => {
      throw new Error("the offline sync succeeded");
    },
    () => {},
  );
  const foldMs = now() - t0;
  fail = false;
  log.length = 0;
  const t1 = now();
  await c.sync();
  const syncMs = now() - t1;
  c.close();
  if ((await serverCount(admin, t)) !== N_PUSH) throw new Error("not every row reached the server");
  return { foldMs, syncMs, log: [...log] };
}

async function pushOneByOne(sqld, admin, round, counter) {
  const t = `push_one_${round}`;
  const c = libsqlClient({ url: sqld.url, authToken: sqld.tokens.rw, ...(counter ? { fetch: countingFetch(counter) } : {}) });
  await c.execute(`create table ${t} ${SCHEMA}`);
  const n = counter ? 1_000 : ONE_BY_ONE;
  const t0 = now();
  for (let i = 0; i < n; i++) await c.execute(insert(t, i));
  const ms = ((now() - t0) * N_PUSH) / n;
  c.close();
  if ((await serverCount(admin, t)) !== n) throw new Error("one-by-one lost rows");
  return { ms };
}

async function pushBatch(sqld, admin, round, counter) {
  const t = `push_batch_${round}`;
  const c = libsqlClient({ url: sqld.url, authToken: sqld.tokens.rw, ...(counter ? { fetch: countingFetch(counter) } : {}) });
  await c.execute(`create table ${t} ${SCHEMA}`);
  const stmts = Array.from({ length: N_PUSH }, (_, i) => insert(t, i));
  const t0 = now();
  await c.batch(stmts, "write");
  const ms = now() - t0;
  c.close();
  if ((await serverCount(admin, t)) !== N_PUSH) throw new Error("batch lost rows");
  return { ms };
}

async function benchPush(sqld) {
  const admin = libsqlClient({ url: sqld.url, authToken: sqld.tokens.rw });
  const payload = Array.from({ length: N_PUSH }, (_, i) => payloadBytes(i)).reduce((a, b) => a + b, 0) / N_PUSH;
  // Warm-up (JIT, connections, sqld's caches), not reported.
  await pushEdgesync(sqld, admin, "warm");
  await pushBatch(sqld, admin, "warm");
  const res = { es: [], one: [], batch: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const jobs = [
      ["es", () => pushEdgesync(sqld, admin, r)],
      ["one", () => pushOneByOne(sqld, admin, r)],
      ["batch", () => pushBatch(sqld, admin, r)],
    ];
    if (r % 2 === 1) jobs.reverse();
    for (const [k, f] of jobs) res[k].push(await f());
  }
  // Bytes @libsql/client sends (request bodies), counted once outside the timed runs.
  const oneBytes = { requests: 0, bytes: 0 };
  await pushOneByOne(sqld, admin, "bytes", oneBytes);
  const batchBytes = { requests: 0, bytes: 0 };
  await pushBatch(sqld, admin, "bytes", batchBytes);

  const e = median(res.es.map((x) => x.ms));
  const one = median(res.one.map((x) => x.ms));
  const batch = median(res.batch.map((x) => x.ms));
  const req = median(res.es.map((x) => x.requests));
  const bpr = median(res.es.map((x) => x.bytes)) / N_PUSH;
  const oneNote = ONE_BY_ONE < N_PUSH ? ` (${ONE_BY_ONE} timed ×${N_PUSH / ONE_BY_ONE})` : "";
  table(`2. push of ${N_PUSH.toLocaleString("en-US")} queued rows: edgesync sync() vs @libsql/client on the same sqld, median of ${ROUNDS}`, [
    { label: `time ms vs 10k awaited execute()${oneNote}`, e: fmt(e), p: fmt(one), ratio: `${(one / e).toFixed(1)}×`, goal: "≥ 20× faster", ok: one / e >= 20 },
    { label: "time ms vs one batch(…, \"write\")", e: fmt(e), p: fmt(batch), ratio: `${(batch / e).toFixed(2)}×`, goal: "≥ 1× (not slower)", ok: batch / e >= 1 },
    { label: "HTTP requests (metrics delta)", e: String(req), p: `${N_PUSH} / 1` },
    { label: "bytes sent per row vs payload (ratio ÷ payload)", e: fmt(bpr), p: fmt(payload), ratio: `${(bpr / payload).toFixed(2)}×`, goal: "≤ 3× payload", ok: bpr / payload <= 3 },
    { label: "  @libsql/client bytes/row: one-by-one / batch", e: "", p: `${fmt(oneBytes.bytes / 1_000)} / ${fmt(batchBytes.bytes / N_PUSH)}` },
  ]);
  console.log(`ratios: peer time ÷ edgesync time (higher = edgesync faster). payload = Buffer.byteLength(JSON.stringify([id, device, ts, temp, note])), mean over the ${N_PUSH} rows`);
  console.log(`bytes sent = request bodies (edgesync: metrics().bytesSent; @libsql/client: counted by a wrapping fetch in a separate, untimed run)`);
  console.log(`sync() includes fold (captures → outbox), push (${req} requests in all, incl. pull) and pull of the log after the cursor`);
  const mid = [...res.es].sort((a, b) => a.ms - b.ms)[Math.floor(res.es.length / 2)];
  printSplit("where edgesync's sync() time goes (median round)", mid.ms, mid.log);
  const split = await pushEdgesyncSplit(sqld, admin);
  console.log(`separate run, fold timed alone (a sync() that fails at its first request): fold ${split.foldMs.toFixed(1)} ms, then sync() ${split.syncMs.toFixed(1)} ms`);
  printSplit("  that sync()", split.syncMs, split.log);
  admin.close();
  console.log("per round ms:");
  for (const [k, v] of Object.entries(res)) console.log(`  ${pad(k, 6)} ${v.map((x) => x.ms.toFixed(1)).join("  ")}${k === "es" ? `   (requests ${v.map((x) => x.requests).join(", ")})` : ""}`);
}

// ---------------------------------------------------------------------------------
// 3. Replica to replica
// ---------------------------------------------------------------------------------

async function r2rEdgesync(sqld, round) {
  const t = `r2r_es_${round}`;
  const logA = [];
  const logB = [];
  const open = (log) => edgesyncClient({ url: ":memory:", syncUrl: sqld.url, authToken: sqld.tokens.rw, timeout: 120_000, fetch: timingFetch(log) });
  const a = open(logA);
  const b = open(logB);
  for (const c of [a, b]) {
    await c.execute(`create table ${t} ${SCHEMA}`);
    c.replicate(t);
    await c.sync(); // schema and bootstrap: not measured
  }
  logA.length = 0;
  logB.length = 0;
  const t0 = now();
  for (let i = 0; i < N_R2R; i++) await a.execute(insert(t, i));
  const t1 = now();
  await a.sync();
  const t2 = now();
  await b.sync();
  const rs = await b.execute(`select count(*) as n from ${t}`);
  const t3 = now();
  if (Number(rs.rows[0].n) !== N_R2R) throw new Error(`B sees ${rs.rows[0].n} rows`);
  a.close();
  b.close();
  return { ms: t3 - t0, writes: t1 - t0, syncA: t2 - t1, syncB: t3 - t2, logA: [...logA], logB: [...logB] };
}

async function r2rLibsql(sqld, dir, round, asBatch) {
  const t = `r2r_lib_${asBatch ? "b" : "s"}_${round}`;
  const open = (name) => libsqlClient({ url: `file:${join(dir, `${t}_${name}.db`)}`, syncUrl: sqld.url, authToken: sqld.tokens.rw });
  const a = open("a");
  const b = open("b");
  await a.execute(`create table ${t} ${SCHEMA}`); // goes to the primary
  await a.sync();
  await b.sync();
  const t0 = now();
  if (asBatch) {
    await a.batch(Array.from({ length: N_R2R }, (_, i) => insert(t, i)), "write");
  } else {
    for (let i = 0; i < N_R2R; i++) await a.execute(insert(t, i));
  }
  const t1 = now();
  await a.sync();
  const t2 = now();
  await b.sync();
  const rs = await b.execute(`select count(*) as n from ${t}`);
  const t3 = now();
  if (Number(rs.rows[0].n) !== N_R2R) throw new Error(`libsql B sees ${rs.rows[0].n} rows`);
  a.close();
  b.close();
  return { ms: t3 - t0, writes: t1 - t0, syncA: t2 - t1, syncB: t3 - t2 };
}

async function benchR2r(sqld) {
  const dir = mkdtempSync(join(tmpdir(), "edgesync-bench-r2r-"));
  try {
    await r2rEdgesync(sqld, "warm");
    await r2rLibsql(sqld, dir, "warm", false);
    const res = { es: [], lib: [], libBatch: [] };
    for (let r = 0; r < R2R_ROUNDS; r++) {
      const jobs = [
        ["es", () => r2rEdgesync(sqld, r)],
        ["lib", () => r2rLibsql(sqld, dir, r, false)],
        ["libBatch", () => r2rLibsql(sqld, dir, r, true)],
      ];
      if (r % 2 === 1) jobs.reverse();
      for (const [k, f] of jobs) res[k].push(await f());
    }
    const m = (k, f = "ms") => median(res[k].map((x) => x[f]));
    const e = m("es");
    table(`3. replica to replica: ${N_R2R} single-row writes on A, A.sync(), B.sync(), rows visible on B — peer @libsql/client embedded replicas, median of ${R2R_ROUNDS}`, [
      { label: "first write → visible on B, ms", e: fmt(e), p: fmt(m("lib")), ratio: `${(m("lib") / e).toFixed(1)}×`, goal: "≥ 10× faster", ok: m("lib") / e >= 10 },
      { label: "  of which writes on A, ms", e: fmt(m("es", "writes")), p: fmt(m("lib", "writes")) },
      { label: "  of which A.sync(), ms", e: fmt(m("es", "syncA")), p: fmt(m("lib", "syncA")) },
      { label: "  of which B.sync() + count, ms", e: fmt(m("es", "syncB")), p: fmt(m("lib", "syncB")) },
      { label: "  peer writing the 1,000 rows as one batch, ms", e: fmt(e), p: fmt(m("libBatch")), ratio: `${(m("libBatch") / e).toFixed(1)}×`, goal: "(information)" },
    ]);
    console.log("ratios: peer time ÷ edgesync time (higher = edgesync faster). @libsql embedded replicas send each write to the primary (write delegation)");
    const mid = [...res.es].sort((x, y) => x.ms - y.ms)[Math.floor(res.es.length / 2)];
    printSplit("edgesync A.sync() (median round)", mid.syncA, mid.logA);
    printSplit("edgesync B.sync() + count (median round)", mid.syncB, mid.logB);
    console.log("per round ms:");
    for (const [k, v] of Object.entries(res)) console.log(`  ${pad(k, 9)} ${v.map((x) => x.ms.toFixed(1)).join("  ")}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------

header();
if (parts.includes("local")) await benchLocal();
if (parts.includes("split")) await benchReadSplit();
if (parts.includes("push") || parts.includes("r2r")) {
  const sqld = await startSqld({ auth: true });
  try {
    if (parts.includes("push")) await benchPush(sqld);
    if (parts.includes("r2r")) await benchR2r(sqld);
  } finally {
    await sqld.stop();
  }
}
console.log(`\nloadavg at end ${loadavg().map((x) => x.toFixed(2)).join(" ")} (2-core machine shared with other builds/tests: figures are noisy)`);
