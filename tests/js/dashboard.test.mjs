// The dashboard in real Chromium over a real sqld: the status at a glance, the
// online/offline switch (pause/resume), Sync now, the retry limit and its "gave up"
// state, the charts, the sync log, the table browser and the SQL console — each checked
// on screen, with screenshots (target/screenshots/dashboard-*.png) checked for their
// key elements.
//
//   node --test tests/js/dashboard.test.mjs
import { describe, before, after, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createClient as libsql } from '@libsql/client';
import { REPO_ROOT, checkedShot, ensureDir, launchChromium, openDevice, startDashboardEnv, until } from '../support/dashboard.mjs';

const SHOTS = ensureDir(path.join(REPO_ROOT, 'target', 'screenshots'));
const STEP = 90_000;

let env;
let browser;
let a;

before(async () => {
  env = await startDashboardEnv({ hub: false });
  browser = await launchChromium();
  a = await openDevice(browser, env, { device: 'Desk', user: 'Ada', query: { maxRetries: 4 } });
}, { timeout: 180_000 });

after(async () => {
  await browser?.close().catch(() => undefined);
  await env?.stop().catch(() => undefined);
});

describe('the dashboard over a local replica', { timeout: 10 * STEP }, () => {
  it("the dashboard's code type-checks against the package's declarations", { timeout: STEP }, () => {
    // tsc --noEmit over the page's JavaScript (JSDoc), with `edgesync` resolved to pkg/.
    execFileSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', path.join(REPO_ROOT, 'www', 'dashboard')], { stdio: 'pipe' });
  });

  it('opens a replica, syncs when it opens, and shows its status at a glance', { timeout: STEP }, async () => {
    await until('the first sync', async () => (await a.status()).lastPull?.ok);
    const s = await a.status();
    assert.equal(s.paused, false);
    assert.equal(s.gaveUp, false);
    assert.equal(s.persistent, true, 'a file: replica kept in OPFS');
    // It synced through the edge Worker with its user's token, which sqld itself refuses.
    const page = await a.page.evaluate(() => ({ sync: window.dashboard.device.config.sync, token: window.dashboard.device.config.token }));
    assert.equal(page.sync, env.worker.base);
    assert.equal(JSON.parse(Buffer.from(page.token.split('.')[1], 'base64url').toString()).sub, 'Ada', "the user's own token");
    const direct = libsql({ url: env.sqld.url, authToken: page.token });
    await assert.rejects(direct.execute('select 1'), /401|nauthori|AUTH|JWT/i, 'a user token is not a database token');
    direct.close();
    // The token was read from the address bar, then taken out of it, and is kept for this
    // tab only (sessionStorage), never in localStorage.
    const kept = await a.page.evaluate(() => ({ search: location.search, local: JSON.stringify({ ...localStorage }), session: sessionStorage.getItem('edgesync.dashboard.token') }));
    assert.ok(a.url.includes('token='), 'opened with ?token=');
    assert.ok(!kept.search.includes('token='), `the address bar keeps no token: ${kept.search}`);
    assert.ok(!kept.local.includes(page.token), 'no token in localStorage');
    assert.equal(kept.session, page.token);
    await until('the sidebar to say OPFS', async () => (await a.page.textContent('#device-store')) === 'OPFS · file:' + (await a.page.evaluate(() => window.dashboard.device.config.store)));
    // Every app's tables exist locally and are declared replicated.
    const replicated = (await a.sql('select tbl from _es_tables order by tbl')).map((r) => r.tbl);
    for (const t of ['accounts', 'chat_messages', 'docs', 'inv_stock', 'sensor_readings', 'transactions']) assert.ok(replicated.includes(t), `${t} is replicated`);
    assert.ok(!replicated.includes('doc_versions'), 'the editor history is local only');
    // A few syncs so the charts have points.
    for (let i = 0; i < 3; i++) await a.syncOk();
    await a.page.evaluate(() => window.dashboard.device.sample());
    await until('the header to say online', async () => (await a.page.getAttribute('#conn-pill', 'data-state')) === 'online');
    await checkedShot(a, path.join(SHOTS, 'dashboard-overview.png'), {
      visible: ['#status-cards', '#online-switch + .track', '#sync-now', '#recent-log .log-item'],
      texts: {
        '#conn-text': /^(Online · synced|Syncing…)/, // a background sync may be under way
        '#st-conn': /^Online$/,
        '#st-pending': /^0$/,
        '#st-retry': /^0 of 4$/,
        '#st-cursor': /^\d+$/,
        '#st-push-sub': /^ok at/,
        '#st-pull-sub': /^ok at/,
        '#pending-chip': /^0 pending$/,
        '#device-name': /^Desk · Ada$/,
        '#server-line': new RegExp(`^sync ${env.worker.base.replace(/[.]/g, '\\.')}$`),
      },
      canvases: ['#chart-duration canvas', '#chart-pending canvas', '#chart-bytes canvas'],
    });
    const legend = await a.page.locator('#chart-duration .u-legend').innerText();
    for (const q of ['p50', 'p95', 'p99']) assert.match(legend, new RegExp(q));
  });

  it('the online/offline switch pauses and resumes the replica; writes queue meanwhile', { timeout: STEP }, async () => {
    await a.setSwitch(false);
    await until('the header to say offline', async () => (await a.page.innerText('#conn-text')) === 'Offline (paused)');
    const syncs = await a.page.evaluate(() => window.dashboard.db.metrics().syncs);
    await a.recordTransaction('ops', 12.5, 'written while paused');
    await a.app('overview');
    await until('the pending counter', async () => /^[1-9]\d* pending$/.test(await a.page.innerText('#pending-chip')));
    assert.match(await a.page.innerText('#st-pending'), /^[1-9]/);
    // Sync now while paused: refused, said so.
    await a.page.click('#sync-now');
    await until('the refusal', async () => /INVALID_OPERATION/.test(await a.page.innerText('#toasts')));
    await a.page.waitForTimeout(1500);
    assert.equal(await a.page.evaluate(() => window.dashboard.db.metrics().syncs), syncs, 'no sync while offline');
    await checkedShot(a, path.join(SHOTS, 'dashboard-paused.png'), {
      texts: { '#conn-text': /^Offline \(paused\)$/, '#online-label': /^Offline$/, '#st-conn': /^Offline$/, '#st-conn-sub': /paused/, '#pending-chip': /pending/ },
    });
    // It stays offline across a reload (the user's choice).
    await a.reload();
    assert.equal((await a.status()).paused, true);
    assert.ok((await a.page.evaluate(() => window.dashboard.device.config.token)).length > 0, 'the token, from this tab\'s session');
    await a.setSwitch(true);
    await until('the queued writes pushed', async () => (await a.status()).pendingChanges === 0 && (await a.status()).lastPush?.ok);
    const server = libsql({ url: env.sqld.url, authToken: env.token });
    assert.equal((await server.execute("select count(*) as n from transactions where memo = 'written while paused'")).rows[0].n, 1, 'on the server');
    server.close();
  });

  it('failed syncs are retried with back-off up to maxRetries, then the dashboard shows "gave up"; Sync now recovers', { timeout: STEP }, async () => {
    await a.app('overview');
    await a.setOffline(true);
    await until('a failed sync', async () => (await a.status()).retryCount >= 1, 20_000);
    // The fourth retry is 2–4 s away: the time to look at the countdown.
    await until('the last retry scheduled', async () => (await a.status()).retryCount === 4, 20_000, 20);
    await until('the countdown', async () => /^next attempt in \d/.test(await a.page.innerText('#st-retry-sub')) && (await a.page.innerText('#st-retry')) === '4 of 4');
    assert.match(await a.page.innerText('#conn-text'), /^Offline · retry in/);
    await checkedShot(a, path.join(SHOTS, 'dashboard-retrying.png'), {
      texts: { '#st-retry': /^4 of 4$/, '#st-retry-sub': /^next attempt in/, '#st-conn': /^Offline$/ },
    });
    await until('giving up', async () => (await a.status()).gaveUp, 30_000);
    await until('the banner', () => a.page.locator('#banner').isVisible());
    await checkedShot(a, path.join(SHOTS, 'dashboard-gave-up.png'), {
      texts: {
        '#banner': /gave up after 5 failed attempts/i,
        '#conn-text': /^Gave up after 5 attempts$/,
        '#st-conn': /^Gave up$/,
        '#st-retry': /^5 of 4$/,
        '#recent-log .log-item': /sync failed/,
      },
    });
    assert.equal(await a.page.getAttribute('#conn-pill', 'data-state'), 'gave-up');
    await a.setOffline(false);
    await a.page.click('#sync-now');
    await until('recovery', async () => !(await a.status()).gaveUp && (await a.status()).retryCount === 0);
    await until('the banner gone', async () => !(await a.page.locator('#banner').isVisible()));
    assert.ok((await a.status()).nextSyncAt !== null, 'background sync runs again');
  });

  it('the sync log lists syncs and errors, filtered by kind', { timeout: STEP }, async () => {
    await a.app('activity');
    await until('log entries', async () => (await a.page.locator('#sync-log .log-item').count()) > 3);
    await a.page.selectOption('#log-filter', 'sync:error');
    await until('only errors', async () => {
      const kinds = await a.page.locator('#sync-log .log-item').evaluateAll((els) => els.map((e) => e.dataset.event));
      return kinds.length >= 3 && kinds.every((k) => k === 'sync:error');
    });
    await checkedShot(a, path.join(SHOTS, 'dashboard-sync-log.png'), {
      visible: ['#conflict-feed', '#sync-log'],
      texts: { '#sync-log .log-item': /sync failed\s+SERVER_UNREACHABLE/ },
    });
  });

  it('the table browser and the SQL console work on the local replica', { timeout: STEP }, async () => {
    await a.app('data');
    await until('the table list', async () => (await a.page.locator('#table-list button').count()) > 10);
    await a.page.click('#table-list button[data-table="transactions"]');
    await until('the browsed table', async () => (await a.page.innerText('#browse-title')) === 'transactions');
    assert.match(await a.page.innerText('#browse-meta'), /replicated/);
    assert.match(await a.page.innerText('#browse'), /written while paused/);
    await a.page.fill('#sql', "select account, amount from transactions where memo = 'written while paused'");
    await a.page.click('#run');
    await until('the result', async () => /1 row in/.test(await a.page.innerText('#status')));
    assert.deepEqual(await a.page.locator('#results tbody tr td').allInnerTexts(), ['ops', '1250']);
    await checkedShot(a, path.join(SHOTS, 'dashboard-data.png'), {
      visible: ['#table-list', '#sql', '#results', '#browse'],
      texts: { '#browse-title': /^transactions$/, '#status': /^1 row in/ },
    });
    await a.page.fill('#sql', 'selec 1');
    await a.page.click('#run');
    await until('the error', () => a.page.locator('#error').isVisible());
    assert.match(await a.page.innerText('#error'), /^SQLITE_ERROR: /);
  });

  it('no uncaught errors in the page', () => {
    assert.deepEqual(a.errors, [], `console errors: ${JSON.stringify(a.consoleErrors)}`);
  });
});
