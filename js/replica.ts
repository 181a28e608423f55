/**
 * Embedded replicas: `createClient({ url: ":memory:" | "file:…", syncUrl })` gives a
 * client whose reads and writes run on a local SQLite database (in the wasm module)
 * and sync with a libSQL server in the background.
 *
 * ```ts
 * const db = createClient({ url: ":memory:", syncUrl: "http://127.0.0.1:8080", authToken, syncInterval: 1 });
 * await db.execute("create table if not exists inv (sku text primary key, stock integer not null)");
 * db.replicate("inv", { stock: "counter" });
 * await db.execute("update inv set stock = stock - 1 where sku = 'a'"); // local, microseconds
 * await db.sync();                                                      // push + pull
 * ```
 */
import type * as Full from "./wasm/edgesync.js";
import type { Client, Config, ErrorInfo, InArgs, InStatement, InValue, ResultSet, Transaction, TransactionMode, Value } from "./types.js";
import type { ReplicaGlue, Runtime } from "./runtime.js";
import type { Expanded } from "./url.js";
import { encodeStatement, encodeStatements } from "./args.js";
import { KeptStatements } from "./local.js";
import { decodeResult } from "./result.js";
import { checkMode } from "./remote.js";
import { adoptClient, adoptFrom, coded, LibsqlBatchError, LibsqlError, retiredError } from "./wasm-errors.js";
export { isLocalUrl } from "./url.js";

/** How a replicated column merges concurrent writes. A function makes it `custom`. */
export type Policy =
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

export interface SyncEvents {
  "sync:completed": SyncResult;
  "sync:error": ErrorInfo;
  conflict: ConflictEvent;
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
  /** Push local changes, then pull and apply the server's. */
  sync(): Promise<SyncResult>;
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

/** The error of every call on a replica whose one connection an open transaction holds. */
function transactionActive(): LibsqlError {
  return coded(
    "TRANSACTION_ACTIVE",
    "This client has a single connection, which an open transaction is holding. In-memory databases and embedded replicas cannot have more than one. Commit or roll back the transaction before using the client again.",
  );
}

/** `e` as the error of statement `i` of a batch (`LibsqlBatchError`), as from `@libsql/client`. */
export function atStatement(e: unknown, i: number): unknown {
  if (!(e instanceof LibsqlError) || e instanceof LibsqlBatchError) return e;
  const message = e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2) : e.message;
  const b = new LibsqlBatchError(message, i, e.code, e.extendedCode, e.rawCode, e.cause);
  b.retryable = e.retryable;
  return b;
}

export class EmbeddedReplicaClient implements EmbeddedReplica {
  readonly protocol = "file" as const;
  #rt: Runtime<ReplicaGlue>;
  #config: ReplicaConfig;
  #r: Full.Replica | undefined;
  #opening: Promise<void> | undefined;
  #closed = false;
  #writeMode: "local" | "remote";
  #interval: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<SyncResult> | undefined;
  #wtQueue: Promise<unknown> = Promise.resolve();
  /** Write-through calls queued or in flight. */
  #wtPending = 0;
  #released: Promise<void> = Promise.resolve();
  #listeners = new Map<string, Set<(d: never) => void>>();
  #local: KeptStatements | undefined;
  #siteId = "";
  #real: boolean;
  /** The open interactive transaction, which holds the one connection. */
  #tx: LocalTransaction | undefined;

