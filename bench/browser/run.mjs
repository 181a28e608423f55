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
//   node bench/browser/run.mjs [vfs|insert|reads|open|handoff]…
//
// Pages are served cross-origin isolated (COOP/COEP) for 5 µs timers instead of 100 µs;
// neither side uses SharedArrayBuffer. Every figure is from this one run.
import fs from "node:fs";
import path from "node:path";
import { availableParallelism, loadavg } from "node:os";
import { startStaticServer, MIME_TYPES } from "../../tests/support/static-server.mjs";
import { startSqld, REPO_ROOT } from "../../tests/support/sqld.mjs";
import { launchProfile, profileDir } from "../../tests/support/chromium.mjs";

const parts = process.argv.slice(2).length ? process.argv.slice(2) : ["vfs", "insert", "reads", "open", "handoff"];
const N_INSERTS = Number(process.env.N_INSERTS ?? 1000);
const N_READS_PAGE = Number(process.env.N_READS_PAGE ?? 5000);
const N_READS_WORKER = Number(process.env.N_READS_WORKER ?? 200_000);
const N_ROWS = 100_000;
const OPEN_ROUNDS = Number(process.env.OPEN_ROUNDS ?? 5);
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
const q = new URLSearchParams(location.search);
const t0 = performance.now();
const edgesync = await import("/pkg/web.js");
window.edgesync = edgesync;
if (q.get("open")) {
  const t1 = performance.now();
  const db = edgesync.createClient({ url: "file:" + q.get("open") });
  const rs = await db.execute("select name from items where id = ?", [${N_ROWS / 2}]);
  window.openResult = { fromStart: performance.now() - t0, fromCreate: performance.now() - t1, name: rs.rows[0].name };
}`);

const PEER = page(`
const q = new URLSearchParams(location.search);
const t0 = performance.now();
window.peer = window.driver("/bench/browser/peer-worker.js");
if (q.get("open")) {
  await window.peer.call({ op: "open", name: q.get("open") });
  const rs = await window.peer.call({ op: "exec", sql: "select name from items where id = ?", bind: [${N_ROWS / 2}] });
  window.openResult = { fromStart: performance.now() - t0, fromCreate: performance.now() - t0, name: rs.rows[0][0] };
}`);

/** Serves a repo file with the isolation headers (workers of an isolated page). */
function isolatedFile(rel) {
  return (req, res) => {
    const body = fs.readFileSync(path.join(REPO_ROOT, rel));
    res.writeHead(200, { "content-type": MIME_TYPES[path.extname(rel)] ?? "application/octet-stream", "cache-control": "no-store", ...ISOLATED });
    res.end(body);
  };
}

// ---- statistics and printing ---------------------------------------------------------

const sorted = (xs) => [...xs].sort((a, b) => a - b);
const pct = (xs, p) => {
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.round((s.length - 1) * p))];
};
const median = (xs) => pct(xs, 0.5);
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
    "/bench/ours.html": { type: "text/html; charset=utf-8", headers: ISOLATED, body: OURS },
    "/bench/peer.html": { type: "text/html; charset=utf-8", headers: ISOLATED, body: PEER },
    "/bench/browser/peer-worker.js": isolatedFile("bench/browser/peer-worker.js"),
    "/bench/browser/app-worker.js": isolatedFile("bench/browser/app-worker.js"),
    "/bench/browser/vfs-worker.js": isolatedFile("bench/browser/vfs-worker.js"),
    "/pkg/browser/worker.js": isolatedFile("pkg/browser/worker.js"),
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
console.log(`${availableParallelism()} CPUs, load ${loadavg().map((x) => x.toFixed(1)).join(" ")}, ${new Date().toISOString()}\n`);
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
  const run = (fn, arg) => p.evaluate(fn, arg);
  const results = { own: {}, sahpool: {} };
  for (const mode of ["own", "sahpool"]) {
    results[mode] = await run(
      async ({ mode, rows, n }) => {
        const w = window.driver("/bench/browser/vfs-worker.js");
        const name = `vfs-${mode}.db`;
        const open = await w.call({ op: "open", mode, name });
        const fill = await w.call({ op: "fill", rows });
        const ins = await w.call({ op: "inserts", n });
        const rd = await w.call({ op: "reads", n: 50_000, max: rows });
        w.terminate();
        return { open, fill: fill.ms, lat: ins.lat, readsPerSec: 50_000 / (rd.ms / 1000) };
      },
      { mode, rows: N_ROWS, n: N_INSERTS },
    );
  }
  // Fresh workers on the filled databases: open + first query, and a cold scan.
  const opens = { own: [], sahpool: [] };
  const scans = { own: [], sahpool: [] };
  for (let i = 0; i < OPEN_ROUNDS; i++) {
    for (const mode of i % 2 ? ["sahpool", "own"] : ["own", "sahpool"]) {
      const r = await run(
        async ({ mode }) => {
          await new Promise((res) => setTimeout(res, 50));
          const w = window.driver("/bench/browser/vfs-worker.js");
          const open = await w.call({ op: "open", mode, name: `vfs-${mode}.db` });
          const scan = await w.call({ op: "scan" });
          w.terminate();
          return { open, scan };
        },
        { mode },
      );
      opens[mode].push(r.open.storageMs + r.open.openMs + r.open.firstMs);
      scans[mode].push(r.scan.ms);
    }
  }
  const o = results.own;
  const s = results.sahpool;
  report("insert, in the worker, p50", median(o.lat), median(s.lat), "ms");
  report("insert, in the worker, p99", pct(o.lat, 0.99), pct(s.lat, 0.99), "ms");
  report("bulk insert of 100,000 rows (one statement)", o.fill, s.fill, "ms");
  report("point reads in the worker (generic execute)", o.readsPerSec, s.readsPerSec, "/s", { higher: true });
  report("open + first query of 100,000 rows (fresh worker)", median(opens.own), median(opens.sahpool), "ms");
  report("  of which taking the OPFS files (median)", o.open.storageMs, s.open.storageMs, "ms");
  report("cold scan of 100,000 rows (fresh worker)", median(scans.own), median(scans.sahpool), "ms");
  const own = fs.statSync(path.join(REPO_ROOT, "pkg/wasm/edgesync_bg.wasm")).size;
  const both = fs.statSync(path.join(REPO_ROOT, "target/bench-browser/wasm/edgesync_bg.wasm")).size;
  console.log(`${"wasm size: with the SAH pool added".padEnd(58)} ${`+${f((both - own) / 1024, 1)} KiB`.padStart(16)}`);
  await p.close();
}

// 2. ------------------------------------------------------------------------------------
async function inserts() {
  console.log("\n2. durable single-row insert, page → worker → OPFS (await to resolved)");
  const payload = "x".repeat(100);
  const ours = await tab("ours");
  const oursLat = await ours.evaluate(
    async ({ n, payload }) => {
      const db = window.edgesync.createClient({ url: "file:insert.db" });
      await db.execute("create table if not exists t (id integer primary key, v text not null)");
      const time = async (count) => {
        const lat = [];
        for (let i = 0; i < count; i++) {
          const t0 = performance.now();
          await db.execute("insert into t (v) values (?)", [payload]);
          lat.push(performance.now() - t0);
        }
        return lat;
      };
      await time(50);
      const normal = await time(n);
      await db.execute("pragma synchronous = full");
      const full = await time(n);
      db.close();
      return { normal, full };
    },
    { n: N_INSERTS, payload },
  );
  await ours.close();
  const peerRun = async (tuned) => {
    const p = await tab("peer");
    const lat = await p.evaluate(
      async ({ n, payload, tuned }) => {
        const info = await window.peer.call({ op: "open", name: tuned ? "insert-tuned.db" : "insert.db", tuned });
        await window.peer.call({ op: "exec", sql: "create table if not exists t (id integer primary key, v text not null)" });
        const lat = [];
        for (let i = 0; i < n + 50; i++) {
          const t0 = performance.now();
          await window.peer.call({ op: "exec", sql: "insert into t (v) values (?)", bind: [payload] });
          if (i >= 50) lat.push(performance.now() - t0);
        }
        await window.peer.call({ op: "close" });
        return { lat, info };
      },
      { n: N_INSERTS, payload, tuned },
    );
    await p.close();
    return lat;
  };
  const peer = await peerRun(false);
  const tuned = await peerRun(true);
  console.log(`   peer journal: ${peer.info.journal}, synchronous=${peer.info.synchronous}; tuned: ${tuned.info.journal}, synchronous=${tuned.info.synchronous}`);
  report("insert p50 (edgesync WAL sync=NORMAL; peer defaults)", median(oursLat.normal), median(peer.lat), "ms", { goal: (r) => r <= 0.7, goalText: "≤ 0.7× peer p50" });
  report("insert p99", pct(oursLat.normal, 0.99), pct(peer.lat, 0.99), "ms");
  report("insert p50 (peer tuned: WAL, exclusive, sync=NORMAL)", median(oursLat.normal), median(tuned.lat), "ms");
  report("insert p99 (peer tuned)", pct(oursLat.normal, 0.99), pct(tuned.lat, 0.99), "ms");
  report("insert p50 (edgesync sync=FULL: flush per commit; peer defaults)", median(oursLat.full), median(peer.lat), "ms");
  report("insert p99 (edgesync sync=FULL; peer defaults)", pct(oursLat.full, 0.99), pct(peer.lat, 0.99), "ms");
}

// 3 + 4. --------------------------------------------------------------------------------
async function reads() {
  console.log("\n3./4. point reads (10,000-row table, random ids)");
  const N = 10_000;
  const fill = `with recursive c(i) as (select 1 union all select i + 1 from c where i < ${N}) insert or ignore into t (id, v) select i, printf('item %08d', i) from c`;
  const ours = await tab("ours");
  const o = await ours.evaluate(
    async ({ n, fill, max }) => {
      const db = window.edgesync.createClient({ url: "file:reads.db" });
      await db.execute("create table if not exists t (id integer primary key, v text not null)");
      await db.execute(fill);
      const id = (i) => 1 + ((i * 7919) % max);
      for (let i = 0; i < 200; i++) await db.execute("select v from t where id = ?", [id(i)]);
      let t0 = performance.now();
      for (let i = 0; i < n; i++) await db.execute("select v from t where id = ?", [id(i)]);
      const seq = n / ((performance.now() - t0) / 1000);
      t0 = performance.now();
      for (let i = 0; i < 4 * n; i += 256) await Promise.all(Array.from({ length: 256 }, (_, j) => db.execute("select v from t where id = ?", [id(i + j)])));
      const piped = (4 * n) / ((performance.now() - t0) / 1000);
      db.close();
      return { seq, piped };
    },
    { n: N_READS_PAGE, fill, max: N },
  );
  // Inside a worker: the application's own worker, the client in place.
  const inWorker = await ours.evaluate(
    async ({ n, max }) => {
      await new Promise((r) => setTimeout(r, 200));
      const w = window.driver("/bench/browser/app-worker.js");
      await w.call({ op: "open", name: "reads.db" });
      await w.call({ op: "reads", n: 20_000, max });
      const r = await w.call({ op: "reads", n, max });
      await w.call({ op: "close" });
      w.terminate();
      return n / (r.ms / 1000);
    },
    { n: N_READS_WORKER, max: N },
  );
  await ours.close();
  const peer = await tab("peer");
  const p = await peer.evaluate(
    async ({ n, nw, fill, max }) => {
      await window.peer.call({ op: "open", name: "reads.db" });
      await window.peer.call({ op: "exec", sql: "create table if not exists t (id integer primary key, v text not null)" });
      await window.peer.call({ op: "exec", sql: fill });
      const id = (i) => 1 + ((i * 7919) % max);
      const read = (i) => window.peer.call({ op: "exec", sql: "select v from t where id = ?", bind: [id(i)] });
      for (let i = 0; i < 200; i++) await read(i);
      let t0 = performance.now();
      for (let i = 0; i < n; i++) await read(i);
      const seq = n / ((performance.now() - t0) / 1000);
      t0 = performance.now();
      for (let i = 0; i < 4 * n; i += 256) await Promise.all(Array.from({ length: 256 }, (_, j) => read(i + j)));
      const piped = (4 * n) / ((performance.now() - t0) / 1000);
      await window.peer.call({ op: "reads", n: 20_000, max });
      const w = await window.peer.call({ op: "reads", n: nw, max });
      await window.peer.call({ op: "close" });
      return { seq, piped, inWorker: nw / (w.ms / 1000) };
    },
    { n: N_READS_PAGE, nw: N_READS_WORKER, fill, max: N },
  );
  await peer.close();
  report("point reads/s from the page, one at a time", o.seq, p.seq, "/s", { higher: true, goal: (r) => r >= 1.5, goalText: "≥ 1.5× peer" });
  report("point reads/s from the page, 256 in flight", o.piped, p.piped, "/s", { higher: true, goal: (r) => r >= 1.5, goalText: "≥ 1.5× peer" });
  report("point reads/s inside the worker (public API; peer: prepared stmt)", inWorker, p.inWorker, "/s", { higher: true, goal: (_r, x) => x >= 200_000, goalText: "≥ 200,000/s" });
}

// 5. ------------------------------------------------------------------------------------
async function openBig() {
  console.log(`\n5. open + first query of a ${N_ROWS.toLocaleString("en-US")}-row replica (browser relaunched each time)`);
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
  const times = { ours: [], peer: [], oursCreate: [] };
  for (let i = 0; i < OPEN_ROUNDS; i++) {
    for (const which of i % 2 ? ["peer", "ours"] : ["ours", "peer"]) {
      await browser.close();
      browser = await launchProfile(dir);
      const p = await tab(which, "?open=big.db");
      const r = await p.waitForFunction(() => window.openResult, null, { timeout: 60_000 }).then((h) => h.jsonValue());
      if (r.name !== `item ${String(N_ROWS / 2).padStart(8, "0")}`) throw new Error(`wrong row: ${r.name}`);
      times[which].push(r.fromStart);
      if (which === "ours") times.oursCreate.push(r.fromCreate);
      await p.close();
    }
  }
  report("open + first query, from the page's first script (median)", median(times.ours), median(times.peer), "ms", { goal: (r) => r <= 1, goalText: "≤ peer" });
  report("  edgesync from createClient() (package loaded)", median(times.oursCreate), median(times.peer), "ms");
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
