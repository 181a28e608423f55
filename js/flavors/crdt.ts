/**
 * `edgesync/crdt`: the CRDTs alone (counters, sets, registers, maps, text, the named
 * object resolver) over a wasm module without SQLite, the sync engine, the remote
 * client or the edge subsystems.
 */
import * as glue from "../wasm/crdt/edgesync.js";
import { crdtClasses } from "../crdt.js";
import { notReady } from "../runtime.js";
import type { Runtime } from "../runtime.js";

export { LibsqlError, LibsqlBatchError, EdgesyncError } from "../wasm-errors.js";
export type { ErrorCode } from "../wasm-errors.js";
export type { SiteId } from "../crdt.js";
export type { TextAnchor } from "../wasm/crdt/edgesync.js";

let isReady = (): boolean => false;

/**
 * Resolves once the wasm module is instantiated. In Node and Workers it already is; in
 * a browser, await it before constructing a CRDT.
 */
export let ready: Promise<void> = Promise.resolve();

/** @internal Binds the entry point's runtime. */
export function bindRuntime(r: Runtime<unknown>): void {
  ready = r.ready;
  isReady = r.isReady;
}

const crdt = crdtClasses(glue as never, () => isReady() || notReady());
/** A grow-only counter. */
export const GCounter = crdt.GCounter as unknown as typeof glue.GCounter;
export type GCounter = glue.GCounter;
/** A counter that goes up and down. */
export const PNCounter = crdt.PNCounter as unknown as typeof glue.PNCounter;
export type PNCounter = glue.PNCounter;
/** An add-wins observed-remove set. */
export const ORSet = crdt.ORSet as unknown as typeof glue.ORSet;
export type ORSet = glue.ORSet;
/** A last-writer-wins register. */
export const LWWRegister = crdt.LWWRegister as unknown as typeof glue.LWWRegister;
export type LWWRegister = glue.LWWRegister;
/** A map of last-writer-wins registers. */
export const LWWMap = crdt.LWWMap as unknown as typeof glue.LWWMap;
export type LWWMap = glue.LWWMap;
/** Collaborative plain text. */
export const Text = crdt.Text as unknown as typeof glue.Text;
export type Text = glue.Text;
/** One replica's named CRDT objects. */
export const Resolver = crdt.Resolver as unknown as typeof glue.Resolver;
export type Resolver = glue.Resolver;
