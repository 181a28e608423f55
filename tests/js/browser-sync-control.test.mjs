// The dashboard's client features (issue 16 §2–4) on browser replicas, in headless
// Chromium against a real sqld behind the fault proxy: pause()/resume() and the
// `paused` option, maxRetries with `status().gaveUp` and `sync:gaveup`, syncOnOpen,
// `status().nextSyncAt`, pendingKeys(table) — the Node semantics, across tabs. Syncing
// is the store's, run by the owner's worker: a pause from any tab pauses it for every
// tab, and a tab that takes the store over keeps it paused.
//
//   node --test tests/js/browser-sync-control.test.mjs
import { describe, before, after, afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient as libsql } from '@libsql/client';
import { startSqld, REPO_ROOT } from '../support/sqld.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { startFaultProxy } from '../support/fault-proxy.mjs';
import { PAGES, launchProfile, openTab, profileDir } from '../support/chromium.mjs';

const STEP = 120_000;
let sqld;
let server;
let proxy;
let web;
const problems = [];

before(async () => {
  sqld = await startSqld({ auth: true });
  server = libsql({ url: sqld.url, authToken: sqld.tokens.rw });
  proxy = await startFaultProxy({ target: sqld.url });
  web = await startStaticServer({ root: REPO_ROOT, routes: PAGES });
});

after(async () => {
  server?.close();
  await proxy?.stop().catch((e) => console.error('proxy.stop:', e));
  await web?.close().catch((e) => console.error('static server close:', e));
  await sqld?.stop().catch((e) => console.error('sqld.stop:', e));
});

const browsers = new Set();
afterEach(async () => {
  proxy.setFaults('pass');
  await proxy.release();
  for (const b of browsers) await b.close().catch(() => {});
  browsers.clear();
});

async function launch() {
  const b = await launchProfile(profileDir());
  browsers.add(b);
  return b;
}

/**
 * Opens `file:<name>` in the tab as `window.db` (through the fault proxy), with table
 * `table` replicated, recording the sync control events in `window.seen`.
 */
async function open(tab, name, table, extra = {}) {
  await tab.evaluate(
    async ({ name, table, url, token, extra }) => {
      window.seen = [];
      const db = window.edgesync.createClient({ url: `file:${name}`, syncUrl: url, authToken: token, timeout: 5000, ...extra });
      window.db = db;
      for (const e of ['sync:paused', 'sync:resumed', 'sync:gaveup']) db.on(e, (d) => window.seen.push([e, d]));
      await db.execute(`create table if not exists ${table} (id integer primary key, v text)`);
      await db.replicate(table);
    },
    { name, table, url: proxy.url, token: sqld.tokens.rw, extra },
  );
}

const status = (tab) => tab.evaluate(() => window.db.status());
const seen = (tab) => tab.evaluate(() => window.seen.map(([e]) => e));

