// One adapter per text CRDT, all with the same shape, so the benchmark and the tests
// drive edgesync and its peers identically:
//
//   { name, version, unit: "utf16" | "codepoint",
//     createDoc(peerId) → doc          a new empty text document (peerId: small integer ≥ 1)
//     insert(doc, pos, str)            one local operation (its own transaction / change)
//     delete(doc, pos, len)            one local operation
//     text(doc) → string
//     encode(doc) → Uint8Array         the full document as stored/sent, each library's default:
//                                      Yjs and edgesync drop deleted text (Yjs gc; edgesync's
//                                      encode({ history: true }) keeps it), Loro and Automerge keep it
//     load(bytes) → doc                decode a full document
//     heads(doc) → opaque              where the doc is now (for exportUpdate)
//     exportUpdate(doc, since?) → Uint8Array   ops after `since` (everything if omitted)
//     importUpdate(doc, bytes)         apply a remote update
//     importUpdates(doc, bytes[])      apply several remote updates at once (batch)
//     fork(doc, peerId) → doc          an independent copy with another peer id
//     free(doc) }
//
// `unit` is how the library counts positions; traces.mjs converts from code points.
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { REPO } from "./traces.mjs";

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(path.join(REPO, "node_modules", name, "package.json"), "utf8")).version;
  } catch {
    return "?";
  }
}

function concat(list) {
  if (list.length === 1) return list[0];
  let n = 0;
  for (const u of list) n += u.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const u of list) {
    out.set(u, o);
    o += u.length;
  }
  return out;
}

// ---------------------------------------------------------------- Yjs (pure JS)
async function yjsAdapter() {
  const Y = await import("yjs");
  const wrap = (doc) => ({ doc, t: doc.getText("text") });
  const make = (peerId) => {
    const doc = new Y.Doc();
    doc.clientID = peerId; // deterministic ids (Yjs picks a random uint32 by default)
    return wrap(doc);
  };
  return {
    name: "yjs",
    version: pkgVersion("yjs"),
    unit: "utf16",
    createDoc: make,
    // Outside `transact`, every Y.Text call is its own transaction (crdt-benchmarks B4).
    insert: (w, pos, str) => w.t.insert(pos, str),
    delete: (w, pos, len) => w.t.delete(pos, len),
    text: (w) => w.t.toString(),
    // Update format v2: the smaller of Yjs's two encodings (the one crdt-benchmarks uses).
    encode: (w) => Y.encodeStateAsUpdateV2(w.doc),
    load: (bytes) => {
      const w = make(0x7fffffff);
      Y.applyUpdateV2(w.doc, bytes);
      return w;
    },
    heads: (w) => Y.encodeStateVector(w.doc),
    exportUpdate: (w, since) => Y.encodeStateAsUpdateV2(w.doc, since),
    importUpdate: (w, bytes) => Y.applyUpdateV2(w.doc, bytes),
    importUpdates: (w, list) =>
      w.doc.transact(() => {
        for (const u of list) Y.applyUpdateV2(w.doc, u);
      }),
    fork: (w, peerId) => {
      const f = make(peerId);
      Y.applyUpdateV2(f.doc, Y.encodeStateAsUpdateV2(w.doc));
      return f;
    },
    free: (w) => w.doc.destroy(),
  };
}

// ---------------------------------------------------------------- Loro (Rust → wasm)
async function loroAdapter() {
  const { LoroDoc } = await import("loro-crdt");
  const wrap = (doc) => ({ doc, t: doc.getText("text") });
  const make = (peerId) => {
    const doc = new LoroDoc();
    doc.setPeerId(peerId);
    return wrap(doc);
  };
  return {
    name: "loro",
    version: pkgVersion("loro-crdt"),
    unit: "utf16", // LoroText.insert/delete take UTF-16 indexes in JS
    createDoc: make,
    // commit() closes the transaction: one local operation per patch, like the others.
    // (Loro still merges consecutive small commits of one peer into one stored change.)
    insert: (w, pos, str) => {
      w.t.insert(pos, str);
      w.doc.commit();
    },
    delete: (w, pos, len) => {
      w.t.delete(pos, len);
      w.doc.commit();
    },
    text: (w) => w.t.toString(),
    encode: (w) => w.doc.export({ mode: "snapshot" }),
    load: (bytes) => wrap(LoroDoc.fromSnapshot(bytes)),
    heads: (w) => w.doc.oplogVersion(),
    exportUpdate: (w, since) => w.doc.export(since ? { mode: "update", from: since } : { mode: "update" }),
    importUpdate: (w, bytes) => {
      w.doc.import(bytes);
    },
    importUpdates: (w, list) => {
      w.doc.importBatch(list);
    },
    fork: (w, peerId) => {
      const f = wrap(w.doc.fork());
      f.doc.setPeerId(peerId);
      return f;
    },
    free: (w) => {
      w.t.free?.();
      w.doc.free();
    },
  };
}

