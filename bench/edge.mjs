// Benchmark of the edge Worker (issue 5), one run, everything on loopback:
//
//   1. router decision time per statement, wasm in Node (the native figure is
//      `cargo bench --bench router`): classify + route for a statement mix, and the
//      cached-read lookup the hot path uses;
//   2. requests/s for a hot cached read through the edge Worker (www/worker, real
//      workerd via wrangler dev) against a plain Worker that forwards every query to
//      sqld (bench/plain-worker) — same load generator, same sqld, same run, as a ratio;
//   3. sessions: 100,000 live sessions in one isolate (SessionStore, wasm in Node):
//      memory per session and get p50/p99 from the cache.
//   4. the edge replica (issue 17; a replica in a SQLite-backed Durable Object): reads
//      answered from it vs the read cache vs a plain worker forwarding to sqld (the
//      harness of part 2); how soon a write elsewhere is visible there; and its two
//      storage designs side by side — the database in the object's storage (a VFS) vs in
//      memory, bootstrapped again after a restart.
//
//   node --expose-gc bench/edge.mjs [router|http|sessions]…   (scripts/bench.sh edge builds first)
//   DURATION_MS=5000 CONCURRENCY=32 ROUNDS=3
import { EdgeRouter, SessionStore, classify, createClient } from "edgesync";
import crypto from "node:crypto";
import http from "node:http";
import path from "node:path";
import { startSqld, REPO_ROOT } from "../tests/support/sqld.mjs";
import { startWorker } from "../tests/support/worker-env.mjs";
import { hs256Token } from "../tests/support/jwt.mjs";

