// End-to-end in a real browser: headless Chromium (Debian package) loads the dashboard
// page, which loads pkg/web.js + the wasm module, and talks to a real sqld (auth on)
// across origins (sqld answers the CORS preflight).
//
//   node --test tests/js/browser.test.mjs
//
// Everything that touches edgesync runs inside the page (page.evaluate); results come
// back to Node as JSON-safe data: bigints as decimal strings, blobs as hex or
// length + SHA-256.
import { describe, before, after, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { chromium } from 'playwright-core';
import { startSqld, REPO_ROOT } from '../support/sqld.mjs';
import { startStaticServer } from '../support/static-server.mjs';
import { generateAuth } from '../support/jwt.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from '../support/chromium.mjs';

const SCREENSHOT = '/tmp/edgesync-dashboard.png';
const STEP_TIMEOUT = 60_000;

let sqld;
let web;
let browser;
let page;
/** Uncaught exceptions in the page; must stay empty. */
const pageErrors = [];
/** console.error lines from the page, shown when something fails. */
const consoleErrors = [];

/** page.evaluate with the server URL and a good token always available as `env`. */
function inPage(fn, extra = {}) {
  return page.evaluate(fn, { url: sqld.url, token: sqld.tokens.rw, ...extra });
}

// ---- JSON-safe value encoding, shared by Node and the page (passed as source) ----------
// {t:'null'} | {t:'number', v:'<String(n), "-0" kept>'} | {t:'bigint', v:'<decimal>'}
// | {t:'string', v} | {t:'blob', hex}
const CODEC_SOURCE = `({
  hex: (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join(''),
  unhex: (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16)),
  encode(v) {
    if (v === null) return { t: 'null' };
    if (typeof v === 'bigint') return { t: 'bigint', v: v.toString() };
    if (typeof v === 'number') return { t: 'number', v: Object.is(v, -0) ? '-0' : String(v) };
    if (typeof v === 'string') return { t: 'string', v };
    if (v instanceof ArrayBuffer) return { t: 'blob', hex: this.hex(new Uint8Array(v)) };
    return { t: 'unexpected', v: String(v), type: typeof v, ctor: v?.constructor?.name };
  },
  decode(e) {
    switch (e.t) {
      case 'null': return null;
      case 'number': return Number(e.v);
      case 'bigint': return BigInt(e.v);
      case 'string': return e.v;
      case 'blob': return this.unhex(e.hex);
    }
    throw new Error('bad encoding ' + JSON.stringify(e));
  },
})`;

before(async () => {
  sqld = await startSqld({ auth: true });
  web = await startStaticServer({ root: REPO_ROOT });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err));
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  const query = new URLSearchParams({ url: sqld.url, token: sqld.tokens.rw });
  // The dashboard's SQL console (#/data) runs on its local replica, synced with this sqld.
  await page.goto(`${web.url}/www/dashboard/index.html?${query}#/data`);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30_000 });
  await page.evaluate(`window.__codec = ${CODEC_SOURCE}`);
});

after(async () => {
  // Each step separately, so one failure does not leak the other processes.
  await browser?.close().catch((e) => console.error('browser.close:', e));
  await web?.close().catch((e) => console.error('static server close:', e));
  await sqld?.stop().catch((e) => console.error('sqld.stop:', e));
});

