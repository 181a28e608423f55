// The random fault soak (issue 13 §8), shared by tests/js/soak.test.mjs (a short run in
// CI) and scripts/soak.sh (as long as asked).
//
// One run, fully determined by its seed (the operations and the fault draws; how
// in-flight work interleaves also depends on timing):
//   - a real sqld, and one fault proxy per replica: drop before forwarding (offline,
//     drop), after (lose), truncate (cut), duplicate, delay, stall past the timeout
//     (a late commit), 500 (error), garbage;
//   - replicas in memory and in files, local and write-through;
//   - random operations, each one atomic batch touching every policy: a counter
//     increment, a set add or remove, a text append, an LWW write, a custom value
//     (resolver: max), an insert or delete of a row of its own, and a row in `ops`
//     naming the operation;
//   - syncs at random (not awaited: writes go on while they wait), file replicas
//     closed and reopened, sqld SIGKILLed and restarted.
// At the end the network heals, every replica syncs until nothing is pending, and:
//   - every replica equals the server, read by a plain Hrana client (fetch, /v2/pipeline);
//   - the server equals an exact oracle computed from the operations it committed
//     (`ops`): every acknowledged operation is there, no other than attempted ones, and
//     counters, sets, text, custom values and rows are exactly what those operations make.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "edgesync";
import { startSqld } from "./sqld.mjs";
import { startFaultProxy, mulberry32 } from "./fault-proxy.mjs";

const SCHEMA = [
  "create table if not exists acc (id integer primary key, n integer not null default 0, tags text not null default '[]', note text, body text not null default '', hi integer not null default 0)",
  "create table if not exists item (id text primary key, owner integer not null, v integer)",
  "create table if not exists ops (id text primary key, site integer not null)",
];
const ROWS = 4; // acc rows 1..ROWS
const TIMEOUT_MS = 600;
const POLICIES = { n: "counter", tags: "set", body: "text", hi: (local, remote) => (Number(local) >= Number(remote) ? local : remote) };

/** Replica kinds: memory or file, local or write-through. */
export const KINDS = [
  { file: false, writeMode: "local" },
  { file: true, writeMode: "local" },
  { file: false, writeMode: "remote" },
  { file: true, writeMode: "remote" },
];

/** A plain Hrana client: one POST to /v2/pipeline per query, rows as JS values. */
async function hranaRows(url, token, sql) {
  const res = await fetch(`${url}/v2/pipeline`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ requests: [{ type: "execute", stmt: { sql } }, { type: "close" }] }),
  });
  const body = await res.json();
  const r = body.results[0];
  if (r.type !== "ok") throw new Error(`hrana: ${JSON.stringify(r.error)}`);
  return r.response.result.rows.map((row) =>
    row.map((v) => (v.type === "null" ? null : v.type === "integer" ? Number(v.value) : v.type === "float" ? v.value : v.value)),
  );
}

const dump = async (db, table) => (await db.execute(`select * from ${table} order by 1`)).rows.map((r) => Array.from({ length: r.length }, (_, i) => (typeof r[i] === "bigint" ? Number(r[i]) : r[i])));

/**
 * Runs one soak. `ops`: operations in all; `faultRate`: the share of requests faulted;
 * `kills`: sqld SIGKILLs spread over the run. Resolves to a summary; throws (an
 * AssertionError naming the seed) when a replica, the server and the oracle disagree.
 */
