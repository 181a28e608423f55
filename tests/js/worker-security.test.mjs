// The edge Worker under attack (issue 14): what a valid token may do once it is valid.
// Real workerd (`wrangler dev`) in front of a real sqld primary and read replica with JWT
// auth; every request is written as an attacker would send it — raw HTTP with a token of
// their own — not through the package's client.
//
//   node --test tests/js/worker-security.test.mjs
//
// Tokens: "service" tokens carry `role: "service"` (the worker's default SERVICE_ROLE);
// everything else is a user token. Sessions, two isolates: edge-sessions.test.mjs; the
// hub's channels: hub-acl.test.mjs; token forgeries: auth.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@libsql/client';
import { freePort, startSqldCluster } from '../support/sqld.mjs';
import { request, startWorker } from '../support/worker-env.mjs';
import { hs256Token, signHs256 } from '../support/jwt.mjs';

const JWT_SECRET = crypto.randomBytes(32).toString('hex');
const SESSION_KEYS = `k1:${crypto.randomBytes(32).toString('base64')}`;
const NEAR_REPLICA = '40.7,-74.0';

const service = (sub = 'backend', extra = {}) => hs256Token(JWT_SECRET, sub, { role: 'service', ...extra });
const user = (sub, extra = {}) => hs256Token(JWT_SECRET, sub, extra);

let cluster;
let w; // the cluster behind one worker
let dead; // a worker whose regions do not answer
let primaryDb;
let hostDir; // a directory on the "database host" the attacker aims at

before(async () => {
  cluster = await startSqldCluster();
  const closed = [await freePort(), await freePort()];
  const regions = JSON.stringify([
    { id: 'fra', url: cluster.primary.url, role: 'primary', location: '50.11,8.68' },
    { id: 'nyc', url: cluster.replica.url, role: 'replica', location: '40.71,-74.01' },
  ]);
  [w, dead] = await Promise.all([
    startWorker({
      name: 'security',
      vars: {
        REGIONS: regions,
        ROUTER_OPTIONS: JSON.stringify({ cacheTtlMs: 60_000, breakerFailures: 2, breakerCooldownMs: 5_000 }),
        REGION_TIMEOUT_MS: '3000',
      },
      secrets: { LIBSQL_AUTH_TOKEN: cluster.tokens.rw, JWT_SECRET, SESSION_KEYS },
    }),
    startWorker({
      name: 'security-dead',
      vars: {
        REGIONS: JSON.stringify([
          { id: 'fra', url: `http://127.0.0.1:${closed[0]}/secret-path`, role: 'primary' },
          { id: 'nyc', url: `http://127.0.0.1:${closed[1]}`, role: 'replica' },
        ]),
        REGION_TIMEOUT_MS: '1000',
      },
      secrets: { LIBSQL_AUTH_TOKEN: cluster.tokens.rw, JWT_SECRET, SESSION_KEYS },
    }),
  ]);
  primaryDb = createClient({ url: cluster.primary.url, authToken: cluster.tokens.rw });
  hostDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgesync-host-'));
  fs.writeFileSync(path.join(hostDir, 'secret.txt'), 'host secret');
}, { timeout: 180_000 });

after(async () => {
  primaryDb?.close();
  await Promise.all([w, dead].filter(Boolean).map((x) => x.stop()));
  await cluster?.stop();
  if (hostDir) fs.rmSync(hostDir, { recursive: true, force: true });
});

const send = request;
const query = (token, sql, args, headers) => send(w, 'POST', '/query', { token, body: args === undefined ? { sql } : { sql, args }, headers });

function expectCode(r, status, code, what) {
  assert.equal(r.status, status, `${what}: ${r.text}`);
  assert.equal(r.body?.error?.code, code, `${what}: ${r.text}`);
}

