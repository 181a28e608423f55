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

test("a listener added after writes began, removed and added again gets every event; none is lost across add/remove", async () => {
  const db = createClient({ url: ":memory:" });
  await db.execute("create table t (id integer primary key, x)");
  await db.execute("create table u (id integer primary key, x)");
  // Writes with nobody listening (nothing is noted then).
  for (let i = 0; i < 5; i++) await db.execute("insert into t (x) values (?)", [i]);

  const a = [];
  let offA = db.on("change", (d) => a.push(d.tables));
  await db.execute("insert into t (x) values (1)");
  await sleep(0);
  assert.deepEqual(a, [["t"]], "added after writes began: the next write's event");

  offA();
  await db.execute("insert into u (x) values (1)");
  await sleep(0);
  assert.deepEqual(a, [["t"]], "removed: no event");

  offA = db.on("change", (d) => a.push(d.tables));
  for (let i = 0; i < 3; i++) await db.execute("insert into u (x) values (?)", [i]);
  await sleep(0);
  assert.deepEqual(a, [["t"], ["u"], ["u"], ["u"]], "added again: an event after each write");

  // The last listener removed and a new one added in the same tick as a write: the
  // new one gets that write's event (it is emitted after the tick).
  const b = [];
  const w = db.execute("insert into t (x) values (2)");
  offA();
  const offB = db.on("change", (d) => b.push(d.tables));
  await w;
  await sleep(0);
  assert.deepEqual(b, [["t"]], "write, remove, add in one tick: not lost");
  assert.equal(a.length, 4, "the removed listener got nothing more");

  // Removed right after a write (its event then goes to nobody), then added again:
  // the log is not left holding that write, and later writes are reported.
  const c = [];
  let offC = db.on("change", (d) => c.push(d.tables));
  offB();
  const w2 = db.execute("insert into u (x) values (3)");
  offC();
  await w2;
  await sleep(0);
  assert.deepEqual(c, [], "removed before the event: nothing");
  offC = db.on("change", (d) => c.push(d.tables));
  await db.execute("update t set x = 0 where id = 1");
  await sleep(0);
  assert.deepEqual(c, [["t"]], "only what changed after it came back");

  // Two listeners: removing one does not stop the other's events.
  const d1 = [];
  const offD = db.on("change", (d) => d1.push(d.tables));
  for (let i = 0; i < 4; i++) {
    await db.execute("insert into t (x) values (?)", [i]);
    if (i === 1) offD();
  }
  await sleep(0);
  assert.equal(c.length, 5, "the remaining listener saw all four writes");
  assert.equal(d1.length, 2, "the removed one saw the two before");

  // A pull and the engine's writes still reach a listener added late (the sync
  // engine's own tables are never named): a batch and a transaction.
  const tx = await db.transaction("write");
  await tx.execute("insert into u (x) values (9)");
  await tx.commit();
  await db.batch(["insert into t (x) values (10)", "insert into u (x) values (10)"], "write");
  await sleep(0);
  assert.deepEqual(c.slice(5), [["u"], ["t", "u"]]);
  offC();
  db.close();
});

test("a transaction's writes fire one event at its commit, none before, none after a rollback", async () => {
  const db = createClient({ url: ":memory:" });
  await db.execute("create table a (id integer primary key, x)");
  await db.execute("create table b (x)");
  const seen = [];
  const off = db.on("change", (d) => seen.push(d.tables));
  const tx = await db.transaction("write");
  await tx.execute("insert into a (x) values (1)");
  await sleep(0);
  await tx.execute("insert into b (x) values (1)");
  await sleep(0);
  assert.deepEqual(seen, [], "nothing while it is open (a listener that reads would get TRANSACTION_ACTIVE)");
  await tx.commit();
  await sleep(0);
  assert.deepEqual(seen, [["a", "b"]], "one event at the commit, naming both tables");
  const tx2 = await db.transaction("write");
  await tx2.execute("insert into a (x) values (2)");
  await sleep(0);
  await tx2.rollback();
  await sleep(0);
  const tx3 = await db.transaction("write");
  await tx3.execute("insert into b (x) values (3)");
  tx3.close();
  await sleep(0);
  assert.deepEqual(seen, [["a", "b"]], "rolled back or closed: no event");
  await db.execute("insert into a (x) values (4)");
  await sleep(0);
  assert.deepEqual(seen, [["a", "b"], ["a"]], "and later writes fire as before");
  off();
  db.close();
});

test("a transaction SQLite rolls back on a failed statement (INSERT OR ROLLBACK) fires no event", async () => {
  const db = createClient({ url: ":memory:" });
  await db.execute("create table a (id integer primary key, x)");
  await db.execute("insert into a values (1, 'x')");
  const seen = [];
  const off = db.on("change", (d) => seen.push(d.tables));
  const tx = await db.transaction("write");
  await tx.execute("update a set x = 'y'");
  await assert.rejects(tx.execute("insert or rollback into a values (1, 'dup')"), (e) => e.code === "SQLITE_CONSTRAINT");
  assert.equal(tx.closed, true, "SQLite rolled it back");
  await sleep(0);
  assert.equal((await db.execute("select x from a")).rows[0].x, "x");
  assert.deepEqual(seen, [], "its writes are gone: no change event");
  await db.execute("update a set x = 'z'");
  await sleep(0);
  assert.deepEqual(seen, [["a"]], "and later writes fire as before");
  off();
  db.close();
});
