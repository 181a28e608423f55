/**
 * The public TypeScript API of edgesync, over the Rust core compiled to wasm.
 *
 * ```ts
 * import { createClient } from "edgesync";
 * const db = createClient({ url: "libsql://my-db.turso.io", authToken });
 * const rs = await db.execute({ sql: "select * from users where id = ?", args: [1] });
 * console.log(rs.rows[0].name, rs.rows[0][1]);
 * ```
 *
 * This module is runtime-neutral: the entry points (node.ts, web.ts, workerd.ts)
 * instantiate the wasm module their own way and then re-export everything here.
 */
import { RemoteClient } from "./wasm/edgesync.js";
import { EmbeddedReplicaClient, isLocalUrl } from "./replica.js";
import type { EmbeddedReplica, ReplicaConfig } from "./replica.js";
import { makeResultSet } from "./resultset.js";
import type { RawResultSet } from "./resultset.js";
export * from "./hub.js";

/** A value as read from the database. */
export type Value = null | string | number | bigint | Uint8Array;

/**
 * A value accepted as an argument. `boolean` is stored as 0/1, `Date` as integer
 * milliseconds, a safe-integer `number` as INTEGER and any other `number` as REAL.
 */
export type InValue = Value | boolean | ArrayBuffer | ArrayBufferView | Date | undefined;

/** Positional (`?`) or named (`:name`, `@name`, `$name`; prefix optional) arguments. */
export type InArgs = InValue[] | Record<string, InValue>;

export type InStatement = string | { sql: string; args?: InArgs } | [string, InArgs?];

/** `write`: BEGIN IMMEDIATE; `read`: BEGIN TRANSACTION READONLY; `deferred`: BEGIN DEFERRED. */
export type TransactionMode = "write" | "read" | "deferred";

/**
 * How INTEGER results are returned. `auto` (default): a `number` when it is a safe
 * integer, else a `bigint` — never a silently rounded number. `bigint`: always.
 * `string`: always a decimal string.
 */
export type IntMode = "auto" | "bigint" | "string";

export interface Config {
  /** `libsql://…`, `https://…`, `http://…` (`ws(s)://` is accepted and uses HTTP(S)). */
  url: string;
  /** A JWT for the server (Turso database token, or sqld's `--auth-jwt-key-file` key). */
  authToken?: string;
  /** Per-request timeout in ms (default 30000). */
  timeout?: number;
  intMode?: IntMode;
  /** A `fetch` to use instead of the global one (e.g. a Worker service binding). */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

/** One row: by index (`row[0]`) and by column name (`row.id`), like @libsql/client. */
export interface Row {
  length: number;
  [index: number]: Value;
  [name: string]: Value;
}

export interface ResultSet {
  columns: string[];
  /** Declared types, `""` for expressions. */
  columnTypes: string[];
  rows: Row[];
  rowsAffected: number;
  /** The rowid of the last inserted row, when the statement inserted one. */
  lastInsertRowid: bigint | undefined;
  /**
   * The libSQL server's replication index (frame number) after the statement, for
   * remote results from servers that report it; `undefined` for local results. On a
   * replica it shows how far the replica has caught up with its primary.
   */
  replicationIndex: number | undefined;
  toJSON(): unknown;
}

/** Stable error codes; see the README's error table. */
export type ErrorCode =
  | "URL_INVALID"
  | "AUTH_REQUIRED"
  | "AUTH_INVALID"
  | "PERMISSION_DENIED"
  | "SQL_SYNTAX_ERROR"
  | "SQL_CONSTRAINT"
  | "SQL_ERROR"
  | "SERVER_UNREACHABLE"
  | "TIMEOUT"
  | "SERVER_ERROR"
  | "PROTOCOL_ERROR"
  | "INVALID_ARGUMENT"
  | "CLIENT_CLOSED"
  | "DECODE_ERROR"
  | "INVALID_OPERATION"
  | "CLOCK_DRIFT"
  | "SCHEMA_ERROR"
  | "SCHEMA_MISMATCH"
  | "UNSUPPORTED_VALUE"
  | "SERVER_RESET"
  | "RESOLVER_ERROR"
  | "QUERY_UNPARSEABLE"
  | "CONFIG_ERROR"
  | "PRIMARY_UNAVAILABLE"
  | "NO_HEALTHY_REGION"
  | "SESSION_NOT_FOUND"
  | "SESSION_EXPIRED"
  | "SESSION_TAMPERED"
  | "SESSION_KEY_UNKNOWN"
  | "SESSION_CONFLICT"
  | "INTERNAL_ERROR";

/** Every error edgesync raises. Branch on `code`, never on `message`. */
export class EdgesyncError extends Error {
  declare code: ErrorCode;
  /** Whether the same call may succeed later (server unreachable, timeout, 5xx). */
  declare retryable: boolean;
  /** The server's own code, e.g. `SQLITE_CONSTRAINT`. */
  declare serverCode?: string;
  /** Index of the failing statement in a `batch`. */
  declare step?: number;
  /** HTTP status for `SERVER_ERROR`. */
  declare status?: number;