export async function runSoak({ seed, ops = 400, replicas = KINDS, faultRate = 0.3, kills = 2, log = () => {} }) {
  const rand = mulberry32(seed);
  const pick = (arr) => arr[Math.floor(rand() * arr.length)];
  const sqld = await startSqld();
  const token = sqld.tokens.rw;
  const dir = mkdtempSync(join(tmpdir(), "edgesync-soak-"));
  const proxies = [];
  const reps = [];
  const stats = { acked: 0, failed: 0, syncs: 0, syncErrors: 0, reopens: 0, kills: 0, opsMs: 0, settleMs: 0, errors: {} };
  const unexpected = [];
  const count = (code) => (stats.errors[code] = (stats.errors[code] ?? 0) + 1);
  try {
    const faults = {
      offline: 0.15, drop: 0.05, lose: 0.2, cut: 0.15, duplicate: 0.1, delay: 0.1, stall: 0.05, error: 0.1, garbage: 0.1,
    };
    for (const k of Object.keys(faults)) faults[k] *= faultRate;
    for (let i = 0; i < replicas.length; i++) {
      const proxy = await startFaultProxy({ target: sqld.url });
      proxy.setFaults({ random: faults, seed: seed * 31 + i, delayMs: 50, stallMs: TIMEOUT_MS + 300 });
      proxies.push(proxy);
      const kind = replicas[i];
      const open = () =>
        createClient({
          url: kind.file ? `file:${join(dir, `r${i}.db`)}` : ":memory:",
          syncUrl: proxy.url,
          authToken: token,
          timeout: TIMEOUT_MS,
          writeMode: kind.writeMode,
        });
      const r = { i, kind, open, db: open(), syncing: new Set(), items: [] };
      reps.push(r);
    }
    // Schema and the first rows, with the network healthy.
    for (const p of proxies) p.setFaults("pass");
    for (const r of reps) await setup(r);
    await reps[0].db.batch(Array.from({ length: ROWS }, (_, k) => `insert into acc (id) values (${k + 1})`), "write");
    await untilSettled(reps, sqld, stats);
    for (let i = 0; i < proxies.length; i++) {
      proxies[i].setFaults({ random: faults, seed: seed * 31 + i, delayMs: 50, stallMs: TIMEOUT_MS + 300 });
    }

    const attempted = new Map(); // op id -> op
    const acked = new Set();
    const killAt = new Set(Array.from({ length: kills }, () => Math.floor(rand() * ops)));
    const opsStart = Date.now();
    for (let step = 0; step < ops; step++) {
      if (killAt.has(step)) {
        await sqld.kill();
        stats.kills++;
        await sleep(Math.floor(rand() * 200));
        await sqld.restart();
      }
      const r = pick(reps);
      const roll = rand();
      if (roll < 0.15) {
        const s = r.db.sync().then(
          () => stats.syncs++,
          (e) => {
            stats.syncErrors++;
            count(e.code);
            if (!e.retryable && !["HRANA_PROTO_ERROR", "CLIENT_CLOSED"].includes(e.code)) unexpected.push(`sync r${r.i}: ${e.code} ${e.message}`);
          },
        );
        r.syncing.add(s);
        s.finally(() => r.syncing.delete(s));
        continue;
      }
      if (roll < 0.17 && r.kind.file) {
        await Promise.allSettled([...r.syncing]);
        await r.db.close();
        r.db = r.open();
        // A write-through client sends its DDL to the server: faults may fail it.
        for (let attempt = 0; ; attempt++) {
          try {
            await setup(r);
            break;
          } catch (e) {
            if (!(e.retryable || e.code === "HRANA_PROTO_ERROR") || attempt > 50) throw e;
            count(e.code);
          }
        }
        stats.reopens++;
        continue;
      }
      const op = makeOp(rand, r, step);
      attempted.set(op.id, op);
      const run = r.db.batch(op.stmts, "write").then(
        () => {
          acked.add(op.id);
          stats.acked++;
          op.after?.();
        },
        (e) => {
          stats.failed++;
          count(e.code);
          if (r.kind.writeMode === "local" || !(e.retryable || e.code === "HRANA_PROTO_ERROR")) {
            unexpected.push(`op ${op.id} on r${r.i} (${r.kind.writeMode}): ${e.code} ${e.message}`);
          }
        },
      );
      // Some operations are left running while the next ones start (write-through
      // calls queue up on their replica; syncs overlap them).
      r.syncing.add(run);
      run.finally(() => r.syncing.delete(run));
      if (rand() < 0.6) await run;
    }
    stats.opsMs = Date.now() - opsStart;
    log(`seed ${seed}: ${ops} steps done in ${stats.opsMs} ms, healing`);
    for (const p of proxies) {
      p.setFaults("pass");
      await p.release();
    }
    if (!sqld.running()) await sqld.restart();
    const settleStart = Date.now();
    await untilSettled(reps, sqld, stats);
    stats.settleMs = Date.now() - settleStart;
    assert.deepEqual(unexpected, [], `seed ${seed}: unexpected errors`);
    await check(seed, reps, sqld, token, attempted, acked);
    return { seed, ...stats, attempted: attempted.size };
  } finally {
    for (const r of reps) await r.db.close();
    for (const p of proxies) await p.stop();
    await sqld.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function setup(r) {
  for (const s of SCHEMA) await r.db.execute(s);
  r.db.replicate("acc", POLICIES);
  r.db.replicate("item");
  r.db.replicate("ops");
}

/**
 * One atomic operation on replica `r`: it names itself in `ops`, adds to a counter,
 * adds (or removes one of its own earlier) set elements, appends a token to a text,
 * writes an LWW note and a custom value, and inserts a row of its own (or deletes one
 * it inserted and saw acknowledged).
 */
function makeOp(rand, r, step) {
  const id = `s${step}r${r.i}`;
  const row = 1 + Math.floor(rand() * ROWS);
  const delta = Math.floor(rand() * 21) - 10;
  const hi = Math.floor(rand() * 1000);
  const stmts = [
    { sql: "insert into ops (id, site) values (?, ?)", args: [id, r.i] },
    { sql: "update acc set n = n + ?, note = ?, body = body || ?, hi = max(hi, ?) where id = ?", args: [delta, id, `[${id}]`, hi, row] },
  ];
  const op = { id, row, delta, hi, add: null, remove: null, insert: null, del: null };
  const mine = r.items.filter((x) => x.acked);
  if (mine.length > 0 && rand() < 0.3) {
    const gone = mine[Math.floor(rand() * mine.length)];
    stmts.push({ sql: "delete from item where id = ?", args: [gone.id] });
    op.del = gone.id;
    op.after = () => (r.items = r.items.filter((x) => x !== gone));
  } else {
    const item = { id: `i${id}`, acked: false };
    stmts.push({ sql: "insert into item (id, owner, v) values (?, ?, ?)", args: [item.id, r.i, hi] });
    op.insert = item.id;
    r.items.push(item);
    op.after = () => (item.acked = true);
  }
  if (rand() < 0.25 && r.tagsSeen?.length) {
    const tag = r.tagsSeen.pop();
    stmts.push({ sql: "update acc set tags = (select json_group_array(value) from json_each(tags) where value <> ?) where id = ?", args: [tag.elem, tag.row] });
    op.remove = tag;
  } else {
    const elem = `t${id}`;
    stmts.push({ sql: "update acc set tags = json_insert(tags, '$[#]', ?) where id = ?", args: [elem, row] });
    op.add = { elem, row };
    const prev = op.after;
    op.after = () => {
      prev();
      (r.tagsSeen ??= []).push({ elem, row });
    };
  }
  op.stmts = stmts;
  return op;
}

/**
 * Syncs every replica (awaiting those in flight) until nothing is pending anywhere.
 * When it gives up, the error says what kept each replica busy in the last rounds.
 */
async function untilSettled(reps, sqld, stats) {
  const history = [];
  const start = Date.now();
  for (let round = 0; round < 60; round++) {
    let quiet = true;
    const why = [];
    for (const r of reps) {
      await Promise.allSettled([...r.syncing]);
      try {
        const res = await r.db.sync();
        if (res.changesPushed > 0 || res.changesApplied > 0) {
          quiet = false;
          why.push(`r${r.i} pushed ${res.changesPushed} applied ${res.changesApplied}`);
        }
      } catch (e) {
        quiet = false;
        why.push(`r${r.i} ${e.code}: ${e.message}`);
        stats.syncErrors++;
        if (!sqld.running()) {
          why.push(`sqld had exited (${sqld.readLog().split("\n").filter(Boolean).slice(-3).join(" | ").slice(-600)}); restarted`);
          await sqld.restart();
        }
        await sleep(50);
      }
      const st = r.db.status();
      if (st.pendingChanges > 0 || st.writesInDoubt > 0) {
        quiet = false;
        why.push(`r${r.i} pending ${st.pendingChanges} in doubt ${st.writesInDoubt}`);
      }
    }
    if (quiet && round > 0) return;
    history.push(`round ${round} (${Date.now() - start} ms): ${why.join("; ") || "quiet"}`);
  }
  throw new Error(`replicas did not settle after 60 rounds of syncs:\n${history.slice(0, 3).concat(["…"], history.slice(-5)).join("\n")}`);
}

async function check(seed, reps, sqld, token, attempted, acked) {
  const tables = ["acc", "item", "ops"];
  const server = {};
  for (const t of tables) server[t] = await hranaRows(sqld.url, token, `select * from ${t} order by 1`);
  for (const r of reps) {
    for (const t of tables) assert.deepEqual(await dump(r.db, t), server[t], `seed ${seed}: replica r${r.i} (${JSON.stringify(r.kind)}) table ${t} = server`);
  }
  // The oracle, from the operations the server committed.
  const committed = server.ops.map((row) => row[0]);
  for (const id of acked) assert.ok(committed.includes(id), `seed ${seed}: acknowledged op ${id} is on the server`);
  const ops = committed.map((id) => {
    assert.ok(attempted.has(id), `seed ${seed}: committed op ${id} was attempted`);
    return attempted.get(id);
  });
  const want = new Map();
  for (let id = 1; id <= ROWS; id++) want.set(id, { n: 0, tags: new Set(), tokens: [], hi: 0, notes: new Set([null]) });
  const items = new Map();
  for (const op of ops) {
    const w = want.get(op.row);
    w.n += op.delta;
    w.hi = Math.max(w.hi, op.hi);
    w.tokens.push(`[${op.id}]`);
    w.notes.add(op.id);
    if (op.add) want.get(op.add.row).tags.add(op.add.elem);
    if (op.insert) items.set(op.insert, op);
  }
  for (const op of ops) {
    if (op.remove) want.get(op.remove.row).tags.delete(op.remove.elem);
    if (op.del) items.delete(op.del);
  }
  for (const [id, n, tags, note, body, hi] of server.acc) {
    const w = want.get(id);
    assert.equal(n, w.n, `seed ${seed}: acc ${id} counter`);
    assert.deepEqual(new Set(JSON.parse(tags)), w.tags, `seed ${seed}: acc ${id} set`);
    assert.ok(w.notes.has(note), `seed ${seed}: acc ${id} note ${note} was written by a committed op`);
    assert.deepEqual((body.match(/\[s\d+r\d+\]/g) ?? []).sort(), w.tokens.sort(), `seed ${seed}: acc ${id} text has every committed token once`);
    if (hi !== w.hi) {
      const top = ops.filter((op) => op.row === id && op.hi > hi).map((op) => `${op.id} (hi ${op.hi}, ${acked.has(op.id) ? "acknowledged" : "not acknowledged"})`);
      assert.fail(`seed ${seed}: acc ${id} custom value ${hi}, want ${w.hi}: committed ops with more: ${top.join(", ")}; replicas: ${reps.map((r) => `r${r.i} ${JSON.stringify(r.kind)}`).join(", ")}`);
    }
  }
  assert.deepEqual(server.item.map((r) => r[0]).sort(), [...items.keys()].sort(), `seed ${seed}: item rows`);
}
