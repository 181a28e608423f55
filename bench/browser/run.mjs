// Browser benchmark (issue 16): edgesync's OPFS replica in headless Chromium, with the
// peer measured alongside in the same run — @sqlite.org/sqlite-wasm 3.54.1-build1 with
// its "opfs-sahpool" VFS in a dedicated worker, driven from the page by postMessage.
//
//   1. storage layer: edgesync's own OPFS host vs the sqlite-wasm-vfs crate's SAH pool,
//      the same replica code in one wasm build (the choice in docs/decisions.md);
//   2. durable single-row insert, page → worker → OPFS, from `await` to resolved;
//   3. point reads from the page: one at a time, and 256 in flight;
//   4. point reads inside the worker;
//   5. open + first query of a 100,000-row replica (browser relaunched for each);
//   6. owner hand-off when the owner tab closes: the longest a call in another tab waits.
//
//   bash scripts/bench.sh browser        (builds pkg/ and the measurement build first)
//   ROUNDS=5 node bench/browser/run.mjs [vfs|insert|reads|open|handoff]…
//
// Pages are served cross-origin isolated (COOP/COEP) for 5 µs timers instead of 100 µs;
// neither side uses SharedArrayBuffer. Every figure is from this one run: each
// measurement is repeated in ROUNDS rounds that alternate which side goes first, and
// the median round is shown (a busy machine moves single rounds by 2× and more).
import fs from "node:fs";
import path from "node:path";
import { availableParallelism, loadavg } from "node:os";
import { startStaticServer, MIME_TYPES } from "../../tests/support/static-server.mjs";
import { startSqld, REPO_ROOT } from "../../tests/support/sqld.mjs";
import { launchProfile, profileDir } from "../../tests/support/chromium.mjs";

const parts = process.argv.slice(2).length ? process.argv.slice(2) : ["vfs", "insert", "reads", "open", "handoff"];
const ROUNDS = Number(process.env.ROUNDS ?? 5);
// The package entry the page imports: a page with a browser replica imports `edgesync/replica`
// (the replica flavour, which its worker shares); ENTRY=/pkg/web.js measures the full entry.
const ENTRY = process.env.ENTRY ?? "/pkg/entries/replica.web.js";
const N_INSERTS = Number(process.env.N_INSERTS ?? 300);
const N_READS_PAGE = Number(process.env.N_READS_PAGE ?? 2000);
const N_READS_WORKER = Number(process.env.N_READS_WORKER ?? 100_000);
const N_ROWS = 100_000;
const HANDOFF_ROUNDS = Number(process.env.HANDOFF_ROUNDS ?? 10);

const ISOLATED = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" };

/** A page: `window.edgesync` (ours) or `window.peer` (the peer's worker), plus `window.driver(url)`. */
const page = (body) => `<!doctype html><meta charset="utf-8"><body><script type="module">
window.driver = (url) => {
  const w = new Worker(url, { type: "module" });
  let next = 1;
  const waiting = new Map();
  w.onmessage = (ev) => {
    const id = ev.data.id ?? [...waiting.keys()][0];
    const p = waiting.get(id);
    waiting.delete(id);
    ev.data.ok ? p.resolve(ev.data) : p.reject(new Error(ev.data.message));
  };
  return {
    call: (m) => new Promise((resolve, reject) => { const id = next++; waiting.set(id, { resolve, reject }); w.postMessage({ id, ...m }); }),
    terminate: () => w.terminate(),
  };
};
${body}
document.body.dataset.ready = "1";
</script></body>`;

const OURS = page(`
window.timeInserts = async (db, n, payload) => {
  for (let i = 0; i < 20; i++) await db.execute("insert into t (v) values (?)", [payload]);
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await db.execute("insert into t (v) values (?)", [payload]);
    lat.push(performance.now() - t0);
  }
  return lat;
};
const q = new URLSearchParams(location.search);
const t0 = performance.now();
const edgesync = await import("${ENTRY}");
window.edgesync = edgesync;
if (q.get("open")) {
  const t1 = performance.now();
  const db = edgesync.createClient({ url: "file:" + q.get("open") });
  const rs = await db.execute("select name from items where id = ?", [${N_ROWS / 2}]);
  window.openResult = { fromStart: performance.now() - t0, fromCreate: performance.now() - t1, name: rs.rows[0].name };
}`);

