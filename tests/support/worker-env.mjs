// Test harness: the repo's edge Worker (wrangler.toml) served by a real `wrangler dev`
// (workerd) on a free loopback port, hermetic (no phone-home, state in a temp dir).
// Node built-ins only.
//
//   import { startWorker } from './support/worker-env.mjs';
//   const w = await startWorker({
//     name: 'hub',
//     vars: { LIBSQL_URL: db.url, REGIONS: JSON.stringify([...]) },   // --var K:V (JSON is fine)
//     secrets: { JWT_SECRET: 's3cret', JWT_PUBLIC_KEY: pem },        // --env-file (multi-line ok)
//     persistTo: dir,   // optional: reuse Durable Object / KV state across workers
//   });
//   await fetch(w.base + '/health');  // w.wsBase for ws://
//   await w.restart();                // same port and state (persistTo), e.g. to test persistence
//   await w.stop();                   // SIGTERM the process group (SIGKILL after 5 s)
//
// Every worker this module started is killed (process group) when the test process exits.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, REPO_ROOT } from './sqld.mjs';

export const WRANGLER = path.join(REPO_ROOT, 'node_modules', '.bin', 'wrangler');
const READY_LIMIT_MS = 90_000;
const STOP_GRACE_MS = 5_000;
const START_ATTEMPTS = 3;

/** Process groups of running workers, killed at exit. */
const liveGroups = new Set();
/** Temp dirs owned by this module, removed at exit (EDGESYNC_KEEP_WORKER_DIRS=1 keeps them). */
const ownedDirs = new Set();
let exitHandlerInstalled = false;
function installExitHandler() {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (process.env.EDGESYNC_KEEP_WORKER_DIRS !== '1') {
      for (const dir of ownedDirs) fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Environment for wrangler with every phone-home off and its state in `home`. */
export function wranglerEnv(home) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Keep the run hermetic: no inherited Cloudflare/wrangler settings or libSQL vars.
    if (/^(CLOUDFLARE_|CF_|WRANGLER_|MINIFLARE_|LIBSQL_|SQLD_)/.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    CI: 'true',
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_SEND_ERROR_REPORTS: 'false',
    WRANGLER_HIDE_BANNER: 'true',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV: 'true', // so --env-file is honoured
    CLOUDFLARE_INCLUDE_PROCESS_ENV: 'false',
    WRANGLER_LOG_PATH: path.join(home, 'logs'),
    XDG_CONFIG_HOME: path.join(home, 'config'),
    NO_COLOR: '1',
    FORCE_COLOR: '0',
  };
}

/**
 * One `KEY=value` line of a wrangler env file (dotenv + dotenv-expand), such that the
 * worker sees exactly `value`: `$` is escaped (no expansion), newlines travel as `\n`
 * inside double quotes, otherwise single quotes or backticks keep the text verbatim.
 */
export function envFileLine(key, value) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`bad secret name ${JSON.stringify(key)}`);
  const v = String(value).replace(/\$/g, '\\$');
  const multiline = /[\r\n]/.test(v);
  if (!multiline && !v.includes("'")) return `${key}='${v}'\n`;
  if (!v.includes('"') && !/\\[nr]/.test(v)) return `${key}="${v.replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"\n`;
  if (!multiline && !v.includes('`')) return `${key}=\`${v}\`\n`;
  throw new Error(`secret ${key} cannot be written to an env file (mixes quotes with newlines)`);
}

function isReadyResponse(res) {
  // The worker's own answers are JSON (even errors); wrangler's proxy pages are not.
  return /application\/json/.test(res.headers.get('content-type') ?? '');
}

/**
 * Start `wrangler dev` for the repo's worker.
 * @param {{
 *   name?: string,
 *   vars?: Record<string, string|number|boolean|object>,  // objects are JSON-encoded
 *   secrets?: Record<string, string>,
 *   config?: string,        // wrangler config, default $EDGESYNC_WORKER_CONFIG or <repo>/wrangler.toml
 *   persistTo?: string,     // state dir (default: a fresh temp dir, removed on stop())
 *   port?: number,          // default: a free port
 *   readyPath?: string,     // polled until the worker answers JSON (default /health)
 *   readyLimitMs?: number,
 *   args?: string[],        // extra wrangler dev arguments
 * }} opts
 * @returns {Promise<{name, base, wsBase, port, persistTo, home, readonly output: string,
 *   readonly pid: number, running(): boolean, stop(): Promise<void>, kill(): Promise<void>,
 *   restart(): Promise<void>}>}
 */
