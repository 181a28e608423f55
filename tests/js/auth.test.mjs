// JWT bearer authentication of the edge Worker (www/worker/src/auth.ts, WebCrypto) and
// the request-body limits (http.ts), in a real `wrangler dev` (workerd).
//
//   node --test tests/js/auth.test.mjs
//
// Worker "both" accepts HS256 (JWT_SECRET) and EdDSA (JWT_PUBLIC_KEY) tokens, with
// JWT_ISSUER / JWT_AUDIENCE set and MAX_BODY_BYTES=1024; worker "eddsa" has only the
// Ed25519 key and no issuer/audience. Keys are secrets (--env-file, the PEM multi-line).
// POST /publish (the hub; no database) on the subject's own channel is the
// authenticated route under test. Requests are written as an attacker sends them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { freePort } from '../support/sqld.mjs';
import { startWorker } from '../support/worker-env.mjs';
import { signJwt, signHs256, base64url } from '../support/jwt.mjs';

const JWT_SECRET = crypto.randomBytes(32).toString('hex');
const ISSUER = 'https://auth.test.example';
const AUDIENCE = 'edgesync-test';
const MAX_BODY = 1024;
const ed = crypto.generateKeyPairSync('ed25519');
const PUBLIC_PEM = ed.publicKey.export({ type: 'spki', format: 'pem' });

const now = () => Math.floor(Date.now() / 1000);
/** Claims the "both" worker accepts, plus `extra` (undefined values delete a claim). */
function claims(extra = {}) {
  const c = { sub: 'auth-tester', iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 3600, ...extra };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return c;
}
const hs256 = (payload, secret = JWT_SECRET, header = undefined) => signHs256(secret, payload, header);
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Segment `i` of a token with its last character's unused low bits set (same bytes when decoded leniently). */
function malleateSegment(token, i) {
  const parts = token.split('.');
  const seg = parts[i];
  const unused = [0, 0, 4, 2][seg.length % 4]; // bits of the last character that carry nothing
  assert.ok(unused > 0, `segment ${i} has no unused bits (length ${seg.length})`);
  const v = B64URL.indexOf(seg.at(-1));
  const mask = (1 << unused) - 1;
  parts[i] = seg.slice(0, -1) + B64URL[(v & ~mask) | ((v + 1) & mask || 1)];
  assert.notEqual(parts[i], seg);
  assert.deepEqual(Buffer.from(parts[i], 'base64url'), Buffer.from(seg, 'base64url'), 'the same bytes, spelled differently');
  return parts.join('.');
}
const malleate = (token) => malleateSegment(token, 2);
/** A token from `make(pad)` whose segment `i` has unused bits (length not a multiple of 4). */
function withUnusedBits(make, i) {
  for (let n = 0; n < 4; n++) {
    const t = make('x'.repeat(n));
    if (t.split('.')[i].length % 4 >= 2) return t;
  }
  throw new Error('unreachable');
}
const eddsa = (payload, key = ed.privateKey) => signJwt(key, payload);

let both;
let edOnly;

before(async () => {
  const closed = await freePort(); // REGIONS at a closed port: no database in these tests
  const regions = [{ id: 'primary', url: `http://127.0.0.1:${closed}`, role: 'primary' }];
  [both, edOnly] = await Promise.all([
    startWorker({
      name: 'auth-both',
      vars: { REGIONS: regions, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, MAX_BODY_BYTES: String(MAX_BODY) },
      secrets: { JWT_SECRET, JWT_PUBLIC_KEY: PUBLIC_PEM },
    }),
    startWorker({ name: 'auth-eddsa', vars: { REGIONS: regions }, secrets: { JWT_PUBLIC_KEY: PUBLIC_PEM } }),
  ]);
}, { timeout: 150_000 });

after(async () => {
  await Promise.all([both, edOnly].filter(Boolean).map((w) => w.stop()));
});

