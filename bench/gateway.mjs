// Benchmark of the edge sync gateway (issue 17), one run, everything on loopback: a sqld
// primary (JWT auth on), the edge Worker in workerd (wrangler dev), embedded replicas in
// Node. Every figure is a median of ROUNDS runs.
//
//   1. push of 10,000 rows: a replica syncing through the Worker with a user's token
//      (rules checked per row) vs the same replica pushing straight to sqld with the
//      database token. Goal ≤ 1.3×. Peer: @libsql/client writing the rows as one batch.
//   2. pull of a 10,000-record log of which 10 % is the user's: a replica syncing
//      through the Worker vs a direct replica pulling a log of just those 1,000 records.
//      Goal ≤ 1.5×. Peer: a @libsql/client embedded replica (frame sync) of the 10,000,
//      which cannot leave out the 90 % that are not the user's.
//   3. text columns: the Worker merges each text edit into the cell's document (one more
//      read of the primary per push, the documents saved). Push of 2,000 new rows with a
//      text column, and 40 edit-then-sync() cycles of one 5,000-character document:
//      through the Worker vs straight to sqld, and (rows) vs the same column as `lww`
//      through the Worker, which has no document to merge.
//   4. reads answered at the edge (edge replica in a Durable Object vs the read cache vs
//      forwarding to sqld): see bench/edge.mjs, part `replica`.
//
//   node bench/gateway.mjs [push|pull|text]…     (scripts/bench.sh gateway builds first)
//   ROUNDS=3
import { createClient as edgesyncClient } from "edgesync";
import { createClient as libsqlClient } from "@libsql/client";
import crypto from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSqld } from "../tests/support/sqld.mjs";
import { startWorker } from "../tests/support/worker-env.mjs";
import { hs256Token } from "../tests/support/jwt.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const N = 10_000;
const parts = process.argv.slice(2).length ? process.argv.slice(2) : ["push", "pull", "text"];
const JWT_SECRET = crypto.randomBytes(32).toString("hex");
const SCHEMA = "(id integer primary key, owner text, device text, ts integer, temp real, note text)";
const TABLES = Array.from({ length: 4 * ROUNDS }, (_, i) => `t${i}`);
// Part 3's tables: per round, text rows (gateway, direct), lww rows (gateway), and a
// document (gateway, direct).
const TEXT_SCHEMA = "(id integer primary key, owner text, note text)";
const TEXT_TABLES = Array.from({ length: 5 * ROUNDS }, (_, i) => `x${i}`);
const textPolicy = (t) => (Number(t.slice(1)) % 5 === 2 ? {} : { note: "text" });
const RULES = Object.fromEntries(
  [...TABLES, ...TEXT_TABLES].map((t) => [t, { read: "owner = :sub", write: "owner = :sub" }]),
);

const pkgVersion = (name) => JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url))).version;
const row = (i, owner) => [i, owner, `dev-${String(i % 1000).padStart(4, "0")}`, 1_763_780_000_000 + i * 1000, 15 + ((i * 37) % 200) / 10 + 0.05, `reading ${i} ok`];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const fmt = (x, d = 1) => (x >= 10_000 ? Math.round(x).toLocaleString("en-US") : x.toFixed(d));
const now = () => performance.now();

function table(title, rows) {
  console.log(`\n${title}`);
  console.log(`${pad("metric", 58)} ${lpad("value", 10)} ${lpad("baseline", 10)} ${lpad("ratio", 7)}  goal`);
  for (const r of rows) {
    const ratio = r.base ? r.value / r.base : undefined;
    const ok = r.goal && ratio !== undefined ? (ratio <= r.goal ? " ✓" : " ✗") : "";
    console.log(
      `${pad(r.label, 58)} ${lpad(fmt(r.value), 10)} ${lpad(r.base ? fmt(r.base) : "", 10)} ${lpad(ratio ? ratio.toFixed(2) + "×" : "", 7)}  ${r.goal ? `≤ ${r.goal}×${ok}` : ""}`,
    );
  }
}

let db;
let db2; // the baseline's own server: its log holds only the user's records
let admin2;
let worker;
let admin; // creates and replicates the tables, straight to sqld
let tableNo = 0;

