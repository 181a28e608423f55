// edgesync dashboard: run SQL against a libSQL server (sqld / Turso) from the browser.
//
// Open as  /www/dashboard/index.html?url=http://127.0.0.1:8080&token=<JWT>
// (token optional). Served from the repository root, so the package is at /pkg/web.js.
//
// For tests: once the module has loaded, `window.edgesync = { createClient }` is set and
// <body data-ready="1">; every finished Run (success or error) bumps <body data-runs>.

const $ = (id) => document.getElementById(id);
const sqlBox = $("sql");
const runButton = $("run");
const statusLine = $("status");
const errorLine = $("error");
const table = $("results");
const connection = $("connection");

/** Blobs longer than this are shown as their first 16 bytes plus the total length. */
const BLOB_PREVIEW_BYTES = 32;
const BLOB_HEAD_BYTES = 16;

function hex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Text (plus an optional unbreakable suffix) and CSS class for one cell; always textContent, never HTML. */
function renderValue(value) {
  if (value === null || value === undefined) return { text: "NULL", cls: "null" };
  if (typeof value === "bigint") return { text: value.toString(), cls: "num" };
  if (typeof value === "number") return { text: Object.is(value, -0) ? "-0" : String(value), cls: "num" };
  // BLOBs come back as ArrayBuffers (as from @libsql/client).
  if (value instanceof ArrayBuffer) value = new Uint8Array(value);
  if (value instanceof Uint8Array) {
    if (value.length <= BLOB_PREVIEW_BYTES) return { text: hex(value), cls: "blob" };
    const head = hex(value.subarray(0, BLOB_HEAD_BYTES));
    return { text: `${head}…`, suffix: ` (${value.length} bytes)`, cls: "blob" };
  }
  const text = String(value);
  return { text, cls: text.length <= 40 ? "short" : "" };
}

/** The error line reads `code: message`, e.g. `SQL_PARSE_ERROR: SQL string could not be parsed…`. */
function showError(err) {
  const code = err && typeof err === "object" && typeof err.code === "string" ? err.code : "ERROR";
  let message = err instanceof Error ? err.message : String(err);
  // Errors' messages start with their code already (as @libsql/client's).
  if (message.startsWith(`${code}: `)) message = message.slice(code.length + 2);
  showMessage(code, message);
}

function showMessage(code, message) {
  errorLine.textContent = `${code}: ${message}`;
  errorLine.hidden = false;
}

function clearError() {
  errorLine.textContent = "";
  errorLine.hidden = true;
}

function showResult(rs, ms) {
  const thead = table.tHead;
  const tbody = table.tBodies[0];
  thead.replaceChildren();
  tbody.replaceChildren();

  if (rs.columns.length > 0) {
    const header = document.createElement("tr");
    rs.columns.forEach((name, i) => {
      const th = document.createElement("th");
      th.textContent = name;
      if (rs.columnTypes[i]) th.title = rs.columnTypes[i];
      header.append(th);
    });
    thead.append(header);
    for (const row of rs.rows) {
      const tr = document.createElement("tr");
      for (let i = 0; i < row.length; i++) {
        const td = document.createElement("td");
        const { text, cls, suffix } = renderValue(row[i]);
        td.textContent = text;
        if (suffix) {
          const span = document.createElement("span");
          span.className = "suffix";
          span.textContent = suffix;
          td.append(span);
        }
        if (cls) td.className = cls;
        tr.append(td);
      }
      tbody.append(tr);
    }
  }
  table.hidden = rs.columns.length === 0;

  const parts = [];
  if (rs.columns.length > 0) parts.push(`${rs.rows.length} row${rs.rows.length === 1 ? "" : "s"}`);
  else parts.push(`${rs.rowsAffected} row${rs.rowsAffected === 1 ? "" : "s"} affected`);
  parts.push(`${Math.round(ms)} ms`);
  statusLine.textContent = parts.join(" · ");
}

let runs = 0;
function finishRun() {
  runs += 1;
  document.body.dataset.runs = String(runs);
}

async function main() {
  let createClient;
  try {
    ({ createClient } = await import("/pkg/web.js"));
  } catch (err) {
    showMessage("LOAD_FAILED", `could not load /pkg/web.js: ${err?.message ?? err}`);
    return;
  }
  window.edgesync = { createClient };

  const params = new URLSearchParams(location.search);
  const url = params.get("url");
  const authToken = params.get("token") ?? undefined;

  let client;
  if (!url) {
    connection.textContent = "no server";
    showMessage("NO_URL", "add ?url=<server>&token=<JWT> to the page address");
  } else {
    try {
      client = createClient({ url, authToken });
      connection.textContent = `${client.baseUrl}${authToken ? " · token set" : ""}`;
    } catch (err) {
      connection.textContent = "not connected";
      showError(err);
    }
  }

  async function run() {
    if (!client || runButton.disabled) return;
    const sql = sqlBox.value.trim();
    if (!sql) return;
    runButton.disabled = true;
    statusLine.textContent = "running…";
    clearError();
    const started = performance.now();
    try {
      const rs = await client.execute(sql);
      showResult(rs, performance.now() - started);
    } catch (err) {
      statusLine.textContent = "";
      table.hidden = true;
      showError(err);
    } finally {
      runButton.disabled = false;
      finishRun();
    }
  }

  runButton.addEventListener("click", run);
  sqlBox.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    }
  });
  runButton.disabled = !client;
  document.body.dataset.ready = "1";
}

main();
