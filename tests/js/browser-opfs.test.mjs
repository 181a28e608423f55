// Durable replicas in a real browser: `createClient({ url: "file:…", syncUrl })` in
// headless Chromium keeps the replica in OPFS (js/browser/, src/wasm/opfs.rs), shared
// by every tab of the origin, against a real sqld (auth on):
//   - rows and queued changes survive closing the browser, and reach the server;
//   - every acknowledged write survives a renderer crash (CDP Page.crash), then syncs;
//   - three tabs on one store: the owner tab is closed, reloaded and crashed while all
//     tabs write: no acknowledged write lost, none doubled, on the replica and on the
//     server; change events reach every tab;
//   - change events for a local write, another tab's write and a pull;
//   - a client made inside the application's own worker runs the store in place;
//   - storage full (a small quota via CDP): STORAGE_FULL, the database intact;
//   - no OPFS (an insecure origin): memory, said so (status().persistent, an event);
//   - the API and errors are the Node ones; no tab ever sees NoModificationAllowedError.
//
//   node --test tests/js/browser-opfs.test.mjs
import { describe, before, after, afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient as libsql } from '@libsql/client';
import { createClient } from 'edgesync';
import { startSqld, REPO_ROOT } from '../support/sqld.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { PAGES, crash, launchProfile, openTab, profileDir } from '../support/chromium.mjs';

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

/**
 * Opens `file:<name>` in the tab as `window.db`, logging change events in
 * `window.changes`, with a replicated table of writes named after the database (each
 * test has its own: they share one server).
 */
async function openDb(page, name, extra = {}) {
  await page.evaluate(
    async ({ name, url, token, extra }) => {
      window.changes = [];
      window.events = [];
      window.table = `w_${name.replace(/\W/g, '_')}`;
      window.db = window.edgesync.createClient({ url: `file:${name}`, syncUrl: url, authToken: token, timeout: 5000, ...extra });
      window.db.on('change', (d) => window.changes.push(d.tables));
      window.db.on('storage', (d) => window.events.push(['storage', d]));
      await window.db.execute(`create table if not exists ${window.table} (id integer primary key, label text not null, n integer not null)`);
      await window.db.replicate(window.table);
    },
    { name, url: sqld.url, token: sqld.tokens.rw, extra },
  );
}

/** Rows of the tab's table, as `label:n` strings. */
const rowsIn = (page) =>
  page.evaluate(async () => (await window.db.execute(`select label, n from ${window.table} order by id`)).rows.map((r) => `${r.label}:${r.n}`));

/**
 * Starts a writer in the tab: rows (label, 0), (label, 1), … one at a time, alternating
 * execute() and batch(); each acknowledged row is reported to Node (`acked`) before the
 * next. Errors are kept in the tab (`window.writerErrors`).
 */
async function startWriter(page, label, acked) {
  if (!page.__acks) {
    page.__acks = true;
    await page.exposeFunction('ack', (l, n) => acked.get(l)?.add(n));
  }
  acked.set(label, acked.get(label) ?? new Set());
  await page.evaluate((label) => {
    window.stopWriting = false;
    window.writerErrors = [];
    window.writer = (async () => {
      for (let n = 0; !window.stopWriting; n++) {
        try {
          const sql = `insert into ${window.table} (label, n) values (?, ?)`;
          if (n % 2 === 0) await window.db.execute(sql, [label, n]);
          else await window.db.batch([{ sql, args: [label, n] }], 'write');
          await window.ack(label, n);
        } catch (e) {
          window.writerErrors.push(`${e.code}: ${e.message}`);
          if (window.writerErrors.length > 5) return;
        }
      }
    })();
  }, label);
}

async function stopWriter(page) {
  return page.evaluate(async () => {
    window.stopWriting = true;
    await window.writer;
    return window.writerErrors;
  });
}

