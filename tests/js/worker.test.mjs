// The edge Worker (www/worker, wrangler.toml) served by a real `wrangler dev` (workerd)
// with one region (LIBSQL_URL) on a real sqld: value types, batches, error codes, and
// `wrangler deploy --dry-run` for the bundle. The multi-region cluster is edge.test.mjs.
//
//   node --test tests/js/worker.test.mjs
//
// Two workers run side by side: one with a valid libSQL token, one with a token signed
// by another key (the region refuses it). Tokens are secrets (--env-file, as
// `wrangler secret put` in production); the URL a var. Clients send HS256 JWTs with the
// service role (only service tokens run SQL: worker-security.test.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { startSqld, REPO_ROOT } from '../support/sqld.mjs';
import { request, startWorker, wranglerEnv } from '../support/worker-env.mjs';
import { generateAuth, hs256Token } from '../support/jwt.mjs';

const WRANGLER = path.join(REPO_ROOT, 'node_modules', '.bin', 'wrangler');
const JWT_SECRET = crypto.randomBytes(32).toString('hex');

const tmpDirs = [];
function tmpDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(dir);
  return dir;
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

/** An HS256 service token for the worker (JWT_SECRET), valid for an hour: SQL needs one. */
const clientToken = (sub = 'tester') => hs256Token(JWT_SECRET, sub, { role: 'service' });

/** The worker with one primary region (LIBSQL_URL) whose libSQL token is `token`. */
function startSingle(name, url, token) {
  // REGIONS emptied: the LIBSQL_URL shorthand (one primary region) is what is tested here.
  return startWorker({ name, vars: { REGIONS: '', LIBSQL_URL: url }, secrets: { LIBSQL_AUTH_TOKEN: token, JWT_SECRET } });
}

let db;
let good;
let bad;

before(async () => {
  db = await startSqld({ auth: true });
  const wrongToken = generateAuth().rwToken(); // well-formed, signed by a key sqld doesn't know
  [good, bad] = await Promise.all([
    startSingle('good', db.url, db.tokens.rw),
    startSingle('badtoken', db.url, wrongToken),
  ]);
}, { timeout: 120_000 });

after(async () => {
  await Promise.all([good, bad].filter(Boolean).map((w) => w.stop()));
  await db?.stop();
  for (const dir of tmpDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** POST JSON (or a raw string body) to a worker; returns {status, body, text}. */
async function post(w, route, body) {
  const r = await request(w, 'POST', route, { token: clientToken(), body });
  assert.match(r.headers.get('content-type') ?? '', /application\/json/, `${route}: ${r.status} ${r.text}`);
  return r;
}

const query = (sql, args) => post(good, '/query', args === undefined ? { sql } : { sql, args });

test('GET /health probes the region (select 1) and needs no token', async () => {
  const res = await fetch(good.base + '/health');
  assert.equal(res.status, 200, good.output);
  const health = await res.json();
  assert.equal(health.status, 'healthy', JSON.stringify(health));
  assert.equal(health.healthy, 1);
  assert.equal(health.total, 1);
  assert.equal(health.regions[0].id, 'primary');
  assert.equal(typeof health.regions[0].latencyMs, 'number');
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
    // BLOBs as base64, as ResultSet.toJSON() writes them (as @libsql/client's).
    [1, null, 42, '9223372036854775807', '-9223372036854775808', 1.5, 'héllo ✓', 'AP8=', '9007199254740993'],
    [2, null, 9007199254740991, null, null, null, '', '', '9007199254740993'],
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
  assert.equal(r.status, 409, r.text); // a constraint violation is a conflict with stored data
  assert.equal(r.body.error.code, 'SQLITE_CONSTRAINT', r.text);
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
  assert.equal(r.body.error.code, 'SQL_PARSE_ERROR', r.text);
  assert.equal(typeof r.body.error.message, 'string');

  r = await query('select * from no_such_table');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'SQLITE_UNKNOWN', r.text);

  r = await post(good, '/query', '{"sql": "select 1",');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_JSON', r.text);

  r = await post(good, '/batch', 'not json at all');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_JSON', r.text);

  r = await post(good, '/query', { args: [1] });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_REQUEST', r.text);

  const res = await fetch(good.base + '/nope', { headers: { authorization: `Bearer ${clientToken()}` } });
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, 'NOT_FOUND');
});

test('a libSQL token the server refuses makes the region unusable: 503, and /health 503', async () => {
  const r = await post(bad, '/query', { sql: 'select 1' });
  assert.equal(r.status, 503, r.text);
  assert.equal(r.body.error.code, 'NO_HEALTHY_REGION', r.text);
  assert.match(r.body.error.message, /auth/i);
  const w = await post(bad, '/query', { sql: 'create table t (x)' });
  assert.equal(w.status, 503, w.text);
  assert.equal(w.body.error.code, 'PRIMARY_UNAVAILABLE', w.text);

  const res = await fetch(bad.base + '/health');
  assert.equal(res.status, 503);
  const health = await res.json();
  assert.equal(health.status, 'unhealthy', JSON.stringify(health));
  assert.equal(health.primaryHealthy, false);
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
