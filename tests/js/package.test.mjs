// The built npm package: its manifest, its entry points, and the wasm size budget.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { gzipSync } from "node:zlib";

const pkgDir = new URL("../../pkg/", import.meta.url);
const read = (p) => readFileSync(new URL(p, pkgDir));

// Budget for the release .wasm. Raise it deliberately (and say why in the commit)
// when a feature needs the bytes; never let it creep.
// History: 300/120 KiB for the remote client alone (measured 249/104 KiB); raised to
// 560/200 KiB when the CRDTs landed (clocks, five state types, text: 478/175 KiB);
// 640/240 KiB with the Resolver and deflated text snapshots (600/216 KiB);
// 1,900/780 KiB with the embedded replica: SQLite itself compiled to wasm
// (sqlite-wasm-rs, ~1.2 MB of it) plus the sync engine (1,821/755 KiB measured);
// 2,100/860 KiB with the edge subsystems — router, sessions with AES-256-GCM, metrics
// and their bindings, ~200 KB raw — after dropping SQLite extensions edgesync never
// uses (session extension, introspection vtabs) (2,046/834 KiB measured);
// 2,150/880 KiB with the row-state sync layout (2,091/~856 KiB) and the host-file VFS
// that keeps `file:` replicas on Node's fs (+19 KB of code: 2,113/866 KiB measured);
// 2,190/895 KiB with the edge's authorization model (src/auth, the SQL guard and the
// allow-list of deterministic functions, sealed session owners and the session ledger,
// the AccessPolicy binding: +43/+18 KiB, 2,157/880 KiB measured);
// issue 13's data half — value checks, NULL flags, schema
// evolution and migrate(), the server-side capture triggers, the server check at every
// pull — +89 KB raw / +33 KB gzip (main 2,114/862 KiB, with it 2,202/895 KiB measured),
// and its network half (byte-sized chunks, write-through settling) +44/+15 KB: both
// 2,245/910 KiB measured.
// 2,320/940 KiB with both issue 13 and the authorization model: 2,291/932 KiB measured.
// 2,328/947 KiB (measured + 1.5 %) with issue 16's client features (pendingKeys):
// 2,293.1/932.5 KiB measured after merging main (main's build: 2,291.4/932.1 KiB).
// binaryen's wasm-opt was measured and not adopted: -Os/-Oz cut 7 % raw but add 1 %
// gzip.
// 2,340/951 KiB with browser replicas on OPFS (the OPFS host behind the host VFS, change
// events from the pre-update hook, STORAGE_FULL, the page's config checks and
// compiled-module hand-off: +14/+5 KiB): 2,359,920 bytes raw / 959,412 gzip
// (2,305/937 KiB; zlib level 9, as below) measured after merging main on 2026-12-07,
// plus ~1.5 %. Write-through calls answered once across an owner tab's death (the
// request keys, src/sync/net/requests.rs): +13/+2 KB (2,372,890 / 961,253 bytes).
// 2,480/990 KiB with the edge sync gateway (src/gateway: the records protocol, rules,
// validation, the server half the Worker runs and the replica's half; +305/+100 KiB,
// 2,462/980 KiB measured — about two thirds of it the server half, which a Worker-only
// build could leave out of browser bundles: docs/decisions.md); with issue 13 merged
// (the gateway's epoch, schema version and byte-sized pages) 2,626/1,038 KiB measured.
// With issue 13, OPFS, the gateway and the dashboard's client features (pause,
// maxRetries, pendingKeys: +2 KB) and write-through keys for calls sent again by a new
// owner tab: 2,712,964 / 1,074,343 bytes (2,649/1,049 KiB) measured.
const BUDGET = { raw: 2680 * 1024, gzip: 1060 * 1024 };

test("the release wasm stays within its size budget", () => {
  const wasm = read("wasm/edgesync_bg.wasm");
  const gz = gzipSync(wasm, { level: 9 }).length;
  assert.ok(wasm.length <= BUDGET.raw, `raw ${wasm.length} > ${BUDGET.raw}`);
  assert.ok(gz <= BUDGET.gzip, `gzip ${gz} > ${BUDGET.gzip}`);
  assert.ok(WebAssembly.validate(wasm), "a valid module");
});

test("package.json exports an entry per runtime, each file present", () => {
  const manifest = JSON.parse(read("package.json"));
  assert.equal(manifest.name, "edgesync");
  assert.equal(manifest.type, "module");
  const root = manifest.exports["."];
  for (const cond of ["types", "workerd", "browser", "node", "default"]) {
    assert.ok(root[cond], `condition ${cond}`);
    assert.ok(existsSync(new URL(root[cond], pkgDir)), `${cond} → ${root[cond]} exists`);
  }
  assert.equal(root.workerd, "./workerd.js");
  assert.ok(read("workerd.js").includes("initSync"), "workerd entry instantiates synchronously");
});

test("Node resolves `edgesync` to the node entry and the API is complete", async () => {
  const api = await import("edgesync");
  for (const name of ["createClient", "EdgesyncError"]) assert.equal(typeof api[name], "function", name);
  const c = api.createClient({ url: "http://127.0.0.1:9" });
  for (const m of ["execute", "batch", "close"]) assert.equal(typeof c[m], "function", m);
  assert.equal(c.protocol, "http");
  c.close();
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
