// The real-time hub (www/worker/src/hub.ts: a SQLite-backed Durable Object behind
// GET /subscribe and POST /publish) in a real `wrangler dev` (workerd), and the package's
// client for it (js/hub.ts, connectHub) against that worker.
//
//   node --test tests/js/hub.test.mjs
//
// The worker keeps the last HUB_RETENTION_EVENTS=50 events (var), so a test can prune
// history and see `reset`. Clients are the `ws` package (Node 20 has no global
// WebSocket). The hub's mechanics are exercised with a service token (it may use any
// channel); what user tokens may do is hub-acl.test.mjs. The worker's region is a sqld
// (no auth) that the syncOnHub replicas sync through, so /sync/notify reads its log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { connectHub, createClient, syncOnHub } from 'edgesync';
import { startSqld } from '../support/sqld.mjs';
import { startWorker } from '../support/worker-env.mjs';
import { hs256Token } from '../support/jwt.mjs';
import { hubSocket } from '../support/hub-socket.mjs';

const JWT_SECRET = crypto.randomBytes(32).toString('hex');
const RETENTION = 50;
const WAIT_MS = 10_000;

const token = (claims = {}) => hs256Token(JWT_SECRET, 'hub-tester', { role: 'service', ...claims });

let worker;
let db;

before(async () => {
  db = await startSqld({ auth: false });
  worker = await startWorker({
    name: 'hub',
    vars: {
      REGIONS: [{ id: 'primary', url: db.url, role: 'primary' }],
      HUB_RETENTION_EVENTS: String(RETENTION),
    },
    secrets: { JWT_SECRET },
  });
}, { timeout: 150_000 });

after(async () => {
  await worker?.stop();
  await db?.stop();
});

/** A raw WebSocket client (tests/support/hub-socket.mjs) with this test's token. */
const client = (query = {}, { auth = true } = {}) => hubSocket(worker.wsBase, auth ? token() : undefined, query);

