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
import type { InArgs, InStatement, ResultSet, Transaction, TransactionMode } from "./types.js";
import type { ReplicaGlue, Runtime } from "./runtime.js";
import type { Expanded } from "./url.js";
import type { EmbeddedReplica, Policy, ReplicaConfig, SyncEvents, SyncLogEntry, SyncMetrics, SyncResult, SyncStatus } from "./replica-types.js";
import { encodeStatement, encodeStatements } from "./args.js";
import { KeptStatements } from "./local.js";
import { LocalTransaction } from "./local-transaction.js";
import { decodeResult } from "./result.js";
import { checkMode } from "./remote.js";
import { checkClientOptions, intervalMs } from "./replica-options.js";
import { Scheduler } from "./replica-schedule.js";
import { adoptClient, adoptFrom, coded, LibsqlError, retiredError } from "./wasm-errors.js";
export { isLocalUrl } from "./url.js";
export type * from "./replica-types.js";
export { atStatement } from "./local-transaction.js";
export { checkClientOptions, checkSyncOptions } from "./replica-options.js";

/** The error of every call on a replica whose one connection an open transaction holds. */
function transactionActive(): LibsqlError {
  return coded(
    "TRANSACTION_ACTIVE",
    "This client has a single connection, which an open transaction is holding. In-memory databases and embedded replicas cannot have more than one. Commit or roll back the transaction before using the client again.",
  );
}

export class EmbeddedReplicaClient implements EmbeddedReplica {
  readonly protocol = "file" as const;
  #rt: Runtime<ReplicaGlue>;
  #config: ReplicaConfig;
  #r: Full.Replica | undefined;
  #opening: Promise<void> | undefined;
  #closed = false;
  #writeMode: "local" | "remote";
  #sched: Scheduler;
  #running: Promise<SyncResult> | undefined;
  /** A schema `migrate()` in flight (`close()` waits for it). */
  #migrating: Promise<unknown> | undefined;
  /** The last sync or schema migration queued, until it settles: they run one after another, in call order. */
  #tail: Promise<unknown> | undefined;

  /** Runs `run` after the syncs and migrations queued before it (at once when none is). */
  #inTurn<T>(run: () => Promise<T>): Promise<T> {
    const p = this.#tail ? this.#tail.then(run) : run();
    const tail: Promise<unknown> = p.catch(() => undefined).finally(() => {
      if (this.#tail === tail) this.#tail = undefined;
    });
    this.#tail = tail;
    return p;
  }
  #wtQueue: Promise<unknown> = Promise.resolve();
  /** Write-through calls queued or in flight. */
  #wtPending = 0;
  #released: Promise<void> = Promise.resolve();
  #listeners = new Map<string, Set<(d: never) => void>>();
  /**
   * Whether the replica notes which tables writes change: only while a `change`
   * listener exists (the browser store's owner always has one), so that a write pays
   * for `change` events only when someone listens (docs/decisions.md).
   */
  #watching = false;
  /** Called by the module, inside SQLite, on the first row change after a drain: one microtask per burst. */
  readonly #scheduleChanges = (): void => queueMicrotask(this.#flushChanges);
  /**
   * Drains the changed tables (always, listened to or not, so nothing stays behind) and
   * emits `change` — except while a transaction is open: its writes are not committed,
   * and a listener that reads would get TRANSACTION_ACTIVE; its end drains them.
   */
  readonly #flushChanges = (): void => {
    const r = this.#r;
    if (r === undefined || retiredError(this) !== undefined || this.#tx !== undefined) return;
    let tables: string[];
    try {
      tables = r.takeChanges() as string[];
    } catch (e) {
      this.#fail(e);
      return;
    }
    if (tables.length > 0) this.#emit("change", { tables });
  };
  #local: KeptStatements | undefined;
  #siteId = "";
  #real: boolean;
  /** The open interactive transaction, which holds the one connection. */
  #tx: LocalTransaction | undefined;

