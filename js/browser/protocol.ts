/**
 * The messages of a browser replica: between a page's client and its worker
 * (`postMessage`), and between the workers of the tabs that share one store (a
 * `BroadcastChannel` per database). Everything in them is structured-cloneable:
 * results travel as plain arrays of values, errors as plain objects that become
 * `EdgesyncError`s again on arrival.
 */
import type { ResultSet, Value } from "../client.js";
import { ResultSetImpl, rowMaker } from "../resultset.js";
import { LibsqlBatchError, LibsqlError } from "../wasm-errors.js";
import type { ErrorCode } from "../wasm-errors.js";

/** A result set as plain data (rows as arrays of values), for a message. */
export interface RawResult {
  columns: string[];
  columnTypes: string[];
  rows: Value[][];
  rowsAffected: number;
  lastInsertRowid?: bigint;
  replicationIndex?: number;
}

/** The ResultSet a message carried, rows by index and by name as everywhere. */
export function fromRaw(raw: RawResult): ResultSet {
  return new ResultSetImpl(raw.columns, raw.columnTypes, raw.rows.map(rowMaker(raw.columns)), raw.rowsAffected, raw.lastInsertRowid, raw.replicationIndex);
}

/** A call of a client method: `m(...a)`, numbered per client. */
export interface Call {
  id: number;
  m: string;
  a: unknown[];
}

/** The answer to call `id`. */
export type Reply = { id: number; ok: true; v: unknown } | { id: number; ok: false; e: ErrorData };

/** What the page (or the in-place client) learns about the store, pushed by its worker. */
export interface State {
  status: Record<string, unknown>;
  metrics: Record<string, unknown>;
  metricsText: string;
  siteId: string;
  persistent: boolean;
  /** Whether this tab's worker holds the store (the others forward to it). */
  owner: boolean;
}

/** Page → worker. */
export type ToWorker =
  /** No module will come with `open`: the worker fetches and compiles its own now. */
  | { t: "load" }
  | { t: "open"; name: string; config: Record<string, unknown>; module?: WebAssembly.Module }
  | { t: "calls"; calls: Call[] }
  | { t: "close" };

/** What a host has for its own client at a flush: one message per flush. */
export interface Out {
  state?: State;
  replies?: Reply[];
  events?: [name: string, detail: unknown][];
}

/** Worker → page. */
export type ToPage = ({ t: "out" } & Out) | { t: "closed" };

/** A call forwarded to the tab that owns the store: `origin` names the sending worker,
 *  `low` is its lowest call still unanswered (the owner forgets older answers). */
export interface Forwarded extends Call {
  origin: string;
  low: number;
}

/** Between the workers of one store. */
export type OnChannel =
  | { t: "req"; calls: Forwarded[] }
  | { t: "res"; to: string; replies: Reply[] }
  /** A worker took the store over: pending calls are sent again, to it. */
  | { t: "owner"; origin: string }
  /** A worker joined as a follower (or saw a new owner): the owner sends its state,
   *  and from then on its events. */
  | { t: "hello"; origin: string }
  /** A follower closed: the owner drops its calls not run yet (it answered them
   *  CLIENT_CLOSED) and rolls back a transaction it still holds. */
  | { t: "bye"; origin: string }
  | { t: "event"; name: string; detail: unknown }
  | { t: "state"; state: Omit<State, "owner"> };

export interface ErrorData {
  message: string;
  code: string;
  retryable?: boolean;
  serverCode?: string;
  extendedCode?: string;
  rawCode?: number;
  /** A batch's failed statement (`LibsqlBatchError.statementIndex`). */
  statementIndex?: number;
  status?: number;
  /** A `RangeError` or `TypeError` (a bad argument, as the official client throws it). */
  jsError?: "RangeError" | "TypeError";
  /** A transaction's call that failed and ended it (SQLite rolled it back): its `closed` turns true. */
  txEnded?: true;
}

/** On an error: the transaction call that failed with it ended the transaction (not enumerable). */
export const TX_ENDED: unique symbol = Symbol("edgesync.txEnded");

/** An error as data, for a message. Anything that is not a LibsqlError is a bug here. */
export function errorData(e: unknown): ErrorData {
  const x = e as Partial<LibsqlBatchError> | undefined;
  if (x && typeof x === "object" && typeof x.code === "string" && typeof x.message === "string") {
    // The message without the `CODE: ` prefix the error's constructor adds again.
    const message = x.message.startsWith(`${x.code}: `) ? x.message.slice(x.code.length + 2) : x.message;
    const d: ErrorData = { message, code: x.code, retryable: x.retryable === true };
    if (x.serverCode !== undefined) d.serverCode = x.serverCode;
    if (x.extendedCode !== undefined) d.extendedCode = x.extendedCode;
    if (x.rawCode !== undefined) d.rawCode = x.rawCode;
    if (x.statementIndex !== undefined) d.statementIndex = x.statementIndex;
    if (x.status !== undefined) d.status = x.status;
    if ((x as { [TX_ENDED]?: boolean })[TX_ENDED] === true) d.txEnded = true;
    return d;
  }
  if (e instanceof RangeError || e instanceof TypeError) return { message: e.message, code: "", jsError: e instanceof RangeError ? "RangeError" : "TypeError" };
  const message = e instanceof Error ? e.message : String(e);
  return { message: `internal error: ${message}`, code: "INTERNAL_ERROR" };
}