async function publishHttp(channel, data) {
  const res = await fetch(`${worker.base}/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.equal(body.channel, channel);
  assert.ok(Number.isInteger(body.seq) && body.seq > 0, JSON.stringify(body));
  return body.seq;
}

const isType = (type) => (m) => m.type === type;

test('a WebSocket needs a valid token (401), and /subscribe needs an upgrade (426)', async () => {
  const anon = client({ channels: 'x' }, { auth: false });
  const e1 = await anon.opened.then(() => null, (e) => e);
  assert.ok(e1, 'an unauthenticated WebSocket was accepted');
  assert.equal(e1.status, 401, String(e1));
  assert.equal(JSON.parse(e1.body).error.code, 'AUTH_REQUIRED');

  const bad = new WebSocket(`${worker.wsBase}/subscribe?access_token=${token().slice(0, -4)}AAAA`);
  const status = await new Promise((resolve) => {
    bad.once('unexpected-response', (_req, res) => resolve(res.statusCode));
    bad.once('open', () => resolve('open'));
    bad.once('error', () => {});
  });
  assert.equal(status, 401);

  const res = await fetch(`${worker.base}/subscribe`, { headers: { authorization: `Bearer ${token()}` } });
  assert.equal(res.status, 426);
  assert.equal((await res.json()).error.code, 'UPGRADE_REQUIRED');

  // A bad subscription in the URL is refused before the upgrade.
  const badChan = client({ channels: 'a*b' });
  const e2 = await badChan.opened.then(() => null, (e) => e);
  assert.equal(e2?.status, 400, String(e2));
});

test('subscribers of a channel get every event (HTTP and WS publishes) in seq order; others get none', async () => {
  const a = client({ channels: 'room:1' });
  const b = client();
  const other = client({ channels: 'room:2' });
  const pub = client();
  await Promise.all([a.opened, b.opened, other.opened, pub.opened]);
  await a.next(isType('ready'));
  await other.next(isType('ready'));
  await pub.next(isType('ready')); // a bare socket is ready too
  b.send({ type: 'subscribe', channels: ['room:1'] });
  const bReady = await b.next((m) => m.type === 'ready' && b.frames.filter(isType('ready')).length === 2);
  assert.ok(Number.isInteger(bReady.seq));

  const s1 = await publishHttp('room:1', { n: 1 });
  pub.send({ type: 'publish', channel: 'room:1', data: { n: 2, text: 'héllo ✓' }, id: 'p2' });
  const ack = await pub.next(isType('published'));
  assert.equal(ack.id, 'p2');
  assert.ok(ack.seq > s1, `ack seq ${ack.seq} after ${s1}`);
  const s3 = await publishHttp('room:1', [3]);

  for (const c of [a, b]) {
    await c.next((m) => m.type === 'event' && m.seq === s3);
    const got = c.events('room:1').map((m) => [m.seq, m.data]);
    assert.deepEqual(got, [
      [s1, { n: 1 }],
      [ack.seq, { n: 2, text: 'héllo ✓' }],
      [s3, [3]],
    ]);
    for (const m of c.events()) assert.ok(typeof m.ts === 'number' && Math.abs(m.ts - Date.now()) < 60_000);
  }
  // The publisher is not subscribed: only its ack. The other channel's socket got nothing
  // (its first event is the one published to it after all of the above).
  assert.equal(pub.events().length, 0);
  const s4 = await publishHttp('room:2', 'only for room:2');
  const first = await other.next(isType('event'));
  assert.equal(first.seq, s4);
  assert.equal(other.events().length, 1);

  // Unsubscribing stops delivery.
  a.send({ type: 'unsubscribe', channels: ['room:1'] });
  await a.next(isType('unsubscribed'));
  const s5 = await publishHttp('room:1', 5);
  await b.next((m) => m.type === 'event' && m.seq === s5);
  assert.ok(!a.events().some((m) => m.seq === s5), 'an unsubscribed socket still got the event');

  await Promise.all([a, b, other, pub].map((c) => c.close()));
});

test('a client that was offline resumes with since: exactly the missed events in order, then live ones', async () => {
  const c1 = client({ channels: 'doc:7' });
  await c1.next(isType('ready'));
  const s0 = await publishHttp('doc:7', 'before');
  await c1.next((m) => m.type === 'event' && m.seq === s0);
  await c1.close();

  const missed = [];
  for (let i = 0; i < 6; i++) {
    missed.push(await publishHttp('doc:7', { i }));
    await publishHttp('doc:other', { i }); // interleaved noise on another channel
  }

  const c2 = client({ channels: 'doc:7', since: String(s0) });
  const ready = await c2.next(isType('ready'));
  assert.ok(ready.seq >= missed.at(-1));
  const replay = c2.frames.slice(0, c2.frames.indexOf(ready));
  assert.deepEqual(
    replay.map((m) => [m.type, m.channel, m.seq, m.data]),
    missed.map((seq, i) => ['event', 'doc:7', seq, { i }]),
  );
  const live = await publishHttp('doc:7', 'live');
  await c2.next((m) => m.type === 'event' && m.seq === live);
  assert.deepEqual(
    c2.events().map((m) => m.seq),
    [...missed, live],
  );

  // The same resume works as a subscribe frame on an open socket.
  const c3 = client();
  await c3.next(isType('ready'));
  c3.send({ type: 'subscribe', channels: ['doc:7'], since: missed[2] });
  await c3.next((m) => m.type === 'ready' && c3.frames.filter(isType('ready')).length === 2);
  assert.deepEqual(
    c3.events().map((m) => m.seq),
    [...missed.slice(3), live],
  );
  await Promise.all([c2.close(), c3.close()]);
});

test('a trailing * subscribes to every channel with that prefix', async () => {
  const c = client({ channels: 'room:*' });
  await c.next(isType('ready'));
  const s1 = await publishHttp('room:todos', 1);
  await publishHttp('roomx', 2);
  const s3 = await publishHttp('room:users', 3);
  await c.next((m) => m.type === 'event' && m.seq === s3);
  assert.deepEqual(
    c.events().map((m) => [m.channel, m.seq]),
    [
      ['room:todos', s1],
      ['room:users', s3],
    ],
  );
  await c.close();
});

test('nobody publishes on the reserved table: and sync: channels, service tokens included', async () => {
  for (const channel of ['table:todos', 'sync:todos']) {
    const res = await fetch(`${worker.base}/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel, data: 1 }),
    });
    assert.equal(res.status, 403);
    assert.equal((await res.json()).error.code, 'CHANNEL_RESERVED');
  }
});

