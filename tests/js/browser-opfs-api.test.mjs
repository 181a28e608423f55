// Durable replicas in a real browser, the API side (the durability side:
// browser-opfs.test.mjs), in headless Chromium against a real sqld (auth on):
//   - change events for a local write, another tab's write and a pull;
//   - a client made inside the application's own worker runs the store in place;
//   - the API and errors are the Node ones;
//   - edgesync/replica: clients made while the page's module loads (its worker starts at once);
//   - edgesync/replica, pre-bundled: in place in a worker (its lazy chunk), one LibsqlError class;
//   - storage full (a small quota via CDP): STORAGE_FULL, the database intact;
//   - no OPFS (an insecure origin): memory, said so (status().persistent, an event).
//
//   node --test tests/js/browser-opfs-api.test.mjs
import { describe, before, after, afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient as libsql } from '@libsql/client';
import { createClient } from 'edgesync';
import { startSqld, REPO_ROOT } from '../support/sqld.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { PAGES, launchProfile, openTab, profileDir } from '../support/chromium.mjs';
import { replicaHelpers } from '../support/browser-replica.mjs';

const STEP = 120_000;
let sqld;
let server;
let web;
/** Uncaught errors and console errors of every tab; must stay empty. */
const problems = [];

/**
 * A module worker of "the application" that opens the store itself (in place). The
 * package is imported after `onmessage` is set: its browser entry awaits the wasm
 * module at top level, and a message that comes meanwhile would find no handler.
 */
const APP_WORKER = `const loading = import("/pkg/web.js");
let db;
onmessage = async (ev) => {
  const { id, op, config, sql, args } = ev.data;
  const edgesync = await loading;
  try {
    if (op === "open") {
      db = edgesync.createClient(config);
      db.on("change", (d) => postMessage({ event: "change", tables: d.tables }));
      postMessage({ id, ok: true });
    } else if (op === "execute") {
      const rs = await db.execute(sql, args);
      postMessage({ id, ok: true, rows: rs.rows.map((r) => Array.from({ length: r.length }, (_, i) => r[i])), status: db.status() });
    }
  } catch (e) {
    postMessage({ id, ok: false, code: e.code, message: e.message });
  }
};`;

before(async () => {
  sqld = await startSqld({ auth: true });
  server = libsql({ url: sqld.url, authToken: sqld.tokens.rw });
  web = await startStaticServer({
    root: REPO_ROOT,
    routes: { ...PAGES, '/app-worker.js': { type: 'text/javascript; charset=utf-8', body: APP_WORKER } },
  });
});

after(async () => {
  server?.close();
  await web?.close().catch((e) => console.error('static server close:', e));
  await sqld?.stop().catch((e) => console.error('sqld.stop:', e));
});

const pageUrl = () => `${web.url}/edgesync-test.html`;

/** Browsers of the running test, closed after it whatever happened. */
const browsers = new Set();
async function launch(dir = profileDir(), args = []) {
  const b = await launchProfile(dir, args);
  browsers.add(b);
  return b;
}
afterEach(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  browsers.clear();
});
const { openDb, waitFor, syncAll } = replicaHelpers(() => ({ sqld, server }));

