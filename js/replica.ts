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
import { adoptFrom, retiredError } from "./wasm-errors.js";

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
  "sync:error": { code: string; message: string; retryable: boolean };
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
   * what reads them.
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
   */
  migrate(): Promise<string[]>;
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

type Adopt = (e: unknown) => Error;
type MakeResultSet = (raw: unknown) => ResultSet;

export class EmbeddedReplicaClient implements EmbeddedReplica {
  readonly protocol = "http" as const;
  #r: Replica;
  #closed = false;
  #writeMode: "local" | "remote";
  #interval: number | undefined;
  /** Whether a background loop runs at all (syncInterval, or syncOnOpen until it succeeds). */
  #background: boolean;
  #maxRetries: number;
  #paused = false;
  #gaveUp = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dueAt: number | undefined;
  #running: Promise<SyncResult> | undefined;
  #wtQueue: Promise<unknown> = Promise.resolve();
  #released: Promise<void> = Promise.resolve();
  #listeners = new Map<string, Set<(d: never) => void>>();
  #adopt: Adopt;
  #rs: MakeResultSet;
  #local: KeptStatements;
  #siteId: string;

  constructor(config: ReplicaConfig, adopt: Adopt, makeResultSet: MakeResultSet) {
    this.#adopt = adopt;
    this.#rs = makeResultSet;
    const { syncInterval, writeMode, syncOnOpen, maxRetries, paused, ...rest } = config;
    checkClientOptions(config, adopt);
    this.#writeMode = writeMode ?? "local";
    this.#maxRetries = maxRetries ?? Infinity;
    this.#paused = paused ?? false;
    try {
      this.#r = new Replica(rest);
    } catch (e) {
      throw adopt(e);
    }
    this.#local = new KeptStatements(this.#r, rest.intMode);
    this.#siteId = this.#r.siteId;
    this.#r.setListener((name: string, detail: unknown) => this.#emit(name, detail));
    if (this.#writeMode === "remote" && !this.#r.hasRemote) {
      throw adopt(Object.assign(new Error('writeMode "remote" needs a syncUrl'), { code: "INVALID_ARGUMENT", name: "EdgesyncError" }));
    }
    this.#interval = syncInterval;
    const onOpen = syncOnOpen ?? syncInterval !== undefined;
    this.#background = onOpen || syncInterval !== undefined;
    if (onOpen) this.#schedule(0);
    else if (syncInterval !== undefined) this.#schedule(syncInterval);
  }

