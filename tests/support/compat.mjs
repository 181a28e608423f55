// Compatibility tests: the same scenario run against the official @libsql/client (the
// oracle) and against edgesync, their outcomes compared. An outcome is what a program
// can observe: the result (values, column names and types, counts, its JSON form), or
// the error (class, name, code, extended code, statement index, message).
import assert from "node:assert/strict";

/** A value as comparable data (ArrayBuffers by their bytes). */
export function plain(v) {
  if (v instanceof ArrayBuffer) return { ArrayBuffer: [...new Uint8Array(v)] };
  if (v instanceof Uint8Array) return { Uint8Array: [...v] };
  if (typeof v === "bigint") return { bigint: v.toString() };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object" && "columns" in v && "rows" in v) return resultSet(v);
  return v;
}

export function resultSet(rs) {
  return {
    columns: rs.columns,
    columnTypes: rs.columnTypes,
    rows: rs.rows.map((r) => ({ length: r.length, byIndex: Array.from({ length: r.length }, (_, i) => plain(r[i])), byName: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, plain(v)])) })),
    rowsAffected: rs.rowsAffected,
    lastInsertRowid: plain(rs.lastInsertRowid),
    json: JSON.stringify(rs),
  };
}

/**
 * The observable part of an error. `message`: compared only when `withMessage` (a
 * server's or SQLite's own text, which both clients pass on).
 */
export function errorOf(e, withMessage) {
  const out = {
    class: e instanceof RangeError ? "RangeError" : e instanceof TypeError ? "TypeError" : e instanceof Error ? "Error" : typeof e,
    name: e?.name,
    code: e?.code,
    extendedCode: e?.extendedCode,
    rawCode: e?.rawCode,
    statementIndex: e?.statementIndex,
  };
  if (withMessage) out.message = e?.message;
  return out;
}

/** Runs `f` and returns its outcome: `{ ok }` or `{ error }`. A synchronous throw counts as `sync`. */
export async function outcome(f, withMessage = true) {
  let p;
  try {
    p = f();
  } catch (e) {
    return { sync: true, error: errorOf(e, withMessage) };
  }
  try {
    return { ok: plain(await p) };
  } catch (e) {
    return { error: errorOf(e, withMessage) };
  }
}

/**
 * Runs each scenario on both clients, in order, and compares the outcomes. `scenarios`:
 * `[name, (client) => promise | value, options?]`; options.message (default true):
 * compare error messages too.
 */
export async function compare(official, ours, scenarios) {
  const diffs = [];
  for (const [name, f, opts = {}] of scenarios) {
    const want = await outcome(() => f(official), opts.message ?? true);
    const got = await outcome(() => f(ours), opts.message ?? true);
    try {
      assert.deepEqual(got, want);
    } catch {
      diffs.push(`${name}:\n  official: ${JSON.stringify(want)}\n  edgesync: ${JSON.stringify(got)}`);
    }
  }
  assert.equal(diffs.length, 0, `${diffs.length} difference(s) from @libsql/client:\n${diffs.join("\n")}`);
}