test('bad frames get an error frame and the socket stays usable', async () => {
  const c = client();
  await c.next(isType('ready'));
  const cases = [
    ['not json', 'BAD_MESSAGE'],
    ['[1,2]', 'BAD_MESSAGE'],
    ['{"type":"nope"}', 'BAD_MESSAGE'],
    ['{"channels":["a"]}', 'BAD_MESSAGE'],
    ['{"type":"subscribe","channels":[]}', 'BAD_MESSAGE'],
    ['{"type":"subscribe","channels":"a"}', 'BAD_MESSAGE'],
    ['{"type":"subscribe","channels":["a*b"]}', 'BAD_MESSAGE'],
    [JSON.stringify({ type: 'subscribe', channels: ['x'.repeat(201)] }), 'BAD_MESSAGE'],
    ['{"type":"subscribe","channels":[""]}', 'BAD_MESSAGE'],
    ['{"type":"subscribe","channels":["a"],"since":-1}', 'BAD_MESSAGE'],
    ['{"type":"subscribe","channels":["a"],"since":"5"}', 'BAD_MESSAGE'],
    ['{"type":"publish","channel":"room:*","data":1}', 'BAD_MESSAGE'],
    ['{"type":"publish","data":1}', 'BAD_MESSAGE'],
    [JSON.stringify({ type: 'publish', channel: 'big', data: 'x'.repeat(70 * 1024) }), 'FRAME_TOO_LARGE'],
  ];
  for (const [frame, code] of cases) {
    const from = c.frames.length;
    c.send(frame);
    const err = await c.next(isType('error'), from);
    assert.equal(err.code, code, `${frame.slice(0, 80)} → ${JSON.stringify(err)}`);
    assert.equal(typeof err.message, 'string');
  }
  let from = c.frames.length;
  c.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
  assert.equal((await c.next(isType('error'), from)).code, 'BAD_MESSAGE');

  // Still open and working: ping, subscribe, receive.
  from = c.frames.length;
  c.send({ type: 'ping' });
  await c.next(isType('pong'), from);
  c.send({ type: 'subscribe', channels: ['after-errors'] });
  await c.next((m) => m.type === 'ready', from);
  const s = await publishHttp('after-errors', { ok: true });
  const ev = await c.next((m) => m.type === 'event' && m.seq === s);
  assert.deepEqual(ev.data, { ok: true });
  assert.equal(c.closed, false);
  await c.close();
});

