/** `edgesync/crdt` in browsers: the module fetched and compiled in the background (no top-level await). */
import * as glue from "../wasm/crdt/edgesync.js";
import { asyncRuntime } from "../platform.js";
import { bindRuntime } from "../flavors/crdt.js";

const rt = asyncRuntime(glue, () => new URL("../wasm/crdt/edgesync_bg.wasm", import.meta.url), () => import("../wasm/crdt/inline.js"));
bindRuntime(rt);

export * from "../flavors/crdt.js";