async function waitFor(what, cond, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Waits until `label` has `more` acknowledged writes beyond what it has now. */
async function progress(acked, labels, more = 15) {
  const base = new Map(labels.map((l) => [l, acked.get(l).size]));
  await waitFor(`writes of ${labels.join(', ')}`, () => labels.every((l) => acked.get(l).size >= base.get(l) + more));
}

/** The one tab among `tabs` whose worker owns the store. */
async function ownerOf(tabs) {
  return waitFor('exactly one owner tab', async () => {
    const owners = [];
    for (const t of tabs) if (await t.evaluate(() => window.db.status().owner)) owners.push(t);
    return owners.length === 1 ? owners[0] : undefined;
  });
}

/** Every acknowledged row is there once; no row is there twice. */
function assertExactlyOnce(rows, acked) {
  const seen = new Map();
  for (const r of rows) seen.set(r, (seen.get(r) ?? 0) + 1);
  const doubled = [...seen].filter(([, c]) => c > 1).map(([r]) => r);
  assert.deepEqual(doubled, [], 'no write is there twice');
  for (const [label, ns] of acked) {
    const lost = [...ns].filter((n) => !seen.has(`${label}:${n}`));
    assert.deepEqual(lost, [], `every acknowledged write of ${label} is there`);
  }
}

/** Syncs in the tab until nothing is pending; returns the server's rows of the tab's table. */
async function syncAll(page) {
  const table = await page.evaluate(async () => {
    for (let i = 0; i < 20; i++) {
      await window.db.sync();
      const s = await window.db.call('status');
      if (s.pendingChanges === 0) return window.table;
    }
    throw new Error('changes still pending after 20 syncs');
  });
  const rs = await server.execute(`select label, n from ${table} order by id`);
  return rs.rows.map((r) => `${r.label}:${r.n}`);
}

describe('browser replicas in OPFS (Chromium, real sqld)', { timeout: 10 * STEP }, () => {
  it('rows and queued changes survive closing the browser, then reach the server', { timeout: STEP }, async () => {
    const dir = profileDir();
    let browser = await launch(dir);
    let tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'restart.db');
    const first = await tab.evaluate(async () => {
      for (let n = 0; n < 50; n++) await window.db.execute(`insert into ${window.table} (label, n) values (?, ?)`, ['r', n]);
      await new Promise((r) => setTimeout(r, 200));
      return { status: window.db.status(), events: window.events, changes: window.changes.length };
    });
    assert.equal(first.status.persistent, true);
    assert.equal(first.status.owner, true);
    assert.equal(first.status.pendingChanges, 50);
    assert.deepEqual(first.events, [['storage', { persistent: true }]]);
    assert.ok(first.changes >= 1, 'local writes fire change events');
    await browser.close();

    browser = await launch(dir);
    tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'restart.db');
    const rows = await rowsIn(tab);
    assert.deepEqual(rows, Array.from({ length: 50 }, (_, n) => `r:${n}`));
    const pending = await tab.evaluate(() => window.db.call('status').then((s) => s.pendingChanges));
    assert.equal(pending, 50, 'the queued changes survived too');
    const onServer = await syncAll(tab);
    assert.deepEqual(onServer, rows);
    await browser.close();
  });

  it('every acknowledged write survives a renderer crash, and the next open syncs it', { timeout: STEP }, async () => {
    const browser = await launch();
    const acked = new Map();
    let tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'crash.db');
    await startWriter(tab, 'c', acked);
    await progress(acked, ['c'], 40);
    await crash(tab);
    const before = acked.get('c').size;

    tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'crash.db', { syncInterval: 0.1 });
    const rows = await rowsIn(tab);
    assertExactlyOnce(rows, acked);
    assert.ok(rows.length >= before, `${rows.length} rows, ${before} acknowledged`);
    // The background sync starts at open: everything reaches the server.
    await waitFor('the crashed writes on the server', async () => {
      const s = await tab.evaluate(() => window.db.call('status'));
      return s.pendingChanges === 0 && s.lastPush?.ok;
    });
    const onServer = (await server.execute('select label, n from w_crash_db order by id')).rows.map((r) => `${r.label}:${r.n}`);
    assert.deepEqual(onServer, rows);
    await browser.close();
  });

  it('three tabs share one store: owner closed, reloaded and crashed mid-stream; nothing lost or doubled; changes reach every tab', { timeout: 3 * STEP }, async () => {
    const browser = await launch();
    const acked = new Map();
    const tabs = [];
    const add = async (label) => {
      const t = await openTab(browser, pageUrl(), problems);
      await openDb(t, 'tabs.db', { syncInterval: 0.3 });
      await startWriter(t, label, acked);
      tabs.push(t);
      return t;
    };
    for (const l of ['a', 'b', 'c']) await add(l);
    await progress(acked, ['a', 'b', 'c']);
    const live = () => tabs.filter((t) => !t.isClosed() && !t.__dead);
    const labelsOf = (ts) => ts.map((t) => t.__label);
    tabs.forEach((t, i) => (t.__label = 'abc'[i]));

    // 1. The owner tab closes.
    let owner = await ownerOf(live());
    await owner.close();
    await progress(acked, labelsOf(live()));

    // 2. A fourth tab joins; then the owner reloads (its page, worker and writer go; the
    //    reloaded page opens the store again and writes under a new label).
    const d = await add('d');
    d.__label = 'd';
    await progress(acked, labelsOf(live()));
    owner = await ownerOf(live());
    await owner.reload();
    await owner.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    await openDb(owner, 'tabs.db', { syncInterval: 0.3 });
    owner.__label = `${owner.__label}2`;
    await startWriter(owner, owner.__label, acked);
    await progress(acked, labelsOf(live()));

    // 3. The owner's renderer crashes.
    owner = await ownerOf(live());
    await crash(owner);
    owner.__dead = true;
    await progress(acked, labelsOf(live()));

    // Nothing lost, nothing doubled; the writers that lived saw no error.
    for (const t of live()) assert.deepEqual(await stopWriter(t), [], `writer ${t.__label} had no error`);
    const survivors = live();
    assert.ok(survivors.length >= 2);
    const rows = await rowsIn(survivors[0]);
    assertExactlyOnce(rows, acked);
    assert.deepEqual(await rowsIn(survivors[1]), rows, 'every tab reads the one store');

    // A write in one tab fires `change` in every tab.
    for (const t of survivors) await t.evaluate(() => (window.changes = []));
    await survivors[1].evaluate(() => window.db.execute(`insert into ${window.table} (label, n) values ('last', 0)`));
    for (const t of survivors) {
      await waitFor(`a change event in tab ${t.__label}`, () => t.evaluate(() => window.changes.some((c) => c.includes(window.table))));
    }

    // And the server gets every row once.
    const onServer = await syncAll(survivors[0]);
    assert.deepEqual(onServer, await rowsIn(survivors[0]));
    await browser.close();
  });

  it('a forwarded write sent again — to the same owner or, after a hand-off, to the next — runs once and gets the first answer', { timeout: STEP }, async () => {
    // The exact case a hand-off creates: the owner committed a follower's write, then
    // died before its answer went out, and the follower sends the write again to the
    // next owner. Here a page speaks the followers' protocol on the store's channel
    // (js/browser/protocol.ts) and simply ignores the first answer.
    const browser = await launch();
    const a = await openTab(browser, pageUrl(), problems);
    const b = await openTab(browser, pageUrl(), problems);
    await openDb(a, 'dedupe.db');
    await openDb(b, 'dedupe.db');
    assert.equal(await ownerOf([a, b]), a);
    const probe = await openTab(browser, pageUrl(), problems);
    await probe.evaluate(() => {
      window.channel = new BroadcastChannel('edgesync:dedupe.db');
      window.answers = [];
      window.channel.onmessage = (ev) => {
        if (ev.data.t === 'res' && ev.data.to === 'probe') window.answers.push(...ev.data.replies);
      };
      window.send = (calls) => window.channel.postMessage({ t: 'req', calls: calls.map((c) => ({ origin: 'probe', low: 1, ...c })) });
      window.answerTo = async (id, count) => {
        for (let i = 0; i < 200; i++) {
          const got = window.answers.filter((r) => r.id === id);
          if (got.length >= count) return got;
          await new Promise((r) => setTimeout(r, 25));
        }
        throw new Error(`no answer to ${id}: ${JSON.stringify(window.answers)}`);
      };
    });
    const write = { id: 1, m: 'execute', a: ['insert into w_dedupe_db (label, n) values (?, ?) returning id', ['probe', 1]] };
    const batch = { id: 2, m: 'batch', a: [[{ sql: 'insert into w_dedupe_db (label, n) values (?, ?)', args: ['probe', 2] }, "update w_dedupe_db set n = n + 100 where label = 'probe'"], 'write'] };
    const count = (t) => t.evaluate(async () => (await window.db.execute("select count(*) as n, sum(n) as s from w_dedupe_db where label = 'probe'")).rows[0]);

    await probe.evaluate((calls) => window.send(calls), [write, batch]);
    const [first] = await probe.evaluate(() => window.answerTo(1, 1));
    const [firstBatch] = await probe.evaluate(() => window.answerTo(2, 1));
    const show = (x) => JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    assert.equal(first.ok, true, show(first));
    assert.equal(firstBatch.ok, true, show(firstBatch));
    assert.equal(first.v.rows.length, 1, 'RETURNING rows are in the answer');
    assert.deepEqual(await count(a), { n: 2, s: 203 });

    // Sent again to the same owner.
    await probe.evaluate((calls) => window.send(calls), [write, batch]);
    const again = await probe.evaluate(() => window.answerTo(1, 2));
    const againBatch = await probe.evaluate(() => window.answerTo(2, 2));
    // (Kept answers read back as the page would build them: absent and undefined fields alike.)
    const same = (x, y) => assert.equal(show(x), show(y));
    same(again[1], first);
    same(againBatch[1], firstBatch);
    assert.deepEqual(await count(a), { n: 2, s: 203 }, 'not run twice');

    // The owner's tab closes; the next owner gets the same calls again.
    await a.close();
    assert.equal(await ownerOf([b]), b);
    await probe.evaluate((calls) => window.send(calls), [write, batch]);
    const third = await probe.evaluate(() => window.answerTo(1, 3));
    const thirdBatch = await probe.evaluate(() => window.answerTo(2, 3));
    same(third[2], first);
    same(thirdBatch[2], firstBatch);
    assert.deepEqual(await count(b), { n: 2, s: 203 }, 'not run again by the new owner');

    // A failed write is not recorded; what SQLite refuses inside a transaction runs as it is.
    const bad = { id: 3, m: 'execute', a: ['insert into w_dedupe_db (nope) values (1)'] };
    const vacuum = { id: 4, m: 'execute', a: ['vacuum'] };
    await probe.evaluate((calls) => window.send(calls), [bad, vacuum]);
    const [failed] = await probe.evaluate(() => window.answerTo(3, 1));
    assert.equal(failed.ok, false);
    assert.equal(failed.e.code, 'SQLITE_ERROR');
    const [vacuumed] = await probe.evaluate(() => window.answerTo(4, 1));
    assert.equal(vacuumed.ok, true, show(vacuumed));
    await browser.close();
  });

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

  it('no tab saw an uncaught error, a console error or NoModificationAllowedError', () => {
    assert.deepEqual(problems.filter((p) => !/crash/i.test(p)), []);
  });
});