test(`reset when the missed events were pruned (retention ${RETENTION} events)`, async () => {
  const quiet = await publishHttp('quiet', 'old but never missed');
  const burst = [];
  for (let i = 0; i < RETENTION * 2 + 10; i++) burst.push(await publishHttp('busy', i));

  // The start of the burst is gone: the client must resync.
  const gone = client({ channels: 'busy', since: String(burst[0] - 1) });
  const first = await gone.next(() => true);
  assert.equal(first.type, 'reset', JSON.stringify(gone.frames));
  assert.equal(first.seq, burst.at(-1));
  const ready = await gone.next(isType('ready'));
  assert.equal(ready.seq, burst.at(-1));
  assert.equal(gone.events().length, 0, 'events replayed after a reset');

  // Recent history is still there: replay, no reset.
  const recent = client({ channels: 'busy', since: String(burst.at(-6)) });
  await recent.next(isType('ready'));
  assert.deepEqual(
    recent.frames.map((m) => m.type),
    ['event', 'event', 'event', 'event', 'event', 'ready'],
  );
  assert.deepEqual(
    recent.events().map((m) => m.data),
    burst.slice(-5).map((_, i) => RETENTION * 2 + 5 + i),
  );

  // Per channel: "quiet" lost its (already delivered) event, but nothing after `quiet`.
  const q = client({ channels: 'quiet', since: String(quiet) });
  await q.next(isType('ready'));
  assert.deepEqual(q.frames.map((m) => m.type), ['ready']);

  // A cursor ahead of the hub (e.g. from another deployment) is a reset too.
  const ahead = client({ channels: 'busy', since: String(burst.at(-1) + 1000) });
  assert.equal((await ahead.next(() => true)).type, 'reset');
  await Promise.all([gone, recent, q, ahead].map((c) => c.close()));
});

