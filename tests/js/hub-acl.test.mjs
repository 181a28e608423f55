// The real-time hub under attack (issue 14, finding 6 and the subscribe-depth defect):
// channel access control on every path — the upgrade URL, subscribe and publish frames,
// HTTP publish, history (`?since=`) — in a real `wrangler dev` (workerd), with raw
// WebSocket frames as an attacker sends them (the `ws` package, no client library).
//
//   node --test tests/js/hub-acl.test.mjs
//
// The worker grants users HUB_CHANNELS = subscribe `user:{sub}:*`, `table:*`, `room:*`;
// publish `user:{sub}:*`, `room:*` — so a user may follow table changes (and must still
// never be able to fake one). No database: REGIONS points at a closed port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { freePort } from '../support/sqld.mjs';
import { startWorker } from '../support/worker-env.mjs';
import { hs256Token, signHs256 } from '../support/jwt.mjs';
import { hubSocket } from '../support/hub-socket.mjs';

const JWT_SECRET = crypto.randomBytes(32).toString('hex');
const WAIT_MS = 10_000;
const HUB_CHANNELS = { subscribe: ['user:{sub}:*', 'table:*', 'room:*'], publish: ['user:{sub}:*', 'room:*'] };

const user = (sub) => hs256Token(JWT_SECRET, sub);
const service = () => hs256Token(JWT_SECRET, 'backend', { role: 'service' });

let worker;

before(async () => {
  const closed = await freePort();
  worker = await startWorker({
    name: 'hub-acl',
    vars: { REGIONS: [{ id: 'primary', url: `http://127.0.0.1:${closed}`, role: 'primary' }], HUB_CHANNELS },
    secrets: { JWT_SECRET },
  });
}, { timeout: 150_000 });

after(async () => {
  await worker?.stop();
});

/** A raw socket as `token` (tests/support/hub-socket.mjs). */
const socket = (token, query = {}) => hubSocket(worker.wsBase, token, query);

const isType = (type) => (m) => m.type === type;
const notReady = (m) => m.type !== 'ready';