const parts = process.argv.slice(2).length ? process.argv.slice(2) : ["router", "http", "sessions"];
const DURATION_MS = Number(process.env.DURATION_MS ?? 5000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const N_SESSIONS = Number(process.env.N_SESSIONS ?? 100_000);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const fmt = (x, d = 2) => (x >= 10_000 ? Math.round(x).toLocaleString("en-US") : x.toFixed(d));

const STATEMENTS = [
  ["point select", "select id, name, email from users where id = ?"],
  ["join", "select o.id, u.name from orders o join users u on u.id = o.user_id where o.created_at > ? order by o.id limit 50"],
  ["CTE write", "with recent as (select id from orders where created_at > ?) delete from orders where id in (select id from recent)"],
  ["insert returning", "insert into users (name, email) values (?, ?) returning id"],
  ["pragma", "pragma table_info(users)"],
  ["3 statements", "select 1; select count(*) from users; update users set seen = 1 where id = ?"],
];

function routerBench() {
  const regions = JSON.stringify([
    { id: "fra", url: "http://127.0.0.1:1", role: "primary", location: "50.11,8.68" },
    { id: "nyc", url: "http://127.0.0.1:2", role: "replica", location: "40.71,-74.01" },
    { id: "sin", url: "http://127.0.0.1:3", role: "replica", location: "1.35,103.82" },
    { id: "syd", url: "http://127.0.0.1:4", role: "replica", location: "-33.87,151.21" },
  ]);
  const router = new EdgeRouter(regions, undefined, 7);
  const now = Date.now();
  for (let i = 0; i < 4; i++) for (let k = 0; k < 20; k++) router.reportSuccess(i, 5 + i * 10 + (k % 3), 100, now);
  const N = 100_000;
  console.log("\n1. Router decision time, wasm in Node (4 regions, latency samples; µs per call)");
  console.log(`${pad("statement", 20)} ${lpad("classify µs", 12)} ${lpad("route µs", 10)} ${lpad("routes/s", 12)}`);
  const results = [];
  for (const [name, sql] of STATEMENTS) {
    for (let i = 0; i < 2000; i++) router.route(sql, "[1]", "service", "user-1", "40.7,-74.0", now); // warm up
    let t0 = performance.now();
    for (let i = 0; i < N; i++) classify(sql);
    const classifyUs = ((performance.now() - t0) * 1000) / N;
    t0 = performance.now();
    for (let i = 0; i < N; i++) router.route(sql, "[1]", "service", `user-${i & 1023}`, "40.7,-74.0", now);
    const routeUs = ((performance.now() - t0) * 1000) / N;
    results.push(routeUs);
    console.log(`${pad(name, 20)} ${lpad(fmt(classifyUs), 12)} ${lpad(fmt(routeUs), 10)} ${lpad(fmt(1e6 / routeUs, 0), 12)}`);
  }
  const key = "select name from users where id = ?";
  const plan = router.route(key, "[1]", "service", undefined, undefined, now);
  router.cachePut(plan.cacheKey, plan.reads, 100, '{"rows":[["x"]]}', now);
  let t0 = performance.now();
  for (let i = 0; i < N; i++) router.cached(key, "[1]", "service", undefined, now);
  const hitUs = ((performance.now() - t0) * 1000) / N;
  console.log(`${pad("cached() hit", 20)} ${lpad("", 12)} ${lpad(fmt(hitUs), 10)} ${lpad(fmt(1e6 / hitUs, 0), 12)}`);
  console.log(`median route(): ${fmt(median(results))} µs (native: cargo bench --bench router)`);
  router.free();
}

/**
 * CONCURRENCY keep-alive loops POSTing `body` to /query for DURATION_MS (or, with
 * `floor`, GETting an unknown route without a token: answered 401 at once, the most
 * wrangler dev + this load generator can carry); returns {rps, p50, p99, errors}.
 */
async function load(base, token, body, floor = false) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const url = new URL(base + (floor ? "/floor" : "/query"));
  const payload = Buffer.from(JSON.stringify(body));
  const one = () =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = http.request(
        floor
          ? { agent, host: url.hostname, port: url.port, path: url.pathname, method: "GET" }
          : { agent, host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": payload.length } },
        (res) => {
          res.resume();
          res.on("end", () => resolve({ ok: res.statusCode === (floor ? 401 : 200), ms: performance.now() - t0 }));
        },
      );
      req.on("error", () => resolve({ ok: false, ms: performance.now() - t0 }));
      req.end(floor ? undefined : payload);
    });
  // warm-up
  for (let i = 0; i < 200; i++) await one();
  const lat = [];
  let errors = 0;
  const end = performance.now() + DURATION_MS;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const r = await one();
        if (r.ok) lat.push(r.ms);
        else errors++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { rps: lat.length / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99), errors };
}

