/** `edgesync/replica` in browsers: the module fetched and compiled in the background (no top-level await). */
import * as glue from "../wasm/replica/edgesync.js";
import { asyncRuntime } from "../platform.js";
import { browserReplicas } from "../browser/client.js";
import { bindRuntime } from "../flavors/replica.js";

const rt = asyncRuntime(glue, () => new URL("../wasm/replica/edgesync_bg.wasm", import.meta.url), () => import("../wasm/replica/inline.js"));
// `file:` URLs open a replica kept in OPFS, shared by the origin's tabs (js/browser/).
bindRuntime({ remote: rt, replica: rt, openLocal: browserReplicas(rt, true) });

export * from "../flavors/replica.js";
