// The five seed apps in real Chromium: two browser contexts are two devices syncing
// through one real sqld, with the edge Worker's real-time hub (wrangler dev) for live
// messages, typing and presence. In every app one device goes offline
// (context.setOffline), both edit concurrently, it comes back, and both converge —
// counters exact, the set keeps both reactions, the text keeps both edits, the custom
// rule never oversells. Each app's screen is captured (target/screenshots/app-*.png)
// and checked for its key elements.
//
//   node --test tests/js/apps.test.mjs
import { describe, before, after, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createClient as libsql } from '@libsql/client';
import { REPO_ROOT, appState, checkedShot, ensureDir, launchChromium, openDevice, startDashboardEnv, until } from '../support/dashboard.mjs';

const SHOTS = ensureDir(path.join(REPO_ROOT, 'target', 'screenshots'));
const STEP = 120_000;

let env;
let browser;
let server;
/** Two devices: `a` stays online, `b` goes offline in every app. */
let a;
let b;

before(async () => {
  env = await startDashboardEnv({ hub: true });
  server = libsql({ url: env.sqld.url, authToken: env.token });
  browser = await launchChromium();
  [a, b] = await Promise.all([
    openDevice(browser, env, { device: 'Laptop', user: 'Ada' }),
    openDevice(browser, env, { device: 'Phone', user: 'Grace' }),
  ]);
  await a.syncOk();
  await b.syncOk();
}, { timeout: 240_000 });

after(async () => {
  server?.close();
  await browser?.close().catch(() => undefined);
  await env?.stop().catch(() => undefined);
});

/** b offline, `edits` run, b back online; then both devices settle with the server. */
async function offlineRound(edits) {
  await b.setOffline(true);
  try {
    await edits();
  } catch (e) {
    await b.setOffline(false); // one failing round does not leave b offline for the next
    throw e;
  }
  await a.syncOk(); // a pushes first: b's concurrent edits meet a's on the server
  await b.setOffline(false);
  await b.syncOk();
  await a.syncOk();
  await b.settle();
  await a.settle();
}

async function converged() {
  const [sa, sb] = [await appState(a), await appState(b)];
  assert.deepEqual(sb, sa, 'both devices hold the same rows');
  return sa;
}

const serverScalar = async (sql, args = []) => Object.values((await server.execute({ sql, args })).rows[0] ?? {})[0];

