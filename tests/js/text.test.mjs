// The Text CRDT from JS (pkg/, wasm in Node): editing, merging, updates in any order,
// cursor anchors, history, UTF-16 positions and error codes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { Text, EdgesyncError } from "edgesync";

const code = (fn) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof EdgesyncError, `an EdgesyncError, got ${e}`);
    return e.code;
  }
  return "no error";
};

test("local editing in code points", () => {
  const t = new Text(1);
  t.insert(0, "hello");
  t.insert(5, " world");
  t.insert(0, "😀 ");
  assert.equal(t.toString(), "😀 hello world");
  assert.equal(t.length, 13);
  assert.equal(t.lengthUtf16, 14);
  t.delete(2, 6);
  assert.equal(t.toString(), "😀 world");
  assert.equal(t.siteId, 1n);
});

test("UTF-16 offsets for editors", () => {
  const t = new Text(1);
  t.insert(0, "a😀b");
  t.insertUtf16(3, "c"); // after the surrogate pair
  assert.equal(t.toString(), "a😀cb");
  assert.equal(code(() => t.insertUtf16(2, "x")), "INVALID_OPERATION", "inside a surrogate pair");
  t.deleteUtf16(1, 2);
  assert.equal(t.toString(), "acb");
});

test("three replicas converge whatever the order, with duplicates", () => {
  const a = new Text("alice"), b = new Text("bob"), c = new Text("carol");
  a.insert(0, "shared ");
  b.merge(a);
  c.applyUpdate(a.encodeUpdateSince());
  a.insert(7, "A");
  b.insert(7, "B");
  c.insert(0, "C");
  c.delete(1, 2);
  const ua = a.encodeUpdateSince(), ub = b.encodeUpdateSince(), uc = c.encodeUpdateSince();
  for (const [doc, order] of [[a, [ub, uc, ub]], [b, [uc, ua, ua]], [c, [ub, ua, uc]]]) {
    for (const u of order) doc.applyUpdate(u);
  }
  assert.equal(a.toString(), b.toString());
  assert.equal(b.toString(), c.toString());
  assert.deepEqual(a.version(), b.version());
  assert.match(a.toString(), /^Care/);
});

test("an update that arrives before the one it depends on waits for it", () => {
  const a = new Text(1);
  a.insert(0, "one");
  const v1 = a.version();
  a.insert(3, " two");
  const first = a.encodeUpdateSince();
  const second = a.encodeUpdateSince(v1);
  const b = new Text(2);
  b.applyUpdate(second);
  assert.equal(b.toString(), "");
  assert.ok(b.pendingOps > 0);
  b.applyUpdate(first);
  assert.equal(b.pendingOps, 0);
  assert.equal(b.toString(), "one two");
});

test("anchors follow concurrent edits", () => {
  const a = new Text(1);
  a.insert(0, "hello world");
  const caret = a.anchor(6, "after"); // before "w"
  const b = Text.decode(a.encode(), 2);
  b.insert(0, ">> ");
  a.merge(b);
  assert.equal(a.resolve(caret), 9);
  const roundTripped = JSON.parse(JSON.stringify(caret, (_, v) => (typeof v === "bigint" ? Number(v) : v)));
  assert.equal(a.resolve(roundTripped), 9, "anchors are plain data");
  assert.equal(code(() => a.resolve({ site: 99, seq: 0, assoc: "after" })), "INVALID_OPERATION");
  assert.equal(code(() => a.anchor(1, "sideways")), "INVALID_ARGUMENT");
});

test("versions: read an old version, restore it as a new edit that syncs", () => {
  const a = new Text(1);
  a.insert(0, "draft one");
  const v1 = a.version();
  a.delete(6, 3);
  a.insert(6, "two");
  assert.equal(a.textAt(v1), "draft one");
  a.restore(v1);
  assert.equal(a.toString(), "draft one");
  const b = new Text(2);
  b.merge(a);
  assert.equal(b.toString(), "draft one");
});

test("encode() leaves out deleted text; encode({ history: true }) keeps it", () => {
  const a = new Text(1);
  a.insert(0, "draft one");
  const v1 = a.version();
  a.delete(0, 6);
  a.insert(0, "final ");
  const plain = Text.decode(a.encode(), 2);
  assert.equal(plain.toString(), "final one");
  assert.equal(code(() => plain.textAt(v1)), "INVALID_OPERATION");
  assert.equal(code(() => plain.restore(v1)), "INVALID_OPERATION");
  assert.equal(plain.toString(), "final one", "a refused restore changed nothing");
  assert.equal(plain.textAt(plain.version()), "final one");
  const full = Text.decode(a.encode({ history: true }), 3);
  assert.equal(full.textAt(v1), "draft one");
  assert.ok(a.encode().length < a.encode({ history: true }).length);
  // The history-free replica still merges with a peer that edited concurrently.
  const peer = new Text(4);
  peer.applyUpdate(a.encodeUpdateSince());
  peer.insert(9, "!");
  plain.insert(0, ">");
  plain.merge(peer);
  peer.merge(plain);
  assert.equal(plain.toString(), ">final one!");
  assert.equal(peer.toString(), ">final one!");
  assert.equal(code(() => a.encode({ history: "yes" })), "INVALID_ARGUMENT");
  assert.equal(code(() => a.encode(5)), "INVALID_ARGUMENT");
});

