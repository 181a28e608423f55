// The CRDT classes from the built package, in Node (wasm): local operations, three
// replicas converging by merge and by update exchange, encode/decode, and error codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { GCounter, PNCounter, ORSet, LWWRegister, LWWMap, EdgesyncError } from "edgesync";

const bytesEqual = (a, b) => assert.deepEqual(Buffer.from(a), Buffer.from(b));

/** Throws an EdgesyncError with `code`. */
function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, "a real Error");
    assert.equal(e.code, code, e.message);
    return true;
  });
}

/** Three replicas, each edited by `edit(replica, index)`, then synced two ways. */
function convergeBoth(Cls, edit, observe) {
  // By merge.
  const m = [new Cls(1), new Cls(2), new Cls(3)];
  m.forEach(edit);
  for (const a of m) for (const b of m) if (a !== b) a.merge(b);
  // By updates, each replica asking the others for what it lacks.
  const u = [new Cls(1), new Cls(2), new Cls(3)];
  u.forEach(edit);
  for (let round = 0; round < 2; round++)
    for (const a of u) for (const b of u) if (a !== b) a.applyUpdate(b.encodeUpdateSince(a.version()));
  const first = observe(m[0]);
  for (const r of [...m, ...u]) assert.deepEqual(observe(r), first);
  // Byte-identical within each group (LWW timestamps differ between the two runs).
  for (const g of [m, u]) for (const r of g) bytesEqual(r.encode(), g[0].encode());
  for (const r of [...m, ...u]) r.free();
  return first;
}

test("GCounter: increment, value, merge, updates, encode/decode", () => {
  const c = new GCounter("node-a");
  assert.equal(c.increment(), 1);
  assert.equal(c.increment(4), 5);
  assert.equal(c.increment(2n), 7);
  assert.equal(c.value(), 7);
  assert.equal(typeof c.siteId, "bigint");
  const total = convergeBoth(GCounter, (r, i) => r.increment(i + 1), (r) => r.value());
  assert.equal(total, 6);
  const back = GCounter.decode(c.encode(), "node-b");
  assert.equal(back.value(), 7);
  back.increment();
  c.applyUpdate(back.encodeUpdateSince(c.version()));
  c.applyUpdate(back.encodeUpdateSince(c.version())); // a duplicate is harmless
  assert.equal(c.value(), 8);
  // Past 2^53 the value is a bigint, exactly.
  const big = new GCounter(9n);
  big.increment(2n ** 60n);
  assert.equal(big.value(), 2n ** 60n);
  throwsCode(() => big.increment(2n ** 64n - 1n), "INVALID_OPERATION");
});

test("PNCounter: up and down across replicas", () => {
  const total = convergeBoth(
    PNCounter,
    (r, i) => {
      r.increment(10);
      r.decrement(i * 4);
    },
    (r) => r.value(),
  );
  assert.equal(total, 30 - 12);
  const c = new PNCounter();
  assert.equal(c.decrement(), -1);
  assert.equal(c.increment(3), 2);
});

test("ORSet: add-wins, values of every type, removes travel in updates", () => {
  const s = new ORSet(1);
  const blob = new Uint8Array([1, 2, 3]);
  for (const v of ["a", 1, 1.5, null, blob, 2n ** 62n, false]) s.add(v);
  s.add(true); // the same element as 1
  assert.equal(s.size, 7);
  assert.ok(s.has("a") && s.has(blob) && s.has(1) && s.has(2n ** 62n));
  assert.ok(s.remove("a"));
  assert.equal(s.remove("a"), false);
  assert.ok(!s.has("a"));
  assert.deepEqual(new Set(s.values().map(String)), new Set(["0", "1", "1.5", "null", "1,2,3", String(2n ** 62n)]));

  // Concurrent add and remove: the add wins.
  const a = new ORSet(1);
  a.add("x");
  const b = ORSet.decode(a.encode(), 2);
  b.remove("x");
  a.add("x");
  b.applyUpdate(a.encodeUpdateSince(b.version()));
  a.applyUpdate(b.encodeUpdateSince(a.version()));
  assert.ok(a.has("x") && b.has("x"));
  bytesEqual(a.encode(), b.encode());

  const vals = convergeBoth(
    ORSet,
    (r, i) => {
      r.add("shared");
      r.add(`only-${i}`);
      if (i === 1) r.remove("only-1");
    },
    (r) => r.values().sort(),
  );
  assert.deepEqual(vals, ["only-0", "only-2", "shared"]);

  // An update whose base this replica has not seen is refused, changing nothing.
  const c = new ORSet(5);
  c.add(1);
  const v1 = c.version();
  c.add(2);
  const fresh = new ORSet(6);
  throwsCode(() => fresh.applyUpdate(c.encodeUpdateSince(v1)), "INVALID_OPERATION");
  assert.equal(fresh.size, 0);
  fresh.applyUpdate(c.encodeUpdateSince(fresh.version()));
  assert.equal(fresh.size, 2);
});

