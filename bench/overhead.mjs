// edgesync's own cost per call, without a network: a `fetch` that answers instantly with
// a canned Hrana response. Measures argument conversion, JSON encoding in wasm,
// response decoding and building rows — the part of a query edgesync is responsible for.
//   node bench/overhead.mjs [path/to/edgesync_bg.wasm]
import { readFileSync } from "node:fs";
import { initSync } from "../pkg/wasm/edgesync.js";

const wasmPath = process.argv[2] ?? new URL("../pkg/wasm/edgesync_bg.wasm", import.meta.url);
initSync({ module: readFileSync(wasmPath) });
const { createClient } = await import("../pkg/client.js");

const v = (type, value) => (type === "null" ? { type } : { type, value });
const row = [v("integer", "42"), v("text", "key-42"), v("float", 63), v("text", "seed")];
const cols = ["id", "k", "v", "note"].map((name) => ({ name, decltype: null }));
const result = (rows) => ({ cols, rows, affected_row_count: 0, last_insert_rowid: null, rows_read: 1, rows_written: 0, query_duration_ms: 0.01 });
const pipeline = (response) => JSON.stringify({ baton: null, base_url: null, results: [{ type: "ok", response }, { type: "ok", response: { type: "close" } }] });

const N = 1000;
const insert = { cols: [], rows: [], affected_row_count: 1, last_insert_rowid: "7", rows_read: 0, rows_written: 1, query_duration_ms: 0.01 };

/** A successful answer to each request of a pipeline, the way sqld shapes it. */
function answer(body) {
  const { requests } = JSON.parse(typeof body === "string" ? body : new TextDecoder().decode(body));
  const results = requests.map((r) => {
    switch (r.type) {
      case "execute":
        return { type: "execute", result: r.stmt.sql.startsWith("select") ? result([row]) : insert };
      case "batch": {
        const n = r.batch.steps.length;
        return { type: "batch", result: { step_results: r.batch.steps.map((_, i) => (i === n - 1 ? null : insert)), step_errors: Array(n).fill(null) } };
      }
      case "get_autocommit":
        return { type: "get_autocommit", is_autocommit: true };
      default:
        return { type: r.type };
    }
  });
  return JSON.stringify({ baton: null, base_url: null, results: results.map((response) => ({ type: "ok", response })) });
}

/** A `fetch` that answers from memory; answers are cached by request size, so the
 *  steady state costs only the Response object, as a real fetch would. */
function canned() {
  const cache = new Map();
  return async (input, init) => {
    // edgesync calls fetch(url, init); @libsql/client calls fetch(request). Reading the
    // body is what a real fetch does when it sends it.
    const body = input instanceof Request ? new Uint8Array(await input.arrayBuffer()) : init.body;
    const key = body.length;
    if (!cache.has(key)) cache.set(key, answer(body));
    return new Response(cache.get(key), { status: 200, headers: { "content-type": "application/json" } });
  };
}

const pointClient = createClient({ url: "http://127.0.0.1:1", fetch: canned() });
const batchClient = createClient({ url: "http://127.0.0.1:1", fetch: canned() });
const stmts = Array.from({ length: N }, (_, i) => ({ sql: "insert into kv values (?, ?, ?, ?)", args: [i, `b${i}`, i / 7, "batch"] }));

async function time(label, iters, fn) {
  for (let i = 0; i < iters / 10; i++) await fn(); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await fn();
  const us = ((performance.now() - t0) * 1000) / iters;
  console.log(`${label.padEnd(40)} ${us.toFixed(1)} µs/call`);
  return us;
}

const { createClient: libsqlClient } = await import("@libsql/client");
const lPoint = libsqlClient({ url: "http://127.0.0.1:1", fetch: canned() });
const lBatch = libsqlClient({ url: "http://127.0.0.1:1", fetch: canned() });
const q = { sql: "select * from kv where id = ?", args: [42] };
const e1 = await time("edgesync point query", 20000, () => pointClient.execute(q));
const l1 = await time("@libsql/client point query", 20000, () => lPoint.execute(q));
const e2 = await time(`edgesync ${N}-statement batch`, 200, () => batchClient.batch(stmts, "write"));
const l2 = await time(`@libsql/client ${N}-statement batch`, 200, () => lBatch.batch(stmts, "write"));
console.log(`ratios edgesync/libsql: point ${(e1 / l1).toFixed(2)}, batch ${(e2 / l2).toFixed(2)}`);
