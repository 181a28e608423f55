// A trap in the wasm module (here: out of memory; wasm32 has 4 GiB) never surfaces as a
// bare `RuntimeError`, and never takes more than the object it happened in:
//   - Text grows fallibly: an insert the memory cannot hold is INVALID_OPERATION, and the
//     text is unchanged and usable;
//   - a trap inside a call is INTERNAL_ERROR; that object (a CRDT, an embedded replica's
//     client) is retired (its later calls are INTERNAL_ERROR naming the first, without
//     entering the module; free() and close() do nothing more), and every other object
//     goes on working.
// Run in a child process: it takes the module's memory to its 4 GiB limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { REPO_ROOT } from "../support/sqld.mjs";

const CHILD = `
import { LWWMap, PNCounter, Text, EdgesyncError, createClient } from "edgesync";
const out = {};
const db = createClient({ url: ":memory:" });
await db.execute("create table t (x)");
const m = new LWWMap(1);
const blob = new Uint8Array(450_000_000);
for (let i = 0; i < 8; i++) m.set("k" + i, blob); // 3.6 GB of the 4 GiB
const t = new Text(2);
t.insert(0, "abc");
try {
  t.insert(1, "y".repeat(150_000_000)); // 600 MB of characters: more than is left
  out.insert = "no error";
} catch (e) {
  out.insert = [e instanceof EdgesyncError, e.code, e.message];
}
out.textAfter = [t.toString(), t.length];
let trap;
for (let i = 8; i < 20 && trap === undefined; i++) {
  try { m.set("k" + i, blob); } catch (e) { trap = e; }
}
out.trap = trap && [trap instanceof EdgesyncError, trap.code, trap.message, trap.cause?.constructor?.name];
try { m.size; out.after = "usable"; } catch (e) { out.after = [e.code, e.message]; }
try { m.get("k0"); out.after2 = "usable"; } catch (e) { out.after2 = [e.code, e.message]; }
try { m.free(); out.free = "ok"; } catch (e) { out.free = String(e); }
// An embedded replica: a trap in its call retires the client; close() still works.
try { await db.execute({ sql: "insert into t values (?)", args: [blob] }); out.db = "no error"; } catch (e) { out.db = [e.code, e.message]; }
try { await db.execute("select 1"); out.dbAfter = "usable"; } catch (e) { out.dbAfter = [e.code, e.message]; }
try { await db.close(); out.dbClose = "ok"; } catch (e) { out.dbClose = String(e); }
t.insert(3, "d");
const c = new PNCounter(3);
c.increment(5);
out.others = [t.toString(), c.value()];
process.stdout.write(JSON.stringify(out));
`;

test("out of memory: a Text insert is INVALID_OPERATION and the text stays usable; a trap retires only its object", () => {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", CHILD], { cwd: REPO_ROOT, encoding: "utf8", timeout: 180_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.insert.slice(0, 2), [true, "INVALID_OPERATION"], JSON.stringify(out.insert));
  assert.match(out.insert[2], /out of memory/);
  assert.deepEqual(out.textAfter, ["abc", 3], "the text is unchanged");
  assert.ok(out.trap, "filling the memory ends in a trap");
  assert.deepEqual(out.trap.slice(0, 2), [true, "INTERNAL_ERROR"], JSON.stringify(out.trap));
  assert.equal(out.trap[3], "RuntimeError", "the trap is the cause");
  for (const after of [out.after, out.after2]) {
    assert.equal(after[0], "INTERNAL_ERROR", JSON.stringify(after));
    assert.match(after[1], /left unusable by an earlier internal error/);
  }
  assert.equal(out.free, "ok", "free() of a retired object does not throw");
  assert.equal(out.db[0], "INTERNAL_ERROR", JSON.stringify(out.db));
  assert.equal(out.dbAfter[0], "INTERNAL_ERROR", JSON.stringify(out.dbAfter));
  assert.match(out.dbAfter[1], /left unusable/);
  assert.equal(out.dbClose, "ok");
  assert.deepEqual(out.others, ["abcd", 5], "other objects go on working");
});
