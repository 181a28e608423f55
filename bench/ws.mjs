// Benchmark: edgesync's remote client over WebSocket vs the official @libsql/client over
// WebSocket (both `ws://`, Hrana over WebSocket), in one process, against one local sqld
// on loopback (JWT auth on). Workloads: sequential point queries, single-row inserts,
// and interactive transactions of 10 statements. Each runs ROUNDS times per client,
// alternating which goes first; the median round is reported, with the ratio.
//
//   node bench/ws.mjs            (scripts/bench.sh builds and installs first)
import { createClient as edgesyncClient } from "edgesync";
import { createClient as libsqlClient } from "@libsql/client";
import { readFileSync } from "node:fs";
import { startSqld } from "../tests/support/sqld.mjs";

const N = Number(process.env.N ?? 1000);
const TX = Number(process.env.TX ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const libsqlVersion = JSON.parse(readFileSync(new URL("../node_modules/@libsql/client/package.json", import.meta.url))).version;

const sqld = await startSqld({ auth: true });
const cfg = { url: sqld.url.replace("http://", "ws://"), authToken: sqld.tokens.rw };
const clients = { edgesync: edgesyncClient(cfg), libsql: libsqlClient(cfg) };
for (const c of Object.values(clients)) if (c.protocol !== "ws") throw new Error(`expected a WebSocket client, got ${c.protocol}`);

for (const [name, c] of Object.entries(clients)) {
  await c.execute(`create table kv_${name}(id integer primary key, k text not null, v real, note text)`);
  await c.batch(
    Array.from({ length: N }, (_, i) => ({ sql: `insert into kv_${name} values (?, ?, ?, ?)`, args: [i, `key-${i}`, i * 1.5, "seed"] })),
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
  [`${TX} transactions of 10 statements`]: async (c, t) => {
    for (let i = 0; i < TX; i++) {
      const tx = await c.transaction("write");
      try {
        for (let j = 0; j < 5; j++) {
          await tx.execute({ sql: `select v from ${t} where id = ?`, args: [(i * 31 + j) % N] });
          await tx.execute({ sql: `update ${t} set v = v + 1 where id = ?`, args: [(i * 31 + j) % N] });
        }
        await tx.commit();
      } finally {
        tx.close();
      }
    }
  },
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = [];
for (const [label, run] of Object.entries(workloads)) {
  // Warm-up: JIT, connections, wasm tiering.
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

console.log(`\nOver WebSocket: edgesync vs @libsql/client ${libsqlVersion} — Node ${process.version}, sqld on loopback, median of ${ROUNDS} rounds\n`);
const pad = (s, n) => String(s).padEnd(n);
console.log(`${pad("workload", 34)} ${pad("edgesync ms", 12)} ${pad("libsql ms", 12)} ${pad("ratio", 7)} goal ≤ 1.00`);
for (const { label, e, l, ratio } of rows) {
  console.log(`${pad(label, 34)} ${pad(e.toFixed(1), 12)} ${pad(l.toFixed(1), 12)} ${pad(ratio.toFixed(3), 7)} ${ratio <= 1.0 ? "met" : "NOT MET"}`);
}

for (const c of Object.values(clients)) c.close();
await sqld.stop();
