/** `edgesync/client` in Cloudflare Workers: the module compiled by wrangler, instantiated synchronously. */
import wasmModule from "../wasm/client/edgesync_bg.wasm";
import * as glue from "../wasm/client/edgesync.js";
import { syncRuntime } from "../platform.js";
import { bindRuntime } from "../flavors/client.js";

const rt = syncRuntime(glue, wasmModule, "workerd");
bindRuntime({ remote: rt });

export * from "../flavors/client.js";
