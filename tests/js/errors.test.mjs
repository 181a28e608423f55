// The error contract between the wasm core and JS: one list of codes (generated from
// the Rust enum into the package's type declarations) and one conversion of whatever a
// wasm export throws into an EdgesyncError (js/wasm-errors.ts `adopt`), used by the
// remote client, embedded replicas, the CRDT classes and the edge classes alike.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createClient, EdgesyncError, GCounter, Text } from "edgesync";
import { adopt } from "../../pkg/wasm-errors.js";

/** The `ErrorCode` union as the package declares it. */
function declaredCodes() {
  const dts = readFileSync(new URL("../../pkg/wasm/edgesync.d.ts", import.meta.url), "utf8");
  const union = dts.match(/export type ErrorCode =([^;]*);/);
  assert.ok(union, "pkg/wasm/edgesync.d.ts declares ErrorCode");
  return [...union[1].matchAll(/"([A-Z_]+)"/g)].map((m) => m[1]);
}

test("the ErrorCode union is generated into the package and the public API uses it", () => {
  const codes = declaredCodes();
  assert.equal(new Set(codes).size, codes.length, "no code twice");
  for (const c of ["URL_INVALID", "SQL_CONSTRAINT", "DATABASE_LOCKED", "SESSION_CONFLICT", "INTERNAL_ERROR"]) {
    assert.ok(codes.includes(c), c);
  }
  const api = readFileSync(new URL("../../pkg/wasm-errors.d.ts", import.meta.url), "utf8");
  assert.match(api, /import type \{ ErrorCode \} from "\.\/wasm\/edgesync\.js"/);
  assert.doesNotMatch(readFileSync(new URL("../../pkg/client.d.ts", import.meta.url), "utf8"), /"URL_INVALID"/, "no second list");
});

test("every code an error carries is a declared code", async () => {
  const codes = new Set(declaredCodes());
  const seen = [];
  const grab = async (f) => {
    try {
      await f();
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(e instanceof EdgesyncError, String(e));
      seen.push(e.code);
    }
  };
  await grab(() => createClient({ url: "ftp://nope" }));
  await grab(() => createClient({ url: "http://127.0.0.1:9", timeout: -1 }));
  const db = createClient({ url: ":memory:" });
  await grab(() => db.execute("selec 1"));
  await db.execute("create table t (id integer primary key)");
  await db.execute("insert into t values (1)");
  await grab(() => db.execute("insert into t values (1)"));
  await grab(() => db.execute("select * from nowhere"));
  db.close();
  await grab(() => db.execute("select 1"));
  await grab(() => GCounter.decode(new Uint8Array([1, 2, 3])));
  await grab(() => new Text(1).insert(5, "x"));
  for (const c of seen) assert.ok(codes.has(c), `${c} is declared`);
  assert.deepEqual(seen, [
    "URL_INVALID",
    "INVALID_ARGUMENT",
    "SQL_SYNTAX_ERROR",
    "SQL_CONSTRAINT",
    "SQL_ERROR",
    "CLIENT_CLOSED",
    "DECODE_ERROR",
    "INVALID_OPERATION",
  ]);
});

test("adopt: the one conversion, for every kind of thrown value", () => {
  // An EdgesyncError is kept as it is.
  const own = new EdgesyncError("m", "SQL_ERROR");
  assert.equal(adopt(own), own);
  // An error the core built before the class was registered gets the prototype.
  const early = Object.assign(new Error("the client is closed"), { name: "EdgesyncError", code: "CLIENT_CLOSED" });
  const adopted = adopt(early);
  assert.equal(adopted, early);
  assert.ok(adopted instanceof EdgesyncError);
  assert.equal(adopted.code, "CLIENT_CLOSED");
  // A trap is a bug in edgesync.
  const trap = new WebAssembly.RuntimeError("unreachable");
  const internal = adopt(trap);
  assert.ok(internal instanceof EdgesyncError);
  assert.equal(internal.code, "INTERNAL_ERROR");
  assert.equal(internal.cause, trap);
  assert.equal(internal.retryable, false);
  // wasm-bindgen's refusals of an argument, and TypeErrors from converting one, are the caller's.
  for (const message of [
    "expected instance of GCounter",
    "null pointer passed to rust",
    "recursive use of an object detected which would lead to unsafe aliasing in rust",
    "attempted to take ownership of Rust value while it was borrowed",
  ]) {
    const e = adopt(new Error(message));
    assert.equal(e.code, "INVALID_ARGUMENT", message);
    assert.match(e.message, /^invalid argument: /);
  }
  assert.equal(adopt(new TypeError("Cannot read properties of null (reading 'length')")).code, "INVALID_ARGUMENT");
  // Anything else is unexpected.
  assert.equal(adopt(new Error("something else")).code, "INTERNAL_ERROR");
  assert.equal(adopt(new RangeError("out of memory")).code, "INTERNAL_ERROR");
  assert.equal(adopt("a string").code, "INTERNAL_ERROR");
  assert.equal(adopt(undefined).code, "INTERNAL_ERROR");
});

test("the binding's own argument checks reach every wrapper as INVALID_ARGUMENT", () => {
  const g = new GCounter(1);
  const code = (f) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof EdgesyncError, String(e));
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
