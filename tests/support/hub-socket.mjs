// A raw WebSocket client for the edge Worker's real-time hub (GET /subscribe), for tests:
// it sends and records frames exactly as written, with no client library in between.
// Uses the `ws` package (Node 20 has no global WebSocket).
//
//   const c = hubSocket(worker.wsBase, token, { channels: 'user:alice:*', since: '0' });
//   await c.opened;                       // rejects with {status, body} for a refused upgrade
//   await c.next((m) => m.type === 'ready');
//   const err = await c.ask({ type: 'subscribe', channels: ['*'] }, (m) => m.type === 'error');
//   await c.close();
import { WebSocket } from 'ws';

const WAIT_MS = 10_000;

/**
 * Opens `<wsBase>/subscribe?<query>` with `token` as `access_token` (none when undefined).
 * The handle: `ws`, `frames` (parsed, in order), `closed`/`closeCode`, `opened`,
 * `next(pred, from = 0, ms)` (the first frame after index `from` matching `pred`),
 * `send(frame)` (an object as JSON, a string as is), `ask(frame, pred)` (send, then the
 * first later frame matching `pred`), `events(channel?)` and `close()`.
 */
export function hubSocket(wsBase, token, query = {}) {
  const q = new URLSearchParams(query);
  if (token !== undefined) q.set('access_token', token);
  const ws = new WebSocket(`${wsBase}/subscribe?${q}`);
  const c = { ws, frames: [], waiters: [], closed: false, closeCode: undefined };
  ws.on('message', (data, isBinary) => {
    const m = JSON.parse(isBinary ? Buffer.from(data).toString() : data.toString());
    c.frames.push(m);
    for (const w of [...c.waiters]) if (w.pred(m)) w.resolve(m);
  });
  ws.on('close', (code) => {
    c.closed = true;
    c.closeCode = code;
  });
  c.opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode} ${body}`), { status: res.statusCode, body })));
    });
  });
  c.opened.catch(() => {});
  c.next = (pred, from = 0, ms = WAIT_MS) => {
    const seen = c.frames.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (m) => (clearTimeout(t), c.waiters.splice(c.waiters.indexOf(w), 1), resolve(m)) };
      const t = setTimeout(() => {
        c.waiters.splice(c.waiters.indexOf(w), 1);
        reject(new Error(`no matching frame within ${ms} ms; frames: ${JSON.stringify(c.frames).slice(0, 2000)}`));
      }, ms);
      c.waiters.push(w);
    });
  };
  c.send = (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  c.ask = (obj, pred) => {
    const from = c.frames.length;
    c.send(obj);
    return c.next(pred, from);
  };
  c.events = (channel) => c.frames.filter((m) => m.type === 'event' && (channel === undefined || m.channel === channel));
  c.close = () =>
    new Promise((resolve) => {
      if (c.closed || ws.readyState === WebSocket.CLOSED) return resolve();
      ws.once('close', resolve);
      ws.close(1000, 'bye');
    });
  return c;
}