/** POST /publish with the given Authorization header value (or none) and body. */
async function publish(w, authorization, body = JSON.stringify({ channel: 'user:auth-tester:test', data: 1 }), extraHeaders = {}) {
  const headers = { 'content-type': 'application/json', ...extraHeaders };
  if (authorization !== undefined) headers.authorization = authorization;
  const res = await fetch(`${w.base}/publish`, {
    method: 'POST',
    headers,
    body,
    duplex: 'half',
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, `${res.status} ${text}`);
  return { status: res.status, body: JSON.parse(text), text };
}

async function expectError(w, authorization, status, code, what) {
  const r = await publish(w, authorization);
  assert.equal(r.status, status, `${what}: ${r.text}`);
  assert.equal(r.body.error?.code, code, `${what}: ${r.text}`);
  assert.equal(typeof r.body.error.message, 'string');
  return r;
}

test('GET /health needs no token', async () => {
  const res = await fetch(`${both.base}/health`);
  assert.notEqual(res.status, 401);
  assert.ok([200, 503].includes(res.status), `status ${res.status}`);
  assert.equal(typeof (await res.json()).status, 'string');
});

test('valid HS256 and EdDSA tokens pass (and pass again from the cache)', async () => {
  for (const [what, tok] of [
    ['HS256', hs256(claims())],
    ['EdDSA', eddsa(claims())],
    ['aud as an array', hs256(claims({ aud: ['other', AUDIENCE] }))],
    ['expired 10 s ago (within the 30 s leeway)', eddsa(claims({ exp: now() - 10 }))],
    ['EdDSA under its RFC 9864 name', signJwt(ed.privateKey, claims(), { alg: 'Ed25519', typ: 'JWT' })],
  ]) {
    for (let i = 0; i < 2; i++) {
      const r = await publish(both, `Bearer ${tok}`);
      assert.equal(r.status, 200, `${what} (#${i + 1}): ${r.text}`);
      assert.ok(Number.isInteger(r.body.seq), r.text);
    }
  }
  // The scheme is case-insensitive.
  assert.equal((await publish(both, `bearer ${hs256(claims())}`)).status, 200);
  // The EdDSA-only worker takes EdDSA tokens without iss/aud.
  const r = await publish(edOnly, `Bearer ${eddsa({ sub: 'auth-tester', exp: now() + 60 })}`);
  assert.equal(r.status, 200, r.text);
});

test('no token is 401 AUTH_REQUIRED', async () => {
  await expectError(both, undefined, 401, 'AUTH_REQUIRED', 'no header');
  await expectError(both, 'Basic dXNlcjpwYXNz', 401, 'AUTH_REQUIRED', 'another scheme');
  await expectError(both, 'Bearer', 401, 'AUTH_REQUIRED', 'empty bearer');
  // access_token in the query is only for WebSocket upgrades.
  const res = await fetch(`${both.base}/publish?access_token=${hs256(claims())}`, {
    method: 'POST',
    body: JSON.stringify({ channel: 'user:auth-tester:test', data: 1 }),
  });
  assert.equal(res.status, 401);
  assert.equal((await res.json()).error.code, 'AUTH_REQUIRED');
});

/** A raw GET with the given headers (undici's fetch will not send `Upgrade`). */
function rawGet(w, path, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${w.base}${path}`, { method: 'GET', headers }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('?access_token= counts only on the hub upgrade, never on other routes', async () => {
  const tok = hs256(claims());
  // With an Upgrade header, a query token used to be accepted on every GET route.
  for (const path of ['/metrics', '/sessions/stats', `/sessions/${'A'.repeat(32)}`, '/whoami']) {
    const r = await rawGet(both, `${path}?access_token=${tok}`, { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-version': '13', 'sec-websocket-key': crypto.randomBytes(16).toString('base64') });
    assert.equal(r.status, 401, `${path}: ${r.text}`);
    assert.equal(JSON.parse(r.text).error.code, 'AUTH_REQUIRED', `${path}: ${r.text}`);
  }
  // The same token in the header works.
  const r = await rawGet(both, '/whoami', { authorization: `Bearer ${tok}` });
  assert.equal(r.status, 200, r.text);
  assert.equal(JSON.parse(r.text).sub, 'auth-tester');
});

test('malformed, forged or refused tokens are 401 AUTH_INVALID', async () => {
  const good = hs256(claims());
  const [h, p, s] = good.split('.');
  const otherEd = crypto.generateKeyPairSync('ed25519').privateKey;
  const tampered = base64url(JSON.stringify({ ...claims(), sub: 'admin' }));
  const cases = [
    ['garbage', 'garbage'],
    ['two parts', `${h}.${p}`],
    ['four parts', `${good}.x`],
    ['invalid base64url', `${h}.${p}.${s.slice(0, -2)}+/`],
    ['bad base64url length', `${h}.${p}.${s}A`],
    ['header not JSON', `${base64url('nope')}.${p}.${s}`],
    ['payload not JSON', `${h}.${base64url('{"sub":')}.${s}`],
    ['payload an array', hs256([1, 2])],
    ['non-UTF-8 payload', `${h}.${Buffer.from([0xff, 0xfe, 0x7b]).toString('base64url')}.${s}`],
    ['HS256 with another secret', hs256(claims(), 'not-the-secret')],
    ['EdDSA with another key', eddsa(claims(), otherEd)],
    ['tampered payload', `${h}.${tampered}.${s}`],
    ['signature of another token', `${h}.${p}.${hs256(claims({ sub: 'other' })).split('.')[2]}`],
    ['alg none, empty signature', `${base64url(JSON.stringify({ alg: 'none' }))}.${p}.`],
    ['alg none, some signature', `${base64url(JSON.stringify({ alg: 'none' }))}.${p}.${s}`],
    ['alg HS512', hs256(claims(), JWT_SECRET, { alg: 'HS512' })],
    ['alg RS256', hs256(claims(), JWT_SECRET, { alg: 'RS256' })],
    ['no alg', hs256(claims(), JWT_SECRET, { typ: 'JWT' })],
    ['crit header', hs256(claims(), JWT_SECRET, { alg: 'HS256', crit: ['exp'] })],
    ['wrong issuer', hs256(claims({ iss: 'https://evil.example' }))],
    ['no issuer', hs256(claims({ iss: undefined }))],
    ['wrong audience', eddsa(claims({ aud: 'someone-else' }))],
    ['audience array without ours', eddsa(claims({ aud: ['a', 'b'] }))],
    ['no audience', eddsa(claims({ aud: undefined }))],
    ['exp not a number', hs256(claims({ exp: String(now() + 3600) }))],
    ['huge token', `${h}.${base64url('x'.repeat(9000))}.${s}`],
  ];
  for (const [what, tok] of cases) {
    // twice: a failure must not be cached as anything else
    await expectError(both, `Bearer ${tok}`, 401, 'AUTH_INVALID', what);
    await expectError(both, `Bearer ${tok}`, 401, 'AUTH_INVALID', `${what} (again)`);
  }
  // The worker without JWT_SECRET refuses HS256 outright, even if signed "correctly".
  await expectError(edOnly, `Bearer ${hs256({ sub: 'auth-tester', exp: now() + 60 })}`, 401, 'AUTH_INVALID', 'HS256 without JWT_SECRET');
  // Algorithm confusion: an HS256 token keyed with the public key PEM text.
  await expectError(edOnly, `Bearer ${hs256({ sub: 'auth-tester', exp: now() + 60 }, PUBLIC_PEM)}`, 401, 'AUTH_INVALID', 'HS256 keyed by the PEM');
});

test('every token names its subject and expires: no sub, no exp or an unknown access claim is 401 AUTH_INVALID', async () => {
  for (const [what, tok] of [
    ['no sub', hs256(claims({ sub: undefined }))],
    ['empty sub', hs256(claims({ sub: '' }))],
    ['sub a number', hs256(claims({ sub: 42 }))],
    ['sub with a control character', eddsa(claims({ sub: 'a\u0000b' }))],
    ['unknown access claim', hs256(claims({ a: 'admin' }))],
  ]) {
    await expectError(both, `Bearer ${tok}`, 401, 'AUTH_INVALID', what);
  }
});

test('a token that never expires is refused', async () => {
  for (const [what, tok] of [
    ['no exp', hs256(claims({ exp: undefined }))],
    ['no exp (EdDSA)', eddsa(claims({ exp: undefined }))],
  ]) {
    await expectError(both, `Bearer ${tok}`, 401, 'AUTH_INVALID', what);
    await expectError(both, `Bearer ${tok}`, 401, 'AUTH_INVALID', `${what} (again)`);
  }
});

test('a token has one spelling: unused bits set in the last base64url character are refused', async () => {
  const [h, p, s] = hs256(claims()).split('.');
  for (const [what, tok] of [
    // The same signature bytes, spelled differently (HS256: 2 unused bits, EdDSA: 4).
    ['HS256 signature, unused bits set', malleate(hs256(claims()))],
    ['EdDSA signature, unused bits set', malleate(eddsa(claims()))],
    ['payload, unused bits set', malleateSegment(withUnusedBits((pad) => hs256(claims({ pad })), 1), 1)],
    ['padded signature', `${h}.${p}.${s}=`],
  ]) {
    await expectError(both, `Bearer ${tok}`, 401, 'AUTH_INVALID', what);
  }
});

test('a valid token reaches only its own channels', async () => {
  const other = await publish(both, `Bearer ${hs256(claims({ sub: 'someone-else' }))}`);
  assert.equal(other.status, 403, other.text);
  assert.equal(other.body.error.code, 'FORBIDDEN');
});

test('expired or not-yet-valid tokens are 401 AUTH_EXPIRED', async () => {
  for (const [what, tok] of [
    ['HS256 expired a minute ago', hs256(claims({ exp: now() - 60 }))],
    ['EdDSA expired an hour ago', eddsa(claims({ iat: now() - 7200, exp: now() - 3600 }))],
    ['nbf in five minutes', hs256(claims({ nbf: now() + 300 }))],
  ]) {
    await expectError(both, `Bearer ${tok}`, 401, 'AUTH_EXPIRED', what);
  }
  // A forged expired token is invalid first: the signature is checked before the time.
  await expectError(both, `Bearer ${hs256(claims({ exp: now() - 60 }), 'wrong')}`, 401, 'AUTH_INVALID', 'forged and expired');
});

test('bodies over MAX_BODY_BYTES are 413 (declared and chunked); bad JSON is 400', async () => {
  const auth = `Bearer ${hs256(claims())}`;
  const big = JSON.stringify({ channel: 'user:auth-tester:test', data: 'x'.repeat(MAX_BODY * 2) });

  let r = await publish(both, auth, big);
  assert.equal(r.status, 413, r.text);
  assert.equal(r.body.error.code, 'BODY_TOO_LARGE');

  // No content-length: a chunked stream, cut off once it passes the limit.
  const enc = new TextEncoder();
  const chunks = [enc.encode('{"channel":"user:auth-tester:test","data":"'), ...Array(8).fill(enc.encode('y'.repeat(400))), enc.encode('"}')];
  const stream = new ReadableStream({
    pull(controller) {
      const c = chunks.shift();
      if (c) controller.enqueue(c);
      else controller.close();
    },
  });
  r = await publish(both, auth, stream);
  assert.equal(r.status, 413, r.text);
  assert.equal(r.body.error.code, 'BODY_TOO_LARGE');

  // Just under the limit is fine, chunked too.
  const small = enc.encode(JSON.stringify({ channel: 'user:auth-tester:test', data: 'z'.repeat(MAX_BODY - 120) }));
  r = await publish(both, auth, new ReadableStream({ start: (c) => (c.enqueue(small), c.close()) }));
  assert.equal(r.status, 200, r.text);

  r = await publish(both, auth, '{"channel": "user:auth-tester:test",');
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_JSON');

  r = await publish(both, auth, JSON.stringify({ channel: 'bad*channel', data: 1 }));
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 'BAD_REQUEST');

  // Auth comes first: a big body without a token is 401, not 413.
  r = await publish(both, undefined, big);
  assert.equal(r.status, 401, r.text);
});
