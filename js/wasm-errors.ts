/**
 * Internal (not re-exported by the package entries): turns what a wasm export throws
 * into an `EdgesyncError`, for the wrappers in crdt.ts and edge.ts.
 */
import { EdgesyncError } from "./client.js";

/**
 * Errors thrown by the wasm core get the `EdgesyncError` prototype. Other errors come
 * from wasm-bindgen's argument checks (`merge` given another class, a freed object, an
 * object passed as its own argument): `INVALID_ARGUMENT`. A trap is `INTERNAL_ERROR`.
 */
export function adopt(e: unknown): unknown {
  if (e instanceof EdgesyncError) return e;
  if (e instanceof Error && e.name === "EdgesyncError" && "code" in e) {
    return Object.setPrototypeOf(e, EdgesyncError.prototype);
  }
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof WebAssembly.RuntimeError) {
    return new EdgesyncError(`internal error: ${message}`, "INTERNAL_ERROR", { cause: e });
  }
  return new EdgesyncError(`invalid argument: ${message}`, "INVALID_ARGUMENT", { cause: e });
}
