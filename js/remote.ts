/**
 * The remote client: a libSQL server (sqld, Turso) over HTTP (`http(s)://`, `libsql://`)
 * or over a WebSocket (`ws(s)://`), with the API and behaviour of `@libsql/client`'s
 * `HttpClient` / `WsClient`. The protocol is in Rust (src/remote/, src/wasm/client.rs,
 * src/wasm/ws.rs); this module packs statements (args.ts), reads results (result.ts),
 * limits concurrency, runs transactions' calls in order, and owns the WebSocket.
 */
import type * as Full from "./wasm/edgesync.js";
import type { Client, Config, InArgs, InStatement, Replicated, ResultSet, Transaction, TransactionMode } from "./types.js";
import type { Expanded } from "./url.js";
import type { RemoteGlue, Runtime } from "./runtime.js";
import { encodeStatement, encodeStatements } from "./args.js";
import { decodeResult } from "./result.js";
import { adoptClient, coded } from "./wasm-errors.js";
import { WsConnection } from "./ws.js";

type RemoteTarget = Extract<Expanded["target"], { kind: "remote" }>;
type Stmts = Array<InStatement | [string, InArgs?]>;

const MODES = ["write", "read", "deferred"];

/** The official client's error for a batch or transaction mode it does not know. */
export function checkMode(mode: unknown): asserts mode is TransactionMode {
  if (!MODES.includes(mode as string)) {
    throw new RangeError('Unknown transaction mode, supported values are "write", "read" and "deferred"');
  }
}

/**
 * A remote transaction with a mode it does not know: as in the official client, it is
 * created, and its first statement fails (the mode becomes its `BEGIN`).
 */
function badModeTransaction(): TransactionOps {
  const fail = () => Promise.reject(new RangeError('Unknown transaction mode, supported values are "write", "read" and "deferred"'));
  return { execute: fail, batch: fail, sequence: fail, commit: async () => {}, rollback: async () => {}, close: () => {}, closed: false };
}

/** At most `max` calls in flight (0: no limit), as `@libsql/client`'s `concurrency`. */
export class Limiter {
  #max: number;
  #running = 0;
  #waiting: Array<() => void> = [];

  constructor(max: number) {
    this.#max = max;
  }

  run<T>(f: () => Promise<T>): Promise<T> {
    if (this.#max === 0 || this.#running < this.#max) return this.#start(f);
    return new Promise<void>((resolve) => this.#waiting.push(resolve)).then(() => this.#start(f));
  }

  async #start<T>(f: () => Promise<T>): Promise<T> {
    this.#running++;
    try {
      return await f();
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }
}

/** Checks the parts of a config the wasm module would refuse, so `createClient` throws them at once. */
export function checkRemoteConfig(config: Config): void {
  const t = config.timeout;
  if (t !== undefined && t !== null && !(Number.isInteger(t) && t >= 1 && t <= 4294967295)) {
    throw coded("INVALID_ARGUMENT", "invalid argument: `timeout` must be a whole number of milliseconds ≥ 1");
  }
  if (config.fetch !== undefined && config.fetch !== null && typeof config.fetch !== "function") {
    throw coded("INVALID_ARGUMENT", "invalid argument: `fetch` must be a function");
  }
  if (config.authToken !== undefined && config.authToken !== null && !/^[\x21-\x7e]*$/.test(String(config.authToken))) {
    throw coded("INVALID_ARGUMENT", "invalid argument: authToken contains characters that cannot be sent in an HTTP header");
  }
}

/** What a transaction does on its stream, for `TransactionImpl`. */
export interface TransactionOps {
  /** A statement, as a batch of one: its result bytes in a one-element array. */
  execute(sql: string, args: Uint8Array): Promise<unknown>;
  batch(stmts: Uint8Array): Promise<unknown>;
  sequence(sql: string): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  close(): void;
  readonly closed: boolean;
}

/**
 * An interactive transaction: its calls run one after the other (a stream takes one
 * request at a time), each started when the previous one settled.
 */
export class TransactionImpl implements Transaction {
  #ops: TransactionOps;
  #queue: Promise<unknown> = Promise.resolve();
  #real: boolean;
  #closed = false;

  constructor(ops: TransactionOps, real: boolean) {
    this.#ops = ops;
    this.#real = real;
  }

  #next<T>(f: () => Promise<T>): Promise<T> {
    const run = () => {
      if (this.#closed || this.#ops.closed) {
        throw coded("TRANSACTION_CLOSED", "Cannot execute statements because the transaction is closed");
      }
      return f();
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p.catch((e) => {
      throw adoptClient(e);
    });
  }

  execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    return this.#next(async () => {
      const [sql, packed] = encodeStatement(stmt, args, this.#real);
      const raw = (await this.#ops.execute(sql, packed)) as Uint8Array[];
      return decodeResult(raw[0]);
    });
  }

  batch(stmts: Stmts): Promise<ResultSet[]> {
    return this.#next(async () => ((await this.#ops.batch(encodeStatements(stmts, this.#real))) as Uint8Array[]).map(decodeResult));
  }

  executeMultiple(sql: string): Promise<void> {
    return this.#next(() => this.#ops.sequence(sql));
  }

  commit(): Promise<void> {
    const p = this.#queue.then(() => {
      if (this.#closed || this.#ops.closed) {
        throw coded("TRANSACTION_CLOSED", "Cannot commit the transaction because it is already closed");
      }
      return this.#ops.commit();
    });
    this.#queue = p.catch(() => undefined);
    return p.finally(() => this.#settle()).catch((e) => {
      throw adoptClient(e);
    });
  }

  rollback(): Promise<void> {
    const p = this.#queue.then(() => (this.#closed ? undefined : this.#ops.rollback()));
    this.#queue = p.catch(() => undefined);
    return p.finally(() => this.#settle()).catch((e) => {
      throw adoptClient(e);
    });
  }

  #settle(): void {
    this.#closed = true;
    this.#ops.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // After the calls already made (a stream takes one at a time).
    void this.#queue.then(() => this.#ops.close());
  }

  get closed(): boolean {
    return this.#closed || this.#ops.closed;
  }
}