  constructor(rt: Runtime<ReplicaGlue>, config: ReplicaConfig, expanded: Expanded) {
    this.#rt = rt;
    this.#config = { ...config, url: (expanded.target as { url: string }).url, intMode: expanded.intMode };
    this.#real = config.numberArgs === "real";
    checkClientOptions(config);
    this.#writeMode = config.writeMode ?? "local";
    this.#sched = new Scheduler(
      {
        alive: () => !this.#closed && this.#r !== undefined && retiredError(this) === undefined,
        sync: () => this.sync(),
        retryDelay: () => {
          try {
            return this.#r?.retryDelay() ?? 1;
          } catch (e) {
            adoptFrom(this, e); // a trap retires the client: no more background syncs
            return undefined;
          }
        },
        retryCount: () => {
          try {
            return (this.#r?.status() as { retryCount: number } | undefined)?.retryCount ?? 0;
          } catch (e) {
            this.#fail(e); // a trap retires the client; any other error: try again later
            return 0;
          }
        },
        emit: (name, detail) => this.#emit(name, detail),
      },
      { intervalMs: intervalMs(config), syncOnOpen: config.syncOnOpen, maxRetries: config.maxRetries, paused: config.paused },
    );
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
      this.#emit(name, detail);
    });
    this.#watchChanges();
    this.#sched.start();
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

  execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    // Not async once open: a local statement answers in this task, and an async
    // function's awaits would add promises and microtask turns to every call (a point
    // read is a few µs: they were a fifth of it in a browser worker, bench/browser).
    if (this.#r !== undefined && this.#writeMode === "local") {
      try {
        return Promise.resolve(this.executeNow(stmt, args));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return this.#executeLater(stmt, args);
  }

  /**
   * @internal A local `execute` run now on the open replica (a browser worker's host
   * calls it): the result, or its error thrown as `execute` would reject with it.
   */
  executeNow(stmt: InStatement, args?: InArgs): ResultSet {
    try {
      const r = this.#now();
      if (this.#tx !== undefined) throw transactionActive();
      return this.#runLocal(r, stmt, args);
    } catch (e) {
      throw this.#fail(e);
    }
  }

  async #executeLater(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    try {
      // Open: no await before the statement runs (it is the hot path of local reads and writes).
      const r = this.#r === undefined ? await this.#ready() : this.#now();
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
      const r = this.#r === undefined ? await this.#ready() : this.#now();
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
  migrate(stmts?: InStatement[]): Promise<string[] | ResultSet[]> {
    if (stmts === undefined) {
      // Never under a running sync, nor a sync under it: it changes the tables the sync
      // reads. Syncs and migrations take turns in call order (#inTurn),
      // entered now, before any await; close() waits for a migration in flight.
      const run = async (): Promise<string[]> => {
        try {
          await this.#ready();
          if (this.#tx !== undefined) throw transactionActive();
          return (await this.#now().migrate()) as string[];
        } catch (e) {
          throw this.#fail(e);
        }
      };
      const p = this.#inTurn(run);
      const slot = p.catch(() => undefined).finally(() => {
        if (this.#migrating === slot) this.#migrating = undefined;
      });
      this.#migrating = slot;
      return p;
    }
    return this.#migrateStatements(stmts);
  }

  async #migrateStatements(stmts: InStatement[]): Promise<ResultSet[]> {
    const r = await this.#ready().catch((e) => {
      throw this.#fail(e);
    });
    if (this.#tx !== undefined) throw transactionActive();
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
        (kept) => {
          if (this.#tx === tx) this.#tx = undefined;
          // Its tables' `change` event comes now, once; none for a rolled-back one.
          if (!kept && !this.#closed && retiredError(this) === undefined) r.takeChanges();
          this.#flushChanges();
        },
      );
      this.#tx = tx;
      return tx;
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /**
   * @internal The sync in flight, as a promise that settles (never rejects) when it has
   * ended; undefined when none runs. `transaction()` begins after it: the browser host
   * (js/browser/host.ts) waits for it beside its queue, not in it.
   */
  syncInFlight(): Promise<void> | undefined {
    return this.#running?.then(
      () => undefined,
      () => undefined,
    );
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
      const r = await this.#ready();
      return (await this.#writeThrough(r, stmts, request)).map((b) => decodeResult(b as Uint8Array));
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /** Write-through calls run one at a time, in call order (each builds on the last). */
  #writeThrough(r: Full.Replica, stmts: Array<InStatement | [string, InArgs?]>, request?: string): Promise<unknown[]> {
    const packed = encodeStatements(stmts, this.#real);
    const run = () => {
      // A call queued behind others may start after close(): the replica is freed then.
      this.#check();
      return r.executeRemote(packed, "write", request) as Promise<unknown[]>;
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
        this.#check();
        if (this.#sched.paused) throw coded("INVALID_OPERATION", "invalid operation: sync is paused; call resume() first");
        let r = await this.#ready();
        while (this.#tx !== undefined) {
          await this.#tx.settled;
          r = await this.#ready();
        }
        const out = (await r.sync()) as Omit<SyncResult, "frame_no" | "frames_synced">;
        const cursor = this.#closed ? 0 : (r.status() as { cursor: number }).cursor;
        if (!this.#closed) this.#sched.succeeded();
        return { ...out, frame_no: cursor, frames_synced: out.changesApplied };
      } catch (e) {
        throw this.#fail(e);
      }
    };
    if (this.#sched.paused) return run();
    const next: Promise<SyncResult> = this.#inTurn(run).finally(() => {
      if (this.#running === next) this.#running = undefined;
    });
    this.#running = next;
    return next;
  }

  status(): SyncStatus {
    try {
      const s = this.#now().status() as Omit<SyncStatus, "syncing" | "paused" | "gaveUp" | "nextSyncAt">;
      const { paused, gaveUp, dueAt } = this.#sched;
      // While a retry is scheduled, the exact time left to it; none while stopped.
      let nextSyncInMs = s.nextSyncInMs;
      if (paused || gaveUp) nextSyncInMs = 0;
      else if (dueAt !== undefined && s.retryCount > 0) nextSyncInMs = Math.max(0, dueAt - Date.now());
      return { ...s, nextSyncInMs, syncing: this.#running !== undefined, paused, gaveUp, nextSyncAt: dueAt ?? null };
    } catch (e) {
      throw this.#fail(e);
    }
  }

  async pause(): Promise<void> {
    this.#check();
    this.#sched.pause();
    await this.#running?.catch(() => undefined);
  }

  async resume(): Promise<void> {
    this.#check();
    this.#sched.resume();
  }

  async pendingKeys(table: string): Promise<string[]> {
    try {
      const r = await this.#ready();
      if (typeof table !== "string") throw coded("INVALID_ARGUMENT", "invalid argument: the table name must be a string");
      return r.pendingKeys(table) as string[];
    } catch (e) {
      throw this.#fail(e);
    }
  }

  /** Whether every statement only reads (throws the statement's error if one does not prepare). */
  readonly(stmts: InStatement[]): boolean {
    return this.#readonly(this.#now(), stmts);
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
    if (event === "change") this.#watchChanges();
    return () => {
      if (set!.delete(fn as (d: never) => void) && event === "change") this.#watchChanges();
    };
  }

  /** Has the replica note changed tables while a `change` listener exists, and only then. */
  #watchChanges(): void {
    const want = (this.#listeners.get("change")?.size ?? 0) > 0;
    const r = this.#r; // opening: #open() calls this again
    if (want === this.#watching || r === undefined || this.#closed || retiredError(this) !== undefined) return;
    try {
      r.watchChanges(want ? this.#scheduleChanges : undefined);
      this.#watching = want;
    } catch (e) {
      this.#fail(e);
    }
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
    this.#sched.stop();
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
        r.watchChanges(undefined);
        r.cancel();
        r.free();
      } catch (e) {
        adoptFrom(this, e);
      }
    }
    const inFlight = [this.#running, this.#wtQueue, this.#migrating].map((p) => p?.then(
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
    if (this.#rt.isReady() && this.#running === undefined && this.#migrating === undefined && this.#wtPending === 0) {
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

