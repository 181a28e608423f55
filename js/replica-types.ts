/**
 * The types of embedded replicas (js/replica.ts): their config, status, metrics, events
 * and the `EmbeddedReplica` interface — kept apart from the class so that each file
 * holds one job, and so the browser replica (js/browser/) implements the same interface.
 */
import type { Client, Config, ErrorInfo, InStatement, InValue, ResultSet, Value } from "./types.js";

/** How a replicated column merges concurrent writes. A function makes it `custom`. */export type Policy =
  | "lww"
  | "counter"
  | "set"
  | "text"
  | "custom"
  | ((local: Value, remote: Value, base: Value | null) => InValue);

export interface ReplicaConfig extends Config {
  /**
   * `":memory:"` (or `"file::memory:"`), or a file: `"file:path"`, `"file:///abs/path"` —
   * in Node.js a real file (WAL, one owner: a second open fails with
   * `DATABASE_LOCKED`); in a browser page a database kept in OPFS.
   */
  url: string;
  /** The libSQL server to sync with (`libsql://`, `https://`, `http://`). */
  syncUrl?: string;
  /** Background sync period in seconds, as in `@libsql/client` (fractions allowed); none when omitted. */
  syncInterval?: number;
  /**
   * Sync once as soon as the replica opens (retried with back-off while it fails, up to
   * `maxRetries`). Default: `true` with `syncInterval`, else `false`.
   */
  syncOnOpen?: boolean;
  /**
   * Failed background syncs retried (with back-off) before the replica gives up: then
   * `status().gaveUp` is true, a `sync:gaveup` event fires, and background sync stops
   * until `resume()` or a `sync()` that succeeds. Default: no limit.
   */
  maxRetries?: number;
  /**
   * Open paused, as after `pause()`: nothing syncs until `resume()` (an app's offline
   * switch kept across restarts). Default `false`.
   */
  paused?: boolean;
  /**
   * The server's tables that this replica has not declared with `replicate()`: `true`
   * (default) brings them all down at every `sync()` as read-only mirrors, as libSQL's
   * embedded replicas see the server's tables; a list brings those only; `false` none.
   * See docs/compatibility.md.
   */
  mirror?: boolean | string[];
  /**
   * `local` (default): writes commit locally and sync later (offline-first).
   * `remote`: write-through — a write is on the server before the call returns, then
   * applied locally (read-your-writes).
   */
  writeMode?: "local" | "remote";
  /** Largest clock skew accepted from other replicas (ms, default 60000). */
  maxDriftMs?: number;
  /** Records per push batch (default 2000) and per pull page (default 5000). */
  pushChunk?: number;
  pullChunk?: number;
}

export interface SyncResult {
  changesPushed: number;
  changesApplied: number;
  /** ms */
  duration: number;
  /** `@libsql/client`'s field: the replica's position in the server's change log. */
  frame_no: number;
  /** `@libsql/client`'s field: changes applied by this sync. */
  frames_synced: number;
}

export interface SyncOutcome {
  at: number;
  ok: boolean;
  error: string | null;
}

export interface SyncStatus {
  pendingChanges: number;
  lastPush: SyncOutcome | null;
  lastPull: SyncOutcome | null;
  /** Age of the oldest unpushed change (ms). */
  lagMs: number;
  /** Consecutive failed syncs. */
  retryCount: number;
  online: boolean;
  /** Position in the server's change log. */
  cursor: number;
  /** When the background sync will retry (ms), after failures. */
  nextSyncInMs: number;
  /**
   * Write-through writes whose answer was lost and whose outcome is not settled yet
   * (the next write or sync asks the server; see docs/replicas.md).
   */
  writesInDoubt: number;
  /**
   * Changes set aside because the server cannot take them (`ROW_TOO_LARGE`), kept in
   * the table `_es_rejected`.
   */
  rejectedChanges: number;
  syncing: boolean;
  /** `pause()` was called (and not `resume()`): nothing syncs. */
  paused: boolean;
  /** Background sync stopped after `maxRetries` failed retries (see `sync:gaveup`). */
  gaveUp: boolean;
  /** When the next background sync is due (ms since the epoch), or null when none is scheduled. */
  nextSyncAt: number | null;
  /**
   * Browser `file:` replicas: whether the store is kept in OPFS (false when the browser
   * has no OPFS here and the replica fell back to memory, and until the store is open).
   */
  persistent?: boolean;
  /** Browser `file:` replicas: whether this tab's worker holds the store shared by the tabs. */
  owner?: boolean;
}

