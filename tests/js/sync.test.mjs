// Embedded replicas (createClient({ url: ":memory:", syncUrl })) syncing through a real
// sqld on loopback: convergence under random concurrent edits and random offline
// periods, network faults injected by the fault proxy, sqld killed and restarted,
// status/metrics/events, write-through mode, background sync, and error codes.
//
// The random tests print their seed; rerun one with EDGESYNC_SEED=<seed>. (The op
// sequence is fully determined by the seed; how in-flight syncs interleave with it
// also depends on timing.)
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient, EdgesyncError } from "edgesync";
import { createClient as libsql } from "@libsql/client";
import { startSqld } from "../support/sqld.mjs";
import { mulberry32 } from "../support/fault-proxy.mjs";
import { dump, env, rowsOf, scalar, waitFor } from "../support/sync-env.mjs";

const unhandled = [];
process.on("unhandledRejection", (e) => unhandled.push(e));
after(() => assert.deepEqual(unhandled, [], "no unhandled promise rejections"));

// ---------------------------------------------------------------------------------
// helpers

/** A small seeded PRNG, () => float in [0, 1) (the fault proxy's own). */
const prng = mulberry32;

function seedFor(t) {
  const fromEnv = process.env.EDGESYNC_SEED;
  const seed = fromEnv !== undefined ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
  t.diagnostic(`seed ${seed} (rerun with EDGESYNC_SEED=${seed})`);
  return seed;
}

/** Rejects with an EdgesyncError carrying `code` (one of `code` when it is an array). */
async function rejectsWith(promise, code) {
  let err;
  await assert.rejects(promise, (e) => {
    err = e;
    assert.ok(e instanceof EdgesyncError, `an EdgesyncError, got ${e?.constructor?.name}: ${e}`);
    if (Array.isArray(code)) assert.ok(code.includes(e.code), `${e.code} in ${code}: ${e.message}`);
    else assert.equal(e.code, code, e.message);
    return true;
  });
  return err;
}

function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof EdgesyncError, `an EdgesyncError, got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

async function syncUntilOk(db, attempts = 20) {
  let last;
  for (let i = 0; i < attempts; i++) {
    try {
      return await db.sync();
    } catch (e) {
      assert.ok(e instanceof EdgesyncError, String(e));
      assert.ok(e.retryable, `a failed sync under network faults is retryable: ${e.code} ${e.message}`);
      last = e;
    }
  }
  throw last;
}

async function serverLogUnique(server) {
  const [[total, distinct]] = rowsOf(await server.execute("select count(*), count(distinct id) from _es_log"));
  assert.equal(Number(total), Number(distinct), "each record id is in the server log once");
  return Number(total);
}

// ---------------------------------------------------------------------------------
// convergence

const T_SQL = "create table t (id integer primary key, name text, qty integer not null default 0, tags text, note text)";
const ACC_SQL =
  "create table acc (id integer primary key, n integer not null default 0, tags text not null default '[]', note text not null default '')";

async function setupConvergence(db, text) {
  await db.execute(T_SQL);
  await db.execute(ACC_SQL);
  const note = text ? "text" : "lww";
  db.replicate("t", { qty: "counter", tags: "set", note });
  db.replicate("acc", { n: "counter", tags: "set", note });
}

const TOKEN = /\[[0-9]+:[0-9]+\]/g;

/**
 * 5 replicas (the last one in write-through mode) make random concurrent edits, go
 * offline and online at random, and sync at random (in the background: writes go on
 * while syncs wait on the network). `text`: the note columns use the text policy
 * (with an exact oracle: every inserted token once), else last-writer-wins.
 */
async function convergence(t, { text }) {
  const seed = seedFor(t);
  const rand = prng(seed);
  const pick = (arr) => arr[Math.floor(rand() * arr.length)];
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  const N = 5;
  const e = await env({ proxies: N });
  try {
    const reps = [];
    for (let i = 0; i < N; i++) {
      // The last replica writes through to the server (writeMode "remote").
      const remote = i === N - 1;
      const db = e.replica({ syncUrl: e.proxies[i].url, timeout: 3000, writeMode: remote ? "remote" : "local" });
      await setupConvergence(db, text);
      reps.push({ i, db, proxy: e.proxies[i], online: true, remote });
    }
    // acc: rows every replica knows, edited only in ways with an exact oracle:
    // counter deltas (sum), set adds (union), text inserts of unique tokens (each once).
    await reps[0].db.batch([1, 2, 3].map((id) => `insert into acc (id) values (${id})`), "write");
    for (const r of reps) await r.db.sync();
    const want = { n: new Map(), tags: new Map(), tokens: new Map() };
    for (const id of [1, 2, 3]) {
      want.n.set(id, 0);
      want.tags.set(id, new Set());
      want.tokens.set(id, []);
    }

    const inflight = [];
    const failures = [];
    const expectFailure = (r, err, what) => {
      // Offline (the proxy resets the connection before forwarding anything) is the
      // only failure expected; a write-through write that fails never happened.
      if (!(err instanceof EdgesyncError) || err.code !== "SERVER_UNREACHABLE" || !err.retryable) {
        failures.push(`${what} on replica ${r.i}: ${err?.code} ${err?.message}`);
      }
    };
    /** Runs a write; false when a write-through replica could not reach the server. */
    const write = async (r, stmt, mode) => {
      try {
        if (Array.isArray(stmt)) await r.db.batch(stmt, mode);
        else await r.db.execute(stmt);
        return true;
      } catch (err) {
        if (!r.remote) throw err;
        expectFailure(r, err, "a write-through write");
        if (r.online) failures.push(`a write-through write failed while replica ${r.i} was online`);
        return false;
      }
    };
    let tokenSeq = 0;
    const ops = 500;
    for (let step = 0; step < ops; step++) {
      const r = pick(reps);
      const db = r.db;
      const x = rand();
      if (x < 0.06) {
        r.online = !r.online;
        r.proxy.setFaults(r.online ? "pass" : "offline");
      } else if (x < 0.16) {
        // A sync in the background: local writes go on while it waits on the network.
        inflight.push(db.sync().catch((err) => expectFailure(r, err, `the sync of step ${step}`)));
      } else if (x < 0.22) {
        await sleep(int(0, 12));
      } else if (x < 0.32) {
        // acc counter delta
        const id = int(1, 3);
        const d = int(-5, 9);
        if (await write(r, { sql: "update acc set n = n + ? where id = ?", args: [d, id] })) want.n.set(id, want.n.get(id) + d);
      } else if (x < 0.4) {
        // acc set add, in one statement (a read-modify-write in JS could interleave
        // with a pull and legitimately remove what the pull just added).
        const id = int(1, 3);
        const el = pick(["a", "b", "c", "d", "e", "f", "g", "h"]) + int(0, 3);
        const sql = "update acc set tags = json_insert(tags, '$[#]', ?1) where id = ?2 and not exists (select 1 from json_each(acc.tags) where value = ?1)";
        // (When the element is already there, someone added it: acc never removes.)
        if (await write(r, { sql, args: [el, id] })) want.tags.get(id).add(el);
      } else if (x < 0.48) {
        // acc text insert of a unique token at a token boundary (first, after the
        // first token, or last), in one statement.
        const id = int(1, 3);
        const tok = `[${r.i}:${tokenSeq++}]`;
        const expr = pick([
          "?1 || note",
          "note || ?1",
          "substr(note, 1, instr(note, ']')) || ?1 || substr(note, instr(note, ']') + 1)",
        ]);
        if (await write(r, { sql: `update acc set note = ${expr} where id = ?2`, args: [tok, id] })) want.tokens.get(id).push(tok);
      } else {
        // t: anything goes; the oracle is convergence.
        const id = int(1, 10);
        const exists = (await scalar(db, "select count(*) from t where id = ?", [id])) === 1;
        const y = rand();
        if (!exists || y < 0.1) {
          const tags = JSON.stringify([pick(["x", "y", "z"]), pick(["x", "y", "w"])]);
          const note = rand() < 0.2 ? null : `note ${id} by ${r.i}`;
          await write(r, {
            sql: "insert into t (id, name, qty, tags, note) values (?, ?, ?, ?, ?) on conflict (id) do update set name = excluded.name",
            args: [id, `n${r.i}.${step}`, int(0, 20), tags, note],
          });
        } else if (y < 0.25) {
          await write(r, { sql: "delete from t where id = ?", args: [id] });
        } else if (y < 0.4) {
          await write(r, { sql: "update t set name = ? where id = ?", args: [`r${r.i}s${step}`, id] });
        } else if (y < 0.55) {
          await write(r, { sql: "update t set qty = qty + ? where id = ?", args: [int(-3, 7), id] });
        } else if (y < 0.7) {
          const cur = JSON.parse((await scalar(db, "select tags from t where id = ?", [id])) ?? "[]");
          const el = pick(["x", "y", "z", "w", "v"]);
          const next = cur.includes(el) ? cur.filter((v) => v !== el) : [...cur, el];
          await write(r, { sql: "update t set tags = ? where id = ?", args: [JSON.stringify(next), id] });
        } else if (y < 0.85) {
          // By code point: never split a surrogate pair.
          const cur = Array.from((await scalar(db, "select note from t where id = ?", [id])) ?? "");
          const at = int(0, cur.length);
          if (rand() < 0.6 || cur.length === 0) cur.splice(at, 0, pick(["ab", "Z", " hi ", "é", "🦀"]));
          else cur.splice(at, int(1, 3));
          await write(r, { sql: "update t set note = ? where id = ?", args: [cur.join(""), id] });
        } else if (y < 0.93) {
          // Several statements in one transaction, touching several rows.
          const ok = await write(
            r,
            [
              { sql: "update t set qty = qty + 1, name = ? where id <= ?", args: [`b${r.i}`, id] },
              { sql: "update acc set n = n + 1 where id = 1" },
            ],
            "write",
          );
          if (ok) want.n.set(1, want.n.get(1) + 1);
        } else {
          await write(r, "update t set qty = qty - 1 where qty > 10");
        }
      }
    }
    // Quiescence: everyone online, nothing in flight, then two full sync rounds.
    for (const r of reps) r.proxy.setFaults("pass");
    await Promise.all(inflight);
    assert.deepEqual(failures, [], `only SERVER_UNREACHABLE while offline (seed ${seed})`);
    for (let round = 0; round < 2; round++) for (const r of reps) await r.db.sync();

    const ref = await dump(e.server, "t");
    const refAcc = await dump(e.server, "acc");
    for (const r of reps) {
      assert.deepEqual(await dump(r.db, "t"), ref, `replica ${r.i} t equals the server's (seed ${seed})`);
      assert.deepEqual(await dump(r.db, "acc"), refAcc, `replica ${r.i} acc equals the server's (seed ${seed})`);
      assert.equal(r.db.status().pendingChanges, 0, `replica ${r.i} has nothing pending`);
    }
    // The exact oracles.
    for (const [id, n, tags, note] of refAcc) {
      assert.equal(n, want.n.get(id), `acc ${id}: the counter is the sum of every delta (seed ${seed})`);
      assert.deepEqual(JSON.parse(tags), [...want.tags.get(id)].sort(), `acc ${id}: the set is the union of the adds (seed ${seed})`);
      if (!text) continue;
      assert.deepEqual(
        [...(note.match(TOKEN) ?? [])].sort(),
        [...want.tokens.get(id)].sort(),
        `acc ${id}: every inserted token once (seed ${seed})`,
      );
      assert.equal((note.match(TOKEN) ?? []).join(""), note, `acc ${id}: nothing but whole tokens (seed ${seed}): ${note}`);
    }
    // Sets are stored sorted and distinct after sync.
    for (const [, , , tags] of ref) {
      if (tags === null) continue;
      const arr = JSON.parse(tags);
      assert.deepEqual(arr, [...new Set(arr)].sort(), `t.tags sorted and distinct: ${tags}`);
    }
    await serverLogUnique(e.server);
  } finally {
    await e.stop();
  }
}

