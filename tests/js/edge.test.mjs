// The edge Worker (www/worker, wrangler.toml) in real workerd (`wrangler dev`) in front
// of a real libSQL cluster: a sqld primary and a sqld read replica that follows it over
// gRPC. Covers query routing, read-your-writes, the read cache, failover when the
// replica or the primary dies, distributed sessions (TTL, GC, migration, compression,
// encryption, key rotation, tampering), /health and /metrics (parsed by the Prometheus
// Python client's parser).
//
//   node --test tests/js/edge.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@libsql/client';
import { startSqldCluster, REPO_ROOT } from '../support/sqld.mjs';
import { request, startWorker } from '../support/worker-env.mjs';
import { hs256Token } from '../support/jwt.mjs';

const JWT_SECRET = crypto.randomBytes(32).toString('hex');
const key = () => crypto.randomBytes(32).toString('base64');
const K1 = `k1:${key()}`;
const K2 = `k2:${key()}`;
const K3 = `k3:${key()}`;
const NEAR_REPLICA = '40.7,-74.0'; // New York: the replica's location
const NEAR_PRIMARY = '50.1,8.7'; // Frankfurt: the primary's location

/** SQL needs a service token; sessions are used with the owner's own (user) token. */
const tokenFor = (sub, role = 'service') => hs256Token(JWT_SECRET, sub, role === 'service' ? { role } : {});

let cluster;
let w; // the main worker (SESSION_KEYS = k1)
let rotated; // SESSION_KEYS = k2,k1: rotation onto k2
let onlyK2; // SESSION_KEYS = k2
let wrongKey; // SESSION_KEYS = k3
let primaryDb;

function regions(c) {
  return JSON.stringify([
    { id: 'fra', url: c.primary.url, role: 'primary', location: '50.11,8.68' },
    { id: 'nyc', url: c.replica.url, role: 'replica', location: '40.71,-74.01' },
  ]);
}

function startEdge(name, sessionKeys, extraVars = {}) {
  return startWorker({
    name,
    vars: {
      REGIONS: regions(cluster),
      ROUTER_OPTIONS: JSON.stringify({ cacheTtlMs: 60_000, breakerFailures: 2, breakerCooldownMs: 500, refreshProbeMs: 200 }),
      SESSION_OPTIONS: JSON.stringify({ idleTtlMs: 60_000, absoluteTtlMs: 600_000, compressThreshold: 256 }),
      REGION_TIMEOUT_MS: '1500',
      MAX_BODY_BYTES: '200000',
      TRUST_REGION_HEADER: 'true', // tests name the serving region (fra, nyc) by header
      ...extraVars,
    },
    secrets: { LIBSQL_AUTH_TOKEN: cluster.tokens.rw, JWT_SECRET, SESSION_KEYS: sessionKeys },
  });
}

before(async () => {
  cluster = await startSqldCluster();
  [w, rotated, onlyK2, wrongKey] = await Promise.all([
    startEdge('edge', K1),
    startEdge('rotated', `${K2},${K1}`),
    startEdge('onlyk2', K2),
    startEdge('wrongkey', K3),
  ]);
  primaryDb = createClient({ url: cluster.primary.url, authToken: cluster.tokens.rw });
}, { timeout: 180_000 });

after(async () => {
  primaryDb?.close();
  await Promise.all([w, rotated, onlyK2, wrongKey].filter(Boolean).map((x) => x.stop()));
  await cluster?.stop();
});

/** A request to a worker as `sub` (`role` service or user), from `location`/`region`; returns {status, body, text, headers}. */
async function call(worker, method, route, { body, sub = 'alice', role = 'service', location, region } = {}) {
  const headers = {};
  if (location) headers['x-edgesync-location'] = location;
  if (region) headers['x-edgesync-region'] = region;
  return request(worker, method, route, { token: tokenFor(sub, role), body, headers });
}

const query = (sql, args, opts = {}) => call(opts.worker ?? w, 'POST', '/query', { body: { sql, args }, ...opts });

