// Editing traces (josephg/editing-traces, CC BY 4.0) for the text-CRDT benchmark and tests.
//
// Files live in <repo>/tests/data/editing-traces/<name>.json.gz (source and licence in the
// README there; override the folder with EDGESYNC_TRACES). Patch positions and delete
// counts in the traces are Unicode code points. The peers count differently (verified
// against the installed versions):
//   - yjs 13 Y.Text:            UTF-16 code units (and it will silently split a surrogate pair)
//   - loro-crdt 1.x LoroText:   insert/delete take UTF-16 indexes in JS (insertUtf8/deleteUtf8
//                               take UTF-8 bytes); splitting a surrogate pair throws
//   - @automerge/automerge 3:   splice takes UTF-16 indexes (an index inside a pair is rounded)
//   - edgesync Text:            Unicode code points by default
// so every patch is converted to the library's unit (`unit: "utf16" | "codepoint"`) exactly,
// tracking where the astral (non-BMP, two UTF-16 units) characters are in the document.
import { readFileSync, writeFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const TRACES_DIR = process.env.EDGESYNC_TRACES || path.resolve(REPO, "tests/data/editing-traces");
export const SEQUENTIAL = ["automerge-paper", "rustcode"];
export const CONCURRENT = ["friendsforever"];

const ASTRAL = /[\u{10000}-\u{10FFFF}]/u;
/** Number of code points of a (well-formed) JS string. */
export function cpLength(s) {
  if (!ASTRAL.test(s)) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Loads `<name>.json.gz` (or an absolute/relative path ending in .json.gz).
 * Returns { name, kind: "sequential"|"concurrent", startContent, endContent, txns,
 *           numAgents, hasAstral, patchCount }.
 */
export function loadTrace(name, dir = TRACES_DIR) {
  const file = name.endsWith(".json.gz") ? name : path.join(dir, `${name}.json.gz`);
  const raw = JSON.parse(gunzipSync(readFileSync(file)).toString("utf8"));
  const txns = raw.txns;
  const concurrent = raw.kind === "concurrent" || (txns.length > 0 && Array.isArray(txns[0].parents));
  const startContent = raw.startContent ?? "";
  let hasAstral = ASTRAL.test(startContent);
  let patchCount = 0;
  for (const t of txns) {
    for (const p of t.patches) {
      patchCount++;
      if (!hasAstral && p[2] && ASTRAL.test(p[2])) hasAstral = true;
    }
  }
  return {
    name: path.basename(file, ".json.gz"),
    kind: concurrent ? "concurrent" : "sequential",
    startContent,
    endContent: raw.endContent,
    txns,
    numAgents: raw.numAgents ?? (concurrent ? new Set(txns.map((t) => t.agent)).size : 1),
    hasAstral,
    patchCount,
  };
}

/**
 * Where the astral characters of a document are, by code-point index, so a code-point
 * position converts to UTF-16 exactly: utf16(cp) = cp + #astral characters before cp.
 * O(#astral) per edit; with no astral characters every conversion is the identity.
 */
export class AstralIndex {
  constructor(text = "") {
    this.pos = []; // sorted code-point indexes of astral characters
    if (ASTRAL.test(text)) {
      let i = 0;
      for (const ch of text) {
        if (ch.length === 2) this.pos.push(i);
        i++;
      }
    }
  }
  /** Number of astral characters at code-point index < cp. */
  #before(cp) {
    const a = this.pos;
    let lo = 0, hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid] < cp) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  toUtf16(cp) {
    return this.pos.length === 0 ? cp : cp + this.#before(cp);
  }
  /** UTF-16 length of the code-point range [cp, cp + n). */
  utf16Len(cp, n) {
    return this.pos.length === 0 ? n : this.toUtf16(cp + n) - this.toUtf16(cp);
  }
  insert(cp, str) {
    const n = cpLength(str);
    if (this.pos.length === 0 && n === str.length) return;
    const k = this.#before(cp);
    for (let j = k; j < this.pos.length; j++) this.pos[j] += n;
    if (n !== str.length) {
      const added = [];
      let i = cp;
      for (const ch of str) {
        if (ch.length === 2) added.push(i);
        i++;
      }
      this.pos.splice(k, 0, ...added);
    }
  }
  delete(cp, n) {
    if (this.pos.length === 0 || n === 0) return;
    const a = this.#before(cp), b = this.#before(cp + n);
    this.pos.splice(a, b - a);
    for (let j = a; j < this.pos.length; j++) this.pos[j] -= n;
  }
}

/**
 * The patches of a sequential trace flattened and converted to `unit`, ready to replay
 * without any per-patch conversion cost: { pos: Int32Array, del: Int32Array, ins: string[] }.
 * Patches that both delete and insert stay one entry (delete first, then insert).
 */
