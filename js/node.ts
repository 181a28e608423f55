/** Node.js entry: loads the wasm module synchronously from the package directory. */
import { WebSocket } from "ws";
import * as glue from "./wasm/edgesync.js";
import { nodeRuntime, useNodeFs } from "./platform-node.js";
import { bindRuntime } from "./flavors/full.js";

const rt = nodeRuntime(glue, () => new URL("./wasm/edgesync_bg.wasm", import.meta.url), () => import("./wasm/inline.js"), WebSocket);
useNodeFs(glue);
bindRuntime({ remote: rt, replica: rt });

export * from "./flavors/full.js";