/** Polls `fn` until it returns true; `fn(note)` may record what it saw for the failure message. */
async function waitFor(what, fn, limitMs = 15_000) {
  const t0 = Date.now();
  let seen = '';
  const note = (x) => (seen = typeof x === 'string' ? x : JSON.stringify(x));
  while (Date.now() - t0 < limitMs) {
    if (await fn(note)) return;
    await sleep(100);
  }
  const status = await call(w, 'GET', '/health').then((r) => r.text).catch((e) => String(e));
  assert.fail(`timed out waiting for ${what}; last: ${seen}; health: ${status}`);
}

/** What a response showed, for failure messages. */
const seenOf = (r) => `${r.status} region=${r.headers.get('x-edgesync-region')} cache=${r.headers.get('x-edgesync-cache')} ${r.text.slice(0, 200)}`;

test('statements are classified and routed: writes to the primary, reads to the nearest region', async () => {
  let r = await query('create table notes (id integer primary key, body text, n integer default 0)');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-edgesync-region'), 'fra');

  r = await query('insert into notes (body) values (?) returning id', ['first']);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-edgesync-region'), 'fra', 'INSERT … RETURNING is a write');
  assert.deepEqual(r.body.rows, [[1]]);

  r = await query('/* select */ with x(b) as (select ?) insert into notes (body) select b from x', ['cte']);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-edgesync-region'), 'fra', 'WITH … INSERT is a write');
  assert.equal(r.body.rowsAffected, 1);

  r = await query('-- delete from notes\nupdate notes set n = n + 1 where id = ?', [1]);
  assert.equal(r.headers.get('x-edgesync-region'), 'fra');

  // Another client (no writes of its own) near the replica reads from it once it has caught up.
  const bob = { sub: 'bob', location: NEAR_REPLICA };
  let attempt = 0; // a fresh argument each time: a cached answer names no region
  await waitFor('the replica to serve bob', async (note) => {
    const q = await query('select count(*) from notes where id > ?', [-++attempt], bob);
    note(seenOf(q));
    return q.status === 200 && q.headers.get('x-edgesync-region') === 'nyc' && q.body.rows[0][0] === 2;
  });
  r = await query('pragma table_info(notes)', undefined, bob);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('x-edgesync-region'), 'nyc', 'PRAGMA table_info is a read');
  r = await query('select body from notes where id = ?', [1], { sub: 'carol', location: NEAR_PRIMARY });
  assert.equal(r.headers.get('x-edgesync-region'), 'fra', 'a client near the primary reads there');

  // Inputs the router will not send anywhere.
  r = await query("select 'unterminated from notes");
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'QUERY_UNPARSEABLE');
  r = await query('select 1; delete from notes');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'MULTI_STATEMENT');
  r = await query('selec 1', undefined, bob);
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'SQL_PARSE_ERROR', 'an unknown verb is routed as a write and fails there');
  assert.equal(r.headers.get('x-edgesync-region'), null);
});

test('read-your-writes: after a write, the writer never reads an older state', async () => {
  await query('create table ryw (id integer primary key, v integer)', undefined, { sub: 'dave' });
  for (let i = 1; i <= 25; i++) {
    const wr = await query('insert into ryw (v) values (?)', [i], { sub: 'dave', location: NEAR_REPLICA });
    assert.equal(wr.status, 200, wr.text);
    const rd = await query('select count(*), max(v) from ryw', undefined, { sub: 'dave', location: NEAR_REPLICA });
    assert.equal(rd.status, 200, rd.text);
    assert.deepEqual(rd.body.rows[0], [i, i], `read ${i} from ${rd.headers.get('x-edgesync-region')} misses the write`);
  }
});

