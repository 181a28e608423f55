// Collaborative editor (seed 003): `docs.body` is a `text` column — concurrent edits
// from several devices interleave instead of overwriting each other. Who is in the
// document and where their cursor is travels through the real-time hub (ephemeral).
//
// Version history: every change of a document this device sees — its own edits and
// what sync brings — is also applied to a local history `Text` (kept with its deleted
// text, in the local-only tables doc_history and doc_versions). A version is that
// text's version vector at a moment; `textAt(version)` shows it and `restore(version)`
// brings it back, written into the document as an ordinary edit that syncs.
import { Text } from "edgesync";
import { $, ago, card, clock, coalesce, colorFor, fill, h, newId, toast } from "../ui.js";

export const id = "editor";
export const title = "Editor";

export const schema = [
  "create table if not exists docs (id text primary key, title text not null, body text not null default '', updated_at integer not null default 0)",
  // Local only (not replicated): this device's history of each document.
  "create table if not exists doc_history (doc text primary key, snapshot blob not null)",
  "create table if not exists doc_versions (id integer primary key, doc text not null, at integer not null, source text not null, version blob not null, chars integer not null)",
];

export const replicate = [["docs", { body: "text" }]];

/** Local edits within this long of the previous version extend it instead of adding one. */
const VERSION_GAP_MS = 4000;
const PRESENCE_TTL_MS = 12_000;

// ---- history (device level: it records changes while the editor is not on screen) ------

/** @type {Map<string, Text>} */
const histories = new Map();
/**
 * Each document's body as this device last wrote it. A version is "local" when the
 * document holds exactly that, "remote" otherwise (a pull, another tab): decided by
 * content, since a store's `change` event and the sync's completion arrive in either
 * order and both name the table.
 * @type {Map<string, string>}
 */
const written = new Map();
let chain = Promise.resolve();

/**
 * A BLOB read from the database as bytes: rows give BLOBs as ArrayBuffers (as
 * @libsql/client does); the Text CRDT takes a Uint8Array.
 * @param {unknown} v
 * @returns {Uint8Array}
 */
const bytes = (v) => (v instanceof ArrayBuffer ? new Uint8Array(v) : /** @type {Uint8Array} */ (v));

async function historyOf(db, doc) {
  let t = histories.get(doc);
  if (t) return t;
  const rs = await db.execute({ sql: "select snapshot from doc_history where doc = ?", args: [doc] });
  t = rs.rows.length ? Text.decode(bytes(rs.rows[0].snapshot)) : new Text(crypto.randomUUID());
  histories.set(doc, t);
  return t;
}

/** Applies `next` to `t` as one replacement of the changed middle (UTF-16 offsets). */
function applyDiff(t, prev, next) {
  let start = 0;
  const max = Math.min(prev.length, next.length);
  while (start < max && prev.charCodeAt(start) === next.charCodeAt(start)) start++;
  if (start > 0 && isHigh(prev.charCodeAt(start - 1))) start--;
  let end = 0;
  while (end < max - start && prev.charCodeAt(prev.length - 1 - end) === next.charCodeAt(next.length - 1 - end)) end++;
  if (end > 0 && isLow(prev.charCodeAt(prev.length - end))) end--;
  const removed = prev.length - start - end;
  if (removed > 0) t.deleteUtf16(start, removed);
  const inserted = next.slice(start, next.length - end);
  if (inserted) t.insertUtf16(start, inserted);
  return { start, removed, inserted: inserted.length };
}
const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

/** Records every document whose text moved on since its last version. */
function observe(device) {
  chain = chain.then(() => observeNow(device)).catch((e) => console.error("editor history", e));
  return chain;
}

async function observeNow(device) {
  const db = device.db;
  const docs = await db.execute("select id, body from docs");
  for (const d of docs.rows) {
    const doc = String(d.id);
    const t = await historyOf(db, doc);
    const prev = t.toString();
    const next = String(d.body ?? "");
    if (prev === next) continue;
    applyDiff(t, prev, next);
    await saveVersion(db, doc, t, written.get(doc) === next ? "local" : "remote");
  }
}

async function saveVersion(db, doc, t, source) {
  const now = Date.now();
  const last = (await db.execute({ sql: "select id, at, source from doc_versions where doc = ? order by id desc limit 1", args: [doc] })).rows[0];
  const version = t.version();
  const stmts = [{ sql: "insert into doc_history (doc, snapshot) values (?, ?) on conflict (doc) do update set snapshot = excluded.snapshot", args: [doc, t.encode({ history: true })] }];
  if (last && last.source === source && source === "local" && now - Number(last.at) < VERSION_GAP_MS) {
    stmts.push({ sql: "update doc_versions set at = ?, version = ?, chars = ? where id = ?", args: [now, version, t.lengthUtf16, last.id] });
  } else {
    stmts.push({ sql: "insert into doc_versions (doc, at, source, version, chars) values (?, ?, ?, ?, ?)", args: [doc, now, source, version, t.lengthUtf16] });
  }
  await db.batch(stmts, "write");
}

