// Benchmark: edgesync (Rust → wasm in Node) vs the official @libsql/client on the same
// work, in one process, against one local sqld on loopback (JWT auth on, as in
// production). Each workload runs ROUNDS times per client, alternating which client
// goes first; the median round is reported.
//
//   node bench/remote.mjs            (scripts/bench.sh builds and installs first)
import { createClient as edgesyncClient } from "edgesync";
import { createClient as libsqlClient } from "@libsql/client";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { startSqld } from "../tests/support/sqld.mjs";

const N = 1000;
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const libsqlVersion = JSON.parse(readFileSync(new URL("../node_modules/@libsql/client/package.json", import.meta.url))).version;

const sqld = await startSqld({ auth: true });
const cfg = { url: sqld.url, authToken: sqld.tokens.rw };
const clients = { edgesync: edgesyncClient(cfg), libsql: libsqlClient(cfg) };

for (const [name, c] of Object.entries(clients)) {
  await c.execute(`create table kv_${name}(id integer primary key, k text not null, v real, note text)`);
  await c.batch(
    Array.from({ length: N }, (_, i) => ({
      sql: `insert into kv_${name} values (?, ?, ?, ?)`,
      args: [i, `key-${i}`, i * 1.5, "seed"],
    })),
    "write",
  );
}

let nextId = 1_000_000;
const workloads = {
  [`${N} sequential point queries`]: async (c, t) => {
    for (let i = 0; i < N; i++) {
      const rs = await c.execute({ sql: `select * from ${t} where id = ?`, args: [(i * 7919) % N] });
      if (rs.rows.length !== 1) throw new Error("point query found no row");
    }
  },
  [`${N} single-row inserts`]: async (c, t) => {
    for (let i = 0; i < N; i++) {
      await c.execute({ sql: `insert into ${t} values (?, ?, ?, ?)`, args: [nextId++, `k${i}`, i / 3, "insert"] });
    }
  },
  [`one ${N}-row batch`]: async (c, t) => {
    const stmts = Array.from({ length: N }, (_, i) => ({
      sql: `insert into ${t} values (?, ?, ?, ?)`,
      args: [nextId++, `b${i}`, i / 7, "batch"],
    }));
    const rs = await c.batch(stmts, "write");
    if (rs.length !== N) throw new Error("batch lost results");
  },
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const [label, run] of Object.entries(workloads)) {
  // Warm-up: JIT, connection pools, wasm tiering.
  for (const [name, c] of Object.entries(clients)) await run(c, `kv_${name}`);
  const times = { edgesync: [], libsql: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ["edgesync", "libsql"] : ["libsql", "edgesync"];
    for (const name of order) {
      const t0 = performance.now();
      await run(clients[name], `kv_${name}`);
      times[name].push(performance.now() - t0);
    }
  }
  const e = median(times.edgesync);
  const l = median(times.libsql);
  rows.push({ label, e, l, ratio: e / l });
}

const wasm = readFileSync(new URL("../pkg/wasm/edgesync_bg.wasm", import.meta.url));
console.log(`\nedgesync vs @libsql/client ${libsqlVersion} — Node ${process.version}, sqld on loopback, median of ${ROUNDS} rounds`);
console.log(`edgesync wasm: ${wasm.length} bytes raw, ${gzipSync(wasm, { level: 9 }).length} bytes gzip\n`);
const pad = (s, n) => String(s).padEnd(n);
console.log(`${pad("workload", 30)} ${pad("edgesync ms", 12)} ${pad("libsql ms", 12)} ${pad("ratio", 7)} goal ≤ 1.10`);
for (const { label, e, l, ratio } of rows) {
  console.log(`${pad(label, 30)} ${pad(e.toFixed(1), 12)} ${pad(l.toFixed(1), 12)} ${pad(ratio.toFixed(3), 7)} ${ratio <= 1.1 ? "met" : "NOT MET"}`);
}

for (const c of Object.values(clients)) c.close();
await sqld.stop();
