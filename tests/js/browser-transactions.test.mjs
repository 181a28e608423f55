// Interactive transactions on a browser `file:` replica (js/browser/transaction.ts,
// js/browser/tx-slot.ts), in headless Chromium against a real sqld (auth on):
//   - the API as on Node: commit, rollback, close, a "read" transaction refusing a
//     write, a failed batch statement (statementIndex) leaving it open, BEGIN by hand
//     refused, TRANSACTION_ACTIVE for the client's calls outside it, TRANSACTION_CLOSED
//     after it ended, a bad mode a RangeError; the committed rows sync to the server;
//     close() with one open rolls it back;
//   - two tabs: the other tab's calls wait until the transaction ends (no dirty read);
//   - the owner tab closes while the follower's transaction is open: the transaction is
//     gone (TRANSACTION_CLOSED, nothing of it committed), the store goes on;
//   - a tab crashes holding a transaction: the others wait at most the idle expiry (10 s).
//
//   node --test tests/js/browser-transactions.test.mjs
import { describe, before, after, afterEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient as libsql } from '@libsql/client';
import { startSqld, REPO_ROOT } from '../support/sqld.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { PAGES, crash, launchProfile, openTab, profileDir } from '../support/chromium.mjs';
import { replicaHelpers } from '../support/browser-replica.mjs';
import { startFaultProxy } from '../support/fault-proxy.mjs';

const STEP = 120_000;
let sqld;
let server;
let web;
/** Uncaught errors and console errors of every tab; must stay empty. */
const problems = [];

before(async () => {
  sqld = await startSqld({ auth: true });
  server = libsql({ url: sqld.url, authToken: sqld.tokens.rw });
  web = await startStaticServer({ root: REPO_ROOT, routes: PAGES });
});

after(async () => {
  server?.close();
  await web?.close().catch((e) => console.error('static server close:', e));
  await sqld?.stop().catch((e) => console.error('sqld.stop:', e));
});

const pageUrl = () => `${web.url}/edgesync-test.html`;

const browsers = new Set();
async function launch() {
  const b = await launchProfile(profileDir());
  browsers.add(b);
  return b;
}
afterEach(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  browsers.clear();
});
const { openDb, rowsIn, waitFor, ownerOf, syncAll } = replicaHelpers(() => ({ sqld, server }));

/** In the tab: `window.err(fn)` gives the code (and statementIndex, name) fn's promise failed with. */
const withErr = (tab) =>
  tab.evaluate(() => {
    window.err = async (fn) => {
      try {
        await fn();
        return 'no error';
      } catch (e) {
        return { code: e.code, name: e.name, index: e.statementIndex };
      }
    };
  });

/** Starts `label`'s insert in the tab; `window.done[label]` is set once it resolves. */
const startInsert = (tab, label) =>
  tab.evaluate((label) => {
    window.done ??= {};
    window.db.execute(`insert into ${window.table} (label, n) values (?, 0)`, [label]).then(
      () => (window.done[label] = 'ok'),
      (e) => (window.done[label] = e.code),
    );
  }, label);
const doneIn = (tab, label) => tab.evaluate((label) => window.done?.[label], label);

/**
 * A fresh browser with `n` tabs on store `name` (options `extra`), opened in order; the
 * first owns the store (checked). Resolves with the tabs.
 */
async function tabsOn(name, n = 2, extra = {}) {
  const browser = await launch();
  const tabs = [];
  for (let i = 0; i < n; i++) {
    const t = await openTab(browser, pageUrl(), problems);
    await openDb(t, name, extra);
    tabs.push(t);
  }
  assert.equal(await ownerOf(tabs), tabs[0], 'the first tab owns the store');
  return tabs;
}

