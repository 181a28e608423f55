// The Resolver from the built package, in Node (wasm): named objects of every type,
// operations with validation, sync by updates and by merge, the operation log,
// persistence, conflict stats, and error codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Resolver, EdgesyncError } from "edgesync";

function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof EdgesyncError, `an EdgesyncError: ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

/** Creates one object of each type and edits it. */
function edit(r, n) {
  r.getCRDT("likes", "gcounter");
  r.getCRDT("stock", "pncounter");
  r.getCRDT("tags", "orset");
  r.getCRDT("title", "lwwregister");
  r.getCRDT("profile", "lwwmap");
  r.getCRDT("doc", "text");
  r.applyOperation("likes", "increment", { nodeId: `node-${n}`, amount: n + 1 });
  r.applyOperation("stock", "decrement", { amount: 2 });
  r.applyOperation("tags", "add", { value: `t${n}` });
  r.applyOperation("title", "set", { value: `title ${n}` });
  r.applyOperation("profile", "set", { key: `k${n}`, value: n });
  r.applyOperation("doc", "insert", { index: 0, text: `${n}` });
}

function values(r) {
  const out = {};
  for (const id of r.ids()) {
    const type = r.getConflictStats()[id].type;
    out[id] = r.getCRDT(id, type).value;
  }
  return out;
}

test("getCRDT creates or returns, with a snapshot value", () => {
  const r = new Resolver("edge-1");
  assert.equal(typeof r.siteId, "bigint");
  assert.deepEqual(r.getCRDT("likes", "gcounter"), { id: "likes", type: "gcounter", value: 0 });
  r.applyOperation("likes", "increment", { nodeId: "n1", amount: 5 });
  r.applyOperation("likes", "increment");
  assert.deepEqual(r.getCRDT("likes", "gcounter"), { id: "likes", type: "gcounter", value: 6 });
  assert.equal(r.getCRDT("reg", "lwwregister").value, undefined);
  r.applyOperation("reg", "set", { value: "hello" });
  assert.equal(r.getCRDT("reg", "lwwregister").value, "hello");
  r.getCRDT("map", "lwwmap");
  r.applyOperation("map", "set", { key: "a", value: 1 });
  r.applyOperation("map", "set", { key: "b", value: new Uint8Array([1, 2]) });
  r.applyOperation("map", "delete", { key: "a" });
  assert.deepEqual(r.getCRDT("map", "lwwmap").value, { b: new Uint8Array([1, 2]) });
  r.getCRDT("set", "orset");
  r.applyOperation("set", "add", { value: "x" });
  r.applyOperation("set", "add", { value: 2 });
  r.applyOperation("set", "remove", { value: "x" });
  assert.deepEqual(r.getCRDT("set", "orset").value, [2]);
  r.getCRDT("doc", "text");
  r.applyOperation("doc", "insert", { index: 0, text: "héllo 👋" });
  r.applyOperation("doc", "deleteText", { index: 1, length: 1 });
  assert.equal(r.getCRDT("doc", "text").value, "hllo 👋");
  r.getCRDT("pn", "PNCounter");
  r.applyOperation("pn", "decrement", { amount: 3n });
  assert.equal(r.getCRDT("pn", "pncounter").value, -3);
  assert.deepEqual(r.ids(), ["doc", "likes", "map", "pn", "reg", "set"]);
  r.free();
});

test("validation: clear errors with codes, nothing logged", () => {
  const r = new Resolver(1);
  r.getCRDT("likes", "gcounter");
  throwsCode(() => r.getCRDT("likes", "text"), "INVALID_OPERATION");
  throwsCode(() => r.getCRDT("x", "tree"), "INVALID_OPERATION");
  throwsCode(() => r.getCRDT(1, "text"), "INVALID_ARGUMENT");
  throwsCode(() => r.applyOperation("nope", "increment", {}), "INVALID_OPERATION");
  throwsCode(() => r.applyOperation("likes", "decrement", {}), "INVALID_OPERATION");
  throwsCode(() => r.applyOperation("likes", "increment", { amount: -1 }), "INVALID_ARGUMENT");
  throwsCode(() => r.applyOperation("likes", "increment", { amount: 1.5 }), "INVALID_ARGUMENT");
  throwsCode(() => r.applyOperation("likes", "increment", { amuont: 1 }), "INVALID_ARGUMENT");
  throwsCode(() => r.applyOperation("likes", "increment", [1]), "INVALID_ARGUMENT");
  throwsCode(() => r.applyOperation("likes", "increment", { amount: {} }), "INVALID_ARGUMENT");
  r.getCRDT("doc", "text");
  throwsCode(() => r.applyOperation("doc", "insert", { index: 0 }), "INVALID_ARGUMENT");
  throwsCode(() => r.applyOperation("doc", "insert", { index: 5, text: "x" }), "INVALID_OPERATION");
  throwsCode(() => r.applyOperation("doc", "delete", { index: 0, length: 1 }), "INVALID_OPERATION");
  assert.deepEqual(r.operationLog(), []);
  throwsCode(() => r.applyUpdates(new Uint8Array([1, 2, 3])), "DECODE_ERROR");
  throwsCode(() => r.applyUpdates("nope"), "INVALID_ARGUMENT");
  throwsCode(() => r.encodeUpdatesSince(new Uint8Array([69, 83, 1, 14, 2, 5])), "DECODE_ERROR");
  throwsCode(() => Resolver.decode(new Uint8Array([69, 83, 1, 14, 0, 200, 200, 200, 200, 1])), "DECODE_ERROR");
  throwsCode(() => r.merge({}), "INVALID_ARGUMENT");
  r.free();
});

test("operation log: every local operation with args, site and time", () => {
  const r = new Resolver(42);
  const before = Date.now();
  r.getCRDT("likes", "gcounter");
  r.getCRDT("m", "lwwmap");
  r.applyOperation("likes", "increment", { nodeId: "n1", amount: 2 });
  r.applyOperation("m", "set", { key: "k", value: "v" });
  const log = r.operationLog();
  assert.equal(log.length, 2);
  assert.deepEqual(
    log.map(({ id, op, args, site }) => ({ id, op, args, site })),
    [
      { id: "likes", op: "increment", args: { nodeId: "n1", amount: 2 }, site: 42n },
      { id: "m", op: "set", args: { key: "k", value: "v" }, site: 42n },
    ],
  );
  assert.ok(log[0].time >= before && log[0].time <= Date.now() + 1);
  assert.ok(log[1].time > log[0].time || (log[1].time === log[0].time && log[1].counter > log[0].counter));
  r.free();
});

test("three resolvers converge by updates (any order, duplicates) and by merge", () => {
  const u = [new Resolver(1), new Resolver(2), new Resolver(3)];
  u.forEach(edit);
  // Updates computed against the receiver's version, delivered in reverse with duplicates.
  const inbox = [];
  for (const [i, a] of u.entries()) for (const b of u) if (a !== b) inbox.push([i, b.encodeUpdatesSince(a.version())]);
  for (const [i, bytes] of [...inbox.reverse(), ...inbox]) u[i].applyUpdates(bytes);
  const m = [new Resolver(1), new Resolver(2), new Resolver(3)];
  m.forEach(edit);
  for (const a of m) for (const b of m) if (a !== b) a.merge(b);

  const first = values(u[0]);
  assert.equal(first.likes, 6);
  assert.equal(first.stock, -6);
  assert.deepEqual(first.tags, ["t0", "t1", "t2"]);
  assert.deepEqual(first.profile, { k0: 0, k1: 1, k2: 2 });
  assert.equal([...first.doc].sort().join(""), "012");
  for (const r of [...u, ...m]) {
    const v = values(r);
    // LWW picks the same winner within each group (timestamps differ between groups).
    assert.deepEqual({ ...v, title: undefined }, { ...first, title: undefined });
  }
  for (const g of [u, m]) for (const r of g) assert.deepEqual(values(r), values(g[0]));
  // Nothing left to exchange.
  assert.equal(u[0].encodeUpdatesSince(u[1].version()).length, 6);
  for (const r of [...u, ...m]) r.free();
});

test("conflict stats: concurrent writes and how they were resolved", () => {
  const a = new Resolver("a");
  const b = new Resolver("b");
  for (const r of [a, b]) {
    r.getCRDT("title", "lwwregister");
    r.getCRDT("likes", "gcounter");
  }
  a.applyOperation("title", "set", { value: "from a" });
  a.applyOperation("likes", "increment");
  b.applyOperation("likes", "increment");
  // Concurrent writes: b's wins by being later in wall-clock time.
  const t = Date.now();
  while (Date.now() <= t + 1);
  b.applyOperation("title", "set", { value: "from b" });
  const toA = b.encodeUpdatesSince(a.version());
  const toB = a.encodeUpdatesSince(b.version());
  a.applyUpdates(toA);
  b.applyUpdates(toB);
  a.applyUpdates(toA); // a duplicate is not a new conflict
  const sa = a.getConflictStats();
  const sb = b.getConflictStats();
  assert.deepEqual(sa.title, {
    type: "lwwregister",
    rule: "lww: later timestamp wins",
    remoteUpdates: 1,
    concurrent: 1,
    overwrittenByRemote: 1,
    keptLocal: 0,
  });
  assert.equal(sb.title.keptLocal, 1);
  assert.deepEqual(sa.likes, { type: "gcounter", rule: "counter: sum", remoteUpdates: 1, concurrent: 1 });
  assert.equal(a.getCRDT("title", "lwwregister").value, "from b");
  assert.equal(b.getCRDT("title", "lwwregister").value, "from b");
  assert.equal(a.getCRDT("likes", "gcounter").value, 2);
  // Persisted with the resolver.
  const back = Resolver.decode(a.encode(), "a");
  assert.deepEqual(back.getConflictStats(), sa);
  for (const r of [a, b, back]) r.free();
});

test("encode / decode: objects, log and stats round trip; garbage is an error", () => {
  const r = new Resolver(5);
  edit(r, 0);
  const bytes = r.encode();
  assert.ok(bytes instanceof Uint8Array);
  const back = Resolver.decode(bytes, 5);
  assert.deepEqual(Buffer.from(back.encode()), Buffer.from(bytes));
  assert.deepEqual(values(back), values(r));
  assert.deepEqual(back.operationLog(), r.operationLog());
  // The restored replica keeps editing and syncing.
  back.applyOperation("likes", "increment", { amount: 10 });
  r.applyUpdates(back.encodeUpdatesSince(r.version()));
  assert.equal(r.getCRDT("likes", "gcounter").value, 11);
  for (let cut = 0; cut < bytes.length; cut++) throwsCode(() => Resolver.decode(bytes.slice(0, cut)), "DECODE_ERROR");
  const flipped = Uint8Array.from(bytes);
  for (let i = 4; i < flipped.length; i++) {
    flipped[i] ^= 0xff;
    try {
      Resolver.decode(flipped, 1).free();
    } catch (e) {
      assert.ok(e instanceof EdgesyncError && e.code === "DECODE_ERROR", String(e));
    }
    flipped[i] ^= 0xff;
  }
  throwsCode(() => Resolver.decode(r.version()), "DECODE_ERROR");
  r.free();
  back.free();
});
