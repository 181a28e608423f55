/** `edgesync/replica` in Cloudflare Workers: the module compiled by wrangler, instantiated synchronously. */
import wasmModule from "../wasm/replica/edgesync_bg.wasm";
import * as glue from "../wasm/replica/edgesync.js";
import { syncRuntime } from "../platform.js";
import { bindRuntime } from "../flavors/replica.js";

const rt = syncRuntime(glue, wasmModule, "workerd");
bindRuntime({ remote: rt, replica: rt });

export * from "../flavors/replica.js";
