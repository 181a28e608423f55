// Offline-first transactions (seed 002): record transactions with or without a
// network; each row shows whether it is still pending on this device or synced
// (`db.pendingKeys()`), the device retries with back-off (`status()`), and the sync log
// tells what happened. Balances are counters, so every device's entries add up exactly.
import { $, ago, card, clock, coalesce, duration, fill, h, money, newId, simpleTable, untilNext } from "../ui.js";
import { logItem } from "../views/activity.js";

export const id = "transactions";
export const title = "Transactions";

export const schema = [
  "create table if not exists accounts (id text primary key, name text not null, balance integer not null default 0)",
  `create table if not exists transactions (id text primary key, account text not null, amount integer not null,
     memo text not null default '', device text not null, created_at integer not null)`,
];

export const replicate = [
  ["accounts", { balance: "counter" }],
  ["transactions", {}],
];

const ACCOUNTS = [
  ["ops", "Operations"],
  ["sales", "Sales"],
  ["payroll", "Payroll"],
];

export function init(device) {
  // The same rows with the same values on every device: inserting them twice is harmless.
  void device.db.batch(ACCOUNTS.map(([k, name]) => ({ sql: "insert or ignore into accounts (id, name) values (?, ?)", args: [k, name] })), "write");
}

/** Records one transaction (cents) and moves its account's balance, in one local transaction. */
export async function record(device, account, cents, memo) {
  const txId = newId("tx");
  await device.db.batch(
    [
      { sql: "insert into transactions (id, account, amount, memo, device, created_at) values (?, ?, ?, ?, ?, ?)", args: [txId, account, cents, memo, device.config.device, Date.now()] },
      { sql: "update accounts set balance = balance + ? where id = ?", args: [cents, account] },
    ],
    "write",
  );
  device.changed("transactions", "accounts");
  return txId;
}

export function mount(el, device) {
  const db = device.db;
  const account = h("select#tx-account", null, ACCOUNTS.map(([k, name]) => h("option", { value: k }, name)));
  const amount = h("input#tx-amount", { type: "number", step: "0.01", value: "25.00", title: "Amount; negative for a debit" });
  const memo = h("input#tx-memo", { type: "text", placeholder: "Memo", value: "" });
  const add = async () => {
    const cents = Math.round(Number(/** @type {HTMLInputElement} */ (amount).value) * 100);
    if (!Number.isFinite(cents) || cents === 0) return;
    await record(device, /** @type {HTMLSelectElement} */ (account).value, cents, /** @type {HTMLInputElement} */ (memo).value || "—");
    /** @type {HTMLInputElement} */ (memo).value = "";
  };
  el.append(
    h("div.app-head", null,
      h("p", null, "Record transactions offline; each row is ", h("span.badge.pending", null, "pending"), " on this device until the server has it, then ", h("span.badge.synced", null, "synced"), ". Failed syncs are retried with exponential back-off; balances are counters, so entries from every device add up exactly."),
    ),
    h("div.grid.side", null,
      h("div.stack", null,
        card("New transaction", h("form.form#tx-form", { onsubmit: (e) => { e.preventDefault(); void add(); } },
          account, amount, memo,
          h("button.btn.primary#tx-add", { type: "submit" }, "Record"),
          h("button.btn#tx-random", { type: "button", onclick: async () => {
            for (let i = 0; i < 5; i++) await record(device, ACCOUNTS[i % 3][0], Math.round((Math.random() * 200 - 60) * 100), `batch ${i + 1}`);
          } }, "Record 5"),
        )),
        card("Transactions", h("div#tx-table"), [h("span.small.muted#tx-summary")]),
      ),
      h("div.stack", null,
        card("Balances", h("div#balances")),
        card("Delivery", h("div#tx-delivery"), [h("button.btn.small#tx-retry", { type: "button", onclick: () => void device.syncNow() }, "Retry now")]),
        card("Sync log", h("div.log#tx-log")),
      ),
    ),
  );

  const paint = coalesce(async () => {
    const pending = new Set(await db.pendingKeys("transactions"));
    const rs = await db.execute("select t.id, t.created_at, a.name as account, t.amount, t.memo, t.device from transactions t join accounts a on a.id = t.account order by t.created_at desc, t.id limit 200");
    const rows = rs.rows.map((r) => {
      const state = pending.has(JSON.stringify([r.id])) ? h("span.badge.pending", null, "pending") : h("span.badge.synced", null, "synced");
      return [state, clock(Number(r.created_at)), r.account, h("td.num", null, money(r.amount)), r.memo, r.device];
    });
    fill($("tx-table"), rows.length
      ? h("div.table-wrap", null, simpleTable(["State", "Time", "Account", "Amount", "Memo", "Device"], rows, { rowAttrs: (i) => ({ dataset: { id: String(rs.rows[i].id) } }) }))
      : h("div.empty", null, "No transactions yet"));
    $("tx-summary").textContent = `${pending.size} pending · ${rs.rows.length - [...rs.rows].filter((r) => pending.has(JSON.stringify([r.id]))).length} synced`;
    const bal = await db.execute("select id, name, balance, (select count(*) from transactions t where t.account = a.id) as n from accounts a order by name");
    fill($("balances"), simpleTable(["Account", "Entries", "Balance"], bal.rows.map((r) => [r.name, h("td.num", null, String(r.n)), h("td.num", { dataset: { balance: String(r.id) } }, money(r.balance))])));
    const log = await db.syncLog(8);
    fill($("tx-log"), log.length ? log.map(logItem) : h("div.empty", null, "No sync yet"));
  });

  const paintDelivery = () => {
    const s = device.status();
    const lines = [];
    if (s.paused) lines.push(h("div", null, h("span.badge.muted", null, "offline"), " switched off: entries wait here"));
    else if (s.gaveUp) lines.push(h("div", null, h("span.badge.bad", null, "gave up"), ` after ${s.retryCount} attempts — Retry now`));
    else if (s.retryCount > 0) lines.push(h("div", null, h("span.badge.pending", null, `retry ${s.retryCount}`), ` next in ${duration(untilNext(s))} (${s.lastPush?.error ?? "error"})`));
    else lines.push(h("div", null, h("span.badge.synced", null, "online"), ` last sync ${ago(s.lastPull?.at)}`));
    lines.push(h("div.small.muted", { style: { marginTop: "6px" } }, `${s.pendingChanges} change records pending · lag ${duration(s.lagMs)}`));
    fill($("tx-delivery"), lines);
  };
  paint();
  paintDelivery();
  const timer = setInterval(paintDelivery, 250);
  const offs = [device.on("changed", paint), device.on("synced", paint), device.on("sync-error", paint)];
  return () => {
    clearInterval(timer);
    offs.forEach((f) => f());
  };
}