async function publishHttp(token, channel, data) {
  const res = await fetch(`${worker.base}/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  return { status: res.status, body: await res.json() };
}

/** Mallory forges a change event on `channel` (WS frame and HTTP); bob, subscribed, must see none of it. */
async function forgeryRefused(channel, bobChannels) {
  const bob = socket(user('bob'), { channels: bobChannels });
  await bob.next(isType('ready'));
  const mallory = socket(user('mallory'));
  await mallory.next(isType('ready'));
  const err = await mallory.ask({ type: 'publish', channel, data: { table: 'b_orders', replicationIndex: 999999999 } }, (m) => m.type === 'error' || m.type === 'published');
  assert.equal(err.type, 'error', `a forged ${channel} event was accepted: ${JSON.stringify(err)}`);
  assert.equal(err.code, 'CHANNEL_RESERVED', JSON.stringify(err));
  const http = await publishHttp(user('mallory'), channel, { replicationIndex: 999999999 });
  assert.equal(http.status, 403, JSON.stringify(http));
  assert.equal(http.body.error.code, 'CHANNEL_RESERVED');
  // Service tokens cannot either: only the worker's own paths publish there.
  const svc = await publishHttp(service(), channel, { replicationIndex: 1 });
  assert.equal(svc.status, 403, JSON.stringify(svc));
  // Bob's socket saw nothing; it is alive and gets what it may.
  const ok = await publishHttp(service(), 'user:bob:inbox', { hi: 1 });
  assert.equal(ok.status, 200, JSON.stringify(ok));
  const ev = await bob.next(isType('event'));
  assert.equal(ev.channel, 'user:bob:inbox');
  assert.equal(bob.frames.filter(isType('event')).length, 1, JSON.stringify(bob.frames));
  await Promise.all([bob.close(), mallory.close()]);
}

test('table: channels are written by the worker only: a forged change event reaches nobody', async () => {
  await forgeryRefused('table:b_orders', 'table:b_orders,user:bob:*');
});

test('sync: channels are written by the worker only: nobody makes replicas sync on demand', async () => {
  await forgeryRefused('sync:todos', 'user:bob:*');
});

/** Bob's private events on user:bob:inbox; returns their seqs. */
async function bobsHistory() {
  const seqs = [];
  for (let i = 0; i < 3; i++) {
    const r = await publishHttp(user('bob'), 'user:bob:inbox', { secret: `bob-${i}` });
    assert.equal(r.status, 200, JSON.stringify(r));
    seqs.push(r.body.seq);
  }
  return seqs;
}

test("`*` and other users' channels are refused on the upgrade URL, before any socket exists", async () => {
  await bobsHistory();
  for (const channels of ['*', 'user:*', 'user:bob:inbox', 'user:bob:*', 'u*', 'sync:todos', 'room:1,user:bob:*']) {
    const c = socket(user('mallory'), { channels, since: '0' });
    const e = await c.opened.then(() => null, (x) => x);
    if (!e) await c.close();
    assert.ok(e, `subscribed to ${channels} by URL`);
    assert.equal(e.status, 403, `${channels}: ${e}`);
    assert.equal(JSON.parse(e.body).error.code, 'FORBIDDEN', e.body);
  }
});

test("`*` and other users' channels are refused in subscribe frames; the socket stays usable", async () => {
  const m = socket(user('mallory'));
  await m.next(isType('ready'));
  for (const channels of [['*'], ['user:*'], ['user:bob:inbox'], ['user:mallory:*', 'user:bob:*'], ['sync:*']]) {
    const err = await m.ask({ type: 'subscribe', channels, since: 0 }, notReady);
    assert.equal(err.type, 'error', JSON.stringify(err));
    assert.equal(err.code, 'FORBIDDEN', JSON.stringify(err));
  }
  assert.equal((await m.ask({ type: 'subscribe', channels: ['user:mallory:*'] }, () => true)).type, 'ready');
  await m.close();
});

test('history (`since`) replays only what the socket may see', async () => {
  const seqs = await bobsHistory();
  // Mallory asks for all history of everything she may see, and of everything.
  const m = socket(user('mallory'));
  await m.next(isType('ready'));
  await m.ask({ type: 'subscribe', channels: ['user:mallory:*', 'room:*'], since: 0 }, isType('ready'));
  await m.ask({ type: 'subscribe', channels: ['*'], since: 0 }, notReady);
  await publishHttp(user('bob'), 'user:bob:inbox', { secret: 'live' });
  const mine = await publishHttp(user('mallory'), 'user:mallory:notes', { n: 1 });
  await m.next((f) => f.type === 'event' && f.seq === mine.body.seq);
  const channels = new Set(m.frames.filter(isType('event')).map((f) => f.channel));
  assert.deepEqual([...channels], ['user:mallory:notes'], JSON.stringify(m.frames));
  assert.ok(!JSON.stringify(m.frames).includes('bob-'), "bob's history leaked");
  // A service token may follow everything, history included.
  const s = socket(service(), { channels: '*', since: String(seqs[0] - 1) });
  await s.next(isType('ready'));
  assert.deepEqual(
    s.frames.filter((f) => f.type === 'event' && f.channel === 'user:bob:inbox').map((f) => f.seq).slice(0, 3),
    seqs,
  );
  await Promise.all([m.close(), s.close()]);
});

test('a subject cannot reach into another namespace through its own name', async () => {
  for (const evil of ['bob:x', 'bob*', 'bob,user:bob', 'bob%3Ax']) {
    const c = socket(user(evil));
    await c.next(isType('ready'));
    for (const channel of ['user:bob:inbox', 'user:bob:*', 'user:bob:x:inbox']) {
      const err = await c.ask({ type: 'subscribe', channels: [channel] }, notReady);
      assert.equal(err.code, 'FORBIDDEN', `${evil} → ${channel}: ${JSON.stringify(err)}`);
    }
    const who = await (await fetch(`${worker.base}/whoami`, { headers: { authorization: `Bearer ${user(evil)}` } })).json();
    const own = who.channels.subscribe[0].replace(/\*$/, 'inbox');
    assert.ok(!own.startsWith('user:bob:'), own);
    const ok = await c.ask({ type: 'subscribe', channels: [own] }, () => true);
    assert.equal(ok.type, 'ready', `${evil} own channel ${own}: ${JSON.stringify(ok)}`);
    await c.close();
  }
});

test('deep or odd subscribe frames are refused with an error frame, never an internal error', async () => {
  const c = socket(user('mallory'));
  await c.next(isType('ready'));
  const deep = (n) => JSON.stringify({ type: 'subscribe', channels: [JSON.parse('['.repeat(n) + ']'.repeat(n))] });
  const cases = [
    `{"type":"subscribe","channels":${'['.repeat(30_000)}${']'.repeat(30_000)}}`,
    deep(100),
    deep(5),
    `{"type":"subscribe","channels":[${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}]}`,
    '{"type":"subscribe","channels":[{"toString":1}]}',
    '{"type":"subscribe","channels":[null]}',
    '{"type":"publish","channel":["user:mallory:x"],"data":1}',
    `{"type":${'['.repeat(40)}${']'.repeat(40)}}`,
  ];
  for (const frame of cases) {
    const err = await c.ask(frame, notReady);
    assert.equal(err.type, 'error', `${frame.slice(0, 60)}: ${JSON.stringify(err)}`);
    assert.equal(err.code, 'BAD_MESSAGE', `${frame.slice(0, 60)}: ${JSON.stringify(err)}`);
  }
  // Still open and working.
  assert.equal((await c.ask({ type: 'ping' }, isType('pong'))).type, 'pong');
  assert.equal(c.closed, false);
  await c.close();
});

test('a socket lives no longer than its token', async () => {
  // Valid when it connects (30 s leeway), past its expiry + leeway 6 s later.
  const token = signHs256(JWT_SECRET, { sub: 'carol', exp: Math.floor(Date.now() / 1000) - 25 });
  const c = socket(token, { channels: 'user:carol:*' });
  await c.next(isType('ready'));
  await sleep(6500);
  const from = c.frames.length;
  await publishHttp(service(), 'user:carol:inbox', { late: true });
  c.send({ type: 'ping-after-expiry' });
  const err = await c.next(isType('error'), from);
  assert.equal(err.code, 'AUTH_EXPIRED', JSON.stringify(err));
  // The hub closes it: the close frame arrives (CLOSING; the TCP close may take longer
  // through wrangler's dev proxy), with the token-expired code once it is closed.
  const t0 = Date.now();
  while (c.ws.readyState === WebSocket.OPEN && Date.now() - t0 < WAIT_MS) await sleep(50);
  assert.notEqual(c.ws.readyState, WebSocket.OPEN, 'the socket was not closed');
  if (c.closed) assert.equal(c.closeCode, 4401);
  assert.ok(!c.frames.some((f) => f.type === 'event'), JSON.stringify(c.frames));
});
