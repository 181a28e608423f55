// The embedded replica's fast path (kept prepared statements, js/local.ts and
// src/wasm/fast.rs) against the generic path (Replica.executePacked + decodeResult,
// js/result.ts): the same results for every value type and int mode, fresh headers
// after schema changes, more statements than the kept bound, the same errors, large
// arguments and wasm memory growth between calls. No server needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, EdgesyncError } from "edgesync";
import { Replica } from "../../pkg/wasm/edgesync.js";
import { encodeStatement } from "../../pkg/args.js";
import { decodeResult } from "../../pkg/result.js";

/** A replica client (fast path) and a bare Replica run the generic way, in step. */
function pair(intMode) {
  const fast = createClient({ url: ":memory:", intMode });
  const raw = new Replica({ url: ":memory:", intMode });
  const generic = (stmt, args) => {
    try {
      return Promise.resolve(decodeResult(raw.executePacked(...encodeStatement(stmt, args))));
    } catch (e) {
      return Promise.reject(e);
    }
  };
  return { fast, generic };
}

/** Everything observable about a result set. */
function shape(rs) {
  return {
    columns: rs.columns,
    columnTypes: rs.columnTypes,
    rows: rs.rows.map((r) => Array.from({ length: r.length }, (_, i) => r[i])),
    named: rs.rows.map((r) => ({ ...r })),
    rowsAffected: rs.rowsAffected,
    lastInsertRowid: rs.lastInsertRowid,
    replicationIndex: rs.replicationIndex,
    json: JSON.stringify(rs),
  };
}

/** Runs on both; asserts the same result (or the same error code and message). */
async function same(p, stmt, args) {
  const [a, b] = await Promise.allSettled([p.fast.execute(stmt, args), p.generic(stmt, args)]);
  const what = JSON.stringify(typeof stmt === "string" ? stmt : stmt.sql ?? stmt[0]);
  if (b.status === "rejected") {
    assert.equal(a.status, "rejected", `${what} should fail: ${b.reason?.message}`);
    assert.ok(a.reason instanceof Error, `${what}: ${a.reason}`);
    assert.equal(a.reason.constructor, b.reason.constructor, what);
    assert.equal(a.reason.code, b.reason.code, what);
    assert.equal(a.reason.message, b.reason.message, what);
    return a.reason;
  }
  assert.equal(a.status, "fulfilled", `${what}: ${a.reason?.message}`);
  assert.deepEqual(shape(a.value), shape(b.value), what);
  // Callers may change what they get: the next result must not share arrays.
  a.value.columns.push("x");
  a.value.columnTypes.push("x");
  return a.value;
}

const BIG = [2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n - 1n, -(2n ** 53n) + 1n];

for (const intMode of ["auto", "bigint", "string"]) {
  test(`every value type reads exactly as on the generic path (intMode ${intMode})`, async () => {
    const p = pair(intMode);
    await same(p, "create table v (id integer primary key, x, note text, r real, b blob)");
    const values = [
      null, 0, 1, -1, 42, 1.5, -0.25, 1e300, ...BIG, "", "ascii", "héllo ✓ 日本 🎉", "x".repeat(47), "y".repeat(49),
      "é".repeat(200), new Uint8Array(), new Uint8Array([0, 1, 255]), true, false, new Date(1_700_000_000_000),
    ];
    for (let i = 0; i < values.length; i++) {
      const ins = await same(p, "insert into v (id, x) values (?, ?)", [i + 1, values[i]]);
      assert.equal(ins.lastInsertRowid, BigInt(i + 1));
      assert.equal(ins.rowsAffected, 1);
    }
    for (let k = 0; k < 3; k++) {
      await same(p, "select * from v order by id");
      for (let i = 1; i <= values.length; i++) await same(p, { sql: "select x, typeof(x) as t from v where id = ?", args: [i] });
    }
    await same(p, "select * from v where id = -1");
    await same(p, "select count(*), sum(id), 'a' || 'b', 2.5 * 2, x'00ff'");
    // Named arguments, with and without their prefix; positional as an array pair.
    await same(p, { sql: "select :a as a, @b as b, $c as c", args: { a: 1, "@b": "two", $c: null } });
    await same(p, { sql: "select :a as a, :a + 1 as b", args: { ":a": 10n } });
    await same(p, ["select ?1, ?2, ?1", [7, "z"]]);
    const upd = await same(p, "update v set note = ? where id <= ?", ["n", 5]);
    assert.equal(upd.rowsAffected, 5);
    // As @libsql/client's local databases: a statement without result columns reports the
    // connection's last rowid.
    assert.equal(upd.lastInsertRowid, BigInt(values.length));
    // Many rows in one result.
    await same(p, "create table many (i integer primary key, s text)");
    await same(p, "insert into many (s) select 'row ' || value from generate_series(1, 3000)");
    await same(p, "select * from many order by i");
    p.fast.close();
  });
}