export async function startWorker(opts = {}) {
  installExitHandler();
  const {
    name = 'worker',
    vars = {},
    secrets = {},
    config = process.env.EDGESYNC_WORKER_CONFIG || path.join(REPO_ROOT, 'wrangler.toml'),
    readyPath = '/health',
    readyLimitMs = READY_LIMIT_MS,
    args: extraArgs = [],
    logLevel = 'info', // 'warn' for benchmarks: wrangler logs every request at info
  } = opts;
  const home = fs.mkdtempSync(path.join(os.tmpdir(), `edgesync-wrangler-${name.replace(/[^\w-]/g, '_')}-`));
  ownedDirs.add(home);
  const persistTo = opts.persistTo ?? path.join(home, 'state');
  const secretsFile = path.join(home, 'secrets.env');
  fs.writeFileSync(secretsFile, Object.entries(secrets).map(([k, v]) => envFileLine(k, v)).join(''), { mode: 0o600 });

  const varArgs = [];
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) continue;
    varArgs.push('--var', `${k}:${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }

  let output = '';
  let state; // { child, exit, exited }
  let port = opts.port;

  const spawnOnce = (p) => {
    const args = [
      'dev',
      '--config', config,
      '--ip', '127.0.0.1',
      '--port', String(p),
      '--inspector-port', '0',
      ...varArgs,
      '--env-file', secretsFile,
      '--persist-to', persistTo,
      '--show-interactive-dev-session=false',
      '--log-level', logLevel,
      ...extraArgs,
    ];
    output += `\n=== ${new Date().toISOString()} wrangler ${args.filter((a) => a !== secretsFile).join(' ')}\n`;
    const child = spawn(WRANGLER, args, {
      cwd: REPO_ROOT,
      env: wranglerEnv(home),
      detached: true, // own process group: stop() kills wrangler and workerd together
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const s = { child, exit: null };
    liveGroups.add(child.pid);
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    s.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve((s.exit = { code, signal })));
      child.once('error', (error) => resolve((s.exit = { error: String(error) })));
    });
    return s;
  };

  const waitReady = async (s, base) => {
    const t0 = Date.now();
    let last = 'no attempt';
    while (Date.now() - t0 < readyLimitMs && !s.exit) {
      try {
        const res = await fetch(base + readyPath, { signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        if (isReadyResponse(res)) return { ok: true };
        last = `status ${res.status} (${res.headers.get('content-type')})`;
      } catch (e) {
        last = String(e.cause ?? e);
      }
      await sleep(200);
    }
    return { ok: false, last };
  };

  const killGroup = async (s, signal = 'SIGTERM') => {
    if (!s) return;
    if (!s.exit) {
      try {
        process.kill(-s.child.pid, signal);
      } catch {
        /* already gone */
      }
      const grace = new AbortController(); // cancels the timer so it can't hold the process open
      const timedOut = await Promise.race([
        s.exited.then(() => false),
        sleep(STOP_GRACE_MS, true, { signal: grace.signal }).catch(() => false),
      ]);
      grace.abort();
      if (timedOut) {
        try {
          process.kill(-s.child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await s.exited;
      }
    }
    // wrangler may exit before its workerd child: make sure nothing of the group survives.
    try {
      process.kill(-s.child.pid, 'SIGKILL');
    } catch {
      /* the group is empty */
    }
    liveGroups.delete(s.child.pid);
  };

  /** Start on `port` (or free ports); retries when the port was taken meanwhile. */
  const boot = async (fixedPort) => {
    let lastErr;
    for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      const p = fixedPort ?? (await freePort());
      const mark = output.length;
      state = spawnOnce(p);
      const r = await waitReady(state, `http://127.0.0.1:${p}`);
      if (r.ok) {
        port = p;
        return;
      }
      await killGroup(state, 'SIGKILL');
      lastErr = new Error(
        `wrangler dev (${name}) did not answer on 127.0.0.1:${p} within ${readyLimitMs} ms ` +
          `(exit ${JSON.stringify(state.exit)}, last: ${r.last}).\n--- wrangler output ---\n${output}`,
      );
      const portTaken = /EADDRINUSE|address already in use/i.test(output.slice(mark));
      if (!portTaken) break;
      if (fixedPort !== undefined) await sleep(500);
    }
    throw lastErr;
  };

  try {
    await boot(port);
  } catch (e) {
    ownedDirs.delete(home);
    fs.rmSync(home, { recursive: true, force: true });
    throw e;
  }

  let removed = false;
  const handle = {
    name,
    home,
    persistTo,
    get port() {
      return port;
    },
    get base() {
      return `http://127.0.0.1:${port}`;
    },
    get wsBase() {
      return `ws://127.0.0.1:${port}`;
    },
    get output() {
      return output;
    },
    get pid() {
      return state.child.pid;
    },
    running: () => !state.exit,
    /** Stop (SIGTERM the group, SIGKILL after 5 s) and remove the temp dir. */
    async stop() {
      await killGroup(state, 'SIGTERM');
      if (!removed && process.env.EDGESYNC_KEEP_WORKER_DIRS !== '1') {
        removed = true;
        ownedDirs.delete(home);
        fs.rmSync(home, { recursive: true, force: true });
      }
    },
    /** SIGKILL the group; keeps the state so restart() can reopen it. */
    async kill() {
      await killGroup(state, 'SIGKILL');
    },
    /** Stop if running, then start again on the same port with the same state. */
    async restart() {
      if (removed) throw new Error(`worker ${name} was stopped (state removed); cannot restart`);
      await killGroup(state, 'SIGTERM');
      await boot(port);
    },
  };
  return handle;
}

/**
 * One raw HTTP request to a worker, as any client (or attacker) sends it: `token` as a
 * bearer token, `body` a string sent as is or a value sent as JSON. Resolves
 * {status, body (parsed JSON or undefined), text, headers}.
 * @param {{base: string}} worker
 * @param {string} method
 * @param {string} route
 * @param {{token?: string, body?: unknown, headers?: Record<string, string>, timeoutMs?: number}} [opts]
 */
export async function request(worker, method, route, { token, body, headers = {}, timeoutMs = 20_000 } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] ??= 'application/json';
  const res = await fetch(worker.base + route, {
    method,
    headers: h,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}