test('a user token is not a database administrator (finding 1)', async () => {
  // The application's data, set up by its backend (a service token).
  for (const sql of [
    'create table b_private (id integer primary key, owner text, secret text)',
    'create table a_notes (id integer primary key, body text)',
    "insert into b_private (owner, secret) values ('b', 'b-secret')",
    'create table if not exists _es_log (seq integer primary key autoincrement, id text not null unique, site text not null, rec text not null)',
    'create table if not exists _es_tables (tbl text primary key, pol text not null, create_sql text not null)',
    `insert into _es_log (id, site, rec) values ('r1', 'site-b', '[1,"b_private",[1],"i",{"secret":"b-secret"}]')`,
  ]) {
    const r = await query(service(), sql);
    assert.equal(r.status, 200, `${sql}: ${r.text}`);
  }
  const a = user('user-a');
  const attacks = [
    'select * from b_private',
    'select name, sql from sqlite_master',
    'select * from _es_log',
    'select * from es_sessions',
    'create trigger steal after insert on b_private begin insert into a_notes (body) values (new.secret); end',
    'delete from _es_log',
    'drop table _es_tables',
    'drop table b_private',
    'create table mine (x)',
    'select 1',
  ];
  for (const sql of attacks) {
    expectCode(await query(a, sql), 403, 'FORBIDDEN', `/query ${sql}`);
    expectCode(await send(w, 'POST', '/batch', { token: a, body: { statements: [sql] } }), 403, 'FORBIDDEN', `/batch ${sql}`);
  }
  // Through the replica's side too (a read near it).
  expectCode(await query(a, 'select * from b_private', undefined, { 'x-edgesync-location': NEAR_REPLICA }), 403, 'FORBIDDEN', 'near the replica');
  // Claims are not ignored: "read-only" is not the service role, so it is a user.
  const readOnlyRole = user('user-ro', { role: 'read-only', a: 'ro' });
  expectCode(await query(readOnlyRole, 'create table ro_made (x)'), 403, 'FORBIDDEN', 'role read-only');

  // Nothing happened.
  const rs = await primaryDb.execute("select name from sqlite_master where name in ('b_private', '_es_tables', 'mine', 'ro_made', 'steal') order by name");
  assert.deepEqual(rs.rows.map((r) => r.name), ['_es_tables', 'b_private']);
  assert.equal((await primaryDb.execute('select count(*) as n from _es_log')).rows[0].n, 1);
});

test('a token without sub is refused (finding 1)', async () => {
  const noSub = signHs256(JWT_SECRET, { role: 'service', exp: Math.floor(Date.now() / 1000) + 600 });
  expectCode(await query(noSub, 'select 1'), 401, 'AUTH_INVALID', 'no sub');
});

test('a read-only service token only reads (finding 1)', async () => {
  const ro = service('reporting', { a: 'ro' });
  let r = await query(ro, 'select count(*) from b_private');
  assert.equal(r.status, 200, r.text);
  for (const sql of ['create table ro_made (x)', "insert into a_notes (body) values ('x')", 'delete from b_private', 'pragma user_version = 9']) {
    expectCode(await query(ro, sql), 403, 'PERMISSION_DENIED', sql);
  }
  r = await send(w, 'POST', '/batch', { token: ro, body: { statements: ['select 1', "insert into a_notes (body) values ('x')"] } });
  expectCode(r, 403, 'PERMISSION_DENIED', 'batch');
  assert.equal(r.body.error.step, 1, r.text);
  r = await send(w, 'POST', '/batch', { token: ro, body: { statements: ['select 1', 'select count(*) from a_notes'], mode: 'write' } });
  assert.equal(r.status, 200, r.text);
  assert.equal((await primaryDb.execute("select count(*) as n from sqlite_master where name = 'ro_made'")).rows[0].n, 0);
});

