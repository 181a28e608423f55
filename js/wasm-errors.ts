/**
 * Errors: `LibsqlError` and `LibsqlBatchError`, shaped as `@libsql/client`'s (`name`,
 * `code`, `extendedCode`, `rawCode`, `statementIndex`, a message starting `CODE: `), with
 * edgesync's additions (`retryable`, `serverCode`, `status`); `EdgesyncError` is
 * `LibsqlError` under edgesync's name. The `ErrorCode` union is generated from the Rust
 * enum into the wasm module's type declarations (src/error.rs). `adopt` is the one place
 * where what a wasm export throws becomes one of these errors.
 */
import type { ErrorCode } from "./wasm/edgesync.js";

export type { ErrorCode };

/** Every error edgesync raises (besides `RangeError` / `TypeError` for bad values). Branch on `code`. */
export class LibsqlError extends Error {
  /** What failed, in `@libsql/client`'s words (docs/errors.md). */
  code: ErrorCode;
  /** A local database's extended SQLite code, e.g. `SQLITE_CONSTRAINT_PRIMARYKEY`. */
  extendedCode?: string;
  /** A local database's numeric SQLite code, e.g. 1555. */
  rawCode?: number;
  /** edgesync: whether the same call may succeed later (server unreachable, timeout, 5xx). */
  retryable: boolean;
  /** edgesync: the server's code as it sent it (`code` is `UNKNOWN` when edgesync does not know it). */
  serverCode?: string;
  /** edgesync: the HTTP status, for `SERVER_ERROR`. */
  status?: number;

  constructor(message: string, code: ErrorCode, extendedCode?: string, rawCode?: number, cause?: unknown) {
    super(code === undefined ? message : `${code}: ${message}`, cause === undefined ? undefined : { cause });
    this.code = code;
    this.extendedCode = extendedCode;
    this.rawCode = rawCode;
    this.retryable = false;
    this.name = "LibsqlError";
  }
}

/** The error of a batch's statement: `statementIndex` is its index (from 0). */
export class LibsqlBatchError extends LibsqlError {
  statementIndex: number;

  constructor(message: string, statementIndex: number, code: ErrorCode, extendedCode?: string, rawCode?: number, cause?: unknown) {
    super(message, code, extendedCode, rawCode, cause);
    this.statementIndex = statementIndex;
    this.name = "LibsqlBatchError";
  }
}

/** edgesync's name for `LibsqlError`: the same class. */
export const EdgesyncError = LibsqlError;
export type EdgesyncError = LibsqlError;

/** A `LibsqlError` raised by the TS layer itself. */
export function coded(code: ErrorCode, message: string, cause?: unknown): LibsqlError {
  return new LibsqlError(message, code, undefined, undefined, cause);
}

/**
 * What wasm-bindgen's generated glue throws for an argument it cannot pass: an object
 * of another class, a freed object, an object used while it is in use (e.g. passed
 * as its own argument). Stable for the pinned wasm-bindgen version (Cargo.toml).
 */
const BINDING_ARGUMENT_ERRORS = [
  /^expected instance of /,
  /^null pointer passed to rust$/,
  /^recursive use of an object detected which would lead to unsafe aliasing in rust$/,
  /^attempted to take ownership of Rust value while it was borrowed$/,
];

/**
 * Turns anything a call into the wasm module threw into a `LibsqlError` (the CRDT and
 * edge classes):
 * - a `LibsqlError` stays as it is; an error the core built before the classes were
 *   registered gets their prototype;
 * - a wasm trap (`WebAssembly.RuntimeError`) is a bug in edgesync: `INTERNAL_ERROR`;
 * - the glue's refusal of an argument — the messages above, or a `TypeError` from
 *   converting a value of the wrong type — is the caller's: `INVALID_ARGUMENT`;
 * - anything else is unexpected: `INTERNAL_ERROR`.
 * The original error is the `cause`.
 */
export function adopt(e: unknown): LibsqlError {
  if (e instanceof LibsqlError) return e;
  if (e instanceof Error && (e.name === "LibsqlError" || e.name === "LibsqlBatchError") && typeof (e as { code?: unknown }).code === "string") {
    return Object.setPrototypeOf(e, e.name === "LibsqlBatchError" ? LibsqlBatchError.prototype : LibsqlError.prototype) as LibsqlError;
  }
  const message = e instanceof Error ? e.message : String(e);
  const badArgument =
    e instanceof Error &&
    !(e instanceof WebAssembly.RuntimeError) &&
    (e instanceof TypeError || BINDING_ARGUMENT_ERRORS.some((re) => re.test(message)));
  return badArgument ? coded("INVALID_ARGUMENT", `invalid argument: ${message}`, e) : coded("INTERNAL_ERROR", `internal error: ${message}`, e);
}

/**
 * `adopt` for the clients: a `RangeError` or `TypeError` stays as it is, as the official
 * client throws them for values that cannot be bound or read (js/args.ts, js/result.ts).
 */
export function adoptClient(e: unknown): Error {
  if ((e instanceof RangeError || e instanceof TypeError) && !BINDING_ARGUMENT_ERRORS.some((re) => re.test(e.message))) return e;
  return adopt(e);
}

/**
 * Objects left unusable by a trap in one of their own calls, with the error it raised.
 *
 * A trap (an abort in the wasm module: out of memory, a bug) stops the call where it
 * is: nothing that call had begun is finished or undone — the object's state may be
 * half-changed, and the binding's borrow of it is never released. So the object is
 * retired: its later calls raise `INTERNAL_ERROR` (naming the first) without entering
 * the module, and `free()` does nothing (its memory is not reclaimed). Nothing else is
 * retired: other objects' state was not being changed, and the module goes on working.
 */
const retired = new WeakMap<object, EdgesyncError>();

/** `adopt(e)` for an error thrown by a call on `obj`; a trap retires `obj`. */
export function adoptFrom(obj: unknown, e: unknown): EdgesyncError {
  const err = adopt(e);
  if (e instanceof WebAssembly.RuntimeError && obj !== null && typeof obj === "object") retired.set(obj, err);
  return err;
}

/** The error to raise for a call on a retired object, or `undefined` if it is usable. */
export function retiredError(obj: unknown): EdgesyncError | undefined {
  const first = obj !== null && typeof obj === "object" ? retired.get(obj) : undefined;
  if (first === undefined) return undefined;
  return coded(
    "INTERNAL_ERROR",
    `internal error: this object was left unusable by an earlier internal error (${first.message}); create it again (a CRDT from its last encode())`,
    first,
  );
}