test("blobs are copies, never views of wasm memory", async () => {
  const db = createClient({ url: ":memory:" });
  const first = (await db.execute("select x'010203' as b")).rows[0].b;
  for (let i = 0; i < 100; i++) await db.execute("select randomblob(?) as b", [1000]);
  assert.ok(first instanceof ArrayBuffer, "an ArrayBuffer of its own, as from @libsql/client");
  assert.deepEqual([...new Uint8Array(first)], [1, 2, 3]);
  assert.equal(first.byteLength, 3);
  db.close();
});

// Only the fast path here: the generic path reads its column list before SQLite
// re-prepares the statement, so right after a schema change it still shows the old one.
test("a cached `select *` shows the new columns after ALTER TABLE and DROP + CREATE", async () => {
  const db = createClient({ url: ":memory:" });
  const all = async () => shape(await db.execute("select * from s"));
  await db.execute("create table s (a integer, b text)");
  await db.execute("insert into s values (1, 'one')");
  for (let k = 0; k < 2; k++) {
    const r = await all();
    assert.deepEqual([r.columns, r.columnTypes, r.rows], [["a", "b"], ["INTEGER", "TEXT"], [[1, "one"]]]);
  }
  await db.execute("alter table s add column c real default 2.5");
  let r = await all();
  assert.deepEqual([r.columns, r.columnTypes, r.named], [["a", "b", "c"], ["INTEGER", "TEXT", "REAL"], [{ a: 1, b: "one", c: 2.5 }]]);
  await db.execute("drop table s");
  await db.execute("create table s (z blob, y integer primary key)");
  await db.execute("insert into s (z) values (x'ff')");
  r = await all();
  assert.deepEqual([r.columns, r.columnTypes, r.named], [["z", "y"], ["BLOB", "INTEGER"], [{ z: new Uint8Array([255]).buffer, y: 1 }]]);
  await db.execute("alter table s rename column y to w");
  r = await all();
  assert.deepEqual([r.columns, r.named], [["z", "w"], [{ z: new Uint8Array([255]).buffer, w: 1 }]]);
  await db.execute("drop table s");
  await assert.rejects(db.execute("select * from s"), (e) => e.code === "SQLITE_ERROR" && /no such table/.test(e.message));
  await db.execute("create table s (q)");
  assert.deepEqual((await all()).columns, ["q"]);
  // An empty result after a change still carries the new header.
  await db.execute("alter table s add column p");
  r = await all();
  assert.deepEqual([r.columns, r.rows], [["q", "p"], []]);
  db.close();
});

test("more distinct statements than the kept bound still run right", async () => {
  const p = pair("auto");
  await same(p, "create table t (id integer primary key, v text)");
  await same(p, "insert into t (v) select 'v' || value from generate_series(1, 50)");
  const hot = "select * from t where id = ?";
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 700; i++) {
      await same(p, `select ${i} as n, v from t where id = ?`, [(i % 50) + 1]);
      if (i % 7 === 0) await same(p, hot, [(i % 50) + 1]);
    }
  }
  p.fast.close();
});