test("LWWRegister: the later write wins everywhere", () => {
  const r = new LWWRegister("r");
  assert.equal(r.get(), undefined);
  r.set("hello");
  assert.equal(r.get(), "hello");
  r.set(null);
  assert.equal(r.get(), null);
  const v = convergeBoth(LWWRegister, (reg, i) => reg.set(`v${i}`), (reg) => reg.get());
  assert.match(v, /^v[012]$/);
  const a = new LWWRegister(1);
  a.set(1);
  const b = LWWRegister.decode(a.encode(), 2);
  b.set(2); // b saw a's write: its write is later whatever the clocks say
  a.applyUpdate(b.encodeUpdateSince(a.version()));
  assert.equal(a.get(), 2);
});

test("LWWMap: set, get, delete, keys, entries, convergence", () => {
  const m = new LWWMap("m");
  m.set("a", 1);
  m.set("b", "two");
  m.set("c", new Uint8Array([9]));
  assert.equal(m.get("b"), "two");
  assert.ok(m.delete("b"));
  assert.equal(m.delete("b"), false);
  assert.equal(m.get("b"), undefined);
  assert.ok(!m.has("b") && m.has("a"));
  assert.deepEqual(m.keys(), ["a", "c"]);
  assert.deepEqual(m.entries(), [["a", 1], ["c", new Uint8Array([9])]]);
  assert.equal(m.size, 2);
  const entries = convergeBoth(
    LWWMap,
    (r, i) => {
      r.set(`k${i}`, i);
      r.set("shared", i);
      if (i === 2) r.delete("k2");
    },
    (r) => r.entries(),
  );
  assert.deepEqual(entries.map(([k]) => k), ["k0", "k1", "shared"]);

  // A delete after a replica saw the set wins; a later set brings the key back.
  const a = new LWWMap(1);
  a.set("k", 1);
  const b = LWWMap.decode(a.encode(), 2);
  b.delete("k");
  a.applyUpdate(b.encodeUpdateSince(a.version()));
  assert.equal(a.get("k"), undefined);
  a.set("k", 3);
  b.merge(a);
  assert.equal(b.get("k"), 3);
});