test("nobody reaches the database host's files, service tokens included (finding 2)", async () => {
  const target = path.join(hostDir, 'written.txt');
  const secret = path.join(hostDir, 'secret.txt');
  const refused = [
    `select readfile('${secret}')`,
    "select readfile('/etc/passwd')",
    `SELECT "ReadFile"('${secret}')`,
    `select writefile('${target}', 'pwned')`,
    "select name from fsdir('/etc')",
    'select lsmode(493)',
    "select load_extension('/tmp/x.so')",
    "select sha3_query('select secret from b_private')",
    "select fts3_tokenizer('simple', x'0000000000000000')",
    'select hex(data) from sqlite_dbpage where pgno = 1',
    'update sqlite_dbpage set data = data where pgno = 1',
    "select sqlite3mc_codec_data('cipher_salt')",
    "select sqlite_log(1, 'forged log line')",
    "attach database 'file:/etc/passwd' as p",
    "vacuum into '/tmp/copy.db'",
    'pragma writable_schema = 1',
    'select * from es_session_ledger',
    "select * from pragma_table_info('es_sessions')",
  ];
  for (const sql of refused) {
    // Twice: the first answer must not be cached and replayed either.
    for (let i = 0; i < 2; i++) expectCode(await query(service(), sql), 403, 'SQL_NOT_ALLOWED', sql);
    expectCode(await send(w, 'POST', '/batch', { token: service(), body: { statements: ['select 1', sql] } }), 403, 'SQL_NOT_ALLOWED', `batch: ${sql}`);
  }
  assert.ok(!fs.existsSync(target), 'writefile() wrote a file on the database host');
});

test('the read cache: only deterministic SQL is cached (finding 8)', async () => {
  const ids = new Set();
  for (let i = 0; i < 3; i++) {
    const r = await query(service(`svc-${i}`), 'select uuid() as id');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('x-edgesync-cache'), 'bypass', 'uuid() must not be cached');
    ids.add(r.body.rows[0][0]);
  }
  assert.equal(ids.size, 3, 'callers got the same uuid()');
  for (const sql of ['select random()', "select datetime('now')", 'select changes()', 'select my_function(1)']) {
    const r = await query(service(), sql);
    if (r.status === 200) assert.equal(r.headers.get('x-edgesync-cache'), 'bypass', sql);
  }
});

test('a cached answer is never served to another principal (finding 8)', async () => {
  // A cached service read is not served to a user who sends the same SQL.
  const sql = 'select secret from b_private where owner = ?';
  let r = await query(service(), sql, ['b']);
  r = await query(service(), sql, ['b']);
  assert.equal(r.headers.get('x-edgesync-cache'), 'hit', r.text);
  r = await query(user('user-a'), sql, ['b']);
  expectCode(r, 403, 'FORBIDDEN', 'the cached answer leaked');
  assert.ok(!r.text.includes('b-secret'));
});