test("errors have the generic path's codes and messages, and do not break the next call", async () => {
  const p = pair("auto");
  await same(p, "create table e (id integer primary key, n text not null)");
  await same(p, "insert into e values (1, 'a')");
  const cases = [
    ["insert into e values (?, ?)", [1, "dup"], "SQLITE_CONSTRAINT"],
    ["insert into e values (?, ?)", [2, null], "SQLITE_CONSTRAINT"],
    ["selec 1", undefined, "SQLITE_ERROR"],
    ["select * from nope", undefined, "SQLITE_ERROR"],
    ["select * from e where id = ?", [NaN], RangeError],
    ["select * from e where id = ?", [{}], TypeError],
    ["select * from e where id = ?", [2n ** 64n], RangeError],
    ["select * from e where id = ?", [1, 2], "INVALID_ARGUMENT"],
    ["select * from e where id = ?", [], "INVALID_ARGUMENT"],
    ["select * from e where id = :id", { nope: 1 }, "INVALID_ARGUMENT"],
    ["select * from e where id = ?", new Uint8Array(1), TypeError],
    ["select 1; select 2", undefined, "SQL_MANY_STATEMENTS"],
    ["select abs(?)", [-(2n ** 63n)], "SQLITE_ERROR"],
  ];
  for (const [sql, args, code] of cases) {
    for (let k = 0; k < 2; k++) {
      const e = await same(p, sql, args);
      if (typeof code === "function") assert.ok(e instanceof code, `${sql}: ${e}`);
      else {
        assert.ok(e instanceof EdgesyncError, `${sql} should fail`);
        assert.equal(e.code, code, `${sql}: ${e.message}`);
      }
      await same(p, "select * from e where id = ?", [1]);
      await same(p, sql.startsWith("insert") ? "insert into e (n) values (?)" : "select 2", sql.startsWith("insert") ? ["ok"] : undefined);
    }
  }
  await assert.rejects(p.fast.execute(42), TypeError);
  await assert.rejects(p.fast.execute({ sql: 1 }), TypeError);
  // A comment after the statement is not a second statement; neither is an empty one.
  await same(p, "select 1 as one; -- trailing");
  await same(p, "select 1 as one;  ");
  // Statements that do not prepare now but do later (the table appears).
  await same(p, "select * from later");
  await same(p, "create table later (x)");
  await same(p, "select * from later");
  // A transaction opened and closed by single statements.
  await same(p, "begin");
  await same(p, "insert into e (n) values ('in tx')");
  await same(p, "rollback");
  await same(p, "select count(*) from e");
  p.fast.close();
});

test("arguments larger than the scratch buffer: a 1 MiB blob, long text", async () => {
  const p = pair("auto");
  await same(p, "create table big (id integer primary key, b blob, t text)");
  const blob = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 255);
  const text = "ünïcødé ✓ ".repeat(40_000);
  await same(p, "insert into big values (?, ?, ?)", [1, blob, text]);
  await same(p, { sql: "insert into big values (:id, :b, :t)", args: { id: 2, b: blob.buffer, t: "a".repeat(300_000) } });
  await same(p, "insert into big values (?, ?, ?)", [3, new Uint16Array([1, 2, 3]), "s"]);
  await same(p, "select id, length(b), length(t), b, t from big order by id");
  await same(p, "select id from big where b = ? and t = ?", [blob, text]);
  await same(p, "select id from big where id = ?", [3]);
  p.fast.close();
});

test("wasm memory growth between and during calls does not corrupt results", async () => {
  const p = pair("auto");
  await same(p, "create table g (id integer primary key, s text, b blob)");
  for (let i = 0; i < 50; i++) await same(p, "insert into g (s, b) values (?, ?)", [`s${i} ✓`, new Uint8Array([i, i + 1])]);
  const before = await p.fast.execute("select * from g where id = ?", [7]);
  const memory = WebAssembly.Memory;
  assert.ok(memory);
  for (const size of [8, 24, 64]) {
    // A result of `size` MiB grows wasm memory (the result buffer), then a huge
    // argument grows it again (the argument buffer).
    const r = await p.fast.execute("select length(zeroblob(?)) as n, zeroblob(?) as z", [size << 20, size << 20]);
    assert.equal(r.rows[0].n, size << 20);
    assert.equal(r.rows[0].z.byteLength, size << 20);
    await same(p, "select * from g where id = ?", [7]);
    await same(p, "select length(?) as n", [new Uint8Array((size + 1) << 20)]);
    await same(p, "select * from g order by id");
  }
  assert.deepEqual(shape(before), shape(await p.generic("select * from g where id = ?", [7])));
  p.fast.close();
});

test("batch and write-through are untouched; the local path works after a batch", async () => {
  const db = createClient({ url: ":memory:" });
  await db.execute("create table bt (id integer primary key, v)");
  const out = await db.batch([["insert into bt (v) values (?)", [1]], "select * from bt"], "write");
  assert.equal(out[1].rows.length, 1);
  assert.equal((await db.execute("select * from bt")).rows[0].v, 1);
  await assert.rejects(db.batch([["insert into bt values (1, 2)"]]), (e) => e.code === "SQLITE_CONSTRAINT" && e.statementIndex === 0);
  assert.equal((await db.execute("select count(*) as n from bt")).rows[0].n, 1);
  db.close();
  await assert.rejects(db.execute("select 1"), (e) => e.code === "CLIENT_CLOSED");
});
