/**
 * The owner's side of `transaction()` on a browser store (the page's side:
 * js/browser/transaction.ts). One transaction at a time holds the store's connection —
 * the origin's tabs share it — so js/browser/host.ts asks this slot, for every call it
 * would run, whether it may run now (`admits`): a call of the open transaction does;
 * the holder's SQL outside it fails with `TRANSACTION_ACTIVE` and its other calls run,
 * as on Node; any other client's call is held until the transaction ends.
 *
 * A transaction ends by commit, rollback or close, by a statement SQLite rolls it back
 * with, when the store is closed, or after `TX_IDLE_MS` without a call (as sqld expires an
 * idle stream: a tab that crashed holding a transaction does not block the others for
 * long). A call naming a transaction this owner does not hold — ended, or begun in an
 * owner that has since gone (nothing of it was committed) — gets `TRANSACTION_CLOSED`,
 * except a commit sent again after the owner that committed it went away before
 * answering: its commit wrote a row in `_es_requests` in the same transaction, so it is
 * answered as committed (js/browser/run.ts has the same rule for single writes).
 */
import type { Transaction, TransactionMode } from "../client.js";
import type { EmbeddedReplicaClient } from "../replica.js";
import { coded, rawResult, TX_ENDED } from "./protocol.js";
import type { Call } from "./protocol.js";
import { refuse, type From } from "./run.js";

/** A transaction with no call for this long is rolled back (sqld's idle stream expiry). */
export const TX_IDLE_MS = 10_000;

/** The calls a client holding a transaction gets TRANSACTION_ACTIVE for, as on Node. */
const REFUSED_WHILE_OPEN = new Set(["execute", "batch", "executeMultiple", "migrate", "txBegin"]);

/** Who made a call: the worker that sent it (its client, one per worker). */
export const callerOf = (from: From | null, self: string): string => from?.origin ?? self;

interface Open {
  token: string;
  /** The worker whose client holds it. */
  holder: string;
  mode: TransactionMode;
  tx: Transaction;
  idle: ReturnType<typeof setTimeout>;
}

export class TxSlot {
  #open: Open | undefined;
  #count = 0;
  readonly #self: string;
  /** The transaction ended: the calls held meanwhile may run. */
  readonly #ended: () => void;

  constructor(self: string, ended: () => void) {
    this.#self = self;
    this.#ended = ended;
  }

  get active(): boolean {
    return this.#open !== undefined;
  }

  /**
   * Whether call `c` from `caller` may run now: "run", "hold" (until the transaction
   * ends) or "refuse" (its client holds the transaction and called outside it).
   */
  admits(c: Call, caller: string): "run" | "hold" | "refuse" {
    const open = this.#open;
    if (open === undefined || c.m === "tx" || c.m === "state") return "run";
    // The holder's other calls behave as on Node: its SQL outside the transaction is
    // refused, the rest runs (a sync waits for the transaction by itself). The owner's
    // own housekeeping (id 0) waits.
    if (caller === open.holder && c.id !== 0) return REFUSED_WHILE_OPEN.has(c.m) ? "refuse" : "run";
    return "hold";
  }

  /** Runs a `txBegin` (resolves with the token) or a `tx` call (with `[value, open]`). */
  call(client: EmbeddedReplicaClient, c: Call, from: From | null, caller: string, dedupe: boolean): Promise<unknown> {
    return c.m === "txBegin" ? this.begin(client, c.a[0] as TransactionMode, caller) : this.run(client, c, from, dedupe);
  }

  /** Begins a transaction for `caller`; resolves with its token. */
  async begin(client: EmbeddedReplicaClient, mode: TransactionMode, caller: string): Promise<string> {
    const tx = await client.transaction(mode);
    const token = `${this.#self}.${++this.#count}`;
    this.#open = { token, holder: caller, mode, tx, idle: this.#arm(token) };
    return token;
  }

