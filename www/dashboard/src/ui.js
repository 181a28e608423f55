// Small DOM helpers shared by the views and apps. Text always goes in as textContent,
// never as HTML: values come from databases other people write to.

/**
 * Builds an element: `h("button.btn.primary#go", { onclick, title }, "Go")`.
 * Attributes starting with `on` are listeners; `dataset`/`style` objects are merged;
 * children are nodes, strings, numbers, or arrays of them (null/false skipped).
 * @param {string} tag
 * @param {Record<string, any> | null} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(tag);
  if (!m) throw new Error(`bad tag ${tag}`);
  const el = document.createElement(m[1] || "div");
  for (const part of m[2].match(/[.#][\w-]+/g) ?? []) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") {
      for (const [prop, value] of Object.entries(v)) {
        if (prop.startsWith("--")) el.style.setProperty(prop, String(value));
        else /** @type {any} */ (el.style)[prop] = value;
      }
    }
    else if (k === "class") el.className = v;
    else if (k in el && typeof v !== "string") /** @type {any} */ (el)[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** @param {string} id */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** Replaces `el`'s children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A card with a title row (`actions` on the right). */
export function card(title, body, actions = []) {
  return h("section.card", null, h("h2", null, title, h("span.spacer"), actions), body);
}

export function stat(label, valueId, sub = "") {
  return h("div.stat", { id: `${valueId}-card` }, h("div.label", null, label), h("div.value", { id: valueId }, "—"), h("div.sub", { id: `${valueId}-sub` }, sub));
}

export function toast(text, kind = "") {
  const t = h(`div.toast${kind ? "." + kind : ""}`, null, text);
  $("toasts").append(t);
  setTimeout(() => t.remove(), 4000);
}

// ---- formatting -----------------------------------------------------------------------

export function ago(ms) {
  if (ms === null || ms === undefined) return "never";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 1.5) return "just now";
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export function duration(ms) {
  if (!Number.isFinite(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function bytes(n) {
  if (!Number.isFinite(n)) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/**
 * Time left to the next background sync, from `status().nextSyncAt` (an absolute time,
 * so it counts down even where status() is a snapshot, as in a browser file: replica).
 */
export function untilNext(s) {
  return s.nextSyncAt === null || s.nextSyncAt === undefined ? s.nextSyncInMs : Math.max(0, s.nextSyncAt - Date.now());
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

export function money(cents) {
  const v = Number(cents) / 100;
  return v.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

/** A row key as conflict events and pendingKeys() give it (`["a"]`), for display. */
export function keyText(json) {
  try {
    const k = JSON.parse(json);
    return Array.isArray(k) ? k.join(", ") : String(k);
  } catch {
    return String(json);
  }
}

// ---- values and result tables ---------------------------------------------------------

/** Blobs longer than this are shown as their first 16 bytes plus the total length. */
const BLOB_PREVIEW_BYTES = 32;
const BLOB_HEAD_BYTES = 16;

function hex(bytes) {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Text (plus an optional suffix) and CSS class for one cell. */
export function renderValue(value) {
  if (value === null || value === undefined) return { text: "NULL", cls: "null" };
  if (typeof value === "bigint") return { text: value.toString(), cls: "num" };
  if (typeof value === "number") return { text: Object.is(value, -0) ? "-0" : String(value), cls: "num" };
  // BLOBs come back as ArrayBuffers (as from @libsql/client).
  if (value instanceof ArrayBuffer) value = new Uint8Array(value);
  if (value instanceof Uint8Array) {
    if (value.length <= BLOB_PREVIEW_BYTES) return { text: hex(value), cls: "blob" };
    return { text: `${hex(value.subarray(0, BLOB_HEAD_BYTES))}…`, suffix: ` (${value.length} bytes)`, cls: "blob" };
  }
  const text = String(value);
  return { text, cls: text.length <= 40 ? "short" : "" };
}

/** Fills `table` (with a thead and a tbody) from a ResultSet. */
export function renderResult(table, rs) {
  const thead = table.tHead ?? table.createTHead();
  const tbody = table.tBodies[0] ?? table.createTBody();
  thead.replaceChildren();
  tbody.replaceChildren();
  if (rs.columns.length === 0) return;
  thead.append(h("tr", null, rs.columns.map((name, i) => h("th", { title: rs.columnTypes[i] || null }, name))));
  for (const row of rs.rows) {
    const tr = document.createElement("tr");
    for (let i = 0; i < row.length; i++) {
      const { text, cls, suffix } = renderValue(row[i]);
      tr.append(h(`td${cls ? "." + cls : ""}`, null, text, suffix ? h("span.suffix", null, suffix) : null));
    }
    tbody.append(tr);
  }
}

/**
 * A simple table from rows of cells (nodes or text).
 * @param {any[]} headers @param {any[][]} rows
 * @param {{ rowAttrs?: (i: number) => Record<string, any> }} [opts]
 */
export function simpleTable(headers, rows, { rowAttrs } = {}) {
  return h(
    "table",
    null,
    h("thead", null, h("tr", null, headers.map((x) => h("th", null, x)))),
    h("tbody", null, rows.map((cells, i) => h("tr", rowAttrs?.(i) ?? null, cells.map((c) => (c instanceof Node && c.nodeName === "TD" ? c : h("td", null, c)))))),
  );
}

/** Counts view changes (main.js calls `viewChanged()` on each route). */
let viewGeneration = 0;

export function viewChanged() {
  viewGeneration++;
}

/**
 * `fn` as a background repaint of the view being mounted. Its reads are round trips
 * to the database worker (a browser `file:` replica), so it may end after the user
 * left the view, whose elements are gone then: once the view changed it does not
 * start, and what it throws is dropped. While the view is shown an error is reported
 * as before (an unhandled rejection).
 * @template {any[]} A @param {(...args: A) => unknown} fn @returns {(...args: A) => Promise<void>}
 */
export function inView(fn) {
  const gen = viewGeneration;
  return (...args) =>
    gen !== viewGeneration
      ? Promise.resolve()
      : Promise.resolve()
          .then(() => fn(...args))
          .then(
            () => undefined,
            (e) => {
              if (gen === viewGeneration) throw e;
            },
          );
}

/**
 * Runs `fn` at most once per animation frame however often it is asked for, as a
 * repaint of the view being mounted (see `inView`).
 * @param {() => unknown} fn
 */
export function coalesce(fn) {
  const run = inView(fn);
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      void run();
    });
  };
}

/** A short random id (for primary keys written by this device). */
export function newId(prefix = "") {
  return prefix + crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

/** A stable color for a name (presence, avatars). */
const COLORS = ["#2f6fde", "#d92d20", "#12805c", "#b54708", "#6941c6", "#0e7090", "#c11574"];
export function colorFor(name) {
  let x = 0;
  for (const ch of String(name)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return COLORS[x % COLORS.length];
}
