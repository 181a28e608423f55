// Durable replicas in a real browser: `createClient({ url: "file:…", syncUrl })` in
// headless Chromium keeps the replica in OPFS (js/browser/, src/wasm/opfs.rs), shared
// by every tab of the origin, against a real sqld (auth on). This file: what survives
// and what runs once —
//   - rows and queued changes survive closing the browser, and reach the server;
//   - every acknowledged write survives a renderer crash (CDP Page.crash), then syncs;
//   - three tabs on one store: the owner tab is closed, reloaded and crashed while all
//     tabs write: no acknowledged write lost, none doubled, on the replica and on the
//     server; change events reach every tab;
//   - a forwarded write sent again (to the same owner, or after a hand-off) runs once;
//   - a table the next owner cannot declare again is reported (sync:error);
//   - no tab ever sees NoModificationAllowedError.
// The API in the browser (events, the application's own worker, errors, storage full,
// no OPFS): browser-opfs-api.test.mjs.
//
//   node --test tests/js/browser-opfs.test.mjs
import { describe, before, after, afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { createClient as libsql } from '@libsql/client';
import { startSqld, REPO_ROOT } from '../support/sqld.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { PAGES, crash, launchProfile, openTab, profileDir } from '../support/chromium.mjs';
import { replicaHelpers } from '../support/browser-replica.mjs';

const STEP = 120_000;
let sqld;
let server;
let web;
/** Uncaught errors and console errors of every tab; must stay empty. */
const problems = [];

before(async () => {
  sqld = await startSqld({ auth: true });
  server = libsql({ url: sqld.url, authToken: sqld.tokens.rw });
  web = await startStaticServer({
    root: REPO_ROOT,
    routes: PAGES,
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
const { openDb, rowsIn, startWriter, stopWriter, waitFor, progress, ownerOf, assertExactlyOnce, syncAll } = replicaHelpers(() => ({ sqld, server }));

describe('browser replicas in OPFS: durability, tabs (Chromium, real sqld)', { timeout: 7 * STEP }, () => {
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

  it("a table the new owner cannot declare again is reported to its page (sync:error), not swallowed", { timeout: STEP }, async () => {
    const browser = await launch();
    const a = await openTab(browser, pageUrl(), problems);
    const b = await openTab(browser, pageUrl(), problems);
    await openDb(a, 'redeclare.db');
    await openDb(b, 'redeclare.db');
    assert.equal(await ownerOf([a, b]), a);
    // b's page declares a table (run by the owner, a), which is then dropped.
    await b.evaluate(async () => {
      window.errors = [];
      window.db.on('sync:error', (d) => window.errors.push(d));
      await window.db.execute('create table gone (id integer primary key, v text)');
      await window.db.replicate('gone');
      await window.db.execute('drop table gone');
    });
    // a's tab closes: b takes the store over and declares its page's tables again.
    await a.close();
    assert.equal(await ownerOf([b]), b);
    const errors = await waitFor('the sync:error of the table declared again', async () => {
      const e = await b.evaluate(() => window.errors);
      return e.length > 0 && e;
    });
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0].retryable, false);
    assert.match(errors[0].message, /replicate\("gone"\)/);
    assert.equal(typeof errors[0].code, 'string');
    await browser.close();
  });

  it('no tab saw an uncaught error, a console error or NoModificationAllowedError', () => {
    assert.deepEqual(problems.filter((p) => !/crash/i.test(p)), []);
  });
});
