// Test harness: a tiny static file server on a free loopback port. Node built-ins only.
//
//   import { startStaticServer } from './support/static-server.mjs';
//   const web = await startStaticServer({ root: REPO_ROOT });
//   await page.goto(web.url + '/www/dashboard/index.html');
//   await web.close();
//
// `routes` (optional) maps an exact URL path to a handler `(req, res) => void` or to a
// fixed response `{ status?, type?, headers?, body }`; routes win over files.
// GET and HEAD only. Paths resolving outside `root` get 403; anything missing, 404.
// A directory serves its index.html. No caching, so a rebuilt pkg/ is always picked up.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

export const MIME_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.ts': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

function send(req, res, status, body, headers = {}) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(String(body ?? ''));
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': buf.length,
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(req.method === 'HEAD' ? undefined : buf);
}

/** True when `target` is `root` itself or inside it (both absolute, resolved). */
function isInside(root, target) {
  return target === root || target.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/**
 * @param {{ root: string, routes?: Record<string, ((req: http.IncomingMessage, res: http.ServerResponse) => void) | { status?: number, type?: string, headers?: Record<string,string>, body: string | Buffer }> }} opts
 * @returns {Promise<{ url: string, port: number, close(): Promise<void> }>}
 */
export async function startStaticServer({ root, routes = {} } = {}) {
  if (!root) throw new Error('startStaticServer: root is required');
  const rootDir = fs.realpathSync(path.resolve(root));

  const server = http.createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      if (!res.headersSent) send(req, res, 500, `500 ${err?.message ?? err}\n`);
      else res.destroy();
    }
  });

  function handle(req, res) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(req, res, 405, '405 method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    } catch {
      send(req, res, 400, '400 bad request\n');
      return;
    }
    if (pathname.includes('\0')) {
      send(req, res, 400, '400 bad request\n');
      return;
    }

    const route = Object.hasOwn(routes, pathname) ? routes[pathname] : undefined;
    if (typeof route === 'function') {
      route(req, res);
      return;
    }
    if (route) {
      const headers = { ...(route.headers ?? {}) };
      if (route.type) headers['content-type'] = route.type;
      send(req, res, route.status ?? 200, route.body, headers);
      return;
    }

    // Resolve against root and refuse anything that lands outside it (including via symlinks).
    let file = path.resolve(rootDir, '.' + pathname);
    if (!isInside(rootDir, file)) {
      send(req, res, 403, '403 forbidden\n');
      return;
    }
    let stat;
    try {
      const real = fs.realpathSync(file);
      if (!isInside(rootDir, real)) {
        send(req, res, 403, '403 forbidden\n');
        return;
      }
      file = real;
      stat = fs.statSync(file);
      if (stat.isDirectory()) {
        file = path.join(file, 'index.html');
        stat = fs.statSync(file);
      }
    } catch {
      send(req, res, 404, '404 not found\n');
      return;
    }
    if (!stat.isFile()) {
      send(req, res, 404, '404 not found\n');
      return;
    }
    const type = MIME_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
    res.writeHead(200, { 'content-type': type, 'content-length': stat.size, 'cache-control': 'no-store' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = fs.createReadStream(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  // Keep-alive sockets from a browser would otherwise hold close() open.
  const sockets = new Set();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();

  let closing;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close() {
      closing ??= new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}