test('connectHub resumes without gaps or duplicates after a dropped socket and a worker restart', { timeout: 180_000 }, async () => {
  const sockets = [];
  class TrackedWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      sockets.push(this);
    }
  }
  const received = [];
  const readies = [];
  const errors = [];
  let resets = 0;
  const hub = connectHub(worker.base, {
    token: () => token(),
    channels: ['feed:1'],
    onEvent: (e) => received.push(e),
    onReset: () => resets++,
    onReady: (seq) => readies.push(seq),
    onError: (e) => errors.push(String(e)),
    WebSocket: TrackedWebSocket,
    minDelayMs: 50,
    maxDelayMs: 400,
  });
  const until = async (cond, what, ms = 60_000) => {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}; received ${JSON.stringify(received.map((e) => e.seq))}, errors ${errors.join('; ')}\n${worker.output.slice(-3000)}`);
      await sleep(25);
    }
  };
  try {
    await until(() => hub.connected, 'the first ready');
    const published = [];
    for (let i = 0; i < 3; i++) published.push(await publishHttp('feed:1', { i }));
    await until(() => received.length === 3, '3 live events');

    // 1. The socket dies abruptly; events are published while the client is away.
    sockets.at(-1).terminate();
    await until(() => !hub.connected, 'the drop to be noticed');
    for (let i = 3; i < 8; i++) published.push(await publishHttp('feed:1', { i }));
    await until(() => received.length === 8, 'the backlog after the reconnect');
    assert.ok(sockets.length >= 2, 'no new socket was opened');

    // 2. The worker restarts (same port and state dir): the events persist in SQLite.
    const before = sockets.length;
    await worker.restart();
    for (let i = 8; i < 11; i++) published.push(await publishHttp('feed:1', { i }));
    await until(() => received.length === 11, 'the events published across the restart', 120_000);
    assert.ok(sockets.length > before, 'no reconnect after the restart');

    // Live again, from the client's side too.
    hub.publish('feed:1', { i: 11, from: 'client' });
    await until(() => received.length === 12, 'the client-published event');
    await sleep(300); // anything duplicated would arrive by now

    assert.deepEqual(
      received.map((e) => e.seq),
      [...published, received.at(-1).seq],
    );
    assert.ok(received.at(-1).seq > published.at(-1));
    assert.deepEqual(
      received.map((e) => e.data.i),
      [...Array(12).keys()],
    );
    assert.ok(received.every((e) => e.channel === 'feed:1' && typeof e.ts === 'number'));
    assert.equal(hub.seq, received.at(-1).seq);
    assert.equal(resets, 0);
    assert.ok(readies.length >= 3, `ready after each connect: ${readies}`);
  } finally {
    hub.close();
  }
  // After close(): no more reconnects.
  const count = sockets.length;
  await sleep(600);
  assert.equal(sockets.length, count);
});

test('events survive a worker restart (SQLite-backed Durable Object)', async () => {
  const s = await publishHttp('persist:1', { kept: true });
  await worker.restart();
  const c = client({ channels: 'persist:1', since: String(s - 1) });
  const ev = await c.next(isType('event'), 0, 30_000);
  assert.equal(ev.seq, s);
  assert.deepEqual(ev.data, { kept: true });
  // The sequence continues after the restart: never reused.
  const next = await publishHttp('persist:1', 2);
  assert.ok(next > s);
  await c.close();
});

test('syncOnHub: a replica that pushes wakes the others at once (no sync interval)', { timeout: 120_000 }, async () => {
  const a = createClient({ url: ':memory:', syncUrl: db.url });
  const b = createClient({ url: ':memory:', syncUrl: db.url });
  const wakesA = [];
  const wakes = [];
  let la;
  let lb;
  try {
    for (const r of [a, b]) {
      await r.execute('create table todos (id integer primary key, title text)');
      r.replicate('todos');
    }
    const opts = { token: () => token(), tables: ['todos'], WebSocket, minDelayMs: 50 };
    la = syncOnHub(a, worker.base, { ...opts, onSync: (r, e) => wakesA.push(e ? String(e) : r) });
    lb = syncOnHub(b, worker.base, { ...opts, onSync: (r, e) => wakes.push(e ? String(e) : r) });
    const until = async (cond, what) => {
      const t0 = Date.now();
      while (!(await cond())) {
        if (Date.now() - t0 > 20_000) assert.fail(`timed out waiting for ${what}; wakes ${JSON.stringify(wakes)}`);
        await sleep(25);
      }
    };
    await until(() => la.hub.connected && lb.hub.connected, 'both replicas on the hub');
    await la.sync();
    await lb.sync(); // both bootstrapped; b has no syncInterval and is never synced by hand again
    await sleep(300);
    wakes.length = 0;
    wakesA.length = 0;
    await a.execute("insert into todos values (1, 'milk')");
    const t0 = Date.now();
    const pushed = await la.sync();
    assert.equal(pushed.changesPushed, 1);
    await until(async () => (await b.execute('select count(*) as n from todos')).rows[0].n === 1, 'the row on b');
    const ms = Date.now() - t0;
    // onSync reports after sync() resolves, which may be a few ticks after the row is visible.
    await until(() => wakes.some((w) => w.changesApplied === 1), 'the wake that applied it');
    assert.ok(ms < 5000, `b saw the row after ${ms} ms`);
    // b holds exactly a's row; a was not woken by its own announcement (the writer's site).
    assert.deepEqual((await b.execute('select title from todos')).rows.map((r) => r.title), ['milk']);
    await sleep(300);
    assert.deepEqual(wakesA, [], 'a woke on its own push');

    // Announcements come from the change log only: asking again announces nothing new.
    const notify = async () => {
      const res = await fetch(`${worker.base}/sync/notify`, { method: 'POST', headers: { authorization: `Bearer ${token()}` } });
      assert.equal(res.status, 200);
      return (await res.json()).announced;
    };
    assert.deepEqual(await notify(), []);

    // The log replaced (a new or restored database, its sequence below the hub's
    // cursor): the cursor starts again from the log's top, and new records are announced.
    const server = createClient({ url: db.url });
    try {
      await server.batch(["delete from _es_log", "delete from sqlite_sequence where name = '_es_log'"], 'write');
      assert.deepEqual(await notify(), []);
      await server.execute({ sql: 'insert into _es_log (id, site, rec) values (?, ?, ?)', args: ['r-new', 'site-z', '[1,"todos",[9],"i",{}]'] });
      assert.deepEqual(await notify(), ['todos']);
      assert.deepEqual(await notify(), []);
    } finally {
      server.close();
    }
  } finally {
    la?.close();
    lb?.close();
    a.close();
    b.close();
  }
});
