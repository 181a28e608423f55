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
 * A transport's canceller: `cancel()` ends every request in flight through it. Plain JS
 * on purpose: an AbortController is an I/O object that a Cloudflare Worker binds to
 * the request that made it, and a client outlives requests.
 */
export function canceller() {
  return { cancelled: false, waiting: new Set() };
}

export function cancel(c) {
  c.cancelled = true;
  for (const f of c.waiting) f();
  c.waiting.clear();
}

/**
 * `start()`'s promise, or `stop`'s rejection if that comes first. Whichever loses is
 * settled later with no one waiting for it: it is never reported as unhandled.
 */
function race(start, stop) {
  let p;
  try {
    p = Promise.resolve(start());
  } catch (e) {
    p = Promise.reject(e);
  }
  p.catch(() => {});
  stop.catch(() => {});
  return Promise.race([p, stop]);
}

/**
 * POSTs `body` and resolves to `{ status, body: Uint8Array }`; rejects with
 * `{ stage: "send" | "read", error }` so the caller can tell a failed connection from
 * a connection lost mid-response. The deadline covers both stages, and so does
 * `cancelled` (the transport's canceller, aborted by `close()`).
 *
 * The deadline is enforced here, not left to `fetchFn`: a `fetch` that ignores its
 * AbortSignal (a custom one, a service binding) must not make a call hang past
 * `timeoutMs`. The request is still aborted through the signal for a `fetch` that
 * honours it; one that does not is left to finish on its own, its outcome ignored.
 * AbortController + setTimeout, cleared on completion, costs ~1 µs where
 * AbortSignal.timeout costs ~11.
 */
export async function post(fetchFn, url, body, bearer, timeoutMs, cancelled) {
  const headers = { "content-type": "application/json" };
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  const controller = new AbortController();
  let stage = "send";
  let timer;
  let onCancel;
  const stop = new Promise((_, reject) => {
    const end = (error) => {
      controller.abort(error);
      reject({ stage, error });
    };
    timer = setTimeout(() => end(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")), timeoutMs);
    if (cancelled !== undefined) {
      onCancel = () => end(new DOMException("the client is closed", "ClientClosed"));
      if (cancelled.cancelled) onCancel();
      else cancelled.waiting.add(onCancel);
    }
  });
  try {
    // One `Request`, as the official client passes it: a custom fetch that forwards only
    // its first argument still sends the method, headers and body.
    const send = () => (fetchFn ?? fetch)(new Request(url, { method: "POST", headers, body, signal: controller.signal }));
    const response = await race(send, stop);
    stage = "read";
    const bytes = new Uint8Array(await race(() => response.arrayBuffer(), stop));
    return { status: response.status, body: bytes };
  } catch (error) {
    throw error !== null && typeof error === "object" && "stage" in error && "error" in error ? error : { stage, error };
  } finally {
    clearTimeout(timer);
    if (onCancel !== undefined) cancelled.waiting.delete(onCancel);
  }
}
