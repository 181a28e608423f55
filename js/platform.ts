/**
 * How each runtime instantiates a wasm module flavour (used by every entry point):
 * Node reads the file synchronously, Cloudflare Workers get it compiled from the bundle
 * (wrangler's `CompiledWasm` rule) and instantiate it synchronously, browsers fetch and
 * compile it in the background (no top-level await: bundlers' default targets refuse
 * it) — calls made before it is ready wait for it.
 *
 * The `.wasm` file is found next to the entry with `new URL("…", import.meta.url)`,
 * which Vite, webpack and Parcel follow and ship. Bundlers that do not (esbuild, Rollup
 * without a plugin, Vite's development server before Vite 8, which serves pre-bundled
 * modules without the files next to them) leave a URL with no file behind it: then the
 * module comes from a JS module that holds it as base64 (`inline.js`, imported only
 * then — a separate chunk where the bundler splits, never fetched when the file is
 * found).
 */
import { LibsqlBatchError, LibsqlError } from "./wasm-errors.js";
import { loadingRuntime, readyRuntime } from "./runtime.js";
import type { Runtime } from "./runtime.js";
import type { WebSocketConstructor } from "./types.js";

/** What every flavour's generated glue (pkg/wasm/…/edgesync.js) exports for instantiation. */
export interface Instantiable {
  initSync(module: { module: unknown }): unknown;
  default(input: { module_or_path: unknown }): Promise<unknown>;
  registerErrorClasses(error: typeof LibsqlError, batch: typeof LibsqlBatchError): void;
}

function register(glue: Instantiable): void {
  glue.registerErrorClasses(LibsqlError, LibsqlBatchError);
}

/** Instantiated now from `bytes` (Node: the file read synchronously). */
export function syncRuntime<G extends Instantiable>(glue: G, module: unknown, name: "node" | "workerd", WebSocket?: WebSocketConstructor): Runtime<G> {
  glue.initSync({ module });
  register(glue);
  return readyRuntime(glue, name, WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket);
}

/** The module as base64, for when its file cannot be found (see above). */
export type Inline = () => Promise<{ default: string }>;

function isWasm(b: ArrayBuffer): boolean {
  const m = new Uint8Array(b, 0, Math.min(4, b.byteLength));
  return m.length === 4 && m[0] === 0 && m[1] === 0x61 && m[2] === 0x73 && m[3] === 0x6d;
}

function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Where the module's file is: `new URL("…", import.meta.url)` (it throws where a bundler left no `import.meta`, e.g. an IIFE bundle). */
export type Locate = () => URL;

/** The module's source: the file (streamed when served as wasm), else the inline copy. */
export async function wasmSource(locate: Locate | undefined, inline: Inline): Promise<unknown> {
  let url: URL | undefined;
  try {
    url = locate?.();
  } catch {
    // No import.meta.url here: the inline copy below.
  }
  if (url !== undefined && url.protocol !== "file:") {
    try {
      const r = await fetch(url);
      if (r.ok && (r.headers.get("content-type") ?? "").includes("application/wasm")) return r;
      if (r.ok) {
        const b = await r.arrayBuffer();
        if (isWasm(b)) return b;
      }
    } catch {
      // No file there: the inline copy below.
    }
  }
  return fromBase64((await inline()).default);
}

/** Instantiated in the background from its file (browsers), or from `inline`. */
export function asyncRuntime<G extends Instantiable>(glue: G, locate: Locate | undefined, inline: Inline, WebSocket?: WebSocketConstructor): Runtime<G> {
  const loading = wasmSource(locate, inline)
    .then((source) => glue.default({ module_or_path: source }))
    .then(() => register(glue));
  return loadingRuntime(glue, loading, WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket);
}
