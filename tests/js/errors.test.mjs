// The error contract between the wasm core and JS: one list of codes (generated from
// the Rust enum into the package's type declarations), errors shaped as
// @libsql/client's (LibsqlError / LibsqlBatchError, RangeError / TypeError), and one
// conversion of whatever a wasm export throws (js/wasm-errors.ts `adopt`), used by the
// remote client, embedded replicas, the CRDT classes and the edge classes alike.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createClient, EdgesyncError, LibsqlError, LibsqlBatchError, GCounter, Text } from "edgesync";
import { adopt, adoptClient } from "../../pkg/wasm-errors.js";

/** The `ErrorCode` union as the package declares it. */
function declaredCodes() {
  const dts = readFileSync(new URL("../../pkg/wasm/edgesync.d.ts", import.meta.url), "utf8");
  const union = dts.match(/export type ErrorCode =([^;]*);/);
  assert.ok(union, "pkg/wasm/edgesync.d.ts declares ErrorCode");
  return [...union[1].matchAll(/"([A-Z_0-9]+)"/g)].map((m) => m[1]);
}

test("the ErrorCode union is generated into the package, with the official codes, and the public API uses it", () => {
  const codes = declaredCodes();
  assert.equal(new Set(codes).size, codes.length, "no code twice");
  for (const c of [
    "URL_INVALID",
    "URL_SCHEME_NOT_SUPPORTED",
    "URL_PARAM_NOT_SUPPORTED",
    "SQLITE_CONSTRAINT",
    "SQL_PARSE_ERROR",
    "SQL_INPUT_ERROR",
    "TRANSACTION_CLOSED",
    "HRANA_WEBSOCKET_ERROR",
    "DATABASE_LOCKED",
    "SESSION_CONFLICT",
    "INTERNAL_ERROR",
  ]) {
    assert.ok(codes.includes(c), c);
  }
  for (const gone of ["SQL_CONSTRAINT", "SQL_SYNTAX_ERROR", "SQL_ERROR", "PROTOCOL_ERROR", "AUTH_REQUIRED"]) assert.ok(!codes.includes(gone), gone);
  const api = readFileSync(new URL("../../pkg/wasm-errors.d.ts", import.meta.url), "utf8");
  assert.match(api, /import type \{ ErrorCode \} from "\.\/wasm\/edgesync\.js"/);
  assert.doesNotMatch(readFileSync(new URL("../../pkg/client.d.ts", import.meta.url), "utf8"), /"URL_INVALID"/, "no second list");
});

test("every code an error carries is a declared code; local errors have extendedCode and rawCode", async () => {
  const codes = new Set(declaredCodes());
  const seen = [];
  const grab = async (f) => {
    try {
      await f();
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(e instanceof LibsqlError && e instanceof EdgesyncError, String(e));
      seen.push(e.code);
      return e;
    }
  };
  await grab(() => createClient({ url: "ftp://nope" }));
  await grab(() => createClient({ url: "http://h?x=1" }));
  await grab(() => createClient({ url: "http://h#f" }));
  await grab(() => createClient({ url: "http://127.0.0.1:9", timeout: -1 }));
  const db = createClient({ url: ":memory:" });
  await grab(() => db.execute("selec 1"));
  await db.execute("create table t (id integer primary key)");
  await db.execute("insert into t values (1)");
  const pk = await grab(() => db.execute("insert into t values (1)"));
  assert.deepEqual([pk.extendedCode, pk.rawCode, pk.name], ["SQLITE_CONSTRAINT_PRIMARYKEY", 1555, "LibsqlError"]);
  assert.match(pk.message, /^SQLITE_CONSTRAINT: UNIQUE constraint failed: t\.id$/);
  const b = await grab(() => db.batch(["select 1", "insert into t values (1)"]));
  assert.ok(b instanceof LibsqlBatchError);
  assert.deepEqual([b.name, b.statementIndex, b.code], ["LibsqlBatchError", 1, "SQLITE_CONSTRAINT"]);
  await grab(() => db.execute("select * from nowhere"));
  const tx = await db.transaction("write");
  await grab(() => db.execute("select 1"));
  await tx.commit();
  await grab(() => tx.execute("select 1"));
  db.close();
  await grab(() => db.execute("select 1"));
  await grab(() => GCounter.decode(new Uint8Array([1, 2, 3])));
  await grab(() => new Text(1).insert(5, "x"));
  for (const c of seen) assert.ok(codes.has(c), `${c} is declared`);
  assert.deepEqual(seen, [
    "URL_SCHEME_NOT_SUPPORTED",
    "URL_PARAM_NOT_SUPPORTED",
    "URL_INVALID",
    "INVALID_ARGUMENT",
    "SQLITE_ERROR",
    "SQLITE_CONSTRAINT",
    "SQLITE_CONSTRAINT",
    "SQLITE_ERROR",
    "TRANSACTION_ACTIVE",
    "TRANSACTION_CLOSED",
    "CLIENT_CLOSED",
    "DECODE_ERROR",
    "INVALID_OPERATION",
  ]);
});

