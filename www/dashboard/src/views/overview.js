// Overview: the replica's sync status at a glance, charts over time, and the latest
// sync log entries and conflicts.
import { lineChart } from "../charts.js";
import { $, ago, bytes, card, clock, duration, fill, h, inView, keyText, stat, untilNext } from "../ui.js";
import { logItem } from "./activity.js";

const SAVED = "edgesync.dashboard.config";

export function mount(el, device) {
  const db = device.db;
  el.append(
    h(
      "div.stats",
      { id: "status-cards" },
      stat("Connection", "st-conn"),
      stat("Pending changes", "st-pending"),
      stat("Lag", "st-lag", "age of the oldest unsynced change"),
      stat("Last push", "st-push"),
      stat("Last pull", "st-pull"),
      stat("Retries", "st-retry"),
      stat("Cursor", "st-cursor", "position in the server's log"),
      stat("Syncs", "st-syncs"),
    ),
    h("div.grid.cols-3", { style: { marginTop: "16px" } },
      card("Sync duration", h("div.chart#chart-duration")),
      card("Pending changes", h("div.chart#chart-pending")),
      card("Bytes sent", h("div.chart#chart-bytes")),
    ),
    h("div.grid.side", { style: { marginTop: "16px" } },
      card("Recent sync log", h("div.log#recent-log"), [h("a.small", { href: "#/activity" }, "all →")]),
      h("div.stack", null,
        card("Latest conflicts", h("div#recent-conflicts")),
        card("This device", settings(device)),
      ),
    ),
  );

  const fmtMs = (v) => (v < 10 ? v.toFixed(1) : String(Math.round(v)));
  const charts = [
    lineChart($("chart-duration"), {
      series: [{ label: "p50" }, { label: "p95" }, { label: "p99" }],
      yLabel: "ms",
      format: fmtMs,
    }),
    lineChart($("chart-pending"), { series: [{ label: "pending", color: "#f79009", fill: true }], format: (v) => String(Math.round(v)), minMax: 5 }),
    lineChart($("chart-bytes"), { series: [{ label: "bytes / 2 s", color: "#12805c", fill: true }], format: (v) => bytes(Math.round(v)), minMax: 1024 }),
  ];
  const drawCharts = () => {
    const S = device.series;
    charts[0].set([S.t, S.p50, S.p95, S.p99]);
    charts[1].set([S.t, S.pending]);
    charts[2].set([S.t, S.bytes]);
  };

  const paint = () => {
    const s = device.status();
    const m = db.metrics();
    const set = (id, value, sub, tone = "") => {
      $(id).textContent = value;
      if (sub !== undefined) $(`${id}-sub`).textContent = sub;
      $(`${id}-card`).className = `stat${tone ? " " + tone : ""}`;
    };
    const conn = s.paused ? ["Offline", "paused by the switch", "warn"]
      : s.gaveUp ? ["Gave up", `after ${s.retryCount} failed attempts`, "bad"]
      : s.retryCount > 0 ? ["Offline", s.lastPull?.error ?? "unreachable", "warn"]
      : s.online ? ["Online", s.syncing ? "syncing now" : device.config.sync, "ok"]
      : ["—", device.config.sync ? "connecting" : "no server configured", ""];
    set("st-conn", conn[0], conn[1], conn[2]);
    set("st-pending", String(s.pendingChanges), s.pendingChanges ? "waiting to be pushed" : "all pushed", s.pendingChanges ? "warn" : "ok");
    set("st-lag", s.lagMs ? duration(s.lagMs) : "0", undefined, s.lagMs > 30_000 ? "warn" : "");
    set("st-push", s.lastPush ? ago(s.lastPush.at) : "never", s.lastPush ? (s.lastPush.ok ? `ok at ${clock(s.lastPush.at)}` : `failed: ${s.lastPush.error}`) : "", s.lastPush && !s.lastPush.ok ? "bad" : "");
    set("st-pull", s.lastPull ? ago(s.lastPull.at) : "never", s.lastPull ? (s.lastPull.ok ? `ok at ${clock(s.lastPull.at)}` : `failed: ${s.lastPull.error}`) : "", s.lastPull && !s.lastPull.ok ? "bad" : "");
    const limit = Number.isInteger(device.config.maxRetries) ? ` of ${device.config.maxRetries}` : "";
    set("st-retry", `${s.retryCount}${limit}`,
      s.gaveUp ? "gave up — use Sync now" : s.paused ? "paused" : s.retryCount > 0 ? `next attempt in ${duration(untilNext(s))}` : s.nextSyncAt ? `next sync in ${duration(untilNext(s))}` : "",
      s.gaveUp ? "bad" : s.retryCount ? "warn" : "");
    set("st-cursor", String(s.cursor), undefined);
    set("st-syncs", String(m.syncs), `${(m.successRate * 100).toFixed(0)}% ok · ${m.conflicts} conflicts · ${bytes(m.bytesSent)} sent`);
  };

  const paintLog = inView(async () => {
    const entries = await db.syncLog(12);
    fill($("recent-log"), entries.length ? entries.map(logItem) : h("div.empty", null, "No sync yet"));
  });
  const paintConflicts = () => {
    const list = device.conflicts.slice(0, 4);
    fill(
      $("recent-conflicts"),
      list.length
        ? h("div.log", null, list.map((c) => h("div.log-item", null, h("span.when", null, clock(c.at)), h("span.what.conflict", null, `${c.table}.${c.column}`), h("span.detail", null, `${keyText(c.key)}: local ${c.local}, remote ${c.remote}, base ${c.base} → ${c.resolved}`))))
        : h("div.empty", null, "No conflicts: custom columns resolve here when two devices race"),
    );
  };

  paint();
  drawCharts();
  void paintLog();
  paintConflicts();
  const timers = [setInterval(paint, 250)];
  const offs = [
    device.on("sample", drawCharts),
    device.on("synced", () => void paintLog()),
    device.on("sync-error", () => void paintLog()),
    device.on("conflict", paintConflicts),
  ];
  return () => {
    timers.forEach(clearInterval);
    offs.forEach((f) => f());
    charts.forEach((c) => c.destroy());
  };
}

