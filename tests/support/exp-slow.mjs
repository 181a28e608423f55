// Temporary experiment: duty-cycle sqld (SIGSTOP/SIGCONT) once healing starts.
import { execSync } from "node:child_process";
import { runSoak } from "./soak.mjs";
const seed = Number(process.argv[2] ?? 14);
const duty = Number(process.argv[3] ?? 0.2);
let timer;
const cycle = () => {
  let pids = [];
  try { pids = execSync(`pgrep -P ${process.pid} -f sqld`).toString().trim().split("\n").map(Number); } catch {}
  if (!globalThis.once) { globalThis.once = 1; console.log("pids", pids); } for (const p of pids) try { process.kill(p, "SIGCONT"); } catch {}
  setTimeout(() => { for (const p of pids) try { process.kill(p, "SIGSTOP"); } catch {} }, 20 * duty / 0.2 * 0.2 * 5 * 0 + 100 * duty);
};
const t0 = Date.now();
try {
  const r = await runSoak({ seed, ops: 300, log: (m) => { console.log(m); if (m.includes("healing")) timer = setInterval(cycle, 100); } });
  console.log("ok", Date.now() - t0, JSON.stringify(r));
} catch (e) { console.log("FAIL", Date.now() - t0, e.message); }
clearInterval(timer);
process.exit(0);