describe('the seed apps on two devices, one offline', { timeout: 12 * STEP }, () => {
  it('IoT sensors: several writers on each device; the fleet counter is exact', { timeout: STEP }, async () => {
    await offlineRound(async () => {
      await a.recordReadings();
      await b.recordReadings();
      await b.recordReadings();
      // Offline, the phone's analytics are over what it has: its own 60 plus nothing new.
      assert.equal(Number(await b.scalar("select count(*) from sensor_readings where device = 'Phone'")), 60);
    });
    const s = await converged();
    assert.equal(Number(s.readings), 90);
    assert.equal(Number(s.fleet), 90, 'fleet counter = 30 + 60: every increment once');
    assert.equal(Number(await serverScalar("select readings from fleet_totals where id = 'all'")), 90);
    const perSensor = await a.sql('select id, readings, (select count(*) from sensor_readings r where r.sensor = s.id) as n from sensors s order by id');
    assert.equal(perSensor.length, 6);
    for (const r of perSensor) assert.equal(Number(r.readings), Number(r.n), `${r.id}: counter = rows`);
    await a.app('sensors');
    await until('the analytics', async () => /90/.test(await a.page.innerText('#fleet-total')));
    await checkedShot(a, path.join(SHOTS, 'app-sensors.png'), {
      visible: ['#sensor-grid .sensor', '#analytics table', '#sim-toggle', '#sim-burst'],
      texts: { '#fleet-total': /^90$/, '#fleet-sub': /all synced/, '#local-total': /^90$/, '#analytics': /Phone temperature[\s\S]*Laptop temperature|Laptop temperature[\s\S]*Phone temperature/ },
      canvases: ['#rpm-chart canvas'],
    });
  });

  it('transactions: per-row pending/synced state; balances (counters) exact', { timeout: STEP }, async () => {
    await offlineRound(async () => {
      await a.recordTransaction('ops', 25, 'A coffee');
      await a.recordTransaction('ops', 20, 'A paper');
      await a.recordTransaction('sales', 100, 'A invoice');
      await b.recordTransaction('ops', -10, 'B taxi');
      await b.recordTransaction('ops', 5.55, 'B refund');
      // The phone shows its rows as pending, with the retry countdown.
      await b.page.evaluate(() => window.dashboard.db.sync().catch(() => undefined));
      await until('the pending badges', async () => (await b.page.locator('#tx-table .badge.pending').count()) === 2);
      // The delivery card repaints on its own timer (250 ms): wait for the failed sync there.
      await until('the retry countdown', async () => /retry \d+\s+next in/.test(await b.page.innerText('#tx-delivery')));
      await checkedShot(b, path.join(SHOTS, 'app-transactions-offline.png'), {
        visible: ['#tx-form', '#balances table', '#tx-log .log-item'],
        texts: { '#tx-summary': /^2 pending · 0 synced$/, '#tx-delivery': /retry \d+\s+next in/, '#tx-table': /B taxi[\s\S]*pending|pending[\s\S]*B taxi/ },
      });
    });
    const s = await converged();
    const bal = Object.fromEntries(s.balances.map((r) => [r.id, Number(r.balance)]));
    assert.equal(bal.ops, 2500 + 2000 - 1000 + 555);
    assert.equal(bal.sales, 10000);
    assert.equal(Number(await serverScalar("select balance from accounts where id = 'ops'")), 4055);
    await b.app('transactions');
    await until('every row synced', async () => (await b.page.locator('#tx-table .badge.synced').count()) === 5 && (await b.page.locator('#tx-table .badge.pending').count()) === 0);
    await checkedShot(b, path.join(SHOTS, 'app-transactions.png'), {
      texts: { '#tx-summary': /^0 pending · 5 synced$/, '[data-balance="ops"]': /^40\.55$/, '[data-balance="sales"]': /^100\.00$/ },
    });
  });

  it('chat: messages sent offline arrive; reactions (set) keep both; read receipts; typing and live delivery through the hub', { timeout: STEP }, async () => {
    // Live first: b is on the chat, a sends; b pulls at once (hub wake-up, no interval).
    await b.app('chat');
    await a.sendMessage('general', 'live hello');
    await until('the live message on b', async () => (await b.page.locator('.msg .bubble', { hasText: 'live hello' }).count()) === 1, 10_000);
    // Typing indicator: ephemeral, through the hub.
    await a.app('chat');
    await a.page.click('#rooms button[data-room="general"]');
    await a.page.type('#chat-input', 'typ');
    await until('the typing indicator on b', async () => /Ada is typing/.test(await b.page.innerText('#typing')), 10_000);
    await a.page.fill('#chat-input', '');

    await offlineRound(async () => {
      await a.sendMessage('general', 'from the laptop');
      await b.sendMessage('general', 'from the phone, offline');
      await a.react('live hello', '👍');
      await b.react('live hello', '🎉');
      await b.react('live hello', '👍');
      await b.react('live hello', '👍'); // and taken back: a removal
    });
    const s = await converged();
    const bodies = s.messages.map((m) => m.body).sort();
    assert.deepEqual(bodies, ['from the laptop', 'from the phone, offline', 'live hello']);
    const live = s.messages.find((m) => m.body === 'live hello');
    assert.deepEqual(JSON.parse(live.reactions), ['🎉 Grace', '👍 Ada']);
    // Read receipts: b has read a's messages; a sees it under its last message.
    await b.app('chat');
    await a.app('chat');
    await b.settle();
    await a.settle();
    await until("the read receipt on a's last message", async () => /Seen by Grace/.test(await a.page.innerText('#messages')), 15_000);
    await checkedShot(a, path.join(SHOTS, 'app-chat.png'), {
      visible: ['#rooms button[data-room="general"].active', '#chat-input', '.msg.mine', '.msg:not(.mine)'],
      texts: { '#messages': /live hello[\s\S]*from the laptop|from the laptop[\s\S]*live hello/, '.reaction[data-emoji="👍"]': /1/, '.reaction[data-emoji="🎉"]': /1/, '.seen': /Seen by Grace/ },
    });
  });

  it('chat: text typed while the room\'s draft is being read is sent, not erased by the stored draft', { timeout: STEP }, async () => {
    await a.app('chat');
    // The draft's answer is slow to come back (a loaded device): the user types meanwhile.
    await a.page.evaluate(() => {
      const db = window.dashboard.db;
      const execute = db.execute.bind(db);
      db.execute = async (stmt) => {
        const rs = await execute(stmt);
        if (String(stmt?.sql ?? stmt).startsWith('select body from chat_drafts')) await new Promise((r) => setTimeout(r, 400));
        return rs;
      };
    });
    try {
      await a.page.click('#rooms button[data-room="random"]');
      await a.page.fill('#chat-input', 'typed during the draft read');
      await new Promise((r) => setTimeout(r, 800)); // the answer arrives before Send is clicked
      await a.page.click('#chat-send');
      await until('the message sent', async () => (await a.scalar('select count(*) from chat_messages where body = ?', ['typed during the draft read'])) > 0, 10_000);
      await new Promise((r) => setTimeout(r, 800)); // past the draft timer
      assert.equal(await a.scalar("select count(*) from chat_drafts where body = 'typed during the draft read'"), 0, 'not left behind as a draft');
    } finally {
      await a.page.evaluate(() => { delete window.dashboard.db.execute; });
      await a.page.click('#rooms button[data-room="general"]');
    }
  });

  it('inventory: the custom rule never oversells; transfers; low-stock alerts; the audit trail', { timeout: STEP }, async () => {
    await a.loadSampleStock();
    await a.syncOk();
    await b.syncOk();
    await offlineRound(async () => {
      await a.stockMove('sell', 'widget', 'north', 16); // 20 → 4: low
      await b.stockMove('sell', 'widget', 'north', 10); // 20 → 10 here; 4 − 10 on the server: refused
      await a.stockMove('sell', 'gadget', 'north', 4); // 12 − 4
      await b.stockMove('sell', 'gadget', 'north', 3); // − 3: fits, merged
      await b.stockMove('restock', 'sprocket', 'south', 7);
      await a.transfer('sprocket', 'north', 'south', 5);
    });
    // The transfer is credited once its debit is on the server (after a's sync).
    await until('the transfer received', async () => (await a.scalar('select status from inv_transfers')) === 'received', 15_000);
    await a.settle();
    await b.settle();
    const s = await converged();
    const stock = Object.fromEntries(s.stock.map((r) => [r.id, Number(r.qty)]));
    assert.equal(stock['widget@north'], 4, "the phone's sale of 10 was refused: 4 − 10 would oversell");
    assert.equal(stock['gadget@north'], 5, '12 − 4 − 3');
    assert.equal(stock['sprocket@north'], 35, '40 − 5');
    assert.equal(stock['sprocket@south'], 52, '40 + 7 + 5');
    for (const [k, v] of Object.entries(stock)) assert.ok(v >= 0, `${k} ≥ 0`);
    assert.equal(Number(await serverScalar("select qty from inv_stock where id = 'widget@north'")), 4);
    const refusals = await b.sql("select sku, warehouse, note from inv_audit where kind = 'refused'");
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0].sku, 'widget');
    const feed = await b.page.evaluate(() => window.dashboard.device.conflicts.map((c) => ({ key: c.key, local: c.local, remote: c.remote, base: c.base, resolved: c.resolved })));
    assert.deepEqual(feed.find((c) => c.key === '["widget@north"]'), { key: '["widget@north"]', local: 10, remote: 4, base: 20, resolved: 4 });
    assert.deepEqual(feed.find((c) => c.key === '["gadget@north"]'), { key: '["gadget@north"]', local: 9, remote: 8, base: 12, resolved: 5 });

    await a.app('inventory');
    await until('the low-stock alert', async () => (await a.page.locator('[data-alert="widget@north"]').count()) === 1);
    await checkedShot(a, path.join(SHOTS, 'app-inventory.png'), {
      visible: ['#inv-stock table', 'tr.low', '#inv-audit table', '#inv-transfers table'],
      texts: { '[data-stock="widget@north"]': /^4$/, '[data-stock="sprocket@south"]': /^52$/, '#inv-alerts': /Widget\s+north: 4 left \(min 5\)/, '#inv-transfers': /north → south[\s\S]*received/, '#inv-audit': /refused[\s\S]*would oversell/ },
    });
    await b.app('activity');
    await checkedShot(b, path.join(SHOTS, 'app-conflict-feed.png'), {
      visible: ['#conflict-feed table'],
      texts: { '#conflict-feed': /inv_stock\s+widget@north\s+qty\s+10\s+4\s+20\s+4/ },
    });
  });

  it('editor: concurrent text edits merge; cursors through the hub; version history with textAt and restore', { timeout: STEP }, async () => {
    await a.type('Shared notes. ', 'end');
    await a.syncOk();
    await b.syncOk();
    await a.page.waitForTimeout(4500); // a pause in typing: the next edit starts a new version
    await offlineRound(async () => {
      await a.type('Laptop was here.', 'end');
      await b.type('Phone first! ', 'start');
    });
    const s = await converged();
    assert.equal(s.doc, 'Phone first! Shared notes. Laptop was here.');
    assert.equal(await serverScalar("select body from docs where id = 'notes'"), s.doc);

    // Presence: b's cursor shows on a's screen.
    await b.app('editor');
    await b.page.focus('#editor-text');
    await a.app('editor');
    await until("b's cursor on a", async () => (await a.page.locator('#editor-mirror .caret[data-name="Grace"]').count()) === 1, 15_000);
    await until('the version list', async () => (await a.page.locator('#versions button').count()) >= 3);
    await checkedShot(a, path.join(SHOTS, 'app-editor.png'), {
      visible: ['#editor-text', '#presence [data-peer="Grace"]', '#versions button'],
      texts: { '#versions': /From another device/, '#doc-meta': /synced/ },
    });
    // History: the oldest version is 'Shared notes. ' (typed here); restore it.
    const versions = a.page.locator('#versions button');
    await versions.last().click();
    await until('the preview', () => a.page.locator('#version-view').isVisible());
    assert.equal(await a.page.locator('#version-preview').textContent(), 'Shared notes. ');
    await a.page.click('#version-restore');
    await until('the restored text', async () => (await a.scalar("select body from docs where id = 'notes'")) === 'Shared notes. ');
    await a.syncOk();
    await b.settle();
    assert.equal(await b.scalar("select body from docs where id = 'notes'"), 'Shared notes. ', 'the restore synced like any edit');
    assert.equal(await a.page.inputValue('#editor-text'), 'Shared notes. ');
  });

  it('every app survives a reload: the replica is durable (OPFS) and resyncs', { timeout: STEP }, async () => {
    const before = await appState(b);
    // The switch, not the network: a reload must fetch the page. Paused, the write cannot
    // sync before the reload; the switch stays off across it (paused: true at open).
    await b.setSwitch(false);
    await b.recordTransaction('payroll', -300, 'written just before the reload');
    await b.reload();
    assert.equal((await b.page.evaluate(() => window.dashboard.device.storage)), 'opfs', 'the dashboard opened a file: replica in OPFS');
    assert.equal((await b.status()).persistent, true, 'the store is kept in OPFS');
    assert.equal(await b.scalar("select count(*) from transactions where memo = 'written just before the reload'"), 1);
    assert.equal((await b.status()).pendingChanges > 0, true);
    await b.setSwitch(true);
    await b.settle();
    await a.settle();
    const s = await converged();
    assert.equal(s.transactions.length, before.transactions.length + 1);
    assert.equal(Number(s.balances.find((r) => r.id === 'payroll').balance), -30000);
  });

  it("through the edge Worker: a user's drafts reach only their replicas; another user's row is refused and shown in the sync log", { timeout: STEP }, async () => {
    // Drafts are per user (SYNC_RULES: read and write `user = :sub`).
    const draft = async (d, room, text) => {
      await d.app('chat');
      await d.page.click(`#rooms button[data-room="${room}"]`);
      await d.page.fill('#chat-input', text);
      await until(`${d.user}'s draft saved`, async () => (await d.scalar('select body from chat_drafts where id = ?', [`${room}:${d.user}`])) === text);
      await d.settle();
    };
    await draft(b, 'random', 'a draft only Grace sees');
    await draft(a, 'random', "Ada's own draft");
    await a.settle();
    await b.settle();
    assert.equal(await serverScalar("select count(*) from chat_drafts where room = 'random'"), 2, 'both drafts on the server');
    assert.deepEqual(await a.sql('select id, body from chat_drafts'), [{ id: 'random:Ada', body: "Ada's own draft" }], "Ada's replica never receives Grace's draft");
    assert.deepEqual(await b.sql('select id, body from chat_drafts'), [{ id: 'random:Grace', body: 'a draft only Grace sees' }]);

    // Ada's page writes rows as Grace: the Worker refuses them, the rows leave her replica.
    await a.page.evaluate(() => {
      window.refusals = [];
      window.dashboard.db.on('sync:refused', (e) => window.refusals.push(e));
    });
    await a.sql("insert into chat_drafts (id, room, user, body, updated_at) values ('general:Grace', 'general', 'Grace', 'forged by Ada', 1)");
    await a.sql("insert into chat_messages (id, room, author, body, sent_at) values ('m-forged', 'general', 'Grace', 'forged by Ada', 1)");
    await a.syncOk();
    const refusals = await until('the refusals', async () => {
      const r = await a.page.evaluate(() => window.refusals);
      return r.length >= 2 && r;
    });
    assert.deepEqual(refusals.map((e) => [e.table, e.key, e.op, e.code]).sort(), [
      ['chat_drafts', '["general:Grace"]', 'i', 'PERMISSION_DENIED'],
      ['chat_messages', '["m-forged"]', 'i', 'PERMISSION_DENIED'],
    ]);
    assert.equal(await serverScalar("select count(*) from chat_drafts where body = 'forged by Ada'"), 0, 'never applied');
    assert.equal(await serverScalar("select count(*) from chat_messages where body = 'forged by Ada'"), 0);
    assert.equal(await a.scalar("select count(*) from chat_drafts where body = 'forged by Ada'"), 0, 'gone from her replica: she may not read it');
    await a.settle();
    assert.equal((await a.status()).pendingChanges, 0, 'left the outbox, not retried');

    await a.app('activity');
    await a.page.selectOption('#log-filter', 'sync:refused');
    await until('the refusals in the sync log', async () => (await a.page.locator('#sync-log .log-item[data-event="sync:refused"]').count()) >= 2);
    await checkedShot(a, path.join(SHOTS, 'app-refused.png'), {
      visible: ['#sync-log'],
      texts: { '#sync-log': /refused\s+PERMISSION_DENIED: insert of chat_drafts general:Grace/ },
    });
    await converged();
  });

  it('no uncaught errors in either page', () => {
    assert.deepEqual([...a.errors, ...b.errors], [], `console errors: ${JSON.stringify([...a.consoleErrors, ...b.consoleErrors])}`);
  });
});
