/**
 * `createClient({ url: "file:NAME", syncUrl, … })` in a browser: a replica kept in the
 * Origin Private File System, shared by every tab of the origin.
 *
 * From a page, the client starts its own dedicated module worker (`worker.ts`, found
 * next to this file with `new URL(…, import.meta.url)` so bundlers ship it) and sends
 * it its calls, several per message when they come in the same tick; inside a
 * dedicated worker it runs the store in place. Either way the store is run by a
 * {@link ReplicaHost} (host.ts): the worker that owns it, or a follower forwarding to
 * that one.
 *
 * The API is the Node one. What differs, because the database is in another thread:
 * - `replicate()` returns a promise (errors arrive there);
 * - `status()`, `metrics()`, `metricsText()` and `siteId` return the last state the
 *   worker sent — after each write burst and sync, at most every 50 ms — and
 *   `status().persistent` is false until the store is open in OPFS;
 * - a custom resolver runs in the worker, rebuilt from its source text;
 * - BEGIN/COMMIT by hand are refused (use `batch()` or `transaction()`); a custom `fetch` works only when
 *   the client is created inside a worker;
 * - syncing is the store's, not the tab's: the owner's worker runs it with the options
 *   (`syncInterval`, `syncOnOpen`, `maxRetries`) of the tab that opened the store, and
 *   `pause()`/`resume()` from any tab pause and resume it for all (see `pause()`).
 */
import { checkClientOptions } from "../replica.js";
import type { EmbeddedReplica, Policy, ReplicaConfig, SyncEvents, SyncLogEntry, SyncMetrics, SyncResult, SyncStatus } from "../replica.js";
import type { InArgs, InStatement, ResultSet, Transaction, TransactionMode } from "../client.js";
import { adopt } from "../wasm-errors.js";
import type { BrowserGlue, Runtime } from "../runtime.js";
import type { OpenLocal } from "../client.js";
import type { ReplicaHost } from "./host.js";
import { coded, errorFrom, fromRaw } from "./protocol.js";
import { BrowserTransaction } from "./transaction.js";
import { checkMode } from "../remote.js";
import type { RawResult } from "./protocol.js";
import type { Call, State, ToPage, ToWorker } from "./protocol.js";

/** How a client reaches its host: a worker (from a page) or the host itself (in place). */
interface Link {
  send(calls: Call[]): void;
  /** Resolves once the store was given up: its calls answered, its files released. */
  close(): Promise<void>;
  /** In place: an execute run at once, when the host can (see ReplicaHost.direct). */
  direct?(stmt: InStatement, args: unknown): Promise<ResultSet> | undefined;
}

type MakeLink = (receive: (m: ToPage) => void, fail: (e: Error) => void) => Link;

const EMPTY_STATUS: Omit<SyncStatus, "persistent"> = {
  pendingChanges: 0,
  lastPush: null,
  lastPull: null,
  lagMs: 0,
  retryCount: 0,
  online: false,
  cursor: 0,
  nextSyncInMs: 0,
  writesInDoubt: 0,
  rejectedChanges: 0,
  syncing: false,
  paused: false,
  gaveUp: false,
  nextSyncAt: null,
};

/** Events the host relays without being asked (others are asked for on `on()`). */
const RELAYED = new Set(["change", "sync:completed", "sync:error", "conflict", "storage", "sync:gaveup", "sync:paused", "sync:resumed"]);

class BrowserReplica implements EmbeddedReplica {
  readonly protocol = "file" as const;
  #link: Link;
  #next = 1;
  #waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  #outbox: Call[] = [];
  #scheduled = false;
  #state: State | undefined;
  #listeners = new Map<string, Set<(d: never) => void>>();
  #closed = false;
  #released: Promise<void> | undefined;
  /** Transactions of this client still open (rolled back by close()). */
  #txs = new Set<BrowserTransaction>();
  /** `status().paused` until the worker's first state (the `paused` option). */
  #openPaused: boolean;

  /** Which link is the current one (see #bind), and the first call id made on it. */
  #generation = 0;
  #linkStart = 1;
  /** Makes the link again, for reconnect() after close(). */
  #reopen: (() => MakeLink) | undefined;

