/**
 * `edgesync/client`: the remote client alone (HTTP and WebSocket) — a drop-in for
 * `@libsql/client`'s remote clients — over a wasm module without SQLite, the sync
 * engine, the CRDTs or the edge subsystems. Local URLs need `edgesync` or
 * `edgesync/replica`.
 */
import { clientFactory } from "../client.js";
import type { Runtimes } from "../client.js";
import type { Client, Config } from "../types.js";

export type * from "../types.js";
export { LibsqlError, LibsqlBatchError, EdgesyncError } from "../wasm-errors.js";
export type { ErrorCode } from "../wasm-errors.js";
export { isLocalUrl } from "../url.js";

let bound: ReturnType<typeof clientFactory> | undefined;

/** Resolves once the wasm module is instantiated (clients wait for it by themselves). */
export let ready: Promise<void> = Promise.resolve();

/** @internal Binds the entry point's runtime. */
export function bindRuntime(r: Runtimes): void {
  bound = clientFactory(r);
  ready = r.remote.ready;
}

/** A client for a remote libSQL database (`libsql:`, `https:`, `http:`, `wss:`, `ws:`). */
export function createClient(config: Config): Client {
  return bound!.createClient(config);
}