/** The device's identity and its sync settings (applied by reopening the replica). */
function settings(device) {
  const c = device.config;
  const interval = h("input", { type: "number", min: 100, step: 100, value: c.interval, id: "set-interval" });
  const retries = h("input", { type: "number", min: 0, step: 1, value: Number.isInteger(c.maxRetries) ? c.maxRetries : "", id: "set-retries" });
  const apply = () => {
    const saved = JSON.parse(localStorage.getItem(SAVED) ?? "{}");
    saved.interval = Number(/** @type {HTMLInputElement} */ (interval).value) || 5000;
    saved.maxRetries = /** @type {HTMLInputElement} */ (retries).value === "" ? "" : Number(/** @type {HTMLInputElement} */ (retries).value);
    localStorage.setItem(SAVED, JSON.stringify(saved));
    location.reload();
  };
  return h(
    "div.stack",
    { style: { gap: "10px" } },
    h("div.small", null,
      h("div", null, h("span.muted", null, "Site id "), h("code", null, device.db.siteId || "—")),
      h("div", null, h("span.muted", null, "Store "), h("code", null, device.storage === "opfs" ? `file:${c.store} (OPFS)` : "memory")),
      h("div", null, h("span.muted", null, "Hub "), h("code", null, c.hub ? `${c.hub} · ${device.hubPrefix}*` : "off")),
    ),
    h("div.form", null,
      h("label.small", null, "Interval (ms) ", interval),
      h("label.small", null, "Max retries ", retries),
      h("button.btn.small", { type: "button", onclick: apply, title: "Saved in this browser; the replica reopens" }, "Apply"),
    ),
  );
}
