// The data half of issue 13 from the package (wasm in Node) against a real sqld:
// what each policy does with each value, schema changes (replicate() again,
// migrate()), writes by @libsql/client on the server, and lone surrogates.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "edgesync";
import { dump, env, scalar } from "../support/sync-env.mjs";
import { guardUnhandledRejections, rejectsWith } from "../support/sync-helpers.mjs";

guardUnhandledRejections();

const SCHEMA = "create table v (id integer primary key, l, c integer, s text, t text)";
const POLICIES = { c: "counter", s: "set", t: "text" };

async function replicaOf(e) {
  const db = e.replica();
  await db.execute(SCHEMA);
  db.replicate("v", POLICIES);
  return db;
}

test("NULL replicates as NULL; what a policy cannot hold is refused by the statement (UNSUPPORTED_VALUE)", async () => {
  const e = await env();
  try {
    const [a, b] = [await replicaOf(e), await replicaOf(e)];
    await a.execute("insert into v values (1, 'l', 5, '[\"a\"]', 'text')");
    await a.sync();
    await b.sync();
    await a.execute("update v set l = NULL, c = NULL, s = NULL, t = NULL where id = 1");
    await a.sync();
    await b.sync();
    const nulls = [[1, null, null, null, null]];
    assert.deepEqual(await dump(a, "v"), nulls);
    assert.deepEqual(await dump(b, "v"), nulls, "the text arrived as '' and the counter as 0 before");
    assert.deepEqual(await dump(e.server, "v"), nulls);

    for (const [sql, args] of [
      ["update v set t = ? where id = 1", [new Uint8Array([0, 255])]],
      ["update v set c = ? where id = 1", ["abc"]],
      ["update v set c = ? where id = 1", [1.5]],
      ["update v set c = ? where id = 1", [-(2n ** 63n)]],
      ["update v set s = ? where id = 1", ["not an array"]],
    ]) {
      await rejectsWith(a.execute({ sql, args }), "UNSUPPORTED_VALUE");
    }
    await rejectsWith(a.batch(["update v set l = 1", { sql: "update v set c = ?", args: [0.5] }], "write"), "UNSUPPORTED_VALUE");
    assert.equal(await scalar(a, "select l from v"), null, "the batch was rolled back");
    // Two +6e18 on two replicas: saturates, and syncs keep working.
    await a.execute("update v set c = 0");
    await a.sync();
    await b.sync();
    await a.execute("update v set c = c + 6000000000000000000");
    await b.execute("update v set c = c + 6000000000000000000");
    for (let i = 0; i < 2; i++) for (const r of [a, b]) await r.sync();
    assert.equal(await scalar(a, "select c from v"), 2n ** 63n - 1n);
    assert.equal(await scalar(b, "select c from v"), 2n ** 63n - 1n);
  } finally {
    await e.stop();
  }
});

test("an added column: replicate() again, the server follows, another replica migrate()s", async () => {
  const e = await env();
  try {
    const [a, b] = [await replicaOf(e), await replicaOf(e)];
    await a.execute("insert into v (id, l) values (1, 'x')");
    await a.sync();
    await b.sync();
    await a.execute("alter table v add column color text default 'none'");
    // Not declared yet: a mismatch, not a silent success.
    await rejectsWith(a.sync(), "SCHEMA_MISMATCH");
    a.replicate("v", POLICIES);
    await a.execute("update v set color = 'blue'");
    await a.sync();
    assert.equal(await scalar(e.server, "select color from v"), "blue");
    const err = await rejectsWith(b.sync(), "SCHEMA_MISMATCH");
    assert.match(err.message, /migrate\(\)/);
    const ran = await b.migrate();
    assert.equal(ran.length, 1);
    assert.match(ran[0], /ADD COLUMN color text default 'none'/);
    await b.sync();
    assert.equal(await scalar(b, "select color from v"), "blue");
    assert.deepEqual(await b.migrate(), []);
    // Other changes stay refused.
    assert.throws(() => a.replicate("v", { ...POLICIES, c: "lww" }), (x) => x.code === "SCHEMA_ERROR");
  } finally {
    await e.stop();
  }
});

