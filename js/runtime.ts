/**
 * What an entry point gives the modules it exports: the classes of its wasm module
 * flavour (each subpath export ships its own, built with only the Rust features it
 * needs — scripts/build.sh), whether the module is instantiated yet, and the runtime's
 * `WebSocket`.
 *
 * Browsers load the module asynchronously (no top-level await: bundlers' default
 * targets refuse it), so a client made before it is ready waits for `ready` in its first
 * call; Node and Workers instantiate it synchronously on import.
 */
import type * as Full from "./wasm/edgesync.js";
import type { WebSocketConstructor } from "./types.js";
import { coded } from "./wasm-errors.js";

/** The exports a remote client needs. */
export interface RemoteGlue {
  RemoteClient: typeof Full.RemoteClient;
  WsSession: typeof Full.WsSession;
}

/** The exports an embedded replica needs (besides a remote client's). */
export interface ReplicaGlue extends RemoteGlue {
  Replica: typeof Full.Replica;
  wasmMemory: typeof Full.wasmMemory;
}

/**
 * The exports a browser `file:` replica needs (js/browser/): the OPFS host, the path and
 * config checks a page makes before its worker opens the store, the compiled module a
 * page hands to that worker. The full and the replica flavours have them.
 */
export interface BrowserGlue extends ReplicaGlue {
  useOpfs: typeof Full.useOpfs;
  opfsPath: typeof Full.opfsPath;
  checkReplicaConfig: typeof Full.checkReplicaConfig;
  compiledModule: typeof Full.compiledModule;
}

export interface Runtime<G> {
  glue: G;
  /** Resolves once the module is instantiated (rejects if it cannot be). */
  ready: Promise<void>;
  /** Whether it is instantiated already (then calls need not wait). */
  isReady(): boolean;
  /** The `WebSocket` to use (the Node entry's is the `ws` package's). */
  WebSocket: WebSocketConstructor | undefined;
  /** Which runtime this is, for messages. */
  name: "node" | "browser" | "workerd";
}

/** A runtime whose module is instantiated already. */
export function readyRuntime<G>(glue: G, name: Runtime<G>["name"], WebSocket: WebSocketConstructor | undefined): Runtime<G> {
  return { glue, ready: Promise.resolve(), isReady: () => true, WebSocket, name };
}

/** A runtime whose module is being instantiated by `loading`. */
export function loadingRuntime<G>(glue: G, loading: Promise<unknown>, WebSocket: WebSocketConstructor | undefined): Runtime<G> {
  let done = false;
  const ready = loading.then(() => {
    done = true;
  });
  // A failure is reported by the calls that wait for it, not as an unhandled rejection.
  ready.catch(() => undefined);
  return { glue, ready, isReady: () => done, WebSocket, name: "browser" };
}

/** The error of a synchronous call made before the module is instantiated. */
export function notReady(): never {
  throw coded(
    "INVALID_OPERATION",
    "invalid operation: edgesync's wasm module is still loading: `await ready` first (import { ready } from the package)",
  );
}
