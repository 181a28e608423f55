/**
 * Browser / Web Worker / Deno entry: fetches and compiles the wasm module next to
 * this file (streaming compilation) before the module finishes loading.
 */
import init from "./wasm/edgesync.js";

await init({ module_or_path: new URL("./wasm/edgesync_bg.wasm", import.meta.url) });

export * from "./client.js";
