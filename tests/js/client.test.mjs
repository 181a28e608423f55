// The edgesync npm package (pkg/, wasm in Node) against a real sqld.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { createHash, randomBytes } from "node:crypto";
import { createClient, EdgesyncError, LibsqlBatchError } from "edgesync";
import { startSqld } from "../support/sqld.mjs";

let sqld;
let db;
const unhandled = [];
process.on("unhandledRejection", (e) => unhandled.push(e));

before(async () => {
  sqld = await startSqld({ auth: true });
  db = createClient({ url: sqld.url, authToken: sqld.tokens.rw });
});
after(async () => {
  db?.close();
  await sqld?.stop();
  assert.deepEqual(unhandled, [], "no unhandled promise rejections");
});

/** Rejects with an EdgesyncError carrying `code`. */
async function rejectsWith(promise, code, extra = {}) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof EdgesyncError, `an EdgesyncError, got ${e?.constructor?.name}: ${e}`);
    assert.ok(e instanceof Error);
    assert.equal(e.code, code, e.message);
    assert.equal(typeof e.message, "string");
    for (const [k, v] of Object.entries(extra)) assert.equal(e[k], v, k);
    return true;
  });
}

test("every SQLite value type round-trips exactly", async () => {
  await db.execute("create table vals(id integer primary key, x)");
  const mib = randomBytes(1024 * 1024);
  const cases = [
    [null, null, "null"],
    [0, 0, "integer"],
    [-42, -42, "integer"],
    [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, "integer"],
    [9223372036854775807n, 9223372036854775807n, "integer"],
    [-9223372036854775808n, -9223372036854775808n, "integer"],
    [9007199254740993n, 9007199254740993n, "integer"],
    [12n, 12, "integer"],
    [true, 1, "integer"],
    [false, 0, "integer"],
    [0.1 + 0.2, 0.30000000000000004, "real"],
    [1e308, 1e308, "real"],
    [-5e-324, -5e-324, "real"],
    [2.5, 2.5, "real"],
    ["", "", "text"],
    ["héllo ✓ 🦀 日本語 e\u0301 \u0000nul", "héllo ✓ 🦀 日本語 e\u0301 \u0000nul", "text"],
    [new Uint8Array([]), new Uint8Array([]).buffer, "blob"],
    [new Uint8Array([0, 255, 1, 254]), new Uint8Array([0, 255, 1, 254]).buffer, "blob"],
    [new Uint8Array([9, 8, 7]).buffer, new Uint8Array([9, 8, 7]).buffer, "blob"],
    [new DataView(new Uint8Array([5, 6, 7, 8]).buffer, 1, 2), new Uint8Array([6, 7]).buffer, "blob"],
    [Buffer.from("buf"), new Uint8Array([98, 117, 102]).buffer, "blob"],
    [new Date(1700000000123), 1700000000123, "integer"],
  ];
  for (const [i, [input]] of cases.entries()) {
    const rs = await db.execute({ sql: "insert into vals values (?, ?)", args: [i, input] });
    assert.equal(rs.rowsAffected, 1);
    assert.equal(rs.lastInsertRowid, BigInt(i));
  }
  const rs = await db.execute("select x, typeof(x) as t from vals order by id");
  for (const [i, [, want, type]] of cases.entries()) {
    assert.deepEqual(rs.rows[i].x, want, `case ${i}`);
    assert.equal(rs.rows[i][1], type, `case ${i} type`);
  }
  // A 1 MiB blob.
  await db.execute({ sql: "insert into vals values (1000, ?)", args: [mib] });
  const back = (await db.execute("select x from vals where id = 1000")).rows[0].x;
  assert.ok(back instanceof ArrayBuffer, "BLOBs are ArrayBuffers, as from @libsql/client");
  assert.equal(back.byteLength, mib.length);
  assert.equal(createHash("sha256").update(new Uint8Array(back)).digest("hex"), createHash("sha256").update(mib).digest("hex"));
  // -0 survives as a float.
  const z = (await db.execute({ sql: "select ? as z", args: [-0.5 * 0] })).rows[0].z;
  assert.ok(Object.is(z, 0) || Object.is(z, -0));
});

