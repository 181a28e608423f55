/**
 * The public client API of edgesync, over the Rust core compiled to wasm: a drop-in
 * for `@libsql/client` (docs/compatibility.md lists what still differs).
 *
 * ```ts
 * import { createClient } from "edgesync";
 * const db = createClient({ url: "libsql://my-db.turso.io", authToken });
 * const rs = await db.execute({ sql: "select * from users where id = ?", args: [1] });
 * console.log(rs.rows[0].name, rs.rows[0][1]);
 * ```
 *
 * This module is runtime-neutral: each entry point (node.ts, web.ts, workerd.ts and
 * those of the subpath exports, js/entries/) instantiates its wasm module flavour its
 * own way and binds `createClient` to it with `clientFactory`.
 */
import type { Client, Config } from "./types.js";
import type { EmbeddedReplica, ReplicaConfig } from "./replica.js";
import type { RemoteGlue, ReplicaGlue, Runtime } from "./runtime.js";
import { EmbeddedReplicaClient } from "./replica.js";
import { remoteClient } from "./remote.js";
import { expandConfig } from "./url.js";
import { coded } from "./wasm-errors.js";

export type * from "./types.js";
export { LibsqlError, LibsqlBatchError, EdgesyncError } from "./wasm-errors.js";
export type { ErrorCode } from "./wasm-errors.js";
export { isLocalUrl } from "./url.js";
export type {
  ConflictEvent,
  EmbeddedReplica,
  Policy,
  ReplicaConfig,
  SyncEvents,
  SyncLogEntry,
  SyncMetrics,
  SyncOutcome,
  SyncResult,
  SyncStatus,
} from "./replica.js";

/**
 * `createClient`: a local URL (`:memory:`, `file:…`) gives an embedded replica — a
 * local SQLite database that syncs with `syncUrl`; a remote URL a client for that libSQL
 * database (sqld or Turso), over HTTP or, for `ws://` and `wss://`, a WebSocket. Throws
 * at once for a bad config, with `@libsql/client`'s errors.
 */
export interface CreateClient {
  (config: ReplicaConfig & { url: ":memory:" | `file:${string}` }): EmbeddedReplica;
  /** A config with `syncUrl` is an embedded replica's (its `url` is local). */
  (config: ReplicaConfig & { syncUrl: string }): EmbeddedReplica;
  (config: Config): Client;
}

/** How an entry point opens a local URL, when it has its own way (a browser's OPFS worker). */
export type OpenLocal = (config: ReplicaConfig) => EmbeddedReplica | undefined;

/** What an entry point's `createClient` can open. */
export interface Runtimes {
  remote: Runtime<RemoteGlue>;
  /** Absent in entries without embedded replicas (`edgesync/client`). */
  replica?: Runtime<ReplicaGlue>;
  openLocal?: OpenLocal;
}

/** `createClient` and `createEmbeddedReplica` bound to an entry point's runtimes. */
export function clientFactory(r: Runtimes): { createClient: CreateClient; createEmbeddedReplica: (config: ReplicaConfig) => EmbeddedReplica } {
  const open = (config: Config | ReplicaConfig): Client | EmbeddedReplica => {
    const expanded = expandConfig(config);
    if (expanded.target.kind === "remote") return remoteClient(r.remote, config, expanded);
    if (r.replica === undefined) {
      throw coded(
        "URL_SCHEME_NOT_SUPPORTED",
        `This entry point has no embedded replicas: import "edgesync" or "edgesync/replica" for a local URL (got ${JSON.stringify(config.url)})`,
      );
    }
    const replicaConfig = config as ReplicaConfig;
    if (replicaConfig.syncUrl !== undefined) expandConfig({ ...config, url: replicaConfig.syncUrl });
    return r.openLocal?.(replicaConfig) ?? new EmbeddedReplicaClient(r.replica, replicaConfig, expanded);
  };
  const createEmbeddedReplica = (config: ReplicaConfig): EmbeddedReplica => {
    const c = open(config);
    if (c.protocol !== "file") {
      c.close();
      throw coded("URL_INVALID", `an embedded replica needs a local url (":memory:" or "file:…"), not ${JSON.stringify(config.url)}`);
    }
    return c as EmbeddedReplica;
  };
  return { createClient: open as CreateClient, createEmbeddedReplica };
}
