/**
 * `edgesync/replica`: embedded replicas and the remote client, without the edge
 * router, the session store and the CRDT classes (a replica's `text` columns still
 * merge as text CRDTs inside the module).
 */
import { clientFactory } from "../client.js";
import type { CreateClient, Runtimes } from "../client.js";
import type { EmbeddedReplica, ReplicaConfig } from "../replica.js";

export * from "../client.js";

let bound: ReturnType<typeof clientFactory> | undefined;

/** Resolves once the wasm module is instantiated (clients wait for it by themselves). */
export let ready: Promise<void> = Promise.resolve();

/** @internal Binds the entry point's runtime. */
export function bindRuntime(r: Runtimes): void {
  bound = clientFactory(r);
  ready = r.remote.ready;
}

/** A client: an embedded replica for a local URL, else a remote client (see `CreateClient`). */
export const createClient: CreateClient = ((config: ReplicaConfig) => bound!.createClient(config)) as CreateClient;

/** An embedded replica (a local `url`, `syncUrl` to sync with); throws `URL_INVALID` for a remote `url`. */
export function createEmbeddedReplica(config: ReplicaConfig): EmbeddedReplica {
  return bound!.createEmbeddedReplica(config);
}
