// Test harness: a loopback HTTP reverse proxy that injects network faults between a
// client and an upstream server (normally sqld). Node built-ins only.
//
//   import { startFaultProxy } from './support/fault-proxy.mjs';
//   const proxy = await startFaultProxy({ target: sqld.url });
//   proxy.setFaults({ next: ['cut', 'pass', 'lose'] });
//   await fetch(proxy.url + '/v2/pipeline', { method: 'POST', headers, body });
//   proxy.stats();   // { total: 1, cut: 1, pass: 0, ..., log: ['cut'] }
//   await proxy.stop();
//
// Fault kinds (chosen per request, before anything is forwarded):
//   pass       forward and stream the response back unchanged.
//   offline    destroy the client socket at once; nothing is forwarded (client: connection reset).
//   delay      wait `delayMs` (default 100), then behave like pass. If the client has gone
//              away by then, nothing is forwarded.
//   drop       forward nothing, never answer; the socket is held until the client gives up
//              (or stop()).
//   cut        forward (the server executes/commits), then send the status, the headers (with
//              the full content-length) and only the first half of the body, then destroy the
//              socket (client: truncated response).
//   lose       forward (the server commits), read the whole response, then destroy the client
//              socket without sending a byte (a response lost after the commit).
//   duplicate  send the request upstream twice, one after the other, and answer with the
//              second response (the server sees a replay).
//   stall      hold the request (nothing forwarded) until release() — or `stallMs` if set —
//              then forward it even if the client has given up: a commit after the client's
//              timeout. The answer reaches the client only if it is still waiting.
//   error      answer HTTP 500 (a Hrana-shaped error body); nothing is forwarded. The
//              status and body can be set (errorStatus, errorBody): e.g. a 200 whose
//              Hrana result is a RESPONSE_TOO_LARGE error.
//   garbage    forward (the server commits), then answer 200 with a body that is not JSON.
//
// setFaults(spec), spec is one of:
//   'cut'                                  every request gets this kind
//   { kind: 'cut' }                        the same, object form
//   { next: ['cut', 'pass', 'lose'] }      these kinds for the next matching requests, in order
//   { random: { cut: 0.1, lose: 0.1, ... }, seed: 42 }
//                                          each matching request draws from a seeded mulberry32
//                                          PRNG (kinds are tested in a fixed order, so key order
//                                          does not matter); leftover probability is pass.
// Object specs may combine these: a request takes the head of `next` if any, else a random draw
// if `random` is set, else `kind`, else pass. Object specs also accept
//   delayMs: number          wait for the delay kind (default 100)
//   pathPrefix: string       only requests whose path starts with this are faulted
//   stallMs: number          how long stall holds a request (default: until release())
//   bytesPerSec: number      a slow link, for pass and delay: the request is held for its
//                            body's bytes at this rate before it is forwarded (nothing is
//                            forwarded if the client gave up meanwhile), and the answer
//                            for its bytes before it is sent
//   errorStatus: number, errorBody: string
//                            what error answers (default 500 and a JSON error)
//   match: (req) => boolean  only requests for which this returns true are faulted
//                            (req is the http.IncomingMessage: method, url, headers)
//   matchBody: (text) => boolean
//                            only requests whose body (a string) passes are faulted; the body
//                            is read before the kind is chosen (JS API only, like match)
// Non-matching requests pass and do not consume `next` or the PRNG. setFaults() replaces the
// previous spec entirely (and restarts the PRNG from its seed); it does not reset stats.
//
// stalled() → how many requests stall holds now; waitStalled(n) resolves once n are held.
// release() → forwards every held stall request; resolves once each has its upstream answer
//   (the server has committed or refused it).
//
// stats() → { total, pass, offline, delay, drop, cut, lose, duplicate, stall, error, garbage,
//             upstreamErrors, held, log }
//   total: proxied requests (control requests excluded); one count per kind applied;
//   upstreamErrors: forwards that failed (refused, reset, ...); held: sockets currently held by
//   drop; log: the kinds applied, in order (first 10,000).
// resetStats() zeroes them.
//
// Control endpoints (never forwarded; any path under /__proxy/ is reserved):
//   POST /__proxy/faults   body: JSON spec as for setFaults (no match function) → 204
//   GET  /__proxy/faults   the current spec as JSON
//   GET  /__proxy/stats    stats() as JSON
//   POST /__proxy/reset    resetStats() → 204
//
// CLI (for non-JS tests):
//   node tests/support/fault-proxy.mjs --target http://127.0.0.1:P [--port N] [--faults JSON]
// prints one line {"port":N,"url":"http://127.0.0.1:N"} to stdout and runs until SIGTERM/SIGINT.
//
// Upstream unreachable in pass/delay/duplicate/cut mode → 502 (lose still just drops the socket).
import http from 'node:http';
import { pipeline } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const FAULT_KINDS = Object.freeze(['pass', 'offline', 'delay', 'drop', 'cut', 'lose', 'duplicate', 'stall', 'error', 'garbage']);
// New kinds go before 'pass' at the end: the draws of existing seeds stay the same.
const RANDOM_ORDER = ['offline', 'delay', 'drop', 'cut', 'lose', 'duplicate', 'stall', 'error', 'garbage', 'pass'];
const DEFAULT_DELAY_MS = 100;
const LOG_LIMIT = 10_000;
const CONTROL_PREFIX = '/__proxy/';

// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded in either direction.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Small seeded PRNG: mulberry32. Returns () => float in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkKind(kind, where) {
  if (!FAULT_KINDS.includes(kind)) {
    throw new Error(`fault-proxy: unknown fault kind ${JSON.stringify(kind)} in ${where} (kinds: ${FAULT_KINDS.join(', ')})`);
  }
  return kind;
}

/** Validate a setFaults spec and turn it into the internal state. Throws on a bad spec. */
function compileSpec(spec) {
  if (spec == null) spec = 'pass';
  if (typeof spec === 'string') spec = { kind: spec };
  if (typeof spec !== 'object' || Array.isArray(spec)) throw new Error('fault-proxy: spec must be a kind string or an object');
  const known = new Set(['kind', 'next', 'random', 'seed', 'delayMs', 'stallMs', 'bytesPerSec', 'errorStatus', 'errorBody', 'pathPrefix', 'match', 'matchBody']);
  for (const k of Object.keys(spec)) if (!known.has(k)) throw new Error(`fault-proxy: unknown spec field ${JSON.stringify(k)}`);
  const kind = spec.kind === undefined ? 'pass' : checkKind(spec.kind, 'kind');
  let next = [];
  if (spec.next !== undefined) {
    if (!Array.isArray(spec.next)) throw new Error('fault-proxy: next must be an array of kinds');
    next = spec.next.map((k, i) => checkKind(k, `next[${i}]`));
  }
  let random = null;
  if (spec.random !== undefined) {
    if (typeof spec.random !== 'object' || spec.random === null) throw new Error('fault-proxy: random must be an object { kind: probability }');
    let sum = 0;
    random = {};
    for (const [k, p] of Object.entries(spec.random)) {
      checkKind(k, 'random');
      if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw new Error(`fault-proxy: random.${k} must be a probability in [0, 1]`);
      random[k] = p;
      sum += p;
    }
    if (sum > 1 + 1e-9) throw new Error(`fault-proxy: random probabilities sum to ${sum} > 1`);
  }
  const seed = spec.seed === undefined ? 1 : spec.seed;
  if (!Number.isInteger(seed)) throw new Error('fault-proxy: seed must be an integer');
  const delayMs = spec.delayMs === undefined ? DEFAULT_DELAY_MS : spec.delayMs;
  if (typeof delayMs !== 'number' || !(delayMs >= 0)) throw new Error('fault-proxy: delayMs must be a number >= 0');
  if (spec.pathPrefix !== undefined && typeof spec.pathPrefix !== 'string') throw new Error('fault-proxy: pathPrefix must be a string');
  if (spec.match !== undefined && typeof spec.match !== 'function') throw new Error('fault-proxy: match must be a function');
  if (spec.matchBody !== undefined && typeof spec.matchBody !== 'function') throw new Error('fault-proxy: matchBody must be a function');
  const bytesPerSec = spec.bytesPerSec === undefined ? null : spec.bytesPerSec;
  if (bytesPerSec !== null && (typeof bytesPerSec !== 'number' || !(bytesPerSec > 0))) throw new Error('fault-proxy: bytesPerSec must be a number > 0');
  const stallMs = spec.stallMs === undefined ? null : spec.stallMs;
  if (stallMs !== null && (typeof stallMs !== 'number' || !(stallMs >= 0))) throw new Error('fault-proxy: stallMs must be a number >= 0');
  return {
    kind,
    next,
    random,
    rng: random ? mulberry32(seed) : null,
    delayMs,
    stallMs,
    bytesPerSec,
    errorStatus: spec.errorStatus ?? 500,
    errorBody: spec.errorBody ?? JSON.stringify({ error: 'fault-proxy: injected internal server error', code: 'INTERNAL' }),
    pathPrefix: spec.pathPrefix,
    match: spec.match,
    matchBody: spec.matchBody,
    // What GET /__proxy/faults reports (the original spec minus functions).
    json: {
      kind,
      next: [...next],
      ...(random ? { random, seed } : {}),
      delayMs,
      ...(stallMs !== null ? { stallMs } : {}),
      ...(bytesPerSec !== null ? { bytesPerSec } : {}),
      ...(spec.pathPrefix !== undefined ? { pathPrefix: spec.pathPrefix } : {}),
      ...(spec.match ? { match: '[function]' } : {}),
      ...(spec.matchBody ? { matchBody: '[function]' } : {}),
    },
  };
}