describe('edgesync in headless Chromium against a real sqld', { timeout: 5 * STEP_TIMEOUT }, () => {
  it('the page loaded the package and the wasm module', { timeout: STEP_TIMEOUT }, async () => {
    const info = await inPage(async ({ url, token }) => {
      const mod = await import('/pkg/web.js');
      const db = window.edgesync.createClient({ url, authToken: token });
      const rs = await db.execute('select 1 as one');
      db.close();
      return {
        sameCreateClient: mod.createClient === window.edgesync.createClient,
        protocol: db.protocol,
        closed: db.closed,
        one: rs.rows[0].one,
        secure: window.isSecureContext,
        errorLine: document.getElementById('error').hidden,
      };
    });
    assert.deepEqual(info, { sameCreateClient: true, protocol: 'http', closed: true, one: 1, secure: true, errorLine: true });
  });

  it('a file: replica opens in OPFS from the page (durable, not a silent in-memory database)', { timeout: STEP_TIMEOUT }, async () => {
    // More in browser-opfs.test.mjs (restarts, crashes, tabs) and browser-opfs-api.test.mjs (quota, no OPFS).
    const got = await inPage(async () => {
      // The package asks the browser to keep the origin's storage (navigator.storage.persist()).
      let asked = 0;
      const persist = navigator.storage.persist.bind(navigator.storage);
      navigator.storage.persist = () => (asked++, persist());
      const persisted = navigator.storage.persisted.bind(navigator.storage);
      navigator.storage.persisted = async () => false; // as on a first visit
      const db = window.edgesync.createClient({ url: 'file:dashboard-test.db' });
      await db.execute('create table if not exists t (x)');
      await db.execute('insert into t values (1)');
      const n = (await db.execute('select count(*) as n from t')).rows[0].n;
      const storage = await new Promise((resolve) => {
        const s = db.status();
        if (s.persistent) resolve({ persistent: true });
        else db.on('storage', resolve);
      });
      await db.close();
      navigator.storage.persisted = persisted;
      return { n, storage, asked };
    });
    assert.deepEqual(got, { n: 1, storage: { persistent: true }, asked: 1 });
  });

  it('round-trips every value type exactly', { timeout: STEP_TIMEOUT }, async () => {
    const all256 = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex');
    // [input, expected read-back (defaults to input), expected typeof() in SQLite]
    const cases = [
      [{ t: 'null' }, null, 'null'],
      [{ t: 'number', v: '0' }, null, 'integer'],
      [{ t: 'number', v: '42' }, null, 'integer'],
      [{ t: 'number', v: '-1' }, null, 'integer'],
      [{ t: 'number', v: '9007199254740991' }, null, 'integer'], // 2^53-1: still a number
      [{ t: 'bigint', v: '9007199254740993' }, null, 'integer'], // 2^53+1: not a double
      [{ t: 'bigint', v: '9223372036854775807' }, null, 'integer'],
      [{ t: 'bigint', v: '-9223372036854775808' }, null, 'integer'],
      [{ t: 'bigint', v: '12' }, { t: 'number', v: '12' }, 'integer'], // auto mode: safe -> number
      [{ t: 'number', v: String(0.1 + 0.2) }, null, 'real'],
      [{ t: 'number', v: '1e+308' }, null, 'real'],
      [{ t: 'number', v: '-1.7976931348623157e+308' }, null, 'real'],
      [{ t: 'number', v: '5e-324' }, null, 'real'],
      [{ t: 'number', v: '-2.5' }, null, 'real'],
      [{ t: 'string', v: '' }, null, 'text'],
      [{ t: 'string', v: 'plain ascii' }, null, 'text'],
      [{ t: 'string', v: '👩‍👩‍👧‍👦 🚀 𝄞' }, null, 'text'],
      [{ t: 'string', v: '漢字・かな・カナ・한국어' }, null, 'text'],
      [{ t: 'string', v: 'Cafe\u0301 n\u0303 a\u0308\u0323' }, null, 'text'], // NFD: must not be normalized
      [{ t: 'string', v: 'مرحبا بالعالم' }, null, 'text'],
      [{ t: 'string', v: 'quotes \' " \\ and\nnew\tlines' }, null, 'text'],
      [{ t: 'string', v: 'nul\u0000inside' }, null, 'text'],
      [{ t: 'blob', hex: '' }, null, 'blob'],
      [{ t: 'blob', hex: '00' }, null, 'blob'],
      [{ t: 'blob', hex: all256 }, null, 'blob'],
    ];

    const out = await inPage(
      async ({ url, token, cases }) => {
        const codec = window.__codec;
        const db = window.edgesync.createClient({ url, authToken: token });
        await db.execute('create table vals (id integer primary key, v)');
        const inserts = [];
        for (let i = 0; i < cases.length; i++) {
          const rs = await db.execute({ sql: 'insert into vals (id, v) values (?, ?)', args: [i + 1, codec.decode(cases[i])] });
          inserts.push({ rowsAffected: rs.rowsAffected, lastInsertRowid: String(rs.lastInsertRowid) });
        }
        const rs = await db.execute('select id, v, typeof(v) as type from vals order by id');
        const rows = rs.rows.map((row) => ({
          length: row.length,
          id: row.id,
          v: codec.encode(row[1]),
          byNameSame: Object.is(row.v, row[1]),
          type: row.type,
        }));
        // The same values as named arguments, compared inside SQL with the stored ones.
        const named = await db.execute({
          sql: 'select count(*) as n from vals where id = :id and v is $v',
          args: { id: 8, v: codec.decode(cases[7]) },
        });
        // -0.0 survives as a REAL (as an argument, -0 is a safe integer and binds as INTEGER 0).
        const negZero = await db.execute('select -0.0 as z, typeof(-0.0) as t');
        const json = JSON.parse(JSON.stringify(rs));
        db.close();
        return { columns: rs.columns, inserts, rows, named: named.rows[0].n, jsonRow7: json.rows[6], negZero: [codec.encode(negZero.rows[0].z), negZero.rows[0].t] };
      },
      { cases: cases.map((c) => c[0]) },
    );

    assert.deepEqual(out.columns, ['id', 'v', 'type']);
    assert.equal(out.rows.length, cases.length);
    cases.forEach(([input, expected, type], i) => {
      assert.deepEqual(out.inserts[i], { rowsAffected: 1, lastInsertRowid: String(i + 1) }, `insert #${i + 1}`);
      assert.deepEqual(
        out.rows[i],
        { length: 3, id: i + 1, v: expected ?? input, byNameSame: true, type },
        `value #${i + 1} ${JSON.stringify(input).slice(0, 80)}`,
      );
    });
    assert.equal(out.named, 1, 'a BigInt named argument matches the stored -2^63');
    assert.deepEqual(out.jsonRow7, [7, '9223372036854775807', 'integer'], 'toJSON gives bigints as strings');
    assert.deepEqual(out.negZero, [{ t: 'number', v: '-0' }, 'real'], '-0.0 keeps its sign');
  });

  it('round-trips a 1 MiB random blob byte for byte', { timeout: STEP_TIMEOUT }, async () => {
    const bytes = crypto.randomBytes(1024 * 1024);
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    const out = await inPage(
      async ({ url, token, b64 }) => {
        const sent = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const db = window.edgesync.createClient({ url, authToken: token });
        await db.execute('create table big (id integer primary key, data blob)');
        await db.execute({ sql: 'insert into big (id, data) values (?, ?)', args: [1, sent] });
        const rs = await db.execute('select data, length(data) as len, hex(substr(data, 1, 8)) as head from big where id = 1');
        const buffer = rs.rows[0].data;
        const got = new Uint8Array(buffer);
        let firstDiff = -1;
        if (buffer instanceof ArrayBuffer) {
          for (let i = 0; i < Math.max(sent.length, got.length); i++) {
            if (sent[i] !== got[i]) {
              firstDiff = i;
              break;
            }
          }
        }
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', got));
        db.close();
        return {
          isArrayBuffer: buffer instanceof ArrayBuffer,
          sentLength: sent.length,
          length: got.length,
          serverLength: rs.rows[0].len,
          serverHead: rs.rows[0].head,
          firstDiff,
          sha256: window.__codec.hex(digest),
        };
      },
      { b64: bytes.toString('base64') },
    );
    assert.deepEqual(out, {
      isArrayBuffer: true,
      sentLength: bytes.length,
      length: bytes.length,
      serverLength: bytes.length,
      serverHead: bytes.subarray(0, 8).toString('hex').toUpperCase(),
      firstDiff: -1,
      sha256,
    });
  });

  it('a failing write batch commits nothing and reports SQLITE_CONSTRAINT at statement 1', { timeout: STEP_TIMEOUT }, async () => {
    const out = await inPage(async ({ url, token }) => {
      const { EdgesyncError } = await import('/pkg/web.js');
      const db = window.edgesync.createClient({ url, authToken: token });
      await db.execute('create table acct (id integer primary key, name text not null unique)');
      await db.execute("insert into acct (id, name) values (1, 'alice')");
      let error = null;
      try {
        await db.batch(
          [
            "insert into acct (id, name) values (2, 'bob')",
            "insert into acct (id, name) values (3, 'alice')", // unique violation
            "insert into acct (id, name) values (4, 'carol')",
          ],
          'write',
        );
      } catch (e) {
        error = {
          code: e.code,
          step: e.statementIndex,
          name: e.name,
          isError: e instanceof Error,
          isEdgesyncError: e instanceof EdgesyncError,
          hasMessage: typeof e.message === 'string' && e.message.length > 0,
        };
      }
      const after = await db.execute('select id, name from acct order by id');
      // And a write batch that succeeds commits every statement.
      const ok = await db.batch(
        ["insert into acct (id, name) values (5, 'dave')", { sql: 'insert into acct (id, name) values (?, ?)', args: [6, 'erin'] }, 'select count(*) as n from acct'],
        'write',
      );
      const final = await db.execute('select count(*) as n from acct');
      db.close();
      return {
        error,
        rowsAfterFailure: after.rows.map((r) => [r.id, r.name]),
        okResults: ok.length,
        countInside: ok[2].rows[0].n,
        finalCount: final.rows[0].n,
      };
    });
    assert.deepEqual(out.error, { code: 'SQLITE_CONSTRAINT', step: 1, name: 'LibsqlBatchError', isError: true, isEdgesyncError: true, hasMessage: true });
    assert.deepEqual(out.rowsAfterFailure, [[1, 'alice']], "step 0's insert was rolled back");
    assert.equal(out.okResults, 3);
    assert.equal(out.countInside, 3);
    assert.equal(out.finalCount, 3);
  });

  it('syntax errors and bad tokens give stable codes', { timeout: STEP_TIMEOUT }, async () => {
    const otherKeyToken = generateAuth().rwToken(); // well-formed, signed by a key sqld does not know
    const out = await inPage(
      async ({ url, token, otherKeyToken }) => {
        const { EdgesyncError } = await import('/pkg/web.js');
        const describe = async (fn) => {
          try {
            await fn();
            return { threw: false };
          } catch (e) {
            return { code: e.code, status: e.status, isError: e instanceof Error, isEdgesyncError: e instanceof EdgesyncError, retryable: e.retryable };
          }
        };
        const db = window.edgesync.createClient({ url, authToken: token });
        const syntax = await describe(() => db.execute('selec 1'));
        const stillWorks = (await db.execute('select 2 as two')).rows[0].two;
        db.close();
        const closed = await describe(() => db.execute('select 1'));
        const wrongKey = await describe(() => window.edgesync.createClient({ url, authToken: otherKeyToken }).execute('select 1'));
        const tampered = await describe(() => window.edgesync.createClient({ url, authToken: token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA') }).execute('select 1'));
        const garbage = await describe(() => window.edgesync.createClient({ url, authToken: 'not-a-jwt' }).execute('select 1'));
        const missing = await describe(() => window.edgesync.createClient({ url }).execute('select 1'));
        return { syntax, stillWorks, closed, wrongKey, tampered, garbage, missing };
      },
      { otherKeyToken },
    );
    assert.deepEqual(out.syntax, { code: 'SQL_PARSE_ERROR', status: undefined, isError: true, isEdgesyncError: true, retryable: false });
    assert.equal(out.stillWorks, 2, 'the client is usable after an SQL error');
    assert.equal(out.closed.code, 'CLIENT_CLOSED');
    for (const name of ['wrongKey', 'tampered', 'garbage']) {
      assert.deepEqual(out[name], { code: 'SERVER_ERROR', status: 401, isError: true, isEdgesyncError: true, retryable: false }, name);
    }
    assert.deepEqual([out.missing.code, out.missing.status], ['SERVER_ERROR', 401]);
  });

  it('the dashboard UI runs SQL and renders rows and errors', { timeout: STEP_TIMEOUT }, async () => {
    /** Type SQL into the box, click Run, wait for that run to finish. */
    async function runInUi(sql) {
      const before = Number((await page.getAttribute('body', 'data-runs')) ?? 0);
      await page.fill('#sql', sql);
      await page.click('#run');
      await page.waitForFunction((n) => Number(document.body.dataset.runs ?? 0) > n, before);
      const error = await page.locator('#error');
      return { error: (await error.isVisible()) ? await error.textContent() : null, status: await page.textContent('#status') };
    }
    async function table() {
      return page.evaluate(() => {
        const t = document.getElementById('results');
        return {
          hidden: t.hidden,
          headers: Array.from(t.tHead.rows[0]?.cells ?? [], (c) => c.textContent),
          rows: Array.from(t.tBodies[0].rows, (r) => Array.from(r.cells, (c) => c.textContent)),
        };
      });
    }

    let r = await runInUi('create table ui_demo (id integer primary key, name text, score real, balance integer, avatar blob, note text)');
    assert.equal(r.error, null);
    assert.match(r.status, /0 rows affected/);

    r = await runInUi(
      "insert into ui_demo values (1, 'Ada Lovelace', 98.5, 9223372036854775807, x'cafebabe', null), " +
        "(2, '李小龙 🐉', 0.30000000000000004, -9223372036854775808, x'00ff10', 'Café'), " +
        "(3, 'Zoë', -1e308, 42, zeroblob(100), 'long blob')",
    );
    assert.equal(r.error, null);
    assert.match(r.status, /3 rows affected/);

    r = await runInUi('selec * from ui_demo');
    // The dashboard runs SQL on its local replica: SQLite's own code, as @libsql/client's local databases.
    assert.match(r.error, /^SQLITE_ERROR: \S/);
    assert.equal((await table()).hidden, true);

    r = await runInUi('select id, name, score, balance, avatar, note from ui_demo order by id');
    assert.equal(r.error, null);
    assert.match(r.status, /3 rows/);
    assert.deepEqual(await table(), {
      hidden: false,
      headers: ['id', 'name', 'score', 'balance', 'avatar', 'note'],
      rows: [
        ['1', 'Ada Lovelace', '98.5', '9223372036854775807', 'cafebabe', 'NULL'],
        ['2', '李小龙 🐉', '0.30000000000000004', '-9223372036854775808', '00ff10', 'Café'],
        ['3', 'Zoë', '-1e+308', '42', '00'.repeat(16) + '… (100 bytes)', 'long blob'],
      ],
    });

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('no uncaught errors happened in the page', () => {
    assert.deepEqual(
      pageErrors.map((e) => String(e?.stack ?? e)),
      [],
      `console errors for context: ${JSON.stringify(consoleErrors)}`,
    );
  });
});