export function flatPatches(trace, unit = "codepoint") {
  const n = trace.patchCount;
  const pos = new Int32Array(n), del = new Int32Array(n), ins = new Array(n);
  const idx = unit === "utf16" && trace.hasAstral ? new AstralIndex(trace.startContent) : null;
  let k = 0;
  for (const t of trace.txns) {
    for (const [p, d, s] of t.patches) {
      if (idx) {
        pos[k] = idx.toUtf16(p);
        del[k] = idx.utf16Len(p, d);
        idx.delete(p, d);
        idx.insert(p, s);
      } else {
        pos[k] = p;
        del[k] = d;
      }
      ins[k] = s;
      k++;
    }
  }
  return { pos, del, ins, length: n };
}

/** Applies flattened patches to `doc` with `adapter` (each patch one local operation). */
export function applyFlat(adapter, doc, flat) {
  const { pos, del, ins, length } = flat;
  for (let i = 0; i < length; i++) {
    if (del[i] > 0) adapter.delete(doc, pos[i], del[i]);
    if (ins[i].length > 0) adapter.insert(doc, pos[i], ins[i]);
  }
}

/** Replays a sequential trace into a new doc; returns the doc. */
export function replaySequential(adapter, trace, flat = flatPatches(trace, adapter.unit)) {
  const doc = adapter.createDoc(1);
  if (trace.startContent) adapter.insert(doc, 0, trace.startContent);
  applyFlat(adapter, doc, flat);
  return doc;
}

/**
 * Replays a concurrent trace (txns with `agent` and `parents`) with one doc per agent:
 * before each txn the agent's doc is brought exactly to the merged state of the txn's
 * parents by importing the updates of the missing ancestor txns (in index order, which is
 * causal since parents always precede), the patches are applied locally (positions are
 * relative to that parent state), and the txn's own update is exported for the others.
 * If the agent's doc already holds a txn that is not an ancestor of the parents (its own
 * previous edit was not seen by this one), it is rebuilt from the ancestors under a fresh
 * peer id. At the end all branches are merged into one doc.
 *
 * Returns { doc, text, replayMs, mergeMs, ... } — mergeMs is the final step alone: the
 * first agent's doc imports every other branch (full-state updates exported beforehand,
 * not timed), then reads its text; replayMs is the whole replay including it. With
 * `keepBranches`, also the first agent's encoded doc before the merge (`targetBytes`), so
 * mergeBranches() can time that step again.
 */
export function replayConcurrent(adapter, trace, { keepBranches = false } = {}) {
  const txns = trace.txns;
  const n = txns.length;
  if (trace.startContent) throw new Error("concurrent traces with startContent are not supported");
  const updates = new Array(n);
  const agents = new Map(); // agent -> { doc, known: Uint8Array, last: number, astral }
  let nextPeer = 1;
  let rebuilds = 0, imports = 0, importBatches = 0;
  const retired = [];
  const mark = new Int32Array(n).fill(-1); // DFS visit stamps
  let stamp = 0;

  const newState = (agent) => ({
    doc: adapter.createDoc(nextPeer++),
    known: new Uint8Array(n),
    last: -1,
    astral: trace.hasAstral && adapter.unit === "utf16" ? new AstralIndex("") : null,
  });
  // Is txn `target` an ancestor-or-self of one of `parents`? (indexes below target pruned)
  const reaches = (parents, target) => {
    const s = ++stamp;
    const stack = [...parents];
    while (stack.length) {
      const x = stack.pop();
      if (x === target) return true;
      if (x < target || mark[x] === s) continue;
      mark[x] = s;
      for (const p of txns[x].parents) stack.push(p);
    }
    return false;
  };

  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const txn = txns[i];
    let st = agents.get(txn.agent);
    if (!st) agents.set(txn.agent, (st = newState(txn.agent)));
    else if (st.last >= 0 && !reaches(txn.parents, st.last)) {
      retired.push(st); // its branch still takes part in the final merge
      agents.set(txn.agent, (st = newState(txn.agent)));
      rebuilds++;
    }
    // Missing ancestors of the parents: DFS stopping at txns the doc already has (the
    // known set is closed under ancestors, so their ancestors are known too).
    const missing = [];
    const stack = [...txn.parents];
    const s = ++stamp;
    while (stack.length) {
      const x = stack.pop();
      if (st.known[x] || mark[x] === s) continue;
      mark[x] = s;
      missing.push(x);
      for (const p of txns[x].parents) stack.push(p);
    }
    if (missing.length) {
      missing.sort((a, b) => a - b);
      adapter.importUpdates(st.doc, missing.map((x) => updates[x]));
      for (const x of missing) st.known[x] = 1;
      imports += missing.length;
      importBatches++;
      if (st.astral) st.astral = new AstralIndex(adapter.text(st.doc));
    }
    const before = adapter.heads(st.doc);
    for (const [p, d, str] of txn.patches) {
      let pos = p, len = d;
      if (st.astral) {
        pos = st.astral.toUtf16(p);
        len = st.astral.utf16Len(p, d);
      }
      if (len > 0) adapter.delete(st.doc, pos, len);
      if (str.length > 0) adapter.insert(st.doc, pos, str);
      if (st.astral) {
        st.astral.delete(p, d);
        st.astral.insert(p, str);
      }
    }
    updates[i] = adapter.exportUpdate(st.doc, before);
    st.known[i] = 1;
    st.last = i;
  }
  const t1 = performance.now();

  // Final merge: every other branch into the first agent's doc.
  const states = [...agents.values(), ...retired];
  const target = states[0];
  const branches = states.slice(1).map((o) => adapter.exportUpdate(o.doc));
  const targetBytes = keepBranches ? adapter.encode(target.doc) : null;
  const t2 = performance.now();
  adapter.importUpdates(target.doc, branches);
  const text = adapter.text(target.doc);
  const t3 = performance.now();
  for (const o of states.slice(1)) adapter.free(o.doc);
  return {
    doc: target.doc,
    text,
    replayMs: t1 - t0 + (t3 - t2),
    mergeMs: t3 - t2,
    rebuilds,
    imports,
    importBatches,
    agents: states.length,
    // to time the final merge again: load(targetBytes), importUpdates(branches), text
    targetBytes,
    branches,
  };
}

