/**
 * Browser / Web Worker / Deno entry: fetches and compiles the wasm module next to
 * this file (streaming compilation) before the module finishes loading.
 */
import init, { registerErrorClass } from "./wasm/edgesync.js";
import { EdgesyncError } from "./client.js";
import { localReplicaHooks } from "./hooks.js";
import { openBrowserReplica } from "./browser/client.js";

await init({ module_or_path: new URL("./wasm/edgesync_bg.wasm", import.meta.url) });
registerErrorClass(EdgesyncError);
// `file:` URLs open a replica kept in OPFS, shared by the origin's tabs.
localReplicaHooks.open = openBrowserReplica;

export * from "./client.js";
export * from "./crdt.js";
export * from "./edge.js";
export * from "./durable.js";
export type * from "./replica.js";
