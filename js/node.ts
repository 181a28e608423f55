/** Node.js entry: loads the wasm module synchronously from the package directory. */
import * as fs from "node:fs";
import { resolve } from "node:path";
import { initSync, registerErrorClass, useNodeFs } from "./wasm/edgesync.js";
import { EdgesyncError } from "./client.js";

initSync({ module: fs.readFileSync(new URL("./wasm/edgesync_bg.wasm", import.meta.url)) });
registerErrorClass(EdgesyncError);
// Embedded replicas opened as `file:…` keep their database in real files through
// Node's fs (src/wasm/nodefs.rs). `alive` tells a stale lock file from a held one.
useNodeFs({
  fs,
  resolve,
  pid: process.pid,
  alive: (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as { code?: string }).code === "EPERM";
    }
  },
});

export * from "./client.js";
export * from "./crdt.js";
export * from "./edge.js";
export * from "./durable.js";
export type * from "./replica.js";
