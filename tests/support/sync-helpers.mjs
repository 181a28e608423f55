// Shared by the sync test files (tests/js/sync-*.test.mjs): seeds, error-code
// assertions, retries under faults, the server log's uniqueness, and the guard
// against unhandled promise rejections.
import { after } from "node:test";
import assert from "node:assert/strict";
import { EdgesyncError } from "edgesync";
import { mulberry32 } from "./fault-proxy.mjs";
import { rowsOf } from "./sync-env.mjs";

/** Fails the file's run (after all its tests) if any promise rejection went unhandled. */
export function guardUnhandledRejections() {
  const unhandled = [];
  process.on("unhandledRejection", (e) => unhandled.push(e));
  after(() => assert.deepEqual(unhandled, [], "no unhandled promise rejections"));
}

/** A small seeded PRNG, () => float in [0, 1) (the fault proxy's own). */
export const prng = mulberry32;

export function seedFor(t) {
  const fromEnv = process.env.EDGESYNC_SEED;
  const seed = fromEnv !== undefined ? Number(fromEnv) : Math.floor(Math.random() * 2 ** 31);
  t.diagnostic(`seed ${seed} (rerun with EDGESYNC_SEED=${seed})`);
  return seed;
}

/** Rejects with an EdgesyncError carrying `code` (one of `code` when it is an array). */
export async function rejectsWith(promise, code, extra = {}) {
  let err;
  await assert.rejects(promise, (e) => {
    err = e;
    assert.ok(e instanceof EdgesyncError, `an EdgesyncError, got ${e?.constructor?.name}: ${e}`);
    if (Array.isArray(code)) assert.ok(code.includes(e.code), `${e.code} in ${code}: ${e.message}`);
    else assert.equal(e.code, code, e.message);
    for (const [k, v] of Object.entries(extra)) assert.equal(e[k], v, k);
    return true;
  });
  return err;
}

export function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof EdgesyncError, `an EdgesyncError, got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

export async function syncUntilOk(db, attempts = 20) {
  let last;
  for (let i = 0; i < attempts; i++) {
    try {
      return await db.sync();
    } catch (e) {
      assert.ok(e instanceof EdgesyncError, String(e));
      assert.ok(e.retryable, `a failed sync under network faults is retryable: ${e.code} ${e.message}`);
      last = e;
    }
  }
  throw last;
}

export async function serverLogUnique(server) {
  const [[total, distinct]] = rowsOf(await server.execute("select count(*), count(distinct id) from _es_log"));
  assert.equal(Number(total), Number(distinct), "each record id is in the server log once");
  return Number(total);
}
