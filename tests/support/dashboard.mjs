// The dashboard and its apps driven in real Chromium, as two (or more) devices: shared
// by the dashboard and apps tests (tests/js/dashboard*.test.mjs, apps*.test.mjs) and
// the demo tour (scripts/demo/tour.mjs).
//
//   const env = await startDashboardEnv();               // sqld + the Worker's hub + static server
//   const browser = await launchChromium();
//   const a = await openDevice(browser, env, { device: 'Laptop', user: 'Ada' });
//   await a.app('transactions'); await a.recordTransaction('ops', 25, 'coffee');
//   await a.setOffline(true);                           // context.setOffline: the network is gone
//   await a.sql('select balance from accounts');        // the device's local replica
//
// Every device is its own browser context: its own storage (OPFS, localStorage), its
// own network switch. Actions go through the UI (clicks and typing); checks read the
// device's replica through `window.dashboard.db` in the page.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { createClient } from 'edgesync';
import { startSqld, REPO_ROOT } from './sqld.mjs';
import { startStaticServer } from './static-server.mjs';
import { startWorker } from './worker-env.mjs';
import { signHs256, timeClaims } from './jwt.mjs';

// One Chromium setting for every browser test (EDGESYNC_CHROMIUM, docs/testing.md).
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs';
export { CHROMIUM, CHROMIUM_ARGS };

/** The sync rules the dashboard's Worker runs with (docs/dashboard.md explains them). */
export const SYNC_RULES = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'www', 'dashboard', 'sync-rules.json'), 'utf8'));

/** The hub channels every user of the demo shares (each user's own default is `user:{sub}:*`). */
const HUB_PREFIX = 'team:demo:';

/**
 * sqld (auth on), the edge Worker under `wrangler dev` (the sync gateway in front of
 * sqld, holding the database token, and the real-time hub), and a static server for the
 * repository (the dashboard at /www/dashboard/, the package at /pkg/). The apps' tables
 * are created on sqld first by a trusted replica (users never create server tables).
 *
 * Each device gets its user's JWT (`env.userToken(user)`, HS256 with the Worker's
 * JWT_SECRET: sqld does not take it) and syncs through the Worker. `direct: true` is the
 * trusted setup instead: the pages sync straight to sqld with the database token.
 * `hub: false` leaves the hub out of the pages' configuration.
 */
