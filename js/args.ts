/**
 * Statements for the embedded replica, encoded for one crossing into wasm.
 *
 * The remote client converts arguments in Rust, value by value (each a call across
 * the boundary — noise next to a network round trip). A local point read takes a few
 * microseconds, so here the arguments are packed into bytes in JS and decoded once in
 * Rust (`decode_args` in src/wasm/convert.rs). The value rules are the same as
 * everywhere (README, "Values").
 */
import type { InArgs, InStatement, InValue } from "./client.js";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const encoder = new TextEncoder();
let buf = new Uint8Array(1024);
let view = new DataView(buf.buffer);
let at = 0;

function room(n: number): void {
  if (at + n <= buf.length) return;
  const next = new Uint8Array(Math.max(buf.length * 2, at + n + 1024));
  next.set(buf.subarray(0, at));
  buf = next;
  view = new DataView(buf.buffer);
}

function bytes(b: Uint8Array): void {
  room(5 + b.length);
  view.setUint32(at, b.length, true);
  buf.set(b, at + 4);
  at += 4 + b.length;
}

function str(s: string): void {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  room(4 + s.length * 3);
  const { written } = encoder.encodeInto(s, buf.subarray(at + 4));
  view.setUint32(at, written, true);
  at += 4 + written;
}

/** Thrown for a value that cannot be stored; the caller turns it into INVALID_ARGUMENT. */
export class ArgumentError extends Error {}

function value(v: InValue, what: () => string): void {
  room(9);
  if (v === null || v === undefined) {
    buf[at++] = 0;
  } else if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new ArgumentError(`${what()}: ${v} cannot be stored (SQLite has no NaN or infinity)`);
    buf[at++] = Number.isInteger(v) && Math.abs(v) <= MAX_SAFE ? 1 : 2;
    view.setFloat64(at, v, true);
    at += 8;
  } else if (typeof v === "string") {
    buf[at++] = 3;
    str(v);
  } else if (typeof v === "boolean") {
    buf[at++] = 1;
    view.setFloat64(at, v ? 1 : 0, true);
    at += 8;
  } else if (typeof v === "bigint") {
    if (BigInt.asIntN(64, v) !== v) throw new ArgumentError(`${what()}: bigint does not fit in 64 bits`);
    buf[at++] = 5;
    view.setBigInt64(at, v, true);
    at += 8;
  } else if (v instanceof Uint8Array) {
    buf[at++] = 4;
    bytes(v);
  } else if (v instanceof ArrayBuffer) {
    buf[at++] = 4;
    bytes(new Uint8Array(v));
  } else if (ArrayBuffer.isView(v)) {
    buf[at++] = 4;
    bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  } else if (v instanceof Date) {
    const ms = v.getTime();
    if (!Number.isFinite(ms)) throw new ArgumentError(`${what()}: invalid Date`);
    buf[at++] = 1;
    view.setFloat64(at, ms, true);
    at += 8;
  } else {
    throw new ArgumentError(
      `${what()}: unsupported type ${typeof v}; use null, boolean, number, bigint, string, Uint8Array, ArrayBuffer or Date`,
    );
  }
}

/**
 * `[sql, packed arguments]`. Layout: u8 kind (0 none, 1 positional, 2 named), u32
 * count, then per argument (named: its name as u32 length + UTF-8 first) a tag byte —
 * 0 NULL, 1 INTEGER from a float64, 2 REAL (float64), 3 TEXT, 4 BLOB (u32 length +
 * bytes), 5 INTEGER (int64).
 */
export function encodeStatement(stmt: InStatement, extra?: InArgs): [string, Uint8Array] {
  let sql: unknown;
  let args: unknown;
  if (typeof stmt === "string") {
    sql = stmt;
    args = extra;
  } else if (Array.isArray(stmt)) {
    [sql, args] = stmt;
  } else if (stmt !== null && typeof stmt === "object") {
    sql = (stmt as { sql: unknown }).sql;
    args = (stmt as { args?: unknown }).args;
  } else {
    throw new ArgumentError("a statement must be a string, { sql, args } or [sql, args]");
  }
  if (typeof sql !== "string") throw new ArgumentError("the statement's `sql` must be a string");
  at = 0;
  room(5);
  if (args === null || args === undefined) {
    buf[at] = 0;
    view.setUint32(at + 1, 0, true);
    at += 5;
  } else if (Array.isArray(args)) {
    buf[at] = 1;
    view.setUint32(at + 1, args.length, true);
    at += 5;
    for (let i = 0; i < args.length; i++) value(args[i] as InValue, () => `argument ${i + 1}`);
  } else if (typeof args === "object" && !(args instanceof Uint8Array)) {
    const entries = Object.entries(args as Record<string, InValue>);
    buf[at] = 2;
    view.setUint32(at + 1, entries.length, true);
    at += 5;
    for (const [name, v] of entries) {
      str(name);
      value(v, () => `argument ${JSON.stringify(name)}`);
    }
  } else {
    throw new ArgumentError("`args` must be an array (positional) or an object (named)");
  }
  return [sql, buf.subarray(0, at)];
}
