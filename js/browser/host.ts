/**
 * One store shared by every tab of an origin: the part of a browser replica that runs
 * in a dedicated worker (the package's own, started by a page, or the application's,
 * when `createClient` is called inside one).
 *
 * Every worker that opens database NAME asks for the Web Lock `edgesync:NAME`. The one
 * holding it is the *owner*: it takes the OPFS files (js/browser/opfs.ts), opens the
 * replica — an ordinary `EmbeddedReplicaClient` on the OPFS VFS — and runs every tab's
 * calls. The others are *followers*: they forward their client's calls on the
 * `BroadcastChannel` `edgesync:NAME` and relay the answers, events and state. When the
 * owner's tab closes, reloads or crashes, the browser releases its lock and the next
 * worker in the lock's queue becomes the owner; it announces itself, and every
 * follower sends the calls still unanswered again (js/browser/follower.ts).
 *
 * A call sent again must not run twice: a write the old owner committed just before
 * dying has no answer yet. How a forwarded write runs once: js/browser/run.ts.
 *
 * Where OPFS, Web Locks or BroadcastChannel are missing (an insecure context, some
 * private modes, a page with an opaque origin), the replica lives in memory in this
 * worker alone, and says so: `status().persistent === false` and a `storage` event.
 */
import type { InStatement, ResultSet } from "../client.js";
import { EmbeddedReplicaClient } from "../replica.js";
import type { ReplicaConfig } from "../replica.js";
import type { BrowserGlue, Runtime } from "../runtime.js";
import { expandConfig } from "../url.js";
import { adopt, retiredError } from "../wasm-errors.js";
import { opfsFiles, whyNoOpfs } from "./opfs.js";
import { coded, errorData, isTransactionControl, postReplies } from "./protocol.js";
import type { Call, Forwarded, OnChannel, Out, Reply, State } from "./protocol.js";
import { Forwarder } from "./follower.js";
import type { Kept } from "./follower.js";
import { forgetAnswers, keepAnswers, refuse, revive, runCall, sqlOf, stateOf } from "./run.js";
import type { From, Owned } from "./run.js";
import { callerOf, TxSlot } from "./tx-slot.js";
import { SetAside } from "./set-aside.js";

/** Where a host sends what its own client gets: answers, events and state, together. */
export type HostSink = (out: Out) => void;

/** Events every owner relays (other names are relayed once a client listens to them). */
const EVENTS = ["change", "sync:completed", "sync:error", "conflict", "sync:gaveup", "sync:paused", "sync:resumed"];
/** Least time between two state pushes (each counts the outbox). */
const STATE_EVERY_MS = 50;