/** Brings `version` of `doc` back: the history text is restored, then written to the document. */
export async function restore(device, doc, version) {
  await chain;
  const db = device.db;
  const t = await historyOf(db, doc);
  t.restore(version);
  written.set(doc, t.toString());
  await db.execute({ sql: "update docs set body = ?, updated_at = ? where id = ?", args: [t.toString(), Date.now(), doc] });
  await saveVersion(db, doc, t, "restore");
  device.changed("docs");
}

export function init(device) {
  void device.db.execute("insert or ignore into docs (id, title, body) values ('notes', 'Team notes', '')").then(() => observe(device));
  device.on("changed", (e) => {
    if (e.tables === null || e.tables.includes("docs")) void observe(device);
  });
}

// ---- the page ----------------------------------------------------------------------------

export function mount(el, device) {
  const db = device.db;
  const me = device.config.user;
  const myColor = colorFor(me);
  let doc = sessionStorage.getItem("edgesync.editor.doc") || "notes";
  let dirty = false;
  let flushTimer;
  /** @type {Map<string, { user: string, color: string, pos: number, at: number, doc: string }>} */
  const peers = new Map();
  /** @type {Uint8Array | undefined} */
  let selectedVersion;

  const area = /** @type {HTMLTextAreaElement} */ (h("textarea#editor-text", { spellcheck: false, placeholder: "Start typing… (the same document on another device edits along)" }));
  const mirror = h("div.mirror#editor-mirror", { "aria-hidden": "true" });
  const titleInput = /** @type {HTMLInputElement} */ (h("input#doc-title", { type: "text", style: { minWidth: "260px", fontWeight: "600" } }));
  const picker = /** @type {HTMLSelectElement} */ (h("select#doc-picker"));

  el.append(
    h("div.app-head", null, h("p", null, "The body is a text column: edits from several devices, online or not, merge character by character. Cursors travel through the real-time hub; the history on the right is this device's, kept locally (textAt / restore).")),
    h("div.editor-layout", null,
      h("div.stack", null,
        h("div.row", null, picker, titleInput,
          h("button.btn#doc-new", { type: "button", onclick: async () => {
            const idNew = newId("d");
            await db.execute({ sql: "insert into docs (id, title, body, updated_at) values (?, ?, '', ?)", args: [idNew, "Untitled", Date.now()] });
            device.changed("docs");
            open(idNew);
          } }, "New"),
          h("span.grow"), h("div.presence#presence")),
        h("div.editor-box", null, mirror, area),
        h("div.row.small.muted#doc-meta"),
      ),
      h("div.stack", null,
        card("Version history", h("div", null,
          h("div.versions#versions"),
          h("div#version-view", { hidden: true, style: { marginTop: "10px" } },
            h("div.preview#version-preview"),
            h("div.row", { style: { marginTop: "8px" } }, h("button.btn.primary.small#version-restore", { type: "button", onclick: async () => {
              if (!selectedVersion) return;
              await flush();
              await restore(device, doc, selectedVersion);
              toast("Version restored: the change syncs like any edit");
              await load();
            } }, "Restore this version"), h("button.btn.small", { type: "button", onclick: () => { selectedVersion = undefined; $("version-view").hidden = true; paintVersions(); } }, "Close")),
          ),
        )),
      ),
    ),
  );

  async function flush() {
    clearTimeout(flushTimer);
    if (!dirty) return;
    dirty = false;
    written.set(doc, area.value);
    await db.execute({ sql: "update docs set body = ?, updated_at = ? where id = ?", args: [area.value, Date.now(), doc] });
    device.changed("docs");
  }

  /** Replaces the text with `next` keeping this user's selection where it was. */
  function applyRemote(next) {
    const prev = area.value;
    if (prev === next) return;
    let start = 0;
    const max = Math.min(prev.length, next.length);
    while (start < max && prev.charCodeAt(start) === next.charCodeAt(start)) start++;
    let end = 0;
    while (end < max - start && prev.charCodeAt(prev.length - 1 - end) === next.charCodeAt(next.length - 1 - end)) end++;
    const shift = next.length - prev.length;
    const move = (p) => (p <= start ? p : p >= prev.length - end ? p + shift : Math.min(p, next.length - end));
    const [s, e] = [area.selectionStart, area.selectionEnd];
    const focused = document.activeElement === area;
    area.value = next;
    if (focused) area.setSelectionRange(move(s), move(e));
    for (const p of peers.values()) if (p.pos > start) p.pos = Math.max(start, p.pos + shift);
    paintMirror();
  }

  async function load() {
    const rs = await db.execute({ sql: "select title, body, updated_at from docs where id = ?", args: [doc] });
    const row = rs.rows[0];
    if (!row) return;
    if (document.activeElement !== titleInput) titleInput.value = String(row.title);
    if (!dirty) applyRemote(String(row.body ?? ""));
    $("doc-meta").textContent = `${area.value.length} characters · edited ${ago(Number(row.updated_at) || null)} · ${(await db.pendingKeys("docs")).includes(JSON.stringify([doc])) ? "changes pending" : "synced"}`;
    const docs = await db.execute("select id, title from docs order by title, id");
    fill(picker, docs.rows.map((d) => h("option", { value: String(d.id), selected: d.id === doc }, d.title)));
    paintVersions();
  }

  async function paintVersions() {
    const rs = await db.execute({ sql: "select id, at, source, version, chars from doc_versions where doc = ? order by id desc limit 60", args: [doc] });
    fill($("versions"), rs.rows.length ? rs.rows.map((v, i) => h(`button${selectedVersion && sameBytes(selectedVersion, bytes(v.version)) ? ".active" : ""}`, {
      type: "button",
      dataset: { version: String(v.id) },
      onclick: async () => {
        await chain;
        selectedVersion = bytes(v.version);
        const t = await historyOf(db, doc);
        $("version-preview").textContent = t.textAt(selectedVersion) || "(empty)";
        $("version-view").hidden = false;
        /** @type {HTMLButtonElement} */ ($("version-restore")).disabled = i === 0;
        paintVersions();
      },
    }, h("div", null, h("b", null, v.source === "remote" ? "From another device" : v.source === "restore" ? "Restored" : "Edited here"), ` · ${v.chars} chars`), h("div.v-when", null, `${clock(Number(v.at))} (${ago(Number(v.at))})`))) : h("div.empty", null, "No versions yet"));
  }

  function paintMirror() {
    const now = Date.now();
    const marks = [...peers.values()].filter((p) => p.at > now - PRESENCE_TTL_MS && p.doc === doc).sort((a, b) => a.pos - b.pos);
    const text = area.value;
    const parts = [];
    let at = 0;
    for (const p of marks) {
      const pos = Math.min(Math.max(0, p.pos), text.length);
      parts.push(text.slice(at, pos), h("span.caret", { style: { "--c": p.color }, dataset: { name: p.user } }));
      at = pos;
    }
    parts.push(text.slice(at), "\u200b");
    fill(mirror, parts);
    mirror.scrollTop = area.scrollTop;
    fill($("presence"),
      h("span.avatar", { title: "you" }, h("i", { style: { "--c": myColor } }), `${me} (you)`),
      [...peers.values()].filter((p) => p.at > now - PRESENCE_TTL_MS).map((p) => h("span.avatar", { dataset: { peer: p.user } }, h("i", { style: { "--c": p.color } }), p.doc === doc ? p.user : `${p.user} (other doc)`)),
    );
  }

  let lastPresence = 0;
  let presenceTimer;
  function announce(force = false) {
    const now = Date.now();
    if (!force && now - lastPresence < 150) {
      clearTimeout(presenceTimer);
      presenceTimer = setTimeout(() => announce(true), 160);
      return;
    }
    lastPresence = now;
    device.publish("editor:presence", { doc, user: me, color: myColor, pos: area.selectionStart, at: now });
  }

  function open(next) {
    void flush();
    doc = next;
    sessionStorage.setItem("edgesync.editor.doc", doc);
    selectedVersion = undefined;
    $("version-view").hidden = true;
    area.value = "";
    void load();
    announce(true);
  }

  area.addEventListener("input", () => {
    dirty = true;
    clearTimeout(flushTimer);
    flushTimer = setTimeout(() => void flush(), 150);
    announce();
    paintMirror();
  });
  for (const ev of ["keyup", "click", "focus", "select"]) area.addEventListener(ev, () => announce());
  area.addEventListener("scroll", () => (mirror.scrollTop = area.scrollTop));
  area.addEventListener("blur", () => void flush());
  titleInput.addEventListener("change", async () => {
    await db.execute({ sql: "update docs set title = ? where id = ?", args: [titleInput.value || "Untitled", doc] });
    device.changed("docs");
  });
  picker.addEventListener("change", () => open(picker.value));

  const offPresence = device.subscribe("editor:presence", (_t, d) => {
    if (!d || d.user === me) return;
    if (d.left) peers.delete(String(d.user));
    else peers.set(String(d.user), { user: String(d.user), color: String(d.color), pos: Number(d.pos) || 0, at: Date.now(), doc: String(d.doc) });
    paintMirror();
  });
  const refresh = coalesce(load);
  const offChanged = device.on("changed", (e) => {
    if (e.tables === null || e.tables.includes("docs")) {
      if (dirty) void flush().then(refresh);
      else refresh();
    }
  });
  const heartbeat = setInterval(() => {
    announce(true);
    paintMirror();
  }, 4000);
  void load().then(() => announce(true));
  return () => {
    void flush();
    clearInterval(heartbeat);
    device.publish("editor:presence", { doc, user: me, left: true, at: Date.now() });
    offPresence();
    offChanged();
  };
}

function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
