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
import { decodeResult } from "./result.js";
import { adopt } from "./wasm-errors.js";
export { EdgesyncError } from "./wasm-errors.js";
export type { ErrorCode } from "./wasm-errors.js";
import { localReplicaHooks } from "./hooks.js";
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
      return decodeResult((await this.#inner.execute(input)) as Uint8Array);
    } catch (e) {
      throw adopt(e);
    }
  }

  async batch(stmts: InStatement[], mode: TransactionMode = "deferred"): Promise<ResultSet[]> {
    try {
      const raw = (await this.#inner.batch(stmts, mode)) as Uint8Array[];
      return raw.map(decodeResult);
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
    const opened = localReplicaHooks.open?.(config as ReplicaConfig);
    if (opened !== undefined) return opened;
    return new EmbeddedReplicaClient(config as ReplicaConfig, adopt, decodeResult as (raw: unknown) => ResultSet);
  }
  try {
    return new HttpClient(new RemoteClient(config as Config));
  } catch (e) {
    throw adopt(e);
  }
}
