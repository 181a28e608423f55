import { createClient } from "edgesync";
import { startSqld } from "../tests/support/sqld.mjs";
const SCHEMA = "(id integer primary key, device text, ts integer, temp real, note text)";
const row = (i) => [i, `dev-${String(i % 1000).padStart(4, "0")}`, 1_763_780_000_000 + i * 1000, 15 + ((i * 37) % 200) / 10 + 0.05, `reading ${i} ok`];
const sqld = await startSqld();
for (let k = 0; k < 3; k++) {
  const c = createClient({ url: ":memory:", syncUrl: sqld.url, authToken: sqld.tokens.rw, timeout: 120000 });
  await c.execute(`create table t${k} ${SCHEMA}`); c.replicate(`t${k}`); await c.sync();
  for (let i = 0; i < 10000; i++) await c.execute({ sql: `insert into t${k} values (?, ?, ?, ?, ?)`, args: row(i) });
  const t0 = performance.now();
  await c.sync();
  console.log("sync", (performance.now() - t0).toFixed(1));
  c.close();
}
await sqld.stop();
