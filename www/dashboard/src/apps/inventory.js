// Inventory (seed 003): stock per warehouse in a `custom` column whose rule never
// oversells. Each device sells and restocks locally; when two devices changed the same
// stock concurrently, the server's compare-and-set refuses the later push and the rule
// runs on that device with (local, remote, base):
//
//   the local change (local − base) is applied on top of the server's value — unless
//   that would go below zero: then the whole local change is refused (the server's
//   value stays), and the refusal is written to the audit trail.
//
// Transfers debit the source at once and credit the destination only once the debit is
// on the server and was not refused. Low stock raises an alert.
import { $, card, clock, coalesce, fill, h, newId, simpleTable, toast } from "../ui.js";

export const id = "inventory";
export const title = "Inventory";

export const schema = [
  "create table if not exists inv_items (sku text primary key, name text not null, min_qty integer not null default 5)",
  "create table if not exists inv_stock (id text primary key, sku text not null, warehouse text not null, qty integer not null default 0)",
  `create table if not exists inv_transfers (id text primary key, sku text not null, from_wh text not null, to_wh text not null,
     qty integer not null, status text not null, device text not null, created_at integer not null)`,
  `create table if not exists inv_audit (id text primary key, at integer not null, device text not null, user text not null,
     sku text not null, warehouse text not null, change integer not null, kind text not null, note text not null default '')`,
];

/**
 * The never-oversell rule. Self-contained (no closure): in a browser `file:` replica it
 * runs in the database worker, rebuilt from its source text.
 */
export function neverOversell(local, remote, base) {
  const change = Number(local) - Number(base ?? 0);
  const next = Number(remote) + change;
  return next >= 0 ? next : Number(remote);
}

export const replicate = [
  ["inv_items", {}],
  ["inv_stock", { qty: neverOversell }],
  ["inv_transfers", {}],
  ["inv_audit", {}],
];

export const WAREHOUSES = ["north", "south"];
const SAMPLE = [
  ["widget", "Widget", 5, 20],
  ["gadget", "Gadget", 3, 12],
  ["sprocket", "Sprocket", 10, 40],
];

const stockId = (sku, wh) => `${sku}@${wh}`;

function audit(device, sku, wh, change, kind, note = "") {
  return {
    sql: "insert into inv_audit (id, at, device, user, sku, warehouse, change, kind, note) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    args: [newId("a"), Date.now(), device.config.device, device.config.user, sku, wh, change, kind, note],
  };
}

/** Sample items and stock (once, from one device: stock counts would otherwise add up). */
export async function loadSample(device) {
  const stmts = [];
  for (const [sku, name, min, qty] of SAMPLE) {
    stmts.push({ sql: "insert or ignore into inv_items (sku, name, min_qty) values (?, ?, ?)", args: [sku, name, min] });
    for (const wh of WAREHOUSES) {
      stmts.push({ sql: "insert or ignore into inv_stock (id, sku, warehouse, qty) values (?, ?, ?, ?)", args: [stockId(sku, wh), sku, wh, qty] });
      stmts.push(audit(device, sku, wh, qty, "stock-in", "initial stock"));
    }
  }
  await device.db.batch(stmts, "write");
  device.changed("inv_items", "inv_stock", "inv_audit");
}

async function qtyOf(device, sku, wh) {
  const rs = await device.db.execute({ sql: "select qty from inv_stock where id = ?", args: [stockId(sku, wh)] });
  return rs.rows.length ? Number(rs.rows[0].qty) : undefined;
}

/** A sale: refused here if this device's copy does not have the stock. */
export async function sell(device, sku, wh, n) {
  const have = await qtyOf(device, sku, wh);
  if (have === undefined || have < n) throw new Error(`only ${have ?? 0} ${sku} in ${wh}`);
  await device.db.batch([{ sql: "update inv_stock set qty = qty - ? where id = ?", args: [n, stockId(sku, wh)] }, audit(device, sku, wh, -n, "sale")], "write");
  device.changed("inv_stock", "inv_audit");
}

export async function restock(device, sku, wh, n) {
  await device.db.batch(
    [
      { sql: "insert or ignore into inv_stock (id, sku, warehouse, qty) values (?, ?, ?, 0)", args: [stockId(sku, wh), sku, wh] },
      { sql: "update inv_stock set qty = qty + ? where id = ?", args: [n, stockId(sku, wh)] },
      audit(device, sku, wh, n, "restock"),
    ],
    "write",
  );
  device.changed("inv_stock", "inv_audit");
}

