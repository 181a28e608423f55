// The sync log (the replica's `_es_sync_log`, newest first) and the conflict feed.
import { $, card, clock, duration, fill, h, inView, keyText, simpleTable } from "../ui.js";

/** One sync log entry as a line: when, what, details. */
export function logItem(e) {
  const d = /** @type {any} */ (e.details) ?? {};
  let what = e.event;
  let cls = "";
  let detail = "";
  if (e.event === "sync:completed") {
    what = "synced";
    cls = "ok";
    detail = `${d.changesPushed} pushed, ${d.changesApplied} applied in ${duration(d.duration)}`;
  } else if (e.event === "sync:error") {
    what = "sync failed";
    cls = "bad";
    detail = `${d.code}: ${d.message}`;
  } else if (e.event === "conflict") {
    what = "conflict";
    cls = "conflict";
    detail = `${d.table}.${d.column} ${keyText(d.key)}: local ${fmt(d.local)}, remote ${fmt(d.remote)}, base ${fmt(d.base)} → ${fmt(d.resolved)}`;
  } else {
    detail = JSON.stringify(d);
  }
  return h("div.log-item", { dataset: { event: e.event } }, h("span.when", { title: new Date(e.at).toISOString() }, clock(e.at)), h(`span.what${cls ? "." + cls : ""}`, null, what), h("span.detail", null, detail));
}

function fmt(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

const val = (v, cls = "") => h(`span.val${cls ? "." + cls : ""}`, null, fmt(v));

export function mount(el, device) {
  const db = device.db;
  const filter = h(
    "select#log-filter",
    { onchange: () => void paintLog() },
    h("option", { value: "" }, "All events"),
    h("option", { value: "sync:completed" }, "Completed syncs"),
    h("option", { value: "sync:error" }, "Errors"),
    h("option", { value: "conflict" }, "Conflicts"),
  );
  el.append(
    h("div.stack", null,
      card("Conflict feed", h("div#conflict-feed"), [h("span.muted.small", null, "custom columns: the resolver's input and output")]),
      card("Sync log", h("div.log#sync-log"), [filter]),
    ),
  );

  const paintConflicts = () => {
    const list = device.conflicts.slice(0, 200);
    fill(
      $("conflict-feed"),
      list.length
        ? h("div.table-wrap", null, simpleTable(
            ["When", "Table", "Key", "Column", "Local", "Remote", "Base", "Resolved"],
            list.map((c) => [clock(c.at), c.table, keyText(c.key), c.column, val(c.local), val(c.remote), val(c.base), val(c.resolved, "resolved")]),
          ))
        : h("div.empty", null, "No conflicts yet. Sell the same stock on two devices while one is offline (Inventory) to see one."),
    );
  };
  const paintLog = inView(async () => {
    const want = /** @type {HTMLSelectElement} */ (filter).value;
    let entries = await db.syncLog(want ? 1000 : 300);
    if (want) entries = entries.filter((e) => e.event === want).slice(0, 300);
    fill($("sync-log"), entries.length ? entries.map(logItem) : h("div.empty", null, "Nothing logged yet"));
  });
  paintConflicts();
  void paintLog();
  const offs = [
    device.on("conflict", paintConflicts),
    device.on("synced", () => void paintLog()),
    device.on("sync-error", () => void paintLog()),
  ];
  return () => offs.forEach((f) => f());
}
