/** `edgesync/crdt` in Node.js: the module read synchronously from the package directory. */
import * as glue from "../wasm/crdt/edgesync.js";
import { nodeRuntime } from "../platform-node.js";
import { bindRuntime } from "../flavors/crdt.js";

const rt = nodeRuntime(glue, () => new URL("../wasm/crdt/edgesync_bg.wasm", import.meta.url), () => import("../wasm/crdt/inline.js"), undefined);
bindRuntime(rt);

export * from "../flavors/crdt.js";