test('a statement the server cannot encode is the client error, never an outage (finding 7)', async () => {
  const before = await fetch(`${w.base}/health`);
  assert.equal(before.status, 200, await before.text());
  for (let i = 0; i < 6; i++) {
    for (const location of [NEAR_REPLICA, undefined]) {
      const r = await query(service(), "select cast(x'ff' as text) as bad", undefined, location ? { 'x-edgesync-location': location } : {});
      expectCode(r, 422, 'STATEMENT_FAILED', `attempt ${i}`);
      assert.ok(!/https?:\/\//.test(r.text), r.text);
    }
    const wr = await query(service(), "insert into a_notes (body) values (cast(x'ff' as text)) returning body");
    assert.equal(wr.status, 422, wr.text);
  }
  const res = await fetch(`${w.base}/health`);
  const health = await res.json();
  assert.equal(res.status, 200, JSON.stringify(health));
  assert.equal(health.status, 'healthy', JSON.stringify(health));
  for (const region of health.regions) assert.equal(region.errorRate, 0, JSON.stringify(health));
  // Other clients are served as usual: a write, and a read on each region.
  const ok = await query(service('other'), "insert into a_notes (body) values ('fine')");
  assert.equal(ok.status, 200, ok.text);
  const rd = await query(service('other'), 'select count(*) from a_notes where id > ?', [0], { 'x-edgesync-location': NEAR_REPLICA });
  assert.equal(rd.status, 200, rd.text);
});

test('error bodies name regions, never upstream URLs (finding 8)', async () => {
  for (const [sql, status, code] of [
    ['select 1', 503, 'NO_HEALTHY_REGION'],
    ['create table t (x)', 503, 'PRIMARY_UNAVAILABLE'],
  ]) {
    const r = await send(dead, 'POST', '/query', { token: service(), body: { sql } });
    expectCode(r, status, code, sql);
    assert.ok(!/127\.0\.0\.1|https?:\/\/|secret-path|tenant=acme|\/v[23]\/pipeline/.test(r.text), `upstream address in: ${r.text}`);
    assert.match(r.text, /\bfra\b/, 'the region is named');
  }
});

test('malformed session paths are 404, not 500 (finding 8)', async () => {
  for (const p of ['/sessions/%E0%A4%A', '/sessions/%', '/sessions/%ZZ', '/sessions/a%2Fb', `/sessions/${'x'.repeat(200)}`]) {
    const r = await send(w, 'GET', p, { token: user('user-a') });
    assert.ok([404].includes(r.status), `${p}: ${r.status} ${r.text}`);
    assert.equal(r.body?.error?.code, 'SESSION_NOT_FOUND', `${p}: ${r.text}`);
  }
});

/** POSTs `size` bytes as a chunked stream on `agent`; resolves "status text" or "error CODE". */
function chunked(agent, token, size) {
  return new Promise((resolve) => {
    const req = http.request(`${w.base}/query`, {
      method: 'POST',
      agent,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve({ status: res.statusCode, text: t }));
    });
    req.on('error', (e) => resolve({ status: 0, text: `error ${e.code ?? e.message}` }));
    let sent = 0;
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const pump = () => {
      while (sent < size) {
        const n = Math.min(chunk.length, size - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

test('oversized chunked bodies are 413, and the connection stays usable (finding 8)', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (const size of [320 * 1024, 1024 * 1024, 4 * 1024 * 1024]) {
      const r = await chunked(agent, service(), size);
      assert.equal(r.status, 413, `${size} bytes: ${r.text}`);
      assert.equal(JSON.parse(r.text).error.code, 'BODY_TOO_LARGE');
      // The next request (same agent, same or a new connection) is answered normally.
      const next = await new Promise((resolve, reject) => {
        const req = http.request(`${w.base}/query`, { method: 'POST', agent, headers: { authorization: `Bearer ${service()}` } }, (res) => {
          let t = '';
          res.on('data', (d) => (t += d));
          res.on('end', () => resolve({ status: res.statusCode, text: t }));
        });
        req.on('error', reject);
        req.end(JSON.stringify({ sql: 'select 1' }));
      });
      assert.equal(next.status, 200, `after ${size}: ${next.text}`);
    }
  } finally {
    agent.destroy();
  }
});

test('a client cannot choose its serving region (finding 8)', async () => {
  const homes = new Set();
  for (let i = 0; i < 300; i++) {
    const r = await send(w, 'POST', '/sessions', { token: user('region-hopper'), body: { data: { i } }, headers: { 'x-edgesync-region': `evil-${i}` } });
    assert.equal(r.status, 201, r.text);
    homes.add(r.body.home);
  }
  assert.equal(homes.size, 1, `regions taken from the header: ${[...homes].slice(0, 5)}`);
  assert.ok(![...homes][0].startsWith('evil-'));
});

test('operations endpoints need a service token; /whoami says who a token is', async () => {
  for (const [method, route] of [
    ['GET', '/metrics'],
    ['POST', '/sessions/gc'],
    ['GET', '/sessions/stats'],
  ]) {
    expectCode(await send(w, method, route, { token: user('user-a') }), 403, 'FORBIDDEN', route);
    assert.equal((await send(w, method, route, { token: service() })).status, 200, route);
  }
  let r = await send(w, 'GET', '/whoami', { token: user('auth0|a:b') });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, {
    sub: 'auth0|a:b',
    role: 'user',
    access: 'rw',
    channels: { subscribe: ['user:auth0%7Ca%3Ab:*'], publish: ['user:auth0%7Ca%3Ab:*'] },
  });
  r = await send(w, 'GET', '/whoami', { token: service('api', { a: 'ro' }) });
  assert.deepEqual(r.body, { sub: 'api', role: 'service', access: 'ro', channels: { subscribe: ['*'], publish: [] } });
});
