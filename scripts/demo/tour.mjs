// The demo tour (run by scripts/demo.sh after the build): two browser devices on one
// sqld show what edgesync is for — a local replica that keeps working offline and
// converges with the others, column by column.
//
//   node scripts/demo/tour.mjs [--serve] [--no-tour] [--out DIR]
import path from 'node:path';
import { REPO_ROOT, appState, ensureDir, launchChromium, openDevice, startDashboardEnv, until } from '../../tests/support/dashboard.mjs';

const args = process.argv.slice(2);
const serve = args.includes('--serve');
const tour = !args.includes('--no-tour');
const outArg = args.indexOf('--out');
const out = ensureDir(path.resolve(outArg >= 0 ? args[outArg + 1] : path.join(REPO_ROOT, 'target', 'demo')));

const t0 = Date.now();
const secs = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const say = (line) => console.log(line);
const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const ok = (s) => say(`${process.stdout.isTTY ? '\x1b[32m✓\x1b[0m' : '✓'} ${s}`);
const money = (cents) => (Number(cents) / 100).toFixed(2);

let env;
let browser;
const cleanup = async () => {
  await browser?.close().catch(() => undefined);
  await env?.stop().catch(() => undefined);
};
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => void cleanup().then(() => process.exit(143)));

async function runTour() {
  const shots = [];
  const shot = async (d, route, name) => {
    if (route) await d.app(route);
    await d.page.waitForTimeout(250); // let charts and lists paint
    shots.push(await d.screenshot(path.join(out, `${name}.png`)));
  };

  browser = await launchChromium();
  const [laptop, phone] = await Promise.all([
    openDevice(browser, env, { device: 'Laptop', user: 'Ada' }),
    openDevice(browser, env, { device: 'Phone', user: 'Grace' }),
  ]);
  await Promise.all([laptop.syncOk(), phone.syncOk()]);
  // What the store says once open (the dashboard asked for file:; memory where no OPFS).
  const durable = await Promise.all([laptop, phone].map((d) => d.page.evaluate(() => window.dashboard.db.status().persistent === true)));
  ok(`Laptop and Phone opened their local replicas (${durable.every(Boolean) ? 'durable, in OPFS' : 'in memory: no OPFS here'}) and synced with sqld (${secs()})`);

  await laptop.loadSampleStock();
  await laptop.syncOk();
  await phone.syncOk();
  const widgets0 = await phone.scalar("select qty from inv_stock where id = 'widget@north'");

  // Live: the phone pulls the moment the laptop's push is announced on the hub.
  await phone.app('chat');
  const hello = 'Hello from the laptop 👋';
  const sent = Date.now();
  await laptop.sendMessage('general', hello);
  await until('the message on the phone', async () => (await phone.scalar('select count(*) from chat_messages where body = ?', [hello])) > 0, 15_000, 20);
  ok(`Chat: the phone received the laptop's message live, ${Date.now() - sent} ms after it was sent (real-time hub)`);

  await phone.setOffline(true);
  await phone.page.evaluate(() => window.dashboard.db.sync().catch(() => undefined)); // it notices
  ok('The phone lost its network (browser context offline); both keep working:');

  await laptop.recordReadings();
  await phone.recordReadings();
  await laptop.recordTransaction('ops', 25, 'Laptop: coffee beans');
  await laptop.recordTransaction('ops', 20, 'Laptop: printer paper');
  await phone.recordTransaction('ops', -10, 'Phone: taxi');
  await phone.recordTransaction('ops', 5, 'Phone: refund');
  await shot(phone, 'transactions', '01-phone-offline-transactions');
  await laptop.react(hello, '👍');
  await phone.react(hello, '🎉');
  await laptop.type('Agenda: ship the dashboard.', 'end');
  await phone.type('Phone: bring snacks. ', 'start');
  await laptop.stockMove('sell', 'widget', 'north', 12);
  await phone.stockMove('sell', 'widget', 'north', 15);
  await laptop.stockMove('sell', 'gadget', 'north', 4);
  await phone.stockMove('sell', 'gadget', 'north', 3);
  await laptop.syncOk();
  const pending = (await phone.status()).pendingChanges;
  say(`    counter  30 + 30 sensor readings, 2 + 2 transactions on account "ops"`);
  say(`    set      👍 and 🎉 on the same chat message`);
  say(`    text     both edited the same document`);
  say(`    custom   widgets in stock: ${widgets0}; the laptop sold 12, the phone 15`);
  say(`    the phone holds ${pending} change records, the laptop pushed its own`);
  await shot(phone, 'overview', '02-phone-offline-overview');

  const back = Date.now();
  await phone.setOffline(false);
  await phone.syncOk();
  await laptop.syncOk();
  await Promise.all([phone.settle(), laptop.settle()]);
  const [a, b] = [await appState(laptop), await appState(phone)];
  const same = JSON.stringify(a) === JSON.stringify(b);
  if (!same) throw new Error(`the devices differ after syncing:\nlaptop ${JSON.stringify(a)}\nphone  ${JSON.stringify(b)}`);
  ok(`The phone came back online: both devices converged in ${((Date.now() - back) / 1000).toFixed(1)} s`);
  const ops = a.balances.find((r) => r.id === 'ops');
  const msg = a.messages.find((m) => m.body === hello);
  const stock = Object.fromEntries(a.stock.map((r) => [r.id, r.qty]));
  const conflicts = await phone.page.evaluate(() => window.dashboard.device.conflicts.length);
  say(`    counter  ops balance ${money(ops.balance)} on both (25 + 20 − 10 + 5), fleet readings ${a.fleet} = ${a.readings} rows: every increment counted once`);
  say(`    set      reactions ${JSON.parse(msg.reactions).join(', ')} on both`);
  say(`    text     "${a.doc}"`);
  say(`    custom   widgets@north ${stock['widget@north']} (the phone's sale of 15 was refused: never oversell), gadgets@north ${stock['gadget@north']} (12 − 4 − 3)`);
  say(`             ${conflicts} conflict${conflicts === 1 ? '' : 's'} resolved on the phone, shown in its conflict feed and the audit trail`);

  await shot(laptop, 'overview', '03-laptop-overview');
  await shot(phone, 'activity', '04-phone-conflicts');
  await shot(laptop, 'sensors', '05-laptop-sensors');
  await shot(laptop, 'transactions', '06-laptop-transactions');
  await shot(phone, 'chat', '07-phone-chat');
  await shot(phone, 'inventory', '08-phone-inventory');
  await phone.app('editor');
  await phone.page.focus('#editor-text');
  await laptop.app('editor');
  await until('the phone\'s cursor on the laptop', () => laptop.page.locator('#editor-mirror .caret').count(), 10_000);
  await shot(laptop, null, '09-laptop-editor');
  await shot(laptop, 'data', '10-laptop-tables');
  const errors = [...laptop.errors, ...phone.errors];
  if (errors.length) throw new Error(`errors in the pages:\n${errors.join('\n')}`);
  say(`Screenshots (${shots.length}) in ${path.relative(process.cwd(), out) || out}/`);
  await browser.close();
  browser = undefined;
}

try {
  say(bold('edgesync demo: two browser devices, one sqld, the Worker\'s real-time hub'));
  env = await startDashboardEnv({ hub: true });
  say(`    sqld ${env.sqld.url} · hub ${env.worker.base} · dashboard ${env.dashboardUrl} (${secs()})`);
  if (tour) await runTour();
  say(`Done in ${secs()}.`);
  if (serve) {
    say('');
    say(bold(`Open the dashboard: ${env.dashboardUrl}`));
    say('    Each browser profile (or private window) is a device with its own store; open two to see them converge.');
    say('    Ctrl+C stops sqld, the Worker and the web server.');
    await new Promise(() => {});
  }
} catch (e) {
  console.error(`demo failed: ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  if (!serve || process.exitCode) await cleanup();
}