test("values that cannot be bound are RangeError / TypeError, as from @libsql/client", async () => {
  const db = createClient({ url: ":memory:" });
  const kind = async (args) => {
    try {
      await db.execute({ sql: "select ?", args });
      return "no error";
    } catch (e) {
      return e.constructor.name;
    }
  };
  assert.equal(await kind([NaN]), "RangeError");
  assert.equal(await kind([-Infinity]), "RangeError");
  assert.equal(await kind([2n ** 64n]), "RangeError");
  assert.equal(await kind([new Date(NaN)]), "RangeError");
  assert.equal(await kind([undefined]), "TypeError");
  assert.equal(await kind([{}]), "TypeError");
  assert.equal(await kind([Symbol("s")]), "TypeError");
  assert.throws(() => createClient("http://h"), TypeError);
  assert.throws(() => createClient({ url: "http://h", intMode: "float" }), TypeError);
  db.close();
});

test("adopt: the one conversion, for every kind of thrown value", () => {
  // A LibsqlError is kept as it is.
  const own = new EdgesyncError("m", "SQLITE_ERROR");
  assert.equal(adopt(own), own);
  assert.equal(own.message, "SQLITE_ERROR: m");
  // An error the core built before the classes were registered gets the prototype.
  const early = Object.assign(new Error("CLIENT_CLOSED: The client is closed"), { name: "LibsqlError", code: "CLIENT_CLOSED" });
  const adopted = adopt(early);
  assert.equal(adopted, early);
  assert.ok(adopted instanceof LibsqlError);
  const earlyBatch = Object.assign(new Error("x"), { name: "LibsqlBatchError", code: "SQLITE_CONSTRAINT", statementIndex: 2 });
  assert.ok(adopt(earlyBatch) instanceof LibsqlBatchError);
  // A trap is a bug in edgesync.
  const trap = new WebAssembly.RuntimeError("unreachable");
  const internal = adopt(trap);
  assert.ok(internal instanceof LibsqlError);
  assert.equal(internal.code, "INTERNAL_ERROR");
  assert.equal(internal.cause, trap);
  assert.equal(internal.retryable, false);
  // wasm-bindgen's refusals of an argument are the caller's.
  for (const message of [
    "expected instance of GCounter",
    "null pointer passed to rust",
    "recursive use of an object detected which would lead to unsafe aliasing in rust",
    "attempted to take ownership of Rust value while it was borrowed",
  ]) {
    const e = adopt(new Error(message));
    assert.equal(e.code, "INVALID_ARGUMENT", message);
    assert.match(e.message, /^INVALID_ARGUMENT: invalid argument: /);
  }
  // A TypeError from converting a value is the caller's (the CRDT and edge classes)…
  assert.equal(adopt(new TypeError("Cannot read properties of null (reading 'length')")).code, "INVALID_ARGUMENT");
  assert.equal(adopt(new RangeError("out of memory")).code, "INTERNAL_ERROR");
  // …while the clients keep RangeError and TypeError as they are (as the official client throws them).
  const range = new RangeError("Only finite numbers");
  assert.equal(adoptClient(range), range);
  const type = new TypeError("Unsupported type of value");
  assert.equal(adoptClient(type), type);
  assert.equal(adoptClient(new Error("expected instance of GCounter")).code, "INVALID_ARGUMENT");
  assert.equal(adoptClient(trap).code, "INTERNAL_ERROR");
  // Anything else is unexpected.
  assert.equal(adopt(new Error("something else")).code, "INTERNAL_ERROR");
  assert.equal(adopt("a string").code, "INTERNAL_ERROR");
  assert.equal(adopt(undefined).code, "INTERNAL_ERROR");
});

test("the binding's own argument checks reach every wrapper as INVALID_ARGUMENT", () => {
  const g = new GCounter(1);
  const code = (f) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof LibsqlError, String(e));
      return e.code;
    }
    return "no error";
  };
  assert.equal(code(() => g.merge(new Text(2))), "INVALID_ARGUMENT"); // expected instance of
  assert.equal(code(() => g.merge(g)), "INVALID_ARGUMENT"); // recursive use
  const freed = new GCounter(2);
  freed.free();
  assert.equal(code(() => freed.value()), "INVALID_ARGUMENT"); // null pointer
  g.free();
});
