/**
 * The public types of the client API. They follow `@libsql/client` (its `Config`,
 * `Client`, `Transaction`, `ResultSet`, `Row`, values), so code written for it
 * type-checks unchanged; edgesync's additions are marked as such. Differences that
 * remain are listed in docs/compatibility.md.
 */
import type { ErrorCode } from "./wasm-errors.js";

/** A value as read from the database. BLOBs are `ArrayBuffer`s, as from `@libsql/client`. */
export type Value = null | string | number | bigint | ArrayBuffer;

/**
 * A value accepted as an argument: a `Value`, `boolean` (0/1), `Uint8Array` or any typed
 * array or `DataView` (BLOB), `Date` (integer milliseconds). `undefined` is a `TypeError`,
 * NaN, ±Infinity and bigints beyond 64 bits a `RangeError`, as in `@libsql/client`.
 */
export type InValue = Value | boolean | Uint8Array | ArrayBufferView | Date;

/** Positional (`?`) or named (`:name`, `@name`, `$name`; prefix optional) arguments. */
export type InArgs = Array<InValue> | Record<string, InValue>;

/** A statement: SQL alone, `{ sql, args }`, or `[sql, args]`. */
export type InStatement = { sql: string; args?: InArgs } | string;

/** `write`: BEGIN IMMEDIATE; `read`: BEGIN TRANSACTION READONLY; `deferred`: BEGIN DEFERRED. */
export type TransactionMode = "write" | "read" | "deferred";

/**
 * How INTEGER results are returned.
 * - `"auto"` (edgesync's default): a `number` when it is a safe integer, else a
 *   `bigint` — exact, and never a `RangeError`.
 * - `"number"` (`@libsql/client`'s default): a `number`; a `RangeError` for an integer
 *   beyond 2^53 − 1.
 * - `"bigint"`: always a `bigint`. `"string"`: always a decimal string.
 */
export type IntMode = "auto" | "number" | "bigint" | "string";

/** A `fetch` to use instead of the global one; it is called with one `Request`. */
export type FetchFunction = (request: Request) => Promise<Response>;

/** The configuration of `createClient`, as `@libsql/client` takes it. */
export interface Config {
  /**
   * `libsql://…` (HTTPS; `?tls=0` for HTTP, with a port), `https://…`, `http://…`,
   * `wss://…`, `ws://…` (Hrana over WebSocket), or a local database: `":memory:"`,
   * `"file::memory:"`, `"file:path"` (an embedded replica).
   */
  url: string;
  /** A JWT for the server (a Turso database token, or one for sqld's `--auth-jwt-key-file`). */
  authToken?: string;
  /** How INTEGER results are returned (default `"auto"`). */
  intMode?: IntMode;
  /** A `fetch` to use instead of the global one (e.g. a Worker service binding's). */
  fetch?: FetchFunction;
  /** Requests in flight at once on a remote client (default 20; 0: no limit). */
  concurrency?: number | undefined;
  /** For `libsql:` URLs: `false` speaks HTTP instead of HTTPS (needs a port). */
  tls?: boolean;
  /** Per-request timeout in ms (default 30000). edgesync: remote requests and sync. */
  timeout?: number;
  /**
   * edgesync: how a JS `number` argument is bound. `"auto"` (default): a whole number
   * (a safe integer) as INTEGER, any other as REAL. `"real"`: every number as REAL, as
   * `@libsql/client` binds them (bigints are INTEGER either way).
   */
  numberArgs?: "auto" | "real";
  /**
   * edgesync, WebSocket URLs: a `WebSocket` constructor to use instead of the runtime's
   * (the Node entry uses the `ws` package; browsers and Workers their own).
   */
  WebSocket?: WebSocketConstructor;
  /** The libSQL server an embedded replica syncs with (with a local `url`). */
  syncUrl?: string;
  /** Background sync period of an embedded replica, in ms (edgesync; none when omitted). */
  syncInterval?: number;
  /** Accepted for `@libsql/client` compatibility; edgesync replicas always read their own writes. */
  readYourWrites?: boolean;
  /** Accepted for `@libsql/client` compatibility; edgesync replicas always work offline. */
  offline?: boolean;
  /** Not supported: a config with an encryption key is refused (`ENCRYPTION_KEY_NOT_SUPPORTED`). */
  encryptionKey?: string;
  /** Not supported: refused like `encryptionKey`. */
  remoteEncryptionKey?: string;
}

/** The part of a WebSocket the client uses (the WHATWG API; `ws` in Node fits). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "close" | "error" | "message", listener: (ev: WebSocketEvent) => void): void;
}

/** What the client reads from WebSocket events. */
export interface WebSocketEvent {
  data?: unknown;
  code?: number;
  reason?: string;
  message?: string;
  error?: unknown;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** One row: by index (`row[0]`) and by column name (`row.id`). */
export interface Row {
  length: number;
  [index: number]: Value;
  [name: string]: Value;
}

export interface ResultSet {
  columns: Array<string>;
  /** Declared types, `""` for expressions. */
  columnTypes: Array<string>;
  rows: Array<Row>;
  rowsAffected: number;
  /** The rowid of the last inserted row, when the statement inserted one. */
  lastInsertRowid: bigint | undefined;
  /**
   * edgesync: the libSQL server's replication index (frame number) after the
   * statement, when it reports one; `undefined` for local results.
   */
  replicationIndex?: number | undefined;
  /** JSON-safe: bigints as strings, BLOBs as base64 strings, rows as arrays. */
  toJSON(): ResultSetJson;
}

/** `ResultSet.toJSON()`. */
export interface ResultSetJson {
  columns: string[];
  columnTypes: string[];
  rows: Array<Array<null | string | number>>;
  rowsAffected: number;
  lastInsertRowid: string | null;
}

/** What `sync()` reports (`@libsql/client`'s `Replicated`, with edgesync's counts). */
export type Replicated = { frame_no: number; frames_synced: number } | undefined;

/** An interactive transaction (see `Client.transaction`). */
export interface Transaction {
  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  /** Statements in order; a failure stops the rest but does not roll the transaction back. */
  batch(stmts: Array<InStatement | [string, InArgs?]>): Promise<Array<ResultSet>>;
  executeMultiple(sql: string): Promise<void>;
  rollback(): Promise<void>;
  commit(): Promise<void>;
  /** Rolls back what was not committed; nothing if already closed. */
  close(): void;
  readonly closed: boolean;
}

export interface Client {
  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  /** All statements in one transaction (and, remotely, one round trip): all commit or none do. */
  batch(stmts: Array<InStatement | [string, InArgs?]>, mode?: TransactionMode): Promise<Array<ResultSet>>;
  /** A deferred batch with `PRAGMA foreign_keys=off` around it (schema migrations). */
  migrate(stmts: Array<InStatement>): Promise<Array<ResultSet>>;
  /** An interactive transaction (default mode `"write"`). Close it: `commit`, `rollback` or `close`. */
  transaction(mode?: TransactionMode): Promise<Transaction>;
  /** SQL statements separated by semicolons, one after the other; results ignored. */
  executeMultiple(sql: string): Promise<void>;
  /** Embedded replicas: push and pull. Remote clients throw `SYNC_NOT_SUPPORTED`. */
  sync(): Promise<Replicated>;
  /** Later calls reject with `CLIENT_CLOSED`. */
  close(): void;
  /** Opens the client again after `close()` (a WebSocket client: a new connection). */
  reconnect(): void | Promise<void>;
  readonly closed: boolean;
  readonly protocol: "http" | "ws" | "file";
}

/** The part of an error edgesync reports in events (e.g. `sync:error`). */
export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}
