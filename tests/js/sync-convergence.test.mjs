// Embedded replicas converging through a real sqld on loopback under random
// concurrent edits and random offline periods (one replica in write-through mode), and
// writes made while a sync waits on the network.
//
// The random tests print their seed; rerun one with EDGESYNC_SEED=<seed>. (The op
// sequence is fully determined by the seed; how in-flight syncs interleave with it
// also depends on timing.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { EdgesyncError } from "edgesync";
import { dump, env, scalar } from "../support/sync-env.mjs";
import { guardUnhandledRejections, prng, seedFor, serverLogUnique } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

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
