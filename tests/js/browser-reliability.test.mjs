// Issue 13's guarantees for browser replicas (issue 16), in headless Chromium against a
// real sqld behind the fault proxy (tests/support/fault-proxy.mjs):
//   - close() cancels a sync and a write-through call in flight in the worker (both
//     reject with CLIENT_CLOSED), resolves once the store is released — the same tab
//     opens it again at once — and later calls are CLIENT_CLOSED; a follower's close()
//     waits for the writes it forwarded, so none is reported CLIENT_CLOSED while the
//     owner commits it;
//   - a deadline (`timeout`) holds in the worker while the server never answers: the
//     sync is TIMEOUT on time, the replica goes on working and syncs once the server is back;
//   - a trap in the owner's wasm module (out of memory: wasm32 has 4 GiB) is
//     INTERNAL_ERROR and retires that tab's client only: another tab's worker takes
//     the store over and nothing acknowledged is lost.
//
//   node --test tests/js/browser-reliability.test.mjs
import { describe, before, after, afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSqld, REPO_ROOT } from '../support/sqld.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { startFaultProxy } from '../support/fault-proxy.mjs';
import { PAGES, launchProfile, openTab, profileDir } from '../support/chromium.mjs';

const STEP = 120_000;
let sqld;
let proxy;
let web;
const problems = [];

before(async () => {
  sqld = await startSqld({ auth: true });
  proxy = await startFaultProxy({ target: sqld.url });
  web = await startStaticServer({ root: REPO_ROOT, routes: PAGES });
});

after(async () => {
  await proxy?.stop().catch((e) => console.error('proxy.stop:', e));
  await web?.close().catch((e) => console.error('static server close:', e));
  await sqld?.stop().catch((e) => console.error('sqld.stop:', e));
});

const browsers = new Set();
async function launch() {
  const b = await launchProfile(profileDir());
  browsers.add(b);
  return b;
}
afterEach(async () => {
  proxy.setFaults('pass');
  await proxy.release();
  for (const b of browsers) await b.close().catch(() => {});
  browsers.clear();
});

/** Opens `file:<name>` in the tab as `window[as]`, syncing through the fault proxy. */
async function open(tab, name, extra = {}, as = 'db') {
  await tab.evaluate(
    async ({ name, url, token, extra, as }) => {
      const db = window.edgesync.createClient({ url: `file:${name}`, syncUrl: url, authToken: token, timeout: 5000, ...extra });
      window[as] = db;
      await db.execute('create table if not exists t (id integer primary key, v text)');
      await db.replicate('t');
    },
    { name, url: proxy.url, token: sqld.tokens.rw, extra, as },
  );
}

const onlyPosts = { match: (req) => req.method === 'POST' };