async function httpBench() {
  const db = await startSqld({ auth: true });
  const secret = crypto.randomBytes(32).toString("hex");
  const token = hs256Token(secret, "bench", { role: "service" }); // SQL through the worker needs a service token
  const sessionKeys = `k1:${crypto.randomBytes(32).toString("base64")}`;
  const [edge, plain] = await Promise.all([
    startWorker({
      name: "bench-edge",
      logLevel: "warn",
      vars: { REGIONS: JSON.stringify([{ id: "local", url: db.url, role: "primary" }]), ROUTER_OPTIONS: JSON.stringify({ cacheTtlMs: 3_600_000 }) },
      secrets: { LIBSQL_AUTH_TOKEN: db.tokens.rw, JWT_SECRET: secret, SESSION_KEYS: sessionKeys },
    }),
    startWorker({
      name: "bench-plain",
      logLevel: "warn",
      config: path.join(REPO_ROOT, "bench", "plain-worker", "wrangler.toml"),
      vars: { LIBSQL_URL: db.url },
      secrets: { LIBSQL_AUTH_TOKEN: db.tokens.rw, JWT_SECRET: secret },
    }),
  ]);
  try {
    const q = async (w, sql, args) => {
      const res = await fetch(w.base + "/query", { method: "POST", headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ sql, args }) });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${w.base}: ${res.status} ${text}`);
      return text;
    };
    await q(edge, "create table products (id integer primary key, name text, cents integer)");
    await q(edge, "insert into products (name, cents) values ('lamp', 4200), ('desk', 19900)");
    const body = { sql: "select id, name, cents from products where id = ?", args: [1] };
    // Both answer the same rows.
    const a = JSON.parse(await q(edge, body.sql, body.args));
    const b = JSON.parse(await q(plain, body.sql, body.args));
    if (JSON.stringify(a.rows) !== JSON.stringify([[1, "lamp", 4200]]) || b.rows?.length !== 1) throw new Error(`answers differ: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    const runs = { edge: [], plain: [], floor: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? ["plain", "edge", "floor"] : ["floor", "edge", "plain"];
      for (const name of order) runs[name].push(await load(name === "plain" ? plain.base : edge.base, token, body, name === "floor"));
    }
    const med = (xs, k) => median(xs.map((x) => x[k]));
    const e = { rps: med(runs.edge, "rps"), p50: med(runs.edge, "p50"), p99: med(runs.edge, "p99"), errors: runs.edge.reduce((s, x) => s + x.errors, 0) };
    const p = { rps: med(runs.plain, "rps"), p50: med(runs.plain, "p50"), p99: med(runs.plain, "p99"), errors: runs.plain.reduce((s, x) => s + x.errors, 0) };
    console.log(`\n2. Hot cached read through the Worker (wrangler dev / workerd, ${CONCURRENCY} keep-alive connections, ${DURATION_MS} ms × ${ROUNDS} rounds, medians)`);
    console.log(`${pad("worker", 40)} ${lpad("req/s", 10)} ${lpad("p50 ms", 8)} ${lpad("p99 ms", 8)} ${lpad("errors", 7)}`);
    console.log(`${pad("edgesync edge worker (router + cache)", 40)} ${lpad(fmt(e.rps, 0), 10)} ${lpad(fmt(e.p50), 8)} ${lpad(fmt(e.p99), 8)} ${lpad(e.errors, 7)}`);
    console.log(`${pad("plain worker forwarding to sqld", 40)} ${lpad(fmt(p.rps, 0), 10)} ${lpad(fmt(p.p50), 8)} ${lpad(fmt(p.p99), 8)} ${lpad(p.errors, 7)}`);
    console.log(`ratio: ${(e.rps / p.rps).toFixed(2)}× the plain worker's requests/s`);
    const f = med(runs.floor, "rps");
    console.log(`(harness ceiling: the same worker answering 401 without any work, ${fmt(f, 0)} req/s: the cached read runs at ${((100 * e.rps) / f).toFixed(0)}% of it)`);
  } finally {
    await Promise.all([edge.stop(), plain.stop()]);
    await db.stop();
  }
}

function sessionsBench() {
  const gc = globalThis.gc ?? (() => {});
  const keys = `k1:${crypto.randomBytes(32).toString("base64")}`;
  const store = new SessionStore(keys, JSON.stringify({ cacheMaxEntries: N_SESSIONS * 2 }), crypto.randomBytes(16));
  const data = (i) => JSON.stringify({ user: `user-${i}`, roles: ["reader"], cart: [i % 97, i % 13], theme: "dark" });
  gc();
  const before = process.memoryUsage();
  const now = Date.now();
  const t0 = performance.now();
  const idOf = (i) => `session-${i.toString(36).padStart(8, "0")}`.padEnd(32, "_"); // the shape of a generated id
  for (let i = 0; i < N_SESSIONS; i++) store.create(idOf(i), `user-${i}`, data(i), "fra", now);
  const createMs = performance.now() - t0;
  gc();
  const after = process.memoryUsage();
  const rssPer = (after.rss - before.rss) / N_SESSIONS;
  const heapPer = (after.heapUsed + after.external - before.heapUsed - before.external) / N_SESSIONS;
  const lat = [];
  for (let k = 0; k < 200_000; k++) {
    const i = (k * 7919) % N_SESSIONS;
    const id = idOf(i);
    const t = performance.now();
    const r = store.getCached(id, "fra", now + 1000);
    lat.push(performance.now() - t);
    if (r.status !== "hit") throw new Error(`session ${id}: ${r.status}`);
  }
  lat.sort((a, b) => a - b);
  const live = store.analytics().liveCached;
  console.log(`\n3. Sessions: ${N_SESSIONS.toLocaleString("en-US")} live sessions in one isolate (SessionStore, wasm in Node; ~${data(1).length}-byte JSON each)`);
  console.log(`live in cache: ${live.toLocaleString("en-US")}; create ${fmt((createMs * 1000) / N_SESSIONS)} µs each (includes sealing)`);
  console.log(`memory per session: ${fmt(rssPer, 0)} B RSS (wasm memory + JS), JS heap + external ${fmt(heapPer, 0)} B`);
  console.log(`get from cache: p50 ${fmt(pct(lat, 0.5) * 1000)} µs, p99 ${fmt(pct(lat, 0.99) * 1000)} µs, max ${fmt(lat.at(-1) * 1000)} µs (goal p99 ≤ 1 ms: ${pct(lat, 0.99) <= 1 ? "✓" : "✗"})`);
  store.free();
}