test("migrate() runs in turn with syncs, and close() waits for it: the file is free once close() resolves", async () => {
  const e = await env();
  const dir = mkdtempSync(join(tmpdir(), "edgesync-migrate-"));
  try {
    const a = await replicaOf(e);
    const file = join(dir, "b.db");
    const b = e.replica({ url: `file:${file}` });
    await b.execute(SCHEMA);
    b.replicate("v", POLICIES);
    await b.sync();
    await a.execute("alter table v add column color text default 'none'");
    a.replicate("v", POLICIES);
    await a.execute("insert into v (id, l, color) values (1, 'x', 'red')");
    await a.sync();
    // A sync queued before migrate() fails (the mismatch); one queued after it works.
    const order = [];
    const before = b.sync().then(() => order.push("sync before: ok"), (x) => order.push(`sync before: ${x.code}`));
    const migrated = b.migrate().then((ran) => order.push(`migrate: ${ran.length}`));
    const after = b.sync().then(() => order.push("sync after: ok"), (x) => order.push(`sync after: ${x.code}`));
    await Promise.all([before, migrated, after]);
    assert.deepEqual(order, ["sync before: SCHEMA_MISMATCH", "migrate: 1", "sync after: ok"]);
    assert.equal(await scalar(b, "select color from v where id = 1"), "red");
    // close() while a migrate() is in flight: resolves once it is over and the file is free.
    await a.execute("alter table v add column size integer");
    a.replicate("v", POLICIES);
    await a.sync();
    const pending = b.migrate().catch((x) => x.code);
    await b.close();
    const again = e.replica({ url: `file:${file}` });
    assert.equal(await scalar(again, "select count(*) from v"), 1);
    await pending;
    await again.close();
    a.close();
  } finally {
    await e.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("writes by @libsql/client on the server reach every replica; bad values are refused there", async () => {
  const e = await env();
  try {
    const [a, b] = [await replicaOf(e), await replicaOf(e)];
    await a.execute("insert into v values (1, 'from a', 1, '[]', 'hi')");
    await a.sync();
    await b.sync();
    await e.server.execute("insert into v values (2, 'from the server', 3, '[\"x\"]', 'seeded')");
    await e.server.execute("update v set c = c + 10, l = 'touched' where id = 1");
    await e.server.execute("delete from v where id = 2");
    await e.server.execute("insert into v (id, l) values (3, 'another')");
    await b.execute("update v set c = c + 1 where id = 1");
    for (let i = 0; i < 2; i++) for (const r of [a, b]) await r.sync();
    const want = await dump(e.server, "v");
    assert.deepEqual(want[0], [1, "touched", 12, "[]", "hi"]);
    assert.deepEqual(await dump(a, "v"), want);
    assert.deepEqual(await dump(b, "v"), want);
    await assert.rejects(e.server.execute("update v set c = 'abc' where id = 1"), /UNSUPPORTED_VALUE/);
    await assert.rejects(e.server.execute("update v set t = 'rewritten' where id = 1"), /UNSUPPORTED_VALUE/);
  } finally {
    await e.stop();
  }
});

test("lone surrogates are refused with INVALID_ARGUMENT (local and remote SQL), never stored as U+FFFD", async () => {
  const e = await env();
  try {
    const a = await replicaOf(e);
    const remote = createClient({ url: e.sqld.url, authToken: e.sqld.tokens.rw });
    try {
      for (const db of [a, remote]) {
        await db.execute("create table if not exists w (id integer primary key, s text)");
        await rejectsWith(db.execute({ sql: "insert into w values (1, ?)", args: ["a\uD800b"] }), "INVALID_ARGUMENT");
        await rejectsWith(db.execute({ sql: "insert into w values (1, ?)", args: ["x".repeat(80) + "\uDC00"] }), "INVALID_ARGUMENT");
        await rejectsWith(db.execute({ sql: "insert into w values (1, :s)", args: { s: "\uD83D" } }), "INVALID_ARGUMENT");
        await rejectsWith(db.execute("insert into w values (1, '\uD800')"), "INVALID_ARGUMENT");
        await db.execute({ sql: "insert into w values (2, ?)", args: ["ok \uFFFD \u{1F600}"] });
        assert.equal(await scalar(db, "select s from w where id = 2"), "ok \uFFFD \u{1F600}");
        assert.equal(await scalar(db, "select count(*) from w"), 1);
      }
    } finally {
      remote.close();
    }
  } finally {
    await e.stop();
  }
});
