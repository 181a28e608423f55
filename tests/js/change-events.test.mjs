// `db.on("change", ({ tables }) => …)` on an embedded replica in Node (the event the
// browser's live queries are built on: src/store/changes.rs, SQLite's pre-update hook in
// the wasm build): which writes fire it, how often, and what it names.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "edgesync";

/** The change events that fire while `fn` runs, and just after it. */
async function changesDuring(db, fn) {
  const seen = [];
  const off = db.on("change", (d) => seen.push(d.tables));
  await fn();
  await sleep(0);
  off();
  return seen;
}

test("every kind of row change fires, once per tick of writes, naming the tables; reads and DDL do not", async () => {
  const db = createClient({ url: ":memory:" });
  await db.execute("create table a (id integer primary key, x)");
  await db.execute("create table b (k text primary key, v) without rowid");
  await db.execute("create table log (msg text)");
  await db.execute("create trigger ta after insert on a begin insert into log values ('a'); end");

  assert.deepEqual(await changesDuring(db, () => db.execute("create table c (x)")), [], "DDL changes no rows");
  assert.deepEqual(await changesDuring(db, () => db.execute("select * from a")), [], "reads change nothing");
  assert.deepEqual(
    await changesDuring(db, () => Promise.all(Array.from({ length: 20 }, (_, i) => db.execute("insert into a (x) values (?)", [i])))),
    [["a", "log"]],
    "twenty inserts made in one tick, and their trigger's writes: one event",
  );
  assert.equal(
    (
      await changesDuring(db, async () => {
        for (let i = 0; i < 3; i++) await db.execute("insert into a (x) values (?)", [i]);
      })
    ).length,
    3,
    "awaited one by one: an event after each",
  );
  assert.deepEqual(await changesDuring(db, () => db.execute("insert into b values ('k', 1)")), [["b"]], "WITHOUT ROWID tables");
  assert.deepEqual(await changesDuring(db, () => db.execute("delete from a")), [["a"]], "DELETE without WHERE (no truncate shortcut)");
  assert.deepEqual(
    await changesDuring(db, () => db.batch(["update b set v = 2", "insert into c values (1)"], "write")),
    [["b", "c"]],
  );
  db.close();
});

test("the engine's own tables are never named (replicate() writes only those)", async () => {
  const db = createClient({ url: ":memory:" });
  await db.execute("create table t (id integer primary key, v text)");
  await db.execute("insert into t values (1, 'x')");
  // replicate() writes only edgesync's tables (_es_…): nothing the application reads.
  assert.deepEqual(await changesDuring(db, () => db.replicate("t")), []);
  assert.deepEqual(await changesDuring(db, () => db.execute("update t set v = 'y'")), [["t"]]);
  db.close();
});
