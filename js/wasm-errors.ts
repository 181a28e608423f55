/**
 * Errors: the `EdgesyncError` class every failure is an instance of, the `ErrorCode`
 * union (generated from the Rust enum into the wasm module's type declarations:
 * src/error.rs), and `adopt`, the one place where what a wasm export throws becomes an
 * `EdgesyncError` — for the remote client, embedded replicas, the CRDT classes and the
 * edge classes alike.
 */
import type { ErrorCode } from "./wasm/edgesync.js";

export type { ErrorCode };

/** Every error edgesync raises. Branch on `code`, never on `message`. */
export class EdgesyncError extends Error {
  declare code: ErrorCode;
  /** Whether the same call may succeed later (server unreachable, timeout, 5xx). */
  declare retryable: boolean;
  /** The server's own code, e.g. `SQLITE_CONSTRAINT`. */
  declare serverCode?: string;
  /** Index of the failing statement in a `batch`. */
  declare step?: number;
  /** HTTP status for `SERVER_ERROR`. */
  declare status?: number;

  constructor(message: string, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EdgesyncError";
    this.code = code;
    this.retryable = false;
  }
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
 * Turns anything a call into the wasm module threw into an `EdgesyncError`:
 * - an `EdgesyncError` (the core's errors are constructed as one) stays as it is; an
 *   error the core built before the class was registered gets its prototype;
 * - a wasm trap (`WebAssembly.RuntimeError`) is a bug in edgesync: `INTERNAL_ERROR`;
 * - the glue's refusal of an argument — the messages above, or a `TypeError` from
 *   converting a value of the wrong type — is the caller's: `INVALID_ARGUMENT`;
 * - anything else is unexpected: `INTERNAL_ERROR`.
 * The original error is the `cause`.
 */
export function adopt(e: unknown): EdgesyncError {
  if (e instanceof EdgesyncError) return e;
  if (e instanceof Error && e.name === "EdgesyncError" && typeof (e as { code?: unknown }).code === "string") {
    return Object.setPrototypeOf(e, EdgesyncError.prototype) as EdgesyncError;
  }
  const message = e instanceof Error ? e.message : String(e);
  const badArgument =
    e instanceof Error &&
    !(e instanceof WebAssembly.RuntimeError) &&
    (e instanceof TypeError || BINDING_ARGUMENT_ERRORS.some((re) => re.test(message)));
  return badArgument
    ? new EdgesyncError(`invalid argument: ${message}`, "INVALID_ARGUMENT", { cause: e })
    : new EdgesyncError(`internal error: ${message}`, "INTERNAL_ERROR", { cause: e });
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
  return new EdgesyncError(
    `internal error: this object was left unusable by an earlier internal error (${first.message}); create it again (a CRDT from its last encode())`,
    "INTERNAL_ERROR",
    { cause: first },
  );
}