test("intMode decides how integers come back", async () => {
  const sql = "select 1 as small, 9007199254740993 as big";
  const auto = (await db.execute(sql)).rows[0];
  assert.equal(auto.small, 1);
  assert.equal(auto.big, 9007199254740993n);
  const bi = createClient({ url: sqld.url, authToken: sqld.tokens.rw, intMode: "bigint" });
  assert.deepEqual([...Object.values((await bi.execute(sql)).rows[0])], [1n, 9007199254740993n]);
  const str = createClient({ url: sqld.url, authToken: sqld.tokens.rw, intMode: "string" });
  assert.deepEqual([...Object.values((await str.execute(sql)).rows[0])], ["1", "9007199254740993"]);
  assert.throws(() => createClient({ url: sqld.url, intMode: "float" }), TypeError);
  const num = createClient({ url: sqld.url, authToken: sqld.tokens.rw, intMode: "number" });
  await assert.rejects(num.execute(sql), RangeError, "intMode number: a RangeError beyond 2^53, as from @libsql/client");
  assert.equal((await num.execute("select 5 as n")).rows[0].n, 5);
  for (const c of [bi, str, num]) c.close();
});

test("statements: string, object, tuple, (sql, args); positional and named", async () => {
  const one = async (...a) => (await db.execute(...a)).rows[0][0];
  assert.equal(await one("select 7"), 7);
  assert.equal(await one({ sql: "select ? + ?", args: [1, 2] }), 3);
  assert.equal(await one(["select ?1 || ?2", ["a", "b"]]), "ab");
  assert.equal(await one("select ?", [5]), 5);
  assert.equal(await one({ sql: "select :a + @b + $c", args: { a: 1, "@b": 2, $c: 3 } }), 6);
  assert.equal(await one("select :x", { x: "named" }), "named");
});

test("rows read by index and by name, like @libsql/client", async () => {
  const rs = await db.execute("select 1 as a, 'two' as b, 3 as a");
  assert.deepEqual(rs.columns, ["a", "b", "a"]);
  const row = rs.rows[0];
  assert.equal(row.length, 3);
  assert.equal(row[0], 1);
  assert.equal(row[2], 3);
  assert.equal(row.a, 1, "the first column of a name wins");
  assert.equal(row.b, "two");
  assert.deepEqual(Object.keys(row), ["a", "b"]);
  assert.deepEqual(JSON.parse(JSON.stringify(rs)).rows, [[1, "two", 3]]);
  const json = JSON.parse(JSON.stringify(await db.execute("select 9223372036854775807 as n, x'0102' as b")));
  assert.deepEqual(json.rows, [["9223372036854775807", "AQI="]], "bigints as strings, BLOBs as base64");
});

test("batch is atomic and reports the failing step", async () => {
  await db.execute("create table acct(id integer primary key, bal integer not null check (bal >= 0))");
  const ok = await db.batch(
    ["insert into acct values (1, 100)", { sql: "insert into acct values (?, ?)", args: [2, 50] }, "select sum(bal) from acct"],
    "write",
  );
  assert.equal(ok.length, 3);
  assert.equal(ok[2].rows[0][0], 150);
  await rejectsWith(
    db.batch(["update acct set bal = bal + 80 where id = 2", "update acct set bal = bal - 80 where id = 1", "update acct set bal = bal - 200 where id = 1"], "write"),
    "SQLITE_CONSTRAINT",
    { statementIndex: 2, name: "LibsqlBatchError" },
  );
  const after = await db.execute("select bal from acct order by id");
  assert.deepEqual(after.rows.map((r) => r.bal), [100, 50], "nothing of the failed batch was committed");
  const read = await db.batch(["select count(*) from acct"], "read");
  assert.equal(read[0].rows[0][0], 2);
  assert.deepEqual(await db.batch([]), []);
  await assert.rejects(db.batch(["select 1"], "sometimes"), RangeError);
  await assert.rejects(db.batch("select 1"), TypeError);
});

