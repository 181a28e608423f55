/**
 * Embedded replicas: `createClient({ url: ":memory:" | "file:…", syncUrl })` gives a
 * client whose reads and writes run on a local SQLite database (in the wasm module)
 * and sync with a libSQL server in the background.
 *
 * ```ts
 * const db = createClient({ url: ":memory:", syncUrl: "http://127.0.0.1:8080", authToken, syncInterval: 1000 });
 * await db.execute("create table if not exists inv (sku text primary key, stock integer not null)");
 * db.replicate("inv", { stock: "counter" });
 * await db.execute("update inv set stock = stock - 1 where sku = 'a'"); // local, microseconds
 * await db.sync();                                                      // push + pull
 * ```
 */
import { Replica } from "./wasm/edgesync.js";
import type { Config, InArgs, InStatement, InValue, ResultSet, TransactionMode, Value, Client } from "./client.js";
import { ArgumentError, encodeStatement } from "./args.js";
import { KeptStatements } from "./local.js";

/** How a replicated column merges concurrent writes. A function makes it `custom`. */
export type Policy =
  | "lww"
  | "counter"
  | "set"
  | "text"
  | "custom"
  | ((local: Value, remote: Value, base: Value | null) => InValue);

export interface ReplicaConfig extends Omit<Config, "url"> {
  /**
   * `":memory:"`, or a file: `"file:path"`, `"file:///abs/path"` — in Node.js a real
   * file (WAL, one owner: a second open fails with `DATABASE_LOCKED`); other runtimes
   * have no file system for it and refuse it (`INVALID_ARGUMENT`).
   */
  url: string;
  /** The libSQL server to sync with (`libsql://`, `https://`, `http://`). */
  syncUrl?: string;
  /** Background sync period in ms; none when omitted (call `sync()` yourself). */
  syncInterval?: number;
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
  syncing: boolean;
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
  "sync:error": { code: string; message: string; retryable: boolean };
  conflict: ConflictEvent;
  "sync:refused": RefusedEvent;
}

export interface SyncLogEntry {
  id: number;
  at: number;
  event: string;
  details: unknown;
}

export interface EmbeddedReplica extends Client {
  /** Declares a table replicated, with a policy per column (default `lww`). */
  replicate(table: string, policies?: Record<string, Policy>): void;
  /** Push local changes, then pull and apply the server's. */
  sync(): Promise<SyncResult>;
  status(): SyncStatus;
  metrics(): SyncMetrics;
  /** Prometheus text exposition format. */
  metricsText(): string;
  on<E extends keyof SyncEvents>(event: E, fn: (detail: SyncEvents[E]) => void): () => void;
  /** The most recent entries of the sync log table (`_es_sync_log`), newest first. */
  syncLog(limit?: number): Promise<SyncLogEntry[]>;
  readonly siteId: string;
}

type Adopt = (e: unknown) => Error;
type MakeResultSet = (raw: unknown) => ResultSet;

export class EmbeddedReplicaClient implements EmbeddedReplica {
  readonly protocol = "http" as const;
  #r: Replica;
  #closed = false;
  #writeMode: "local" | "remote";
  #interval: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<SyncResult> | undefined;
  #wtQueue: Promise<unknown> = Promise.resolve();
  #listeners = new Map<string, Set<(d: never) => void>>();
  #adopt: Adopt;
  #rs: MakeResultSet;
  #local: KeptStatements;
  #siteId: string;