async function setup() {
  [db, db2] = await Promise.all([startSqld({ auth: true }), startSqld({ auth: true })]);
  admin2 = edgesyncClient({ url: ":memory:", syncUrl: db2.url, authToken: db2.tokens.rw });
  for (const t of TABLES) {
    await admin2.execute(`create table ${t} ${SCHEMA}`);
    admin2.replicate(t);
  }
  await admin2.sync();
  worker = await startWorker({
    name: "bench-gateway",
    logLevel: "warn",
    vars: { REGIONS: "", LIBSQL_URL: db.url, SYNC_RULES: RULES, SYNC_LIMITS: { recordsPerMinute: 1_000_000, maxRecords: 5000 } },
    secrets: { LIBSQL_AUTH_TOKEN: db.tokens.rw, JWT_SECRET },
  });
  admin = edgesyncClient({ url: ":memory:", syncUrl: db.url, authToken: db.tokens.rw });
  for (const t of TABLES) {
    await admin.execute(`create table ${t} ${SCHEMA}`);
    admin.replicate(t);
  }
  for (const t of TEXT_TABLES) {
    await admin.execute(`create table ${t} ${TEXT_SCHEMA}`);
    admin.replicate(t, textPolicy(t));
  }
  await admin.sync();
}

/** A replica of `t`, straight to sqld (`direct`) or through the Worker as `sub`. */
async function replica(t, how, sub = "alice", server = db) {
  const cfg = how === "direct" ? { syncUrl: server.url, authToken: server.tokens.rw } : { syncUrl: worker.base, authToken: hs256Token(JWT_SECRET, sub) };
  const r = edgesyncClient({ url: ":memory:", ...cfg });
  await r.execute(`create table ${t} ${SCHEMA}`);
  r.replicate(t);
  await r.sync(); // schema and (empty) bootstrap: not timed
  return r;
}

async function fill(r, t, n, ownerOf) {
  await r.batch(
    Array.from({ length: n }, (_, i) => ({ sql: `insert into ${t} values (?, ?, ?, ?, ?, ?)`, args: row(i, ownerOf(i)) })),
    "write",
  );
}

async function pushBench() {
  const direct = [];
  const gateway = [];
  const peer = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const how of round % 2 ? ["gateway", "direct"] : ["direct", "gateway"]) {
      const t = TABLES[tableNo++];
      const r = await replica(t, how);
      await fill(r, t, N, () => "alice");
      const t0 = now();
      const res = await r.sync();
      const ms = now() - t0;
      if (res.changesPushed !== N) throw new Error(`${how}: pushed ${res.changesPushed} of ${N}`);
      (how === "direct" ? direct : gateway).push(ms);
      r.close();
    }
    const c = libsqlClient({ url: db.url, authToken: db.tokens.rw });
    const t = `peer${round}`;
    await c.execute(`create table ${t} ${SCHEMA}`);
    const t0 = now();
    await c.batch(Array.from({ length: N }, (_, i) => ({ sql: `insert into ${t} values (?, ?, ?, ?, ?, ?)`, args: row(i, "alice") })), "write");
    peer.push(now() - t0);
    c.close();
  }
  const d = median(direct);
  table(`1. Push of ${N.toLocaleString("en-US")} rows (sync(), ms, median of ${ROUNDS})`, [
    { label: "edgesync replica → Worker (user token, rules per row)", value: median(gateway), base: d, goal: 1.3 },
    { label: "edgesync replica → sqld (database token)", value: d },
    { label: `peer: @libsql/client ${pkgVersion("@libsql/client")} batch(…, "write") → sqld`, value: median(peer), base: d },
  ]);
}

