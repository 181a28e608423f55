/**
 * The whole package (`import … from "edgesync"`): remote clients, embedded replicas,
 * CRDTs, the edge router and sessions, the hub client — over the full wasm module.
 * The entry points (node.ts, web.ts, workerd.ts) instantiate the module and bind it.
 */
import * as glue from "../wasm/edgesync.js";
import { crdtClasses } from "../crdt.js";
import { clientFactory } from "../client.js";
import type { CreateClient, Runtimes } from "../client.js";
import type { EmbeddedReplica, ReplicaConfig } from "../replica.js";
import { notReady } from "../runtime.js";

export * from "../client.js";
export * from "../hub.js";
export * from "../edge.js";
export * from "../durable.js";
export type { SiteId } from "../crdt.js";
export type { TextAnchor } from "../wasm/edgesync.js";

let bound: ReturnType<typeof clientFactory> | undefined;
let isReady = (): boolean => false;

/**
 * Resolves once the wasm module is instantiated. In Node and Workers it already is; in
 * a browser, await it before using a CRDT class (clients wait for it by themselves).
 */
export let ready: Promise<void> = Promise.resolve();

/** @internal Binds the entry point's runtime. */
export function bindRuntime(r: Runtimes): void {
  bound = clientFactory(r);
  ready = r.remote.ready;
  isReady = r.remote.isReady;
}

/** A client: an embedded replica for a local URL, else a remote client (see `CreateClient`). */
export const createClient: CreateClient = ((config: ReplicaConfig) => bound!.createClient(config)) as CreateClient;

/** An embedded replica (a local `url`, `syncUrl` to sync with); throws `URL_INVALID` for a remote `url`. */
export function createEmbeddedReplica(config: ReplicaConfig): EmbeddedReplica {
  return bound!.createEmbeddedReplica(config);
}

const crdt = crdtClasses(glue, () => isReady() || notReady());
/** A grow-only counter. */
export const GCounter = crdt.GCounter;
export type GCounter = glue.GCounter;
/** A counter that goes up and down. */
export const PNCounter = crdt.PNCounter;
export type PNCounter = glue.PNCounter;
/** An add-wins observed-remove set. */
export const ORSet = crdt.ORSet;
export type ORSet = glue.ORSet;
/** A last-writer-wins register. */
export const LWWRegister = crdt.LWWRegister;
export type LWWRegister = glue.LWWRegister;
/** A map of last-writer-wins registers. */
export const LWWMap = crdt.LWWMap;
export type LWWMap = glue.LWWMap;
/** Collaborative plain text. */
export const Text = crdt.Text;
export type Text = glue.Text;
/** One replica's named CRDT objects. */
export const Resolver = crdt.Resolver;
export type Resolver = glue.Resolver;
