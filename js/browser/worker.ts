/**
 * The dedicated module worker a page's `createClient({ url: "file:…" })` starts
 * (js/browser/client.ts): it instantiates the `edgesync/replica` flavour of the wasm
 * module — the page's own compiled module when the page runs that flavour too, else
 * fetched next to the package as soon as the page says none comes (`load`, sent when
 * the worker starts, while the page's own module may still load) — and runs one
 * {@link ReplicaHost} for the page's client.
 */
import * as glue from "../wasm/replica/edgesync.js";
import { LibsqlBatchError, LibsqlError } from "../wasm-errors.js";
import { readyRuntime } from "../runtime.js";
import { wasmSource } from "../platform.js";
import type { WebSocketConstructor } from "../types.js";
import { ReplicaHost } from "./host.js";
import { opfsSupported } from "./opfs.js";
import { coded, errorData } from "./protocol.js";
import type { Call, Out, ToPage, ToWorker } from "./protocol.js";

interface WorkerScope {
  onmessage: ((ev: MessageEvent<ToWorker>) => void) | null;
  postMessage(m: ToPage): void;
  close(): void;
}
const scope = globalThis as unknown as WorkerScope;
const post = (m: ToPage) => scope.postMessage(m);

// Asked for now, while the module and the `open` message come: the first call in a
// worker starts the origin's storage (tens of ms), and the host asks for it again.
if (opfsSupported()) navigator.storage.getDirectory().catch(() => undefined);

let host: ReplicaHost | undefined;
/** Calls that came before the module was ready. */
let early: Call[] = [];
let closing = false;

function send(out: Out): void {
  try {
    post({ t: "out", ...out });
  } catch {
    // Something the page cannot receive (a method result that is not cloneable): the
    // rest goes out, and each answer alone — that one as an error.
    post({ t: "out", state: out.state, events: out.events });
    for (const r of out.replies ?? []) {
      try {
        post({ t: "out", replies: [r] });
      } catch (e) {
        const err = coded("INVALID_ARGUMENT", `invalid argument: the result cannot be sent to the page: ${(e as Error)?.message ?? e}`);
        post({ t: "out", replies: [{ id: r.id, ok: false, e: errorData(err) }] });
      }
    }
  }
}

/** The module being fetched and compiled here, when the page said it sends none (`load`). */
let loading: Promise<unknown> | undefined;
/**
 * The replica flavour's module: its file, named by a literal `new URL(…, import.meta.url)`
 * so that bundlers (Vite, webpack) ship it with the worker; where none is there, the
 * inline copy (a separate file, fetched only then), as in a page.
 */
const loadWasm = async () =>
  glue.default({
    module_or_path: await wasmSource(
      () => new URL("../wasm/replica/edgesync_bg.wasm", import.meta.url),
      () => import("../wasm/replica/inline.js"),
    ),
  });

async function open(m: Extract<ToWorker, { t: "open" }>): Promise<void> {
  try {
    if (m.module !== undefined) await glue.default({ module_or_path: m.module });
    else await (loading ?? loadWasm());
    glue.registerErrorClasses(LibsqlError, LibsqlBatchError);
  } catch (e) {
    const err = coded("INTERNAL_ERROR", `internal error: the database worker cannot load edgesync's wasm module: ${(e as Error)?.message ?? e}`);
    send({ replies: early.map((c) => ({ id: c.id, ok: false, e: errorData(err) })) });
    early = [];
    return;
  }
  const rt = readyRuntime(glue, "browser", (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket);
  host = new ReplicaHost(m.name, m.config, send, rt);
  host.submit(early);
  early = [];
  if (closing) return close();
  await host.start();
}

/** Closes the host; `closed` goes out after its last answers (flushed in a microtask). */
async function close(): Promise<void> {
  await host?.close().catch(() => undefined);
  setTimeout(() => post({ t: "closed" }), 0);
}

scope.onmessage = (ev) => {
  const m = ev.data;
  switch (m.t) {
    case "load":
      if (loading === undefined) {
        loading = loadWasm();
        loading.catch(() => undefined); // reported by open()
      }
      break;
    case "open":
      void open(m);
      break;
    case "calls":
      if (host) host.submit(m.calls);
      else early.push(...m.calls);
      break;
    case "close":
      closing = true;
      if (host) void close();
      else if (early.length === 0) post({ t: "closed" });
      break;
  }
};
