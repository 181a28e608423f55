/** Node.js entry: loads the wasm module synchronously from the package directory. */
import { readFileSync } from "node:fs";
import { initSync, registerErrorClass } from "./wasm/edgesync.js";
import { EdgesyncError } from "./client.js";

initSync({ module: readFileSync(new URL("./wasm/edgesync_bg.wasm", import.meta.url)) });
registerErrorClass(EdgesyncError);

export * from "./client.js";
export * from "./crdt.js";
export * from "./edge.js";
export type * from "./replica.js";