export interface SyncMetrics {
  syncs: number;
  failures: number;
  successRate: number;
  /** Sync durations (ms). */
  p50: number;
  p95: number;
  p99: number;
  changesPushed: number;
  changesApplied: number;
  conflicts: number;
  httpRequests: number;
  bytesSent: number;
}

export interface ConflictEvent {
  table: string;
  /** The row's primary key as JSON (`["sku-1"]`). */
  key: string;
  column: string;
  local: Value;
  remote: Value;
  base: Value | null;
  resolved: Value;
}

/**
 * A record the edge gateway refused (its sync rules, or a record it cannot take): it
 * left the outbox, and the row is back to the server's version — or gone, when the
 * user may not read it.
 */
export interface RefusedEvent {
  table: string;
  /** The row's primary key as JSON (`["sku-1"]`). */
  key: string;
  /** The record's operation: `i` insert, `u` update, `d` delete, `x` custom column. */
  op: string;
  /** `PERMISSION_DENIED`, `INVALID_RECORD` or `BODY_TOO_LARGE`. */
  code: string;
  reason: string;
}

export interface SyncEvents {
  "sync:completed": SyncResult;
  "sync:error": ErrorInfo;
  conflict: ConflictEvent;
  /** Background sync stopped: `retryCount` consecutive failures, the last one's error. */
  "sync:gaveup": { retryCount: number; code: string; message: string };
  /** `pause()` stopped syncing. */
  "sync:paused": Record<string, never>;
  /** `resume()` (or a successful `sync()` after giving up) started it again. */
  "sync:resumed": Record<string, never>;
  /**
   * Rows of these tables changed — by a local write, a pull, or (browser) another tab —
   * just after the writes, once for those made in one tick. For live queries: re-run
   * what reads them. Changes are noted only while a `change` listener exists: a
   * listener gets those made from the moment it is added.
   */
  change: { tables: string[] };
  /** Browser `file:` replicas: where the store lives, once known (`reason` when in memory). */
  storage: { persistent: boolean; reason?: string };
  "sync:refused": RefusedEvent;
}

export interface SyncLogEntry {
  id: number;
  at: number;
  event: string;
  details: unknown;
}

export interface EmbeddedReplica extends Client {
  readonly protocol: "file";
  /** Declares a table replicated, with a policy per column (default `lww`). */
  replicate(table: string, policies?: Record<string, Policy>): void;
  /**
   * Push local changes, then pull and apply the server's. While paused it rejects with
   * `INVALID_OPERATION`.
   */
  sync(): Promise<SyncResult>;
  /**
   * Stops syncing — the app's "go offline" switch: no background sync, `sync()` is
   * refused, local reads and writes go on (and queue). Resolves once a sync already in
   * flight has finished (a `sync()` queued behind it is refused: nothing new starts).
   * Write-through writes (`writeMode: "remote"`) are not affected.
   */
  pause(): Promise<void>;
  /** Syncs again after `pause()` or giving up: background sync restarts at once. */
  resume(): Promise<void>;
  /**
   * The primary keys of `table`'s rows that have local changes not yet on the server
   * (as JSON arrays, like `ConflictEvent.key`): a row is "pending" while its key is
   * here and "synced" after. Re-read it on `sync:completed`.
   */
  pendingKeys(table: string): Promise<string[]>;
  /**
   * Adds here the columns another replica added to replicated tables (what a
   * `SCHEMA_MISMATCH` from `sync()` names); resolves to the `ALTER TABLE` statements run.
   * With statements, `@libsql/client`'s `migrate(stmts)`.
   */
  migrate(): Promise<string[]>;
  migrate(stmts: InStatement[]): Promise<ResultSet[]>;
  status(): SyncStatus;
  metrics(): SyncMetrics;
  /** Prometheus text exposition format. */
  metricsText(): string;
  on<E extends keyof SyncEvents>(event: E, fn: (detail: SyncEvents[E]) => void): () => void;
  /** The most recent entries of the sync log table (`_es_sync_log`), newest first. */
  syncLog(limit?: number): Promise<SyncLogEntry[]>;
  /**
   * Stops background sync, cancels the sync or write-through call in flight (they
   * reject with `CLIENT_CLOSED`) and closes the local database. The promise (never
   * rejected) resolves once the database is released; awaiting it is optional.
   */
  close(): Promise<void>;
  readonly siteId: string;
}