async function pullBench() {
  const filtered = [];
  const unfiltered = [];
  const peer = [];
  const SCOPE = N / 10;
  for (let round = 0; round < ROUNDS; round++) {
    // The log: 10,000 records, every tenth alice's; the baseline log: just those 1,000.
    const [t, base] = [TABLES[tableNo++], TABLES[tableNo++]];
    const viaGateway = await replica(t, "gateway", "alice");
    const direct = await replica(base, "direct", "alice", db2);
    const dir = mkdtempSync(join(tmpdir(), "edgesync-bench-libsql-"));
    const emb = libsqlClient({ url: `file:${join(dir, "r.db")}`, syncUrl: db.url, authToken: db.tokens.rw });
    await emb.sync();
    await fill(admin, t, N, (i) => (i % 10 === 0 ? "alice" : "bob"));
    await fill(admin2, base, SCOPE, () => "alice");
    await admin.sync();
    await admin2.sync();
    for (const [what, r, out] of round % 2 ? [["d", direct, unfiltered], ["g", viaGateway, filtered]] : [["g", viaGateway, filtered], ["d", direct, unfiltered]]) {
      const t0 = now();
      const res = await r.sync();
      out.push(now() - t0);
      if (res.changesApplied !== SCOPE) throw new Error(`${what}: applied ${res.changesApplied} of ${SCOPE}`);
    }
    const t0 = now();
    await emb.sync();
    peer.push(now() - t0);
    const n = Number((await viaGateway.execute(`select count(*) from ${t}`)).rows[0][0]);
    if (n !== SCOPE) throw new Error(`the gateway replica holds ${n} rows, not ${SCOPE}`);
    viaGateway.close();
    direct.close();
    emb.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const u = median(unfiltered);
  table(`2. Pull: ${N.toLocaleString("en-US")} new log records, ${SCOPE.toLocaleString("en-US")} of them the user's (sync(), ms, median of ${ROUNDS})`, [
    { label: "edgesync replica ← Worker (read rule over 10,000 records)", value: median(filtered), base: u, goal: 1.5 },
    { label: "edgesync replica ← sqld, a log of the 1,000 records only", value: u },
    { label: `peer: @libsql/client ${pkgVersion("@libsql/client")} embedded replica, all 10,000 rows`, value: median(peer), base: u },
  ]);
}

/** A replica of text table `t`. */
async function textReplica(t, how) {
  const cfg = how === "direct" ? { syncUrl: db.url, authToken: db.tokens.rw } : { syncUrl: worker.base, authToken: hs256Token(JWT_SECRET, "alice") };
  const r = edgesyncClient({ url: ":memory:", ...cfg });
  await r.execute(`create table ${t} ${TEXT_SCHEMA}`);
  r.replicate(t, textPolicy(t));
  await r.sync();
  return r;
}

async function textBench() {
  const ROWS = 2000;
  const EDITS = 40;
  const rows = { gateway: [], direct: [], lww: [] };
  const edits = { gateway: [], direct: [] };
  let x = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const [tg, td, tl, dg, dd] = TEXT_TABLES.slice(x, x + 5);
    x += 5;
    for (const [how, t, out] of [["gateway", tg, rows.gateway], ["direct", td, rows.direct], ["gateway", tl, rows.lww]]) {
      const r = await textReplica(t, how);
      await r.batch(Array.from({ length: ROWS }, (_, i) => ({ sql: `insert into ${t} values (?, 'alice', ?)`, args: [i, `note ${i}: all is well`] })), "write");
      const t0 = now();
      const res = await r.sync();
      out.push(now() - t0);
      if (res.changesPushed !== ROWS) throw new Error(`${how} ${t}: pushed ${res.changesPushed} of ${ROWS}`);
      r.close();
    }
    for (const [how, t, out] of [["gateway", dg, edits.gateway], ["direct", dd, edits.direct]]) {
      const r = await textReplica(t, how);
      await r.execute(`insert into ${t} values (1, 'alice', ?)`, ["lorem ipsum ".repeat(417)]);
      await r.sync();
      const per = [];
      for (let e = 0; e < EDITS; e++) {
        await r.execute(`update ${t} set note = substr(note, 1, ?) || ? || substr(note, ? + 1) where id = 1`, [e * 97, `edit ${e} `, e * 97]);
        const t0 = now();
        await r.sync();
        per.push(now() - t0);
      }
      out.push(median(per));
      if (how === "gateway") {
        const c = libsqlClient({ url: db.url, authToken: db.tokens.rw });
        const [[server]] = (await c.execute(`select note from ${t} where id = 1`)).rows.map((x) => [x[0]]);
        const [[mine]] = (await r.execute(`select note from ${t} where id = 1`)).rows.map((x) => [x[0]]);
        c.close();
        if (server !== mine) throw new Error("the server's text differs from the replica's");
      }
      r.close();
    }
  }
  const d = median(rows.direct);
  const l = median(rows.lww);
  table(`3a. Push of 2,000 new rows with a text column (sync(), ms, median of ${ROUNDS})`, [
    { label: "edgesync replica → Worker, text (documents merged)", value: median(rows.gateway), base: d },
    { label: "edgesync replica → sqld, text", value: d },
    { label: "edgesync replica → Worker, same column as lww", value: l, base: d },
    { label: "  text through the Worker vs lww through the Worker", value: median(rows.gateway), base: l },
  ]);
  const ed = median(edits.direct);
  table(`3b. Edit one 5,000-character text, then sync() (ms per sync, median of ${EDITS} × ${ROUNDS})`, [
    { label: "edgesync replica → Worker (document read, merged, saved)", value: median(edits.gateway), base: ed },
    { label: "edgesync replica → sqld", value: ed },
  ]);
}

await setup();
try {
  if (parts.includes("push")) await pushBench();
  if (parts.includes("pull")) await pullBench();
  if (parts.includes("text")) await textBench();
} finally {
  admin.close();
  admin2.close();
  await worker.stop();
  await Promise.all([db.stop(), db2.stop()]);
}