export async function startDashboardEnv({ hub = true, direct = false, sub = 'demo', log = () => {} } = {}) {
  const started = [];
  const stopAll = async () => {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
  };
  try {
    const sqld = await startSqld({ auth: true });
    started.push(sqld);
    log(`sqld on ${sqld.url}`);
    const token = sqld.makeToken({ ...timeClaims(12 * 3600), a: 'rw', sub });
    await createServerTables(sqld.url, token);
    let config = {};
    const web = await startStaticServer({
      root: REPO_ROOT,
      routes: { '/www/dashboard/config.json': (_req, res) => {
        const body = JSON.stringify(config);
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(body);
      } },
    });
    started.push({ stop: () => web.close() });
    const jwtSecret = crypto.randomBytes(32).toString('hex');
    const worker = await startWorker({
      name: 'dashboard',
      vars: {
        REGIONS: [{ id: 'primary', url: sqld.url, role: 'primary' }],
        SYNC_RULES,
        HUB_CHANNELS: { subscribe: [`${HUB_PREFIX}*`], publish: [`${HUB_PREFIX}*`] },
        CORS_ORIGINS: web.url,
      },
      // Direct, the pages hold the database token and the hub takes it (sqld's key).
      secrets: { LIBSQL_AUTH_TOKEN: token, JWT_SECRET: jwtSecret, ...(direct ? { JWT_PUBLIC_KEY: sqld.auth.publicKeyPem } : {}) },
      logLevel: 'warn',
    });
    started.push(worker);
    log(`worker (sync gateway, hub) on ${worker.base}`);
    const userToken = (user) => signHs256(jwtSecret, { sub: user, ...timeClaims(12 * 3600) });
    config = direct
      ? { sync: sqld.url, token, hub: hub ? worker.base : '', hubPrefix: HUB_PREFIX }
      : { sync: worker.base, hub: hub ? worker.base : '', hubPrefix: HUB_PREFIX };
    return {
      sqld,
      worker,
      web,
      token, // the database token: the harness's own checks on sqld, never a page's
      direct,
      userToken: direct ? undefined : userToken,
      config,
      dashboardUrl: `${web.url}/www/dashboard/`,
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** Every app's tables on sqld, created and replicated by a trusted (direct) replica. */
async function createServerTables(url, token) {
  const { APPS } = await import('../../www/dashboard/src/apps/index.js');
  const admin = createClient({ url: ':memory:', syncUrl: url, authToken: token, syncOnOpen: false });
  try {
    for (const app of APPS) {
      for (const sql of app.schema) await admin.execute(sql);
      for (const [table, policies] of app.replicate) await admin.replicate(table, policies);
    }
    await admin.sync();
  } finally {
    admin.close();
  }
}

export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Polls `fn` until it returns a truthy value. */
export async function until(what, fn, timeoutMs = 20_000, stepMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * Opens the dashboard as one device in its own browser context. `query` adds settings
 * (e.g. { interval: 1000 }); the server settings come from config.json.
 */
export async function openDevice(browser, env, { device, user, query = {}, viewport = { width: 1360, height: 900 } }) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const errors = [];
  const consoleErrors = [];
  page.on('pageerror', (e) => errors.push(String(e?.stack ?? e)));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  // Through the Worker, the device signs in as its user (the page's token parameter).
  const auth = env.userToken ? { token: env.userToken(user) } : {};
  const q = new URLSearchParams({ device, user, ...auth, ...Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])) });
  const url = `${env.dashboardUrl}?${q}`;

  const d = {
    name: device,
    user,
    context,
    page,
    errors,
    consoleErrors,
    url,
    async load(route = 'overview') {
      await page.goto(`${url}#/${route}`);
      await page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
    },
    async reload() {
      await page.reload();
      await page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
    },
    /** Shows a view or app (`#/<route>`) and waits until it is on screen. */
    async app(route) {
      await page.evaluate((r) => (location.hash = `#/${r}`), route);
      await page.waitForSelector(`#view[data-view="${route}"]`);
    },
    /** Rows of a query on this device's local replica, as plain objects (bigints as strings). */
    sql(sql, args = []) {
      return page.evaluate(
        async ([sql, args]) => {
          const rs = await window.dashboard.db.execute({ sql, args });
          return rs.rows.map((r) => Object.fromEntries(rs.columns.map((c, i) => [c, typeof r[i] === 'bigint' ? String(r[i]) : r[i] instanceof Uint8Array ? Array.from(r[i]) : r[i]])));
        },
        [sql, args],
      );
    },
    async scalar(sql, args = []) {
      const [row] = await d.sql(sql, args);
      return row ? Object.values(row)[0] : undefined;
    },
    status() {
      return page.evaluate(() => window.dashboard.db.status());
    },
    /** Syncs until one sync succeeds (the first after going online may race the reconnect). */
    async syncOk(timeoutMs = 20_000) {
      return until(`${device} to sync`, () => page.evaluate(() => window.dashboard.db.sync().then((r) => r, () => false)), timeoutMs, 200);
    },
    /** Syncs until a sync moves nothing either way (this device is caught up with the server). */
    async settle(timeoutMs = 20_000) {
      return until(`${device} to settle`, async () => {
        const r = await page.evaluate(() => window.dashboard.db.sync().then((r) => r, () => false));
        return r && r.changesPushed === 0 && r.changesApplied === 0 && (await d.status()).pendingChanges === 0;
      }, timeoutMs, 100);
    },
    /** The network of this device (the browser context) on or off. */
    async setOffline(off) {
      await context.setOffline(off);
    },
    /** The dashboard's online/offline switch (pause()/resume() of the replica). */
    async setSwitch(online) {
      const box = page.locator('#online-switch');
      if ((await box.isChecked()) !== online) await page.click('label.switch');
      await until(`${device}'s switch`, async () => (await d.status()).paused === !online);
    },
    async screenshot(path) {
      await page.screenshot({ path, fullPage: false });
      return path;
    },
    async close() {
      await context.close();
    },

    // ---- app actions, through the UI -------------------------------------------------

    async recordTransaction(account, amount, memo) {
      await d.app('transactions');
      await page.selectOption('#tx-account', account);
      await page.fill('#tx-amount', String(amount));
      await page.fill('#tx-memo', memo);
      await page.click('#tx-add');
      await until(`transaction ${memo}`, async () => (await d.scalar('select count(*) from transactions where memo = ?', [memo])) > 0);
    },
    async sendMessage(room, body) {
      await d.app('chat');
      await page.click(`#rooms button[data-room="${room}"]`);
      await page.fill('#chat-input', body);
      await page.click('#chat-send');
      await until(`message ${body}`, async () => (await d.scalar('select count(*) from chat_messages where body = ?', [body])) > 0);
    },
    /** Clicks `emoji` on the message: adds this user's reaction, or takes it back if there. */
    async react(body, emoji) {
      await d.app('chat');
      const id = await d.scalar('select id from chat_messages where body = ?', [body]);
      const room = await d.scalar('select room from chat_messages where id = ?', [id]);
      await page.click(`#rooms button[data-room="${room}"]`);
      const had = JSON.parse(await d.scalar('select reactions from chat_messages where id = ?', [id])).includes(`${emoji} ${user}`);
      const msg = page.locator(`.msg[data-id="${id}"]`);
      await msg.hover();
      await msg.locator(`.react-bar button[title="React ${emoji}"]`).click();
      await until(`reaction ${emoji}`, async () => JSON.parse(await d.scalar('select reactions from chat_messages where id = ?', [id])).includes(`${emoji} ${user}`) !== had);
    },
    /** Types into the editor's document at `where` ('start' | 'end'). */
    async type(text, where = 'end') {
      await d.app('editor');
      await page.evaluate((w) => {
        const a = /** @type {HTMLTextAreaElement} */ (document.getElementById('editor-text'));
        a.focus();
        const p = w === 'start' ? 0 : a.value.length;
        a.setSelectionRange(p, p);
      }, where);
      await page.keyboard.type(text, { delay: 5 });
      await until(`the edit "${text}" saved`, async () => String(await d.scalar("select body from docs where id = 'notes'")).includes(text));
    },
    /** "Record 10 each": 10 readings from each of this device's 3 sensors, written concurrently. */
    async recordReadings() {
      await d.app('sensors');
      const before = Number(await d.scalar('select count(*) from sensor_readings where device = ?', [device]));
      await page.click('#sim-burst');
      await until('30 readings', async () => Number(await d.scalar('select count(*) from sensor_readings where device = ?', [device])) === before + 30);
    },
    async loadSampleStock() {
      await d.app('inventory');
      await page.click('#inv-sample');
      await until('sample stock', async () => (await d.scalar('select count(*) from inv_stock')) > 0);
    },
    async stockMove(kind, sku, wh, n) {
      await d.app('inventory');
      const audits = await d.scalar('select count(*) from inv_audit');
      await until('the item list', async () => (await page.locator(`#inv-sku option[value="${sku}"]`).count()) > 0);
      await page.selectOption('#inv-sku', sku);
      await page.selectOption('#inv-wh', wh);
      await page.fill('#inv-qty', String(n));
      await page.click(`#inv-${kind}`);
      await until(`the ${kind} of ${n} ${sku}`, async () => (await d.scalar('select count(*) from inv_audit')) > audits);
    },
    async transfer(sku, from, to, n) {
      await d.app('inventory');
      const audits = await d.scalar('select count(*) from inv_audit');
      await page.selectOption('#inv-sku', sku);
      await page.selectOption('#inv-wh', from);
      await page.selectOption('#inv-to', to);
      await page.fill('#inv-qty', String(n));
      await page.click('#inv-transfer');
      await until(`the transfer of ${n} ${sku}`, async () => (await d.scalar('select count(*) from inv_audit')) > audits);
    },
  };
  await d.load();
  return d;
}

