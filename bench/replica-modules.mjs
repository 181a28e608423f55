// The same workload on several builds of the `edgesync/replica` module, side by side in
// one Node process (each package directory is a copy of pkg/ holding one build of
// wasm/replica/), with @libsql/client on ":memory:" as the peer: an in-memory replica
// with a replicated table, 20,000 single-row inserts, 100,000 point reads by id, one
// group-by. Medians of ROUNDS rounds, alternating the order. Used for the before/after
// of docs/decisions.md, "Size of edgesync/replica" (figures in docs/benchmarks.md).
//
//   ROUNDS=7 node bench/replica-modules.mjs /abs/pkg-before /abs/pkg-after …
import { createClient as libsqlClient } from "@libsql/client";
const dirs = process.argv.slice(2);
const mods = await Promise.all(dirs.map((d) => import(`${d}/entries/replica.node.js`)));
const SCHEMA = "(id integer primary key, device text, ts integer, temp real, note text)";
const row = (i) => [i, `dev-${String(i % 1000).padStart(4, "0")}`, 1_763_780_000_000 + i * 1000, 15 + ((i * 37) % 200) / 10 + 0.05, `reading ${i} ok`];
const N_W = 20000, N_R = 100000, ROUNDS = Number(process.env.ROUNDS ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function run(make, replicate) {
  const c = make();
  await c.execute(`create table t ${SCHEMA}`);
  if (replicate) c.replicate("t");
  let t0 = performance.now();
  for (let i = 0; i < N_W; i++) await c.execute({ sql: "insert into t values (?, ?, ?, ?, ?)", args: row(i) });
  const w = (performance.now() - t0) / N_W * 1000;
  t0 = performance.now();
  let x = 0;
  for (let i = 0; i < N_R; i++) x += (await c.execute({ sql: "select * from t where id = ?", args: [(i * 7919) % N_W] })).rows.length;
  const r = (performance.now() - t0) / N_R * 1000;
  t0 = performance.now();
  const all = await c.execute("select device, count(*), avg(temp) from t group by device order by 3 desc");
  const g = performance.now() - t0;
  c.close();
  if (x !== N_R || all.rows.length !== 1000) throw new Error("wrong results");
  return { w, r, g };
}
const res = [...dirs.map(() => []), []];
for (let k = 0; k < ROUNDS; k++) {
  const order = [...res.keys()];
  if (k % 2) order.reverse();
  for (const i of order) {
    if (i === dirs.length) res[i].push(await run(() => libsqlClient({ url: ":memory:" }), false));
    else res[i].push(await run(() => mods[i].createClient({ url: ":memory:" }), true));
  }
}
const m = (k, f) => median(res[k].map((x) => x[f]));
console.log(`median of ${ROUNDS}: ${dirs.map((d) => d.split("/").pop()).join(" | ")} | @libsql/client :memory:  (ratios vs the first)`);
for (const [f, label] of [["w", "insert (µs/row)"], ["r", "point read (µs)"], ["g", "group-by 20k rows (ms)"]])
  console.log(`${label.padEnd(24)} ${res.map((_, i) => m(i, f).toFixed(2) + (i ? ` (${(m(i, f) / m(0, f)).toFixed(3)})` : "")).join(" | ")}`);
