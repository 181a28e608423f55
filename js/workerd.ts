/**
 * Cloudflare Workers entry (the `workerd` export condition). Workers cannot compile
 * wasm from bytes at run time, so the module is imported (wrangler uploads it as a
 * compiled WebAssembly.Module) and instantiated synchronously.
 */
// wrangler/esbuild's CompiledWasm rule makes this default import a WebAssembly.Module.
import wasmModule from "./wasm/edgesync_bg.wasm";
import * as glue from "./wasm/edgesync.js";
import { syncRuntime } from "./platform.js";
import { bindRuntime } from "./flavors/full.js";

const rt = syncRuntime(glue, wasmModule, "workerd");
bindRuntime({ remote: rt, replica: rt });

export * from "./flavors/full.js";
