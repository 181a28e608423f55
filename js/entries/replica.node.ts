/** `edgesync/replica` in Node.js: the module read synchronously from the package directory. */
import * as glue from "../wasm/replica/edgesync.js";
import { nodeRuntime, useNodeFs } from "../platform-node.js";
import { bindRuntime } from "../flavors/replica.js";
import { WebSocket } from "ws";

const rt = nodeRuntime(glue, () => new URL("../wasm/replica/edgesync_bg.wasm", import.meta.url), () => import("../wasm/replica/inline.js"), WebSocket);
useNodeFs(glue);
bindRuntime({ remote: rt, replica: rt });

export * from "../flavors/replica.js";
