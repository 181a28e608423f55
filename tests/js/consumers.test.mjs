// The packed package (`npm pack` of pkg/) in fresh projects, each with its tool's
// default configuration (tests/consumers/README.md): Node TypeScript (strict, nodenext,
// no skipLibCheck), browser types without @types/node, Vite build and dev (Vite 8, and
// Vite 6's dev server), webpack 5, esbuild, Rollup and a wrangler Worker. Each runs a remote
// query and an embedded replica against a real sqld, and reports what it saw.
// The bundlers are pinned in tests/consumers/tools.json and installed once under
// .tools/consumers/ by scripts/test.sh (ensure_consumer_tools); TypeScript, the type
// packages, wrangler and Chromium are the repo's. A project installs only the tarball.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, readdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { chromium } from "playwright-core";
import { REPO_ROOT, freePort, startSqld } from "../support/sqld.mjs";
import { startStaticServer } from "../support/static-server.mjs";

const TOOLS_DIR = join(REPO_ROOT, ".tools", "consumers");
const repoModules = join(REPO_ROOT, "node_modules");
/** The executable `bin` of the pinned tool set `set` (tests/consumers/tools.json). */
function tool(set, bin) {
  const path = join(TOOLS_DIR, set, "node_modules", ".bin", bin);
  if (!existsSync(path)) throw new Error(`${path} is missing: run this test with bash scripts/test.sh js tests/js/consumers.test.mjs`);
  return path;
}
const tsc = join(repoModules, ".bin", "tsc");
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const STEP = 600_000;

let work, tarball, sqld, browser;
const dirs = [];
/** Children started here (dev servers), stopped by PID. */
const children = new Set();

function run(cmd, args, cwd, env = {}) {
  try {
    return execFileSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}:\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/**
 * A fresh copy of the template `name` with the shared scenario and the tarball installed
 * by npm; `types` (packages of the repo's node_modules, e.g. "@types/node") are linked in.
 */
function project(name, types = [], scenarioDir = ".") {
  const dir = mkdtempSync(join(work, `${name}-`));
  dirs.push(dir);
  cpSync(join(REPO_ROOT, "tests", "consumers", name), dir, { recursive: true });
  for (const f of ["scenario.js", "durable.js"]) cpSync(join(REPO_ROOT, "tests", "consumers", "shared", f), join(dir, scenarioDir, f));
  run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", tarball], dir);
  for (const t of types) {
    mkdirSync(dirname(join(dir, "node_modules", t)), { recursive: true });
    symlinkSync(join(repoModules, t), join(dir, "node_modules", t), "dir");
  }
  return dir;
}

/** Starts a long-running command; resolves once `ready` matches its output. */
function serve(cmd, args, cwd, ready, env = {}) {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} ${args.join(" ")} did not start:\n${out}`)), 120_000);
    const onData = (d) => {
      out += d;
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`${cmd} exited with ${code}:\n${out}`)));
  });
}

function stop(child) {
  if (!child || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    /* gone */
  }
}

/** Loads `url` in Chromium and returns the scenario's report from the page title. */
async function inChromium(url) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.goto(url);
    await page.waitForFunction(() => document.title !== "", null, { timeout: 120_000 });
    const title = await page.title();
    assert.ok(!title.startsWith("ERROR"), `${title}\n${errors.join("\n")}`);
    return JSON.parse(title);
  } finally {
    await page.close();
  }
}

function query(name) {
  return new URLSearchParams({ url: sqld.url, token: sqld.tokens.rw, name }).toString();
}

/** What every scenario must have seen. */
function checkReport(r, name) {
  assert.equal(r.remote, `hello from ${name}`);
  assert.deepEqual(r.ws, ["ws", `hello from ${name}!`, `hello from ${name}`], "over a WebSocket: the transaction saw its write, the rollback undid it");
  assert.deepEqual(r.blob, [1, 2, 3]);
  assert.ok(r.pushed >= 1, `pushed ${r.pushed}`);
  assert.equal(r.mirrored, `hello from ${name}`, "the replica sees the server's table after sync()");
  assert.deepEqual(r.notes, [`note from ${name}`]);
}

/**
 * What a browser page's `file:` replica must have done: kept in OPFS by the worker the
 * bundler shipped; or, where the bundle cannot start it (`inMemory`: why, as a pattern),
 * kept in the page's memory and said so — never silently.
 */
function checkDurable(r, name, inMemory) {
  checkStore(r.durable, name, inMemory);
  // The same from `edgesync/replica`, whose entry the package ships pre-bundled.
  checkStore(r.durable.replica, name, inMemory);
}

function checkStore(d, name, inMemory) {
  assert.equal(d.pushed, 1, JSON.stringify(d));
  if (inMemory) {
    assert.deepEqual(d.persistent, [false, false], JSON.stringify(d));
    assert.equal(d.kept, "SQLITE_ERROR", "a store in memory is gone with its client");
    assert.equal(d.storage?.persistent, false, JSON.stringify(d));
    assert.match(d.storage.reason, inMemory);
  } else {
    assert.deepEqual(d.persistent, [true, true], JSON.stringify(d));
    assert.equal(d.kept, `kept by ${name}`);
    assert.deepEqual(d.storage, { persistent: true });
  }
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), "edgesync-consumers-"));
  const out = run("npm", ["pack", "--pack-destination", work, "--json"], join(REPO_ROOT, "pkg"));
  tarball = join(work, JSON.parse(out)[0].filename);
  sqld = await startSqld({ auth: true });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
});

after(async () => {
  for (const c of children) stop(c);
  await browser?.close();
  await sqld?.stop();
  if (process.env.EDGESYNC_KEEP_CONSUMERS !== "1" && work) rmSync(work, { recursive: true, force: true });
});

test("Node, TypeScript strict with module nodenext and no skipLibCheck: type-checks and runs", { timeout: STEP }, () => {
  const dir = project("node-ts", ["@types/node"], "src");
  run(tsc, ["-p", "."], dir);
  cpSync(join(dir, "src", "scenario.js"), join(dir, "dist", "scenario.js"));
  const r = JSON.parse(run("node", ["dist/main.js", sqld.url, sqld.tokens.rw], dir).trim().split("\n").pop());
  checkReport(r, "node_ts");
  assert.deepEqual(r.types, ["bigint", "SQL_PARSE_ERROR", "true", "0"]);
  assert.deepEqual([r.counter, r.anchor, r.g], [2, 1, 1]);
});

test("a browser project without @types/node and without skipLibCheck type-checks", { timeout: STEP }, () => {
  const dir = project("browser-types");
  run(tsc, ["-p", "."], dir);
  assert.ok(!readdirSync(join(dir, "node_modules")).includes("@types"), "no @types installed");
});

test("Vite 8: vite build, served and loaded in Chromium", { timeout: STEP }, async () => {
  const dir = project("vite");
  run(tool("vite8", "vite"), ["build"], dir);
  const web = await startStaticServer({ root: join(dir, "dist") });
  try {
    const report = await inChromium(`${web.url}/index.html?${query("vite_build")}`);
    checkReport(report, "vite_build");
    checkDurable(report, "vite_build");
  } finally {
    await web.close();
  }
});

for (const [label, set] of [
  ["Vite 8", "vite8"],
  ["Vite 6 (pre-bundled dependencies without their files)", "vite6"],
]) {
  test(`${label}: vite dev, loaded in Chromium`, { timeout: STEP }, async () => {
    const dir = project("vite");
    const port = await freePort();
    const child = await serve(tool(set, "vite"), ["--port", String(port), "--strictPort", "--host", "127.0.0.1"], dir, /ready in|Local:/);
    try {
      const name = set === "vite8" ? "vite_dev" : "vite6_dev";
      const report = await inChromium(`http://127.0.0.1:${port}/index.html?${query(name)}`);
      checkReport(report, name);
      // Vite 6's dev server pre-bundles the package away from its files: the worker's
      // file is not found, and the replica says it is in memory (Vite 8 keeps them).
      checkDurable(report, name, set === "vite6" ? /database worker could not be loaded from this page/ : undefined);
    } finally {
      stop(child);
    }
  });
}

