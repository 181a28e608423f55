// The built npm package: its manifest and subpath exports, each entry point's files,
// and each entry's size budget — what a page downloads for it: the wasm module, and the
// JS it imports, bundled and minified as a production build does (esbuild); the inline
// base64 copy of the module is a fallback chunk, only loaded where a bundler left the
// .wasm file behind, so it is not counted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { BUDGETS, GOALS } from "../support/size-budgets.mjs";
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

// The budgets and issue 18's goals: tests/support/size-budgets.mjs (also read by bench/entries.mjs).
test("no entry's budget is past issue 18's goal for it", () => {
  for (const [sub, goal] of Object.entries(GOALS)) assert.ok(BUDGETS[sub].gzip <= goal, `${sub}: budget ${BUDGETS[sub].gzip} > goal ${goal}`);
});

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
