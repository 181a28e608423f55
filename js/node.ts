/** Node.js entry: loads the wasm module synchronously from the package directory. */
import { readFileSync } from "node:fs";
import { initSync } from "./wasm/edgesync.js";

initSync({ module: readFileSync(new URL("./wasm/edgesync_bg.wasm", import.meta.url)) });

export * from "./client.js";