describe('browser replicas keep issue 13 guarantees (Chromium, real sqld, fault proxy)', { timeout: 6 * STEP }, () => {
  it('close() cancels a sync and a write-through call in flight, and releases the store at once', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    await open(tab, 'close.db');
    await tab.evaluate(() => window.db.execute("insert into t (v) values ('kept')"));

    proxy.setFaults({ ...onlyPosts, next: ['stall'] });
    await tab.evaluate(() => {
      window.syncing = window.db.sync().then(
        () => 'resolved',
        (e) => e.code,
      );
    });
    await proxy.waitStalled(1);
    const closed = await tab.evaluate(async () => {
      const t0 = performance.now();
      await window.db.close();
      const ms = performance.now() - t0;
      const sync = await window.syncing;
      let after;
      try {
        await window.db.execute('select 1');
      } catch (e) {
        after = e.code;
      }
      return { ms, sync, after };
    });
    assert.equal(closed.sync, 'CLIENT_CLOSED', 'the sync in flight is cancelled');
    assert.equal(closed.after, 'CLIENT_CLOSED');
    assert.ok(closed.ms < 3000, `close() resolved in ${closed.ms} ms`);
    await proxy.release();

    // Released: the same tab opens the store again at once, with the write.
    await open(tab, 'close.db', { writeMode: 'remote' }, 'wt');
    const again = await tab.evaluate(async () => (await window.wt.execute('select v from t')).rows.map((r) => r.v));
    assert.deepEqual(again, ['kept']);

    // A write-through call held by the server is cancelled by close() too.
    proxy.setFaults({ ...onlyPosts, next: ['stall'] });
    await tab.evaluate(() => {
      window.writing = window.wt.execute("insert into t (v) values ('through')").then(
        () => 'resolved',
        (e) => e.code,
      );
    });
    await proxy.waitStalled(1);
    const wt = await tab.evaluate(async () => {
      await window.wt.close();
      return window.writing;
    });
    assert.equal(wt, 'CLIENT_CLOSED');
    await proxy.release();
    assert.deepEqual(problems, []);
  });

  it("a follower's close() waits for the writes it forwarded: none reported CLIENT_CLOSED while the owner commits it", { timeout: STEP }, async () => {
    const browser = await launch();
    const a = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    await open(a, 'follower-close.db');
    const b = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    await open(b, 'follower-close.db');
    assert.equal(await b.evaluate(() => window.db.status().owner), false, 'the second tab follows');
    const got = await b.evaluate(async () => {
      const writes = Array.from({ length: 20 }, (_, i) => window.db.execute('insert into t (v) values (?)', [`f${i}`]));
      await window.db.close(); // at once: the writes are still on their way to the owner
      const settled = await Promise.allSettled(writes);
      return settled.map((r) => (r.status === 'fulfilled' ? 'ok' : r.reason.code));
    });
    assert.deepEqual(got, Array(20).fill('ok'));
    const rows = await a.evaluate(async () => (await window.db.execute('select v from t order by id')).rows.map((r) => r.v));
    assert.deepEqual(rows, Array.from({ length: 20 }, (_, i) => `f${i}`));
    assert.deepEqual(problems, []);
  });

  it('a deadline holds in the worker while the server never answers; the replica goes on', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    await open(tab, 'deadline.db', { timeout: 1000 });
    proxy.setFaults({ ...onlyPosts, kind: 'drop' });
    const got = await tab.evaluate(async () => {
      await window.db.execute("insert into t (v) values ('offline')");
      const t0 = performance.now();
      let code;
      try {
        await window.db.sync();
      } catch (e) {
        code = e.code;
      }
      const ms = performance.now() - t0;
      const rows = (await window.db.execute('select count(*) as n from t')).rows[0].n;
      return { code, ms, rows };
    });
    assert.equal(got.code, 'TIMEOUT');
    assert.ok(got.ms >= 900 && got.ms < 4000, `the sync ended after ${got.ms} ms (timeout 1000)`);
    assert.equal(got.rows, 1, 'local reads and writes go on');
    proxy.setFaults('pass');
    const synced = await tab.evaluate(async () => {
      const r = await window.db.sync();
      return r.changesPushed;
    });
    assert.equal(synced, 1);
    assert.deepEqual(problems, []);
  });

  it("a trap in the owner's worker retires that tab's client only: another tab takes the store over, nothing lost", { timeout: 2 * STEP }, async () => {
    const browser = await launch();
    const a = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    await open(a, 'trap.db');
    const b = await openTab(browser, `${web.url}/edgesync-test.html`, problems);
    await open(b, 'trap.db');
    const write = (tab, v) => tab.evaluate((v) => window.db.execute('insert into t (v) values (?)', [v]), v);
    await write(a, 'a1');
    await write(b, 'b1');
    assert.equal(await a.evaluate(() => window.db.status().owner), true, 'the first tab owns the store');

    // Fill the owner worker's wasm memory (wasm32: 4 GiB) with an in-memory temporary
    // table until SQLite runs out (a plain SQL error), then pass a large argument: the
    // module cannot allocate it and traps.
    const trap = await a.evaluate(async () => {
      const db = window.db;
      await db.execute('create temp table big (x blob)');
      let nomem;
      for (let i = 0; i < 16 && nomem === undefined; i++) {
        try {
          await db.execute('insert into big values (zeroblob(400000000))');
        } catch (e) {
          nomem = e.code;
        }
      }
      const out = { nomem };
      try {
        await db.execute('insert into t (v) values (?)', [new Uint8Array(900_000_000)]);
        out.trap = 'no error';
      } catch (e) {
        out.trap = [e.code, e.message];
      }
      try {
        await db.execute('select 1');
        out.after = 'usable';
      } catch (e) {
        out.after = [e.code, e.message];
      }
      return out;
    });
    assert.ok(trap.nomem, 'the temporary table filled the memory');
    assert.equal(trap.trap[0], 'INTERNAL_ERROR', JSON.stringify(trap));
    assert.equal(trap.after[0], 'INTERNAL_ERROR', 'the client is retired');
    assert.match(trap.after[1], /left unusable by an earlier internal error/);

    // The other tab takes the store over and goes on, with every acknowledged write.
    await write(b, 'b2');
    const rows = await b.evaluate(async () => (await window.db.execute('select v from t order by id')).rows.map((r) => r.v));
    assert.deepEqual(rows, ['a1', 'b1', 'b2']);
    const owner = await b.evaluate(async () => {
      for (let i = 0; i < 100 && !window.db.status().owner; i++) await new Promise((r) => setTimeout(r, 50));
      return window.db.status().owner;
    });
    assert.equal(owner, true, 'the other tab owns the store now');
    assert.deepEqual(problems, []);
  });
});