// ---------------------------------------------------------------- Automerge (Rust → wasm)
async function automergeAdapter() {
  const A = await import("@automerge/automerge");
  // Every replica must share the one root "text" object, so they all start from the
  // same initial change (made once, by a fixed actor) instead of each creating its own.
  const actor = (peerId) => peerId.toString(16).padStart(32, "0");
  const base = A.save(A.change(A.init({ actor: "ff".repeat(16) }), (d) => { d.text = ""; }));
  const make = (peerId) => ({ d: A.load(base, { actor: actor(peerId) }) });
  return {
    name: "automerge",
    version: pkgVersion("@automerge/automerge"),
    unit: "utf16", // splice indexes are UTF-16 code units in the JS build
    createDoc: make,
    insert: (w, pos, str) => {
      w.d = A.change(w.d, (x) => A.splice(x, ["text"], pos, 0, str));
    },
    delete: (w, pos, len) => {
      w.d = A.change(w.d, (x) => A.splice(x, ["text"], pos, len));
    },
    text: (w) => String(w.d.text),
    encode: (w) => A.save(w.d),
    load: (bytes) => ({ d: A.load(bytes) }),
    heads: (w) => A.getHeads(w.d),
    exportUpdate: (w, since) => (since ? A.saveSince(w.d, since) : A.save(w.d)),
    importUpdate: (w, bytes) => {
      w.d = A.loadIncremental(w.d, bytes);
    },
    // saveSince output is a sequence of change chunks, so updates concatenate.
    importUpdates: (w, list) => {
      w.d = A.loadIncremental(w.d, concat(list));
    },
    fork: (w, peerId) => ({ d: A.clone(w.d, { actor: actor(peerId) }) }),
    free: (w) => A.free(w.d),
  };
}

// ---------------------------------------------------------------- edgesync (Rust → wasm)
/** edgesync's module if it exports `Text`, else null (with the reason in `.why`). */
export async function loadEdgesync() {
  let mod = null, err = null;
  try {
    mod = await import("edgesync");
  } catch (e) {
    err = e;
    // `npm install` prunes the node_modules/edgesync link that scripts/build.sh makes.
    try {
      mod = await import(pathToFileURL(path.join(REPO, "pkg", "node.js")).href);
    } catch {
      /* fall through */
    }
  }
  if (!mod) return { mod: null, why: `import("edgesync") failed: ${err?.message?.split("\n")[0]}` };
  if (typeof mod.Text !== "function") return { mod: null, why: `edgesync does not export Text yet` };
  return { mod, why: null };
}

async function edgesyncAdapter() {
  const { mod, why } = await loadEdgesync();
  if (!mod) return { name: "edgesync", skipped: why };
  const { Text } = mod;
  let version = "?";
  try {
    version = JSON.parse(readFileSync(path.join(REPO, "pkg", "package.json"), "utf8")).version;
  } catch {
    /* keep ? */
  }
  return {
    name: "edgesync",
    version,
    unit: "codepoint",
    createDoc: (peerId) => new Text(peerId),
    insert: (t, pos, str) => t.insert(pos, str),
    delete: (t, pos, len) => t.delete(pos, len),
    text: (t) => t.toString(),
    encode: (t) => t.encode(),
    load: (bytes) => Text.decode(bytes),
    heads: (t) => t.version(),
    exportUpdate: (t, since) => (since === undefined ? t.encodeUpdateSince() : t.encodeUpdateSince(since)),
    importUpdate: (t, bytes) => t.applyUpdate(bytes),
    importUpdates: (t, list) => {
      for (const u of list) t.applyUpdate(u);
    },
    fork: (t, peerId) => {
      const f = new Text(peerId);
      f.applyUpdate(t.encodeUpdateSince());
      return f;
    },
    merge: (t, other) => t.merge(other),
    free: (t) => t.free(),
  };
}

const FACTORIES = { edgesync: edgesyncAdapter, yjs: yjsAdapter, loro: loroAdapter, automerge: automergeAdapter };
export const LIBRARIES = Object.keys(FACTORIES);
export const PEERS = ["yjs", "loro", "automerge"];

/** The adapter for one library (edgesync's may be `{ name, skipped: reason }`). */
export async function loadAdapter(name) {
  const f = FACTORIES[name];
  if (!f) throw new Error(`unknown library ${name} (one of ${LIBRARIES.join(", ")})`);
  return f();
}

/** Adapters for `names` (default: all), edgesync first; skipped ones included as such. */
export async function loadAdapters(names = LIBRARIES) {
  const out = [];
  for (const n of names) out.push(await loadAdapter(n));
  return out;
}
