// The built npm package: its manifest and subpath exports, each entry point's files,
// and each entry's size budget — what a page downloads for it: the wasm module, and the
// JS it imports, bundled and minified as a production build does (esbuild); the inline
// base64 copy of the module is a fallback chunk, only loaded where a bundler left the
// .wasm file behind, so it is not counted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const pkgDir = fileURLToPath(new URL("../../pkg/", import.meta.url));
const read = (p) => readFileSync(join(pkgDir, p));
const manifest = JSON.parse(read("package.json"));

/** The JS files `entry` imports statically, itself included (dynamic imports are chunks of their own). */
function staticClosure(entry) {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const src = readFileSync(file, "utf8");
    for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;'"]*?from\s*["'](\.[^"']+)["']|(?:^|\n)\s*import\s*["'](\.[^"']+)["']/g)) {
      const spec = m[1] ?? m[2];
      if (spec.endsWith(".js")) visit(resolve(dirname(file), spec));
    }
  };
  visit(join(pkgDir, entry));
  return [...seen];
}

async function entrySize(browserEntry, wasmFile) {
  const out = await build({
    entryPoints: [join(pkgDir, browserEntry)],
    bundle: true,
    minify: true,
    format: "esm",
    write: false,
    external: ["*inline.js"],
    logLevel: "silent",
  });
  const js = Buffer.from(out.outputFiles[0].contents);
  const wasm = read(wasmFile);
  return {
    jsRaw: js.length,
    jsGzip: gzipSync(js, { level: 9 }).length,
    wasmRaw: wasm.length,
    wasmGzip: gzipSync(wasm, { level: 9 }).length,
  };
}

// Budgets (gzip, wasm + the JS imported statically). Raise one deliberately (and say
// why in the commit); never let it creep. History of the whole package's wasm budget:
// 300/120 KiB for the remote client alone (measured 249/104 KiB); 560/200 KiB with the
// CRDTs; 640/240 KiB with the Resolver and deflated text snapshots; 1,900/780 KiB with
// the embedded replica (SQLite compiled to wasm, ~1.2 MB of it, plus the sync engine);
// 2,100/860 KiB with the edge subsystems; 2,150/880 KiB with the row-state layout and the
// host-file VFS; 2,250/920 KiB with interactive transactions, Hrana over WebSocket,
// the official error codes and read-only mirrors (issue 18). After merging main's
// authorization model and issue 13's reliability work (ledger, cancellation, byte-sized
// pages, value checks, schema evolution, server capture), every budget is the measured
// size + 1.5 % (2026-12-07: edgesync 1,016,623 B gzip, wasm 2,455,425 B raw; client
// 143,969; crdt 173,798; replica 688,609). Issue 18's goals: client ≤ 150 KB, CRDTs
// ≤ 250 KB, browser replica ≤ 700 KB — a budget never goes past its goal, except where
// said here. After merging main's browser replicas on OPFS (the OPFS host, change
// events, the page's worker client), the edge sync gateway (its replica half in
// `edgesync/replica`, its server half in `edgesync` only) and the dashboard's client
// features, measured 2026-12-07: edgesync 1,141,779 B gzip (wasm 2,810,320 B raw);
// replica 743,882 (wasm 717,382 + JS 26,500) — past its 700 KB goal by 44 KB: the
// budget is measured + 1.5 % until the savings listed in docs/compatibility.md land.
// Then the replica flavour built with `panic = "immediate-abort"` and binaryen's wasm-opt
// (docs/decisions.md, "Size of edgesync/replica"), measured 2026-12-07: replica 709,026
// (wasm 682,002 + JS 27,024; before 748,314), still 9 KB past its goal: budget measured
// + 1.5 %. The others measured the same day: edgesync 1,149,121 B gzip (wasm 2,827,743 B
// raw), client 145,920, crdt 173,830 — within their budgets, left as they were.
// Then the gateway's text merge (the Worker builds each text cell's document: the server
// half, in `edgesync` only) and the merges of that evening, measured 2026-12-07: edgesync
// 1,158,483 B gzip (wasm 2,857,440 B raw) — budget measured + 1.5 %; replica 709,848
// (wasm 682,138 + JS 27,710), within its budget, still 10 KB past its goal.
// Then the sync engine's and the Text CRDT's sorts through one shared instance of the
// standard library's sort (src/sort.rs; docs/decisions.md, "Size of edgesync/replica"),
// measured 2026-12-07: replica 694,552 (wasm 666,842 + JS 27,710) — within its 700 KB
// goal, which is now its budget; edgesync 1,142,727, crdt 169,989, client 146,165.
// With the pre-bundled browser entry and browser transactions / reconnect (same day):
// replica 696,076 (wasm 666,842 + JS 29,234).
const BUDGETS = {
  ".": { entry: "web.js", wasm: "wasm/edgesync_bg.wasm", gzip: 1176 * 1000, wasmRaw: 2833 * 1024 },
  "./client": { entry: "entries/client.web.js", wasm: "wasm/client/edgesync_bg.wasm", gzip: 147 * 1000 },
  "./crdt": { entry: "entries/crdt.web.js", wasm: "wasm/crdt/edgesync_bg.wasm", gzip: 177 * 1000 },
  "./replica": { entry: "entries/replica.web.js", wasm: "wasm/replica/edgesync_bg.wasm", gzip: 700 * 1000 },
};