export async function transfer(device, sku, from, to, n) {
  const have = await qtyOf(device, sku, from);
  if (have === undefined || have < n) throw new Error(`only ${have ?? 0} ${sku} in ${from}`);
  const tid = newId("t");
  await device.db.batch(
    [
      { sql: "update inv_stock set qty = qty - ? where id = ?", args: [n, stockId(sku, from)] },
      { sql: "insert into inv_transfers (id, sku, from_wh, to_wh, qty, status, device, created_at) values (?, ?, ?, ?, ?, 'in transit', ?, ?)", args: [tid, sku, from, to, n, device.config.device, Date.now()] },
      audit(device, sku, from, -n, "transfer-out", `to ${to}`),
    ],
    "write",
  );
  device.changed("inv_stock", "inv_transfers", "inv_audit");
  return tid;
}

/**
 * Transfers this device started whose debit is on the server: credited at the
 * destination, or marked refused when the rule refused the debit.
 */
async function settleTransfers(device) {
  const db = device.db;
  const open = await db.execute({ sql: "select id, sku, from_wh, to_wh, qty, created_at from inv_transfers where status = 'in transit' and device = ?", args: [device.config.device] });
  if (!open.rows.length) return;
  const pending = new Set(await db.pendingKeys("inv_stock"));
  let settled = 0;
  for (const t of open.rows) {
    const src = stockId(String(t.sku), String(t.from_wh));
    if (pending.has(JSON.stringify([src]))) continue;
    const n = Number(t.qty);
    settled++;
    const refusal = await db.execute({
      sql: "select 1 from inv_audit where kind = 'refused' and device = ? and sku = ? and warehouse = ? and at >= ? limit 1",
      args: [device.config.device, t.sku, t.from_wh, t.created_at],
    });
    if (refusal.rows.length > 0) {
      await db.batch([{ sql: "update inv_transfers set status = 'refused' where id = ?", args: [t.id] }, audit(device, String(t.sku), String(t.to_wh), 0, "transfer-refused", `${n} from ${t.from_wh}: source stock refused`)], "write");
    } else {
      await db.batch(
        [
          { sql: "insert or ignore into inv_stock (id, sku, warehouse, qty) values (?, ?, ?, 0)", args: [stockId(String(t.sku), String(t.to_wh)), t.sku, t.to_wh] },
          { sql: "update inv_stock set qty = qty + ? where id = ?", args: [n, stockId(String(t.sku), String(t.to_wh))] },
          { sql: "update inv_transfers set status = 'received' where id = ?", args: [t.id] },
          audit(device, String(t.sku), String(t.to_wh), n, "transfer-in", `from ${t.from_wh}`),
        ],
        "write",
      );
    }
    device.changed("inv_stock", "inv_transfers", "inv_audit");
  }
  if (settled > 0) await device.syncNow();
}

export function init(device) {
  device.on("conflict", (c) => {
    if (c.table !== "inv_stock" || c.column !== "qty") return;
    const change = Number(c.local) - Number(c.base ?? 0);
    if (Number(c.resolved) !== Number(c.remote) || change >= 0) return;
    const [sid] = JSON.parse(c.key);
    const [sku, wh] = String(sid).split("@");
    void device.db.execute(audit(device, sku, wh, 0, "refused", `${-change} would oversell: only ${c.remote} left on the server`));
    device.changed("inv_audit");
    toast(`Inventory: a sale of ${-change} ${sku} (${wh}) was refused — only ${c.remote} left`, "bad");
  });
  let settling = false;
  device.on("synced", async () => {
    if (settling) return;
    settling = true;
    try {
      await settleTransfers(device);
    } finally {
      settling = false;
    }
  });
}

