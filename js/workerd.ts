/**
 * Cloudflare Workers entry (the `workerd` export condition). Workers cannot compile
 * wasm from bytes at run time, so the module is imported (wrangler uploads it as a
 * compiled WebAssembly.Module) and instantiated synchronously.
 */
// wrangler/esbuild's CompiledWasm rule makes this default import a WebAssembly.Module.
import wasmModule from "./wasm/edgesync_bg.wasm";
import { initSync, registerErrorClass } from "./wasm/edgesync.js";
import { EdgesyncError } from "./client.js";

initSync({ module: wasmModule as unknown as WebAssembly.Module });
registerErrorClass(EdgesyncError);

export * from "./client.js";
export * from "./crdt.js";
export * from "./edge.js";
export * from "./durable.js";
export type * from "./replica.js";