test('hot reads are cached, and a write to a table they read invalidates them', async () => {
  await query('create table prices (sku text primary key, cents integer)');
  await query('create table other (x)');
  await query("insert into prices values ('a', 100)");
  const read = () => query('select cents from prices where sku = ?', ['a'], { sub: 'erin', location: NEAR_PRIMARY });
  let r = await read();
  assert.equal(r.headers.get('x-edgesync-cache'), 'miss');
  r = await read();
  assert.equal(r.headers.get('x-edgesync-cache'), 'hit');
  assert.deepEqual(r.body.rows, [[100]]);

  await query('insert into other values (1)', undefined, { sub: 'frank' });
  r = await read();
  assert.equal(r.headers.get('x-edgesync-cache'), 'hit', 'a write to another table keeps the entry');

  await query("update prices set cents = 150 where sku = 'a'", undefined, { sub: 'frank' });
  r = await read();
  assert.equal(r.headers.get('x-edgesync-cache'), 'miss', 'a write to prices invalidates it');
  assert.deepEqual(r.body.rows, [[150]]);

  r = await query('select random()', undefined, { sub: 'erin' });
  r = await query('select random()', undefined, { sub: 'erin' });
  assert.equal(r.headers.get('x-edgesync-cache'), 'bypass', 'non-deterministic reads are never cached');
});

/** Session calls are made with the owner's user token. */
const as = (sub) => ({ sub, role: 'user' });

test('sessions: create, read from the cache, update, migrate home, destroy', async () => {
  let r = await call(w, 'POST', '/sessions', { body: { data: { user: 'alice', cart: [1, 2] } }, region: 'fra', ...as('alice') });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.body.home, 'fra');
  assert.equal(r.body.owner, 'alice');
  assert.match(r.body.id, /^[A-Za-z0-9_-]{32}$/, 'a generated id');
  assert.deepEqual(r.body.data, { user: 'alice', cart: [1, 2] });
  const id = r.body.id;

  r = await call(w, 'GET', `/sessions/${id}`, { region: 'fra', ...as('alice') });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data, { user: 'alice', cart: [1, 2] });

  r = await call(w, 'PUT', `/sessions/${id}`, { body: { data: { user: 'alice', cart: [3] } }, region: 'fra', ...as('alice') });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.version, 2);
  // If-Match: a stale version is a conflict.
  r = await call(w, 'PUT', `/sessions/${id}`, { body: { data: {}, version: 1 }, region: 'fra', ...as('alice') });
  assert.equal(r.status, 409, r.text);
  assert.equal(r.body.error.code, 'SESSION_CONFLICT');

  // Accessed from another region: the session's home moves there.
  r = await call(w, 'GET', `/sessions/${id}`, { region: 'nyc', ...as('alice') });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.home, 'nyc');
  await waitFor('the migration to be stored', async () => {
    const rs = await primaryDb.execute({ sql: 'select home from es_sessions where id = ?', args: [id] });
    return rs.rows[0]?.home === 'nyc';
  });
  const stats = (await call(w, 'GET', '/sessions/stats')).body;
  assert.ok(stats.migrations >= 1, JSON.stringify(stats));
  assert.ok(stats.hits >= 1, JSON.stringify(stats));
  assert.ok(stats.validations >= 1, JSON.stringify(stats));

  // Another isolate (another worker) loads it from libSQL.
  r = await call(rotated, 'GET', `/sessions/${id}`, { region: 'nyc', ...as('alice') });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data, { user: 'alice', cart: [3] });

  r = await call(w, 'DELETE', `/sessions/${id}`, as('alice'));
  assert.equal(r.status, 204, r.text);
  for (const worker of [w, rotated]) {
    r = await call(worker, 'GET', `/sessions/${id}`, as('alice'));
    assert.equal(r.status, 404, r.text);
    assert.equal(r.body.error.code, 'SESSION_NOT_FOUND');
  }
});

/** Creates a session as `sub` on worker `on`; returns its id. */
async function newSession(on, data, sub = 'alice') {
  const r = await call(on, 'POST', '/sessions', { body: { data }, ...as(sub) });
  assert.equal(r.status, 201, r.text);
  return r.body.id;
}

const bodyOf = async (id) =>
  Buffer.from((await primaryDb.execute({ sql: 'select body from es_sessions where id = ?', args: [id] })).rows[0].body);

