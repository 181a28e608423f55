/**
 * Statements for the embedded replica, encoded for one crossing into wasm.
 *
 * The remote client converts arguments in Rust, value by value (each a call across
 * the boundary — noise next to a network round trip). A local point read takes a few
 * microseconds, so here the arguments are packed into bytes in JS and decoded once in
 * Rust (src/store/packed.rs). The value rules are the same as everywhere (docs/client.md,
 * "Values"). `encodeStatement` packs into a JS buffer; `encodeArgs` writes straight
 * into a buffer inside wasm memory (the kept-statement path, local.ts).
 */
import type { InArgs, InStatement, InValue } from "./client.js";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const encoder = new TextEncoder();
const own = { buf: new Uint8Array(1024) as Uint8Array, view: undefined as unknown as DataView };
own.view = new DataView(own.buf.buffer);

/** A buffer in wasm memory that `encodeArgs` writes into. */
export interface ArgsTarget {
  /** A view of the whole memory (re-created by the target when memory grows). */
  u8: Uint8Array;
  dv: DataView;
  /** The buffer's address and size. */
  ptr: number;
  cap: number;
  /** Makes the buffer at least `need` bytes, keeping its contents (ptr, cap and the views may change). */
  reserve(need: number): void;
}

// The encoder's state: the bytes written so far are `buf[base .. at)`, and there is
// room up to `limit`. One encoding runs at a time (it never yields).
let buf: Uint8Array = own.buf;
let view = own.view;
let base = 0;
let at = 0;
let limit = buf.length;
let target: ArgsTarget | undefined;

function room(n: number): void {
  if (at + n <= limit) return;
  const need = at - base + n;
  if (target === undefined) {
    const next = new Uint8Array(Math.max(buf.length * 2, need + 1024));
    next.set(buf.subarray(0, at));
    own.buf = buf = next;
    own.view = view = new DataView(buf.buffer);
    limit = buf.length;
    return;
  }
  const off = at - base;
  target.reserve(Math.max(target.cap * 2, need + 1024));
  buf = target.u8;
  view = target.dv;
  base = target.ptr;
  at = base + off;
  limit = base + target.cap;
}

function bytes(b: Uint8Array): void {
  room(5 + b.length);
  view.setUint32(at, b.length, true);
  buf.set(b, at + 4);
  at += 4 + b.length;
}

function str(s: string): void {
  const n = s.length;
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  room(4 + n * 3);
  if (n < 64) {
    // Short ASCII (names, keys, ids) is faster by hand than through encodeInto.
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 127) break;
      buf[at + 4 + i] = c;
    }
    if (i === n) {
      view.setUint32(at, n, true);
      at += 4 + n;
      return;
    }
  }
  if (!wellFormed(s)) throw new ArgumentError(LONE_SURROGATE);
  const { written } = encoder.encodeInto(s, buf.subarray(at + 4, limit));
  view.setUint32(at, written, true);
  at += 4 + written;
}

const LONE_SURROGATE =
  "a string holds a lone surrogate (half of a UTF-16 pair), which UTF-8 text cannot store";
const wellFormedNative = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;
/** A lone surrogate would be stored as U+FFFD by TextEncoder: refused instead. */
function wellFormed(s: string): boolean {
  if (wellFormedNative !== undefined) return wellFormedNative.call(s);
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** Thrown for a value that cannot be stored; the caller turns it into INVALID_ARGUMENT. */
export class ArgumentError extends Error {}

/** How an argument is named in errors: its position (from 0) or its name. */
function what(key: number | string): string {
  return typeof key === "number" ? `argument ${key + 1}` : `argument ${JSON.stringify(key)}`;
}

function value(v: InValue, key: number | string): void {
  room(9);
  if (v === null || v === undefined) {
    buf[at++] = 0;
  } else if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new ArgumentError(`${what(key)}: ${v} cannot be stored (SQLite has no NaN or infinity)`);
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
    if (BigInt.asIntN(64, v) !== v) throw new ArgumentError(`${what(key)}: bigint does not fit in 64 bits`);
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
    if (!Number.isFinite(ms)) throw new ArgumentError(`${what(key)}: invalid Date`);
    buf[at++] = 1;
    view.setFloat64(at, ms, true);
    at += 8;
  } else {
    throw new ArgumentError(
      `${what(key)}: unsupported type ${typeof v}; use null, boolean, number, bigint, string, Uint8Array, ArrayBuffer or Date`,
    );
  }
}

/** A statement's SQL and arguments, whichever form it was given in. */
export function statementParts(stmt: InStatement, extra?: InArgs): [string, unknown] {
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
  if (!wellFormed(sql)) throw new ArgumentError(`the statement's SQL: ${LONE_SURROGATE}`);
  return [sql, args];
}

/**
 * Packs `args` from `at`. Layout: u8 kind (0 none, 1 positional, 2 named), u32
 * count, then per argument (named: its name as u32 length + UTF-8 first) a tag byte —
 * 0 NULL, 1 INTEGER from a float64, 2 REAL (float64), 3 TEXT, 4 BLOB (u32 length +
 * bytes), 5 INTEGER (int64).
 */
function writeArgs(args: unknown): void {
  room(5);
  if (args === null || args === undefined) {
    buf[at] = 0;
    view.setUint32(at + 1, 0, true);
    at += 5;
  } else if (Array.isArray(args)) {
    buf[at] = 1;
    view.setUint32(at + 1, args.length, true);
    at += 5;
    for (let i = 0; i < args.length; i++) value(args[i] as InValue, i);
  } else if (typeof args === "object" && !(args instanceof Uint8Array)) {
    const entries = Object.entries(args as Record<string, InValue>);
    buf[at] = 2;
    view.setUint32(at + 1, entries.length, true);
    at += 5;
    for (const [name, v] of entries) {
      str(name);
      value(v, name);
    }
  } else {
    throw new ArgumentError("`args` must be an array (positional) or an object (named)");
  }
}

/** `[sql, packed arguments]` (the layout of `writeArgs`), in a JS buffer reused by the next call. */
export function encodeStatement(stmt: InStatement, extra?: InArgs): [string, Uint8Array] {
  const [sql, args] = statementParts(stmt, extra);
  target = undefined;
  buf = own.buf;
  view = own.view;
  base = at = 0;
  limit = buf.length;
  writeArgs(args);
  return [sql, buf.subarray(0, at)];
}

/** Packs `args` into `t`'s buffer (growing it as needed); returns the length. */
export function encodeArgs(args: unknown, t: ArgsTarget): number {
  target = t;
  buf = t.u8;
  view = t.dv;
  base = at = t.ptr;
  limit = base + t.cap;
  try {
    writeArgs(args);
  } finally {
    target = undefined;
  }
  return at - base;
}