  /**
   * Runs `[token, op, ...args]` of call `c`; resolves with `[value, open]`.
   * `dedupe`: where a commit is recorded (`_es_requests`) so that, sent again to a new
   * owner, it is answered as committed — the forwarded calls of a store in OPFS.
   */
  async run(client: EmbeddedReplicaClient, c: Call, from: From | null, dedupe: boolean): Promise<[unknown, boolean]> {
    const [token, op, ...args] = c.a as [string, string, ...unknown[]];
    const open = this.#open;
    if (open === undefined || open.token !== token) return this.#notHeld(client, op, c, from, dedupe);
    clearTimeout(open.idle);
    try {
      const value = await this.#op(open, op, args, c, from, dedupe);
      return [value, this.#stillOpen(open)];
    } catch (e) {
      // A statement SQLite rolled the transaction back with: the page's `closed` says so.
      if (!this.#stillOpen(open) && e !== null && typeof e === "object" && !(TX_ENDED in e)) Object.defineProperty(e, TX_ENDED, { value: true });
      throw e;
    } finally {
      if (this.#open === open) {
        if (open.tx.closed) this.#end(open);
        else open.idle = this.#arm(token);
      }
    }
  }

  async #op(open: Open, op: string, args: unknown[], c: Call, from: From | null, dedupe: boolean): Promise<unknown> {
    const tx = open.tx;
    switch (op) {
      case "execute":
      case "batch": {
        const refused = refuse({ ...c, m: op, a: args });
        if (refused) throw refused;
        if (op === "execute") return rawResult(await tx.execute(args[0] as string, args[1] as undefined));
        return (await tx.batch(args[0] as string[])).map(rawResult);
      }
      case "executeMultiple":
        return tx.executeMultiple(String(args[0]));
      case "commit":
        if (dedupe && from && open.mode !== "read") {
          await tx.execute({ sql: "INSERT OR REPLACE INTO _es_requests (origin, seq, at, result) VALUES (?, ?, ?, ?)", args: [from.origin, c.id, Date.now(), "null"] });
        }
        return tx.commit();
      case "rollback":
        return tx.rollback();
      case "close":
        return tx.close();
      default:
        throw coded("INVALID_OPERATION", `invalid operation: a transaction has no method ${op}`);
    }
  }

  /** A call of a transaction this owner does not hold. */
  async #notHeld(client: EmbeddedReplicaClient, op: string, c: Call, from: From | null, dedupe: boolean): Promise<[unknown, boolean]> {
    if (op === "rollback" || op === "close") return [undefined, false];
    if (op === "commit" && dedupe && from) {
      // Another transaction may hold the store now (the new owner's own, begun first):
      // the committed row is read through it — the client would refuse (TRANSACTION_ACTIVE).
      const reader: Pick<Transaction, "execute"> = this.#open?.tx ?? client;
      const hit = await reader.execute({ sql: "SELECT 1 FROM _es_requests WHERE origin = ? AND seq = ?", args: [from.origin, c.id] });
      if (hit.rows.length > 0) return [undefined, false];
    }
    throw coded(
      "TRANSACTION_CLOSED",
      "The transaction is closed (committed, rolled back, idle for 10 s, or lost with the tab that held the store: nothing of it was committed)",
    );
  }

  #stillOpen(open: Open): boolean {
    return this.#open === open && !open.tx.closed;
  }

  #arm(token: string): ReturnType<typeof setTimeout> {
    return setTimeout(() => {
      const open = this.#open;
      if (open === undefined || open.token !== token) return;
      try {
        open.tx.close();
      } catch {
        // The store was closed meanwhile: nothing left to roll back.
      }
      this.#end(open);
    }, TX_IDLE_MS);
  }

  #end(open: Open): void {
    if (this.#open !== open) return;
    clearTimeout(open.idle);
    this.#open = undefined;
    this.#ended();
  }

  /** Rolls back the transaction `holder` holds, if any (its worker closed). */
  endHeldBy(holder: string): void {
    const open = this.#open;
    if (open === undefined || open.holder !== holder) return;
    try {
      open.tx.close();
    } catch {
      // The store was closed meanwhile: nothing left to roll back.
    }
    this.#end(open);
  }

  /** The store closes: the transaction goes with it (its client rolls it back). */
  drop(): void {
    if (this.#open) clearTimeout(this.#open.idle);
    this.#open = undefined;
  }
}