test("webpack 5 with no config file, loaded in Chromium", { timeout: STEP }, async () => {
  const dir = project("webpack", [], "src");
  run(tool("webpack", "webpack"), [], dir);
  const web = await startStaticServer({ root: dir });
  try {
    const report = await inChromium(`${web.url}/index.html?${query("webpack")}`);
    checkReport(report, "webpack");
    checkDurable(report, "webpack");
  } finally {
    await web.close();
  }
});

test("esbuild --bundle with no other option, loaded in Chromium", { timeout: STEP }, async () => {
  const dir = project("esbuild", [], "src");
  run(tool("esbuild", "esbuild"), ["src/index.js", "--bundle", "--outfile=dist/main.js"], dir);
  const web = await startStaticServer({ root: dir });
  try {
    const report = await inChromium(`${web.url}/index.html?${query("esbuild")}`);
    checkReport(report, "esbuild");
    // An IIFE bundle has no import.meta.url to find the worker's file by.
    checkDurable(report, "esbuild", /database worker could not be started from this page/);
  } finally {
    await web.close();
  }
});

test("Rollup with node-resolve and no asset or worker plugin, loaded in Chromium", { timeout: STEP }, async () => {
  const dir = project("rollup", [], "src");
  // The config imports the plugin: it is found next to the project, as if installed there.
  const plugin = join(TOOLS_DIR, "rollup", "node_modules", "@rollup");
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  symlinkSync(plugin, join(dir, "node_modules", "@rollup"), "dir");
  run(tool("rollup", "rollup"), ["-c"], dir);
  const web = await startStaticServer({ root: dir });
  try {
    const report = await inChromium(`${web.url}/index.html?${query("rollup")}`);
    checkReport(report, "rollup");
    // Rollup ships neither the wasm (the inline copy is used) nor the worker's file.
    checkDurable(report, "rollup", /database worker could not be loaded from this page/);
  } finally {
    await web.close();
  }
});

test("a wrangler Worker with the default rules: types check, wrangler dev runs it", { timeout: STEP }, async () => {
  const dir = project("wrangler", ["@cloudflare/workers-types"], "src");
  run(tsc, ["-p", "."], dir);
  const state = join(dir, ".state");
  const env = {
    CI: "true",
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_SEND_ERROR_REPORTS: "false",
    WRANGLER_HIDE_BANNER: "true",
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    WRANGLER_LOG_PATH: join(state, "logs"),
    XDG_CONFIG_HOME: join(state, "xdg"),
  };
  const wrangler = join(REPO_ROOT, "node_modules", ".bin", "wrangler");
  run(wrangler, ["deploy", "--dry-run", "--outdir", "dist"], dir, env);
  const port = await freePort();
  const child = await serve(wrangler, ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", "0", "--persist-to", join(state, "persist")], dir, /Ready on/, env);
  try {
    let res;
    for (let i = 0; i < 50; i++) {
      try {
        res = await fetch(`http://127.0.0.1:${port}/?${query("wrangler")}`);
        break;
      } catch {
        await sleep(200);
      }
    }
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    checkReport(body, "wrangler");
  } finally {
    stop(child);
  }
});