test('sessions are sealed (AES-256-GCM), compressed above the threshold, and tampering is detected', async () => {
  const secret = 'card-4111-1111-1111-1111';
  const big = { secret, filler: 'abcdefgh'.repeat(400) };
  const sealed = await newSession(w, big);
  const body = await bodyOf(sealed);
  assert.ok(!body.includes(Buffer.from(secret)), 'the stored body shows the plaintext');
  assert.equal(body.subarray(0, 3).toString(), 'ESS');
  assert.equal(body[3], 2, 'envelope version 2 (owner and expiry sealed)');
  assert.equal(body[4] & 1, 1, 'a large session is stored deflated');
  assert.ok(body.length < JSON.stringify(big).length / 4, `stored ${body.length} bytes`);

  const small = await newSession(w, { a: 1 });
  assert.equal((await bodyOf(small))[4] & 1, 0, 'a small session is not deflated');

  // Flip one byte of the ciphertext: another isolate must refuse it.
  const tampered = Buffer.from(body);
  tampered[tampered.length - 5] ^= 1;
  await primaryDb.execute({ sql: 'update es_sessions set body = ? where id = ?', args: [tampered, sealed] });
  let r = await call(rotated, 'GET', `/sessions/${sealed}`, as('alice'));
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.code, 'SESSION_TAMPERED');
  assert.ok(!r.text.includes(secret));

  // A sealed body moved onto another session id does not open either.
  await primaryDb.execute({ sql: 'update es_sessions set body = ? where id = ?', args: [body, small] });
  r = await call(onlyK2, 'GET', `/sessions/${small}`, as('alice'));
  assert.equal(r.status, 422, r.text);
  r = await call(rotated, 'GET', `/sessions/${small}`, as('alice'));
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.code, 'SESSION_TAMPERED');
});

test('key rotation: old sessions open under the new key ring and are resealed on update', async () => {
  const id = await newSession(w, { v: 1 });
  const kid = async () => {
    const b = await bodyOf(id);
    return b.subarray(6, 6 + b[5]).toString();
  };
  assert.equal(await kid(), 'k1');

  let r = await call(onlyK2, 'GET', `/sessions/${id}`, as('alice'));
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.code, 'SESSION_KEY_UNKNOWN');

  r = await call(rotated, 'GET', `/sessions/${id}`, as('alice'));
  assert.equal(r.status, 200, r.text);
  r = await call(rotated, 'PUT', `/sessions/${id}`, { body: { data: { v: 2 } }, ...as('alice') });
  assert.equal(r.status, 200, r.text);
  assert.equal(await kid(), 'k2');

  r = await call(onlyK2, 'GET', `/sessions/${id}`, as('alice'));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.data, { v: 2 });
  r = await call(wrongKey, 'GET', `/sessions/${id}`, as('alice'));
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.code, 'SESSION_KEY_UNKNOWN');

  // The copy cached by the first worker is stale: the ledger says version 2, so it
  // reloads — and version 2 is sealed under k2, a key it does not have.
  r = await call(w, 'GET', `/sessions/${id}`, as('alice'));
  assert.equal(r.status, 422, r.text);
  assert.equal(r.body.error.code, 'SESSION_KEY_UNKNOWN');
});

test('session garbage collection removes expired rows (service tokens only)', async () => {
  const gone = await newSession(rotated, { v: 1 });
  await primaryDb.execute({ sql: 'update es_sessions set absolute_ms = ? where id = ?', args: [Date.now() - 1000, gone] });
  let r = await call(w, 'POST', '/sessions/gc', as('alice'));
  assert.equal(r.status, 403, r.text);
  r = await call(w, 'POST', '/sessions/gc');
  assert.equal(r.status, 200, r.text);
  assert.ok(r.body.deleted >= 1, r.text);
  const left = await primaryDb.execute({ sql: 'select count(*) as n from es_sessions where id = ?', args: [gone] });
  assert.equal(left.rows[0].n, 0);
});

