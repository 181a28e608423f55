/**
 * Internal (not re-exported): how a runtime's entry point changes what `createClient`
 * gives for a local URL. The browser entry (web.ts) opens `file:` replicas in OPFS
 * through a worker (js/browser/client.ts); elsewhere the in-process replica is used.
 */
import type { EmbeddedReplica, ReplicaConfig } from "./replica.js";

export const localReplicaHooks: {
  /** An embedded replica for `config`, or undefined to open the in-process one. */
  open?: (config: ReplicaConfig) => EmbeddedReplica | undefined;
} = {};
