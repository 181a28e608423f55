// JavaScript helpers that the wasm binding imports (wasm-bindgen copies this file into
// pkg/wasm/snippets/). Each replaces many boundary crossings with one call: building an
// object field by field from Rust costs a Reflect.set per field, with its key string
// decoded out of wasm memory every time. (Results cross as bytes instead: see
// src/wasm/result.rs and js/result.ts.)

/** Resolves after a zero-delay timer: the event loop has done its I/O (a request
 *  started just before is on the socket). */
export function idle() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * POSTs `body` and resolves to `{ status, body: Uint8Array }`; rejects with
 * `{ stage: "send" | "read", error }` so the caller can tell a failed connection from
 * a connection lost mid-response. The deadline covers both stages. AbortController +
 * setTimeout, cleared on completion, costs ~1 µs where AbortSignal.timeout costs ~11.
 */
export async function post(fetchFn, url, body, bearer, timeoutMs) {
  const headers = { "content-type": "application/json" };
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")),
    timeoutMs,
  );
  let stage = "send";
  try {
    // One `Request`, as the official client passes it: a custom fetch that forwards only
    // its first argument still sends the method, headers and body.
    const request = new Request(url, { method: "POST", headers, body, signal: controller.signal });
    const response = await (fetchFn ?? fetch)(request);
    stage = "read";
    const bytes = new Uint8Array(await response.arrayBuffer());
    return { status: response.status, body: bytes };
  } catch (error) {
    throw { stage, error };
  } finally {
    clearTimeout(timer);
  }
}
