// An embedded replica's local database against the official @libsql/client's local
// database (`:memory:`): the same scenarios, the same outcomes — results, errors with
// their code, extendedCode, rawCode and statement index, interactive transactions,
// executeMultiple, migrate. edgesync runs with the official defaults for what it does
// differently by default (`intMode: "number"`, `numberArgs: "real"`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient as official } from "@libsql/client";
import { createClient } from "edgesync";
import { compare } from "../support/compat.mjs";

const scenarios = [
  ["create", (c) => c.execute("create table t(id integer primary key, x text unique not null, v)")],
  ["insert", (c) => c.execute({ sql: "insert into t values (?, ?, ?)", args: [1, "a", 1.5] })],
  ["insert named", (c) => c.execute({ sql: "insert into t values (:id, $x, @v)", args: { id: 2, $x: "b", "@v": null } })],
  [
    "every value type",
    (c) =>
      c.execute({
        sql: "select ? n, ? i, ? f, ? s, ? b, ? ab, ? t, ? fl, ? d, typeof(?) tn, ? / 2 h",
        args: [null, 12n, 0.1 + 0.2, "héllo ✓ 🦀", new Uint8Array([0, 1, 255]), new Uint8Array([9, 8]).buffer, true, false, new Date(1700000000123), 3, 5],
      }),
  ],
  ["a bigint beyond 2^53 with intMode number", (c) => c.execute({ sql: "select ? i, typeof(?) t", args: [9007199254740993n, 3] }), { message: false }],
  ["blob in toJSON", (c) => c.execute("select x'00ff10' b").then((rs) => JSON.stringify(rs))],
  ["integer beyond 2^53 with intMode number", (c) => c.execute("select 9007199254740993"), { message: false }],
  ["syntax error", (c) => c.execute("selec 1")],
  ["no such table", (c) => c.execute("select * from nope")],
  ["primary key", (c) => c.execute("insert into t values (1, 'z', 0)")],
  ["unique", (c) => c.execute("insert into t values (5, 'a', 0)")],
  ["not null", (c) => c.execute("insert into t values (9, null, 0)")],
  ["NaN", (c) => c.execute("select ?", [NaN]), { message: false }],
  ["bigint beyond 64 bits", (c) => c.execute("select ?", [2n ** 70n]), { message: false }],
  ["undefined", (c) => c.execute("select ?", [undefined]), { message: false }],
  ["batch", (c) => c.batch(["insert into t values (10, 'j', 1)", "select count(*) n from t"], "write")],
  // The official client repeats the code in a batch error's message (docs/compatibility.md).
  ["batch rolls back and names the statement", (c) => c.batch(["insert into t values (11, 'k', 1)", "insert into t values (11, 'k', 1)"], "write"), { message: false }],
  ["after the failed batch", (c) => c.execute("select count(*) n from t where id = 11")],
  ["batch with a bad mode", (c) => c.batch(["select 1"], "nope"), { message: false }],
  ["executeMultiple", (c) => c.executeMultiple("create table m(a); insert into m values (1); insert into m values (2);")],
  ["executeMultiple failing", (c) => c.executeMultiple("insert into m values (3); selec;")],
  ["executeMultiple stopped at the failure", (c) => c.execute("select count(*) n from m")],
  ["executeMultiple leaving a transaction open", (c) => c.executeMultiple("begin; insert into m values (4);")],
  ["that transaction was rolled back", (c) => c.execute("select count(*) n from m")],
  [
    "migrate with foreign keys",
    (c) => c.migrate(["create table p(id integer primary key)", "create table ch(id integer primary key, p integer references p(id))", "insert into ch values (1, 99)"]),
  ],
  [
    "transaction: write, read it, roll back",
    async (c) => {
      const tx = await c.transaction("write");
      const a = await tx.execute("insert into t values (20, 't', 0)");
      const b = await tx.execute({ sql: "select count(*) n from t where id = ?", args: [20] });
      await tx.rollback();
      return [a.rowsAffected, b, tx.closed, await c.execute("select count(*) n from t where id = 20")];
    },
  ],
  [
    "transaction: holds the connection",
    async (c) => {
      const tx = await c.transaction("write");
      try {
        return await c.execute("select 1");
      } finally {
        await tx.rollback();
      }
    },
  ],
  [
    "transaction: batch with a failing statement, then commit",
    async (c) => {
      const tx = await c.transaction("write");
      let err;
      try {
        await tx.batch(["insert into t values (21, 'u', 0)", "insert into t values (21, 'u', 0)"]);
      } catch (e) {
        err = [e.name, e.code, e.extendedCode, e.statementIndex];
      }
      await tx.commit();
      return [err, tx.closed, await c.execute("select x from t where id = 21")];
    },
  ],
  [
    "transaction: execute after commit",
    async (c) => {
      const tx = await c.transaction("deferred");
      await tx.execute("select 1");
      await tx.commit();
      return tx.execute("select 1");
    },
  ],
  [
    "transaction: close rolls back",
    async (c) => {
      const tx = await c.transaction("write");
      await tx.execute("insert into t values (24, 'zz', 0)");
      tx.close();
      return [tx.closed, await c.execute("select count(*) n from t where id = 24")];
    },
  ],
  [
    "transaction: a COMMIT refused by a deferred foreign key rolls it back",
    async (c) => {
      await c.execute("pragma foreign_keys=on");
      await c.execute("create table fp(id integer primary key)");
      await c.execute("create table fc(id integer primary key, p integer references fp(id) deferrable initially deferred)");
      const tx = await c.transaction("write");
      await tx.execute("insert into fc values (1, 42)");
      let err;
      try {
        await tx.commit();
      } catch (e) {
        err = [e.code, e.extendedCode];
      }
      const closed = tx.closed;
      tx.close();
      // The connection is free: nothing of it kept, a new transaction can begin.
      const left = await c.execute("select count(*) n from fc");
      const tx2 = await c.transaction("write");
      await tx2.execute("insert into fp values (42)");
      await tx2.commit();
      return [err, closed, left, await c.execute("select count(*) n from fp")];
    },
  ],
  ["transaction with a bad mode", (c) => c.transaction("nope"), { message: false }],
  ["protocol", (c) => c.protocol],
];