/** The calls `RemoteClient` (HTTP) and `WsSession` (WebSocket) both take. */
interface StatementTarget {
  execute(sql: string, args: Uint8Array): Promise<unknown>;
  batch(stmts: Uint8Array, mode?: string | null): Promise<unknown>;
  migrate(stmts: Uint8Array): Promise<unknown>;
  sequence(sql: string): Promise<unknown>;
}

/** What the HTTP and WebSocket clients share: config, readiness, the concurrency limit, the calls. */
abstract class RemoteBase implements Client {
  abstract readonly protocol: "http" | "ws";
  protected rt: Runtime<RemoteGlue>;
  protected config: Config;
  protected target: RemoteTarget;
  protected intMode: string;
  protected real: boolean;
  #limit: Limiter;

  constructor(rt: Runtime<RemoteGlue>, config: Config, expanded: Expanded) {
    this.rt = rt;
    this.config = config;
    this.target = expanded.target as RemoteTarget;
    this.intMode = expanded.intMode;
    this.real = config.numberArgs === "real";
    this.#limit = new Limiter(expanded.concurrency);
  }

  /** Runs `f` once the module is ready, within the concurrency limit; errors adopted. */
  protected call<T>(f: () => Promise<T>): Promise<T> {
    const run = this.rt.isReady() ? f : () => this.rt.ready.then(f);
    return this.#limit.run(run).catch((e) => {
      throw adoptClient(e);
    });
  }

  /** The wasm object the calls go to (made, or reconnected, on demand). */
  protected abstract inner(): StatementTarget;
  abstract transaction(mode?: TransactionMode): Promise<Transaction>;
  abstract close(): void;
  abstract reconnect(): void | Promise<void>;
  abstract readonly closed: boolean;

  execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    return this.call(async () => {
      const target = this.inner();
      const [sql, packed] = encodeStatement(stmt, args, this.real);
      return decodeResult((await target.execute(sql, packed)) as Uint8Array);
    });
  }

  batch(stmts: Stmts, mode: TransactionMode = "deferred"): Promise<ResultSet[]> {
    return this.call(async () => {
      checkMode(mode);
      const target = this.inner();
      return ((await target.batch(encodeStatements(stmts, this.real), mode)) as Uint8Array[]).map(decodeResult);
    });
  }

  migrate(stmts: InStatement[]): Promise<ResultSet[]> {
    return this.call(async () => {
      const target = this.inner();
      return ((await target.migrate(encodeStatements(stmts, this.real))) as Uint8Array[]).map(decodeResult);
    });
  }

  executeMultiple(sql: string): Promise<void> {
    return this.call(async () => {
      await this.inner().sequence(sql);
    });
  }

  sync(): Promise<Replicated> {
    throw coded("SYNC_NOT_SUPPORTED", `sync not supported in ${this.protocol} mode`);
  }
}

/** The remote client over HTTP. */
export class HttpClient extends RemoteBase {
  readonly protocol = "http" as const;
  #inner: Full.RemoteClient | undefined;
  #closed = false;

  constructor(rt: Runtime<RemoteGlue>, config: Config, expanded: Expanded) {
    super(rt, config, expanded);
    // Made now where the module is ready (Node, Workers), else at the first call.
    if (rt.isReady()) this.inner();
  }

