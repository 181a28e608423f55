// Load time of one encoded document, in a fresh process:
//   node --expose-gc bench/text/load-child.mjs <lib> <doc.bin> <flat-base> [runs] [budget-ms]
// After a warm-up (a tiny document encoded and loaded, so wasm instantiation and first-call
// costs are not counted), times `load(bytes)` + reading the text up to `runs` times (fewer
// once the total passes budget-ms), each checked against endContent from <flat-base>.json.
// Prints one JSON line: { lib, ok, times: [ms...] }.
//
// Why a fresh process: in the process that has just replayed a trace, Automerge's first
// load of the result takes several times longer than in a new process (7–23 s vs ~1–2 s
// here), so an in-process number would measure the replay's leftovers, not the load.
import { readFileSync } from "node:fs";
import { loadAdapter } from "./adapters.mjs";

const [lib, docFile, flatBase, runsArg, budgetArg] = process.argv.slice(2);
if (!lib || !docFile || !flatBase) {
  console.error("usage: node --expose-gc bench/text/load-child.mjs <lib> <doc.bin> <flat-base> [runs] [budget-ms]");
  process.exit(2);
}
const runs = Number(runsArg ?? 5), budget = Number(budgetArg ?? 5000);
const gc = typeof global.gc === "function" ? () => global.gc() : () => {};
const adapter = await loadAdapter(lib);
if (adapter.skipped) {
  console.log(JSON.stringify({ lib, skipped: adapter.skipped }));
  process.exit(0);
}
const { endContent } = JSON.parse(readFileSync(`${flatBase}.json`, "utf8"));
const bytes = new Uint8Array(readFileSync(docFile));
{
  const d = adapter.createDoc(2);
  adapter.insert(d, 0, "warm-up");
  const tiny = adapter.encode(d);
  adapter.free(d);
  const l = adapter.load(tiny);
  adapter.text(l);
  adapter.free(l);
}
const times = [];
let spent = 0, ok = true;
while (times.length < runs && (times.length === 0 || spent < budget)) {
  gc();
  const t0 = performance.now();
  const d = adapter.load(bytes);
  const text = adapter.text(d);
  const ms = performance.now() - t0;
  if (text !== endContent) ok = false;
  adapter.free(d);
  times.push(ms);
  spent += ms;
}
console.log(JSON.stringify({ lib, ok, times }));
if (!ok) process.exit(1);