const PEER = page(`
window.timePeerInserts = async (n, payload) => {
  const insert = () => window.peer.call({ op: "exec", sql: "insert into t (v) values (?)", bind: [payload] });
  for (let i = 0; i < 20; i++) await insert();
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await insert();
    lat.push(performance.now() - t0);
  }
  return lat;
};
const q = new URLSearchParams(location.search);
const t0 = performance.now();
window.peer = window.driver("/bench/browser/peer-worker.js");
if (q.get("open")) {
  await window.peer.call({ op: "open", name: q.get("open") });
  const rs = await window.peer.call({ op: "exec", sql: "select name from items where id = ?", bind: [${N_ROWS / 2}] });
  window.openResult = { fromStart: performance.now() - t0, fromCreate: performance.now() - t0, name: rs.rows[0][0] };
}`);

/**
 * Whether script and wasm files may be cached: "no-store" (a first visit: both sides
 * fetch and compile everything) or "max-age=86400" (a returning visit: V8's code cache
 * has the compiled wasm). Part 5 measures both; everything else runs cached-off.
 */
let caching = "no-store";

/** Serves a repo file with the isolation headers and the current caching. */
function isolatedFile(rel) {
  return (req, res) => {
    const body = fs.readFileSync(path.join(REPO_ROOT, rel));
    res.writeHead(200, { "content-type": MIME_TYPES[path.extname(rel)] ?? "application/octet-stream", "cache-control": caching, ...ISOLATED });
    res.end(req.method === "HEAD" ? undefined : body);
  };
}

/** Routes for every file under these repo directories (the package, the peer, the workers). */
function assetRoutes(...dirs) {
  const routes = {};
  const walk = (rel) => {
    const abs = path.join(REPO_ROOT, rel);
    if (!fs.existsSync(abs)) return;
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(r);
      else routes[`/${r}`] = isolatedFile(r);
    }
  };
  dirs.forEach(walk);
  return routes;
}

// ---- statistics and printing ---------------------------------------------------------

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const pct = (xs, p) => {
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
};
const median = (xs) => pct(xs, 0.5);
const range = (xs) => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;
const f = (x, d = 2) => (x >= 10_000 ? Math.round(x).toLocaleString("en-US") : x.toFixed(d));
const rows = [];
/** A result row: lower is better unless `higher`; `goal(ratio, ours)` says whether it is met. */
function report(metric, ours, peer, unit, { higher = false, goal, goalText = "" } = {}) {
  const ratio = peer ? ours / peer : undefined;
  const met = goal ? goal(ratio, ours) : undefined;
  rows.push({ metric, ours, peer, unit, ratio, goalText, met, higher });
  const r = ratio === undefined ? "" : `${ratio.toFixed(2)}×`;
  console.log(
    `${metric.padEnd(58)} ${`${f(ours)} ${unit}`.padStart(16)} ${(peer === undefined ? "—" : `${f(peer)} ${unit}`).padStart(16)} ${r.padStart(7)}  ${goalText}${met === undefined ? "" : met ? " ✓" : " ✗"}`,
  );
}

// ---- the run -------------------------------------------------------------------------

const sqld = await startSqld({ auth: true });
const web = await startStaticServer({
  root: REPO_ROOT,
  routes: {
    ...assetRoutes("pkg", "bench/browser", "node_modules/@sqlite.org/sqlite-wasm/dist", "target/bench-browser"),
    "/bench/ours.html": { type: "text/html; charset=utf-8", headers: ISOLATED, body: OURS },
    "/bench/peer.html": { type: "text/html; charset=utf-8", headers: ISOLATED, body: PEER },
    "/favicon.ico": { type: "image/x-icon", body: "" },
  },
});
const dir = profileDir();
let browser = await launchProfile(dir);

async function tab(which, query = "") {
  const p = await browser.newPage();
  p.on("pageerror", (e) => console.error(`[${which}] pageerror:`, e));
  await p.goto(`${web.url}/bench/${which}.html${query}`);
  await p.waitForSelector('body[data-ready="1"]', { state: "attached", timeout: 120_000 });
  return p;
}

