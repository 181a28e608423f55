// Memory of one library holding one replayed trace, measured in a fresh process:
//   node --expose-gc bench/text/memory-child.mjs <lib> <trace> [<flat-base>]
// <flat-base>: patches already flattened to the library's unit by traces.mjs writeFlat()
// (run.mjs passes it, so no JSON-parsing garbage sits in the baseline); without it the
// trace is loaded and flattened here.
//
// Prints one JSON line: { lib, trace, ok, applyMs, rss, heapUsed, external, arrayBuffers }
// — the memory fields are deltas in bytes between a baseline taken after the patches are in
// memory and the library is imported (its wasm instantiated, one tiny doc made and freed),
// and the state after replaying every patch as its own local operation with the document
// still alive, both after forced GCs. Wasm linear memory is part of RSS (it never shrinks,
// so a peak during the replay stays counted). applyMs is that replay's time (a cold run).
import { loadTrace, flatPatches, applyFlat, readFlat } from "./traces.mjs";
import { loadAdapter } from "./adapters.mjs";

const [lib, traceName, flatBase] = process.argv.slice(2);
if (!lib || !traceName) {
  console.error("usage: node --expose-gc bench/text/memory-child.mjs <lib> <trace> [<flat-base>]");
  process.exit(2);
}
if (typeof global.gc !== "function") {
  console.error("memory-child needs --expose-gc");
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function settle() {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await sleep(30);
  }
  global.gc();
}

const adapter = await loadAdapter(lib);
if (adapter.skipped) {
  console.log(JSON.stringify({ lib, trace: traceName, skipped: adapter.skipped }));
  process.exit(0);
}
let flat, startContent, endContent;
if (flatBase) {
  ({ flat, startContent, endContent } = readFlat(flatBase));
} else {
  const trace = loadTrace(traceName);
  if (trace.kind !== "sequential") throw new Error(`${traceName} is not a sequential trace`);
  flat = flatPatches(trace, adapter.unit);
  ({ startContent, endContent } = trace);
}
// Touch the library once so lazily initialised parts are in the baseline.
{
  const d = adapter.createDoc(2);
  adapter.insert(d, 0, "x");
  adapter.text(d);
  adapter.free(d);
}
await settle();
const base = process.memoryUsage();

const t0 = performance.now();
const doc = adapter.createDoc(1);
if (startContent) adapter.insert(doc, 0, startContent);
applyFlat(adapter, doc, flat);
const applyMs = performance.now() - t0;
await settle();
const after = process.memoryUsage();

const ok = adapter.text(doc) === endContent;
const out = { lib, trace: traceName, ok, applyMs, baselineRss: base.rss };
for (const k of ["rss", "heapUsed", "external", "arrayBuffers"]) out[k] = after[k] - base[k];
console.log(JSON.stringify(out));
if (!ok) process.exit(1);