function freshStats() {
  const s = { total: 0 };
  for (const k of FAULT_KINDS) s[k] = 0;
  s.upstreamErrors = 0;
  s.log = [];
  return s;
}

/** [name, value, name, value, ...] without hop-by-hop headers (and anything `drop` names). */
function filterRawHeaders(raw, drop = []) {
  const out = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (HOP_BY_HOP.has(name) || drop.includes(name)) continue;
    out.push(raw[i], raw[i + 1]);
  }
  return out;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('client closed before the request body was complete'));
    });
  });
}

function sendJson(res, status, value) {
  const body = value === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(value) + '\n');
  const headers = { 'cache-control': 'no-store', 'content-length': body.length };
  if (value !== undefined) headers['content-type'] = 'application/json; charset=utf-8';
  res.writeHead(status, headers);
  res.end(body);
}

/** Destroy a client socket; with RST when the platform supports it (connection reset). */
function resetSocket(socket) {
  if (!socket || socket.destroyed) return;
  try {
    if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
    else socket.destroy();
  } catch {
    socket.destroy();
  }
}

/**
 * Start the proxy on 127.0.0.1 (port 0 = a free port).
 * @param {{ target: string, port?: number, faults?: any }} opts
 * @returns {Promise<{ url: string, port: number, target: string,
 *   setFaults(spec: any): void, stats(): object, resetStats(): void, stop(): Promise<void> }>}
 */
