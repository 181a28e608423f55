/**
 * `transaction()` on a browser `file:` replica: an interactive transaction run by the
 * worker that owns the store (js/browser/tx-slot.ts), sent as calls like every other
 * (`txBegin`, then `tx` calls naming it by its token).
 *
 * The origin's tabs share the store's one connection, so while a transaction is open
 * the owner holds every other client's calls (they run when it ends, in order), and the
 * transaction's own client gets `TRANSACTION_ACTIVE` for calls made outside it, as on
 * Node. An idle transaction (no call for 10 s) is rolled back, as sqld expires an idle
 * stream: a tab that crashed holding one does not block the others for long.
 */
import type { InArgs, InStatement, ResultSet, Transaction, TransactionMode } from "../client.js";
import { coded, fromRaw, TX_ENDED } from "./protocol.js";
import type { RawResult } from "./protocol.js";

/**
 * Sends one call of the transaction (`op` with its arguments) to the store's owner,
 * which answers `[value, open]`: whether the transaction is still open after it (a
 * statement SQLite rolls the transaction back with closes it).
 */
export type TxCall = (op: string, args: unknown[]) => Promise<unknown>;

export class BrowserTransaction implements Transaction {
  readonly mode: TransactionMode;
  #call: TxCall;
  #closed = false;
  #ended: () => void;

  /** `ended`: the client forgets it (it no longer rolls it back on close). */
  constructor(mode: TransactionMode, call: TxCall, ended: () => void) {
    this.mode = mode;
    this.#call = call;
    this.#ended = ended;
  }

  async #send(op: string, args: unknown[]): Promise<unknown> {
    // Ended (committed, rolled back, closed — also by its client's close()): answered
    // here, as on Node, not with the closed client's CLIENT_CLOSED.
    if (this.#closed) throw coded("TRANSACTION_CLOSED", "The transaction is closed");
    try {
      const [value, open] = (await this.#call(op, args)) as [unknown, boolean];
      if (!open) this.#end();
      return value;
    } catch (e) {
      if ((e as { code?: string })?.code === "TRANSACTION_CLOSED" || (e as { [TX_ENDED]?: boolean })?.[TX_ENDED] === true) this.#end();
      throw e;
    }
  }

  async execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    return fromRaw((await this.#send("execute", args === undefined ? [stmt] : [stmt, args])) as RawResult);
  }

  async batch(stmts: Array<InStatement | [string, InArgs?]>): Promise<ResultSet[]> {
    return ((await this.#send("batch", [stmts])) as RawResult[]).map(fromRaw);
  }

  async executeMultiple(sql: string): Promise<void> {
    await this.#send("executeMultiple", [sql]);
  }

  async commit(): Promise<void> {
    try {
      await this.#send("commit", []);
    } finally {
      this.#end();
    }
  }

  async rollback(): Promise<void> {
    if (this.#closed) return; // nothing to roll back, as on Node
    try {
      await this.#send("rollback", []);
    } finally {
      this.#end();
    }
  }

  /** Rolls back what was not committed (in the worker; nothing to wait for here). */
  close(): void {
    if (this.#closed) return;
    this.#end();
    this.#call("close", []).catch(() => undefined);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #end(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ended();
  }
}
