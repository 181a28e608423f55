// Merge rules, deterministically: LWW per column, counters, sets, deletes, every
// SQLite value type by pull and by bootstrap, clock drift, concurrent sync() calls.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient as libsql } from "@libsql/client";
import { dump, env, rowsOf, scalar } from "../support/sync-env.mjs";
import { guardUnhandledRejections, serverLogUnique } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

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
      // BLOBs are ArrayBuffers from both clients.
      assert.deepEqual(rowsOf(await server.execute(q)), want, "the server's plain rows");
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
