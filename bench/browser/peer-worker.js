// The peer of the browser benchmark (bench/browser/run.mjs): @sqlite.org/sqlite-wasm
// (pinned 3.54.1-build1) with its "opfs-sahpool" VFS, in a dedicated module worker the
// page drives with one postMessage per call — the way an application uses it.
//
// Messages: { id, op: "open", name, tuned, pool } → { ms, journal }; { id, op: "exec", sql,
// bind } → { rows } (db.exec: prepare, bind, step, finalize — the library's API);
// { id, op: "reads", n, max } → { ms } (n point reads in the worker, one prepared
// statement reset each time: the engine's best case); { id, op: "close" }.
import sqlite3InitModule from "/node_modules/@sqlite.org/sqlite-wasm/dist/index.mjs";

let sqlite3;
let pool;
let db;

async function open({ name, tuned, pool: poolName = "peer-sahpool" }) {
  sqlite3 ??= await sqlite3InitModule();
  // The pool holds its files for the life of the worker: only one worker may have it
  // (a second tab fails: applications guard it with a Web Lock). Retried briefly,
  // as the previous worker's handles may still be closing.
  for (let i = 0; ; i++) {
    try {
      pool ??= await sqlite3.installOpfsSAHPoolVfs({ name: poolName });
      break;
    } catch (e) {
      if (i >= 100) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  db = new pool.OpfsSAHPoolDb(`/${name}`);
  // Tuned: the journal edgesync uses (WAL, exclusive locking, synchronous=NORMAL).
  if (tuned) db.exec("pragma locking_mode = exclusive; pragma journal_mode = wal; pragma synchronous = normal");
  return { journal: db.selectValue("pragma journal_mode"), synchronous: db.selectValue("pragma synchronous") };
}

function reads({ n, max }) {
  const stmt = db.prepare("select v from t where id = ?");
  let sum = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    stmt.bind(1, 1 + ((i * 7919) % max));
    if (stmt.step()) sum += stmt.get(0).length;
    stmt.reset();
  }
  const ms = performance.now() - t0;
  stmt.finalize();
  return { ms, sum };
}

onmessage = async (ev) => {
  const m = ev.data;
  try {
    const t0 = performance.now();
    let out;
    if (m.op === "open") out = await open(m);
    else if (m.op === "exec") out = { rows: db.exec({ sql: m.sql, bind: m.bind, rowMode: "array", returnValue: "resultRows" }) };
    else if (m.op === "reads") out = reads(m);
    else if (m.op === "close") out = (db?.close(), pool?.pauseVfs?.(), {});
    postMessage({ id: m.id, ok: true, ms: performance.now() - t0, ...out });
  } catch (e) {
    postMessage({ id: m.id, ok: false, message: String(e?.message ?? e) });
  }
};