describe('browser replicas in OPFS: the API (Chromium, real sqld)', { timeout: 6 * STEP }, () => {
  it('change events reach every tab for a local write, another tab\'s write and a pull', { timeout: STEP }, async () => {
    const browser = await launch();
    const a = await openTab(browser, pageUrl(), problems);
    const b = await openTab(browser, pageUrl(), problems);
    await openDb(a, 'live.db');
    await openDb(b, 'live.db');
    await a.evaluate(() => window.db.execute('create table if not exists notes (id integer primary key, body text)'));
    await a.evaluate(() => window.db.replicate('notes'));
    await b.evaluate(() => window.db.replicate('notes'));
    await a.evaluate(() => window.db.sync());
    const seen = (t, table) => t.evaluate((table) => window.changes.some((c) => c.includes(table)), table);
    const clear = () => Promise.all([a, b].map((t) => t.evaluate(() => (window.changes = []))));

    await clear();
    await a.evaluate(() => window.db.execute("insert into notes (body) values ('from a')"));
    await waitFor('a local write in both tabs', async () => (await seen(a, 'notes')) && (await seen(b, 'notes')));

    await clear();
    await b.evaluate(() => window.db.execute("update notes set body = 'from b' where id = 1"));
    await waitFor("another tab's write in both tabs", async () => (await seen(a, 'notes')) && (await seen(b, 'notes')));

    // A pull: a Node replica writes through the server; tab b syncs.
    await clear();
    const node = createClient({ url: ':memory:', syncUrl: sqld.url, authToken: sqld.tokens.rw });
    await node.execute('create table notes (id integer primary key, body text)');
    node.replicate('notes');
    await node.sync();
    await node.execute("insert into notes (id, body) values (100, 'from node')");
    await node.sync();
    node.close();
    const pulled = await b.evaluate(() => window.db.sync());
    assert.ok(pulled.changesApplied >= 1);
    await waitFor('a pull in both tabs', async () => (await seen(a, 'notes')) && (await seen(b, 'notes')));
    assert.deepEqual(await a.evaluate(async () => (await window.db.execute('select body from notes where id = 100')).rows[0].body), 'from node');
    // Reads fire nothing.
    await clear();
    await a.evaluate(() => window.db.execute('select * from notes'));
    await sleep(200);
    assert.deepEqual(await a.evaluate(() => window.changes), []);
    await browser.close();
  });

  it("a client made inside the application's own worker runs the store there, shared with the page's tabs", { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, pageUrl(), problems);
    const out = await tab.evaluate(async (config) => {
      const w = new Worker('/app-worker.js', { type: 'module' });
      let next = 1;
      const changes = [];
      const waiting = new Map();
      w.onmessage = (ev) => {
        if (ev.data.event === 'change') changes.push(ev.data.tables);
        else waiting.get(ev.data.id)?.(ev.data);
      };
      const ask = (m) => new Promise((resolve) => {
        const id = next++;
        waiting.set(id, resolve);
        w.postMessage({ id, ...m });
      });
      // The worker opens first: its client owns the store, in place.
      const opened = await ask({ op: 'open', config });
      await ask({ op: 'execute', sql: 'create table if not exists kv (k text primary key, v text)' });
      await ask({ op: 'execute', sql: "insert into kv values ('from', 'worker')" });
      const db = window.edgesync.createClient(config);
      const fromPage = (await db.execute("select v from kv where k = 'from'")).rows[0].v;
      await db.execute("insert into kv values ('page', 'yes')");
      const inWorker = await ask({ op: 'execute', sql: "select v from kv where k = 'page'" });
      await new Promise((r) => setTimeout(r, 300));
      return { opened: opened.ok, fromPage, inWorker: inWorker.rows, workerOwns: inWorker.status.owner, pageOwns: db.status().owner, workerSawPageWrite: changes.some((t) => t.includes('kv')) };
    }, { url: 'file:inplace.db' });
    assert.deepEqual(out, { opened: true, fromPage: 'worker', inWorker: [['yes']], workerOwns: true, pageOwns: false, workerSawPageWrite: true });
    await browser.close();
  });

  it('the API and its errors are the Node ones', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, pageUrl(), problems);
    const out = await tab.evaluate(async () => {
      const { createClient, EdgesyncError } = window.edgesync;
      const err = async (fn) => {
        try {
          await fn();
          return 'no error';
        } catch (e) {
          return { code: e.code, step: e.statementIndex, isEdgesyncError: e instanceof EdgesyncError };
        }
      };
      const syncErr = (fn) => {
        try {
          fn();
          return 'no error';
        } catch (e) {
          return { code: e.code, isEdgesyncError: e instanceof EdgesyncError };
        }
      };
      const db = createClient({ url: 'file:api.db' });
      await db.execute('create table t (id integer primary key, name text unique, big integer, b blob)');
      const ins = await db.execute({ sql: 'insert into t (name, big, b) values (?, ?, ?)', args: ['x', 2n ** 62n, new Uint8Array([1, 2, 3])] });
      const rs = await db.execute('select id, name, big, b from t');
      const row = rs.rows[0];
      const batch = await db.batch(['insert into t (name) values (\'y\')', { sql: 'select count(*) as n from t', args: [] }], 'write');
      return {
        ins: [ins.rowsAffected, ins.lastInsertRowid],
        columns: rs.columns,
        columnTypes: rs.columnTypes,
        row: [row.id, row[1], row.big, row.b instanceof ArrayBuffer ? Array.from(new Uint8Array(row.b)) : 'not an ArrayBuffer', row.length],
        json: JSON.stringify(rs.toJSON()),
        batch: batch[1].rows[0].n,
        syntax: await err(() => db.execute('selec 1')),
        constraint: await err(() => db.batch(["insert into t (name) values ('z')", "insert into t (name) values ('x')"], 'write')),
        afterFailedBatch: (await db.execute("select count(*) as n from t where name = 'z'")).rows[0].n,
        manualTx: await err(() => db.execute('BEGIN')),
        badArg: await err(() => db.execute('select ?', [() => 1])),
        nan: await err(() => db.execute('select ?', [NaN])),
        schema: await err(() => db.replicate('nope')),
        badUrl: syncErr(() => createClient({ url: 'file:../up.db' })),
        badSync: syncErr(() => createClient({ url: 'file:x.db', syncUrl: 'ftp://nope' })),
        badFetch: syncErr(() => createClient({ url: 'file:x.db', fetch: () => 0 })),
        closed: (db.close(), await err(() => db.execute('select 1'))),
      };
    });
    assert.deepEqual(out.ins, [1, 1n]);
    assert.deepEqual(out.columns, ['id', 'name', 'big', 'b']);
    assert.deepEqual(out.columnTypes, ['INTEGER', 'TEXT', 'INTEGER', 'BLOB']);
    assert.deepEqual(out.row, [1, 'x', 2n ** 62n, [1, 2, 3], 4]);
    assert.match(out.json, /"4611686018427387904"/);
    assert.equal(out.batch, 2);
    assert.deepEqual(out.syntax, { code: 'SQLITE_ERROR', step: undefined, isEdgesyncError: true });
    assert.deepEqual(out.constraint, { code: 'SQLITE_CONSTRAINT', step: 1, isEdgesyncError: true });
    assert.equal(out.afterFailedBatch, 0);
    assert.equal(out.manualTx.code, 'INVALID_OPERATION');
    assert.equal(out.badArg.code, 'INVALID_ARGUMENT');
    // A RangeError, as from @libsql/client (not a LibsqlError).
    assert.deepEqual(out.nan, { code: undefined, step: undefined, isEdgesyncError: false });
    assert.equal(out.schema.code, 'SCHEMA_ERROR');
    assert.deepEqual(out.badUrl, { code: 'INVALID_ARGUMENT', isEdgesyncError: true });
    // An unsupported scheme, in @libsql/client's words.
    assert.equal(out.badSync.code, 'URL_SCHEME_NOT_SUPPORTED');
    assert.equal(out.badFetch.code, 'INVALID_ARGUMENT');
    assert.equal(out.closed.code, 'CLIENT_CLOSED');
    await browser.close();
  });

  it('edgesync/replica in a page: clients made while its module loads work, or fail their calls with the config error', { timeout: STEP }, async () => {
    // The page starts the worker at once and hands it the compiled module (or the
    // config's error) once loaded: both paths, from createClient made right after import.
    const browser = await launch();
    const tab = await openTab(browser, pageUrl(), problems);
    const out = await tab.evaluate(async () => {
      const m = await import('/pkg/entries/replica.web.js');
      const code = async (fn) => {
        try {
          await fn();
          return 'no error';
        } catch (e) {
          return e.code;
        }
      };
      const good = m.createClient({ url: 'file:loading.db' });
      const badUrl = await code(() => m.createClient({ url: 'file:../up.db' }).execute('select 1'));
      const badSync = await code(() => m.createClient({ url: 'file:x.db', syncUrl: 'ftp://nope' }).execute('select 1'));
      await good.execute('create table if not exists t (id integer primary key, v text)');
      await good.execute("insert into t (v) values ('a')");
      const rows = (await good.execute('select v from t')).rows.map((r) => r.v);
      await good.close();
      return { badUrl, badSync, rows };
    });
    assert.equal(out.badUrl, 'INVALID_ARGUMENT');
    assert.equal(out.badSync, 'URL_SCHEME_NOT_SUPPORTED');
    assert.deepEqual(out.rows, ['a']);
    await browser.close();
  });

  it('edgesync/replica, pre-bundled: in-place in an application worker (its lazy host chunk), and one LibsqlError class with edgesync', { timeout: STEP }, async () => {
    // The entry is one file plus chunks (scripts/lib/bundle-entry.mjs): the host a
    // worker runs in place is a lazy chunk sharing the entry's modules, and the error
    // classes stay the package's wasm-errors.js, shared with the unbundled `edgesync`.
    const browser = await launch();
    const tab = await openTab(browser, pageUrl(), problems);
    const out = await tab.evaluate(async () => {
      const src = `const loading = import("${location.origin}/pkg/entries/replica.web.js");
onmessage = async () => {
  const m = await loading;
  const db = m.createClient({ url: "file:bundled-inplace.db" });
  try {
    await db.execute("create table if not exists t (id integer primary key, v text)");
    await db.execute("insert into t (v) values ('w')");
    const rows = (await db.execute("select v from t")).rows.map((r) => r.v);
    let code;
    try { await db.execute("select * from missing_table"); } catch (e) { code = e.code; }
    // status() is the last state the host sent (at most every 50 ms).
    for (let i = 0; i < 100 && !db.status().owner; i++) await new Promise((r) => setTimeout(r, 50));
    const s = db.status();
    postMessage({ rows, code, persistent: s.persistent, owner: s.owner });
  } catch (e) {
    postMessage({ error: String(e && e.stack || e) });
  }
  db.close();
};`;
      const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })), { type: 'module' });
      const inWorker = await new Promise((resolve) => {
        setTimeout(() => resolve({ error: 'no answer from the worker in 30 s' }), 30_000);
        w.onmessage = (ev) => resolve(ev.data);
        w.onerror = (ev) => resolve({ error: ev.message });
        w.postMessage('go');
      });
      w.terminate();
      const replica = await import('/pkg/entries/replica.web.js');
      const full = await import('/pkg/web.js');
      const db = replica.createClient({ url: 'file:bundled-page.db' });
      let err;
      try {
        await db.execute('select * from missing_table');
      } catch (e) {
        err = e;
      }
      await db.close();
      return {
        inWorker,
        sameClass: replica.LibsqlError === full.LibsqlError,
        instance: err instanceof full.LibsqlError,
        code: err?.code,
      };
    });
    assert.deepEqual(out.inWorker, { rows: ['w'], code: 'SQLITE_ERROR', persistent: true, owner: true });
    assert.equal(out.sameClass, true, 'edgesync/replica and edgesync export one LibsqlError');
    assert.equal(out.instance, true, "a browser replica's error is an edgesync LibsqlError");
    assert.equal(out.code, 'SQLITE_ERROR');
    await browser.close();
  });

  it('storage full: STORAGE_FULL, the database intact, nothing acknowledged lost', { timeout: STEP }, async () => {
    const browser = await launch();
    let tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'full.db');
    await tab.evaluate(() => window.db.execute('create table if not exists big (id integer primary key, b blob not null)'));
    const cdp = await browser.newCDPSession(tab);
    const { usage } = await cdp.send('Storage.getUsageAndQuota', { origin: web.url });
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: web.url, quotaSize: usage + 2 * 1024 * 1024 });
    const out = await tab.evaluate(async () => {
      const acked = [];
      let error;
      for (let i = 0; i < 400 && !error; i++) {
        try {
          await window.db.execute('insert into big (id, b) values (?, randomblob(40000))', [i]);
          acked.push(i);
        } catch (e) {
          error = { code: e.code, retryable: e.retryable, message: e.message };
        }
      }
      const integrity = (await window.db.execute('pragma integrity_check')).rows[0][0];
      const ids = (await window.db.execute('select id from big order by id')).rows.map((r) => r.id);
      // Reads still work, and so do writes that need no new space.
      const small = await window.db.execute('delete from big where id = 0').then(() => 'ok', (e) => e.code);
      return { acked, error, integrity, ids, small };
    });
    assert.equal(out.error?.code, 'STORAGE_FULL', JSON.stringify(out.error));
    assert.ok(out.acked.length > 5 && out.acked.length < 400, `${out.acked.length} writes before the quota`);
    assert.equal(out.integrity, 'ok');
    assert.deepEqual(out.ids, out.acked);
    // After a reload the acknowledged rows are there; with room again, writes work.
    await tab.close();
    tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'full.db');
    const ids = await tab.evaluate(async () => (await window.db.execute('select id from big order by id')).rows.map((r) => r.id));
    assert.deepEqual(ids, out.small === 'ok' ? out.acked.slice(1) : out.acked);
    const cdp2 = await browser.newCDPSession(tab);
    await cdp2.send('Storage.overrideQuotaForOrigin', { origin: web.url });
    const again = await tab.evaluate(async () => {
      await window.db.execute('insert into big (id, b) values (1000, randomblob(40000))');
      return (await window.db.execute('pragma integrity_check')).rows[0][0];
    });
    assert.equal(again, 'ok');
    await browser.close();
  });

  it('without OPFS (an insecure origin) the replica lives in memory and says so', { timeout: STEP }, async () => {
    const host = 'edgesync-insecure.test';
    const browser = await launch(profileDir(), [`--host-resolver-rules=MAP ${host} 127.0.0.1`]);
    const url = `http://${host}:${web.port}/edgesync-test.html`;
    let tab = await openTab(browser, url, problems);
    const out = await tab.evaluate(async () => {
      const db = window.edgesync.createClient({ url: 'file:fallback.db' });
      const storage = new Promise((resolve) => db.on('storage', resolve));
      await db.execute('create table t (x)');
      await db.execute('insert into t values (1)');
      const n = (await db.execute('select count(*) as n from t')).rows[0].n;
      return { secure: window.isSecureContext, n, storage: await storage, persistent: db.status().persistent };
    });
    assert.equal(out.secure, false);
    assert.equal(out.n, 1, 'the replica works');
    assert.equal(out.persistent, false);
    assert.equal(out.storage.persistent, false);
    assert.match(out.storage.reason, /OPFS/);
    await tab.close();
    tab = await openTab(browser, url, problems);
    const after = await tab.evaluate(async () => {
      const db = window.edgesync.createClient({ url: 'file:fallback.db' });
      return (await db.execute("select count(*) as n from sqlite_master where name = 't'")).rows[0].n;
    });
    assert.equal(after, 0, 'a memory replica starts empty after a reload, as documented');
    await browser.close();
  });

  it('reconnect() after close() opens the store again, as in Node; calls made meanwhile wait for it', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'reconnect.db');
    const out = await tab.evaluate(async () => {
      const db = window.db;
      const t = window.table;
      const labels = async () => (await db.execute(`select label from ${t} order by id`)).rows.map((r) => r.label);
      const code = async (fn) => {
        try {
          await fn();
          return 'no error';
        } catch (e) {
          return e.code;
        }
      };
      await db.execute(`insert into ${t} (label, n) values ('before', 1)`);
      db.reconnect(); // open: nothing to do
      const closing = db.close(); // not awaited: the worker still releases the store
      const whileClosed = await code(() => db.execute('select 1'));
      db.reconnect();
      const reopened = await labels(); // waits for the release and the new worker
      await closing;
      await db.execute(`insert into ${t} (label, n) values ('after', 2)`);
      await db.close();
      const afterClose = await code(() => db.execute('select 1'));
      db.reconnect();
      const again = await labels();
      for (let i = 0; i < 100 && !db.status().persistent; i++) await new Promise((r) => setTimeout(r, 20));
      return { whileClosed, reopened, afterClose, again, closed: db.closed, persistent: db.status().persistent, owner: db.status().owner };
    });
    assert.equal(out.whileClosed, 'CLIENT_CLOSED');
    assert.deepEqual(out.reopened, ['before']);
    assert.equal(out.afterClose, 'CLIENT_CLOSED');
    assert.deepEqual(out.again, ['before', 'after'], 'the store in OPFS, opened again');
    assert.equal(out.closed, false);
    assert.ok(out.persistent && out.owner, 'in OPFS, owned by this tab again');
    // And it syncs as before.
    assert.deepEqual(await syncAll(tab), ['before:1', 'after:2']);
    await browser.close();
  });

  it('no tab saw an uncaught error, a console error or NoModificationAllowedError', () => {
    assert.deepEqual(problems, []);
  });
});
