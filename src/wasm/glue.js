// JavaScript helpers that the wasm binding imports (wasm-bindgen copies this file into
// pkg/wasm/snippets/). Each replaces many boundary crossings with one call: building an
// object field by field from Rust costs a Reflect.set per field, with its key string
// decoded out of wasm memory every time.

/** Resolves after a zero-delay timer: the event loop has done its I/O (a request
 *  started just before is on the socket). */
export function idle() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A transport's canceller: `close()` aborts it, and with it every request in flight. */
export function canceller() {
  return new AbortController();
}

export function cancel(c) {
  c.abort(new DOMException("the client is closed", "ClientClosed"));
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
      onCancel = () => end(cancelled.signal.reason);
      if (cancelled.signal.aborted) onCancel();
      else cancelled.signal.addEventListener("abort", onCancel, { once: true });
    }
  });
  try {
    const response = await race(() => (fetchFn ?? fetch)(url, { method: "POST", headers, body, signal: controller.signal }), stop);
    stage = "read";
    const bytes = new Uint8Array(await race(() => response.arrayBuffer(), stop));
    return { status: response.status, body: bytes };
  } catch (error) {
    throw error !== null && typeof error === "object" && "stage" in error && "error" in error ? error : { stage, error };
  } finally {
    clearTimeout(timer);
    if (onCancel !== undefined) cancelled.signal.removeEventListener("abort", onCancel);
  }
}

const utf8 = new TextDecoder();
/** Decoded result headers by the id `ResultEncoder` gave them (see convert.rs). */
const headers = [];
const TWO32 = 4294967296;

/** Short ASCII strings decode faster by hand than through TextDecoder. */
function readStr(bytes, at, len) {
  if (len < 48) {
    let s = "";
    for (let i = at; i < at + len; i++) {
      const c = bytes[i];
      if (c > 127) return utf8.decode(bytes.subarray(at, at + len));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8.decode(bytes.subarray(at, at + len));
}

/**
 * The raw result object the TS layer turns into a ResultSet, decoded from the bytes
 * `encode_result` (src/wasm/convert.rs) writes. `intMode`: 0 auto, 1 bigint, 2 string.
 */
// js/local.ts decodes kept-statement results with the same value tags and rules; a
// change to them goes in both (this file is a wasm-bindgen snippet, copied into pkg/
// under a hashed path, so it cannot import the package's own modules).
export function decodeResult(bytes, intMode) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ncols = dv.getUint32(0, true);
  const nrows = dv.getUint32(4, true);
  const rowsAffected = dv.getFloat64(8, true);
  const lastInsertRowid = bytes[16] ? dv.getBigInt64(17, true) : undefined;
  const headerId = dv.getUint32(25, true);
  const replicationIndex = bytes[30] ? dv.getFloat64(31, true) : undefined;
  let at = 39;
  let header;
  if (bytes[29]) {
    const columns = new Array(ncols);
    const columnTypes = new Array(ncols);
    for (let i = 0; i < ncols; i++) {
      let len = dv.getUint32(at, true);
      columns[i] = readStr(bytes, at + 4, len);
      at += 4 + len;
      len = dv.getUint32(at, true);
      columnTypes[i] = readStr(bytes, at + 4, len);
      at += 4 + len;
    }
    header = { columns, columnTypes };
    headers[headerId] = header;
  } else {
    header = headers[headerId];
  }
  // Fresh arrays per result: callers may keep or change them.
  const columns = header.columns.slice();
  const columnTypes = header.columnTypes.slice();
  const rows = new Array(nrows);
  for (let r = 0; r < nrows; r++) {
    const row = new Array(ncols);
    for (let c = 0; c < ncols; c++) {
      const tag = bytes[at++];
      if (tag === 0) {
        row[c] = null;
      } else if (tag === 1) {
        const lo = dv.getUint32(at, true);
        const hi = dv.getInt32(at + 4, true);
        if (intMode === 0 && hi >= -2097152 && hi < 2097152 && (hi !== -2097152 || lo !== 0)) {
          row[c] = hi * TWO32 + lo;
        } else {
          const big = dv.getBigInt64(at, true);
          row[c] = intMode === 2 ? big.toString() : intMode === 0 && big >= -9007199254740991n && big <= 9007199254740991n ? Number(big) : big;
        }
        at += 8;
      } else if (tag === 2) {
        row[c] = dv.getFloat64(at, true);
        at += 8;
      } else {
        const len = dv.getUint32(at, true);
        row[c] = tag === 3 ? readStr(bytes, at + 4, len) : bytes.slice(at + 4, at + 4 + len);
        at += 4 + len;
      }
    }
    rows[r] = row;
  }
  return { columns, columnTypes, rows, rowsAffected, lastInsertRowid, replicationIndex };
}