/**
 * Where a session read's time goes (docs/decisions.md, "Sessions stay in the primary's
 * table"): GET /sessions/:id — served from the isolate's cache once the primary's
 * ledger confirms it — next to a one-row read on the primary and a request the Worker
 * answers without the primary.
 */
async function sessionHomeBench() {
  const db = await startSqld({ auth: true });
  const secret = crypto.randomBytes(32).toString("hex");
  const w = await startWorker({
    name: "bench-session-home",
    logLevel: "warn",
    vars: { REGIONS: JSON.stringify([{ id: "local", url: db.url, role: "primary" }]) },
    secrets: { LIBSQL_AUTH_TOKEN: db.tokens.rw, JWT_SECRET: secret, SESSION_KEYS: `k1:${crypto.randomBytes(32).toString("base64")}` },
  });
  const user = hs256Token(secret, "alice");
  const svc = hs256Token(secret, "ops", { role: "service" });
  const time = async (n, f) => {
    const lat = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await f();
      lat.push(performance.now() - t0);
    }
    lat.sort((a, b) => a - b);
    return [pct(lat, 0.5), pct(lat, 0.99)];
  };
  try {
    const call = (method, route, token, body) =>
      fetch(w.base + route, { method, headers: { authorization: `Bearer ${token}` }, body: body === undefined ? undefined : JSON.stringify(body) }).then((r) => r.text());
    const created = JSON.parse(await call("POST", "/sessions", user, { data: { cart: Array.from({ length: 20 }, (_, i) => ({ sku: `sku-${i}`, n: i })) } }));
    await call("POST", "/query", svc, { sql: "select 1" });
    const N = 300;
    const get = await time(N, () => call("GET", `/sessions/${created.id}`, user));
    const row = await time(N, () => call("POST", "/query", svc, { sql: "select owner, version from es_sessions where id = ?", args: [created.id] }));
    const local = await time(N, () => call("GET", "/whoami", user));
    console.log(`\n5. A session read (loopback, ${N} sequential requests, p50 / p99 ms)`);
    console.log(`${pad("GET /sessions/:id (cache + ledger check on the primary)", 58)} ${lpad(fmt(get[0]), 7)} ${lpad(fmt(get[1]), 7)}`);
    console.log(`${pad("a one-row read on the primary through the Worker", 58)} ${lpad(fmt(row[0]), 7)} ${lpad(fmt(row[1]), 7)}`);
    console.log(`${pad("a request answered by the Worker alone (GET /whoami)", 58)} ${lpad(fmt(local[0]), 7)} ${lpad(fmt(local[1]), 7)}`);
  } finally {
    await w.stop();
    await db.stop();
  }
}