  protected inner(): Full.RemoteClient {
    if (this.#closed) throw coded("CLIENT_CLOSED", "The client is closed");
    if (this.#inner === undefined) {
      try {
        this.#inner = new this.rt.glue.RemoteClient({
          url: this.target.base,
          authToken: this.target.authToken,
          timeout: this.config.timeout,
          intMode: this.intMode,
          fetch: this.config.fetch,
        });
      } catch (e) {
        throw adoptClient(e);
      }
    }
    return this.#inner;
  }

  transaction(mode: TransactionMode = "write"): Promise<Transaction> {
    return this.call(async () => {
      const client = this.inner();
      if (!MODES.includes(mode)) return new TransactionImpl(badModeTransaction(), this.real);
      return new TransactionImpl(client.transaction(mode) as unknown as TransactionOps, this.real);
    });
  }

  close(): void {
    this.#closed = true;
    this.#inner?.close();
  }

  reconnect(): void {
    this.#inner?.close();
    this.#inner = undefined;
    this.#closed = false;
    if (this.rt.isReady()) this.inner();
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** The remote client over a WebSocket (Hrana over WebSocket), reconnecting when it drops. */
export class WsClient extends RemoteBase {
  readonly protocol = "ws" as const;
  #conn: WsConnection | undefined;
  #closed = false;

  constructor(rt: Runtime<RemoteGlue>, config: Config, expanded: Expanded) {
    super(rt, config, expanded);
    if (rt.WebSocket === undefined && typeof globalThis.WebSocket === "undefined" && config.WebSocket === undefined) {
      const http = this.target.base;
      throw coded(
        "WEBSOCKETS_NOT_SUPPORTED",
        `This environment does not support WebSockets, please switch to the HTTP client by using a "${http.split(":")[0]}:" URL (${JSON.stringify(http)}), or pass \`WebSocket\` in the config`,
      );
    }
    // Connect now where the module is ready: the handshake overlaps the caller's work.
    if (rt.isReady()) this.inner();
  }

  /** The session of a live connection: a new one when there is none or it failed. */
  protected inner(): Full.WsSession {
    if (this.#closed) throw coded("CLIENT_CLOSED", "The client is closed");
    if (this.#conn === undefined || !this.#conn.open) {
      this.#conn?.close();
      const ws = this.config.WebSocket ?? this.rt.WebSocket ?? globalThis.WebSocket;
      const url = this.target.base.replace(/^http/, "ws");
      this.#conn = new WsConnection(this.rt.glue, ws as never, url, this.target.authToken, this.intMode);
    }
    return this.#conn.session;
  }

  transaction(mode: TransactionMode = "write"): Promise<Transaction> {
    return this.call(async () => {
      const s = this.inner();
      if (!MODES.includes(mode)) return new TransactionImpl(badModeTransaction(), this.real);
      return new TransactionImpl(wsTransaction(s, s.openStream(), mode), this.real);
    });
  }

  close(): void {
    this.#closed = true;
    this.#conn?.close();
  }

  async reconnect(): Promise<void> {
    this.#conn?.close();
    this.#conn = undefined;
    this.#closed = false;
    await this.rt.ready;
    this.inner();
  }

  get closed(): boolean {
    return this.#closed;
  }
}

/** A transaction on stream `id` of a WebSocket session. */
function wsTransaction(s: Full.WsSession, id: number, mode: TransactionMode): TransactionOps {
  let begun = false;
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      s.closeStream(id);
    }
  };
  /** The first call sends `BEGIN`; if that fails the transaction is closed. */
  const first = async <T>(f: (begin: string | undefined) => Promise<T>): Promise<T> => {
    const begin = begun ? undefined : mode;
    begun = true;
    try {
      return await f(begin);
    } catch (e) {
      if (begin !== undefined && (e as { statementIndex?: number }).statementIndex === undefined) close();
      throw e;
    }
  };
  const end = async (sql: string) => {
    if (begun && !closed) {
      try {
        await s.streamRun(id, sql);
      } finally {
        close();
      }
    }
    close();
  };
  return {
    execute: (sql, args) => first((begin) => s.streamExecute(id, sql, args, begin)),
    batch: (stmts) => first((begin) => s.streamBatch(id, stmts, begin)),
    sequence: (sql) =>
      first(async (begin) => {
        if (begin !== undefined) await s.streamRun(id, beginSql(begin));
        await s.streamSequence(id, sql);
      }),
    commit: () => end("COMMIT"),
    rollback: () => end("ROLLBACK"),
    close,
    get closed() {
      return closed || !s.isOpen;
    },
  };
}

function beginSql(mode: string): string {
  return mode === "write" ? "BEGIN IMMEDIATE" : mode === "read" ? "BEGIN TRANSACTION READONLY" : "BEGIN DEFERRED";
}

/** The remote client for `config` (over HTTP or a WebSocket, as its URL says). */
export function remoteClient(rt: Runtime<RemoteGlue>, config: Config, expanded: Expanded): Client {
  checkRemoteConfig(config);
  const target = expanded.target as RemoteTarget;
  return target.websocket ? new WsClient(rt, config, expanded) : new HttpClient(rt, config, expanded);
}