describe('interactive transactions on a browser replica (Chromium, real sqld)', { timeout: 6 * STEP }, () => {
  it('the API as on Node: commit, rollback, close, read mode, errors; committed rows sync', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'tx-api.db');
    await withErr(tab);
    const out = await tab.evaluate(async () => {
      const db = window.db;
      const t = window.table;
      const labels = async () => (await db.execute(`select label from ${t} order by id`)).rows.map((r) => r.label);
      const o = {};
      window.changes = [];
      const tx = await db.transaction();
      await tx.execute(`insert into ${t} (label, n) values ('a', 1)`);
      o.inside = (await tx.execute(`select count(*) as n from ${t}`)).rows[0].n;
      o.outside = await window.err(() => db.execute('select 1'));
      // Its other calls run as on Node: pendingKeys reads inside it; a sync waits for its end.
      o.pendingInside = (await db.pendingKeys(t)).length;
      const syncing = db.sync().then(() => 'synced', (e) => e.code);
      o.manual = await window.err(() => tx.execute('COMMIT'));
      o.failedStep = await window.err(() => tx.batch([`insert into ${t} (label, n) values ('b', 2)`, `insert into ${t} (id, label, n) values (1, 'dup', 0)`]));
      o.openAfterFailure = tx.closed === false;
      o.changesBeforeCommit = window.changes.length;
      await tx.commit();
      o.sync = await syncing;
      o.closedAfterCommit = tx.closed;
      o.afterCommit = await window.err(() => tx.execute('select 1'));
      o.rollbackAfterCommit = await window.err(() => tx.rollback());
      o.committed = await labels();

      const tx2 = await db.transaction('write');
      await tx2.execute(`insert into ${t} (label, n) values ('rolled back', 3)`);
      await tx2.rollback();
      const tx3 = await db.transaction('read');
      o.readWrite = await window.err(() => tx3.execute(`insert into ${t} (label, n) values ('r', 4)`));
      o.readRead = (await tx3.execute(`select count(*) as n from ${t}`)).rows[0].n;
      tx3.close();
      const tx4 = await db.transaction('deferred');
      await tx4.executeMultiple(`insert into ${t} (label, n) values ('closed', 5); insert into ${t} (label, n) values ('closed', 6)`);
      tx4.close();
      o.badMode = await window.err(() => db.transaction('exclusive'));
      o.afterAll = await labels();
      o.changed = window.changes.some((c) => c.includes(t));
      return o;
    });
    assert.equal(out.inside, 1, 'the transaction reads its own write');
    assert.equal(out.outside.code, 'TRANSACTION_ACTIVE', "the client's own call outside it, as on Node");
    assert.equal(out.pendingInside, 1, "pendingKeys runs inside it and sees its write");
    assert.equal(out.sync, 'synced', 'a sync called inside it ran after its end');
    assert.equal(out.manual.code, 'INVALID_OPERATION');
    assert.deepEqual(out.failedStep, { code: 'SQLITE_CONSTRAINT', name: 'LibsqlBatchError', index: 1 });
    assert.ok(out.openAfterFailure, 'a failed statement leaves the transaction open');
    assert.equal(out.changesBeforeCommit, 0, 'no change event before the commit');
    assert.ok(out.closedAfterCommit);
    assert.equal(out.afterCommit.code, 'TRANSACTION_CLOSED');
    assert.equal(out.rollbackAfterCommit, 'no error', 'rollback of a closed transaction does nothing, as on Node');
    assert.deepEqual(out.committed, ['a', 'b'], 'the batch statement before the failed one stays in the transaction');
    assert.equal(out.readWrite.code, 'SQLITE_READONLY');
    assert.equal(out.readRead, 2);
    assert.deepEqual(out.badMode, { code: undefined, name: 'RangeError', index: undefined });
    assert.deepEqual(out.afterAll, ['a', 'b'], 'rolled back and closed transactions left nothing');
    assert.ok(out.changed, 'the commit fired a change event');

    // What the transaction committed is captured like any write, and reaches the server
    // (the sync above ran after the commit and pushed it).
    const onServer = await syncAll(tab);
    assert.deepEqual(onServer, ['a:1', 'b:2']);

    // close() with a transaction open rolls it back; the next client finds the store free.
    const reopened = await tab.evaluate(async () => {
      const t = window.table;
      const tx = await window.db.transaction();
      await tx.execute(`insert into ${t} (label, n) values ('never', 7)`);
      await window.db.close();
      window.db = window.edgesync.createClient({ url: 'file:tx-api.db' });
      return (await window.db.execute(`select label from ${t} order by id`)).rows.map((r) => r.label);
    });
    assert.deepEqual(reopened, ['a', 'b']);
    await browser.close();
  });

  it("another tab's calls wait until the transaction ends", { timeout: STEP }, async () => {
    const [a, b] = await tabsOn('tx-tabs.db');
    // The follower's transaction, run by the owner's worker; then the owner tab's write.
    await b.evaluate(async () => {
      window.tx = await window.db.transaction();
      await window.tx.execute(`insert into ${window.table} (label, n) values ('in tx', 1)`);
    });
    await startInsert(a, 'waits');
    await a.evaluate(() => {
      window.db.execute(`select count(*) as n from ${window.table}`).then((rs) => (window.seen = rs.rows[0].n));
    });
    await sleep(500);
    assert.equal(await doneIn(a, 'waits'), undefined, "the owner tab's write waits for the follower's transaction");
    assert.equal(await a.evaluate(() => window.seen), undefined, 'and so does its read (no dirty read)');
    await b.evaluate(() => window.tx.commit());
    await waitFor('the waiting write', async () => (await doneIn(a, 'waits')) === 'ok');
    assert.equal(await a.evaluate(() => window.seen), 2, 'the read ran after the commit, in its turn (after the write called before it)');
    assert.deepEqual(await rowsIn(a), ['in tx:1', 'waits:0']);
    assert.deepEqual(await rowsIn(b), ['in tx:1', 'waits:0']);

    // The owner's own transaction: the follower waits in turn.
    await a.evaluate(async () => {
      window.tx = await window.db.transaction();
      await window.tx.execute(`insert into ${window.table} (label, n) values ('owner tx', 2)`);
    });
    await startInsert(b, 'follower');
    await sleep(300);
    assert.equal(await doneIn(b, 'follower'), undefined);
    await a.evaluate(() => window.tx.rollback());
    await waitFor("the follower's write", async () => (await doneIn(b, 'follower')) === 'ok');
    assert.deepEqual(await rowsIn(b), ['in tx:1', 'waits:0', 'follower:0']);
    await a.context().close();
  });

  it("the owner tab closes during a follower's transaction: it is gone, nothing of it committed", { timeout: STEP }, async () => {
    const [a, b] = await tabsOn('tx-handoff.db');
    await withErr(b);
    await b.evaluate(async () => {
      window.tx = await window.db.transaction();
      await window.tx.execute(`insert into ${window.table} (label, n) values ('lost', 1)`);
    });
    await a.close();
    assert.equal(await ownerOf([b]), b);
    const out = await b.evaluate(async () => {
      const t = window.table;
      const next = await window.err(() => window.tx.execute(`insert into ${t} (label, n) values ('lost too', 2)`));
      const commit = await window.err(() => window.tx.commit());
      const closed = window.tx.closed;
      const tx = await window.db.transaction();
      await tx.execute(`insert into ${t} (label, n) values ('kept', 3)`);
      await tx.commit();
      return { next, commit, closed };
    });
    assert.equal(out.next.code, 'TRANSACTION_CLOSED');
    assert.equal(out.commit.code, 'TRANSACTION_CLOSED');
    assert.ok(out.closed);
    assert.deepEqual(await rowsIn(b), ['kept:3']);
    assert.deepEqual(await syncAll(b), ['kept:3']);
    await a.context().close();
  });

  it('a tab that crashed holding a transaction blocks the others at most the idle expiry (10 s)', { timeout: STEP }, async () => {
    const [a, b] = await tabsOn('tx-crash.db');
    await b.evaluate(async () => {
      window.tx = await window.db.transaction();
      await window.tx.execute(`insert into ${window.table} (label, n) values ('crashed', 1)`);
    });
    const t0 = Date.now();
    await startInsert(a, 'after');
    await crash(b);
    await sleep(2000);
    assert.equal(await doneIn(a, 'after'), undefined, 'held while the transaction may still be used');
    await waitFor('the held write', async () => (await doneIn(a, 'after')) === 'ok', 30_000);
    const waited = Date.now() - t0;
    assert.ok(waited >= 9_000 && waited < 20_000, `held ${waited} ms: until the 10 s idle expiry`);
    assert.deepEqual(await rowsIn(a), ['after:0'], "the crashed tab's transaction was rolled back");
    await a.context().close();
  });

  it("a closing tab's write held behind another tab's transaction, reported CLIENT_CLOSED, is not committed after it", { timeout: STEP }, async () => {
    const [a, b, c] = await tabsOn('tx-bye.db', 3);
    await b.evaluate(async () => {
      window.tx = await window.db.transaction();
      await window.tx.execute(`insert into ${window.table} (label, n) values ('in tx', 1)`);
    });
    // c's write is held by the owner behind b's transaction; c closes meanwhile.
    await startInsert(c, 'held');
    await sleep(200);
    await c.evaluate(() => window.db.close());
    await waitFor("c's held write to be answered", async () => (await doneIn(c, 'held')) !== undefined, 8_000);
    const answered = await doneIn(c, 'held');
    await b.evaluate(() => window.tx.commit());
    await sleep(500);
    const rows = await rowsIn(a);
    if (answered === 'ok') assert.deepEqual(rows, ['in tx:1', 'held:0']);
    else assert.deepEqual(rows, ['in tx:1'], `reported ${answered} to its tab, so it must not be committed`);
    await a.context().close();
  });

  it('transaction() racing close() in a follower leaves no transaction holding the store', { timeout: STEP }, async () => {
    const [a, b] = await tabsOn('tx-race.db');
    const begun = await b.evaluate(async () => {
      const p = window.db.transaction();
      const closing = window.db.close();
      const out = await p.then(
        () => 'resolved',
        (e) => e.code,
      );
      await closing;
      return out;
    });
    const t0 = Date.now();
    await startInsert(a, 'after');
    await waitFor("the owner tab's write", async () => (await doneIn(a, 'after')) !== undefined, 15_000);
    const waited = Date.now() - t0;
    assert.equal(await doneIn(a, 'after'), 'ok');
    assert.ok(waited < 3_000, `the store was held ${waited} ms by a transaction begun for a closed client`);
    assert.equal(begun, 'CLIENT_CLOSED', 'transaction() of a client closed meanwhile rejects, as on Node');
    await a.context().close();
  });

  it("a follower's commit whose answer was lost with the owner is answered as committed by the next owner", { timeout: STEP }, async () => {
    const [a, b] = await tabsOn('tx-lost.db');
    // A follower speaking the store's protocol on its channel (as js/browser/follower.ts
    // does): it begins, writes and commits, then sends its calls again to the next owner,
    // as a follower does whose answers were lost with the owner.
    await b.evaluate(() => {
      const ch = new BroadcastChannel('edgesync:tx-lost.db');
      window.fake = { ch, answers: new Map() };
      ch.onmessage = (ev) => {
        if (ev.data.t !== 'res' || ev.data.to !== 'fake-follower') return;
        for (const r of ev.data.replies) window.fake.answers.set(r.id, r);
      };
      window.fake.send = (id, m, a) => ch.postMessage({ t: 'req', calls: [{ id, m, a, origin: 'fake-follower', low: id }] });
      window.fake.answer = async (id) => {
        for (let i = 0; i < 200; i++) {
          const r = window.fake.answers.get(id);
          if (r) return r;
          await new Promise((res) => setTimeout(res, 25));
        }
        return 'no answer';
      };
    });
    const first = await b.evaluate(async () => {
      const f = window.fake;
      f.send(1, 'txBegin', ['write']);
      const begin = await f.answer(1);
      window.token = begin.v;
      f.send(2, 'tx', [window.token, 'execute', `insert into ${window.table} (label, n) values ('committed', 1)`]);
      const write = await f.answer(2);
      f.send(3, 'tx', [window.token, 'commit']);
      const commit = await f.answer(3);
      return { begin: begin.ok, write: write.ok, commit };
    });
    assert.deepEqual(first, { begin: true, write: true, commit: { id: 3, ok: true, v: [undefined, false] } });
    await a.close();
    assert.equal(await ownerOf([b]), b);
    const again = await b.evaluate(async () => {
      const f = window.fake;
      f.answers.clear();
      // The new owner's own tab holds a transaction when the call comes again (its own
      // calls, held by the old owner, run first when it takes over).
      const mine = await window.db.transaction();
      f.send(3, 'tx', [window.token, 'commit']); // the same call again
      f.send(4, 'tx', [window.token, 'commit']); // a commit that never ran
      const [c3, c4] = [await f.answer(3), await f.answer(4)];
      await mine.commit();
      f.ch.close();
      return { c3: c3.ok ? 'ok' : c3.e.code, c4: c4.ok ? 'ok' : c4.e.code };
    });
    assert.deepEqual(again, { c3: 'ok', c4: 'TRANSACTION_CLOSED' });
    assert.deepEqual(await rowsIn(b), ['committed:1'], 'committed once');
    await a.context().close();
  });

  it("another tab's status() does not count a transaction's uncommitted writes", { timeout: STEP }, async () => {
    const [a, b] = await tabsOn('tx-status.db', 2, { paused: true });
    const pending = (tab) => tab.evaluate(() => window.db.status().pendingChanges);
    await sleep(300);
    assert.equal(await pending(a), 0);
    await b.evaluate(async () => {
      window.tx = await window.db.transaction();
      for (let i = 0; i < 3; i++) await window.tx.execute(`insert into ${window.table} (label, n) values ('uncommitted', ?)`, [i]);
    });
    await sleep(500); // several state pushes' time (at most every 50 ms)
    assert.equal(await pending(a), 0, "the owner tab's status() counted rows not committed");
    await b.evaluate(() => window.tx.rollback());
    await b.evaluate(async () => {
      window.tx = await window.db.transaction();
      await window.tx.execute(`insert into ${window.table} (label, n) values ('committed', 1)`);
      await window.tx.commit();
    });
    await waitFor('the committed write counted in every tab', async () => (await pending(a)) === 1 && (await pending(b)) === 1, 5_000);
    await a.context().close();
  });

  it('a transaction used after its client closed fails as on Node (TRANSACTION_CLOSED; rollback does nothing)', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'tx-after-close.db');
    const out = await tab.evaluate(async () => {
      const tx = await window.db.transaction();
      await tx.execute(`insert into ${window.table} (label, n) values ('never', 1)`);
      await window.db.close();
      const code = async (fn) => {
        try {
          await fn();
          return 'ok';
        } catch (e) {
          return e.code;
        }
      };
      return [await code(() => tx.execute('select 1')), await code(() => tx.commit()), await code(() => tx.rollback()), tx.closed];
    });
    // What @libsql/client and a Node replica give (tests/js/compat-local.test.mjs).
    assert.deepEqual(out, ['TRANSACTION_CLOSED', 'TRANSACTION_CLOSED', 'ok', true]);
    await browser.close();
  });

  it('a statement SQLite rolls the transaction back with ends it, as on Node: closed, no change event, the client free', { timeout: STEP }, async () => {
    const browser = await launch();
    const tab = await openTab(browser, pageUrl(), problems);
    await openDb(tab, 'tx-or-rollback.db');
    const out = await tab.evaluate(async () => {
      const t = window.table;
      await window.db.execute(`insert into ${t} (id, label, n) values (1, 'kept', 0)`);
      await new Promise((r) => setTimeout(r, 200));
      window.changes = [];
      const tx = await window.db.transaction();
      await tx.execute(`update ${t} set n = 5`);
      const failed = await tx.execute(`insert or rollback into ${t} (id, label, n) values (1, 'dup', 0)`).then(
        () => 'ok',
        (e) => e.code,
      );
      const closed = tx.closed;
      const outside = (await window.db.execute(`select label, n from ${t}`)).rows.map((r) => `${r.label}:${r.n}`);
      await new Promise((r) => setTimeout(r, 300));
      return { failed, closed, outside, changes: window.changes.length };
    });
    assert.deepEqual(out, { failed: 'SQLITE_CONSTRAINT', closed: true, outside: ['kept:0'], changes: 0 });
    await browser.close();
  });

  it("a transaction() begun during a sync waits for it without holding every tab's calls", { timeout: STEP }, async () => {
    const proxy = await startFaultProxy({ target: sqld.url });
    try {
      const [a, b] = await tabsOn('tx-during-sync.db', 2, { syncUrl: proxy.url, timeout: 20_000 });
      await a.evaluate(() => window.db.execute(`insert into ${window.table} (label, n) values ('pushed', 1)`));
      // The server does not answer (a stalled network): the sync waits on it.
      proxy.setFaults('stall');
      await a.evaluate(() => {
        window.syncing = window.db.sync().then(() => 'synced', (e) => e.code);
      });
      await proxy.waitStalled(1);
      await b.evaluate(() => {
        window.begun = window.db.transaction().then((tx) => (window.tx = tx, 'begun'), (e) => e.code);
        // A second one of the same client: as on Node, the first begins, this one is refused.
        window.begun2 = window.db.transaction().then(() => 'begun', (e) => e.code);
      });
      await sleep(200);
      // As on Node, the transaction begins after the sync; meanwhile the store is not
      // held: a local read in any tab runs at once.
      const t0 = Date.now();
      const read = await a.evaluate(async () => (await window.db.execute(`select count(*) as n from ${window.table}`)).rows[0].n);
      const took = Date.now() - t0;
      assert.equal(read, 1);
      assert.ok(took < 2_000, `a local read waited ${took} ms for another tab's transaction() behind a stalled sync`);
      proxy.setFaults('pass');
      await proxy.release();
      assert.equal(await a.evaluate(() => window.syncing), 'synced');
      assert.equal(await b.evaluate(() => window.begun), 'begun');
      assert.equal(await b.evaluate(() => window.begun2), 'TRANSACTION_ACTIVE');
      await b.evaluate(async () => {
        await window.tx.execute(`insert into ${window.table} (label, n) values ('in tx', 2)`);
        await window.tx.commit();
      });
      assert.deepEqual(await rowsIn(a), ['pushed:1', 'in tx:2']);
      await a.context().close();
    } finally {
      await proxy.stop();
    }
  });

  it('no tab saw an uncaught error or a console error', () => {
    // The crashed tab's renderer is gone on purpose; anything else is a defect.
    assert.deepEqual(problems.filter((p) => !/crash|Target closed|Page crashed/i.test(p)), []);
  });
});
