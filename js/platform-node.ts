/** What the Node entries need: the module's file read synchronously, and Node's file system for replicas. */
import * as fs from "node:fs";
import { resolve } from "node:path";
import { asyncRuntime, syncRuntime } from "./platform.js";
import type { Inline, Instantiable, Locate } from "./platform.js";
import type { Runtime } from "./runtime.js";
import type { WebSocketConstructor } from "./types.js";

/**
 * The module read from its file and instantiated now; where a bundler left no file
 * there (esbuild), from the inline copy in the background (calls wait for it).
 */
export function nodeRuntime<G extends Instantiable>(glue: G, locate: Locate, inline: Inline, WebSocket: unknown): Runtime<G> {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(locate());
  } catch {
    return asyncRuntime(glue, undefined, inline, WebSocket as WebSocketConstructor);
  }
  return syncRuntime(glue, bytes, "node", WebSocket as WebSocketConstructor);
}

/** A flavour's glue that keeps `file:` replicas in real files (src/wasm/nodefs.rs). */
export interface UsesNodeFs {
  useNodeFs(host: unknown): void;
}

/**
 * Embedded replicas opened as `file:…` keep their database in real files through
 * Node's fs. `alive` tells a stale lock file from a held one.
 */
export function useNodeFs(glue: UsesNodeFs): void {
  glue.useNodeFs({
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
}