test("SQL errors carry the server's codes, as from @libsql/client", async () => {
  await db.execute("create table u(id integer primary key, email text unique not null)");
  await db.execute("insert into u values (1, 'a@x')");
  await rejectsWith(db.execute("selec 1"), "SQL_PARSE_ERROR");
  await rejectsWith(db.execute("insert into u values (1, 'b@x')"), "SQLITE_CONSTRAINT", { serverCode: "SQLITE_CONSTRAINT" });
  await rejectsWith(db.execute("insert into u values (2, 'a@x')"), "SQLITE_CONSTRAINT");
  await rejectsWith(db.execute("insert into u values (3, null)"), "SQLITE_CONSTRAINT");
  await rejectsWith(db.execute("select * from nowhere"), "SQLITE_UNKNOWN");
  await rejectsWith(db.execute("create table u(x)"), "SQL_INPUT_ERROR");
});

test("bad arguments are rejected before anything is sent: RangeError and TypeError, as from @libsql/client", async () => {
  for (const v of [NaN, Infinity, 2n ** 64n, new Date(NaN)]) await assert.rejects(db.execute({ sql: "select ?", args: [v] }), RangeError, String(v));
  for (const v of [undefined, { a: 1 }, Symbol("s"), () => 1]) await assert.rejects(db.execute({ sql: "select ?", args: [v] }), TypeError, String(v));
  await assert.rejects(db.execute({ sql: "select ?", args: "nope" }), TypeError);
  await assert.rejects(db.execute({ sql: 42 }), TypeError);
  await assert.rejects(db.execute(null), TypeError);
  await assert.rejects(db.execute(), TypeError);
});

test("configuration errors are thrown by createClient", () => {
  const code = (cfg) => {
    try {
      createClient(cfg);
    } catch (e) {
      assert.ok(e instanceof EdgesyncError);
      return e.code;
    }
    return "no error";
  };
  assert.equal(code({ url: "localhost:8080" }), "URL_SCHEME_NOT_SUPPORTED");
  assert.equal(code({ url: "ftp://h" }), "URL_SCHEME_NOT_SUPPORTED");
  assert.equal(code({ url: "http://h:99999" }), "URL_INVALID");
  assert.equal(code({ url: "http://exa mple" }), "URL_INVALID");
  assert.equal(code({ url: "" }), "URL_INVALID");
  assert.equal(code({}), "URL_INVALID");
  assert.equal(code({ url: 5 }), "URL_INVALID");
  assert.throws(() => createClient(undefined), TypeError);
  assert.equal(code({ url: "http://h", timeout: -1 }), "INVALID_ARGUMENT");
  assert.equal(code({ url: "http://h", authToken: "a\nb" }), "INVALID_ARGUMENT");
  assert.equal(code({ url: "http://h", fetch: "no" }), "INVALID_ARGUMENT");
  assert.equal(code({ url: "http://h", encryptionKey: "k" }), "ENCRYPTION_KEY_NOT_SUPPORTED");
  assert.equal(createClient({ url: "libsql://db.example.com" }).protocol, "http");
  assert.equal(createClient({ url: "libsql://127.0.0.1:1?tls=0" }).protocol, "http");
  assert.equal(code({ url: "libsql://127.0.0.1?tls=0" }), "URL_INVALID", "tls=0 needs a port");
  // @libsql/client's fields are accepted.
  createClient({ url: "http://h", tls: false, concurrency: 5, readYourWrites: true, offline: false }).close();
});

