/**
 * Statements encoded for one crossing into wasm, for every client (remote over HTTP or
 * WebSocket, embedded replica): the arguments are packed into bytes here and decoded
 * once in Rust (src/store/packed.rs), so one module checks every argument, with the
 * official client's errors — `RangeError` for NaN, ±Infinity or a bigint beyond 64 bits,
 * `TypeError` for `undefined` or a value of another type; and `INVALID_ARGUMENT` for a
 * string holding a lone surrogate, which UTF-8 cannot store (never replaced by U+FFFD). `encodeStatement` packs one
 * statement into a JS buffer, `encodeStatements` several; `encodeArgs` writes straight
 * into a buffer inside wasm memory (the kept-statement path of a replica, local.ts).
 */
import type { InArgs, InStatement, InValue } from "./types.js";
import { coded } from "./wasm-errors.js";

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
/** Bind every number as REAL (`numberArgs: "real"`), as `@libsql/client` does. */
let realNumbers = false;

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
  if (!wellFormed(s)) throw loneSurrogate("");
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

/** A string that UTF-8 cannot store (edgesync's rule; the official client has none). */
function loneSurrogate(what: string): Error {
  return coded("INVALID_ARGUMENT", `invalid argument: ${what}${LONE_SURROGATE}`);
}

/** How an argument is named in errors: its position (from 0) or its name. */
function what(key: number | string): string {
  return typeof key === "number" ? `argument ${key + 1}` : `argument ${JSON.stringify(key)}`;
}

function value(v: InValue, key: number | string): void {
  room(9);
  if (v === null) {
    buf[at++] = 0;
  } else if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new RangeError(`Only finite numbers (not Infinity or NaN) can be passed as arguments (${what(key)} is ${v})`);
    buf[at++] = !realNumbers && Number.isInteger(v) && Math.abs(v) <= MAX_SAFE ? 1 : 2;
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
    if (BigInt.asIntN(64, v) !== v) {
      throw new RangeError(`This bigint value is too large to be represented as a 64-bit integer and passed as argument (${what(key)})`);
    }
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
    if (!Number.isFinite(ms)) throw new RangeError(`Only finite numbers (not Infinity or NaN) can be passed as arguments (${what(key)} is an invalid Date)`);
    buf[at++] = realNumbers ? 2 : 1;
    view.setFloat64(at, ms, true);
    at += 8;
  } else if (v === undefined) {
    throw new TypeError(`undefined cannot be passed as argument to the database (${what(key)}); use null for NULL`);
  } else {
    throw new TypeError(
      `Unsupported type of value: ${typeof v} (${what(key)}); use null, boolean, number, bigint, string, ArrayBuffer, Uint8Array or Date`,
    );
  }
}

/** A statement's SQL and arguments, whichever form it was given in. */
export function statementParts(stmt: InStatement | [string, InArgs?], extra?: InArgs): [string, unknown] {
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
    throw new TypeError("a statement must be a string, { sql, args } or [sql, args]");
  }
  if (typeof sql !== "string") throw new TypeError("the statement's `sql` must be a string");
  if (!wellFormed(sql)) throw loneSurrogate("the statement's SQL: ");
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
    throw new TypeError("`args` must be an array (positional) or an object (named)");
  }
}

function ownBuffer(real: boolean): void {
  target = undefined;
  realNumbers = real;
  buf = own.buf;
  view = own.view;
  base = at = 0;
  limit = buf.length;
}

/**
 * `[sql, packed arguments]` (the layout of `writeArgs`), in a JS buffer reused by the
 * next call. `real`: bind every number as REAL.
 */
export function encodeStatement(stmt: InStatement | [string, InArgs?], extra?: InArgs, real = false): [string, Uint8Array] {
  const [sql, args] = statementParts(stmt, extra);
  ownBuffer(real);
  writeArgs(args);
  return [sql, buf.subarray(0, at)];
}

/**
 * Several statements in one buffer (a fresh copy): `u32` count, then per statement its
 * SQL (`u32` length + UTF-8) and its arguments as `writeArgs` packs them.
 */
export function encodeStatements(stmts: ReadonlyArray<InStatement | [string, InArgs?]>, real = false): Uint8Array {
  if (!Array.isArray(stmts)) throw new TypeError("expected an array of statements");
  ownBuffer(real);
  room(4);
  view.setUint32(at, stmts.length, true);
  at += 4;
  for (const s of stmts) {
    const [sql, args] = statementParts(s);
    str(sql);
    writeArgs(args);
  }
  return buf.slice(0, at);
}

/** Packs `args` into `t`'s buffer (growing it as needed); returns the length. */
export function encodeArgs(args: unknown, t: ArgsTarget, real = false): number {
  realNumbers = real;
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
