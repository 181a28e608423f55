/**
 * Browser / Web Worker / Deno entry: fetches and compiles the wasm module next to this
 * file in the background — no top-level await, so that bundlers with their default
 * targets accept it; calls made before it is ready wait for it (`ready`).
 */
import * as glue from "./wasm/edgesync.js";
import { asyncRuntime } from "./platform.js";
import { browserReplicas } from "./browser/client.js";
import { bindRuntime } from "./flavors/full.js";

const rt = asyncRuntime(glue, () => new URL("./wasm/edgesync_bg.wasm", import.meta.url), () => import("./wasm/inline.js"));
// `file:` URLs open a replica kept in OPFS, shared by the origin's tabs (js/browser/).
bindRuntime({ remote: rt, replica: rt, openLocal: browserReplicas(rt, false) });

export * from "./flavors/full.js";