test("snapshots round-trip; bad input gets stable codes", () => {
  const a = new Text(1);
  a.insert(0, "persist me");
  const back = Text.decode(a.encode(), 7);
  assert.equal(back.toString(), "persist me");
  assert.equal(back.siteId, 7n);
  assert.equal(code(() => Text.decode(new Uint8Array([1, 2, 3]))), "DECODE_ERROR");
  assert.equal(code(() => Text.decode(a.encode().slice(0, 10))), "DECODE_ERROR");
  assert.equal(code(() => Text.decode("nope")), "INVALID_ARGUMENT");
  assert.equal(code(() => a.applyUpdate(new Uint8Array([69, 83, 1, 8, 255]))), "DECODE_ERROR");
  assert.equal(code(() => a.insert(99, "x")), "INVALID_OPERATION");
  assert.equal(code(() => a.delete(0, 99)), "INVALID_OPERATION");
  assert.equal(code(() => a.insert(-1, "x")), "INVALID_ARGUMENT");
  assert.equal(code(() => a.insert(0.5, "x")), "INVALID_ARGUMENT");
  assert.equal(code(() => a.insert(0, 42)), "INVALID_ARGUMENT");
  assert.equal(code(() => new Text(-1)), "INVALID_ARGUMENT");
  assert.equal(a.toString(), "persist me", "failed calls changed nothing");
});

test("decode checks the text now and the structure on first need: a forgery fails there, losing nothing", () => {
  const a = new Text(1);
  a.insert(0, "hello world");
  a.delete(2, 3);
  const good = a.encode();
  const loaded = Text.decode(good, 2);
  loaded.validate();
  assert.deepEqual(loaded.encode(), good, "an unchanged document encodes to the bytes it was loaded from");
  // Forge the structure section (the bytes before the CRC-32) and recompute the CRC:
  // every forgery must either be some other valid document or fail with DECODE_ERROR.
  let refused = 0;
  for (let back = 5; back < 12; back++) {
    const bad = good.slice();
    bad[bad.length - back] ^= 0x40;
    new DataView(bad.buffer).setUint32(bad.length - 4, crc32(bad.subarray(4, bad.length - 4)), true);
    let t;
    try {
      t = Text.decode(bad, 3);
    } catch (e) {
      assert.equal(e.code, "DECODE_ERROR");
      continue;
    }
    if (code(() => t.validate()) === "no error") continue;
    refused++;
    assert.equal(t.toString(), "he world", "the loaded text stays readable");
    assert.equal(code(() => t.insert(0, "x")), "DECODE_ERROR");
    assert.equal(code(() => t.encodeUpdateSince()), "DECODE_ERROR");
    assert.equal(code(() => a.merge(t)), "DECODE_ERROR");
    assert.deepEqual(t.encode(), bad, "encode() gives back exactly what was loaded");
    t.free();
  }
  assert.ok(refused > 0, "some forgeries reach the structure check");
  assert.equal(a.toString(), "he world");
});

test("wrong arguments are EdgesyncErrors too: merge with another class, anchors of another shape, lone surrogates", async () => {
  const { PNCounter } = await import("edgesync");
  const t = new Text(1);
  t.insert(0, "hello");
  // wasm-bindgen's own class check threw a plain Error (issue 13, §7).
  assert.equal(code(() => t.merge(new PNCounter(2))), "INVALID_ARGUMENT");
  // Any object used to resolve to 0 (the start of the text).
  assert.equal(code(() => t.resolve({ x: 1 })), "INVALID_ARGUMENT");
  assert.equal(code(() => t.resolve({ site: 1, seq: 0 })), "INVALID_ARGUMENT", "no assoc");
  assert.equal(code(() => t.resolve({ site: null, assoc: "after" })), "INVALID_ARGUMENT", "no seq");
  assert.equal(code(() => t.resolve({ site: 1, seq: null, assoc: "after" })), "INVALID_ARGUMENT");
  assert.equal(code(() => t.resolve(null)), "INVALID_ARGUMENT");
  const a = t.anchor(2, "after");
  assert.equal(t.resolve(a), 2);
  assert.equal(t.resolve(JSON.parse(JSON.stringify({ ...a, site: Number(a.site) }))), 2, "plain data still resolves");
  assert.equal(t.resolve(t.anchor(0, "before")), 0);
  // A lone surrogate used to be stored as U+FFFD.
  assert.equal(code(() => t.insert(0, "a\uD800b")), "INVALID_ARGUMENT");
  assert.equal(code(() => t.insertUtf16(0, "\uDC00")), "INVALID_ARGUMENT");
  assert.equal(t.toString(), "hello");
  t.insert(5, " \uFFFD \u{1F600}"); // a real U+FFFD and a pair are fine
  assert.equal(t.toString(), "hello \uFFFD \u{1F600}");
});
