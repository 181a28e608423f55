// Embedded replicas see the server's other tables: the tables they do not replicate come
// down at every sync() as read-only mirrors (the `mirror` option), as libSQL's embedded
// replicas see every table of their primary. Against a real sqld, with the official
// client writing on the server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { env, rowsOf } from "../support/sync-env.mjs";

test("sync() brings the server's tables down, refreshed when they change, read-only locally", async () => {
  const e = await env();
  try {
    await e.server.batch([
      "create table products (id integer primary key, name text not null, price real)",
      "create index products_name on products(name)",
      "insert into products values (1, 'apple', 1.5), (2, 'pear', 2.25)",
      "create table tags (k text primary key, v blob) without rowid",
      "insert into tags values ('a', x'0102')",
    ]);
    const db = e.replica();
    await assert.rejects(db.execute("select * from products"), (x) => x.code === "SQLITE_ERROR", "nothing before the first sync");
    await db.sync();
    assert.deepEqual(rowsOf(await db.execute("select * from products order by id")), [[1, "apple", 1.5], [2, "pear", 2.25]]);
    assert.deepEqual(rowsOf(await db.execute("select name from sqlite_master where name = 'products_name'")), [["products_name"]], "indexes too");
    const tags = await db.execute("select * from tags");
    assert.deepEqual([...new Uint8Array(tags.rows[0].v)], [1, 2]);

    // Local writes are refused, with a message that says why.
    const err = await db.execute("insert into products values (3, 'plum', 1)").catch((x) => x);
    assert.equal(err.code, "SQLITE_CONSTRAINT");
    assert.match(err.message, /read-only mirror/);
    await assert.rejects(db.execute("delete from products"), (x) => x.code === "SQLITE_CONSTRAINT");

    // Changes on the server (rows, a new table, a dropped one, a changed schema) arrive at the next sync.
    await e.server.batch([
      "update products set price = 9 where id = 1",
      "delete from products where id = 2",
      "create table later (x)",
      "insert into later values ('new')",
      "drop table tags",
    ]);
    await db.sync();
    assert.deepEqual(rowsOf(await db.execute("select * from products order by id")), [[1, "apple", 9]]);
    assert.deepEqual(rowsOf(await db.execute("select * from later")), [["new"]]);
    await assert.rejects(db.execute("select * from tags"), (x) => x.code === "SQLITE_ERROR", "a dropped table goes");
    await e.server.execute("alter table products add column stock integer default 5");
    await db.sync();
    assert.deepEqual(rowsOf(await db.execute("select * from products")), [[1, "apple", 9, 5]]);
  } finally {
    await e.stop();
  }
});

test("a table larger than a page comes down whole, as one snapshot", async () => {
  const e = await env();
  try {
    await e.server.execute("create table big (id integer primary key, pad text)");
    const rows = Array.from({ length: 2500 }, (_, i) => [i, "x".repeat(100)]);
    for (let i = 0; i < rows.length; i += 500) {
      await e.server.batch(rows.slice(i, i + 500).map((r) => ({ sql: "insert into big values (?, ?)", args: r })));
    }
    const db = e.replica();
    await db.sync();
    assert.deepEqual(rowsOf(await db.execute("select count(*), sum(id) from big")), [[2500, (2499 * 2500) / 2]]);
  } finally {
    await e.stop();
  }
});

test("replicate() turns a mirror into a replicated table; a local table of the app's is never touched; `mirror` chooses", async () => {
  const e = await env();
  try {
    await e.server.batch([
      "create table notes (id integer primary key, body text)",
      "insert into notes values (1, 'from the server')",
      "create table mine (x)",
      "insert into mine values ('server')",
      "create table skipped (x)",
    ]);
    const db = e.replica({ mirror: ["notes", "mine"] });
    await db.execute("create table mine (x)");
    await db.execute("insert into mine values ('local')");
    await db.sync();
    assert.deepEqual(rowsOf(await db.execute("select * from mine")), [["local"]], "the app's own table is kept");
    await assert.rejects(db.execute("select * from skipped"), (x) => x.code === "SQLITE_ERROR", "not in the list");

    db.replicate("notes");
    await db.execute("insert into notes values (2, 'local write')");
    await db.sync();
    assert.deepEqual(rowsOf(await db.execute("select * from notes order by id")), [[1, "from the server"], [2, "local write"]]);
    assert.deepEqual(rowsOf(await e.server.execute("select * from notes order by id")), [[1, "from the server"], [2, "local write"]]);

    const off = e.replica({ mirror: false });
    await off.sync();
    await assert.rejects(off.execute("select * from notes"), (x) => x.code === "SQLITE_ERROR");
  } finally {
    await e.stop();
  }
});