  constructor(config: ReplicaConfig, adopt: Adopt, makeResultSet: MakeResultSet) {
    this.#adopt = adopt;
    this.#rs = makeResultSet;
    const { syncInterval, writeMode, ...rest } = config;
    if (writeMode !== undefined && writeMode !== "local" && writeMode !== "remote") {
      throw adopt(Object.assign(new Error(`writeMode must be "local" or "remote"`), { code: "INVALID_ARGUMENT", name: "EdgesyncError" }));
    }
    if (syncInterval !== undefined && !(Number.isInteger(syncInterval) && syncInterval >= 1)) {
      throw adopt(Object.assign(new Error("syncInterval must be a whole number of ms ≥ 1"), { code: "INVALID_ARGUMENT", name: "EdgesyncError" }));
    }
    this.#writeMode = writeMode ?? "local";
    try {
      this.#r = new Replica(rest);
    } catch (e) {
      throw adopt(e);
    }
    this.#local = new KeptStatements(this.#r, rest.intMode);
    this.#siteId = this.#r.siteId;
    this.#r.setListener((name: string, detail: unknown) => {
      for (const fn of this.#listeners.get(name) ?? []) {
        try {
          (fn as (d: unknown) => void)(detail);
        } catch {
          // A listener's exception must not break syncing.
        }
      }
    });
    if (this.#writeMode === "remote" && !this.#r.hasRemote) {
      throw adopt(Object.assign(new Error('writeMode "remote" needs a syncUrl'), { code: "INVALID_ARGUMENT", name: "EdgesyncError" }));
    }
    this.#interval = syncInterval;
    if (syncInterval !== undefined) this.#schedule(0);
  }

  #schedule(delay: number): void {
    if (this.#closed || this.#interval === undefined) return;
    this.#timer = setTimeout(() => {
      this.sync().then(
        () => this.#schedule(this.#interval!),
        () => this.#schedule(Math.max(1, this.#r.retryDelay())),
      );
    }, delay);
    // A background sync must never keep a Node process alive on its own.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  #check(): void {
    if (this.#closed) throw this.#adopt(Object.assign(new Error("the client is closed"), { code: "CLIENT_CLOSED", name: "EdgesyncError" }));
  }

  async execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    try {
      this.#check();
      if (this.#writeMode === "remote") {
        const input = typeof stmt === "string" && args !== undefined ? { sql: stmt, args } : stmt;
        if (!this.#readonly([input])) {
          const [rs] = await this.#writeThrough([input]);
          return this.#rs(rs);
        }
      }
      // Kept prepared statements; the generic path for what they do not cover.
      const rs = this.#local.execute(stmt, args);
      if (rs !== undefined) return rs;
      const [sql, packed] = encodeStatement(stmt, args);
      return this.#rs(this.#r.executePacked(sql, packed));
    } catch (e) {
      throw this.#adopt(e instanceof ArgumentError ? invalidArgument(e.message) : e);
    }
  }

  async batch(stmts: InStatement[], mode: TransactionMode = "deferred"): Promise<ResultSet[]> {
    try {
      this.#check();
      if (this.#writeMode === "remote" && mode !== "read" && !this.#readonly(stmts)) {
        return (await this.#writeThrough(stmts)).map(this.#rs);
      }
      return (this.#r.batch(stmts, mode) as unknown[]).map(this.#rs);
    } catch (e) {
      throw this.#adopt(e);
    }
  }

  /** Write-through calls run one at a time, in call order (each builds on the last). */
  #writeThrough(stmts: InStatement[]): Promise<unknown[]> {
    const run = () => this.#r.executeRemote(stmts, "write") as Promise<unknown[]>;
    const next = this.#wtQueue.then(run, run);
    this.#wtQueue = next.catch(() => undefined);
    return next;
  }

  #readonly(stmts: InStatement[]): boolean {
    return stmts.every((s) => this.#r.isReadonly(typeof s === "string" ? s : Array.isArray(s) ? s[0] : s.sql));
  }

  replicate(table: string, policies: Record<string, Policy> = {}): void {
    try {
      this.#check();
      this.#r.replicate(table, policies);
    } catch (e) {
      throw this.#adopt(e);
    }
  }

  /** Concurrent calls share one run; a call made during a run starts a fresh one after it. */
  sync(): Promise<SyncResult> {
    const run = async (): Promise<SyncResult> => {
      this.#check();
      try {
        return (await this.#r.sync()) as SyncResult;
      } catch (e) {
        throw this.#adopt(e);
      }
    };
    const prev = this.#running;
    const next: Promise<SyncResult> = (prev ? prev.catch(() => undefined).then(run) : run()).finally(() => {
      if (this.#running === next) this.#running = undefined;
    });
    this.#running = next;
    return next;
  }

  status(): SyncStatus {
    try {
      this.#check();
      return { ...(this.#r.status() as Omit<SyncStatus, "syncing">), syncing: this.#running !== undefined };
    } catch (e) {
      throw this.#adopt(e);
    }
  }

  metrics(): SyncMetrics {
    this.#check();
    return this.#r.metrics() as SyncMetrics;
  }

  metricsText(): string {
    this.#check();
    return this.#r.metricsText();
  }

  on<E extends keyof SyncEvents>(event: E, fn: (detail: SyncEvents[E]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn as (d: never) => void);
    return () => set!.delete(fn as (d: never) => void);
  }

  async syncLog(limit = 100): Promise<SyncLogEntry[]> {
    const rs = await this.execute("select id, at, event, details from _es_sync_log order by id desc limit ?", [limit]);
    return rs.rows.map((r) => ({
      id: Number(r.id),
      at: Number(r.at),
      event: String(r.event),
      details: JSON.parse(String(r.details ?? "null")),
    }));
  }

  /**
   * Stops background sync and closes the local database: a file is checkpointed and
   * its lock released, so it can be opened again (a sync still in flight finishes
   * first, then releases it). Queued changes stay in the file for the next open.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#r.setListener(undefined);
    this.#r.free();
  }

  get closed(): boolean {
    return this.#closed;
  }

  get baseUrl(): string {
    return "";
  }

  get siteId(): string {
    return this.#siteId;
  }
}

function invalidArgument(message: string): Error {
  return Object.assign(new Error(`invalid argument: ${message}`), { code: "INVALID_ARGUMENT", name: "EdgesyncError" });
}

/** `:memory:` and `file:` URLs open an embedded replica. */
export function isLocalUrl(url: unknown): boolean {
  return typeof url === "string" && (url === ":memory:" || url.startsWith("file:"));
}
