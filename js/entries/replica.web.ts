/** `edgesync/replica` in browsers: the module fetched and compiled in the background (no top-level await). */
import * as glue from "../wasm/replica/edgesync.js";
import { asyncRuntime } from "../platform.js";
import { bindRuntime } from "../flavors/replica.js";

const rt = asyncRuntime(glue, () => new URL("../wasm/replica/edgesync_bg.wasm", import.meta.url), () => import("../wasm/replica/inline.js"));
bindRuntime({ remote: rt, replica: rt });

export * from "../flavors/replica.js";