test('/metrics is valid Prometheus text with router, cache, session and region series', async () => {
  const r = await call(w, 'GET', '/metrics');
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers.get('content-type'), /text\/plain; version=0\.0\.4/);
  const python = path.join(REPO_ROOT, '.tools', 'pyprom', 'bin', 'python');
  const script = [
    'import sys, json',
    'from prometheus_client.parser import text_string_to_metric_families',
    'fams = {}',
    'for f in text_string_to_metric_families(sys.stdin.read()):',
    '    fams[f.name] = {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}',
    'print(json.dumps(fams))',
  ].join('\n');
  const out = execFileSync(python, ['-c', script], { input: r.text, encoding: 'utf8' });
  const fams = JSON.parse(out);
  for (const name of [
    'edgesync_http_requests',
    'edgesync_http_request_duration_ms',
    'edgesync_router_cache_hits',
    'edgesync_router_region_latency_ms',
    'edgesync_router_region_lag_frames',
    'edgesync_sessions_cached',
  ]) {
    assert.ok(fams[name], `no family ${name} in ${Object.keys(fams).join(', ')}`);
  }
  const hits = fams.edgesync_router_cache_hits.samples.find((s) => s[0].endsWith('_total'));
  assert.ok(hits && hits[2] >= 1, JSON.stringify(fams.edgesync_router_cache_hits));
});

test('killing the replica mid-traffic: reads fail over to the primary and no client sees an error', async () => {
  await query('create table ticks (id integer primary key)');
  await query('insert into ticks default values');
  const reader = { sub: 'gina', location: NEAR_REPLICA };
  const served = { fra: 0, nyc: 0 };
  const readers = (async () => {
    for (let i = 0; i < 60; i++) {
      const r = await query('select count(*) from ticks where id > ?', [i], reader);
      assert.equal(r.status, 200, r.text);
      served[r.headers.get('x-edgesync-region')]++;
    }
  })();
  await sleep(100);
  await cluster.replica.kill();
  await readers;
  assert.ok(served.fra > 0, JSON.stringify(served));

  let health = await fetch(w.base + '/health').then((x) => x.json());
  const nyc = health.regions.find((x) => x.id === 'nyc');
  assert.equal(nyc.status, 'unhealthy', JSON.stringify(health));
  assert.equal(health.status, 'degraded', JSON.stringify(health));

  await cluster.replica.restart();
  await waitFor('the replica to come back after a probe', async () => {
    health = await fetch(w.base + '/health').then((x) => x.json());
    return health.status === 'healthy';
  });
  let k = 0;
  await waitFor('reads to reach the replica again', async (note) => {
    const r = await query('select count(*) from ticks where id > ?', [-++k], { sub: 'hank', location: NEAR_REPLICA });
    note(seenOf(r));
    return r.headers.get('x-edgesync-region') === 'nyc';
  });
});

test('killing the primary: writes fail with PRIMARY_UNAVAILABLE, reads go on, acknowledged writes survive', async () => {
  await query('create table ledger (id integer primary key, n integer)');
  const acked = [];
  for (let i = 0; i < 10; i++) {
    const r = await query('insert into ledger (n) values (?)', [i]);
    assert.equal(r.status, 200, r.text);
    acked.push(i);
  }
  let k = 0;
  await waitFor('the replica to catch up', async (note) => {
    const r = await query('select count(*) from ledger where id > ?', [-++k], { sub: 'ivy', location: NEAR_REPLICA });
    note(seenOf(r));
    return r.headers.get('x-edgesync-region') === 'nyc' && r.body.rows[0][0] === 10;
  });
  await cluster.primary.kill();
  try {
    const r = await query('insert into ledger (n) values (?)', [99]);
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.error.code, 'PRIMARY_UNAVAILABLE');
    const rd = await query('select count(*) from ledger where n >= ?', [0], { sub: 'jack', location: NEAR_REPLICA });
    assert.equal(rd.status, 200, rd.text);
    assert.equal(rd.body.rows[0][0], 10);
    const health = await fetch(w.base + '/health');
    assert.equal(health.status, 503, 'the cluster is unhealthy without its primary');
  } finally {
    await cluster.primary.restart();
  }
  const rs = await primaryDb.execute('select n from ledger order by n');
  assert.deepEqual(rs.rows.map((r) => r.n), acked);
});
