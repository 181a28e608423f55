/** `edgesync/client` in browsers: the module fetched and compiled in the background (no top-level await). */
import * as glue from "../wasm/client/edgesync.js";
import { asyncRuntime } from "../platform.js";
import { bindRuntime } from "../flavors/client.js";

const rt = asyncRuntime(glue, () => new URL("../wasm/client/edgesync_bg.wasm", import.meta.url), () => import("../wasm/client/inline.js"));
bindRuntime({ remote: rt });

export * from "../flavors/client.js";
