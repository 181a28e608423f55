/**
 * edgesync demo: writes and reads through edgesync (Rust → wasm) against a libSQL
 * server. `scripts/demo.sh` starts a local sqld and runs this; point it anywhere else
 * with EDGESYNC_URL (and EDGESYNC_AUTH_TOKEN), e.g. a Turso database:
 *
 *   EDGESYNC_URL=libsql://my-db-me.turso.io EDGESYNC_AUTH_TOKEN=... node target/examples/demo.js
 */
import { createClient, LibsqlBatchError, type ResultSet } from "edgesync";

const url = process.env.EDGESYNC_URL;
if (!url) throw new Error("set EDGESYNC_URL (scripts/demo.sh does this for you)");
const db = createClient({ url, authToken: process.env.EDGESYNC_AUTH_TOKEN });

function show(title: string, rs: ResultSet): void {
  console.log(`\n${title}`);
  console.table(
    rs.rows.map((row) =>
      Object.fromEntries(rs.columns.map((c, i) => [c, row[i] instanceof Uint8Array ? `<${(row[i] as Uint8Array).length} bytes>` : row[i]])),
    ),
  );
}

const t0 = performance.now();
await db.batch(
  [
    "drop table if exists readings",
    `create table readings (
       id integer primary key,
       sensor text not null,
       celsius real not null,
       taken_at integer not null,
       raw blob
     )`,
  ],
  "write",
);

// One atomic round trip for many rows.
const sensors = ["north-1", "north-2", "south-1"];
await db.batch(
  Array.from({ length: 30 }, (_, i) => ({
    sql: "insert into readings (sensor, celsius, taken_at, raw) values (?, ?, ?, ?)",
    args: [sensors[i % 3], 18 + Math.sin(i) * 4, new Date(Date.UTC(2026, 10, 22, 0, i)), new Uint8Array([i, 255 - i])],
  })),
  "write",
);

// Named arguments; integers beyond 2^53 come back as exact bigints.
await db.execute({
  sql: "insert into readings (sensor, celsius, taken_at) values (:sensor, :c, :at)",
  args: { sensor: "lab", c: 21.5, at: 9007199254740993n },
});

show(
  "Average temperature per sensor",
  await db.execute(`select sensor, count(*) as n, round(avg(celsius), 2) as avg_c
                    from readings group by sensor order by sensor`),
);
show("The lab reading (taken_at is a bigint)", await db.execute("select id, sensor, taken_at, raw from readings where sensor = 'lab'"));

// A failing batch commits nothing, and the error says which statement failed.
try {
  await db.batch(
    ["insert into readings (sensor, celsius, taken_at) values ('x', 1, 1)", "insert into readings (sensor, celsius, taken_at) values (null, 1, 1)"],
    "write",
  );
} catch (e) {
  if (!(e instanceof LibsqlBatchError)) throw e;
  console.log(`\nRejected as expected: ${e.code} at statement ${e.statementIndex}: ${e.message}`);
}
const count = (await db.execute("select count(*) from readings")).rows[0][0];
console.log(`Rows after the failed batch: ${count} (unchanged: 31)`);

console.log(`\nDone in ${(performance.now() - t0).toFixed(1)} ms over ${db.protocol}`);
db.close();
