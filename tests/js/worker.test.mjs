// The example Worker (www/worker, wrangler.toml) served by a real `wrangler dev` (workerd)
// against a real sqld, plus `wrangler deploy --dry-run` for the bundle.
//
//   node --test tests/js/worker.test.mjs
//
// Two workers run side by side: one with a valid read-write token, one with a token
// signed by another key (for AUTH_INVALID). The token is passed as a secret through
// --env-file (as `wrangler secret put` would in production); the URL through --var.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSqld, freePort, REPO_ROOT } from '../support/sqld.mjs';
import { generateAuth } from '../support/jwt.mjs';

const WRANGLER = path.join(REPO_ROOT, 'node_modules', '.bin', 'wrangler');
const READY_LIMIT_MS = 60_000;
const STOP_GRACE_MS = 5_000;

const tmpDirs = [];
function tmpDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
}

/** Environment for wrangler with every phone-home off and its state in `home`. */
function wranglerEnv(home) {
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

/** Run a command to completion; resolves {code, signal, output}. */
function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, output }));
  });
}

const workers = [];

/**
 * `wrangler dev` for the repo's wrangler.toml in its own process group, with
 * LIBSQL_URL=url and (secret) LIBSQL_AUTH_TOKEN=token. Resolves when it answers HTTP.
 */
async function startWorker(name, url, token) {
  const home = tmpDir(`edgesync-wrangler-${name}-`);
  const secrets = path.join(home, 'secrets.env');
  fs.writeFileSync(secrets, `LIBSQL_AUTH_TOKEN=${token}\n`, { mode: 0o600 });
  const port = await freePort();
  const args = [
    'dev',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', '0',
    '--var', `LIBSQL_URL:${url}`,
    '--env-file', secrets,
    '--persist-to', path.join(home, 'state'),
    '--show-interactive-dev-session=false',
    '--log-level', 'info',
  ];
  const child = spawn(WRANGLER, args, {
    cwd: REPO_ROOT,
    env: wranglerEnv(home),
    detached: true, // own process group: after() kills wrangler and workerd together
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w = { name, child, port, base: `http://127.0.0.1:${port}`, output: '', exit: null };
  child.stdout.on('data', (d) => (w.output += d));
  child.stderr.on('data', (d) => (w.output += d));
  w.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve((w.exit = { code, signal })));
    child.once('error', (error) => resolve((w.exit = { error: String(error) })));
  });
  workers.push(w);

  const t0 = Date.now();
  let last = 'no attempt';
  while (Date.now() - t0 < READY_LIMIT_MS && !w.exit) {
    try {
      const res = await fetch(`${w.base}/__ready`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 404) {
        w.readyMs = Date.now() - t0;
        return w;
      }
      last = `status ${res.status}`;
    } catch (e) {
      last = String(e.cause ?? e);
    }
    await sleep(200);
  }
  assert.fail(
    `wrangler dev (${name}) did not answer on ${w.base} within ${READY_LIMIT_MS} ms ` +
      `(exit ${JSON.stringify(w.exit)}, last: ${last}).\n--- wrangler output ---\n${w.output}`,
  );
}