for (const [sub, b] of Object.entries(BUDGETS)) {
  test(`${sub === "." ? "edgesync" : `edgesync${sub.slice(1)}`}: within its size budget (${Math.round(b.gzip / 1000)} KB gzip)`, async () => {
    const s = await entrySize(b.entry, b.wasm);
    const total = s.jsGzip + s.wasmGzip;
    assert.ok(WebAssembly.validate(read(b.wasm)), "a valid module");
    assert.ok(total <= b.gzip, `${sub}: ${total} bytes gzip (wasm ${s.wasmGzip} + minified JS ${s.jsGzip}) > ${b.gzip}`);
    if (b.wasmRaw) assert.ok(s.wasmRaw <= b.wasmRaw, `${sub}: wasm ${s.wasmRaw} bytes raw > ${b.wasmRaw}`);
  });
}

test("smaller entries ship smaller modules: none of them has SQLite, the CRDTs or the edge subsystems it does not need", () => {
  const size = (f) => read(f).length;
  assert.ok(size("wasm/client/edgesync_bg.wasm") < size("wasm/crdt/edgesync_bg.wasm"));
  assert.ok(size("wasm/crdt/edgesync_bg.wasm") < size("wasm/replica/edgesync_bg.wasm"));
  assert.ok(size("wasm/replica/edgesync_bg.wasm") < size("wasm/edgesync_bg.wasm"));
  const exportsOf = (dir) => readFileSync(join(pkgDir, dir, "edgesync.d.ts"), "utf8");
  assert.doesNotMatch(exportsOf("wasm/client"), /class (Replica|GCounter|EdgeRouter|SessionStore)\b/);
  assert.doesNotMatch(exportsOf("wasm/crdt"), /class (Replica|RemoteClient|EdgeRouter)\b/);
  assert.doesNotMatch(exportsOf("wasm/replica"), /class (EdgeRouter|SessionStore|GCounter)\b/);
});

test("package.json exports an entry per runtime for each subpath, each file present", () => {
  assert.equal(manifest.name, "edgesync");
  assert.equal(manifest.type, "module");
  assert.deepEqual(Object.keys(manifest.dependencies), ["ws"]);
  for (const sub of [".", "./client", "./crdt", "./replica"]) {
    const e = manifest.exports[sub];
    for (const cond of ["types", "workerd", "worker", "browser", "node", "default"]) {
      assert.ok(e[cond], `${sub} condition ${cond}`);
      assert.ok(existsSync(join(pkgDir, e[cond])), `${sub} ${cond} → ${e[cond]} exists`);
    }
    assert.ok(read(e.workerd).includes("_bg.wasm\""), `${sub}: the workerd entry imports its module`);
  }
});

