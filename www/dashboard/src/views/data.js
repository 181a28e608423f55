// The local replica's tables (with their replication policies) and a SQL console. Both
// read and write the local database: writes to replicated tables sync like any other.
import { $, card, fill, h, inView, renderResult } from "../ui.js";

const PAGE = 200;

function quote(name) {
  return `"${String(name).replaceAll('"', '""')}"`;
}

export function mount(el, device) {
  const db = device.db;
  let current = "";
  let offset = 0;

  el.append(
    h("div.data-layout", null,
      card("Tables", h("div.table-list#table-list")),
      h("div.stack", null,
        card("SQL console", h("div", null,
          h("textarea#sql", { spellcheck: false, autocomplete: "off" }, "select name, type from sqlite_schema where name not like '\\_es\\_%' escape '\\' order by name"),
          h("div.row", { style: { marginTop: "8px" } },
            h("button.btn.primary#run", { type: "button" }, "Run"),
            h("span.muted.small", null, "Ctrl+Enter runs · on the local replica"),
            h("span.grow"),
            h("span#status", { role: "status" }),
          ),
          h("p#error", { role: "alert", hidden: true }),
          h("div.table-wrap", { style: { marginTop: "10px" } }, h("table#results", { hidden: true }, h("thead"), h("tbody"))),
        )),
        card(h("span#browse-title", null, "Browse"), h("div", null,
          h("div.row.small#browse-meta", { style: { marginBottom: "8px" } }),
          h("div.table-wrap", null, h("table#browse", null, h("thead"), h("tbody"))),
          h("div.row", { style: { marginTop: "8px" } },
            h("button.btn.small#prev", { type: "button", onclick: () => page(-1) }, "← Prev"),
            h("button.btn.small#next", { type: "button", onclick: () => page(1) }, "Next →"),
            h("span.muted.small#browse-range"),
          ),
        )),
      ),
    ),
  );

  const sqlBox = /** @type {HTMLTextAreaElement} */ ($("sql"));
  const runButton = /** @type {HTMLButtonElement} */ ($("run"));
  const statusLine = $("status");
  const errorLine = $("error");
  const results = /** @type {HTMLTableElement} */ ($("results"));

  async function run() {
    const sql = sqlBox.value.trim();
    if (!sql) return;
    runButton.disabled = true;
    errorLine.hidden = true;
    statusLine.textContent = "running…";
    const t0 = performance.now();
    try {
      const rs = await db.execute(sql);
      const ms = performance.now() - t0;
      if (rs.columns.length > 0) {
        renderResult(results, rs);
        results.hidden = false;
        statusLine.textContent = `${rs.rows.length} row${rs.rows.length === 1 ? "" : "s"} in ${ms.toFixed(1)} ms`;
      } else {
        results.hidden = true;
        statusLine.textContent = `${rs.rowsAffected} row${rs.rowsAffected === 1 ? "" : "s"} affected in ${ms.toFixed(1)} ms`;
      }
      device.changed(null);
      void listTables();
    } catch (e) {
      const err = /** @type {any} */ (e);
      results.hidden = true;
      statusLine.textContent = "";
      const code = typeof err?.code === "string" ? err.code : "ERROR";
      let message = err instanceof Error ? err.message : String(err);
      // Errors' messages start with their code already (as @libsql/client's).
      if (message.startsWith(`${code}: `)) message = message.slice(code.length + 2);
      errorLine.textContent = `${code}: ${message}`;
      errorLine.hidden = false;
    } finally {
      runButton.disabled = false;
      document.body.dataset.runs = String(Number(document.body.dataset.runs ?? 0) + 1);
    }
  }
  runButton.addEventListener("click", run);
  sqlBox.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void run();
    }
  });

  async function listTables() {
    const rs = await db.execute("select name from sqlite_schema where type = 'table' and name not like 'sqlite\\_%' escape '\\' order by name like '\\_es\\_%' escape '\\', name");
    const pols = new Map();
    for (const r of (await db.execute("select tbl, pol from _es_tables")).rows) pols.set(String(r.tbl), String(r.pol));
    const items = [];
    for (const r of rs.rows) {
      const name = String(r.name);
      const n = (await db.execute(`select count(*) as n from ${quote(name)}`)).rows[0].n;
      const internal = name.startsWith("_es_");
      items.push(
        h(`button${name === current ? ".active" : ""}`, { type: "button", dataset: { table: name }, onclick: () => browse(name, 0), title: pols.get(name) ? `replicated: ${pols.get(name)}` : internal ? "edgesync bookkeeping" : "local only" },
          h(`span${internal ? ".internal" : ""}`, null, pols.has(name) ? "⇅ " : "", name),
          h("span.count", null, String(n))),
      );
    }
    fill($("table-list"), items.length ? items : h("div.empty", null, "No tables"));
    if (!current && rs.rows.length) await browse(String(rs.rows[0].name), 0);
  }

  async function browse(name, from) {
    current = name;
    offset = Math.max(0, from);
    for (const b of document.querySelectorAll("#table-list button")) b.classList.toggle("active", b.getAttribute("data-table") === name);
    const total = Number((await db.execute(`select count(*) as n from ${quote(name)}`)).rows[0].n);
    const rs = await db.execute({ sql: `select * from ${quote(name)} limit ? offset ?`, args: [PAGE, offset] });
    renderResult(/** @type {HTMLTableElement} */ ($("browse")), rs);
    $("browse-title").textContent = name;
    const pol = (await db.execute({ sql: "select pol from _es_tables where tbl = ?", args: [name] })).rows[0]?.pol;
    fill($("browse-meta"), pol
      ? [h("span.badge.info", null, "replicated"), ...Object.entries(JSON.parse(String(pol))).map(([c, p]) => h("span.chip", null, `${c}: ${p}`))]
      : h("span.badge.muted", null, name.startsWith("_es_") ? "edgesync bookkeeping (local)" : "local only"));
    $("browse-range").textContent = total ? `${offset + 1}–${Math.min(total, offset + PAGE)} of ${total}` : "empty";
    /** @type {HTMLButtonElement} */ ($("prev")).disabled = offset === 0;
    /** @type {HTMLButtonElement} */ ($("next")).disabled = offset + PAGE >= total;
  }

  function page(dir) {
    if (current) void browse(current, offset + dir * PAGE);
  }

  void listTables();
  const off = device.on(
    "changed",
    inView(() => (current ? browse(current, offset) : undefined)),
  );
  return off;
}