test("auth failures: SERVER_ERROR with the HTTP status, as from @libsql/client", async () => {
  await rejectsWith(createClient({ url: sqld.url }).execute("select 1"), "SERVER_ERROR", { status: 401, retryable: false });
  await rejectsWith(createClient({ url: sqld.url, authToken: "garbage" }).execute("select 1"), "SERVER_ERROR", { status: 401 });
  const expired = sqld.makeToken({ a: "rw", exp: 1000 });
  await rejectsWith(createClient({ url: sqld.url, authToken: expired }).execute("select 1"), "SERVER_ERROR", { status: 401 });
  const ro = createClient({ url: sqld.url, authToken: sqld.tokens.ro });
  assert.equal((await ro.execute("select 2")).rows[0][0], 2);
  await rejectsWith(ro.execute("create table nope(x)"), "SERVER_ERROR", { status: 403 });
  await rejectsWith(ro.batch(["select 1", "insert into vals values (5000, 1)"], "write"), "SERVER_ERROR", { status: 403 });
});

/** A loopback TCP server with a custom behaviour per connection. */
async function rawServer(onConnection) {
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    onConnection(s);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

test("network failures: refused, timeout, cut mid-response, not Hrana, 5xx", async () => {
  const port = await new Promise((r) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
  await rejectsWith(createClient({ url: `http://127.0.0.1:${port}` }).execute("select 1"), "SERVER_UNREACHABLE", { retryable: true });

  const silent = await rawServer(() => {});
  const t0 = Date.now();
  await rejectsWith(createClient({ url: silent.url, timeout: 300 }).execute("select 1"), "TIMEOUT", { retryable: true });
  assert.ok(Date.now() - t0 < 5000, "the timeout fired");
  await silent.close();

  const cut = await rawServer((s) =>
    s.once("data", () => {
      s.write("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"baton\":null,\"resu");
      setTimeout(() => s.destroy(), 20);
    }),
  );
  await rejectsWith(createClient({ url: cut.url }).execute("select 1"), "SERVER_UNREACHABLE");
  await cut.close();

  const html = await rawServer((s) =>
    s.once("data", () => s.end("HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\nconnection: close\r\n\r\n<html>")),
  );
  await rejectsWith(createClient({ url: html.url }).execute("select 1"), "HRANA_PROTO_ERROR");
  await html.close();

  const bad = await rawServer((s) =>
    s.once("data", () => s.end("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\nbusy")),
  );
  await rejectsWith(createClient({ url: bad.url }).execute("select 1"), "SERVER_ERROR", { status: 503, retryable: true });
  await bad.close();
});

test("a custom fetch is used when given, called with one Request", async () => {
  const seen = [];
  const c = createClient({
    url: sqld.url,
    authToken: sqld.tokens.rw,
    fetch: (req, init) => {
      seen.push([req.url, req.method, init]);
      return fetch(req);
    },
  });
  assert.equal((await c.execute("select 3")).rows[0][0], 3);
  assert.deepEqual(seen, [[`${sqld.url}/v3/pipeline`, "POST", undefined]]);
  const throwing = createClient({ url: sqld.url, fetch: () => { throw new TypeError("boom"); } });
  await rejectsWith(throwing.execute("select 1"), "SERVER_UNREACHABLE");
});

test("many concurrent requests on one client", async () => {
  const results = await Promise.all(Array.from({ length: 64 }, (_, i) => db.execute({ sql: "select ?", args: [i] })));
  assert.deepEqual(results.map((r) => r.rows[0][0]), Array.from({ length: 64 }, (_, i) => i));
});

test("close() makes later calls fail with CLIENT_CLOSED", async () => {
  const c = createClient({ url: sqld.url, authToken: sqld.tokens.rw });
  assert.equal(c.closed, false);
  c.close();
  assert.equal(c.closed, true);
  await rejectsWith(c.execute("select 1"), "CLIENT_CLOSED");
  await rejectsWith(c.batch(["select 1"]), "CLIENT_CLOSED");
});

test("a killed server is reported, and a restarted one is used again", async () => {
  const own = await startSqld({ auth: false });
  try {
    const c = createClient({ url: own.url });
    await c.execute("create table k(x)");
    await c.execute("insert into k values (1)");
    await own.kill();
    await rejectsWith(c.execute("select count(*) from k"), "SERVER_UNREACHABLE");
    await own.restart();
    assert.equal((await c.execute("select count(*) from k")).rows[0][0], 1);
  } finally {
    await own.stop();
  }
});