export class ReplicaHost {
  /** This worker, as an origin of forwarded calls (random; `randomUUID` needs a secure context). */
  readonly origin: string = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
  #path: string;
  #config: Omit<ReplicaConfig, "url">;
  #sink: HostSink;
  #role: "starting" | "follower" | "opening" | "owner" | "failed" | "closed" = "starting";
  #persistent = false;
  #fallback: string | undefined;
  #channel: BroadcastChannel | undefined;
  /** Whether this host took OPFS handles (released on close). */
  #hasFiles = false;
  #client: EmbeddedReplicaClient | undefined;
  #failure: Error | undefined;
  /** Own calls not answered yet, forwarded while another worker owns the store. */
  #own = new Forwarder(this.origin, () => this.#scheduleFlush());
  /** Own `replicate` calls that succeeded, replayed when this worker takes over. */
  #replicated = new Map<string, Record<string, unknown>>();
  #listening = new Set(EVENTS);
  #stopLock = new AbortController();
  #unlock: (() => void) | undefined;
  #replies: Reply[] = [];
  /** Events and state for this worker's own client, sent with the next flush. */
  #events: [string, unknown][] = [];
  #stateOut: State | undefined;
  /** Followers this owner heard from: events and state go on the channel only for them. */
  #followers = new Set<string>();
  #flushing = false;
  #stateDirty = false;
  #stateAt = 0;
  #stateTimer: ReturnType<typeof setTimeout> | undefined;
  #storageAnnounced = false;
  /** A follower: whether the owner's last state said paused (kept when taking over). */
  #ownerPaused: boolean | undefined;
  /** The owner's call queue (see #enqueue). */
  #queue: Queued[] = [];
  /** The interactive transaction open on the store, if any (js/browser/tx-slot.ts). */
  #txs = new TxSlot(this.origin, () => {
    this.#markDirty(); // the state deferred while it was open
    this.#aside.release();
  });
  /** Calls held behind a transaction, or a transaction() waiting for a sync (set-aside.ts). */
  #aside = new SetAside<Queued>((items) => {
    this.#queue.unshift(...items);
    if (!this.#pumping) void this.#pump();
  });
  #pumping = false;
  /** Answers to followers, by origin, sent at the next flush. */
  #answers = new Map<string, Reply[]>();
  /** close()'s promise, once called. */
  #closing: Promise<void> | undefined;
  readonly #rt: Runtime<BrowserGlue>;
  readonly #noOpfs: string | undefined;

  /**
   * `path`: the database's OPFS path (`opfsPath`); `rt`: the module this context runs the
   * store in (a worker's replica flavour, or the page's); `noOpfs`: why the store cannot
   * be in OPFS here, known before looking (a page whose worker could not start).
   */
  constructor(path: string, config: Omit<ReplicaConfig, "url">, sink: HostSink, rt: Runtime<BrowserGlue>, noOpfs?: string) {
    [this.#path, this.#config, this.#sink, this.#rt, this.#noOpfs] = [path, config, sink, rt, noOpfs];
  }

  /** Chooses shared OPFS or private memory, then takes the store or follows its owner. */
  async start(): Promise<void> {
    this.#fallback = this.#noOpfs ?? (await whyNoOpfs());
    if (this.#role === "closed") return;
    if (this.#fallback !== undefined) {
      await this.#becomeOwner();
      return;
    }
    const channel = new BroadcastChannel(`edgesync:${this.#path}`);
    channel.onmessage = (ev: MessageEvent<OnChannel>) => this.#onChannel(ev.data);
    this.#channel = channel;
    this.#role = "follower";
    channel.postMessage({ t: "hello", origin: this.origin } satisfies OnChannel);
    this.#own.resend();
    // Followers stay in the lock's queue: the first in it takes over when the owner goes.
    navigator.locks
      .request(`edgesync:${this.#path}`, { signal: this.#stopLock.signal }, async () => {
        if (this.#role === "closed") return;
        await new Promise<void>((release) => {
          this.#unlock = release;
          void this.#becomeOwner();
        });
      })
      .catch(() => {
        // Aborted by close() while waiting.
      });
    this.#flushForward();
  }


  // ---- calls of this worker's own client -----------------------------------------

  submit(calls: Call[]): void {
    for (const c of calls) {
      if (this.#role === "closed") {
        this.#reply({ id: c.id, ok: false, e: errorData(coded("CLIENT_CLOSED", "the client is closed")) });
        continue;
      }
      if (c.m === "listen") {
        this.#listen(String(c.a[0]));
        this.#reply({ id: c.id, ok: true, v: undefined });
        continue;
      }
      const refused = refuse(c);
      if (refused) {
        this.#reply({ id: c.id, ok: false, e: errorData(refused) });
        continue;
      }
      if (this.#role === "owner") {
        this.#runOwn(c, false);
      } else if (this.#role === "failed") {
        this.#reply({ id: c.id, ok: false, e: errorData(this.#failure) });
      } else {
        this.#own.keep(c, this.#role === "follower");
      }
    }
  }

  /**
   * The in-place client's shortcut: an execute run at once on the owned replica,
   * returning its ResultSet — when nothing is queued or unanswered before it, so the
   * order of calls and answers is the one the queue would give. Undefined otherwise.
   */
  direct(stmt: InStatement, args: unknown): Promise<ResultSet> | undefined {
    if (this.#role !== "owner" || this.#pumping || this.#queue.length > 0 || this.#replies.length > 0 || this.#config.writeMode === "remote" || this.#txs.active) {
      return undefined;
    }
    const sql = sqlOf(stmt);
    if (typeof sql !== "string" || isTransactionControl(sql)) return undefined;
    // Run now, answered with a settled promise: no promise chained per call.
    try {
      return Promise.resolve(this.#client!.executeNow(stmt as string, args as undefined));
    } catch (e) {
      this.#retireOnTrap();
      return Promise.reject(e);
    }
  }

  #runOwn(c: Kept, dedupe: boolean): void {
    this.#enqueue(c, dedupe ? { origin: this.origin, low: this.#own.low() } : null, (r) => {
      if (r.ok && c.m === "replicate") this.#replicated.set(c.a[0] as string, c.a[1] as Record<string, unknown>);
      this.#reply(r);
    });
  }

  #listen(name: string): void {
    if (this.#listening.has(name)) return;
    this.#listening.add(name);
    if (this.#client) this.#subscribe(name);
    else if (this.#role === "follower") this.#own.forward({ id: 0, m: "listen", a: [name] });
  }

  // ---- the owner ------------------------------------------------------------------

  /**
   * Takes the files and opens the replica. If that fails (the files held by code other
   * than edgesync's for 10 s, a database that is not SQLite…), this worker keeps the
   * lock and answers every call with the error: the other tabs would fail the same way.
   */
  async #becomeOwner(): Promise<void> {
    if (this.#role === "closed") return;
    this.#role = "opening";
    try {
      await this.#open();
    } catch (e) {
      this.#failure = adopt(e);
      this.#role = "failed";
      for (const c of this.#own.drain()) this.#reply({ id: c.id, ok: false, e: errorData(this.#failure) });
      this.#scheduleFlush();
      return;
    }
    if (this.#role !== "opening") return; // closed meanwhile
    this.#role = "owner";
    this.#channel?.postMessage({ t: "owner", origin: this.origin } satisfies OnChannel);
    // The tables this page declared, again in the new owner. It succeeded where it first
    // ran; failing now (the table dropped or changed since), writes to that table would
    // no longer be captured with nothing said: the page hears it as a `sync:error`
    // naming the table (docs/replicas.md, "Many tabs, one store").
    for (const [table, pol] of this.#replicated) {
      try {
        this.#client!.replicate(table, revive(pol));
      } catch (e) {
        const err = adopt(e);
        this.#event("sync:error", {
          code: err.code,
          message: `replicate("${table}") again in the tab that took over the store failed: ${err.message}`,
          retryable: false,
        });
      }
    }
    // Own calls that waited, in order; those another owner may have run are deduplicated.
    for (let c = this.#own.next(); c !== undefined; c = this.#own.next()) this.#runOwn(c, c.forwarded === true);
    // Old answers are forgotten once the first calls are answered, not on the way to them.
    if (this.#persistent) {
      setTimeout(() => {
        if (this.#role === "owner") this.#enqueue(forgetAnswers(), null, () => undefined);
      }, 0);
    }
    this.#announceStorage();
    this.#markDirty();
  }

  async #open(): Promise<void> {
    let url = ":memory:";
    if (this.#fallback === undefined) {
      await opfsFiles.prepare(this.#path);
      this.#hasFiles = true;
      this.#rt.glue.useOpfs(opfsFiles);
      url = `file:${this.#path}`;
    }
    if (this.#role !== "opening") {
      this.#releaseFiles();
      return;
    }
    let client: EmbeddedReplicaClient;
    try {
      // The store stays paused when its owner changes (pause() is the store's, not a tab's).
      const paused = this.#ownerPaused ?? this.#config.paused;
      const config = { ...this.#config, url, paused };
      client = new EmbeddedReplicaClient(this.#rt, config, expandConfig(config));
    } catch (e) {
      this.#releaseFiles();
      throw e;
    }
    this.#client = client;
    this.#persistent = this.#fallback === undefined;
    if (this.#persistent) {
      await keepAnswers(client);
    }
    for (const name of this.#listening) this.#subscribe(name);
  }

  #subscribe(name: string): void {
    this.#client!.on(name as "change", (detail) => {
      this.#emit(name, detail);
      this.#markDirty();
    });
  }

  #emit(name: string, detail: unknown): void {
    this.#event(name, detail);
    if (this.#followers.size > 0) this.#channel?.postMessage({ t: "event", name, detail } satisfies OnChannel);
  }

  /** An event for this worker's own client, sent with the next flush. */
  #event(name: string, detail: unknown): void {
    this.#events.push([name, detail]);
    this.#scheduleFlush();
  }

  /**
   * Runs the owner's calls one after the other, in the order they came (from this
   * worker's client and from the followers). A deduplicated write is one transaction
   * from BEGIN to COMMIT across several `await`s, and nothing may run inside it: the
   * next call starts when the previous one has finished — or, for `sync()` and other
   * methods that wait on the network, when it has started (its local steps run at its
   * start and in later tasks, never inside another call's transaction, which ends
   * within the task it began in). Answers are sent when the queue is drained: the calls
   * of one message are answered in one message.
   */
  #enqueue(c: Call, from: From | null, answer: (r: Reply) => void): void {
    this.#queue.push({ c, from, answer });
    if (!this.#pumping) void this.#pump();
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      for (let item = this.#queue.shift(); item !== undefined; item = this.#queue.shift()) {
        const { c, from, answer } = item;
        const ok = (v: unknown) => answer({ id: c.id, ok: true, v });
        const fail = (e: unknown) => {
          answer({ id: c.id, ok: false, e: errorData(e) });
          this.#retireOnTrap();
        };
        // While a transaction holds the store, other clients' calls wait for its end.
        const caller = callerOf(from, this.origin);
        const admitted = this.#role === "owner" ? this.#txs.admits(c, caller) : "run";
        if (admitted === "hold") {
          this.#aside.hold(item);
          continue;
        }
        if (admitted === "refuse") {
          fail(coded("TRANSACTION_ACTIVE", "A transaction is active on this client: commit, roll back or close it first"));
          continue;
        }
        const syncing = c.m === "txBegin" && this.#role === "owner" ? this.#client!.syncInFlight() : undefined;
        if (syncing !== undefined) {
          this.#aside.park(item, syncing); // begins after the sync, the queue going on
          continue;
        }
        if (c.m === "txBegin" || c.m === "tx") {
          try {
            if (this.#role !== "owner") throw (this.#role === "failed" && this.#failure) || coded("CLIENT_CLOSED", "the client is closed");
            ok(await this.#txs.call(this.#client!, c, from, caller, this.#persistent && from !== null));
          } catch (e) {
            fail(e);
          }
          this.#markDirty();
          continue;
        }
        let started: Promise<unknown>;
        try {
          started = runCall(this.#owned(), c, from);
        } catch (e) {
          fail(e);
          continue;
        }
        if (c.m === "execute" || c.m === "batch" || c.m === "replicate" || c.m === "state") {
          // A write-through call waits on the server: what is answered goes out first.
          if (this.#config.writeMode === "remote") this.#flush();
          try {
            ok(await started);
          } catch (e) {
            fail(e);
          }
        } else {
          // sync() and the like: their callers read status() next, so the new state
          // goes out first.
          const fresh = () => {
            this.#stateDirty = true;
            this.#flushState(true);
          };
          started.then(
            (v) => (fresh(), ok(v)),
            (e) => (fresh(), fail(e)),
          );
        }
      }
    } finally {
      this.#pumping = false;
    }
    this.#flush();
  }

  // ---- the channel ----------------------------------------------------------------

  #onChannel(m: OnChannel): void {
    switch (m.t) {
      case "req":
        if (this.#role === "owner") this.#serve(m.calls);
        else if (this.#role === "failed") {
          for (const c of m.calls) this.#answer(c.origin, { id: c.id, ok: false, e: errorData(this.#failure) });
        }
        // Other roles ignore it: the caller sends it again to the next owner.
        break;
      case "res":
        if (m.to !== this.origin) break;
        for (const r of m.replies) {
          const c = this.#own.answered(r.id);
          if (c === undefined) continue; // answered already (a call sent twice)
          if (r.ok && c.m === "replicate") this.#replicated.set(c.a[0] as string, c.a[1] as Record<string, unknown>);
          this.#reply(r);
        }
        break;
      case "owner":
        // A new owner: everything unanswered goes again, in order, and the events this
        // client listens to.
        if (this.#role !== "follower") break;
        this.#channel!.postMessage({ t: "hello", origin: this.origin } satisfies OnChannel);
        for (const name of this.#listening) if (!EVENTS.includes(name)) this.#own.forward({ id: 0, m: "listen", a: [name] });
        this.#own.resend();
        break;
      case "hello":
        // A new follower (or one that saw this owner take over) wants the state now,
        // and the events from now on.
        this.#followers.add(m.origin);
        if (this.#role === "owner") {
          this.#stateDirty = true;
          this.#stateAt = 0;
          this.#flushState();
        }
        break;
      case "bye": {
        // A follower closed. Its calls not run yet were answered CLIENT_CLOSED in its
        // tab (after its close() waited 3 s for them): they must not run now — held
        // behind a transaction, they would commit after that answer. A transaction it
        // still holds (begun while it closed) is rolled back now, not after 10 s idle.
        this.#followers.delete(m.origin);
        this.#aside.dropFrom(m.origin);
        this.#queue = this.#queue.filter((q) => q.from?.origin !== m.origin);
        if (this.#role === "owner") this.#txs.endHeldBy(m.origin);
        break;
      }
      case "event":
        if (this.#role === "follower" || this.#role === "opening") this.#event(m.name, m.detail);
        break;
      case "state":
        if (this.#role === "follower") {
          this.#persistent = m.state.persistent;
          this.#ownerPaused = m.state.status.paused === true;
          this.#stateOut = { ...m.state, owner: false };
          this.#scheduleFlush();
          this.#announceStorage();
        }
        break;
    }
  }

  /** Runs calls forwarded by another worker; the answers go back on the channel. */
  #serve(calls: Forwarded[]): void {
    for (const c of calls) {
      this.#followers.add(c.origin);
      if (c.m === "listen") {
        this.#listen(String(c.a[0]));
        continue;
      }
      const answer = (r: Reply) => this.#answer(c.origin, r);
      const refused = refuse(c);
      if (refused) answer({ id: c.id, ok: false, e: errorData(refused) });
      else this.#enqueue(c, { origin: c.origin, low: c.low }, answer);
    }
  }

  #answer(to: string, r: Reply): void {
    // An owner that gave the store up (closed, or retired by a trap) answers no more: the
    // follower sends the call again to the next owner (a write that committed here is
    // answered there from _es_requests).
    if (this.#role === "closed" || this.#channel === undefined) return;
    let list = this.#answers.get(to);
    if (!list) this.#answers.set(to, (list = []));
    list.push(r);
    this.#scheduleFlush();
  }

  // ---- state and flushing ---------------------------------------------------------

  /** What running a call needs from this owner (js/browser/run.ts). */
  #owned(): Owned {
    return {
      client: this.#client!,
      persistent: this.#persistent,
      writeMode: this.#config.writeMode,
      changed: () => this.#markDirty(),
      state: () => this.#state(),
    };
  }

  #state(): State {
    return stateOf(this.#client!, this.#persistent, this.#fallback === undefined);
  }

  #markDirty(): void {
    this.#stateDirty = true;
    if (this.#stateTimer === undefined) {
      const wait = Math.max(0, this.#stateAt + STATE_EVERY_MS - performance.now());
      this.#stateTimer = setTimeout(() => {
        this.#stateTimer = undefined;
        this.#flushState(true);
      }, wait);
    }
  }

  /**
   * Pushes the state if it changed and the last push is old enough (else the timer will).
   * Not while a transaction is open: the store's counts (`pendingChanges`…) would include
   * its uncommitted writes, for every tab; its end pushes the state.
   */
  #flushState(force = false): void {
    if (!this.#stateDirty || this.#role !== "owner" || this.#txs.active) return;
    if (!force && performance.now() - this.#stateAt < STATE_EVERY_MS) return;
    this.#stateDirty = false;
    this.#stateAt = performance.now();
    let state: State;
    try {
      state = this.#state();
    } catch {
      return; // closed meanwhile
    }
    this.#stateOut = state;
    this.#scheduleFlush();
    if (this.#followers.size > 0) {
      const { owner: _owner, ...shared } = state;
      this.#channel?.postMessage({ t: "state", state: shared } satisfies OnChannel);
    }
  }

  #announceStorage(): void {
    if (this.#storageAnnounced) return;
    this.#storageAnnounced = true;
    const detail = this.#fallback === undefined ? { persistent: this.#persistent } : { persistent: false, reason: this.#fallback };
    this.#event("storage", detail);
  }

  #reply(r: Reply): void {
    this.#replies.push(r);
    this.#scheduleFlush();
    this.#own.replied();
  }

  /** Flushes in a microtask, unless the queue is being pumped (it flushes when drained). */
  #scheduleFlush(): void {
    if (this.#flushing || this.#pumping) return;
    this.#flushing = true;
    queueMicrotask(() => {
      this.#flushing = false;
      if (!this.#pumping) this.#flush();
    });
  }

  /** One message to this worker's client: the state (computed by its timer, at most
   *  every 50 ms: it counts the outbox), answers, events. */
  #flush(): void {
    const out: Out = {};
    if (this.#stateOut) out.state = this.#stateOut;
    if (this.#replies.length > 0) out.replies = this.#replies;
    if (this.#events.length > 0) out.events = this.#events;
    this.#stateOut = undefined;
    this.#replies = [];
    this.#events = [];
    if (out.state || out.replies || out.events) this.#sink(out);
    for (const [to, replies] of this.#answers) if (this.#channel !== undefined) postReplies(this.#channel, to, replies);
    this.#answers.clear();
    this.#flushForward();
  }


  #flushForward(): void {
    if (this.#role === "follower") this.#own.flush(this.#channel!);
  }

  // ---- closing --------------------------------------------------------------------

  /**
   * Closes the replica, as `close()` does in Node: what this worker's client already
   * called is finished — a follower waits (up to 3 s) for the answers to the writes it
   * forwarded, so a write is not reported CLIENT_CLOSED while the owner commits it —
   * and a sync or write-through call in flight is cancelled (CLIENT_CLOSED). An owner
   * then checkpoints and gives the files and the lock up. Resolves once they are
   * released, every call of this worker's client answered.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    if (this.#role === "follower" || this.#role === "starting" || this.#role === "opening") await this.#own.settle();
    const wasOwner = this.#role === "owner";
    this.#role = "closed";
    for (const c of this.#own.drain()) this.#reply({ id: c.id, ok: false, e: errorData(coded("CLIENT_CLOSED", "the client is closed")) });
    // The owner drops what of ours it has not run (answered CLIENT_CLOSED just now).
    if (!wasOwner) this.#channel?.postMessage({ t: "bye", origin: this.origin } satisfies OnChannel);
    if (this.#stateTimer !== undefined) clearTimeout(this.#stateTimer);
    try {
      // Cancels a sync or write-through call in flight; resolves when they ended.
      if (this.#client && retiredError(this.#client) === undefined) await this.#client.close();
    } finally {
      // A transaction went with the store (the client rolled it back); the calls held
      // for it are answered now (CLIENT_CLOSED; a follower's go to the next owner).
      this.#txs.drop();
      this.#aside.release();
      this.#releaseFiles();
      this.#stopLock.abort();
      this.#unlock?.();
      this.#flush(); // the last answers, to this worker's client and to followers
      if (wasOwner || this.#channel) this.#channel?.close();
      this.#channel = undefined;
    }
  }

  /**
   * A trap in the owned replica (out of memory, a bug) retired its client
   * (js/wasm-errors.ts): its state may be half-changed, so nothing more runs on it. The
   * store is handed on as if this tab had crashed — the OPFS handles closed (SQLite's
   * uncommitted frames are ignored by the next open), the lock released, the channel
   * left — and this worker's client gets INTERNAL_ERROR naming the first from now on.
   * Other tabs go on: the next worker in the lock's queue takes the store over.
   */
  #retireOnTrap(): void {
    if (this.#role !== "owner" || this.#client === undefined) return;
    const err = retiredError(this.#client);
    if (err === undefined) return;
    this.#failure = err;
    this.#flush(); // answers already made go out before the channel is left
    this.#role = "failed";
    this.#txs.drop();
    this.#aside.release();
    if (this.#stateTimer !== undefined) clearTimeout(this.#stateTimer);
    this.#channel?.close();
    this.#channel = undefined;
    this.#releaseFiles();
    this.#stopLock.abort();
    this.#unlock?.();
  }

  #releaseFiles(): void {
    if (this.#hasFiles) opfsFiles.release(this.#path);
    this.#hasFiles = false;
  }
}

/** A call waiting in the owner's queue, and where its answer goes. */
interface Queued {
  c: Call;
  from: From | null;
  answer: (r: Reply) => void;
}

