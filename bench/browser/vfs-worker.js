// The storage-layer measurement (docs/decisions.md, "Browser storage"): one replica
// opened on edgesync's own OPFS host (src/wasm/opfs.rs + js/browser/opfs.ts) or on the
// sqlite-wasm-vfs crate's SAH-pool VFS, from one wasm build that has both (feature
// `opfs-sahpool`, built by `bash scripts/bench.sh browser` into target/bench-browser/).
// Everything else — SQLite, the replica, the pragmas (WAL, exclusive locking,
// synchronous=NORMAL) — is the same code.
//
// Messages: { op: "open", mode: "own"|"sahpool", name } → { storageMs, openMs, firstMs };
// { op: "fill", rows } → { ms }; { op: "inserts", n } → { lat: [ms…] };
// { op: "reads", n, max } → { ms }; { op: "scan" } → { ms, bytes }.
const loading = (async () => {
  const glue = await import("/target/bench-browser/wasm/edgesync.js");
  const { OpfsFiles } = await import("/pkg/browser/opfs.js");
  // Results come back in the wasm result layout (src/wasm/result.rs); its reader.
  ({ decodeResult } = await import("/pkg/result.js"));
  await glue.default({ module_or_path: new URL("/target/bench-browser/wasm/edgesync_bg.wasm", location.origin) });
  return { glue, OpfsFiles };
})();
let r;
let decodeResult;
const ex = (sql, args = []) => decodeResult(r.execute({ sql, args }));

async function open(glue, OpfsFiles, { mode, name }) {
  const t0 = performance.now();
  if (mode === "own") {
    const files = new OpfsFiles();
    await files.prepare(name);
    glue.useOpfs(files);
  } else {
    for (let i = 0; ; i++) {
      try {
        await glue.installSahpool(name);
        break;
      } catch (e) {
        // The previous worker's handles may still be closing.
        if (i >= 100) throw e;
        await new Promise((res) => setTimeout(res, 20));
      }
    }
  }
  const t1 = performance.now();
  r = new glue.Replica({ url: `file:${name}` });
  const t2 = performance.now();
  ex("create table if not exists t (id integer primary key, v text not null)");
  ex("select v from t where id = 1");
  const t3 = performance.now();
  return { storageMs: t1 - t0, openMs: t2 - t1, firstMs: t3 - t2 };
}

onmessage = async (ev) => {
  const m = ev.data;
  try {
    const { glue, OpfsFiles } = await loading;
    let out;
    if (m.op === "open") out = await open(glue, OpfsFiles, m);
    else if (m.op === "fill") {
      const t0 = performance.now();
      ex(`with recursive c(i) as (select 1 union all select i + 1 from c where i < ?)
          insert into t (id, v) select i, printf('item %08d %s', i, hex(randomblob(20))) from c`, [m.rows]);
      out = { ms: performance.now() - t0 };
    } else if (m.op === "inserts") {
      const lat = [];
      for (let i = 0; i < m.n; i++) {
        const t0 = performance.now();
        ex("insert into t (v) values (?)", [`row ${i} ${"x".repeat(80)}`]);
        lat.push(performance.now() - t0);
      }
      out = { lat };
    } else if (m.op === "reads") {
      let sum = 0;
      const t0 = performance.now();
      for (let i = 0; i < m.n; i++) sum += ex("select v from t where id = ?", [1 + ((i * 7919) % m.max)]).rows[0][0].length;
      out = { ms: performance.now() - t0, sum };
    } else if (m.op === "scan") {
      const t0 = performance.now();
      const bytes = ex("select sum(length(v)) from t").rows[0][0];
      out = { ms: performance.now() - t0, bytes };
    }
    postMessage({ ok: true, ...out });
  } catch (e) {
    postMessage({ ok: false, message: String(e?.message ?? e) });
  }
};