  #emit(name: string, detail: unknown): void {
    for (const fn of this.#listeners.get(name) ?? []) {
      try {
        (fn as (d: unknown) => void)(detail);
      } catch {
        // A listener's exception must not break syncing.
      }
    }
  }

  /**
   * The background loop: the next sync after `delay` ms, or after the back-off delay
   * when `delay` is `"retry"`; after a success the interval (if any), after a failure
   * the back-off until `maxRetries`. `#dueAt` is set from the very delay the timer
   * gets, so `nextSyncAt` is exact. Nothing here may touch the wasm object once the
   * client is closed (it is freed) or retired, and nothing may throw outside a promise.
   */
  #schedule(delay: number | "retry"): void {
    if (this.#closed || !this.#background || this.#paused || this.#gaveUp || retiredError(this) !== undefined) return;
    let ms = delay === "retry" ? 1000 : delay;
    try {
      if (delay === "retry") ms = Math.max(1, this.#r.retryDelay());
    } catch (e) {
      adoptFrom(this, e); // a trap retires the client: no more background syncs
      return;
    }
    this.#stopTimer();
    this.#dueAt = Date.now() + ms;
    this.#timer = setTimeout(() => {
      this.#timer = this.#dueAt = undefined;
      if (this.#closed || this.#paused) return;
      this.sync().then(
        () => {
          if (this.#interval !== undefined) this.#schedule(this.#interval);
        },
        (e: { code?: string; message?: string }) => this.#afterFailure(e),
      );
    }, ms);
    // A background sync must never keep a Node process alive on its own.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /**
   * After a failed background sync: give up past `maxRetries`, else retry after the
   * back-off. Runs in a promise callback nobody awaits, so it must not throw, and not
   * call into the wasm object of a client closed or retired meanwhile.
   */
  #afterFailure(e: { code?: string; message?: string }): void {
    if (this.#closed || this.#paused || this.#timer !== undefined || retiredError(this) !== undefined) return;
    let retryCount: number;
    try {
      retryCount = (this.#r.status() as { retryCount: number }).retryCount;
    } catch (err) {
      this.#fail(err); // a trap retires the client; any other error: try again later
      retryCount = 0;
    }
    if (retryCount > this.#maxRetries) {
      this.#gaveUp = true;
      this.#emit("sync:gaveup", { retryCount, code: String(e?.code ?? "INTERNAL_ERROR"), message: String(e?.message ?? e) });
      return;
    }
    this.#schedule("retry");
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = this.#dueAt = undefined;
  }

  #check(): void {
    if (this.#closed) throw this.#adopt(Object.assign(new Error("the client is closed"), { code: "CLIENT_CLOSED", name: "EdgesyncError" }));
    const dead = retiredError(this);
    if (dead !== undefined) throw dead;
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
      throw e instanceof ArgumentError ? this.#adopt(invalidArgument(e.message)) : this.#fail(e);
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
      throw this.#fail(e);
    }
  }

  /**
   * A write-through write that may be made again under the same `request` key: the
   * browser host (js/browser/host.ts) runs it for another tab, which sends it again to
   * the next owner of the store if this one dies first. If an earlier attempt committed,
   * resolves with that attempt's answer instead of writing twice
   * (src/sync/net/requests.rs). For `writeMode: "remote"` clients.
   */
  async writeThroughOnce(stmts: InStatement[], request: string): Promise<ResultSet[]> {
    try {
      this.#check();
      return (await this.#writeThrough(stmts, request)).map(this.#rs);
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /** Write-through calls run one at a time, in call order (each builds on the last). */
  #writeThrough(stmts: InStatement[], request?: string): Promise<unknown[]> {
    const run = () => {
      // A call queued behind others may start after close(): the object is freed then.
      this.#check();
      return this.#r.executeRemote(stmts, "write", request) as Promise<unknown[]>;
    };
    const next = this.#wtQueue.then(run, run);
    this.#wtQueue = next.catch(() => undefined);
    return next;
  }

  /** Whether every statement only reads (throws the statement's error if one does not prepare). */
  readonly(stmts: InStatement[]): boolean {
    return this.#readonly(stmts);
  }

  #readonly(stmts: InStatement[]): boolean {
    return stmts.every((s) => this.#r.isReadonly(typeof s === "string" ? s : Array.isArray(s) ? s[0] : s.sql));
  }

  replicate(table: string, policies: Record<string, Policy> = {}): void {
    try {
      this.#check();
      this.#r.replicate(table, policies);
    } catch (e) {
      throw this.#fail(e);
    }
  }

  async migrate(): Promise<string[]> {
    this.#check();
    // Never under a running sync: it changes the tables the sync reads.
    await this.#running?.catch(() => undefined);
    try {
      return (await this.#r.migrate()) as string[];
    } catch (e) {
      throw this.#adopt(e);
    }
  }

  /** Concurrent calls share one run; a call made during a run starts a fresh one after it. */
  sync(): Promise<SyncResult> {
    const run = async (): Promise<SyncResult> => {
      this.#check();
      if (this.#paused) throw this.#adopt(Object.assign(new Error("invalid operation: sync is paused; call resume() first"), { code: "INVALID_OPERATION", name: "EdgesyncError" }));
      let result: SyncResult;
      try {
        result = (await this.#r.sync()) as SyncResult;
      } catch (e) {
        throw this.#fail(e);
      }
      if (this.#gaveUp && !this.#closed) {
        // A sync that works again ends the "gave up" state: background sync restarts.
        this.#gaveUp = false;
        this.#emit("sync:resumed", {});
        if (this.#interval !== undefined) this.#schedule(this.#interval);
      }
      return result;
    };
    if (this.#paused) return run();
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
      const s = this.#r.status() as Omit<SyncStatus, "syncing" | "paused" | "gaveUp" | "nextSyncAt">;
      const due = this.#dueAt;
      // While a retry is scheduled, the exact time left to it; none while stopped.
      let nextSyncInMs = s.nextSyncInMs;
      if (this.#paused || this.#gaveUp) nextSyncInMs = 0;
      else if (due !== undefined && s.retryCount > 0) nextSyncInMs = Math.max(0, due - Date.now());
      return {
        ...s,
        nextSyncInMs,
        syncing: this.#running !== undefined,
        paused: this.#paused,
        gaveUp: this.#gaveUp,
        nextSyncAt: due ?? null,
      };
    } catch (e) {
      throw this.#fail(e);
    }
  }

  async pause(): Promise<void> {
    this.#check();
    if (!this.#paused) {
      this.#paused = true;
      this.#stopTimer();
      this.#emit("sync:paused", {});
    }
    await this.#running?.catch(() => undefined);
  }

  async resume(): Promise<void> {
    this.#check();
    if (!this.#paused && !this.#gaveUp) return;
    this.#paused = false;
    this.#gaveUp = false;
    this.#emit("sync:resumed", {});
    this.#schedule(0);
  }

  async pendingKeys(table: string): Promise<string[]> {
    try {
      this.#check();
      if (typeof table !== "string") throw invalidArgument("the table name must be a string");
      return this.#r.pendingKeys(table);
    } catch (e) {
      throw this.#fail(e);
    }
  }

  metrics(): SyncMetrics {
    try {
      this.#check();
      return this.#r.metrics() as SyncMetrics;
    } catch (e) {
      throw this.#fail(e);
    }
  }

  metricsText(): string {
    try {
      this.#check();
      return this.#r.metricsText();
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /** What to throw for `e`, thrown by a call into the wasm object: a trap retires this client. */
  #fail(e: unknown): Error {
    return e instanceof Error && e.name === "EdgesyncError" ? this.#adopt(e) : adoptFrom(this, e);
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
   * its lock released, so it can be opened again. Work in flight is cancelled: a sync
   * rejects with `CLIENT_CLOSED`, and so does a write-through call (whose write, if
   * its request had left, is settled at the next open of a file replica; see
   * docs/replicas.md). Queued changes stay in the file for the next open.
   *
   * Returns a promise (never rejected) that resolves once the work in flight has
   * ended and the database is released; `close()` without `await` is fine too.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#released;
    this.#closed = true;
    this.#stopTimer();
    // The wasm object goes now; the replica inside lives on while a sync or a
    // write-through call in flight holds it, and is released when they end. A client
    // retired by a trap cannot be released (see js/wasm-errors.ts): nothing is called.
    if (retiredError(this) === undefined) {
      try {
        this.#r.setListener(undefined);
        this.#r.cancel();
        this.#r.free();
      } catch (e) {
        adoptFrom(this, e);
      }
    }
    const inFlight = [this.#running, this.#wtQueue].map((p) => p?.then(
      () => undefined,
      () => undefined,
    ));
    this.#released = Promise.all(inFlight).then(() => undefined);
    return this.#released;
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

/** The options the JS layer reads itself (Rust checks the rest: `checkReplicaConfig`). */
export function checkClientOptions(config: ReplicaConfig, adopt: Adopt): void {
  const { syncInterval, writeMode } = config;
  if (writeMode !== undefined && writeMode !== "local" && writeMode !== "remote") {
    throw adopt(Object.assign(new Error(`writeMode must be "local" or "remote"`), { code: "INVALID_ARGUMENT", name: "EdgesyncError" }));
  }
  if (syncInterval !== undefined && !(Number.isInteger(syncInterval) && syncInterval >= 1)) {
    throw adopt(Object.assign(new Error("syncInterval must be a whole number of ms ≥ 1"), { code: "INVALID_ARGUMENT", name: "EdgesyncError" }));
  }
  if (writeMode === "remote" && (config.syncUrl === undefined || config.syncUrl === null)) {
    throw adopt(Object.assign(new Error('writeMode "remote" needs a syncUrl'), { code: "INVALID_ARGUMENT", name: "EdgesyncError" }));
  }
  checkSyncOptions(config, adopt);
}

/** Checks the background-sync options (`syncOnOpen`, `maxRetries`, `paused`) at createClient. */
export function checkSyncOptions(config: ReplicaConfig, adopt: Adopt): void {
  const bad = (message: string) => adopt(Object.assign(new Error(message), { code: "INVALID_ARGUMENT", name: "EdgesyncError" }));
  const { syncOnOpen, maxRetries, paused } = config;
  if (syncOnOpen !== undefined && typeof syncOnOpen !== "boolean") throw bad("syncOnOpen must be a boolean");
  if (maxRetries !== undefined && !(Number.isInteger(maxRetries) && maxRetries >= 0)) throw bad("maxRetries must be a whole number ≥ 0");
  if (paused !== undefined && typeof paused !== "boolean") throw bad("paused must be a boolean");
}

function invalidArgument(message: string): Error {
  return Object.assign(new Error(`invalid argument: ${message}`), { code: "INVALID_ARGUMENT", name: "EdgesyncError" });
}

/** `:memory:` and `file:` URLs open an embedded replica. */
export function isLocalUrl(url: unknown): boolean {
  return typeof url === "string" && (url === ":memory:" || url.startsWith("file:"));
}