  constructor(rt: Runtime<ReplicaGlue>, config: ReplicaConfig, expanded: Expanded) {
    this.#rt = rt;
    this.#config = { ...config, url: (expanded.target as { url: string }).url, intMode: expanded.intMode };
    this.#real = config.numberArgs === "real";
    const { syncInterval, writeMode } = config;
    if (writeMode !== undefined && writeMode !== "local" && writeMode !== "remote") {
      throw coded("INVALID_ARGUMENT", `invalid argument: writeMode must be "local" or "remote"`);
    }
    if (syncInterval !== undefined && !(typeof syncInterval === "number" && syncInterval > 0 && Number.isFinite(syncInterval))) {
      throw coded("INVALID_ARGUMENT", "invalid argument: syncInterval must be a number of seconds > 0");
    }
    if (writeMode === "remote" && config.syncUrl === undefined) {
      throw coded("INVALID_ARGUMENT", 'invalid argument: writeMode "remote" needs a syncUrl');
    }
    this.#writeMode = writeMode ?? "local";
    this.#interval = syncInterval === undefined ? undefined : Math.max(1, Math.round(syncInterval * 1000));
    // Opened now where the module is ready (Node, Workers), else when it is.
    if (rt.isReady()) this.#open();
    else {
      this.#opening = rt.ready.then(() => {
        if (!this.#closed) this.#open();
      });
      this.#opening.catch(() => undefined);
    }
  }

  #open(): void {
    let r: Full.Replica;
    try {
      r = new this.#rt.glue.Replica(this.#config);
    } catch (e) {
      throw adoptClient(e);
    }
    this.#r = r;
    this.#local = new KeptStatements(r, this.#rt.glue.wasmMemory() as WebAssembly.Memory, this.#config.intMode, this.#real);
    this.#siteId = r.siteId;
    r.setListener((name: string, detail: unknown) => {
      if (name === "sync:completed") {
        // The same fields as `sync()`'s result, `@libsql/client`'s included.
        const d = detail as SyncResult;
        detail = { ...d, frame_no: this.#closed ? 0 : (r.status() as { cursor: number }).cursor, frames_synced: d.changesApplied };
      }
      for (const fn of this.#listeners.get(name) ?? []) {
        try {
          (fn as (d: unknown) => void)(detail);
        } catch {
          // A listener's exception must not break syncing.
        }
      }
    });
    if (this.#interval !== undefined) this.#schedule(0);
  }

  /** The replica, once open; a call made before (a browser page, the module loading) waits for it. */
  async #ready(): Promise<Full.Replica> {
    if (this.#r === undefined && this.#opening !== undefined) await this.#opening;
    this.#check();
    return this.#r!;
  }

  /** The replica for a synchronous call: it must be open already. */
  #now(): Full.Replica {
    this.#check();
    if (this.#r === undefined) {
      throw coded("INVALID_OPERATION", "invalid operation: the database is still opening (the wasm module is loading): await `ready`, or a query, first");
    }
    return this.#r;
  }

  /**
   * The next background sync after `delay` ms, or after the backoff delay when
   * `delay` is `"retry"`. Nothing here may touch the wasm object once the client is
   * closed (it is freed), and nothing may throw outside a promise.
   */
  #schedule(delay: number | "retry"): void {
    if (this.#closed || this.#interval === undefined || retiredError(this) !== undefined) return;
    let ms = delay === "retry" ? 1000 : delay;
    try {
      if (delay === "retry") ms = Math.max(1, this.#r?.retryDelay() ?? 1);
    } catch (e) {
      adoptFrom(this, e); // a trap retires the client: no more background syncs
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed) return;
      this.sync().then(
        () => this.#schedule(this.#interval!),
        () => this.#schedule("retry"),
      );
    }, ms);
    // A background sync must never keep a Node process alive on its own.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  #check(): void {
    if (this.#closed) throw coded("CLIENT_CLOSED", "The client is closed");
    const dead = retiredError(this);
    if (dead !== undefined) throw dead;
  }

  /** Runs one statement locally (a transaction's statements too). */
  #runLocal(r: Full.Replica, stmt: InStatement | [string, InArgs?], args?: InArgs): ResultSet {
    // Kept prepared statements; the generic path for what they do not cover.
    const rs = this.#local!.execute(stmt, args);
    if (rs !== undefined) return rs;
    const [sql, packed] = encodeStatement(stmt, args, this.#real);
    return decodeResult(r.executePacked(sql, packed) as Uint8Array);
  }

  async execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    try {
      const r = await this.#ready();
      if (this.#tx !== undefined) throw transactionActive();
      if (this.#writeMode === "remote") {
        const input = typeof stmt === "string" && args !== undefined ? { sql: stmt, args } : stmt;
        if (!this.#readonly(r, [input])) {
          const [rs] = await this.#writeThrough(r, [input]);
          return decodeResult(rs as Uint8Array);
        }
      }
      return this.#runLocal(r, stmt, args);
    } catch (e) {
      throw this.#fail(e);
    }
  }

  async batch(stmts: Array<InStatement | [string, InArgs?]>, mode: TransactionMode = "deferred"): Promise<ResultSet[]> {
    try {
      checkMode(mode);
      const r = await this.#ready();
      if (this.#tx !== undefined) throw transactionActive();
      if (this.#writeMode === "remote" && mode !== "read" && !this.#readonly(r, stmts)) {
        return (await this.#writeThrough(r, stmts)).map((b) => decodeResult(b as Uint8Array));
      }
      return (r.batch(encodeStatements(stmts, this.#real), mode) as Uint8Array[]).map(decodeResult);
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /**
   * `migrate(stmts)`: a deferred batch with foreign keys off (schema migrations), as
   * `@libsql/client`'s. `migrate()` without statements: adds here the columns another
   * replica added to replicated tables (what a `SCHEMA_MISMATCH` from `sync()` names),
   * resolving to the `ALTER TABLE` statements run.
   */
  migrate(): Promise<string[]>;
  migrate(stmts: InStatement[]): Promise<ResultSet[]>;
  async migrate(stmts?: InStatement[]): Promise<string[] | ResultSet[]> {
    const r = await this.#ready().catch((e) => {
      throw this.#fail(e);
    });
    if (this.#tx !== undefined) throw transactionActive();
    if (stmts === undefined) {
      // Never under a running sync: it changes the tables the sync reads.
      await this.#running?.catch(() => undefined);
      try {
        return (await this.#now().migrate()) as string[];
      } catch (e) {
        throw this.#fail(e);
      }
    }
    this.#runLocal(r, "PRAGMA foreign_keys=off");
    try {
      return await this.batch(stmts, "deferred");
    } finally {
      if (!this.#closed) this.#runLocal(r, "PRAGMA foreign_keys=on");
    }
  }

  /** SQL statements separated by semicolons, run locally one after the other. */
  async executeMultiple(sql: string): Promise<void> {
    try {
      const r = await this.#ready();
      if (this.#tx !== undefined) throw transactionActive();
      try {
        r.executeMultiple(sql);
      } finally {
        // A transaction the SQL left open is rolled back, as by `@libsql/client`.
        if (r.inTransaction) r.executeMultiple("ROLLBACK");
      }
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /**
   * An interactive transaction on the local database (default mode `"write"`). It holds
   * the replica's one connection until it is committed, rolled back or closed: other
   * calls fail with `TRANSACTION_ACTIVE` meanwhile, and a sync waits for it. With
   * `writeMode: "remote"` only `"read"` transactions are allowed (write with `batch()`).
   */
  async transaction(mode: TransactionMode = "write"): Promise<Transaction> {
    try {
      checkMode(mode);
      const r = await this.#ready();
      if (this.#tx !== undefined) throw transactionActive();
      if (this.#writeMode === "remote" && mode !== "read") {
        throw coded("INVALID_OPERATION", 'invalid operation: with writeMode "remote", writes go to the server: use batch() for an atomic write, or transaction("read")');
      }
      // A sync in flight finishes first: its own savepoints must not nest in ours.
      if (this.#running !== undefined) await this.#running.catch(() => undefined);
      if (this.#tx !== undefined) throw transactionActive();
      r.executeMultiple(mode === "write" ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
      const tx = new LocalTransaction(
        r,
        mode,
        (stmt, args) => this.#runLocal(r, stmt, args),
        () => {
          if (this.#tx === tx) this.#tx = undefined;
        },
      );
      this.#tx = tx;
      return tx;
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /** Write-through calls run one at a time, in call order (each builds on the last). */
  #writeThrough(r: Full.Replica, stmts: Array<InStatement | [string, InArgs?]>): Promise<unknown[]> {
    const packed = encodeStatements(stmts, this.#real);
    const run = () => {
      // A call queued behind others may start after close(): the replica is freed then.
      this.#check();
      return r.executeRemote(packed, "write") as Promise<unknown[]>;
    };
    this.#wtPending++;
    const next = this.#wtQueue.then(run, run);
    this.#wtQueue = next.catch(() => undefined).finally(() => this.#wtPending--);
    return next;
  }

  #readonly(r: Full.Replica, stmts: Array<InStatement | [string, InArgs?]>): boolean {
    return stmts.every((s) => r.isReadonly(typeof s === "string" ? s : Array.isArray(s) ? s[0] : s.sql));
  }

  replicate(table: string, policies: Record<string, Policy> = {}): void {
    try {
      this.#now().replicate(table, policies);
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /**
   * Concurrent calls share one run; a call made during a run starts a fresh one after
   * it. An open interactive transaction is waited for first.
   */
  sync(): Promise<SyncResult> {
    const run = async (): Promise<SyncResult> => {
      try {
        let r = await this.#ready();
        while (this.#tx !== undefined) {
          await this.#tx.settled;
          r = await this.#ready();
        }
        const out = (await r.sync()) as Omit<SyncResult, "frame_no" | "frames_synced">;
        const cursor = this.#closed ? 0 : (r.status() as { cursor: number }).cursor;
        return { ...out, frame_no: cursor, frames_synced: out.changesApplied };
      } catch (e) {
        throw this.#fail(e);
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
      return { ...(this.#now().status() as Omit<SyncStatus, "syncing">), syncing: this.#running !== undefined };
    } catch (e) {
      throw this.#fail(e);
    }
  }

  metrics(): SyncMetrics {
    try {
      return this.#now().metrics() as SyncMetrics;
    } catch (e) {
      throw this.#fail(e);
    }
  }

  metricsText(): string {
    try {
      return this.#now().metricsText();
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /** What to throw for `e`, thrown by a call into the wasm object: a trap retires this client. */
  #fail(e: unknown): Error {
    if (e instanceof WebAssembly.RuntimeError) return adoptFrom(this, e);
    // A call that began before close() and reached the freed replica after it.
    if (this.#closed && !(e instanceof LibsqlError)) return coded("CLIENT_CLOSED", "The client is closed", e);
    return adoptClient(e);
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
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#tx?.abandon();
    this.#tx = undefined;
    this.#local = undefined;
    // The wasm object goes now; the replica inside lives on while a sync or a
    // write-through call in flight holds it, and is released when they end. A client
    // retired by a trap cannot be released (see js/wasm-errors.ts): nothing is called.
    const r = this.#r;
    this.#r = undefined;
    if (r !== undefined && retiredError(this) === undefined) {
      try {
        r.setListener(undefined);
        r.cancel();
        r.free();
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

  /**
   * Opens the local database again after `close()` (the same config), once the work
   * `close()` cancelled has let go of it.
   */
  reconnect(): void {
    if (!this.#closed) return;
    this.#closed = false;
    if (this.#rt.isReady() && this.#running === undefined && this.#wtPending === 0) {
      this.#open();
      return;
    }
    this.#opening = Promise.all([this.#released, this.#rt.ready]).then(() => {
      if (!this.#closed && this.#r === undefined) this.#open();
    });
    this.#opening.catch(() => undefined);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get siteId(): string {
    return this.#siteId;
  }
}

/**
 * An interactive transaction on an embedded replica's local database. `read` mode
 * refuses statements that write (SQLite has no read-only `BEGIN`).
 */
type RunLocal = (stmt: InStatement | [string, InArgs?], args?: InArgs) => ResultSet;

class LocalTransaction implements Transaction {
  #r: Full.Replica;
  #mode: TransactionMode;
  #run: RunLocal;
  #done: () => void;
  #settled = false;
  #resolve!: () => void;
  /** Resolves when the transaction ends (a sync waits for it). */
  readonly settled: Promise<void>;

  constructor(r: Full.Replica, mode: TransactionMode, run: RunLocal, done: () => void) {
    this.#r = r;
    this.#mode = mode;
    this.#run = run;
    this.#done = done;
    this.settled = new Promise((resolve) => (this.#resolve = resolve));
  }

  #open(): void {
    if (this.closed) throw coded("TRANSACTION_CLOSED", "The transaction is closed");
  }

  #one(stmt: InStatement | [string, InArgs?], args?: InArgs): ResultSet {
    if (this.#mode === "read") {
      const sql = typeof stmt === "string" ? stmt : Array.isArray(stmt) ? stmt[0] : stmt.sql;
      if (!this.#r.isReadonly(sql)) {
        throw coded("SQLITE_READONLY", 'attempt to write a readonly database (a "read" transaction cannot write)');
      }
    }
    return this.#run(stmt, args);
  }

  async execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    try {
      this.#open();
      return this.#one(stmt, args);
    } catch (e) {
      throw adoptClient(e);
    }
  }

  async batch(stmts: Array<InStatement | [string, InArgs?]>): Promise<ResultSet[]> {
    const out: ResultSet[] = [];
    for (let i = 0; i < stmts.length; i++) {
      try {
        this.#open();
        out.push(this.#one(stmts[i]));
      } catch (e) {
        throw atStatement(adoptClient(e), i);
      }
    }
    return out;
  }

  async executeMultiple(sql: string): Promise<void> {
    try {
      this.#open();
      this.#r.executeMultiple(sql);
    } catch (e) {
      throw adoptClient(e);
    }
  }

  async commit(): Promise<void> {
    try {
      this.#open();
      this.#r.executeMultiple("COMMIT");
    } catch (e) {
      throw adoptClient(e);
    } finally {
      this.#settle();
    }
  }

  async rollback(): Promise<void> {
    try {
      if (!this.closed) this.#r.executeMultiple("ROLLBACK");
    } catch (e) {
      throw adoptClient(e);
    } finally {
      this.#settle();
    }
  }

  close(): void {
    if (this.#settled) return;
    try {
      if (this.#r.inTransaction) this.#r.executeMultiple("ROLLBACK");
    } finally {
      this.#settle();
    }
  }

  /** The client closed: nothing more may touch the database. */
  abandon(): void {
    this.#settled = true;
    this.#resolve();
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#done();
    this.#resolve();
  }

  /** Closed by commit, rollback or close — or by a COMMIT / ROLLBACK the caller ran. */
  get closed(): boolean {
    if (!this.#settled && !this.#r.inTransaction) this.#settle();
    return this.#settled;
  }
}