test("bad bytes → DECODE_ERROR, for every decoder and applyUpdate", () => {
  const garbage = [new Uint8Array(), new Uint8Array([1, 2, 3, 4, 5]), new Uint8Array([0x45, 0x53, 1, 99])];
  for (const Cls of [GCounter, PNCounter, ORSet, LWWRegister, LWWMap]) {
    const good = new Cls(1);
    const full = good.encode();
    for (const g of [...garbage, full.subarray(0, full.length - 1), good.encodeUpdateSince()]) {
      if (g.length > 4 && g[3] === full[3]) continue; // not garbage for decode
      throwsCode(() => Cls.decode(g), "DECODE_ERROR");
    }
    for (const g of [...garbage, full]) throwsCode(() => new Cls(2).applyUpdate(g), "DECODE_ERROR");
    throwsCode(() => good.encodeUpdateSince(new Uint8Array([1, 2])), "DECODE_ERROR");
    // A hostile length: "2^62 entries follow".
    const hostile = new Uint8Array([full[0], full[1], full[2], full[3], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
    throwsCode(() => Cls.decode(hostile), "DECODE_ERROR");
    good.free();
  }
});

test("bad arguments → INVALID_ARGUMENT", () => {
  for (const bad of [-1, 1.5, {}, 2n ** 64n, NaN]) {
    throwsCode(() => new GCounter(bad), "INVALID_ARGUMENT");
  }
  const g = new GCounter(1);
  for (const bad of [-1, 0.5, "3", {}, -1n]) throwsCode(() => g.increment(bad), "INVALID_ARGUMENT");
  throwsCode(() => new PNCounter(1).decrement(-5), "INVALID_ARGUMENT");
  throwsCode(() => g.applyUpdate("not bytes"), "INVALID_ARGUMENT");
  throwsCode(() => g.encodeUpdateSince([1, 2]), "INVALID_ARGUMENT");
  throwsCode(() => GCounter.decode(null), "INVALID_ARGUMENT");
  throwsCode(() => new ORSet(1).add(NaN), "INVALID_ARGUMENT");
  throwsCode(() => new ORSet(1).add({}), "INVALID_ARGUMENT");
  throwsCode(() => new LWWRegister(1).set(Symbol("x")), "INVALID_ARGUMENT");
  throwsCode(() => new LWWMap(1).set(1, "v"), "INVALID_ARGUMENT");
  throwsCode(() => new LWWMap(1).get(null), "INVALID_ARGUMENT");
  // Errors are EdgesyncErrors.
  assert.throws(() => g.increment(-1), EdgesyncError);
  assert.throws(() => new GCounter({}), EdgesyncError);
  assert.throws(() => GCounter.decode(new Uint8Array()), EdgesyncError);
  // wasm-bindgen's own checks are INVALID_ARGUMENT too.
  throwsCode(() => g.merge(new PNCounter(2)), "INVALID_ARGUMENT");
  throwsCode(() => g.merge(g), "INVALID_ARGUMENT");
  const freed = new GCounter(3);
  freed.free();
  throwsCode(() => freed.increment(), "INVALID_ARGUMENT");
});

test("site ids: strings hash stably, absent ones are random", () => {
  assert.equal(new GCounter("a").siteId, 0xaf63dc4c8601ec8cn);
  assert.equal(new GCounter(42).siteId, 42n);
  assert.equal(new GCounter(2n ** 64n - 1n).siteId, 2n ** 64n - 1n);
  const ids = new Set(Array.from({ length: 50 }, () => new ORSet().siteId));
  assert.equal(ids.size, 50);
});

test("LWW merge refuses a replica an hour ahead, as applyUpdate does (CLOCK_DRIFT)", () => {
  const realNow = Date.now;
  const ahead = (fn) => {
    Date.now = () => realNow() + 3_600_000;
    try {
      return fn();
    } finally {
      Date.now = realNow;
    }
  };
  const fast = new LWWRegister("fast");
  ahead(() => fast.set("from the future"));
  const r = new LWWRegister("r");
  r.set("now");
  throwsCode(() => r.applyUpdate(fast.encodeUpdateSince()), "CLOCK_DRIFT");
  throwsCode(() => r.merge(fast), "CLOCK_DRIFT");
  assert.equal(r.get(), "now", "nothing merged");
  const fastMap = new LWWMap("fast");
  ahead(() => fastMap.set("k", 1));
  const m = new LWWMap("m");
  throwsCode(() => m.merge(fastMap), "CLOCK_DRIFT");
  assert.equal(m.has("k"), false);
  // Within the drift, merge works as before.
  const ok = LWWRegister.decode(r.encode(), "ok"); // saw r's write: its own is later
  ok.set("later");
  r.merge(ok);
  assert.equal(r.get(), "later");
});

test("lone surrogates are refused (INVALID_ARGUMENT), never stored as U+FFFD", () => {
  const m = new LWWMap("m");
  throwsCode(() => m.set("k\uD800", 1), "INVALID_ARGUMENT");
  throwsCode(() => m.set("k", "v\uDFFF"), "INVALID_ARGUMENT");
  throwsCode(() => new LWWRegister("r").set("\uD83D"), "INVALID_ARGUMENT");
  throwsCode(() => new ORSet("s").add("\uDC00x"), "INVALID_ARGUMENT");
  assert.equal(m.size, 0);
  m.set("\u{1F600}", "\uFFFD"); // a pair and a real U+FFFD are fine
  assert.equal(m.get("\u{1F600}"), "\uFFFD");
});