  constructor(link: MakeLink, paused = false, reopen?: () => MakeLink) {
    this.#openPaused = paused;
    this.#reopen = reopen;
    this.#link = this.#bind(link);
  }

  /**
   * Makes a link whose messages reach this client. After reconnect() an old link may
   * still speak: its answers count (they are for calls made before), its state and
   * events do not, and its failure fails only the calls made before the new link.
   */
  #bind(make: MakeLink): Link {
    const gen = ++this.#generation;
    this.#linkStart = this.#next;
    return make(
      (m) => this.#receive(m, gen === this.#generation),
      (e) => this.#fail(e, gen === this.#generation ? Infinity : this.#linkStart),
    );
  }

  #receive(m: ToPage, current: boolean): void {
    if (m.t !== "out") return;
    if (!current) m = { t: "out", replies: m.replies };
    if (m.state) this.#state = m.state;
    for (const r of m.replies ?? []) {
      const w = this.#waiting.get(r.id);
      if (w === undefined) continue;
      this.#waiting.delete(r.id);
      if (r.ok) w.resolve(r.v);
      else w.reject(errorFrom(r.e));
    }
    for (const [name, detail] of m.events ?? []) {
      for (const fn of this.#listeners.get(name) ?? []) {
        try {
          (fn as (d: unknown) => void)(detail);
        } catch {
          // A listener's exception must not break the client.
        }
      }
    }
  }

  /** Fails every call still waiting (the worker could not start or died). */
  #fail(e: Error, below = Infinity): void {
    for (const [id, w] of this.#waiting) {
      if (id >= below) continue;
      w.reject(e);
      this.#waiting.delete(id);
    }
  }

  #call(m: string, a: unknown[]): Promise<unknown> {
    if (this.#closed) return Promise.reject(coded("CLIENT_CLOSED", "the client is closed"));
    const id = this.#next++;
    const p = new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    this.#outbox.push({ id, m, a });
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
    return p;
  }

  #flush(): void {
    this.#scheduled = false;
    const calls = this.#outbox;
    this.#outbox = [];
    if (calls.length === 0) return;
    try {
      this.#link.send(calls);
    } catch {
      // Something in one call cannot be cloned (a function, a symbol): that call fails.
      for (const c of calls) {
        try {
          this.#link.send([c]);
        } catch (e) {
          this.#waiting.get(c.id)?.reject(coded("INVALID_ARGUMENT", `invalid argument: ${(e as Error)?.message ?? e}`));
          this.#waiting.delete(c.id);
        }
      }
    }
  }

  execute(stmt: InStatement, args?: InArgs): Promise<ResultSet> {
    // Not async: the in-place shortcut hands back the replica's own promise.
    if (!this.#closed && this.#outbox.length === 0 && this.#waiting.size === 0) {
      const rs = this.#link.direct?.(stmt, args);
      if (rs !== undefined) return rs;
    }
    return this.#call("execute", args === undefined ? [stmt] : [stmt, args]).then((raw) => fromRaw(raw as RawResult));
  }

  async batch(stmts: InStatement[], mode: TransactionMode = "deferred"): Promise<ResultSet[]> {
    return ((await this.#call("batch", [stmts, mode])) as RawResult[]).map(fromRaw);
  }

  /** In the browser this returns a promise: await it for errors. */
  replicate(table: string, policies: Record<string, Policy> = {}): Promise<void> {
    if (this.#closed) throw coded("CLIENT_CLOSED", "the client is closed");
    const sent: Record<string, unknown> = {};
    for (const [col, p] of Object.entries(policies ?? {})) {
      sent[col] = typeof p === "function" ? { $fn: p.toString(), name: p.name } : p;
    }
    return this.#call("replicate", [table, sent]) as Promise<void>;
  }

  sync(): Promise<SyncResult> {
    return this.#call("sync", []) as Promise<SyncResult>;
  }

  /** Adds the columns other replicas added; with statements, a deferred batch with foreign keys off (as `@libsql/client`'s). */
  migrate(): Promise<string[]>;
  migrate(stmts: InStatement[]): Promise<ResultSet[]>;
  async migrate(stmts?: InStatement[]): Promise<string[] | ResultSet[]> {
    if (stmts === undefined) return (await this.#call("migrate", [])) as string[];
    await this.execute("PRAGMA foreign_keys=off");
    try {
      return await this.batch(stmts, "deferred");
    } finally {
      if (!this.#closed) await this.execute("PRAGMA foreign_keys=on");
    }
  }

  /** SQL statements separated by semicolons, run one after the other in the store's worker. */
  async executeMultiple(sql: string): Promise<void> {
    await this.#call("executeMultiple", [sql]);
  }

  /**
   * An interactive transaction (default mode `"write"`), run by the store's owner
   * (js/browser/transaction.ts): other tabs' calls wait until it ends; this client's
   * calls outside it fail with `TRANSACTION_ACTIVE`, as on Node. Rolled back if idle
   * for 10 s, or if this client is closed first.
   */
  async transaction(mode: TransactionMode = "write"): Promise<Transaction> {
    checkMode(mode); // a RangeError, as in Node and the official client
    const link = this.#link;
    const token = (await this.#call("txBegin", [mode])) as string;
    // Closed meanwhile (its worker rolled the transaction back when it said goodbye).
    if (this.#closed || this.#link !== link) throw coded("CLIENT_CLOSED", "the client is closed");
    const tx: BrowserTransaction = new BrowserTransaction(mode, (op, args) => this.#call("tx", [token, op, ...args]), () => this.#txs.delete(tx));
    this.#txs.add(tx);
    return tx;
  }

  /**
   * Opens the store again after `close()`, as in Node (nothing to do while open): a new
   * worker takes it once the old one released it; calls made meanwhile wait for it.
   */
  reconnect(): void {
    if (!this.#closed) return;
    const reopen = this.#reopen;
    if (reopen === undefined) throw coded("INVALID_OPERATION", "invalid operation: this browser replica cannot be reopened: call createClient again");
    const released = this.#released ?? Promise.resolve();
    this.#closed = false;
    this.#released = undefined;
    this.#state = undefined;
    this.#link = this.#bind(laterLink(released, reopen));
    // Events the new worker relays only when asked.
    for (const name of this.#listeners.keys()) if (!RELAYED.has(name)) void this.#call("listen", [name]).catch(() => undefined);
  }

  /**
   * Pauses the store's syncing, for every tab: the owner's worker runs it, so a pause
   * from any tab stops it (and `resume()` from any tab restarts it); each tab's
   * `status().paused` says so and each gets `sync:paused`. A tab that takes the store
   * over keeps it paused.
   */
  pause(): Promise<void> {
    return this.#call("pause", []) as Promise<void>;
  }

  resume(): Promise<void> {
    return this.#call("resume", []) as Promise<void>;
  }

  pendingKeys(table: string): Promise<string[]> {
    return this.#call("pendingKeys", [table]) as Promise<string[]>;
  }

  status(): SyncStatus {
    if (this.#closed) throw coded("CLIENT_CLOSED", "the client is closed");
    const s = this.#state;
    return { ...EMPTY_STATUS, paused: this.#openPaused, ...(s?.status as Partial<SyncStatus>), persistent: s?.persistent ?? false, owner: s?.owner ?? false };
  }

  metrics(): SyncMetrics {
    if (this.#closed) throw coded("CLIENT_CLOSED", "the client is closed");
    return { ...(this.#state?.metrics as unknown as SyncMetrics) };
  }

  metricsText(): string {
    if (this.#closed) throw coded("CLIENT_CLOSED", "the client is closed");
    return this.#state?.metricsText ?? "";
  }

  on<E extends keyof SyncEvents>(event: E, fn: (detail: SyncEvents[E]) => void): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn as (d: never) => void);
    if (!RELAYED.has(event)) void this.#call("listen", [event]).catch(() => undefined);
    return () => set!.delete(fn as (d: never) => void);
  }

  syncLog(limit = 100): Promise<SyncLogEntry[]> {
    return this.#call("syncLog", [limit]) as Promise<SyncLogEntry[]>;
  }

  /** Calls a method of the replica in the worker (for methods this class does not wrap). */
  call(method: string, ...args: unknown[]): Promise<unknown> {
    return this.#call(method, args);
  }

  /**
   * Closes the client, as in Node: the calls already made are finished (a write this
   * tab forwarded to another tab's worker is waited for, up to 3 s), a sync or
   * write-through call in flight is cancelled (it rejects with CLIENT_CLOSED), the
   * worker checkpoints and gives the store up (another tab's worker takes it over);
   * later calls fail with CLIENT_CLOSED. The promise (never rejected) resolves once the
   * store is released; awaiting it is optional.
   */
  close(): Promise<void> {
    if (this.#released) return this.#released;
    // A transaction still open is rolled back first, so the store is not held for others.
    for (const tx of this.#txs) tx.close();
    this.#flush();
    this.#closed = true;
    // The calls made before close() (not those after a reconnect() meanwhile).
    const below = this.#next;
    const end = () => this.#fail(coded("CLIENT_CLOSED", "the client is closed"), below);
    this.#released = this.#link.close().then(end, end);
    return this.#released;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get baseUrl(): string {
    return "";
  }

  /** Known once the worker opened the store ("" before). */
  get siteId(): string {
    return this.#state?.siteId ?? "";
  }
}

/** What a page's worker needs to open the store, known once the page's module is ready. */
interface Opening {
  path: string;
  /** The page's compiled module when it is the worker's flavour (else the worker fetches its own). */
  module?: WebAssembly.Module;
}

/**
 * A worker started for the client, from a page — at once, also while the page's module
 * still loads: the worker loads its scripts (and, when the page will not hand it a
 * module, fetches and compiles its own) meanwhile, and gets `open` when `opening`
 * resolves. If `opening` rejects (a config the module refuses), the calls fail with
 * its error and the worker is stopped. If its script cannot be loaded (a bundler that
 * did not ship `worker.js`) before it said anything, `unloaded` makes the link that
 * the calls sent so far are replayed on: the worker ran none of them.
 */
function workerLink(name: string, config: Record<string, unknown>, sendsModule: boolean, opening: Promise<Opening>, unloaded?: (why: string) => MakeLink): MakeLink {
  // Made here, so that a page where it cannot be made (no module workers, a policy)
  // runs the store in place instead.
  // "../browser/worker.js", not "./worker.js": the same file from this module (pkg/browser/,
  // as `edgesync` loads it) and from the pre-bundled entries in pkg/entries/ that carry a
  // copy of this code (scripts/build.sh).
  const worker = new Worker(new URL("../browser/worker.js", import.meta.url), { type: "module", name: `edgesync ${name}` });
  return (receive, fail) => {
    const post = (m: ToWorker) => worker.postMessage(m);
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    let closed: (() => void) | undefined;
    let failed: Error | undefined;
    /** Calls sent while the worker has not said anything yet (undefined once it has). */
    let unanswered: Call[] | undefined = [];
    let instead: Link | undefined;
    const stop = () => {
      clearTimeout(killTimer);
      worker.terminate();
      closed?.();
    };
    worker.onmessage = (ev: MessageEvent<ToPage>) => {
      unanswered = undefined;
      receive(ev.data);
      if (ev.data.t === "closed") stop();
    };
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      if (unanswered !== undefined && unloaded !== undefined && failed === undefined && !ev.message) {
        // The script never ran (its file is not where the bundle says): run the store
        // here instead, in memory, and say why (status() and the `storage` event).
        const calls = unanswered;
        unanswered = undefined;
        worker.terminate();
        instead = unloaded(`edgesync's database worker could not be loaded from this page (its file browser/worker.js is not where the bundle looks for it); OPFS needs it — see docs/bundlers.md`)(receive, fail);
        if (calls.length > 0) instead.send(calls);
        return;
      }
      fail(coded("INTERNAL_ERROR", `internal error: the database worker failed: ${ev.message || "it could not be loaded"}`));
      if (closed !== undefined) stop();
    };
    if (!sendsModule) post({ t: "load" });
    opening.then(
      (o) => post({ t: "open", name: o.path, config, module: o.module }),
      (e: unknown) => {
        failed = adopt(e);
        fail(failed);
        stop();
      },
    );
    return {
      send: (calls) => {
        if (instead !== undefined) return instead.send(calls);
        if (failed !== undefined) return fail(failed);
        unanswered?.push(...calls);
        post({ t: "calls", calls });
      },
      direct: (stmt, args) => instead?.direct?.(stmt, args),
      close: () => {
        if (instead !== undefined) return instead.close();
        unloaded = undefined; // closing: a worker that fails to load now just stops
        return new Promise<void>((resolve) => {
          if (failed !== undefined) return resolve();
          closed = resolve;
          post({ t: "close" });
          // A worker that does not answer (busy in a long statement) is stopped anyway.
          killTimer = setTimeout(stop, 10_000);
        });
      },
    };
  };
}

/** The store run in this context (a dedicated worker; or a page without workers). */
function inPlaceLink(path: string, config: Omit<ReplicaConfig, "url">, rt: Runtime<BrowserGlue>, noOpfs?: string): MakeLink {
  // The host (host.ts) is loaded only here — in a worker, or a page without workers —
  // so that a page's bundle does not carry the code its worker runs.
  let Host: typeof ReplicaHost;
  const loaded = import("./host.js").then((m) => {
    Host = m.ReplicaHost;
  });
  return laterLink(loaded, () => (receive) => {
    const host = new Host(path, config, (out) => receive({ t: "out", ...out }), rt, noOpfs);
    void host.start();
    return { send: (calls) => host.submit(calls), close: () => host.close(), direct: (stmt, args) => host.direct(stmt, args) };
  });
}

let warmed = false;

/**
 * Once per page, when it is idle: opens and frees an in-memory replica, which compiles
 * SQLite's open path in the wasm module the page shares with its worker (V8 keeps one
 * compiled copy of a module sent to a worker). It runs while the worker starts, and
 * the worker's first open then takes ~10 ms instead of ~100 ms (measured in Chromium
 * 156 on a busy 2-CPU machine; bench/browser, part 5).
 */
function warmUp(rt: Runtime<BrowserGlue>): void {
  if (warmed) return;
  warmed = true;
  const run = () => {
    try {
      new rt.glue.Replica({ url: ":memory:" }).free();
    } catch {
      // Only a speed-up.
    }
  };
  const idle = (globalThis as { requestIdleCallback?: (fn: () => void, o: { timeout: number }) => void }).requestIdleCallback;
  if (idle) idle(run, { timeout: 50 });
  else setTimeout(run, 0);
}

const isPage = () => typeof window !== "undefined" && typeof document !== "undefined";
const isWorker = () => typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === "function";

/**
 * A link made once the page's module is ready (a page's `createClient` made while it
 * still loads): calls wait for it, and a failure to make the link (a config the module
 * refuses) fails them.
 */
function laterLink(ready: Promise<void>, make: () => MakeLink): MakeLink {
  return (receive, fail) => {
    let link: Link | undefined;
    let queued: Call[] = [];
    const made = ready.then(() => {
      link = make()(receive, fail);
      if (queued.length > 0) link.send(queued);
      queued = [];
    });
    made.catch((e: unknown) => fail(adopt(e)));
    return {
      send: (calls) => (link !== undefined ? link.send(calls) : queued.push(...calls)),
      close: () => made.then(() => link!.close(), () => undefined),
      direct: (stmt, args) => link?.direct?.(stmt, args),
    };
  };
}

/**
 * How a browser entry opens `file:` URLs: a replica kept in OPFS, run by a dedicated
 * worker on the `edgesync/replica` flavour of the module. `rt` is the page's own
 * module (the full or the replica flavour); `sameFlavour`, whether it is the replica
 * flavour — then the page hands its compiled module to the worker, which neither
 * fetches nor compiles it again, and warms SQLite's open path in it.
 */
export function browserReplicas(rt: Runtime<BrowserGlue>, sameFlavour: boolean): OpenLocal {
  return (config) => openBrowserReplica(rt, sameFlavour, config);
}

/**
 * The browser's `file:` replica, or undefined where this is not a browser (the caller
 * then opens the in-process one). Config errors are thrown here, as in Node, when the
 * page's module is ready: the config is checked as opening it would
 * (`checkReplicaConfig`, `checkClientOptions`); while it loads, they fail the calls.
 */
function openBrowserReplica(rt: Runtime<BrowserGlue>, sameFlavour: boolean, config: ReplicaConfig): EmbeddedReplica | undefined {
  if (!(isPage() || isWorker())) return undefined;
  if (config.url === ":memory:" || config.url === "file::memory:") return undefined;
  checkClientOptions(config);
  const { url: _url, ...rest } = config;
  const inPage = isPage() && typeof Worker === "function";
  if (inPage && rest.fetch !== undefined) {
    throw coded("INVALID_ARGUMENT", "invalid argument: a custom `fetch` cannot be passed to the database worker a page starts; create the client inside your own worker to use one");
  }
  /** The checks that need the module, and the store's OPFS path. */
  const checked = (): string => {
    let path: string | undefined;
    try {
      path = rt.glue.opfsPath(config.url);
      rt.glue.checkReplicaConfig(config);
    } catch (e) {
      throw adopt(e);
    }
    // `file:` URLs that still mean memory (opfsPath gives undefined) were returned above.
    return path ?? "";
  };
  if (isPage()) {
    // Ask the browser not to evict the origin's storage under pressure (it may say no).
    void navigator.storage?.persisted?.().then((p) => p || navigator.storage.persist?.()).catch(() => undefined);
  }
  const module = (): WebAssembly.Module | undefined => {
    if (!sameFlavour) return undefined;
    try {
      return rt.glue.compiledModule() as WebAssembly.Module;
    } catch {
      return undefined;
    }
  };
  /**
   * A page starts its worker now, even while its own module loads (the worker's
   * scripts load meanwhile instead of after): it gets the path and the module once the
   * page's module is ready and the config is checked.
   */
  /** Why the store runs in the page (in memory) although this is a page with workers. */
  let noOpfs: string | undefined;
  /** The store in the page, once `opening` gives its path: a worker that could not load. */
  const inMemory = (opening: Promise<Opening>) => (why: string): MakeLink => {
    let path = "";
    return laterLink(opening.then((o) => void (path = o.path)), () => inPlaceLink(path, rest, rt, why));
  };
  const inWorker = (opening: Promise<Opening>): MakeLink | undefined => {
    if (!inPage) return undefined;
    try {
      const link = workerLink(config.url, rest as Record<string, unknown>, sameFlavour, opening, inMemory(opening));
      if (sameFlavour) void opening.then(() => warmUp(rt), () => undefined);
      return link;
    } catch (e) {
      // No module workers here, a policy forbids them, or the bundle has no
      // `import.meta.url` to find the worker's file by (an IIFE bundle): the store runs
      // in the page, in memory, and the `storage` event and status() say so.
      noOpfs = `edgesync's database worker could not be started from this page (${(e as Error)?.message ?? e}); OPFS needs it — see docs/bundlers.md`;
      return undefined;
    }
  };
  /** The link made once the module is ready (while it loads, and again for reconnect()). */
  const whenReady = (): MakeLink => {
    const opening = rt.ready.then(() => ({ path: checked(), module: module() }));
    opening.catch(() => undefined);
    return inWorker(opening) ?? laterLink(rt.ready, () => inPlaceLink(checked(), rest, rt, noOpfs));
  };
  if (rt.isReady()) {
    const path = checked();
    if (path === "") return undefined;
    const opening = Promise.resolve({ path, module: module() });
    return new BrowserReplica(inWorker(opening) ?? inPlaceLink(path, rest, rt, noOpfs), rest.paused, whenReady);
  }
  return new BrowserReplica(whenReady(), rest.paused, whenReady);
}