/** What every device must agree on once converged: one row set per app. */
export async function appState(d) {
  return {
    balances: await d.sql('select id, balance from accounts order by id'),
    transactions: await d.sql('select id, account, amount from transactions order by id'),
    messages: await d.sql('select id, body, reactions from chat_messages order by id'),
    doc: await d.scalar("select body from docs where id = 'notes'"),
    stock: await d.sql('select id, qty from inv_stock order by id'),
    transfers: await d.sql('select id, status from inv_transfers order by id'),
    audit: await d.scalar('select count(*) from inv_audit'),
    readings: await d.scalar('select count(*) from sensor_readings'),
    fleet: await d.scalar("select readings from fleet_totals where id = 'all'"),
  };
}

/**
 * Takes a screenshot of what `d` shows and checks it for its key elements: every
 * selector must match a visible element lying within the captured viewport, `texts`
 * ({ selector: /pattern/ }) must match those elements' text, and every `canvases`
 * selector (charts) must have been drawn on (pixels of more than one color).
 */
export async function checkedShot(d, file, { visible = [], texts = {}, canvases = [] } = {}) {
  const { page } = d;
  const viewport = page.viewportSize();
  const problems = [];
  for (const sel of [...visible, ...Object.keys(texts), ...canvases]) {
    const loc = page.locator(sel).first();
    if (!(await loc.isVisible().catch(() => false))) {
      problems.push(`${sel}: not visible`);
      continue;
    }
    // A view repaints by replacing its elements: one may be detached between the two
    // calls (box null) and its successor is there a moment later.
    let box = await loc.boundingBox();
    for (let i = 0; !box && i < 10; i++) {
      await page.waitForTimeout(50);
      box = await loc.boundingBox();
    }
    if (!box || box.y >= viewport.height || box.x >= viewport.width || box.y + box.height <= 0) problems.push(`${sel}: outside the screenshot (${JSON.stringify(box)})`);
  }
  for (const [sel, re] of Object.entries(texts)) {
    const text = await page.locator(sel).first().innerText().catch(() => '');
    if (!re.test(text)) problems.push(`${sel}: text ${JSON.stringify(text.slice(0, 200))} does not match ${re}`);
  }
  for (const sel of canvases) {
    const colors = await page.locator(sel).first().evaluate((c) => {
      const ctx = c.getContext('2d');
      const { data } = ctx.getImageData(0, 0, c.width, c.height);
      const seen = new Set();
      for (let i = 0; i < data.length && seen.size < 3; i += 16) if (data[i + 3] > 0) seen.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
      return seen.size;
    });
    if (colors < 2) problems.push(`${sel}: the chart was not drawn (${colors} colors)`);
  }
  await page.screenshot({ path: file });
  const png = fs.readFileSync(file);
  // PNG header: width and height at bytes 16..24.
  const [w, h] = [png.readUInt32BE(16), png.readUInt32BE(20)];
  if (w !== viewport.width || h !== viewport.height) problems.push(`screenshot ${w}x${h}, expected the viewport ${viewport.width}x${viewport.height}`);
  if (problems.length) throw new Error(`screenshot ${file}:\n  ${problems.join('\n  ')}`);
  return file;
}

export function ensureDir(dir) {
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export { REPO_ROOT };
