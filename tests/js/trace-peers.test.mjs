// The text benchmark's adapters and replay logic (bench/text/) are right: each peer
// (yjs, loro-crdt, @automerge/automerge) replays the real editing traces to exactly their
// endContent — sequentially (one local operation per patch) and, for the concurrent trace,
// with its agents and parents, merging branches — so the same harness can be trusted to
// judge edgesync's Text, which joins automatically once `import("edgesync")` exports it.
//
// Automerge is ~20× slower than the others on these traces, so by default it replays
// prefixes of the astral variants (checked against a plain-string reference model, and
// against yjs for the concurrent trace); TRACE_TEST_FULL=1 replays everything for all.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  loadTrace, flatPatches, replaySequential, replayConcurrent, mergeBranches, replayString,
  remapChars, prefixTrace, AstralIndex, cpLength,
} from "../../bench/text/traces.mjs";
import { loadAdapters, PEERS } from "../../bench/text/adapters.mjs";

const FULL = !!process.env.TRACE_TEST_FULL;
const adapters = await loadAdapters(["edgesync", ...PEERS]);
const byName = Object.fromEntries(adapters.map((a) => [a.name, a]));
const slow = (a) => a.name === "automerge" && !FULL;
const rustcode = loadTrace("rustcode");
const friends = loadTrace("friendsforever");
// Real traces are all BMP; these variants make every 'q', 'z', 'X' astral (two UTF-16 units).
const ASTRAL_MAP = { q: "🦀", z: "𝒵", X: "😀" };
const rustAstral = remapChars(rustcode, ASTRAL_MAP);
const friendsAstral = remapChars(friends, ASTRAL_MAP);
const RUST_PREFIX = 4000; // txns (includes the 42 kB paste and the first big deletes)
const FRIENDS_PREFIX = 5000; // txns

function sameText(got, want, what) {
  if (got === want) return;
  let i = 0;
  while (i < got.length && got[i] === want[i]) i++;
  assert.fail(`${what}: lengths ${got.length} vs ${want.length}, first difference at ${i}: ${JSON.stringify(got.slice(i, i + 40))} vs ${JSON.stringify(want.slice(i, i + 40))}`);
}

test("trace files load, and the reference string model reproduces (astral) endContent", () => {
  assert.equal(rustcode.kind, "sequential");
  assert.equal(friends.kind, "concurrent");
  assert.equal(friends.numAgents, 2);
  assert.ok(rustAstral.hasAstral && !rustcode.hasAstral);
  sameText(replayString(rustAstral), rustAstral.endContent, "astral rustcode reference");
  assert.ok([...rustAstral.endContent].some((c) => c.length === 2), "the variant has astral characters");
});

test("code point → UTF-16 conversion is exact", () => {
  const idx = new AstralIndex("a😀b𝒵c");
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => idx.toUtf16(i)), [0, 1, 3, 4, 6, 7]);
  assert.equal(idx.utf16Len(1, 3), 5);
  idx.insert(2, "x🦀"); // a😀x🦀b𝒵c
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => idx.toUtf16(i)), [0, 1, 3, 4, 6, 7, 9, 10]);
  idx.delete(1, 3); // ab𝒵c
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => idx.toUtf16(i)), [0, 1, 2, 4, 5]);
  assert.equal(cpLength("a😀"), 2);
  // flatPatches(utf16) replayed on a plain string with UTF-16 splices = the reference.
  const p = prefixTrace(rustAstral, 12000);
  const f = flatPatches(p, "utf16");
  let s = p.startContent;
  for (let i = 0; i < f.length; i++) s = s.slice(0, f.pos[i]) + f.ins[i] + s.slice(f.pos[i] + f.del[i]);
  sameText(s, replayString(rustAstral, p.patchCount), "UTF-16 flattened patches");
});

test("each peer counts positions as its adapter says", () => {
  for (const a of adapters) {
    if (a.skipped) continue;
    const d = a.createDoc(1);
    a.insert(d, 0, "a😀b");
    // the index just after the emoji, in the adapter's unit
    a.insert(d, a.unit === "utf16" ? 3 : 2, "X");
    assert.equal(a.text(d), "a😀Xb", a.name);
    a.delete(d, 1, a.unit === "utf16" ? 2 : 1);
    assert.equal(a.text(d), "aXb", a.name);
    a.free(d);
  }
});

for (const a of adapters) {
  const skip = a.skipped ? `${a.name}: ${a.skipped}` : false;
  test(`${a.name}: rustcode, one local operation per patch, gives endContent; encode/load round-trips`, { skip }, () => {
    for (const trace of slow(a) ? [rustAstral] : [rustcode, rustAstral]) {
      const t = slow(a) ? prefixTrace(trace, RUST_PREFIX) : trace;
      const want = slow(a) ? replayString(trace, t.patchCount) : trace.endContent;
      const doc = replaySequential(a, t);
      sameText(a.text(doc), want, `${a.name} ${trace === rustcode ? "" : "astral "}rustcode`);
      const back = a.load(a.encode(doc));
      sameText(a.text(back), want, `${a.name} load(encode())`);
      a.free(back);
      a.free(doc);
    }
  });

  test(`${a.name}: friendsforever, replayed with agents and parents, merges to endContent`, { skip }, () => {
    if (slow(a)) {
      // A prefix, checked against yjs (itself checked on the whole trace below/above).
      const y = byName.yjs;
      for (const trace of [friendsAstral]) {
        const p = prefixTrace(trace, FRIENDS_PREFIX);
        const want = replayConcurrent(y, p);
        y.free(want.doc);
        const r = replayConcurrent(a, p);
        sameText(r.text, want.text, `${a.name} friendsforever prefix`);
        a.free(r.doc);
      }
      return;
    }
    const r = replayConcurrent(a, friends, { keepBranches: true });
    assert.equal(r.agents, 2);
    assert.ok(r.importBatches > 1000, "the agents really catch up with each other");
    sameText(r.text, friends.endContent, `${a.name} friendsforever`);
    const m = mergeBranches(a, r.targetBytes, r.branches);
    sameText(m.text, friends.endContent, `${a.name} friendsforever merge again`);
    a.free(r.doc);
    // Astral variant: a prefix, which must be the BMP prefix's text with the same remap.
    const bmp = replayConcurrent(a, prefixTrace(friends, FRIENDS_PREFIX));
    const ast = replayConcurrent(a, prefixTrace(friendsAstral, FRIENDS_PREFIX));
    sameText(ast.text, friendsAstral.remap(bmp.text), `${a.name} astral friendsforever prefix`);
    a.free(bmp.doc);
    a.free(ast.doc);
  });
}

test("edgesync joins the benchmark when it exports Text", () => {
  const e = byName.edgesync;
  if (e.skipped) assert.match(e.skipped, /Text|import/);
  else assert.equal(e.unit, "codepoint");
});
