// The random fault soak, short (tests/support/soak.mjs; the long one is
// `bash scripts/soak.sh`): replicas in memory and in files, local and write-through,
// random atomic operations on every policy through fault proxies, sqld SIGKILLed and
// restarted; at the end every replica equals the server (read by a plain Hrana client)
// and the server equals an exact oracle. Each run prints its seed; rerun one with
// EDGESYNC_SOAK_SEEDS=<seed>[,<seed>…].
import { test } from "node:test";
import { runSoak } from "../support/soak.mjs";

const seeds = process.env.EDGESYNC_SOAK_SEEDS
  ? process.env.EDGESYNC_SOAK_SEEDS.split(",").map(Number)
  : // 7006 lost a custom value about every other run before held conflicts
    // (src/sync/net/held.rs); a random seed each run finds new cases.
    [14, 2, 7006, Math.floor(Math.random() * 2 ** 31)];

for (const seed of seeds) {
  test(`soak, seed ${seed} (rerun with EDGESYNC_SOAK_SEEDS=${seed})`, async (t) => {
    const r = await runSoak({ seed, ops: 300 });
    t.diagnostic(JSON.stringify(r));
  });
}