export async function startFaultProxy({ target, port = 0, faults } = {}) {
  if (!target) throw new Error('startFaultProxy: target is required');
  const upstream = new URL(target);
  if (upstream.protocol !== 'http:') throw new Error(`startFaultProxy: only http:// targets are supported (got ${target})`);
  const basePath = upstream.pathname.replace(/\/+$/, '');
  const agent = new http.Agent({ keepAlive: true });

  let state = compileSpec(faults);
  let stats = freshStats();
  const sockets = new Set();
  const held = new Set();
  let stopping = false;

  function setFaults(spec) {
    state = compileSpec(spec);
  }

  function matches(req, body) {
    if (state.pathPrefix !== undefined && !req.url.startsWith(state.pathPrefix)) return false;
    try {
      if (state.match && !state.match(req)) return false;
      if (state.matchBody && !state.matchBody(body.toString('utf8'))) return false;
    } catch {
      return false;
    }
    return true;
  }

  function chooseKind(req, body) {
    if (!matches(req, body)) return 'pass';
    if (state.next.length > 0) return state.next.shift();
    if (state.random) {
      const r = state.rng();
      let acc = 0;
      for (const k of RANDOM_ORDER) {
        acc += state.random[k] ?? 0;
        if (r < acc) return k;
      }
      return 'pass';
    }
    return state.kind;
  }

  // Requests held by stall: each waits for its release (release() or stallMs).
  const stalls = new Set();
  const stallWaiters = [];
  function noteStalls() {
    for (let i = stallWaiters.length - 1; i >= 0; i--) {
      if (stalls.size >= stallWaiters[i].n) stallWaiters.splice(i, 1)[0].resolve();
    }
  }
  function stallUntilReleased() {
    let entry;
    const released = new Promise((resolve) => {
      entry = { release: resolve };
      entry.finished = new Promise((f) => (entry.finish = f));
      stalls.add(entry);
      noteStalls();
      if (state.stallMs !== null) setTimeout(resolve, state.stallMs).unref?.();
    });
    return { entry, released: released.then(() => stalls.delete(entry)) };
  }

  /** One upstream round trip with a buffered request body. Resolves with the IncomingMessage. */
  function forward(req, body) {
    return new Promise((resolve, reject) => {
      const headers = filterRawHeaders(req.rawHeaders, ['host', 'content-length']);
      headers.push('host', upstream.host, 'content-length', String(body.length));
      const up = http.request({
        agent,
        host: upstream.hostname,
        port: upstream.port || 80,
        method: req.method,
        path: basePath + req.url,
        headers,
      });
      up.on('response', resolve);
      up.on('error', reject);
      up.end(body);
    });
  }

  function drain(res) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('upstream response aborted')));
    });
  }

  function badGateway(res, err) {
    stats.upstreamErrors++;
    if (res.destroyed || res.socket?.destroyed) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const msg = Buffer.from(`502 fault-proxy: upstream error: ${err?.message ?? err}\n`);
    res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': msg.length });
    res.end(msg);
  }

  async function handleControl(req, res) {
    const path = req.url.split('?')[0];
    try {
      if (path === '/__proxy/faults' && req.method === 'POST') {
        const body = (await readBody(req)).toString('utf8');
        let spec;
        try {
          spec = body.trim() === '' ? 'pass' : JSON.parse(body);
          setFaults(spec);
        } catch (err) {
          return sendJson(res, 400, { error: String(err?.message ?? err) });
        }
        return sendJson(res, 204);
      }
      if (path === '/__proxy/faults' && req.method === 'GET') return sendJson(res, 200, { ...state.json, next: [...state.next] });
      if (path === '/__proxy/stats' && req.method === 'GET') return sendJson(res, 200, snapshot());
      if (path === '/__proxy/reset' && req.method === 'POST') {
        await readBody(req);
        stats = freshStats();
        return sendJson(res, 204);
      }
      return sendJson(res, 404, { error: `no control endpoint ${req.method} ${path}` });
    } catch (err) {
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, { error: String(err?.message ?? err) });
    }
  }

  async function handle(req, res) {
    req.on('error', () => {});
    res.on('error', () => {});
    if (req.url.startsWith(CONTROL_PREFIX)) return handleControl(req, res);

    // A body matcher needs the body before the kind is chosen.
    let body;
    if (state.matchBody) {
      try {
        body = await readBody(req);
      } catch {
        return; // client went away mid-request
      }
    }
    const kind = chooseKind(req, body);
    stats.total++;
    stats[kind]++;
    if (stats.log.length < LOG_LIMIT) stats.log.push(kind);
    const socket = req.socket;

    if (kind === 'offline') {
      resetSocket(socket);
      return;
    }
    if (kind === 'drop') {
      held.add(socket);
      socket.once('close', () => held.delete(socket));
      req.resume(); // read and discard; never answer
      return;
    }
    if (kind === 'error') {
      req.resume();
      const msg = Buffer.from(state.errorBody);
      res.writeHead(state.errorStatus, { 'content-type': 'application/json', 'content-length': msg.length });
      res.end(msg);
      return;
    }

    if (body === undefined) {
      try {
        body = await readBody(req);
      } catch {
        return; // client went away mid-request
      }
    }
    if (kind === 'delay') {
      await sleep(state.delayMs);
      if (socket.destroyed || stopping) return;
    }
    const slow = state.bytesPerSec !== null && (kind === 'pass' || kind === 'delay');
    if (slow) {
      await sleep((body.length * 1000) / state.bytesPerSec);
      if (socket.destroyed || stopping) return;
    }
    if (kind === 'stall') {
      const { entry, released } = stallUntilReleased();
      await released;
      if (stopping) return entry.finish();
      // Forwarded whether or not the client is still there: a late commit.
      await forward(req, body).then(
        (upRes) => {
          if (socket.destroyed) return drain(upRes).catch(() => {});
          res.writeHead(upRes.statusCode, upRes.statusMessage, filterRawHeaders(upRes.rawHeaders));
          return new Promise((resolve) => pipeline(upRes, res, () => resolve()));
        },
        (err) => badGateway(res, err),
      );
      entry.finish();
      return;
    }

    if (kind === 'pass' || kind === 'delay' || kind === 'duplicate') {
      let upRes;
      try {
        if (kind === 'duplicate') {
          const first = await forward(req, body);
          await drain(first);
        }
        upRes = await forward(req, body);
      } catch (err) {
        return badGateway(res, err);
      }
      if (socket.destroyed) {
        upRes.resume();
        return;
      }
      if (slow) {
        let full;
        try {
          full = await drain(upRes);
        } catch (err) {
          return badGateway(res, err);
        }
        await sleep((full.length * 1000) / state.bytesPerSec);
        if (socket.destroyed || stopping) return;
        const headers = filterRawHeaders(upRes.rawHeaders, ['content-length', 'transfer-encoding']);
        headers.push('content-length', String(full.length));
        res.writeHead(upRes.statusCode, upRes.statusMessage, headers);
        res.end(full);
        return;
      }
      res.writeHead(upRes.statusCode, upRes.statusMessage, filterRawHeaders(upRes.rawHeaders));
      pipeline(upRes, res, (err) => {
        if (err) {
          upRes.destroy();
          res.destroy();
        }
      });
      return;
    }

    // cut / lose: the server completes the request; the client does not get (all of) the answer.
    let upRes;
    let full;
    try {
      upRes = await forward(req, body);
      full = await drain(upRes);
    } catch (err) {
      if (kind === 'lose') {
        stats.upstreamErrors++;
        resetSocket(socket);
        return;
      }
      return badGateway(res, err);
    }
    if (kind === 'lose') {
      resetSocket(socket);
      return;
    }
    if (kind === 'garbage') {
      if (socket.destroyed) return;
      const junk = Buffer.from('<html>502 Bad Gateway</html>\n\u0000\u00ff not json');
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': junk.length });
      res.end(junk);
      return;
    }
    // cut: headers announce the full length, only the first half follows, then the socket dies.
    if (socket.destroyed) return;
    const half = full.subarray(0, Math.floor(full.length / 2));
    const headers = filterRawHeaders(upRes.rawHeaders, ['content-length']);
    if (full.length > 0) headers.push('content-length', String(full.length));
    else headers.push('transfer-encoding', 'chunked'); // nothing to halve: an unterminated chunked body
    res.writeHead(upRes.statusCode, upRes.statusMessage, headers);
    res.flushHeaders();
    res.write(half, () => socket.destroy());
    if (half.length === 0) {
      // write('') may not call back on every Node version; make sure the socket dies.
      setImmediate(() => socket.destroy());
    }
  }

  const server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 5_000 }, (req, res) => {
    handle(req, res).catch((err) => {
      // Never crash the test process because of one request.
      try {
        if (!res.headersSent && !res.destroyed) badGateway(res, err);
        else res.destroy();
      } catch {
        /* ignore */
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, s) => {
    if (s.writable && !s.destroyed) {
      try {
        s.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      } catch {
        /* ignore */
      }
    }
    s.destroy();
  });
  server.on('error', () => {});

  await new Promise((resolve, reject) => {
    const onErr = (e) => reject(e);
    server.once('error', onErr);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', onErr);
      resolve();
    });
  });
  const actualPort = server.address().port;

  function snapshot() {
    return { ...stats, held: held.size, log: [...stats.log] };
  }

  let stopped;
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    target: upstream.origin + basePath,
    setFaults,
    stalled: () => stalls.size,
    waitStalled(n = 1) {
      return new Promise((resolve) => {
        stallWaiters.push({ n, resolve });
        noteStalls();
      });
    },
    async release() {
      const entries = [...stalls];
      for (const e of entries) e.release();
      await Promise.all(entries.map((e) => e.finished));
    },
    stats: snapshot,
    resetStats() {
      stats = freshStats();
    },
    /** Stop listening and destroy every client socket (held ones included) and upstream socket. */
    stop() {
      if (!stopped) {
        stopping = true;
        stopped = new Promise((resolve) => {
          for (const e of stalls) e.release();
          server.close(() => resolve());
          server.closeAllConnections?.();
          for (const s of sockets) s.destroy();
          agent.destroy();
        });
      }
      return stopped;
    },
  };
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const [name, inline] = eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (name === '--target') out.target = value();
    else if (name === '--port') out.port = Number(value());
    else if (name === '--faults') out.faults = JSON.parse(value());
    else if (name === '--help' || name === '-h') out.help = true;
    else throw new Error(`fault-proxy: unknown argument ${a}`);
  }
  return out;
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  if (args.help || !args.target) {
    process.stderr.write('usage: node tests/support/fault-proxy.mjs --target http://127.0.0.1:PORT [--port N] [--faults JSON]\n');
    process.exit(args.help ? 0 : 2);
  }
  const proxy = await startFaultProxy(args);
  process.stdout.write(JSON.stringify({ port: proxy.port, url: proxy.url }) + '\n');
  let exiting = false;
  const shutdown = async () => {
    if (exiting) return;
    exiting = true;
    await proxy.stop();
    process.exit(0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  main().catch((err) => {
    process.stderr.write(`fault-proxy: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}
// Exported for tests that want the path of this file.
export const FAULT_PROXY_PATH = fileURLToPath(import.meta.url);
