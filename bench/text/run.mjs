// Text-CRDT benchmark: edgesync's Text against yjs, loro-crdt and @automerge/automerge on
// real editing traces, in one Node process (memory: one fresh child per library × trace).
//
//   node --expose-gc bench/text/run.mjs [--libs=edgesync,yjs,loro,automerge]
//        [--traces=automerge-paper,rustcode,friendsforever] [--runs=3] [--no-memory]
//        [--json=out.json]
//   (npm run bench:text)
//
// Sequential traces (automerge-paper, rustcode), per library:
//   apply   every patch a separate local operation (crdt-benchmarks B4), median of --runs
//           (fewer when one run already takes > APPLY_BUDGET_MS); the final text must be
//           exactly endContent or the run fails
//   size    the encoded document (each library's default encoding: Yjs and edgesync drop
//           deleted text, Loro and Automerge keep all history), raw and gzip -9
//   load    decode those bytes + read the text in fresh processes (load-child.mjs; see
//           there why): the first load of each process (cold: before V8 has optimized
//           the code) and the warm loads after it, as separate rows
//   memory  RSS delta of a fresh process holding the replayed document (memory-child.mjs),
//           two such processes at a time
// Concurrent trace (friendsforever): replay with agents and parents (traces.mjs), final text
// checked; the final merge of all agents' branches (median of up to 5) and the whole replay.
// edgesync takes part as soon as `import("edgesync")` exports `Text`.
import { gzipSync } from "node:zlib";
import { spawn } from "node:child_process";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import os from "node:os";
import { loadTrace, flatPatches, replaySequential, replayConcurrent, mergeBranches, writeFlat, SEQUENTIAL, CONCURRENT, TRACES_DIR } from "./traces.mjs";
import { loadAdapters, LIBRARIES } from "./adapters.mjs";

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}`);
    return [m[1], m[2] ?? true];
  }),
);
const list = (v, dflt) => (v && v !== true ? String(v).split(",").filter(Boolean) : dflt);
const LIBS = list(args.libs, LIBRARIES);
const TRACES = list(args.traces, [...SEQUENTIAL, ...CONCURRENT]);
const RUNS = Math.max(1, Number(args.runs ?? 3));
const LOAD_RUNS = 5;
// Load: LOAD_PROCESSES fresh processes per (library, trace), each loading up to
// LOAD_CHILD_RUNS times. The first load in a process runs wasm (and JS) before V8 has
// optimized it — baseline-compiled code, tier-up on the way — so it is reported on its
// own (median over the processes) next to the warm loads (median of every later run).
const LOAD_PROCESSES = Math.max(1, Number(args["load-processes"] ?? 3));
const LOAD_CHILD_RUNS = 12;
const APPLY_BUDGET_MS = 20_000; // stop repeating a measurement once it has taken this long
const LOAD_BUDGET_MS = 5_000;
const MEMORY = !args["no-memory"];
const HERE = path.dirname(fileURLToPath(import.meta.url));
const TMP = mkdtempSync(path.join(os.tmpdir(), "edgesync-text-bench-"));
process.on("exit", () => rmSync(TMP, { recursive: true, force: true }));

const gc = typeof global.gc === "function" ? () => global.gc() : () => {};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fail = (msg) => {
  console.error(`\nFAILED: ${msg}`);
  process.exit(1);
};
function firstDiff(a, b) {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `lengths ${a.length} vs ${b.length}, first difference at ${i}: ${JSON.stringify(a.slice(i, i + 30))} vs ${JSON.stringify(b.slice(i, i + 30))}`;
}
const checkText = (lib, trace, what, got) => {
  if (got !== trace.endContent) fail(`${lib} ${trace.name} ${what}: text !== endContent (${firstDiff(got, trace.endContent)})`);
};

/** Runs `fn` up to `max` times while the total stays under `budget` ms; returns times. */
function repeat(max, budget, fn) {
  const times = [];
  let spent = 0;
  while (times.length < max && (times.length === 0 || spent < budget)) {
    gc();
    const ms = fn();
    times.push(ms);
    spent += ms;
  }
  return times;
}

function benchSequential(a, trace) {
  const flat = flatPatches(trace, a.unit);
  const flatBase = path.join(TMP, `${trace.name}.${a.unit}`);
  writeFlat(flatBase, flat, trace); // for the child processes
  let doc = null;
  const applyTimes = repeat(RUNS, APPLY_BUDGET_MS, () => {
    if (doc) a.free(doc);
    doc = null;
    gc();
    const t0 = performance.now();
    doc = replaySequential(a, trace, flat);
    const ms = performance.now() - t0;
    checkText(a.name, trace, "apply", a.text(doc));
    return ms;
  });
  const t0 = performance.now();
  const bytes = a.encode(doc);
  const encodeMs = performance.now() - t0;
  a.free(doc);
  doc = null;
  const gz = gzipSync(bytes, { level: 9 }).length;
  const docFile = path.join(TMP, `${trace.name}.${a.name}.doc`);
  writeFileSync(docFile, bytes);
  return {
    apply: median(applyTimes), applyRuns: applyTimes.length,
    encodeMs, size: bytes.length, gzip: gz,
    docFile, flatBase,
  };
}

function benchConcurrent(a, trace) {
  gc();
  const r = replayConcurrent(a, trace, { keepBranches: true });
  checkText(a.name, trace, "concurrent replay", r.text);
  const bytes = a.encode(r.doc);
  a.free(r.doc);
  const gz = gzipSync(bytes, { level: 9 }).length;
  const mergeTimes = repeat(LOAD_RUNS, LOAD_BUDGET_MS, () => {
    const m = mergeBranches(a, r.targetBytes, r.branches);
    checkText(a.name, trace, "merge", m.text);
    return m.ms;
  });
  return {
    merge: median(mergeTimes), mergeRuns: mergeTimes.length, replay: r.replayMs,
    size: bytes.length, gzip: gz, agents: r.agents, importBatches: r.importBatches, rebuilds: r.rebuilds,
  };
}

/** Runs `node --expose-gc bench/text/<script> ...args`; resolves with its last JSON line. */
function child(script, args) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--expose-gc", path.join(HERE, script), ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("close", (code) => {
      const line = out.trim().split("\n").pop();
      try {
        const r = JSON.parse(line);
        if (code !== 0 || r.ok === false) r.error = `exit ${code}${r.ok === false ? ", text !== endContent" : ""} ${err.trim()}`;
        resolve(r);
      } catch {
        resolve({ error: `${script} ${args.join(" ")}: exit ${code}: ${err.trim() || out.trim()}` });
      }
    });
  });
}

/** Runs jobs (functions returning promises) `width` at a time. */
async function pool(jobs, width) {
  const queue = [...jobs];
  const worker = async () => {
    while (queue.length) await queue.shift()();
  };
  await Promise.all(Array.from({ length: width }, worker));
}

// ------------------------------------------------------------------ table printing
const fmtInt = (n) => Math.round(n).toLocaleString("en-US");
const fmtMs = (n) => (n >= 100 ? fmtInt(n) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const fmtMB = (b) => (b / (1024 * 1024)).toFixed(1);

/**
 * rows: [{ label, get(result) → number|undefined, fmt, goal: { text, factor } }] — the goal
 * is met when edgesync ≤ factor × the best (lowest) peer.
 */
function printTable(title, libs, results, rows) {
  const peers = libs.filter((l) => l !== "edgesync");
  const header = ["metric", ...libs, "best peer", "edgesync / best", "goal"];
  const body = rows.map((row) => {
    const vals = Object.fromEntries(libs.map((l) => [l, results[l] ? row.get(results[l]) : undefined]));
    const cells = libs.map((l) =>
      results[l]?.skipped ? "—" : vals[l] === undefined || Number.isNaN(vals[l]) ? "err" : row.fmt(vals[l]),
    );
    const peerVals = peers.filter((p) => typeof vals[p] === "number" && !Number.isNaN(vals[p]));
    let best = "", ratio = "n/a";
    if (peerVals.length) {
      const bp = peerVals.reduce((x, y) => (vals[y] < vals[x] ? y : x));
      best = `${bp} ${row.fmt(vals[bp])}`;
      const e = vals.edgesync;
      if (typeof e === "number" && !Number.isNaN(e) && row.goal) {
        const r = e / vals[bp];
        ratio = `${r.toFixed(2)}×${row.goal.factor ? (r <= row.goal.factor ? " ✓" : " ✗") : ""}`;
      } else if (typeof e === "number" && !Number.isNaN(e) && row.ratio) ratio = `${(e / vals[bp]).toFixed(2)}×`;
      else if (typeof e === "number") ratio = "";
    }
    return [row.label, ...cells, best, ratio, row.goal?.text ?? ""];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells.map((c, i) => (i === 0 || i >= cells.length - 1 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join("  ").trimEnd();
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of body) console.log(line(r));
}

// ------------------------------------------------------------------ main
const started = performance.now();
const adapters = await loadAdapters(LIBS);
const active = adapters.filter((a) => !a.skipped);
console.log(`text CRDT benchmark — node ${process.version}, ${os.cpus().length} cpu (${os.cpus()[0]?.model?.trim()}), ${os.platform()} ${os.arch()}`);
console.log(`traces: ${TRACES_DIR}`);
console.log(`libraries: ${active.map((a) => `${a.name} ${a.version} (${a.unit === "utf16" ? "UTF-16 indexes" : "code points"})`).join(", ")}`);
for (const a of adapters.filter((x) => x.skipped)) console.log(`note: ${a.name} skipped — ${a.skipped}`);
if (!global.gc) console.log("note: run with --expose-gc (npm run bench:text) for GC between runs");

const all = {};
const memJobs = [], loadJobs = [];
for (const name of TRACES) {
  const trace = loadTrace(name);
  const res = {};
  all[name] = {
    kind: trace.kind, results: res,
    trace: { patchCount: trace.patchCount, endContent: { length: trace.endContent.length }, numAgents: trace.numAgents },
  };
  for (const a of adapters) {
    if (a.skipped) {
      res[a.name] = { skipped: a.skipped };
      continue;
    }
    process.stderr.write(`  ${name} · ${a.name} …`);
    const t0 = performance.now();
    res[a.name] = trace.kind === "sequential" ? benchSequential(a, trace) : benchConcurrent(a, trace);
    process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    if (trace.kind === "sequential") {
      loadJobs.push([a.name, name]);
      if (MEMORY) memJobs.push([a.name, name]);
    }
  }
}
// Load time: one fresh process per (library, trace), one at a time (timed).
if (loadJobs.length) {
  process.stderr.write(`  load: ${loadJobs.length} fresh child processes, one at a time …`);
  const t0 = performance.now();
  for (const [lib, trace] of loadJobs) {
    const r = all[trace].results[lib];
    const firsts = [];
    const warm = [];
    for (let p = 0; p < LOAD_PROCESSES; p++) {
      const out = await child("load-child.mjs", [lib, r.docFile, r.flatBase, String(LOAD_CHILD_RUNS), String(LOAD_BUDGET_MS)]);
      if (out.error) fail(`load child ${lib} ${trace}: ${out.error}`);
      firsts.push(out.times[0]);
      warm.push(...out.times.slice(1));
    }
    r.loadFirst = median(firsts);
    r.loadProcesses = firsts.length;
    r.load = warm.length ? median(warm) : undefined;
    r.loadRuns = warm.length;
  }
  process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
// Memory: one fresh process per (library, trace), two at a time (not timed).
if (memJobs.length) {
  process.stderr.write(`  memory: ${memJobs.length} fresh child processes, two at a time …`);
  const t0 = performance.now();
  // Longest first, so the slow ones overlap each other rather than trail alone.
  memJobs.sort((x, y) => all[y[1]].results[y[0]].apply - all[x[1]].results[x[0]].apply);
  await pool(
    memJobs.map(([lib, trace]) => async () => {
      const r = all[trace].results[lib];
      const m = await child("memory-child.mjs", [lib, trace, r.flatBase]);
      if (m.error) fail(`memory child ${lib} ${trace}: ${m.error}`);
      r.memory = m.rss;
      r.heap = m.heapUsed;
      r.coldApply = m.applyMs;
    }),
    2,
  );
  process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

const libs = adapters.map((a) => a.name);
for (const name of TRACES) {
  const { kind, results, trace } = all[name];
  const note = `final text === endContent for every library ✓`;
  // "3" or "3; automerge 1" (runs stop early once they pass the time budget)
  const runs = (k) => {
    const counts = Object.values(results).filter((r) => r[k]).map((r) => r[k]);
    const freq = (v) => counts.filter((x) => x === v).length;
    const main = [...counts].sort((a, b) => freq(b) - freq(a))[0];
    const odd = Object.entries(results).filter(([, r]) => r[k] && r[k] !== main).map(([l, r]) => `${l} ${r[k]}`);
    return [main, ...odd].join("; ");
  };
  if (kind === "sequential") {
    printTable(
      `${name} — sequential, ${fmtInt(trace.patchCount)} patches, ${fmtInt(trace.endContent.length)} chars; ${note}`,
      libs,
      results,
      [
        { label: `apply (ms, median of ${runs("applyRuns")})`, get: (r) => r.apply, fmt: fmtMs, goal: { text: "≤ 0.5× fastest peer", factor: 0.5 } },
        { label: "encode (ms)", get: (r) => r.encodeMs, fmt: fmtMs, ratio: true },
        { label: "encoded size (bytes)", get: (r) => r.size, fmt: fmtInt, goal: { text: "≤ smallest peer", factor: 1 } },
        { label: "encoded size gzip -9 (bytes)", get: (r) => r.gzip, fmt: fmtInt, goal: { text: "≤ smallest peer", factor: 1 } },
        { label: `load: decode + text, 1st in a fresh process (ms, median of ${runs("loadProcesses")} processes)`, get: (r) => r.loadFirst, fmt: fmtMs, goal: { text: "≤ fastest peer", factor: 1 } },
        { label: `load: decode + text, warm (ms, median of ${runs("loadRuns")} later loads)`, get: (r) => r.load, fmt: fmtMs, goal: { text: "≤ fastest peer", factor: 1 } },
        ...(MEMORY
          ? [
              { label: "memory: RSS Δ, fresh process (MB)", get: (r) => r.memory, fmt: fmtMB, goal: { text: "≤ smallest peer", factor: 1 } },
              { label: "  of which JS heap Δ (MB)", get: (r) => r.heap, fmt: fmtMB },
              { label: "apply, 1 cold run in that process (ms)", get: (r) => r.coldApply, fmt: fmtMs, ratio: true },
            ]
          : []),
      ],
    );
  } else {
    const r0 = Object.values(results).find((r) => !r.skipped);
    printTable(
      `${name} — concurrent, ${fmtInt(trace.patchCount)} patches by ${trace.numAgents} agents (${r0 ? fmtInt(r0.importBatches) : "?"} catch-ups between them), ${fmtInt(trace.endContent.length)} chars; ${note}`,
      libs,
      results,
      [
        { label: `merge all branches, final step (ms, median of ${runs("mergeRuns")})`, get: (r) => r.merge, fmt: fmtMs, goal: { text: "(no stated goal)", factor: 0 } },
        { label: "whole replay incl. merge (ms)", get: (r) => r.replay, fmt: fmtMs, ratio: true },
        { label: "merged doc size (bytes)", get: (r) => r.size, fmt: fmtInt, ratio: true },
        { label: "merged doc size gzip -9 (bytes)", get: (r) => r.gzip, fmt: fmtInt, ratio: true },
      ],
    );
  }
}
const total = (performance.now() - started) / 1000;
console.log(`\nwall time ${total.toFixed(0)} s`);
if (args.json && args.json !== true) {
  writeFileSync(path.resolve(args.json), JSON.stringify({ node: process.version, libraries: adapters.map(({ name, version, unit, skipped }) => ({ name, version, unit, skipped })), traces: all }, null, 2));
}