  constructor(message: string, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EdgesyncError";
    this.code = code;
    this.retryable = false;
  }
}

/** Gives errors from the wasm core the EdgesyncError prototype; wraps anything else. */
function adopt(e: unknown): EdgesyncError {
  if (e instanceof EdgesyncError) return e;
  if (e instanceof Error && (e as { code?: unknown }).code !== undefined && e.name === "EdgesyncError") {
    return Object.setPrototypeOf(e, EdgesyncError.prototype) as EdgesyncError;
  }
  // A trap in the wasm module is a bug in edgesync, never the caller's fault.
  const message = e instanceof Error ? e.message : String(e);
  return new EdgesyncError(`internal error: ${message}`, "INTERNAL_ERROR", { cause: e });
}

export interface Client {
  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  /** All statements in one transaction and one round trip: all commit or none do. */
  batch(stmts: InStatement[], mode?: TransactionMode): Promise<ResultSet[]>;
  /** Later calls reject with `CLIENT_CLOSED`. */
  close(): void;
  readonly closed: boolean;
  readonly protocol: "http";
  /** The HTTP(S) base URL after `libsql://` mapping. */
  readonly baseUrl: string;
}

class HttpClient implements Client {
  readonly protocol = "http" as const;
  #inner: RemoteClient;

  constructor(inner: RemoteClient) {
    this.#inner = inner;
  }

  async execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    const input = typeof stmt === "string" && args !== undefined ? { sql: stmt, args } : stmt;
    try {
      return makeResultSet((await this.#inner.execute(input)) as RawResultSet);
    } catch (e) {
      throw adopt(e);
    }
  }

  async batch(stmts: InStatement[], mode: TransactionMode = "deferred"): Promise<ResultSet[]> {
    try {
      const raw = (await this.#inner.batch(stmts, mode)) as RawResultSet[];
      return raw.map(makeResultSet);
    } catch (e) {
      throw adopt(e);
    }
  }

  close(): void {
    this.#inner.close();
  }

  get closed(): boolean {
    return this.#inner.closed;
  }

  get baseUrl(): string {
    return this.#inner.baseUrl;
  }
}

/**
 * Creates a client. A remote URL (`libsql://`, `https://`, `http://`) gives a client
 * for that libSQL database (sqld or Turso); `":memory:"` or `"file:…"` gives an
 * embedded replica — a local SQLite database that syncs with `syncUrl`. Throws
 * `EdgesyncError` (`URL_INVALID`, `INVALID_ARGUMENT`) at once for a bad config.
 */
export function createClient(config: ReplicaConfig & { url: ":memory:" | `file:${string}` }): EmbeddedReplica;
export function createClient(config: Config): Client;
export function createClient(config: Config | ReplicaConfig): Client | EmbeddedReplica {
  if (isLocalUrl((config as { url?: unknown } | undefined)?.url)) {
    return new EmbeddedReplicaClient(config as ReplicaConfig, adopt, makeResultSet as (raw: unknown) => ResultSet);
  }
  try {
    return new HttpClient(new RemoteClient(config as Config));
  } catch (e) {
    throw adopt(e);
  }
}