/** The final merge step alone, repeatable: { ms, text } (the merged doc is freed). */
export function mergeBranches(adapter, targetBytes, branches) {
  const doc = adapter.load(targetBytes);
  const t0 = performance.now();
  adapter.importUpdates(doc, branches);
  const text = adapter.text(doc);
  const ms = performance.now() - t0;
  adapter.free(doc);
  return { ms, text };
}

/**
 * Flattened patches in two small files (`<base>.json`: meta, `<base>.bin`: Int32 pos, del,
 * insert lengths, then the inserted text as UTF-16LE), so a child process can hold a
 * trace without the garbage of parsing its JSON (it would blur an RSS measurement).
 */
export function writeFlat(base, flat, trace) {
  const n = flat.length;
  const insLen = new Int32Array(n);
  for (let i = 0; i < n; i++) insLen[i] = flat.ins[i].length;
  const text = Buffer.from(flat.ins.join(""), "utf16le");
  const head = Buffer.alloc(12 * n);
  Buffer.from(flat.pos.buffer, flat.pos.byteOffset, 4 * n).copy(head, 0);
  Buffer.from(flat.del.buffer, flat.del.byteOffset, 4 * n).copy(head, 4 * n);
  Buffer.from(insLen.buffer, 0, 4 * n).copy(head, 8 * n);
  writeFileSync(`${base}.bin`, Buffer.concat([head, text]));
  writeFileSync(`${base}.json`, JSON.stringify({ name: trace.name, n, startContent: trace.startContent, endContent: trace.endContent }));
}

/** Reads what writeFlat wrote: { flat, name, startContent, endContent }. */
export function readFlat(base) {
  const meta = JSON.parse(readFileSync(`${base}.json`, "utf8"));
  const buf = readFileSync(`${base}.bin`);
  const n = meta.n;
  const ints = new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + 12 * n));
  const pos = ints.subarray(0, n), del = ints.subarray(n, 2 * n), insLen = ints.subarray(2 * n, 3 * n);
  const all = buf.toString("utf16le", 12 * n);
  const ins = new Array(n);
  for (let i = 0, o = 0; i < n; i++) {
    ins[i] = all.slice(o, o + insLen[i]);
    o += insLen[i];
  }
  return { flat: { pos, del, ins, length: n }, name: meta.name, startContent: meta.startContent, endContent: meta.endContent };
}

/**
 * Reference model: the text after the first `count` patches of a sequential trace, on a
 * plain JS string (positions converted from code points exactly). For tests.
 */
export function replayString(trace, count = Infinity) {
  let s = trace.startContent;
  const idx = new AstralIndex(s);
  let k = 0;
  for (const t of trace.txns) {
    for (const [p, d, str] of t.patches) {
      if (k++ >= count) return s;
      const a = idx.toUtf16(p), b = idx.toUtf16(p + d);
      s = s.slice(0, a) + str + s.slice(b);
      idx.delete(p, d);
      idx.insert(p, str);
    }
  }
  return s;
}

/**
 * The same trace with characters replaced (e.g. { q: "🦀" }): positions are code points,
 * so it stays valid, and its end text is endContent with the same replacement. Used to
 * exercise the UTF-16 conversions on real traces (which are all BMP).
 */
export function remapChars(trace, map) {
  const re = new RegExp(`[${Object.keys(map).join("").replace(/[\]\\^-]/g, "\\$&")}]`, "g");
  const f = (str) => str.replace(re, (c) => map[c]);
  const txns = trace.txns.map((t) => ({ ...t, patches: t.patches.map(([p, d, str]) => [p, d, f(str)]) }));
  const out = { ...trace, txns, startContent: f(trace.startContent), endContent: trace.endContent === undefined ? undefined : f(trace.endContent) };
  out.hasAstral = trace.hasAstral || Object.values(map).some((v) => ASTRAL.test(v));
  out.remap = f;
  return out;
}

/** The first `count` txns (a causally closed prefix: parents always come first). */
export function prefixTrace(trace, count) {
  let patchCount = 0;
  const txns = trace.txns.slice(0, count);
  for (const t of txns) patchCount += t.patches.length;
  return { ...trace, txns, patchCount, endContent: undefined };
}