async function stopWorker(w) {
  if (!w.exit) {
    try {
      process.kill(-w.child.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const grace = new AbortController(); // cancels the timer so it can't hold the process open
    const timedOut = await Promise.race([
      w.exited.then(() => false),
      sleep(STOP_GRACE_MS, true, { signal: grace.signal }).catch(() => false),
    ]);
    grace.abort();
    if (timedOut) {
      try {
        process.kill(-w.child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await w.exited;
    }
  }
  // wrangler may exit before its workerd child: make sure nothing of the group survives.
  try {
    process.kill(-w.child.pid, 'SIGKILL');
  } catch {
    /* the group is empty */
  }
}

let db;
let good;
let bad;

before(async () => {
  db = await startSqld({ auth: true });
  const wrongToken = generateAuth().rwToken(); // well-formed, signed by a key sqld doesn't know
  [good, bad] = await Promise.all([
    startWorker('good', db.url, db.tokens.rw),
    startWorker('badtoken', db.url, wrongToken),
  ]);
}, { timeout: 120_000 });

after(async () => {
  await Promise.all(workers.map(stopWorker));
  await db?.stop();
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** POST JSON (or a raw string body) to the good worker; returns {status, body, text}. */
async function post(w, route, body) {
  const res = await fetch(w.base + route, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, `${route}: ${res.status} ${text}`);
  return { status: res.status, body: parsed, text };
}

const query = (sql, args) => post(good, '/query', args === undefined ? { sql } : { sql, args });

test('GET /health runs select 1 on the remote', async () => {
  const res = await fetch(good.base + '/health');
  assert.equal(res.status, 200, good.output);
  assert.deepEqual(await res.json(), { ok: true });
});

test('every value type round-trips through the worker as JSON', async () => {
  let r = await query(
    'create table vals (id integer primary key, n, i integer, big integer, neg integer, r real, s text, b blob)',
  );
  assert.equal(r.status, 200, r.text);

  // JSON args carry null, numbers and strings; 64-bit integers and blobs go in as SQL literals.
  r = await query(
    `insert into vals (n, i, big, neg, r, s, b) values (?, ?, 9223372036854775807, -9223372036854775808, ?, ?, x'00ff')`,
    [null, 42, 1.5, 'héllo ✓'],
  );
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.rowsAffected, 1);
  assert.equal(r.body.lastInsertRowid, '1');

  r = await query('insert into vals (i, s, b) values (:i, :s, zeroblob(0))', { i: 9007199254740991, s: '' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.lastInsertRowid, '2');

  r = await query('select id, n, i, big, neg, r, s, b, 9007199254740993 as over53 from vals order by id');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.columns, ['id', 'n', 'i', 'big', 'neg', 'r', 's', 'b', 'over53']);
  assert.equal(r.body.rowsAffected, 0);
  assert.equal(r.body.lastInsertRowid, null);
  assert.deepEqual(r.body.rows, [
    [1, null, 42, '9223372036854775807', '-9223372036854775808', 1.5, 'héllo ✓', [0, 255], '9007199254740993'],
    [2, null, 9007199254740991, null, null, null, '', [], '9007199254740993'],
  ]);
  // The exact digits are in the raw JSON text, not a rounded float.
  assert.match(r.text, /"9223372036854775807"/);
});

test('POST /batch commits all statements, and a failure midway commits none', async () => {
  let r = await post(good, '/batch', {
    statements: [
      'create table items (id integer primary key, name text not null unique)',
      { sql: 'insert into items (name) values (?)', args: ['a'] },
      { sql: 'insert into items (name) values (?)', args: ['b'] },
      'select count(*) as n from items',
    ],
    mode: 'write',
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.results.length, 4);
  assert.equal(r.body.results[2].lastInsertRowid, '2');
  assert.deepEqual(r.body.results[3].rows, [[2]]);

  r = await post(good, '/batch', {
    statements: [
      { sql: 'insert into items (name) values (?)', args: ['c'] },
      { sql: 'insert into items (name) values (?)', args: ['d'] },
      { sql: 'insert into items (name) values (?)', args: ['a'] }, // unique violation
      { sql: 'insert into items (name) values (?)', args: ['e'] },
    ],
    mode: 'write',
  });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'SQL_CONSTRAINT', r.text);
  assert.equal(r.body.error.step, 2, r.text);

  r = await query('select name from items order by id');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.rows, [['a'], ['b']]);

  r = await post(good, '/batch', { statements: ['select 1'], mode: 'bogus' });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_REQUEST');
});

test('SQL and request errors map to 400 with stable codes', async () => {
  let r = await query('selec 1 frm nowhere');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'SQL_SYNTAX_ERROR', r.text);
  assert.equal(typeof r.body.error.message, 'string');

  r = await query('select * from no_such_table');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'SQL_ERROR', r.text);

  r = await post(good, '/query', '{"sql": "select 1",');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_JSON', r.text);

  r = await post(good, '/batch', 'not json at all');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_JSON', r.text);

  r = await post(good, '/query', { args: [1] });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_REQUEST', r.text);

  const res = await fetch(good.base + '/nope');
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, 'NOT_FOUND');
});

test('a token the server does not accept gives AUTH_INVALID (401), and /health 503', async () => {
  const r = await post(bad, '/query', { sql: 'select 1' });
  assert.equal(r.status, 401, r.text);
  assert.equal(r.body.error.code, 'AUTH_INVALID', r.text);

  const res = await fetch(bad.base + '/health');
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { ok: false, code: 'AUTH_INVALID' });
});

test('wrangler deploy --dry-run bundles the worker and the wasm module', async () => {
  const home = tmpDir('edgesync-wrangler-deploy-');
  const outdir = path.join(home, 'dist');
  const { code, signal, output } = await run(WRANGLER, ['deploy', '--dry-run', '--outdir', outdir], {
    cwd: REPO_ROOT,
    env: wranglerEnv(home),
  });
  assert.equal(code, 0, `wrangler deploy --dry-run exited ${code} ${signal ?? ''}\n${output}`);
  const files = fs.readdirSync(outdir);
  assert.ok(files.includes('index.js'), `no index.js in ${files}\n${output}`);
  const wasm = files.filter((f) => f.endsWith('.wasm'));
  assert.equal(wasm.length, 1, `expected one .wasm in ${files}`);
  const bytes = fs.readFileSync(path.join(outdir, wasm[0]));
  assert.ok(WebAssembly.validate(bytes), `${wasm[0]} is not a valid wasm module`);
  // The bundle imports the wasm module as a module (CompiledWasm), not as bytes.
  assert.ok(fs.readFileSync(path.join(outdir, 'index.js'), 'utf8').includes(wasm[0]), 'bundle does not import the wasm file');
});
