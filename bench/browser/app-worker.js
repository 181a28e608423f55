// edgesync inside the application's own dedicated worker (bench/browser/run.mjs): the
// client runs the store in place. Messages: { id, op: "open", name } and { id, op:
// "reads", n, max } → { ms } (n awaited point reads through the public API).
const loading = import("/pkg/web.js");
let db;

onmessage = async (ev) => {
  const m = ev.data;
  const edgesync = await loading;
  try {
    let out = {};
    if (m.op === "open") {
      db = edgesync.createClient({ url: `file:${m.name}` });
      await db.execute("select 1");
    } else if (m.op === "reads") {
      let sum = 0;
      const t0 = performance.now();
      for (let i = 0; i < m.n; i++) {
        const rs = await db.execute("select v from t where id = ?", [1 + ((i * 7919) % m.max)]);
        sum += rs.rows[0].v.length;
      }
      out = { ms: performance.now() - t0, sum };
    } else if (m.op === "close") {
      db.close();
    }
    postMessage({ id: m.id, ok: true, ...out });
  } catch (e) {
    postMessage({ id: m.id, ok: false, message: `${e.code}: ${e.message}` });
  }
};
