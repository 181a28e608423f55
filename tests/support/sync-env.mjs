// Shared by the sync tests: a real sqld (and fault proxies) with the embedded replicas
// made from it, and small helpers for reading results.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "edgesync";
import { createClient as libsql } from "@libsql/client";
import { startSqld } from "./sqld.mjs";
import { startFaultProxy } from "./fault-proxy.mjs";

/** Plain arrays, so replicas and @libsql/client results compare with deepEqual. */
export function rowsOf(rs) {
  return rs.rows.map((r) => Array.from({ length: r.length }, (_, i) => r[i]));
}

export async function dump(db, table, order = "1") {
  return rowsOf(await db.execute(`select * from ${table} order by ${order}`));
}

export async function scalar(db, sql, args) {
  const rs = await db.execute(args === undefined ? sql : { sql, args });
  return rs.rows[0][0];
}

export async function waitFor(what, cond, timeoutMs = 10_000, stepMs = 25) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Syncs until one succeeds (faults may make some attempts fail). */

/** Starts sqld and `proxies` fault proxies in front of it; `stop()` ends all of it (by PID, via the helpers). */
export async function env({ proxies = 0 } = {}) {
  const sqld = await startSqld();
  const px = [];
  const closers = [];
  const e = {
    sqld,
    proxies: px,
    server: libsql({ url: sqld.url, authToken: sqld.tokens.rw }),
    replica(opts = {}) {
      const db = createClient({ url: ":memory:", syncUrl: sqld.url, authToken: sqld.tokens.rw, timeout: 5000, ...opts });
      closers.push(() => db.close());
      return db;
    },
    async stop() {
      for (const c of closers) {
        try {
          c();
        } catch {
          /* already closed */
        }
      }
      e.server.close();
      for (const p of px) await p.stop();
      await sqld.stop();
    },
  };
  try {
    for (let i = 0; i < proxies; i++) px.push(await startFaultProxy({ target: sqld.url }));
  } catch (err) {
    await e.stop();
    throw err;
  }
  return e;
}
