/** `edgesync/crdt` in Cloudflare Workers: the module compiled by wrangler, instantiated synchronously. */
import wasmModule from "../wasm/crdt/edgesync_bg.wasm";
import * as glue from "../wasm/crdt/edgesync.js";
import { syncRuntime } from "../platform.js";
import { bindRuntime } from "../flavors/crdt.js";

const rt = syncRuntime(glue, wasmModule, "workerd");
bindRuntime(rt);

export * from "../flavors/crdt.js";
