// `bash scripts/soak.sh [minutes] [first seed] [operations per run]`: runs soak seeds one
// after the other in this process until the time is up, printing each seed, its outcome
// and the process's memory; exits 1 if any run failed (its seed is printed to rerun).
import { runSoak } from "./soak.mjs";
// The same module instance the package loaded (node_modules/edgesync links to pkg/).
import { wasmMemory } from "../../pkg/wasm/edgesync.js";

const minutes = Number(process.argv[2] ?? 10);
let seed = Number(process.argv[3] ?? Math.floor(Math.random() * 2 ** 31));
const ops = Number(process.argv[4] ?? 500);
const mb = (n) => (n / 1048576).toFixed(1);
const mem = () => {
  const m = process.memoryUsage();
  return `rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)} MB, external ${mb(m.external + m.arrayBuffers)} MB, wasm memory ${mb(wasmMemory().buffer.byteLength)} MB`;
};
const start = Date.now();
const end = start + minutes * 60_000;
console.log(`soak: ${minutes} min, ${ops} operations per run, from seed ${seed}; at start ${mem()}`);
const tried = [];
const failed = [];
while (Date.now() < end) {
  const t0 = Date.now();
  try {
    const r = await runSoak({ seed, ops });
    console.log(
      `seed ${seed} ok in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${r.attempted} ops (${r.acked} acknowledged), ` +
        `${r.syncs} syncs ok / ${r.syncErrors} failed, ops ${r.opsMs} ms, settle ${r.settleMs} ms, ${r.reopens} reopens, ${r.kills} sqld kills; ${mem()}`,
    );
  } catch (e) {
    failed.push(seed);
    console.log(`seed ${seed} FAILED in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${e.message.split("\n").slice(0, 12).join(" | ")}`);
  }
  tried.push(seed);
  seed++;
}
console.log(`soak: ${tried.length} runs in ${((Date.now() - start) / 60000).toFixed(1)} min, seeds ${tried.join(", ")}`);
console.log(`soak: at end ${mem()}`);
if (failed.length > 0) {
  console.log(`soak: FAILED seeds ${failed.join(", ")} (rerun one: EDGESYNC_SOAK_SEEDS=<seed> node --test tests/js/soak.test.mjs)`);
  process.exit(1);
}
console.log("soak: every run converged and matched the oracle");