const pkgVersion = (name) => JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "node_modules", name, "package.json"))).version;
const chromiumVersion = browser.browser()?.version() ?? "?";
console.log(`edgesync browser benchmark — Chromium ${chromiumVersion}, peer @sqlite.org/sqlite-wasm ${pkgVersion("@sqlite.org/sqlite-wasm")} (opfs-sahpool)`);
console.log(`page entry: ${ENTRY}`);
console.log(`${availableParallelism()} CPUs, load ${loadavg().map((x) => x.toFixed(1)).join(" ")}, ${new Date().toISOString()}, ${ROUNDS} rounds\n`);
console.log(`${"metric".padEnd(58)} ${"edgesync".padStart(16)} ${"peer".padStart(16)} ${"ratio".padStart(7)}  goal`);

try {
  if (parts.includes("vfs")) await storageLayer();
  if (parts.includes("insert")) await inserts();
  if (parts.includes("reads")) await reads();
  if (parts.includes("open")) await openBig();
  if (parts.includes("handoff")) await handoff();
} finally {
  await browser.close().catch(() => {});
  await web.close();
  await sqld.stop();
}
console.log(`\nload at the end: ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
const failed = rows.filter((r) => r.met === false).map((r) => r.metric);
console.log(failed.length ? `\ngoals not met: ${failed.join("; ")}` : "\nall goals met");

// 1. ------------------------------------------------------------------------------------
async function storageLayer() {
  if (!fs.existsSync(path.join(REPO_ROOT, "target/bench-browser/wasm/edgesync_bg.wasm"))) {
    console.log("(storage layer: skipped — build target/bench-browser with `bash scripts/bench.sh browser`)");
    return;
  }
  console.log("\n1. storage layer, in the worker (\"peer\" here = the sqlite-wasm-vfs crate's SAH pool, same replica code)");
  const p = await tab("ours");
  // Each step in a fresh worker; the previous worker's handles are released first.
  const inWorker = (steps, mode) =>
    p.evaluate(
      async ({ steps, mode, rows }) => {
        await new Promise((res) => setTimeout(res, 100));
        const w = window.driver("/bench/browser/vfs-worker.js");
        const out = { open: await w.call({ op: "open", mode, name: `vfs-${mode}.db` }) };
        for (const s of steps) out[s.op] = await w.call({ ...s, max: rows });
        w.terminate();
        return out;
      },
      { steps, mode, rows: N_ROWS },
    );
  const fills = {};
  for (const mode of ["own", "sahpool"]) fills[mode] = (await inWorker([{ op: "fill", rows: N_ROWS }], mode)).fill.ms;
  const r = { own: [], sahpool: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const mode of i % 2 ? ["sahpool", "own"] : ["own", "sahpool"]) {
      r[mode].push(await inWorker([{ op: "scan" }, { op: "inserts", n: N_INSERTS }, { op: "reads", n: 20_000 }], mode));
    }
  }
  const per = (mode, fn) => r[mode].map(fn);
  const both = (fn) => [median(per("own", fn)), median(per("sahpool", fn))];
  const all = (mode) => r[mode].flatMap((x) => x.inserts.lat);
  report("insert, in the worker, p50 (median round)", ...both((x) => median(x.inserts.lat)), "ms");
  report("insert, in the worker, p99 (all rounds)", pct(all("own"), 0.99), pct(all("sahpool"), 0.99), "ms");
  report("point reads in the worker (generic execute, median round)", ...both((x) => 20_000 / (x.reads.ms / 1000)), "/s", { higher: true });
  report("open + first query of 100,000 rows (fresh worker)", ...both((x) => x.open.storageMs + x.open.openMs + x.open.firstMs), "ms");
  report("  of which taking the OPFS files", ...both((x) => x.open.storageMs), "ms");
  report("cold scan of 100,000 rows (fresh worker)", ...both((x) => x.scan.ms), "ms");
  report("bulk insert of 100,000 rows (one statement, once)", fills.own, fills.sahpool, "ms");
  const own = fs.statSync(path.join(REPO_ROOT, "pkg/wasm/edgesync_bg.wasm")).size;
  const bothSize = fs.statSync(path.join(REPO_ROOT, "target/bench-browser/wasm/edgesync_bg.wasm")).size;
  console.log(`${"wasm size: with the SAH pool added".padEnd(58)} ${`+${f((bothSize - own) / 1024, 1)} KiB`.padStart(16)}`);
  await p.close();
}

// 2. ------------------------------------------------------------------------------------
async function inserts() {
  console.log("\n2. durable single-row insert, page → worker → OPFS (await to resolved)");
  const payload = "x".repeat(100);
  // Four contestants, each in its own tab, opened once; rounds alternate their order.
  const ours = await tab("ours");
  await ours.evaluate(async () => {
    window.normal = window.edgesync.createClient({ url: "file:insert.db" });
    window.full = window.edgesync.createClient({ url: "file:insert-full.db" });
    for (const db of [window.normal, window.full]) await db.execute("create table if not exists t (id integer primary key, v text not null)");
    await window.full.execute("pragma synchronous = full");
  });
  const peers = {};
  const info = {};
  for (const tuned of [false, true]) {
    const p = await tab("peer");
    info[tuned] = await p.evaluate(async (tuned) => {
      const i = await window.peer.call({ op: "open", name: "insert.db", tuned, pool: tuned ? "peer-tuned" : "peer-default" });
      await window.peer.call({ op: "exec", sql: "create table if not exists t (id integer primary key, v text not null)" });
      return i;
    }, tuned);
    peers[tuned] = p;
  }
  console.log(`   peer: journal ${info.false.journal}, synchronous=${info.false.synchronous}; tuned: journal ${info.true.journal}, synchronous=${info.true.synchronous}`);
  const time = {
    normal: () => ours.evaluate(({ n, payload }) => window.timeInserts(window.normal, n, payload), { n: N_INSERTS, payload }),
    full: () => ours.evaluate(({ n, payload }) => window.timeInserts(window.full, n, payload), { n: N_INSERTS, payload }),
    peer: () => peers.false.evaluate(({ n, payload }) => window.timePeerInserts(n, payload), { n: N_INSERTS, payload }),
    tuned: () => peers.true.evaluate(({ n, payload }) => window.timePeerInserts(n, payload), { n: N_INSERTS, payload }),
  };
  const lat = { normal: [], full: [], peer: [], tuned: [] };
  const p50s = { normal: [], full: [], peer: [], tuned: [] };
  const order = Object.keys(time);
  for (let i = 0; i < ROUNDS; i++) {
    for (const k of i % 2 ? [...order].reverse() : order) {
      const l = await time[k]();
      lat[k].push(...l);
      p50s[k].push(median(l));
    }
  }
  for (const p of [ours, peers.false, peers.true]) await p.close();
  const goal = { goal: (r) => r <= 0.7, goalText: "≤ 0.7× peer p50" };
  report("insert p50 (edgesync: WAL, sync=NORMAL; peer: its defaults)", median(p50s.normal), median(p50s.peer), "ms", goal);
  console.log(`   rounds: edgesync ${range(p50s.normal)} ms, peer ${range(p50s.peer)} ms`);
  report("insert p99", pct(lat.normal, 0.99), pct(lat.peer, 0.99), "ms");
  report("insert p50, peer tuned (WAL, exclusive, sync=NORMAL)", median(p50s.normal), median(p50s.tuned), "ms");
  report("insert p99, peer tuned", pct(lat.normal, 0.99), pct(lat.tuned, 0.99), "ms");
  report("insert p50, edgesync sync=FULL (a flush per commit) vs peer defaults", median(p50s.full), median(p50s.peer), "ms");
  report("insert p99, edgesync sync=FULL vs peer defaults", pct(lat.full, 0.99), pct(lat.peer, 0.99), "ms");
}

// 3 + 4. --------------------------------------------------------------------------------
async function reads() {
  console.log("\n3./4. point reads (10,000-row table, random ids)");
  const N = 10_000;
  const fill = `with recursive c(i) as (select 1 union all select i + 1 from c where i < ${N}) insert or ignore into t (id, v) select i, printf('item %08d', i) from c`;
  const ours = await tab("ours");
  await ours.evaluate(async (fill) => {
    window.db = window.edgesync.createClient({ url: "file:reads.db" });
    await window.db.execute("create table if not exists t (id integer primary key, v text not null)");
    await window.db.execute(fill);
    window.read = (i) => window.db.execute("select v from t where id = ?", [1 + ((i * 7919) % 10_000)]);
  }, fill);
  const peer = await tab("peer");
  await peer.evaluate(async (fill) => {
    await window.peer.call({ op: "open", name: "reads.db", pool: "peer-reads" });
    await window.peer.call({ op: "exec", sql: "create table if not exists t (id integer primary key, v text not null)" });
    await window.peer.call({ op: "exec", sql: fill });
    window.read = (i) => window.peer.call({ op: "exec", sql: "select v from t where id = ?", bind: [1 + ((i * 7919) % 10_000)] });
  }, fill);
  // The same loops on both pages: one read at a time, then 256 in flight.
  const fromPage = (p) =>
    p.evaluate(async (n) => {
      for (let i = 0; i < 200; i++) await window.read(i);
      let t0 = performance.now();
      for (let i = 0; i < n; i++) await window.read(i);
      const seq = n / ((performance.now() - t0) / 1000);
      t0 = performance.now();
      for (let i = 0; i < 4 * n; i += 256) await Promise.all(Array.from({ length: 256 }, (_, j) => window.read(i + j)));
      return { seq, piped: (4 * n) / ((performance.now() - t0) / 1000) };
    }, N_READS_PAGE);
  const r = { ours: [], peer: [], oursW: [], peerW: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const which of i % 2 ? ["peer", "ours"] : ["ours", "peer"]) r[which].push(await fromPage(which === "ours" ? ours : peer));
  }
  // Inside a worker: edgesync in the application's own worker (in place, the public
  // API; the page's client is closed first, so that worker owns the store); the peer's
  // worker with one prepared statement (its engine's best case).
  await ours.evaluate(async () => {
    window.db.close();
    await new Promise((r) => setTimeout(r, 300));
    window.w = window.driver("/bench/browser/app-worker.js");
    await window.w.call({ op: "open", name: "reads.db" });
  });
  const inWorker = (p, viaDriver) =>
    p.evaluate(
      async ({ n, viaDriver }) => {
        const call = (m) => (viaDriver ? window.w.call(m) : window.peer.call(m));
        await call({ op: "reads", n: 10_000, max: 10_000 });
        const r = await call({ op: "reads", n, max: 10_000 });
        return n / (r.ms / 1000);
      },
      { n: N_READS_WORKER, viaDriver },
    );
  for (let i = 0; i < ROUNDS; i++) {
    for (const which of i % 2 ? ["peer", "ours"] : ["ours", "peer"]) r[`${which}W`].push(await inWorker(which === "ours" ? ours : peer, which === "ours"));
  }
  await ours.close();
  await peer.close();
  const med = (k, f) => median(r[k].map(f));
  const x15 = { higher: true, goal: (ratio) => ratio >= 1.5, goalText: "≥ 1.5× peer" };
  report("point reads/s from the page, one at a time", med("ours", (x) => x.seq), med("peer", (x) => x.seq), "/s", x15);
  report("point reads/s from the page, 256 in flight", med("ours", (x) => x.piped), med("peer", (x) => x.piped), "/s", x15);
  report("point reads/s inside the worker (peer: a prepared statement)", median(r.oursW), median(r.peerW), "/s", {
    higher: true,
    goal: (_r, x) => x >= 200_000,
    goalText: "≥ 200,000/s",
  });
  console.log(`   rounds inside the worker: edgesync ${range(r.oursW)}/s, peer ${range(r.peerW)}/s`);
}

// 5. ------------------------------------------------------------------------------------
async function openBig() {
  console.log(`\n5. open + first query of a ${N_ROWS.toLocaleString("en-US")}-row replica (browser relaunched for each)`);
  const fill = `with recursive c(i) as (select 1 union all select i + 1 from c where i < ${N_ROWS}) insert into items (id, name, qty) select i, printf('item %08d', i), i % 97 from c`;
  const ours = await tab("ours");
  const setup = await ours.evaluate(
    async ({ fill, url, token }) => {
      const db = window.edgesync.createClient({ url: "file:big.db", syncUrl: url, authToken: token, timeout: 60_000 });
      await db.execute("create table if not exists items (id integer primary key, name text not null, qty integer not null)");
      if ((await db.execute("select count(*) as n from items")).rows[0].n === 0) await db.execute(fill);
      await db.replicate("items");
      const t0 = performance.now();
      let pushed = 0;
      for (let i = 0; i < 50; i++) {
        pushed += (await db.sync()).changesPushed;
        if ((await db.call("status")).pendingChanges === 0) break;
      }
      const ms = performance.now() - t0;
      db.close();
      await new Promise((r) => setTimeout(r, 500));
      return { pushed, ms };
    },
    { fill, url: sqld.url, token: sqld.tokens.rw },
  );
  console.log(`   (setup: ${setup.pushed.toLocaleString("en-US")} rows pushed to sqld in ${f(setup.ms / 1000, 1)} s — a synced replica)`);
  await ours.close();
  const peer = await tab("peer");
  await peer.evaluate(async (fill) => {
    await window.peer.call({ op: "open", name: "big.db" });
    await window.peer.call({ op: "exec", sql: "create table if not exists items (id integer primary key, name text not null, qty integer not null)" });
    const n = (await window.peer.call({ op: "exec", sql: "select count(*) from items" })).rows[0][0];
    if (n === 0) await window.peer.call({ op: "exec", sql: fill });
    await window.peer.call({ op: "close" });
  }, fill);
  await peer.close();
  const visit = async (which) => {
    await browser.close();
    browser = await launchProfile(dir);
    const p = await tab(which, "?open=big.db");
    const r = await p.waitForFunction(() => window.openResult, null, { timeout: 60_000 }).then((h) => h.jsonValue());
    if (r.name !== `item ${String(N_ROWS / 2).padStart(8, "0")}`) throw new Error(`wrong row: ${r.name}`);
    await p.close();
    return r;
  };
  for (const mode of ["no-store", "max-age=86400"]) {
    caching = mode;
    const t = { ours: [], peer: [], oursCreate: [] };
    if (mode !== "no-store") for (const which of ["ours", "peer"]) await visit(which); // fills the caches
    for (let i = 0; i < ROUNDS; i++) {
      for (const which of i % 2 ? ["peer", "ours"] : ["ours", "peer"]) {
        const r = await visit(which);
        t[which].push(r.fromStart);
        if (which === "ours") t.oursCreate.push(r.fromCreate);
      }
    }
    const label = mode === "no-store" ? "first visit (nothing cached)" : "returning visit (scripts, wasm cached)";
    report(`open + first query, ${label}`, median(t.ours), median(t.peer), "ms", { goal: (r) => r <= 1, goalText: "≤ peer" });
    report("  edgesync from createClient() (the package loaded)", median(t.oursCreate), median(t.peer), "ms");
  }
  caching = "no-store";
}

// 6. ------------------------------------------------------------------------------------
async function handoff() {
  console.log("\n6. owner hand-off when the owner tab closes (the longest a read in another tab waits)");
  const open = async () => {
    const p = await tab("ours");
    await p.evaluate(async () => {
      window.db = window.edgesync.createClient({ url: "file:handoff.db" });
      await window.db.execute("create table if not exists t (id integer primary key, v text)");
      await window.db.execute("insert or ignore into t values (1, 'x')");
    });
    return p;
  };
  const waits = [];
  let owner = await open();
  for (let i = 0; i < HANDOFF_ROUNDS; i++) {
    const follower = await open();
    await follower.waitForFunction(() => !window.db.status().owner && window.db.status().persistent);
    await follower.evaluate(() => {
      window.stop = false;
      window.lat = [];
      window.loop = (async () => {
        while (!window.stop) {
          const t0 = performance.now();
          await window.db.execute("select v from t where id = 1");
          window.lat.push(performance.now() - t0);
        }
      })();
    });
    await new Promise((r) => setTimeout(r, 300));
    await owner.close();
    await follower.waitForFunction(() => window.db.status().owner, null, { timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 200));
    const worst = await follower.evaluate(async () => {
      window.stop = true;
      await window.loop;
      return Math.max(...window.lat);
    });
    waits.push(worst);
    owner = follower;
  }
  await owner.close();
  report("hand-off: longest wait of a call, p50", median(waits), undefined, "ms", { goal: (_r, x) => x <= 500, goalText: "≤ 500 ms" });
  report("hand-off: longest wait of a call, p99 (max)", pct(waits, 0.99), undefined, "ms", { goal: (_r, x) => x <= 500, goalText: "≤ 500 ms" });
}
