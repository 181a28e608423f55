// Benchmark: each entry point of the package — its size (wasm and minified JS, raw and
// gzip, against its budget) and the time to import it and instantiate its wasm module
// in headless Chromium (a fresh page each time, served from loopback, HTTP cache off).
//
//   node bench/entries.mjs            (scripts/bench.sh builds first; `bash scripts/bench.sh entries`)
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { startStaticServer } from "../tests/support/static-server.mjs";
import { BUDGETS, GOALS } from "../tests/support/size-budgets.mjs";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const RUNS = Number(process.env.RUNS ?? 9);
// Budgets and goals: tests/support/size-budgets.mjs (the package test checks the same).
const ENTRIES = Object.entries(BUDGETS).map(([sub, b]) => ({
  name: sub === "." ? "edgesync" : `edgesync${sub.slice(1)}`,
  entry: `pkg/${b.entry}`,
  wasm: `pkg/${b.wasm}`,
  budget: b.gzip,
  goal: GOALS[sub],
}));

const web = await startStaticServer({ root: REPO });
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const e of ENTRIES) {
  const out = await build({ entryPoints: [join(REPO, e.entry)], bundle: true, minify: true, format: "esm", write: false, external: ["*inline.js"], logLevel: "silent" });
  const js = Buffer.from(out.outputFiles[0].contents);
  const wasm = readFileSync(join(REPO, e.wasm));
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    await page.goto(`${web.url}/www/dashboard/index.html?bench=1`, { waitUntil: "domcontentloaded" });
    const ms = await page.evaluate(async (entry) => {
      const t0 = performance.now();
      const m = await import(entry);
      await m.ready;
      return performance.now() - t0;
    }, `/${e.entry}`);
    times.push(ms);
    await context.close();
  }
  rows.push({ ...e, wasmRaw: wasm.length, wasmGz: gzipSync(wasm, { level: 9 }).length, jsRaw: js.length, jsGz: gzipSync(js, { level: 9 }).length, ms: median(times) });
}
await browser.close();
await web.close();

const kb = (n) => (n / 1000).toFixed(1);
const pad = (s, n) => String(s).padEnd(n);
console.log(`\nEntry points — sizes (wasm + minified JS) and import + instantiate time in Chromium (median of ${RUNS}, loopback, no cache)\n`);
console.log(`${pad("entry", 18)} ${pad("wasm KB raw/gz", 16)} ${pad("JS KB raw/gz", 14)} ${pad("total gz KB", 12)} ${pad("budget KB", 13)} ${pad("goal KB", 17)} ${pad("import+init ms", 15)}`);
for (const r of rows) {
  const total = r.wasmGz + r.jsGz;
  console.log(
    `${pad(r.name, 18)} ${pad(`${kb(r.wasmRaw)}/${kb(r.wasmGz)}`, 16)} ${pad(`${kb(r.jsRaw)}/${kb(r.jsGz)}`, 14)} ${pad(kb(total), 12)} ${pad(`${kb(r.budget)} ${total <= r.budget ? "met" : "OVER"}`, 13)} ${pad(r.goal ? `${kb(r.goal)} (${kb(r.goal - total)} left)` : "—", 17)} ${pad(r.ms.toFixed(1), 15)}`,
  );
}
