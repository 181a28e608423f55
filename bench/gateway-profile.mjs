// Profile of a gateway push/pull (issue 17): timing proxies on both hops —
// replica → Worker and Worker → sqld — to see, per push chunk, the Hrana requests the
// Worker makes, their time at sqld, and what is left for the Worker and the hops.
// The same for a direct replica (replica → proxy → sqld).
//
//   node bench/gateway-profile.mjs      (after scripts/build.sh)
import { createClient } from "edgesync";
import crypto from "node:crypto";
import http from "node:http";
import { startSqld } from "../tests/support/sqld.mjs";
import { startWorker } from "../tests/support/worker-env.mjs";
import { hs256Token } from "../tests/support/jwt.mjs";

const N = Number(process.env.N ?? 10_000);
const SCHEMA = "(id integer primary key, owner text, device text, ts integer, temp real, note text)";
const row = (i, owner) => [i, owner, `dev-${String(i % 1000).padStart(4, "0")}`, 1_763_780_000_000 + i * 1000, 15 + ((i * 37) % 200) / 10 + 0.05, `reading ${i} ok`];

/** A loopback proxy to `target` that logs every exchange: path, bytes, ms. */
async function timingProxy(target, name) {
  const log = [];
  const t = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const chunks = [];
    const t0 = performance.now();
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const tr = performance.now();
      const up = http.request(
        { host: t.hostname, port: t.port, path: req.url, method: req.method, headers: { ...req.headers, host: t.host }, agent },
        (ur) => {
          const out = [];
          ur.on("data", (c) => out.push(c));
          ur.on("end", () => {
            const b = Buffer.concat(out);
            const entry = { name, path: req.url, start: t0, recv: tr - t0, ms: performance.now() - tr, reqBytes: body.length, resBytes: b.length, status: ur.statusCode };
            if (req.url.includes("pipeline")) {
              try {
                const j = JSON.parse(body);
                entry.stmts = j.requests?.map((r) => r.type === "batch" ? `batch(${r.batch.steps.length})` : r.type).join(" ");
              } catch {}
            }
            log.push(entry);
            res.writeHead(ur.statusCode, ur.headers);
            res.end(b);
          });
        },
      );
      up.on("error", (e) => { res.writeHead(502); res.end(String(e)); });
      up.end(body);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, log, stop: () => new Promise((r) => { agent.destroy(); server.close(r); server.closeAllConnections?.(); }) };
}

const SECRET = crypto.randomBytes(32).toString("hex");
const db = await startSqld({ auth: true });
const toSqld = await timingProxy(db.url, "worker→sqld");
const worker = await startWorker({
  name: "profile-gateway",
  logLevel: "warn",
  vars: { REGIONS: "", LIBSQL_URL: toSqld.url, SYNC_RULES: { g: { read: "owner = :sub", write: "owner = :sub" }, d: { read: "owner = :sub", write: "owner = :sub" } }, SYNC_LIMITS: { recordsPerMinute: 1_000_000, maxRecords: 5000 } },
  secrets: { LIBSQL_AUTH_TOKEN: db.tokens.rw, JWT_SECRET: SECRET },
});
const toWorker = await timingProxy(worker.base, "replica→worker");
const direct = await timingProxy(db.url, "replica→sqld");
const admin = createClient({ url: ":memory:", syncUrl: db.url, authToken: db.tokens.rw });
for (const t of ["g", "d"]) {
  await admin.execute(`create table ${t} ${SCHEMA}`);
  admin.replicate(t);
}
await admin.sync();

function show(title, logs, t0) {
  console.log(`\n${title}`);
  const all = logs.flat().sort((a, b) => a.start - b.start);
  for (const e of all) {
    console.log(
      `${(e.start - t0).toFixed(0).padStart(6)} ms ${e.name.padEnd(15)} ${e.path.padEnd(18)} ${String(e.status).padEnd(4)} recv ${e.recv.toFixed(1).padStart(6)} up ${e.ms.toFixed(1).padStart(7)} ms  ${String(e.reqBytes).padStart(8)} B → ${String(e.resBytes).padStart(7)} B ${e.stmts ?? ""}`,
    );
  }
}

for (const round of [0, 1]) {
  for (const how of ["direct", "gateway"]) {
    const t = how === "direct" ? "d" : "g";
    const cfg = how === "direct" ? { syncUrl: direct.url, authToken: db.tokens.rw } : { syncUrl: toWorker.url, authToken: hs256Token(SECRET, "alice") };
    const r = createClient({ url: ":memory:", ...cfg });
    await r.execute(`create table ${t} ${SCHEMA}`);
    r.replicate(t);
    await r.sync();
    await r.batch(Array.from({ length: N }, (_, i) => ({ sql: `insert into ${t} values (?, ?, ?, ?, ?, ?)`, args: row(i + round * N, "alice") })), "write");
    for (const p of [toSqld, toWorker, direct]) p.log.length = 0;
    const t0 = performance.now();
    await r.sync();
    const ms = performance.now() - t0;
    show(`${how} push of ${N} (round ${round}): ${ms.toFixed(0)} ms`, [toSqld.log, toWorker.log, direct.log], t0);
    r.close();
  }
}
admin.close();
await worker.stop();
for (const p of [toSqld, toWorker, direct]) await p.stop();
await db.stop();
