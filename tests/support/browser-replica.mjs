// Helpers of the browser replica tests (tests/js/browser-opfs*.test.mjs): a tab opens a
// `file:` replica with a table of its own, writers that report each acknowledged write
// to Node, and the checks that nothing acknowledged is lost or doubled. Shared because
// the durability tests and the API tests open stores the same way.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The helpers, bound to the test file's servers: `env()` returns `{ sqld, server }` (the
 * real sqld, and a @libsql/client on it), read when a helper runs (they start in
 * `before`).
 */
export function replicaHelpers(env) {
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
      { name, url: env().sqld.url, token: env().sqld.tokens.rw, extra },
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
    const rs = await env().server.execute(`select label, n from ${table} order by id`);
    return rs.rows.map((r) => `${r.label}:${r.n}`);
  }

  return { openDb, rowsIn, startWriter, stopWriter, waitFor, progress, ownerOf, assertExactlyOnce, syncAll };
}