test("random concurrent edits on 5 replicas (one write-through), random offline periods: converge (counters, sets, LWW)", (t) =>
  convergence(t, { text: false }));

test(
  "random concurrent edits on 5 replicas (one write-through), random offline periods: converge (with text columns)",
  (t) =>
  convergence(t, { text: true }));

test("writes made while a sync waits on the network are kept (counter, set, text)", async () => {
  const e = await env({ proxies: 1 });
  try {
    const a = e.replica({ syncUrl: e.proxies[0].url });
    const b = e.replica();
    for (const r of [a, b]) {
      await r.execute("create table c (id integer primary key, n integer not null default 0, note text not null default '')");
      await r.execute("create table st (id integer primary key, tags text not null default '[]')");
      r.replicate("c", { n: "counter", note: "text" });
      r.replicate("st", { tags: "set" });
    }
    await a.execute("insert into c (id, n, note) values (1, 0, 'A')");
    await a.execute(`insert into st (id, tags) values (1, '["a"]')`);
    await a.sync();
    await b.sync();
    // b edits concurrently and pushes.
    await b.execute("update c set n = n + 10, note = note || 'B' where id = 1");
    await b.execute(`update st set tags = '["a","b"]' where id = 1`);
    await b.sync();
    // a's sync pulls b's edits, slowly; a writes while it waits.
    e.proxies[0].setFaults({ kind: "delay", delayMs: 300 });
    const pending = a.sync();
    await sleep(60);
    assert.equal(a.status().syncing, true);
    await a.execute("update c set n = n + 1, note = note || 'X' where id = 1");
    await a.execute("update st set tags = json_insert(tags, '$[#]', 'x') where id = 1");
    await pending;
    e.proxies[0].setFaults("pass");
    // More writes after the pull was applied, then everyone syncs.
    await a.execute("update st set tags = json_insert(tags, '$[#]', 'z') where id = 1");
    await a.execute("update c set note = note || 'Z' where id = 1");
    for (let i = 0; i < 2; i++) for (const r of [a, b]) await r.sync();
    const server = { c: await dump(e.server, "c"), st: await dump(e.server, "st") };
    for (const [name, r] of [["a", a], ["b", b]]) {
      assert.deepEqual(await dump(r, "c"), server.c, `${name}'s c equals the server's`);
      assert.deepEqual(await dump(r, "st"), server.st, `${name}'s st equals the server's`);
    }
    const [[, n, note]] = server.c;
    assert.equal(n, 11, "10 from b + 1 from a");
    assert.deepEqual([...note].sort().join(""), "ABXZ", `every text edit once: ${note}`);
    assert.equal(server.st[0][1], '["a","b","x","z"]', "a's add of x did not remove b's concurrent b");
  } finally {
    await e.stop();
  }
});

