// What edgesync writes, the official @libsql/client reads back identically, and the
// other way round, for every value type — against one real sqld.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createClient as edgesyncClient } from "edgesync";
import { createClient as libsqlClient } from "@libsql/client";
import { startSqld } from "../support/sqld.mjs";

let sqld, es, ls;
before(async () => {
  sqld = await startSqld({ auth: true });
  const cfg = { url: sqld.url, authToken: sqld.tokens.rw };
  es = edgesyncClient({ ...cfg, intMode: "bigint" });
  ls = libsqlClient({ ...cfg, intMode: "bigint" });
});
after(async () => {
  es?.close();
  ls?.close();
  await sqld?.stop();
});

// Each value in the form both clients send with the same SQLite type.
const values = () => [
  ["null", null],
  ["zero", 0n],
  ["int-max", 9223372036854775807n],
  ["int-min", -9223372036854775808n],
  ["beyond-2^53", 9007199254740993n],
  ["float", 0.1 + 0.2],
  ["float-max", 1.7976931348623157e308],
  ["float-min-subnormal", 5e-324],
  ["negative-float", -1234.5678],
  ["empty-text", ""],
  ["unicode", "héllo ✓ 🦀 日本語 e\u0301 \u{10FFFF} \u0000nul"],
  ["empty-blob", new Uint8Array(0)],
  ["blob", new Uint8Array([0, 1, 127, 128, 255])],
  ["blob-1MiB", new Uint8Array(randomBytes(1024 * 1024))],
];

/** Values as comparable data: blobs as Uint8Array whatever the client returned. */
function norm(v) {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (v instanceof Uint8Array) return new Uint8Array(v);
  return v;
}

async function readAll(client, table) {
  const rs = await client.execute(`select name, v, typeof(v) as t from ${table} order by name`);
  return rs.rows.map((r) => [r.name, norm(r.v), r.t]);
}

for (const [writerName, readerName] of [["edgesync", "libsql"], ["libsql", "edgesync"]]) {
  test(`${writerName} writes, ${readerName} reads the same`, async () => {
    const writer = writerName === "edgesync" ? es : ls;
    const reader = readerName === "edgesync" ? es : ls;
    const table = `x_${writerName}`;
    await writer.execute(`create table ${table}(name text primary key, v)`);
    const vs = values();
    // Half the rows one by one, half in a batch: both paths write identically.
    for (const [name, v] of vs.slice(0, 7)) {
      await writer.execute({ sql: `insert into ${table} values (?, ?)`, args: [name, v] });
    }
    await writer.batch(
      vs.slice(7).map(([name, v]) => ({ sql: `insert into ${table} values (:name, :v)`, args: { name, v } })),
      "write",
    );
    const byWriter = await readAll(writer, table);
    const byReader = await readAll(reader, table);
    assert.deepEqual(byReader, byWriter, "both clients read the same rows");
    const expected = vs
      .map(([name, v]) => [name, norm(v)])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    assert.deepEqual(
      byReader.map(([name, v]) => [name, v]),
      expected,
      "and the rows are exactly what was written",
    );
  });
}

test("result metadata matches @libsql/client", async () => {
  await es.execute("create table meta(id integer primary key, note text)");
  const a = await es.execute({ sql: "insert into meta(note) values (?)", args: ["a"] });
  const b = await ls.execute({ sql: "insert into meta(note) values (?)", args: ["b"] });
  assert.equal(a.rowsAffected, b.rowsAffected);
  assert.equal(a.lastInsertRowid, 1n);
  assert.equal(b.lastInsertRowid, 2n);
  const q = "select id, note, id * 2 as twice from meta order by id";
  const [x, y] = [await es.execute(q), await ls.execute(q)];
  assert.deepEqual(x.columns, y.columns);
  assert.deepEqual(x.columnTypes, y.columnTypes);
  assert.deepEqual(x.rows.map((r) => ({ ...r })), y.rows.map((r) => ({ ...r })), "rows spread to the same objects");
  // With default options too, rows serialize to the same JSON.
  const cfg = { url: sqld.url, authToken: sqld.tokens.rw };
  const [p, r] = [await edgesyncClient(cfg).execute(q), await libsqlClient(cfg).execute(q)];
  assert.equal(JSON.stringify(p.rows), JSON.stringify(r.rows));
});