export function mount(el, device) {
  const db = device.db;
  const sku = h("select#inv-sku");
  const wh = h("select#inv-wh", null, WAREHOUSES.map((w) => h("option", { value: w }, w)));
  const to = h("select#inv-to", null, WAREHOUSES.map((w, i) => h("option", { value: w, selected: i === 1 }, w)));
  const qty = h("input#inv-qty", { type: "number", min: 1, step: 1, value: 1 });
  const val = () => ({ sku: /** @type {HTMLSelectElement} */ (sku).value, wh: /** @type {HTMLSelectElement} */ (wh).value, n: Math.max(1, Math.floor(Number(/** @type {HTMLInputElement} */ (qty).value) || 1)) });
  const act = (fn) => async () => {
    try {
      await fn();
    } catch (e) {
      toast(String(/** @type {Error} */ (e).message), "bad");
    }
  };
  el.append(
    h("div.app-head", null,
      h("p", null, "Stock is a custom column with a never-oversell rule: concurrent sales on two devices are merged on top of each other, and a sale that would take stock below zero is refused and audited. Transfers credit the destination once the debit is on the server."),
      h("div.row", null, h("button.btn#inv-sample", { type: "button", onclick: act(() => loadSample(device)) }, "Load sample stock")),
    ),
    h("div.grid.side", null,
      h("div.stack", null,
        card("Stock", h("div#inv-stock")),
        card("Movement", h("div.form", null, sku, wh, qty,
          h("button.btn.primary#inv-sell", { type: "button", onclick: act(() => sell(device, val().sku, val().wh, val().n)) }, "Sell"),
          h("button.btn#inv-restock", { type: "button", onclick: act(() => restock(device, val().sku, val().wh, val().n)) }, "Restock"),
          h("span.muted", null, "or transfer to"), to,
          h("button.btn#inv-transfer", { type: "button", onclick: act(() => {
            const v = val();
            const dest = /** @type {HTMLSelectElement} */ (to).value;
            if (dest === v.wh) throw new Error("pick another warehouse");
            return transfer(device, v.sku, v.wh, dest, v.n);
          }) }, "Transfer"),
        )),
        card("Audit trail", h("div#inv-audit")),
      ),
      h("div.stack", null,
        card("Low-stock alerts", h("div#inv-alerts")),
        card("Transfers", h("div#inv-transfers")),
      ),
    ),
  );

  const paint = coalesce(async () => {
    const items = await db.execute("select sku, name, min_qty from inv_items order by name");
    const selected = /** @type {HTMLSelectElement} */ (sku).value;
    fill(sku, items.rows.map((r) => h("option", { value: String(r.sku), selected: r.sku === selected }, r.name)));
    const pending = new Set(await db.pendingKeys("inv_stock"));
    const stock = await db.execute(`select i.sku, i.name, i.min_qty, s.id, s.warehouse, s.qty
      from inv_stock s join inv_items i on i.sku = s.sku order by i.name, s.warehouse`);
    fill($("inv-stock"), stock.rows.length
      ? h("div.table-wrap", null, simpleTable(
          ["Item", "Warehouse", "Stock", "Min", "State"],
          stock.rows.map((r) => [r.name, r.warehouse, h("td.num", { dataset: { stock: String(r.id) } }, String(r.qty)), h("td.num", null, String(r.min_qty)),
            pending.has(JSON.stringify([r.id])) ? h("span.badge.pending", null, "pending") : h("span.badge.synced", null, "synced")]),
          { rowAttrs: (i) => ({ class: Number(stock.rows[i].qty) <= Number(stock.rows[i].min_qty) ? "low" : null }) },
        ))
      : h("div.empty", null, "No stock yet: “Load sample stock” on one device, then sync."));
    const low = stock.rows.filter((r) => Number(r.qty) <= Number(r.min_qty));
    fill($("inv-alerts"), low.length
      ? h("div.log", null, low.map((r) => h("div.log-item", { dataset: { alert: String(r.id) } }, h("span.badge.bad", null, Number(r.qty) === 0 ? "out" : "low"), h("span.what", null, `${r.name}`), h("span.detail", null, `${r.warehouse}: ${r.qty} left (min ${r.min_qty})`))))
      : h("div.empty", null, "All stock above its minimum"));
    const tr = await db.execute("select id, sku, from_wh, to_wh, qty, status, device, created_at from inv_transfers order by created_at desc limit 20");
    fill($("inv-transfers"), tr.rows.length
      ? h("div.table-wrap", null, simpleTable(["When", "Item", "Route", "Qty", "Status"], tr.rows.map((r) => [clock(Number(r.created_at)), r.sku, h("td.short", null, `${r.from_wh} → ${r.to_wh}`), h("td.num", null, String(r.qty)),
          h(`span.badge.${r.status === "received" ? "synced" : r.status === "refused" ? "bad" : "pending"}`, null, r.status)])))
      : h("div.empty", null, "No transfers"));
    const log = await db.execute("select at, device, user, sku, warehouse, change, kind, note from inv_audit order by at desc, id limit 60");
    fill($("inv-audit"), log.rows.length
      ? h("div.table-wrap", null, simpleTable(["When", "Who", "Item", "Warehouse", "Change", "What", "Note"], log.rows.map((r) => [clock(Number(r.at)), `${r.user} (${r.device})`, r.sku, r.warehouse,
          h("td.num", null, Number(r.change) > 0 ? `+${r.change}` : String(r.change)), h(`span.badge.${r.kind === "refused" || r.kind === "transfer-refused" ? "bad" : r.kind === "sale" || r.kind === "transfer-out" ? "info" : "synced"}`, null, r.kind), r.note]),
          { rowAttrs: (i) => ({ dataset: { kind: String(log.rows[i].kind) } }) }))
      : h("div.empty", null, "Nothing recorded yet"));
  });
  paint();
  const offs = [device.on("changed", paint), device.on("synced", paint)];
  return () => offs.forEach((f) => f());
}
