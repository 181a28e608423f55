/** `edgesync/client` in Node.js: the module read synchronously from the package directory. */
import * as glue from "../wasm/client/edgesync.js";
import { nodeRuntime } from "../platform-node.js";
import { bindRuntime } from "../flavors/client.js";
import { WebSocket } from "ws";

const rt = nodeRuntime(glue, () => new URL("../wasm/client/edgesync_bg.wasm", import.meta.url), () => import("../wasm/client/inline.js"), WebSocket);
bindRuntime({ remote: rt });

export * from "../flavors/client.js";