test("a text edit that depends on another replica's edit is applied on a third replica", async () => {
  const e = await env();
  try {
    const [a, b, c] = [e.replica(), e.replica(), e.replica()];
    for (const r of [a, b, c]) {
      await r.execute("create table d (id integer primary key, body text)");
      r.replicate("d", { body: "text" });
    }
    await a.execute("insert into d values (1, 'hello')");
    for (const r of [a, b, c]) await r.sync();
    // `first` edits, `second` builds on that edit; a pulls both in one page. Whichever
    // site id sorts first, the result must be the same.
    for (const [first, second] of [
      [b, c],
      [c, b],
    ]) {
      await first.execute(`update d set body = body || ' ${first === b ? "B" : "C"}' where id = 1`);
      await first.sync();
      await second.sync();
      await second.execute(`update d set body = body || ' ${second === b ? "B" : "C"}' where id = 1`);
      await second.sync();
      await a.sync();
    }
    for (let i = 0; i < 2; i++) for (const r of [a, b, c]) await r.sync();
    const want = "hello B C C B";
    assert.equal(await scalar(e.server, "select body from d"), want);
    for (const [name, r] of [["a", a], ["b", b], ["c", c]]) assert.equal(await scalar(r, "select body from d"), want, name);
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------
// merge rules, deterministic

test("merge rules: LWW per column, counter deltas, add-wins sets, the delete rule, composite keys", async () => {
  const e = await env();
  try {
    const [a, b] = [e.replica(), e.replica()];
    for (const r of [a, b]) {
      await r.execute("create table item (id integer primary key, name text, color text, qty integer not null default 0, tags text)");
      await r.execute("create table kv (ns text not null, k integer not null, v text, primary key (ns, k))");
      r.replicate("item", { qty: "counter", tags: "set" });
      r.replicate("kv");
    }
    await a.batch(
      [1, 2, 3, 4, 5, 6].map((id) => ({ sql: "insert into item values (?, ?, 'grey', 10, ?)", args: [id, `item ${id}`, '["red","blue"]'] })),
      "write",
    );
    await a.execute("insert into kv values ('x', 1, 'a1'), ('x', 2, 'a2'), ('y', 1, 'a3')");
    await a.sync();
    await b.sync();
    assert.deepEqual(await dump(b, "item"), await dump(a, "item"));

    // Concurrent edits; `later` writes after `earlier` on the wall clock.
    const tick = () => sleep(3);
    // 1: per-column LWW; different columns both survive.
    await a.execute("update item set name = 'a name', color = 'red' where id = 1");
    await tick();
    await b.execute("update item set name = 'b name' where id = 1");
    // 2: counters: increments, decrements and assignments all count as deltas.
    await a.execute("update item set qty = qty + 5 where id = 2");
    await b.execute("update item set qty = qty - 3 where id = 2");
    await a.execute("update item set qty = 20 where id = 3"); // +10
    await b.execute("update item set qty = 20 where id = 3"); // +10
    // 3: sets: a removes red; b removes red and adds it back (a new add): add wins.
    //    a adds green, b adds green too: one green.
    await a.execute(`update item set tags = '["blue","green"]' where id = 2`);
    await b.execute(`update item set tags = '["blue"]' where id = 2`);
    await b.execute(`update item set tags = '["blue","red","green"]' where id = 2`);
    // 4: a delete and a later concurrent update: the update does not resurrect.
    await a.execute("delete from item where id = 4");
    await tick();
    await b.execute("update item set name = 'late update', qty = qty + 1 where id = 4");
    // 5: a delete, then a later re-insert elsewhere: the newer insert wins.
    await a.execute("delete from item where id = 5");
    await tick();
    await b.batch(["delete from item where id = 5", "insert into item (id, name, qty, tags) values (5, 'reborn', 1, '[\"new\"]')"], "write");
    // 6: a re-insert, then a later delete elsewhere: the newer delete wins.
    await a.batch(["delete from item where id = 6", "insert into item (id, name) values (6, 'a again')"], "write");
    await tick();
    await b.execute("delete from item where id = 6");
    // Composite keys: updates, a key change (delete + insert) and a delete.
    await a.execute("update kv set v = 'a1*' where ns = 'x' and k = 1");
    await b.execute("update kv set k = 3 where ns = 'x' and k = 2");
    await b.execute("delete from kv where ns = 'y'");
    await b.execute("insert into kv values ('z', 9, 'b9')");

    for (let i = 0; i < 2; i++) for (const r of [a, b]) await r.sync();
    const want = await dump(e.server, "item");
    assert.deepEqual(await dump(a, "item"), want);
    assert.deepEqual(await dump(b, "item"), want);
    const byId = Object.fromEntries(want.map((r) => [r[0], r]));
    assert.deepEqual(byId[1], [1, "b name", "red", 10, '["blue","red"]'], "LWW per column");
    assert.deepEqual(byId[2].slice(3), [12, '["blue","green","red"]'], "10 + 5 - 3; red re-added wins, one green");
    assert.equal(byId[3][3], 30, "two assignments to 20 are two +10 deltas");
    assert.equal(byId[4], undefined, "an update does not resurrect a deleted row");
    assert.deepEqual(byId[5], [5, "reborn", null, 1, '["new"]'], "the newer insert wins, with the values it inserted");
    assert.equal(byId[6], undefined, "the newer delete wins");
    const kv = await dump(e.server, "kv", "ns, k");
    assert.deepEqual(kv, [["x", 1, "a1*"], ["x", 3, "a2"], ["z", 9, "b9"]]);
    assert.deepEqual(await dump(a, "kv", "ns, k"), kv);
    assert.deepEqual(await dump(b, "kv", "ns, k"), kv);
  } finally {
    await e.stop();
  }
});

test("every SQLite value type syncs exactly, by pull and by bootstrap", async () => {
  const e = await env();
  try {
    const schema = async (r) => {
      await r.execute("create table v (id integer primary key, x, t text, r real, i integer, bl blob)");
      r.replicate("v");
    };
    const [a, b] = [e.replica({ intMode: "bigint" }), e.replica({ intMode: "bigint" })];
    await schema(a);
    await schema(b);
    await b.sync(); // b gets a's rows by pull, c (below) by bootstrap
    const vals = [
      null, 0, -42, 9007199254740993n, 9223372036854775807n, -9223372036854775808n, 0.1 + 0.2, 1e308, -5e-324, 2.5,
      "", "héllo ✓ 🦀 e\u0301 \u0000nul", new Uint8Array([]), new Uint8Array([0, 255, 1]),
      // Text that looks like the record encoding's own JSON.
      "[1,2]", '{"t":"x","u":""}', '{"b":"00"}', '{"r":"inf"}', "inf", "null",
    ];
    for (const [i, v] of vals.entries()) await a.execute({ sql: "insert into v (id, x) values (?, ?)", args: [i + 1, v] });
    await a.execute("insert into v values (100, 1, 'txt', 3, 4, x'0102')");
    await a.execute("insert into v values (101, 1, 5, '6.5', '7', 'blobtext')"); // affinity conversions
    await a.execute("insert into v values (102, 1, 5.5, 'abc', 12.0, 3)");
    await a.execute("update v set x = x'ff00' where id = 1");
    await a.sync();
    await b.sync();
    const c = e.replica({ intMode: "bigint" });
    await schema(c);
    await c.sync();
    const q = "select id, x, typeof(x), t, typeof(t), r, typeof(r), i, typeof(i), bl, typeof(bl) from v order by id";
    const want = rowsOf(await a.execute(q));
    assert.equal(want.length, vals.length + 3);
    assert.deepEqual(rowsOf(await b.execute(q)), want, "pulled");
    assert.deepEqual(rowsOf(await c.execute(q)), want, "bootstrapped");
    const server = libsql({ url: e.sqld.url, authToken: e.sqld.tokens.rw, intMode: "bigint" });
    try {
      const rows = rowsOf(await server.execute(q)).map((r) => r.map((v) => (v instanceof ArrayBuffer ? new Uint8Array(v) : v)));
      assert.deepEqual(rows, want, "the server's plain rows");
    } finally {
      server.close();
    }
  } finally {
    await e.stop();
  }
});

test("±Infinity in a REAL column survives bootstrap", async () => {
  const e = await env();
  try {
    const schema = async (r) => {
      await r.execute("create table v (id integer primary key, x real)");
      r.replicate("v");
    };
    const a = e.replica();
    await schema(a);
    await a.execute("insert into v values (1, 9e999), (2, -9e999), (3, 1.5)");
    await a.sync();
    const q = "select id, typeof(x), x > 1e308, x < -1e308 from v order by id";
    const want = [[1, "real", 1, 0], [2, "real", 0, 1], [3, "real", 0, 0]];
    assert.deepEqual(rowsOf(await a.execute(q)), want);
    assert.deepEqual(rowsOf(await e.server.execute(q)), want, "the server has them");
    const c = e.replica();
    await schema(c);
    await c.sync();
    assert.deepEqual(rowsOf(await c.execute(q)), want, "a replica that bootstraps has them");
  } finally {
    await e.stop();
  }
});

test("clock drift: a far-future record is reported as CLOCK_DRIFT, and replicas still converge", async () => {
  const e = await env();
  const realNow = Date.now;
  try {
    const a = e.replica({ maxDriftMs: 10_000 });
    const b = e.replica();
    for (const r of [a, b]) {
      await r.execute("create table t (id integer primary key, v text)");
      r.replicate("t");
    }
    const errors = [];
    a.on("sync:error", (d) => errors.push(d));
    await a.sync();
    await b.sync();
    // b's clock runs two minutes ahead while it writes.
    Date.now = () => realNow() + 120_000;
    try {
      await b.execute("insert into t values (1, 'from the future')");
    } finally {
      Date.now = realNow;
    }
    await b.sync();
    const res = await a.sync();
    assert.equal(res.changesApplied, 1, "the record is applied anyway");
    assert.deepEqual(
      errors.map((d) => [d.code, d.retryable]),
      [["CLOCK_DRIFT", false]],
    );
    assert.equal(await scalar(a, "select v from t where id = 1"), "from the future");
    // a edits the row with its own (earlier) clock; whatever wins, everyone agrees.
    await a.execute("update t set v = 'edited by a' where id = 1");
    await a.execute("insert into t values (2, 'now')");
    for (let i = 0; i < 2; i++) for (const r of [a, b]) await r.sync();
    const want = await dump(e.server, "t");
    assert.equal(want.length, 2);
    assert.deepEqual(await dump(a, "t"), want, "a agrees with the server");
    assert.deepEqual(await dump(b, "t"), want, "b agrees with the server");
  } finally {
    Date.now = realNow;
    await e.stop();
  }
});

test("concurrent sync() calls share runs and all resolve", async () => {
  const e = await env();
  try {
    const a = e.replica();
    await a.execute("create table t (id integer primary key, v text)");
    a.replicate("t");
    await a.execute("insert into t values (1, 'x')");
    const runs = [a.sync(), a.sync(), a.sync()];
    await a.execute("insert into t values (2, 'y')");
    const results = await Promise.all(runs);
    assert.equal(results.reduce((n, r) => n + r.changesPushed, 0), 2, "each change pushed once");
    assert.equal(a.status().pendingChanges, 0);
    assert.equal(await scalar(e.server, "select count(*) from t"), 2);
    await serverLogUnique(e.server);
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------
// fault injection

const LEDGER_SQL = "create table ledger (id text primary key, site integer not null, v integer)";
const CTR_SQL = "create table ctr (id integer primary key, n integer not null default 0, tags text not null default '[]')";

async function setupLedger(db) {
  await db.execute(LEDGER_SQL);
  await db.execute(CTR_SQL);
  db.replicate("ledger");
  db.replicate("ctr", { n: "counter", tags: "set" });
}

test("each fault kind on push and on pull: nothing lost, nothing twice", async () => {
  const e = await env({ proxies: 1 });
  const proxy = e.proxies[0];
  try {
    const a = e.replica({ syncUrl: proxy.url, timeout: 1000 });
    await setupLedger(a);
    await a.execute("insert into ctr (id) values (1)");
    await a.sync();
    let rows = 0;
    let n = 0;
    const tags = new Set();
    const cases = [];
    for (const kind of ["cut", "lose", "duplicate", "drop", "delay", "offline"]) {
      cases.push({ kind, next: [kind], what: "push" });
      cases.push({ kind, next: ["pass", kind], what: "pull" });
    }
    cases.push({ kind: "mix", next: ["lose", "cut", "duplicate", "lose", "delay", "drop", "duplicate"], what: "push, repeatedly" });
    for (const [k, c] of cases.entries()) {
      for (let j = 0; j < 3; j++) {
        await a.execute({ sql: "insert into ledger values (?, 0, ?)", args: [`${k}.${j}`, j] });
        rows++;
      }
      await a.execute({ sql: "update ctr set n = n + ?, tags = json_insert(tags, '$[#]', ?) where id = 1", args: [k + 1, `t${k}`] });
      n += k + 1;
      tags.add(`t${k}`);
      proxy.setFaults({ next: c.next, delayMs: 200 });
      const failsFirst = ["cut", "lose", "drop", "offline", "mix"].includes(c.kind);
      if (failsFirst) {
        const err = await rejectsWith(a.sync(), ["SERVER_UNREACHABLE", "TIMEOUT"]);
        assert.equal(err.retryable, true, `${c.kind} on ${c.what}: retryable`);
        const st = a.status();
        assert.equal(st.online, false);
        assert.ok(st.retryCount >= 1);
        if (c.what !== "pull") assert.ok(st.pendingChanges > 0, `${c.kind} on ${c.what}: the changes are still pending`);
      }
      await syncUntilOk(a);
      assert.equal(a.status().pendingChanges, 0, `${c.kind} on ${c.what}: nothing pending`);
      assert.equal(a.status().retryCount, 0);
      assert.equal(await scalar(e.server, "select count(*) from ledger"), rows, `${c.kind} on ${c.what}: rows`);
      assert.equal(await scalar(e.server, "select n from ctr where id = 1"), n, `${c.kind} on ${c.what}: counter`);
      assert.equal(await scalar(e.server, "select tags from ctr where id = 1"), JSON.stringify([...tags].sort()), `${c.kind}: set`);
      await serverLogUnique(e.server);
    }
    const log = proxy.stats().log;
    for (const kind of ["cut", "lose", "duplicate", "drop", "delay", "offline"]) assert.ok(log.includes(kind), `${kind} was injected`);
    // A fresh replica sees exactly the server's state.
    const b = e.replica();
    await setupLedger(b);
    await b.sync();
    assert.deepEqual(await dump(b, "ledger"), await dump(e.server, "ledger"));
    assert.deepEqual(await dump(b, "ctr"), await dump(e.server, "ctr"));
    assert.deepEqual(await dump(a, "ctr"), await dump(e.server, "ctr"));
    assert.equal((await dump(a, "ledger")).length, rows);
  } finally {
    await e.stop();
  }
});

async function faultMix(t, { custom }) {
  const seed = seedFor(t);
  const rand = prng(seed);
  const e = await env({ proxies: 3 });
  try {
    const reps = [];
    for (let i = 0; i < 3; i++) {
      // Small chunks: a sync is several batches, and a fault can hit any of them.
      const db = e.replica({ syncUrl: e.proxies[i].url, timeout: 600, pushChunk: 4, pullChunk: 6 });
      await setupLedger(db);
      // Optionally a custom column too: sales resolved by the delta rule, retried
      // through faults (the stock never nears 0, so every sale must count once).
      await db.execute("create table stock (id integer primary key, n integer not null)");
      db.replicate("stock", custom ? { n: (local, remote, base) => Math.max(0, remote + (local - (base ?? 0))) } : {});
      reps.push(db);
    }
    await reps[0].batch(["insert into ctr (id) values (1)", "insert into ctr (id) values (2)", "insert into stock values (1, 100000)"], "write");
    for (const db of reps) await db.sync();
    for (const [i, p] of e.proxies.entries()) {
      p.setFaults({ random: { cut: 0.12, lose: 0.12, duplicate: 0.12, drop: 0.03, delay: 0.1, offline: 0.08 }, seed: seed + i, delayMs: 50 });
    }
    const want = { rows: 0, n: [0, 0, 0], tags: [null, new Set(), new Set()], stock: 100000 };
    const plans = reps.map((_, i) => {
      const steps = [];
      for (let k = 0; k < 14; k++) {
        steps.push({ rows: 1 + Math.floor(rand() * 4), id: 1 + Math.floor(rand() * 2), d: Math.floor(rand() * 21) - 5, tag: `s${i}k${k % 5}` });
      }
      return steps;
    });
    const codes = [];
    await Promise.all(
      reps.map(async (db, i) => {
        for (const [k, s] of plans[i].entries()) {
          const stmts = [];
          for (let j = 0; j < s.rows; j++) stmts.push({ sql: "insert into ledger values (?, ?, ?)", args: [`${i}.${k}.${j}`, i, j] });
          stmts.push({ sql: "update ctr set n = n + ? where id = ?", args: [s.d, s.id] });
          stmts.push({
            sql: "update ctr set tags = json_insert(tags, '$[#]', ?1) where id = ?2 and not exists (select 1 from json_each(ctr.tags) where value = ?1)",
            args: [s.tag, s.id],
          });
          if (custom) stmts.push({ sql: "update stock set n = n - ? where id = 1", args: [s.rows] });
          await db.batch(stmts, "write");
          if (custom) want.stock -= s.rows;
          want.rows += s.rows;
          want.n[s.id] += s.d;
          want.tags[s.id].add(s.tag);
          try {
            await db.sync();
          } catch (err) {
            assert.ok(err instanceof EdgesyncError && err.retryable, `retryable: ${err}`);
            codes.push(err.code);
          }
        }
      }),
    );
    for (const p of e.proxies) p.setFaults("pass");
    for (let round = 0; round < 2; round++) for (const db of reps) await db.sync();
    assert.ok(codes.length > 0, "some syncs failed");
    for (const c of codes) assert.ok(["SERVER_UNREACHABLE", "TIMEOUT"].includes(c), c);
    const ref = { ledger: await dump(e.server, "ledger"), ctr: await dump(e.server, "ctr"), stock: await dump(e.server, "stock") };
    assert.deepEqual(ref.stock, [[1, want.stock]], `every sale once through the custom rule (seed ${seed})`);
    assert.equal(ref.ledger.length, want.rows, `every row once (seed ${seed})`);
    for (const [i, db] of reps.entries()) {
      assert.deepEqual(await dump(db, "ledger"), ref.ledger, `replica ${i} ledger (seed ${seed})`);
      assert.deepEqual(await dump(db, "ctr"), ref.ctr, `replica ${i} ctr (seed ${seed})`);
      assert.deepEqual(await dump(db, "stock"), ref.stock, `replica ${i} stock (seed ${seed})`);
      assert.equal(db.status().pendingChanges, 0);
    }
    for (const [id, n, tags] of ref.ctr) {
      assert.equal(n, want.n[id], `ctr ${id}: every delta once (seed ${seed})`);
      assert.deepEqual(JSON.parse(tags), [...want.tags[id]].sort(), `ctr ${id}: every add (seed ${seed})`);
    }
    await serverLogUnique(e.server);
    const stats = e.proxies.map((p) => p.stats());
    assert.ok(stats.some((s) => s.cut + s.lose + s.duplicate > 0), "faults were injected");
  } finally {
    await e.stop();
  }
}

test("3 replicas under a random mix of faults: exact totals once the network heals", (t) => faultMix(t, { custom: false }));

test(
  "3 replicas under a random mix of faults, with a custom column: every sale once",
  (t) => faultMix(t, { custom: true }),
);

test("a custom-column push whose response was lost is not applied twice", async () => {
  const e = await env({ proxies: 1 });
  try {
    const rule = (local, remote, base) => Math.max(0, remote + (local - (base ?? 0)));
    const a = e.replica({ syncUrl: e.proxies[0].url, timeout: 1000 });
    const b = e.replica();
    for (const r of [a, b]) {
      await r.execute("create table stock (sku text primary key, n integer not null)");
      r.replicate("stock", { n: rule });
    }
    await a.execute("insert into stock values ('w', 100)");
    await a.sync();
    await b.sync();
    await a.execute("update stock set n = n - 1 where sku = 'w'");
    e.proxies[0].setFaults({ next: ["lose"] });
    await rejectsWith(a.sync(), "SERVER_UNREACHABLE"); // the server committed 99
    await b.sync();
    await b.execute("update stock set n = n - 2 where sku = 'w'");
    await b.sync(); // 97, against a's (committed) version
    await a.sync(); // a retries its sale of 1: it is already in
    await b.sync();
    for (const db of [e.server, a, b]) assert.equal(await scalar(db, "select n from stock"), 97, "100 - 1 - 2");
  } finally {
    await e.stop();
  }
});

test("sqld killed and restarted mid-traffic: nothing lost, nothing twice", async () => {
  const e = await env();
  try {
    const reps = [];
    for (let i = 0; i < 3; i++) {
      const db = e.replica({ timeout: 1500 });
      await setupLedger(db);
      reps.push(db);
    }
    await reps[0].execute("insert into ctr (id) values (1)");
    for (const db of reps) await db.sync();
    let rows = 0;
    let n = 0;
    const codes = [];
    let ok = 0;
    let stop = false;
    let restarted = false;
    const writers = reps.map(async (db, i) => {
      for (let k = 0; !stop || k < 5; k++) {
        await db.batch(
          [
            { sql: "insert into ledger values (?, ?, ?)", args: [`${i}.${k}`, i, k] },
            { sql: "update ctr set n = n + ? where id = 1", args: [k + 1] },
          ],
          "write",
        );
        rows++;
        n += k + 1;
        try {
          await db.sync();
          if (restarted) ok++;
        } catch (err) {
          assert.ok(err instanceof EdgesyncError && err.retryable, `retryable: ${err}`);
          codes.push(err.code);
        }
        await sleep(5);
        if (k > 400) break;
      }
    });
    await sleep(150);
    await e.sqld.kill();
    await sleep(300);
    await e.sqld.restart();
    restarted = true;
    await sleep(150);
    stop = true;
    await Promise.all(writers);
    for (let round = 0; round < 2; round++) for (const db of reps) await db.sync();
    assert.ok(codes.includes("SERVER_UNREACHABLE"), `syncs failed while sqld was down: ${codes}`);
    assert.ok(ok > 0, "syncs succeeded after the restart");
    assert.equal(await scalar(e.server, "select count(*) from ledger"), rows, "every row once");
    assert.equal(await scalar(e.server, "select n from ctr where id = 1"), n, "every increment once");
    await serverLogUnique(e.server);
    const ref = await dump(e.server, "ledger");
    for (const db of reps) {
      assert.deepEqual(await dump(db, "ledger"), ref);
      assert.equal(await scalar(db, "select n from ctr where id = 1"), n);
      assert.equal(db.status().pendingChanges, 0);
      assert.equal(db.status().retryCount, 0);
    }
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------
// status, metrics, events, sync log

/** Checks Prometheus text exposition format 0.0.4; returns { name{labels}: value }. */
function parsePrometheus(text) {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const help = new Set();
  const type = new Map();
  const samples = {};
  const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const labels = `\\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*")*)?\\}`;
  const value = "(?:NaN|[+-]Inf|[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)";
  const sample = new RegExp(`^(${name})(${labels})? (${value})$`);
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.+)$/.exec(line);
      assert.ok(m, `comment line: ${line}`);
      if (m[1] === "HELP") help.add(m[2]);
      else {
        assert.ok(["counter", "gauge", "summary", "histogram", "untyped"].includes(m[3]), line);
        assert.ok(!type.has(m[2]), `one TYPE per metric: ${line}`);
        type.set(m[2], m[3]);
      }
      continue;
    }
    const m = sample.exec(line);
    assert.ok(m, `sample line \`name{labels} value\`: ${JSON.stringify(line)}`);
    const family = type.has(m[1]) ? m[1] : m[1].replace(/_(sum|count|bucket)$/, "");
    assert.ok(type.has(family), `TYPE before ${line}`);
    assert.ok(help.has(family), `HELP before ${line}`);
    if (type.get(family) === "counter") assert.ok(Number(m[3]) >= 0, line);
    samples[m[1] + (m[2] ?? "")] = Number(m[3]);
  }
  return samples;
}

test("status, metrics, metricsText, events and the sync log follow what happened", async () => {
  const e = await env({ proxies: 1 });
  const proxy = e.proxies[0];
  try {
    const a = e.replica({ syncUrl: proxy.url, timeout: 1000 });
    const b = e.replica();
    const resolver = (local, remote, base) => Math.max(0, remote + (local - (base ?? 0)));
    for (const r of [a, b]) {
      await r.execute("create table inv (sku text primary key, stock integer not null, label text)");
      r.replicate("inv", { stock: resolver });
    }
    const events = { completed: [], error: [], conflict: [] };
    a.on("sync:completed", (d) => events.completed.push(d));
    a.on("sync:error", (d) => events.error.push(d));
    const offConflict = a.on("conflict", (d) => events.conflict.push(d));
    const bConflicts = [];
    b.on("conflict", (d) => bConflicts.push(d));
    a.on("sync:completed", () => {
      throw new Error("a listener that throws does not break syncing");
    });

    let st = a.status();
    assert.deepEqual(
      { ...st },
      { pendingChanges: 0, lastPush: null, lastPull: null, lagMs: 0, retryCount: 0, online: st.online, cursor: 0, nextSyncInMs: 0, syncing: false },
    );
    assert.match(a.siteId, /^[0-9a-f]{16}$/);
    assert.notEqual(a.siteId, b.siteId);

    await b.sync(); // b bootstraps now (empty), so a's rows reach it as pulled changes
    await a.batch(
      ["insert into inv values ('w', 10, 'widget')", "insert into inv values ('g', 5, 'gadget')", "insert into inv values ('h', 1, 'hook')"],
      "write",
    );
    await sleep(20);
    st = a.status();
    assert.equal(st.pendingChanges, 3, "three captured writes");
    assert.ok(st.lagMs >= 15 && st.lagMs < 5000, `lag ${st.lagMs}`);
    const r1 = await a.sync();
    // Change records: at least one per written row (a custom column adds its own).
    assert.ok(r1.changesPushed >= 3, `pushed ${r1.changesPushed}`);
    assert.equal(r1.changesApplied, 0);
    assert.equal(typeof r1.duration, "number");
    assert.equal(events.completed.length, 1);
    assert.deepEqual(events.completed[0], r1);
    st = a.status();
    assert.equal(st.pendingChanges, 0);
    assert.equal(st.lagMs, 0);
    assert.equal(st.online, true);
    assert.equal(st.lastPush.ok, true);
    assert.equal(st.lastPull.ok, true);
    assert.equal(st.lastPush.error, null);
    assert.ok(Math.abs(st.lastPush.at - Date.now()) < 5000);
    assert.ok(st.cursor >= 3, `cursor ${st.cursor}`);
    const r2 = await b.sync();
    assert.equal(r2.changesPushed, 0);
    assert.equal(r2.changesApplied, r1.changesPushed, "b applies what a pushed");
    assert.equal(b.status().cursor, st.cursor);

    // Offline: every attempt fails, the retry count grows, changes wait.
    proxy.setFaults("offline");
    await a.execute("update inv set label = 'offline edit' where sku = 'g'");
    for (let i = 1; i <= 3; i++) {
      await rejectsWith(a.sync(), "SERVER_UNREACHABLE");
      st = a.status();
      assert.equal(st.retryCount, i);
      assert.equal(st.online, false);
      assert.equal(st.pendingChanges, 1);
      assert.equal(st.lastPush.ok, false);
      assert.equal(st.lastPush.error, "SERVER_UNREACHABLE");
      assert.equal(st.lastPull.ok, false);
      const cap = 500 * 2 ** (i - 1);
      assert.ok(st.nextSyncInMs >= cap / 2 && st.nextSyncInMs <= cap, `backoff ${st.nextSyncInMs} after ${i} failures`);
    }
    assert.equal(events.error.length, 3);
    for (const d of events.error) {
      assert.equal(d.code, "SERVER_UNREACHABLE");
      assert.equal(d.retryable, true);
      assert.equal(typeof d.message, "string");
    }
    let m = a.metrics();
    assert.equal(m.syncs, 4);
    assert.equal(m.failures, 3);
    assert.equal(m.successRate, 0.25);
    let prom = parsePrometheus(a.metricsText());
    assert.equal(prom['edgesync_syncs_total{outcome="ok"}'], 1);
    assert.equal(prom['edgesync_syncs_total{outcome="error"}'], 3);
    assert.equal(prom.edgesync_sync_retries, 3);
    assert.equal(prom.edgesync_online, 0);
    assert.equal(prom.edgesync_pending_changes, 1);
    assert.ok(prom.edgesync_sync_lag_seconds > 0);

    // Back online.
    proxy.setFaults("pass");
    const r3 = await a.sync();
    assert.equal(r3.changesPushed, 1, "the label edit");
    st = a.status();
    assert.equal(st.retryCount, 0);
    assert.equal(st.online, true);
    assert.equal(st.nextSyncInMs, 0);
    assert.equal(st.pendingChanges, 0);

    // A sync in flight shows in status().syncing.
    proxy.setFaults({ kind: "delay", delayMs: 200 });
    const inflight = a.sync();
    assert.equal(a.status().syncing, true);
    await inflight;
    assert.equal(a.status().syncing, false);
    proxy.setFaults("pass");

    // Conflicts on the custom column: both sell from 10; a pushes first, b resolves.
    await a.execute("update inv set stock = stock - 7 where sku = 'w'");
    await b.execute("update inv set stock = stock - 6 where sku = 'w'");
    await a.sync();
    await b.sync();
    await a.sync();
    assert.equal(bConflicts.length, 1, "b's compare-and-set lost");
    const c = bConflicts[0];
    assert.deepEqual(
      { table: c.table, key: c.key, column: c.column, local: c.local, remote: c.remote, base: c.base, resolved: c.resolved },
      { table: "inv", key: '["w"]', column: "stock", local: 4, remote: 3, base: 10, resolved: 0 },
    );
    assert.equal(b.metrics().conflicts, 1);
    assert.equal(await scalar(a, "select stock from inv where sku = 'w'"), 0);
    assert.equal(await scalar(e.server, "select stock from inv where sku = 'w'"), 0);
    // a conflict event on a: now a loses against b.
    await b.execute("update inv set stock = stock + 20 where sku = 'g'");
    await a.execute("update inv set stock = stock - 2 where sku = 'g'");
    await b.sync();
    await a.sync();
    assert.equal(events.conflict.length, 1);
    assert.equal(events.conflict[0].resolved, 23, "max(0, 25 + (3 - 5))");
    offConflict();
    await b.execute("update inv set stock = stock + 1 where sku = 'h'");
    await a.execute("update inv set stock = stock + 1 where sku = 'h'");
    await b.sync();
    await a.sync();
    assert.equal(events.conflict.length, 1, "an unsubscribed listener gets nothing");
    assert.equal(a.metrics().conflicts, 2);

    m = a.metrics();
    assert.equal(m.syncs - m.failures, events.completed.length);
    assert.ok(m.p50 <= m.p95 && m.p95 <= m.p99, JSON.stringify(m));
    assert.ok(m.p99 >= 200, "the delayed sync is in the durations");
    assert.ok(m.httpRequests >= m.syncs);
    assert.ok(m.bytesSent > 0);
    assert.ok(m.changesPushed >= 5);
    prom = parsePrometheus(a.metricsText());
    assert.equal(prom['edgesync_syncs_total{outcome="ok"}'], m.syncs - m.failures);
    assert.equal(prom.edgesync_sync_duration_seconds_count, m.syncs - m.failures);
    assert.equal(prom['edgesync_sync_duration_seconds{quantile="0.99"}'], m.p99 / 1000);
    assert.equal(prom.edgesync_changes_pushed_total, m.changesPushed);
    assert.equal(prom.edgesync_changes_applied_total, m.changesApplied);
    assert.equal(prom.edgesync_conflicts_total, 2);
    assert.equal(prom.edgesync_sync_http_requests_total, m.httpRequests);
    assert.equal(prom.edgesync_sync_bytes_sent_total, m.bytesSent);
    assert.equal(prom.edgesync_online, 1);
    assert.equal(prom.edgesync_sync_retries, 0);

    // The sync log: newest first, mirrors the events.
    const log = await a.syncLog();
    assert.ok(log.length >= 7);
    for (let i = 1; i < log.length; i++) assert.ok(log[i - 1].id > log[i].id && log[i - 1].at >= log[i].at, "newest first");
    const names = log.map((l) => l.event).reverse();
    const firstError = names.indexOf("sync:error");
    assert.deepEqual(names.slice(firstError, firstError + 4), ["sync:error", "sync:error", "sync:error", "sync:completed"]);
    const err = log.find((l) => l.event === "sync:error");
    assert.equal(err.details.code, "SERVER_UNREACHABLE");
    const done = log.find((l) => l.event === "sync:completed");
    assert.equal(typeof done.details.changesPushed, "number");
    assert.ok(log.some((l) => l.event === "conflict"));
    assert.equal((await a.syncLog(2)).length, 2);
    assert.equal(
      (await a.execute("select count(*) from _es_sync_log")).rows[0][0],
      events.completed.length + events.error.length + 2,
      "one row per event",
    );
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------
// write-through

test('writeMode "remote": writes are on the server before execute resolves; server down → SERVER_UNREACHABLE, local unchanged', async () => {
  const e = await env();
  try {
    const w = e.replica({ writeMode: "remote", timeout: 1000 });
    await w.execute("create table acct (id integer primary key, owner text, bal integer not null default 0, tags text)");
    w.replicate("acct", { bal: "counter", tags: "set" });
    const rs = await w.execute("insert into acct (id, owner, bal, tags) values (1, 'ann', 100, '[\"vip\"]')");
    assert.equal(rs.rowsAffected, 1);
    // Read on the server right after execute resolved.
    assert.deepEqual(await dump(e.server, "acct"), [[1, "ann", 100, '["vip"]']]);
    assert.deepEqual(await dump(w, "acct"), [[1, "ann", 100, '["vip"]']], "then applied locally");
    await w.execute("update acct set bal = bal - 30 where id = 1");
    assert.equal(await scalar(e.server, "select bal from acct"), 70);
    const [ins, upd] = await w.batch(
      ["insert into acct (id, owner) values (2, 'bob')", "update acct set bal = bal + 5, owner = 'ann b' where id = 1"],
      "write",
    );
    assert.equal(ins.rowsAffected, 1);
    assert.equal(upd.rowsAffected, 1);
    // (A set column holds a JSON array: NULL is the empty set.)
    assert.deepEqual(await dump(e.server, "acct"), [[1, "ann b", 75, '["vip"]'], [2, "bob", 0, "[]"]]);
    assert.deepEqual(await dump(w, "acct"), await dump(e.server, "acct"));
    assert.equal(w.status().pendingChanges, 0, "nothing left to push");

    // Reads stay local: they make no request.
    const before = w.metrics().httpRequests;
    assert.equal(await scalar(w, "select count(*) from acct"), 2);
    await w.batch(["select * from acct", "select 1"], "read");
    await w.batch(["select count(*) from acct"]);
    assert.equal(w.metrics().httpRequests, before, "reads make no request");

    // SQL errors come back with their codes; nothing changes.
    await rejectsWith(w.execute("insert into acct (id, owner) values (1, 'dup')"), "SQL_CONSTRAINT");

    // Server down.
    await e.sqld.kill();
    const local = await dump(w, "acct");
    await rejectsWith(w.execute("insert into acct (id, owner) values (3, 'cy')"), "SERVER_UNREACHABLE");
    await rejectsWith(w.execute("update acct set bal = bal + 1000 where id = 1"), "SERVER_UNREACHABLE");
    await rejectsWith(w.execute("delete from acct where id = 2"), "SERVER_UNREACHABLE");
    await rejectsWith(w.batch(["update acct set owner = 'x'", "insert into acct (id) values (9)"], "write"), "SERVER_UNREACHABLE");
    assert.deepEqual(await dump(w, "acct"), local, "the local rows are unchanged");
    assert.equal(w.status().pendingChanges, 0, "a failed write-through queues nothing");
    assert.equal(await scalar(w, "select owner from acct where id = 1"), "ann b", "reads work while the server is down");

    await e.sqld.restart();
    await w.execute("update acct set bal = bal + 1 where id = 1");
    assert.equal(await scalar(e.server, "select bal from acct where id = 1"), 76, "the failed +1000 never happened");
    assert.deepEqual(await dump(w, "acct"), await dump(e.server, "acct"));
    // Another replica sees the same.
    const r = e.replica();
    await r.execute("create table acct (id integer primary key, owner text, bal integer not null default 0, tags text)");
    r.replicate("acct", { bal: "counter", tags: "set" });
    await r.sync();
    assert.deepEqual(await dump(r, "acct"), await dump(e.server, "acct"));
  } finally {
    await e.stop();
  }
});

test('writeMode "remote": a write whose response was lost still converges, counters exact', async () => {
  const e = await env({ proxies: 1 });
  try {
    const proxy = e.proxies[0];
    const w = e.replica({ writeMode: "remote", syncUrl: proxy.url, timeout: 1000 });
    await w.execute("create table acct (id integer primary key, owner text, bal integer not null default 0)");
    w.replicate("acct", { bal: "counter" });
    await w.execute("insert into acct (id, owner, bal) values (1, 'ann', 1)");
    await w.sync();
    // The server commits; the answer never arrives. The caller sees a retryable error.
    proxy.setFaults({ next: ["lose"] });
    await rejectsWith(w.execute("insert into acct (id, owner) values (2, 'bob')"), "SERVER_UNREACHABLE");
    proxy.setFaults({ next: ["lose"] });
    await rejectsWith(w.execute("update acct set bal = bal + 10 where id = 1"), "SERVER_UNREACHABLE");
    await w.execute("update acct set bal = bal + 5 where id = 1");
    for (let i = 0; i < 2; i++) await w.sync();
    const server = await dump(e.server, "acct");
    assert.deepEqual(await dump(w, "acct"), server, "the replica converges with the server");
    // The +10 may or may not count (its outcome was unknown), but the +5 must.
    assert.ok([6, 16].includes(server[0][2]), `bal ${server[0][2]} is 1 + 5 or 1 + 10 + 5`);
  } finally {
    await e.stop();
  }
});

test('writeMode "remote": concurrent write-through calls on one replica all count', async () => {
  const e = await env();
  try {
    const w = e.replica({ writeMode: "remote" });
    await w.execute("create table c (id integer primary key, n integer not null default 0, tags text not null default '[]', body text not null default '')");
    w.replicate("c", { n: "counter", tags: "set", body: "text" });
    await w.execute("insert into c (id, body) values (1, 'hello')");
    // Two requests of an app handled at once, each a write-through.
    await Promise.all([
      w.execute("update c set n = n + 1, body = body || ' X' where id = 1"),
      w.execute("update c set n = n + 10, body = body || ' Y' where id = 1"),
      w.execute("update c set tags = json_insert(tags, '$[#]', 'a') where id = 1"),
      w.execute("update c set tags = json_insert(tags, '$[#]', 'b') where id = 1"),
    ]);
    await w.sync();
    const server = await dump(e.server, "c");
    assert.deepEqual(await dump(w, "c"), server, "the replica agrees with the server");
    const [[, n, tags, body]] = server;
    assert.equal(n, 11, "both increments count");
    assert.equal(tags, '["a","b"]');
    assert.ok(body.includes(" X") && body.includes(" Y") && body.startsWith("hello"), `both appends: ${body}`);
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------
// background sync

test("syncInterval: changes reach another replica without sync() calls", async () => {
  const e = await env();
  try {
    const a = e.replica({ syncInterval: 50 });
    const b = e.replica({ syncInterval: 50 });
    for (const r of [a, b]) {
      await r.execute("create table notes (id integer primary key, body text, likes integer not null default 0)");
      r.replicate("notes", { likes: "counter" });
    }
    const completed = [];
    b.on("sync:completed", (d) => completed.push(d));
    await a.execute("insert into notes (id, body) values (1, 'from a')");
    await waitFor("b to see a's row", async () => (await dump(b, "notes")).length === 1);
    await b.execute("update notes set likes = likes + 2 where id = 1");
    await a.execute("update notes set likes = likes + 3 where id = 1");
    await waitFor("both to see 5 likes", async () => (await scalar(a, "select likes from notes")) === 5 && (await scalar(b, "select likes from notes")) === 5);
    await waitFor("the server to see 5 likes", async () => (await scalar(e.server, "select likes from notes")) === 5);
    assert.ok(completed.length >= 2, "background syncs emit sync:completed");
    // close() stops the background sync.
    b.close();
    const n = completed.length;
    await a.execute("insert into notes (id, body) values (2, 'after close')");
    await sleep(300);
    assert.equal(completed.length, n);
    await rejectsWith(b.execute("select 1"), "CLIENT_CLOSED");
    await rejectsWith(b.sync(), "CLIENT_CLOSED");
  } finally {
    await e.stop();
  }
});

test("a background sync never blocks local reads and writes", async () => {
  const e = await env({ proxies: 1 });
  try {
    const DELAY = 1500;
    const a = e.replica({ syncUrl: e.proxies[0].url, syncInterval: 30 });
    await a.execute("create table ev (id integer primary key, at integer, body text)");
    a.replicate("ev");
    await waitFor("a first background sync", () => a.status().lastPull?.ok === true);
    e.proxies[0].setFaults({ kind: "delay", delayMs: DELAY });
    await a.execute("insert into ev values (0, 0, 'start')");
    // A background sync's request has reached the proxy and is being held there.
    await waitFor("a delayed sync request", () => e.proxies[0].stats().delay > 0, 3000, 5);
    assert.equal(a.status().syncing, true);
    const t0 = performance.now();
    for (let i = 1; i <= 200; i++) {
      await a.execute({ sql: "insert into ev values (?, ?, ?)", args: [i, Date.now(), `event ${i}`] });
      if (i % 20 === 0) {
        assert.equal(await scalar(a, "select count(*) from ev"), i + 1);
        await new Promise((r) => setImmediate(r)); // let the event loop (and the sync) run
      }
    }
    await a.batch(["update ev set body = body || '!' where id % 2 = 0", "delete from ev where id > 190"], "write");
    const elapsed = performance.now() - t0;
    assert.ok(a.status().syncing, "the sync is still waiting on the network");
    assert.equal(e.proxies[0].stats().delay, 1, "still the one held request");
    assert.ok(elapsed < DELAY / 3, `200 local writes took ${elapsed.toFixed(0)} ms while a sync waited ${DELAY} ms`);
    e.proxies[0].setFaults("pass");
    await waitFor("everything on the server", async () => (await scalar(e.server, "select count(*) from ev")) === 191, 15_000);
    assert.deepEqual(await dump(e.server, "ev"), await dump(a, "ev"));
  } finally {
    await e.stop();
  }
});

// ---------------------------------------------------------------------------------
// bad input

test("bad input gets stable error codes", async () => {
  const e = await env();
  try {
    const a = e.replica();
    await a.execute("create table u (id integer primary key, name text, qty integer, tags text)");
    await a.execute("create table nopk (a, b)");
    await a.execute("create table gen (id integer primary key, qty integer, twice integer as (qty * 2))");
    await a.execute("create table realkey (k real primary key, v)");
    throwsCode(() => a.replicate("nowhere"), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { nope: "lww" }), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("nopk"), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { name: "counter" }), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { qty: "set" }), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { id: "counter" }), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("gen"), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("realkey"), "SCHEMA_ERROR");
    throwsCode(() => a.replicate("u", { qty: "bogus" }), "INVALID_ARGUMENT");
    throwsCode(() => a.replicate("u", { qty: 42 }), "INVALID_ARGUMENT");
    throwsCode(() => a.replicate("u", "counter"), "INVALID_ARGUMENT");
    // Nothing above made u replicated: its writes are not captured.
    await a.execute("insert into u (id, name) values (1, 'x')");
    assert.equal(a.status().pendingChanges, 0);
    a.replicate("u", { qty: "counter", tags: "set" });
    a.replicate("u", { qty: "counter", tags: "set" }); // the same again is fine
    throwsCode(() => a.replicate("u", { qty: "lww" }), "SCHEMA_ERROR");
    assert.equal(a.status().pendingChanges, 1, "rows already there are queued once");

    throwsCode(() => createClient({ url: ":memory:", writeMode: "remote" }), "INVALID_ARGUMENT");
    throwsCode(() => createClient({ url: ":memory:", syncUrl: e.sqld.url, writeMode: "both" }), "INVALID_ARGUMENT");
    throwsCode(() => createClient({ url: ":memory:", syncUrl: e.sqld.url, syncInterval: 0 }), "INVALID_ARGUMENT");
    throwsCode(() => createClient({ url: ":memory:", syncUrl: e.sqld.url, syncInterval: 1.5 }), "INVALID_ARGUMENT");
    throwsCode(() => createClient({ url: ":memory:", syncUrl: "ftp://nowhere" }), "URL_INVALID");
    const local = createClient({ url: ":memory:" });
    await rejectsWith(local.sync(), "INVALID_OPERATION");
    local.close();

    // Auth.
    const withToken = async (authToken) => {
      const r = e.replica({ authToken });
      await r.execute("create table u (id integer primary key, name text, qty integer, tags text)");
      r.replicate("u", { qty: "counter", tags: "set" });
      const errs = [];
      r.on("sync:error", (d) => errs.push(d));
      return { r, errs };
    };
    let t = await withToken("not-a-jwt");
    await rejectsWith(t.r.sync(), "AUTH_INVALID");
    assert.deepEqual(
      t.errs.map((d) => [d.code, d.retryable]),
      [["AUTH_INVALID", false]],
    );
    const other = await startSqld();
    const foreign = other.tokens.rw;
    await other.stop();
    t = await withToken(foreign);
    await rejectsWith(t.r.sync(), "AUTH_INVALID");
    t = await withToken(undefined);
    await rejectsWith(t.r.sync(), "AUTH_REQUIRED");
    t = await withToken(e.sqld.tokens.ro);
    await rejectsWith(t.r.sync(), "PERMISSION_DENIED");

    // Schema drift between replicas: the same table with other columns, or other policies.
    await a.sync();
    const drift = e.replica();
    await drift.execute("create table u (id integer primary key, name text, qty integer, tags text, extra integer)");
    drift.replicate("u", { qty: "counter", tags: "set" });
    await rejectsWith(drift.sync(), "SCHEMA_MISMATCH");
    const typed = e.replica();
    await typed.execute("create table u (id integer primary key, name text, qty text, tags text)");
    typed.replicate("u", { tags: "set" });
    await rejectsWith(typed.sync(), "SCHEMA_MISMATCH");
    const policy = e.replica();
    await policy.execute("create table u (id integer primary key, name text, qty integer, tags text)");
    policy.replicate("u", { qty: "counter" });
    await rejectsWith(policy.sync(), "SCHEMA_MISMATCH");
    // None of it reached the server.
    assert.equal(await scalar(e.server, "select count(*) from u"), 1);
    assert.deepEqual(await dump(e.server, "u"), await dump(a, "u"));
  } finally {
    await e.stop();
  }
});