/** The LibsqlError (LibsqlBatchError for a batch's statement; a RangeError or TypeError as such) a message carried. */
export function errorFrom(d: ErrorData): Error {
  if (d.jsError !== undefined) return d.jsError === "RangeError" ? new RangeError(d.message) : new TypeError(d.message);
  const code = d.code as ErrorCode;
  const e =
    d.statementIndex !== undefined
      ? new LibsqlBatchError(d.message, d.statementIndex, code, d.extendedCode, d.rawCode)
      : new LibsqlError(d.message, code, d.extendedCode, d.rawCode);
  e.retryable = d.retryable === true;
  if (d.serverCode !== undefined) e.serverCode = d.serverCode;
  if (d.status !== undefined) e.status = d.status;
  if (d.txEnded) Object.defineProperty(e, TX_ENDED, { value: true });
  return e;
}

export function coded(code: ErrorCode, message: string, retryable = false): LibsqlError {
  const e = new LibsqlError(message, code);
  e.retryable = retryable;
  return e;
}

/** A result set as plain data. */
export function rawResult(rs: ResultSet): RawResult {
  const rows = new Array<Value[]>(rs.rows.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rs.rows[r];
    const n = row.length;
    const values = new Array<Value>(n);
    for (let i = 0; i < n; i++) values[i] = row[i];
    rows[r] = values;
  }
  const raw: RawResult = { columns: rs.columns, columnTypes: rs.columnTypes, rows, rowsAffected: rs.rowsAffected };
  // Left out when absent, so an answer kept as JSON (_es_requests) reads back the same.
  if (rs.lastInsertRowid !== undefined) raw.lastInsertRowid = rs.lastInsertRowid;
  if (rs.replicationIndex !== undefined) raw.replicationIndex = rs.replicationIndex;
  return raw;
}

// JSON with bigints and blobs, for answers kept in the database (_es_requests).
export function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => {
    if (typeof x === "bigint") return { $b: x.toString() };
    if (x instanceof Uint8Array) return { $u: Array.from(x) };
    // BLOBs read from the database are ArrayBuffers (as from @libsql/client).
    if (x instanceof ArrayBuffer) return { $a: Array.from(new Uint8Array(x)) };
    return x;
  });
}

export function fromJson(s: string): unknown {
  return JSON.parse(s, (_k, x) => {
    if (x !== null && typeof x === "object" && !Array.isArray(x)) {
      if (typeof x.$b === "string" && Object.keys(x).length === 1) return BigInt(x.$b);
      if (Array.isArray(x.$u) && Object.keys(x).length === 1) return Uint8Array.from(x.$u);
      if (Array.isArray(x.$a) && Object.keys(x).length === 1) return Uint8Array.from(x.$a).buffer;
    }
    return x;
  });
}

/**
 * Statements that open or close a transaction by hand. A browser store is one SQLite
 * connection shared by every tab, so a transaction left open by one tab would take
 * in the others' writes: they are refused there, and `batch()` (one transaction, one
 * call) is the way to group writes.
 */
export function isTransactionControl(sql: string): boolean {
  let v = txControl.get(sql);
  if (v === undefined) {
    v = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*(?:begin|commit|end|rollback|savepoint|release)\b/i.test(sql);
    if (txControl.size >= 512) txControl.clear();
    txControl.set(sql, v);
  }
  return v;
}

/** Answers of isTransactionControl by SQL text: statements repeat. */
const txControl = new Map<string, boolean>();

/** Answers to follower `to` on the store's channel; an answer that cannot be cloned becomes an error. */
export function postReplies(channel: BroadcastChannel, to: string, replies: Reply[]): void {
  try {
    channel.postMessage({ t: "res", to, replies } satisfies OnChannel);
  } catch {
    for (const r of replies) {
      try {
        channel.postMessage({ t: "res", to, replies: [r] } satisfies OnChannel);
      } catch (e) {
        const err = coded("INVALID_ARGUMENT", `invalid argument: the result cannot be sent between tabs: ${(e as Error)?.message ?? e}`);
        channel.postMessage({ t: "res", to, replies: [{ id: r.id, ok: false, e: errorData(err) }] } satisfies OnChannel);
      }
    }
  }
}