async function waitFor(what, fn, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function serverRows(table) {
  try {
    return (await server.execute(`select id from ${table} order by id`)).rows.map((r) => Number(r.id));
  } catch {
    return []; // not created there yet
  }
}

describe('browser replicas: pause, give up, pending keys (Chromium, real sqld, fault proxy)', { timeout: 4 * STEP }, () => {
  it("pause() from a follower tab pauses the store's syncing for every tab; resume() from the owner restarts it; a new owner keeps it paused", { timeout: STEP }, async () => {
    const browser = await launch();
    const a = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    await open(a, 'pause.db', 'p', { syncInterval: 0.1 });
    await waitFor('the owner to sync', async () => (await status(a)).lastPull?.ok);
    const b = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    await open(b, 'pause.db', 'p', { syncInterval: 0.1 });
    await waitFor("the follower to get the owner's state", async () => (await status(b)).lastPull?.ok);
    assert.equal((await status(a)).owner, true);
    assert.equal((await status(b)).owner, false);

    // The follower pauses: the owner's background sync stops, both tabs say so.
    await b.evaluate(() => window.db.pause());
    const sb = await status(b);
    assert.equal(sb.paused, true, 'pause() resolves with the new state in the calling tab');
    assert.equal(sb.nextSyncAt, null);
    await waitFor('the owner tab to see paused', async () => (await status(a)).paused);
    assert.equal((await status(a)).nextSyncAt, null);
    await waitFor('sync:paused in both tabs', async () => (await seen(a)).includes('sync:paused') && (await seen(b)).includes('sync:paused'));
    const code = await a.evaluate(() => window.db.sync().then(() => 'synced', (e) => e.code));
    assert.equal(code, 'INVALID_OPERATION', 'sync() is refused while paused, in any tab');

    // Writes go on and queue; pendingKeys names them, in either tab.
    await a.evaluate(() => window.db.execute("insert into p (id, v) values (1, 'a'), (2, 'b')"));
    await b.evaluate(() => window.db.execute("insert into p (id, v) values (3, 'c')"));
    assert.deepEqual((await a.evaluate(() => window.db.pendingKeys('p'))).sort(), ['[1]', '[2]', '[3]']);
    assert.deepEqual((await b.evaluate(() => window.db.pendingKeys('p'))).sort(), ['[1]', '[2]', '[3]']);
    const bad = await b.evaluate(() => window.db.pendingKeys(42).then(() => 'ok', (e) => e.code));
    assert.equal(bad, 'INVALID_ARGUMENT', 'as in Node');
    const syncs = (await a.evaluate(() => window.db.metrics())).syncs;
    await sleep(500);
    assert.equal((await a.evaluate(() => window.db.metrics())).syncs, syncs, 'no sync while paused');
    assert.deepEqual(await serverRows('p'), []);

    // The owner resumes: background sync restarts at once, for the store.
    await a.evaluate(() => window.db.resume());
    await waitFor('the rows on the server', async () => (await serverRows('p')).length === 3);
    await waitFor('nothing pending, in the follower', async () => (await b.evaluate(() => window.db.pendingKeys('p'))).length === 0);
    await waitFor('sync:resumed in both tabs', async () => (await seen(a)).includes('sync:resumed') && (await seen(b)).includes('sync:resumed'));
    await waitFor('the follower to see it running', async () => {
      const s = await status(b);
      return !s.paused && s.nextSyncAt !== null;
    });

    // Paused again, then the owner's tab goes: the follower takes the store over, paused.
    await b.evaluate(() => window.db.pause());
    await waitFor('the owner tab to see paused', async () => (await status(a)).paused);
    await a.close();
    await waitFor('the follower to own the store', async () => (await status(b)).owner);
    const taken = await status(b);
    assert.equal(taken.paused, true, 'the new owner keeps the store paused');
    const after = (await b.evaluate(() => window.db.metrics())).syncs;
    await b.evaluate(() => window.db.execute("insert into p (id, v) values (4, 'd')"));
    await sleep(500);
    assert.equal((await b.evaluate(() => window.db.metrics())).syncs, after);
    await b.evaluate(() => window.db.resume());
    await waitFor('the last row on the server', async () => (await serverRows('p')).length === 4);
    assert.deepEqual(problems, []);
  });

  it('maxRetries: background sync gives up (status().gaveUp, sync:gaveup) and a sync() that works restarts it; syncOnOpen; nextSyncAt', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    proxy.setFaults('error');
    await open(tab, 'gaveup.db', 'g', { syncOnOpen: true, maxRetries: 1 });
    // The open sync fails; a retry is scheduled: nextSyncAt is when.
    const retrying = await waitFor('a retry scheduled', async () => {
      const s = await status(tab);
      return s.retryCount === 1 && s.nextSyncAt !== null ? s : undefined;
    });
    assert.ok(retrying.nextSyncAt > Date.now() - 1000 && retrying.nextSyncAt < Date.now() + 1000, `nextSyncAt ${retrying.nextSyncAt - Date.now()} ms away`);
    // The retry fails too: past maxRetries it gives up.
    const gave = await waitFor('sync:gaveup', () => tab.evaluate(() => window.seen.find(([e]) => e === 'sync:gaveup')?.[1]));
    assert.equal(gave.retryCount, 2);
    assert.equal(typeof gave.code, 'string');
    const s = await waitFor('the state to say gave up', async () => {
      const st = await status(tab);
      return st.gaveUp ? st : undefined;
    });
    assert.equal(s.nextSyncAt, null);
    assert.equal(s.paused, false);
    const posts = proxy.stats().total;
    await sleep(1500);
    assert.equal(proxy.stats().total, posts, 'no more background attempts');

    // A sync() that works ends it.
    proxy.setFaults('pass');
    await tab.evaluate(() => window.db.sync());
    const ok = await status(tab);
    assert.equal(ok.gaveUp, false);
    assert.ok((await seen(tab)).includes('sync:resumed'));
    assert.deepEqual(problems, []);
  });

  it('the paused option: the store opens paused (status() says so at once), nothing syncs until resume(); options are checked at createClient', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    const early = await tab.evaluate(({ url, token }) => {
      const db = window.edgesync.createClient({ url: 'file:paused.db', syncUrl: url, authToken: token, paused: true, syncInterval: 0.1 });
      const s = db.status();
      return db.close().then(() => ({ paused: s.paused, gaveUp: s.gaveUp, nextSyncAt: s.nextSyncAt }));
    }, { url: proxy.url, token: sqld.tokens.rw });
    assert.deepEqual(early, { paused: true, gaveUp: false, nextSyncAt: null });

    await open(tab, 'paused.db', 'q', { paused: true, syncInterval: 0.1 });
    await tab.evaluate(() => window.db.execute("insert into q (id, v) values (1, 'x')"));
    await sleep(600);
    const s = await status(tab);
    assert.equal(s.paused, true);
    assert.equal(s.lastPull, null, 'never synced');
    assert.equal((await tab.evaluate(() => window.db.metrics())).syncs, 0);
    await tab.evaluate(() => window.db.resume());
    await waitFor('the row on the server', async () => (await serverRows('q')).length === 1);

    const codes = await tab.evaluate(() =>
      [{ maxRetries: -1 }, { maxRetries: 1.5 }, { syncOnOpen: 'yes' }, { paused: 'no' }].map((o) => {
        try {
          window.edgesync.createClient({ url: 'file:bad.db', ...o });
          return 'created';
        } catch (e) {
          return e.code;
        }
      }),
    );
    assert.deepEqual(codes, ['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT']);
    assert.deepEqual(problems, []);
  });
});