test("embedded replica (local database): the same outcomes as @libsql/client's local client", async () => {
  const o = official({ url: ":memory:", intMode: "number" });
  const e = createClient({ url: ":memory:", intMode: "number", numberArgs: "real" });
  try {
    await compare(o, e, scenarios);
  } finally {
    o.close();
    e.close();
  }
});

test("file::memory:?cache=shared and ?cache=private open a replica; other cache values are URL_INVALID", async () => {
  for (const url of ["file::memory:?cache=shared", "file::memory:?cache=private", "file::memory:"]) {
    const c = createClient({ url });
    assert.equal((await c.execute("select 1 one")).rows[0].one, 1, url);
    c.close();
  }
  assert.throws(() => createClient({ url: "file::memory:?cache=nope" }), (e) => e.code === "URL_INVALID");
  assert.throws(() => createClient({ url: "file::memory:?mode=ro" }), (e) => e.code === "URL_PARAM_NOT_SUPPORTED");
});

test("a transaction used after its client closed: the same outcomes as @libsql/client's", async () => {
  const o = official({ url: ":memory:", intMode: "number" });
  const e = createClient({ url: ":memory:", intMode: "number", numberArgs: "real" });
  await compare(o, e, [
    [
      "transaction: used after the client closed",
      async (c) => {
        const tx = await c.transaction("write");
        await tx.execute("select 1");
        c.close();
        const code = (p) => p.then(() => "ok", (e) => e.code);
        return [await code(tx.execute("select 1")), await code(tx.commit()), await code(tx.rollback()), tx.closed];
      },
    ],
  ]);
});
