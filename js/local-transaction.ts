/**
 * An interactive transaction on an embedded replica's local database
 * (`EmbeddedReplicaClient.transaction()`, js/replica.ts): it holds the replica's one
 * connection until it ends. Apart from the client so that each file holds one job.
 */
import type * as Full from "./wasm/edgesync.js";
import type { InArgs, InStatement, ResultSet, Transaction, TransactionMode } from "./types.js";
import { adoptClient, coded, LibsqlBatchError, LibsqlError } from "./wasm-errors.js";

/** `e` as the error of statement `i` of a batch (`LibsqlBatchError`), as from `@libsql/client`. */
export function atStatement(e: unknown, i: number): unknown {
  if (!(e instanceof LibsqlError) || e instanceof LibsqlBatchError) return e;
  const message = e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2) : e.message;
  const b = new LibsqlBatchError(message, i, e.code, e.extendedCode, e.rawCode, e.cause);
  b.retryable = e.retryable;
  return b;
}

/**
 * An interactive transaction on an embedded replica's local database. `read` mode
 * refuses statements that write (SQLite has no read-only `BEGIN`).
 */
export type RunLocal = (stmt: InStatement | [string, InArgs?], args?: InArgs) => ResultSet;

export class LocalTransaction implements Transaction {
  #r: Full.Replica;
  #mode: TransactionMode;
  #run: RunLocal;
  #done: (kept: boolean) => void;
  #settled = false;
  #resolve!: () => void;
  /** Resolves when the transaction ends (a sync waits for it). */
  readonly settled: Promise<void>;

  /** `done(kept)`: it ended — `kept` false when rolled back (its writes are gone). */
  constructor(r: Full.Replica, mode: TransactionMode, run: RunLocal, done: (kept: boolean) => void) {
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
      this.#rolledBack();
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
        this.#rolledBack();
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
      this.#rolledBack();
      throw adoptClient(e);
    }
  }

  /**
   * A statement failed: if the transaction is gone, SQLite rolled it back (`INSERT OR
   * ROLLBACK`, a full disk…): it ends, with no `change` event for its writes.
   */
  #rolledBack(): void {
    try {
      if (!this.#settled && !this.#r.inTransaction) this.#settle(false);
    } catch {
      // A replica retired by a trap: the client reports it.
    }
  }

  async commit(): Promise<void> {
    try {
      this.#open();
      this.#r.executeMultiple("COMMIT");
    } catch (e) {
      // A COMMIT SQLite refuses (a deferred foreign key still violated) leaves the
      // transaction open: it is rolled back, as by @libsql/client — else the client
      // would think it ended while the connection stays in it, every later write
      // uncommitted and every later transaction refused.
      this.#rollbackAfterFailedCommit();
      throw adoptClient(e);
    } finally {
      this.#settle();
    }
  }

  #rollbackAfterFailedCommit(): void {
    if (this.#settled) return;
    try {
      if (this.#r.inTransaction) this.#r.executeMultiple("ROLLBACK");
    } catch {
      // A replica retired by a trap: nothing more runs on it.
    }
    this.#settle(false);
  }

  async rollback(): Promise<void> {
    try {
      if (!this.closed) this.#r.executeMultiple("ROLLBACK");
    } catch (e) {
      throw adoptClient(e);
    } finally {
      this.#settle(false);
    }
  }

  close(): void {
    if (this.#settled) return;
    try {
      if (this.#r.inTransaction) this.#r.executeMultiple("ROLLBACK");
    } finally {
      this.#settle(false);
    }
  }

  /** The client closed: nothing more may touch the database. */
  abandon(): void {
    this.#settled = true;
    this.#resolve();
  }

  #settle(kept = true): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#done(kept);
    this.#resolve();
  }

  /** Closed by commit, rollback or close — or by a COMMIT / ROLLBACK the caller ran. */
  get closed(): boolean {
    if (!this.#settled && !this.#r.inTransaction) this.#settle();
    return this.#settled;
  }
}