/** Part 4: the edge replica. */
async function replicaBench() {
  const db = await startSqld({ auth: true });
  const secret = crypto.randomBytes(32).toString("hex");
  const token = (sub) => hs256Token(secret, sub, { role: "service" });
  const reader = token("reader");
  const admin = createClient({ url: ":memory:", syncUrl: db.url, authToken: db.tokens.rw });
  await admin.execute("create table products (id integer primary key, name text, cents integer)");
  admin.replicate("products");
  const ROWS = 10_000;
  await admin.batch(Array.from({ length: ROWS }, (_, i) => ({ sql: "insert into products values (?, ?, ?)", args: [i + 1, `item ${i + 1}`, 100 + i] })), "write");
  await admin.sync();
  const regions = JSON.stringify([{ id: "local", url: db.url, role: "primary" }]);
  const start = (name, vars) =>
    startWorker({
      name,
      logLevel: "warn",
      vars: { REGIONS: regions, ROUTER_OPTIONS: JSON.stringify({ cacheTtlMs: 3_600_000 }), ...vars },
      secrets: { LIBSQL_AUTH_TOKEN: db.tokens.rw, JWT_SECRET: secret },
      ...(name === "bench-plain2" ? { config: path.join(REPO_ROOT, "bench", "plain-worker", "wrangler.toml") } : {}),
    });
  const replicaVars = { EDGE_REPLICA_TABLES: JSON.stringify(["products"]), EDGE_REPLICA_SYNC_MS: "600000" };
  const [withReplica, inMemory, cached, plain] = await Promise.all([
    start("bench-replica", replicaVars),
    start("bench-replica-memory", { ...replicaVars, EDGE_REPLICA_STORAGE: "memory" }),
    start("bench-cached", {}),
    start("bench-plain2", { LIBSQL_URL: db.url }),
  ]);
  const post = async (w, route, body, who = reader) => {
    const res = await fetch(w.base + route, { method: "POST", headers: { authorization: `Bearer ${who}` }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, region: res.headers.get("x-edgesync-region"), body: await res.json().catch(() => undefined) };
  };
  const fromEdge = async (w, sql, args) => {
    const r = await post(w, "/query", { sql, args });
    return r.region === "edge" ? r.body : undefined;
  };
  const waitFor = async (f, ms = 120_000) => {
    const t0 = performance.now();
    for (;;) {
      const v = await f();
      if (v) return performance.now() - t0;
      if (performance.now() - t0 > ms) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  try {
    const body = { sql: "select id, name, cents from products where id = ?", args: [1] };
    await waitFor(() => fromEdge(withReplica, body.sql, body.args));
    await waitFor(() => fromEdge(inMemory, body.sql, body.args));
    await post(cached, "/query", body);
    const runs = { replica: [], cached: [], plain: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? ["plain", "cached", "replica"] : ["replica", "cached", "plain"];
      for (const name of order) {
        const w = { replica: withReplica, cached, plain }[name];
        runs[name].push(await load(w.base, reader, body));
      }
    }
    const med = (xs, k) => median(xs.map((x) => x[k]));
    const row = (label, xs) =>
      console.log(`${pad(label, 46)} ${lpad(fmt(med(xs, "rps"), 0), 10)} ${lpad(fmt(med(xs, "p50")), 8)} ${lpad(fmt(med(xs, "p99")), 8)} ${lpad(xs.reduce((s, x) => s + x.errors, 0), 7)}`);
    console.log(`\n4. Reads at the edge (wrangler dev / workerd, ${CONCURRENCY} keep-alive connections, ${DURATION_MS} ms × ${ROUNDS} rounds, medians)`);
    console.log(`${pad("path", 46)} ${lpad("req/s", 10)} ${lpad("p50 ms", 8)} ${lpad("p99 ms", 8)} ${lpad("errors", 7)}`);
    row("edge replica (Durable Object, no TTL)", runs.replica);
    row("read cache (router, TTL 1 h)", runs.cached);
    row("plain worker forwarding to sqld", runs.plain);
    const [rr, rc] = [med(runs.replica, "rps"), med(runs.cached, "rps")];
    console.log(`edge replica: ${(rr / rc).toFixed(2)}× the cached path's req/s (goal ≥ 1×: ${rr >= rc ? "✓" : "✗"}), ${(rr / med(runs.plain, "rps")).toFixed(2)}× forwarding`);
    const edgeRegion = (await (await fetch(withReplica.base + "/health")).json()).regions.find((x) => x.id === "edge");
    console.log(`(the edge replica's region after the load: ${edgeRegion.status}, error rate ${fmt(edgeRegion.errorRate)}: a read it cannot take in time falls back to sqld)`);

    await waitFor(() => fromEdge(withReplica, body.sql, body.args), 300_000);

    // Freshness: a write elsewhere (a trusted replica straight to sqld, announced with
    // POST /sync/notify) until the edge replica answers with it.
    const lat = [];
    for (let i = 0; i < 20; i++) {
      const name = `fresh ${i}`;
      await admin.execute({ sql: "update products set name = ? where id = 2", args: [name] });
      await admin.sync();
      const t0 = performance.now();
      await post(withReplica, "/sync/notify", undefined);
      await waitFor(async () => (await fromEdge(withReplica, "select name from products where id = 2"))?.rows?.[0]?.[0] === name, 10_000);
      lat.push(performance.now() - t0);
    }
    lat.sort((a, b) => a - b);
    console.log(`a write elsewhere visible at the edge replica: p50 ${fmt(pct(lat, 0.5))} ms, p99 ${fmt(pct(lat, 0.99))} ms (20 writes; goal ≤ 100 ms: ${pct(lat, 0.5) <= 100 ? "✓" : "✗"} at p50)`);

    // Storage designs: restart to the first answer from the edge replica (10,000 rows),
    // and a pull of 1,000 changed rows.
    console.log(`\n   storage design of the edge replica (${ROWS.toLocaleString("en-US")} rows)`);
    console.log(`${pad("design", 46)} ${lpad("restart→read ms", 16)} ${lpad("1,000-row pull ms", 18)} ${lpad("stored bytes", 13)}`);
    const designs = [
      { label: "database in the object's storage (VFS)", w: withReplica, restarts: [], pulls: [] },
      { label: "in memory, bootstrapped after a restart", w: inMemory, restarts: [], pulls: [] },
    ];
    for (let r = 0; r < ROUNDS; r++) {
      // The same 1,000 changed rows reach both designs.
      await admin.batch(Array.from({ length: 1000 }, (_, i) => ({ sql: "update products set cents = cents + 1 where id = ?", args: [i + 1 + r * 1000] })), "write");
      await admin.sync();
      const probeId = 1 + r * 1000;
      const want = (await admin.execute({ sql: "select cents from products where id = ?", args: [probeId] })).rows[0][0];
      for (const d of designs) {
        const t0 = performance.now();
        await post(d.w, "/sync/notify", undefined);
        await waitFor(async () => (await fromEdge(d.w, "select cents from products where id = ?", [probeId]))?.rows?.[0]?.[0] === want);
        d.pulls.push(performance.now() - t0);
      }
      for (const d of designs) {
        await d.w.restart();
        const t1 = performance.now();
        await waitFor(() => fromEdge(d.w, body.sql, body.args));
        d.restarts.push(performance.now() - t1);
      }
    }
    for (const d of designs) {
      const h = (await (await fetch(d.w.base + "/health")).json()).edgeReplica;
      console.log(`${pad(d.label, 46)} ${lpad(fmt(median(d.restarts)), 16)} ${lpad(fmt(median(d.pulls)), 18)} ${lpad(h.storageBytes.toLocaleString("en-US"), 13)}`);
    }
  } finally {
    admin.close();
    await Promise.all([withReplica, inMemory, cached, plain].map((w) => w.stop()));
    await db.stop();
  }
}

if (parts.includes("router")) routerBench();
if (parts.includes("sessions")) sessionsBench();
if (parts.includes("http")) await httpBench();
if (parts.includes("replica")) await replicaBench();
if (parts.includes("session-home")) await sessionHomeBench();