test("the browser entries have no top-level await and find their module with new URL(…, import.meta.url)", () => {
  for (const sub of [".", "./client", "./crdt", "./replica"]) {
    const file = manifest.exports[sub].browser;
    for (const f of staticClosure(file)) {
      const src = readFileSync(f, "utf8");
      // An `await` outside any function: a line starting with it at the top level.
      assert.doesNotMatch(src, /^await /m, `${f}: top-level await`);
    }
    assert.match(read(file).toString(), /new URL\("\.\.?\/wasm\/[^"]*edgesync_bg\.wasm", import\.meta\.url\)/, file);
  }
  // The generated glue does not name its module itself (bundlers would ship it twice).
  for (const dir of ["wasm", "wasm/client", "wasm/crdt", "wasm/replica"]) {
    assert.doesNotMatch(read(`${dir}/edgesync.js`).toString(), /new URL\('edgesync_bg\.wasm'/);
  }
});

test("the type declarations need neither @types/node nor Symbol.dispose nor DOM-only types in the glue", () => {
  for (const dir of ["wasm", "wasm/client", "wasm/crdt", "wasm/replica"]) {
    const code = read(`${dir}/edgesync.d.ts`)
      .toString()
      .split("\n")
      .filter((l) => !/^\s*(\*|\/\*\*|\/\/)/.test(l)) // doc comments may name them
      .join("\n");
    assert.doesNotMatch(code, /Symbol\.dispose|RequestInfo|BufferSource|WebAssembly\./, dir);
  }
  for (const f of ["web.d.ts", "flavors/full.d.ts", "client.d.ts", "types.d.ts", "replica.d.ts", "entries/client.web.d.ts"]) {
    const d = read(f).toString();
    assert.doesNotMatch(d, /from "node:|\/\/\/ <reference types="node"|NodeJS\./, f);
  }
});

test("Node resolves each export to its node entry, and the API is complete", async () => {
  const api = await import("edgesync");
  for (const name of ["createClient", "createEmbeddedReplica", "LibsqlError", "LibsqlBatchError", "EdgesyncError", "isLocalUrl", "GCounter", "Text", "Resolver", "EdgeRouter", "connectHub"]) {
    assert.equal(typeof api[name], "function", name);
  }
  await api.ready;
  const c = api.createClient({ url: "http://127.0.0.1:9" });
  for (const m of ["execute", "batch", "migrate", "transaction", "executeMultiple", "sync", "close", "reconnect"]) assert.equal(typeof c[m], "function", m);
  assert.equal(c.protocol, "http");
  c.close();
  const client = await import("edgesync/client");
  assert.equal(typeof client.createClient, "function");
  assert.equal(client.GCounter, undefined, "edgesync/client has no CRDTs");
  assert.throws(() => client.createClient({ url: ":memory:" }), (e) => e.code === "URL_SCHEME_NOT_SUPPORTED");
  const crdt = await import("edgesync/crdt");
  const g = new crdt.GCounter(1);
  g.increment(2);
  assert.equal(g.value(), 2);
  const replica = await import("edgesync/replica");
  const db = replica.createClient({ url: ":memory:" });
  assert.equal((await db.execute("select 1 + 1 as two")).rows[0].two, 2);
  db.close();
});

test("the package ships its own README: usage only, nothing a package user cannot act on", () => {
  const readme = read("README.md").toString();
  assert.equal(readme, readFileSync(new URL("../../js/README.md", import.meta.url), "utf8"), "pkg/README.md is js/README.md");
  assert.ok(readme.length < 8 * 1024, `${readme.length} bytes: usage only`);
  assert.match(readme, /npm install edgesync/);
  for (const runtime of ["Node.js", "Browser", "Cloudflare Worker"]) assert.ok(readme.includes(runtime), runtime);
  // Repo paths and commands mean nothing inside node_modules.
  assert.doesNotMatch(readme, /scripts\/|src\/|bash |cargo /);
});
