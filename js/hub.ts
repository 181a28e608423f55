/**
 * A client for the edge Worker's real-time hub (`GET /subscribe`, www/worker/src/hub.ts):
 * change events pushed over a WebSocket, e.g. to wake a replica the moment a table it
 * mirrors changes instead of polling.
 *
 * ```ts
 * import { connectHub } from "edgesync";
 * const hub = connectHub("https://edge.example.com", {
 *   token,                                   // a JWT, or a function returning a fresh one
 *   channels: ["table:todos"],
 *   onEvent: (e) => void replica.sync(),     // {channel, seq, data, ts}
 *   onReset: () => void replica.sync(),      // history was pruned: resync fully
 * });
 * hub.publish("room:1", { hello: "world" });
 * hub.close();
 * ```
 *
 * The connection reconnects by itself (exponential backoff with jitter) and resumes
 * where it left off (`since` = the last seq seen), so no event is missed; events are
 * delivered once each, in seq order. When the hub no longer has the missed events it
 * says so and `onReset` runs. In Node < 22 pass a WebSocket implementation
 * (`WebSocket: (await import("ws")).WebSocket`).
 */

/** One event of the hub. */
export interface HubEvent {
  channel: string;
  /** The hub's version of this event: increases by one per event across all channels. */
  seq: number;
  data: unknown;
  /** When the hub stored it (ms since the epoch). */
  ts: number;
}

/** The part of a WebSocket the client uses (the WHATWG API; `ws` in Node also fits). */
export interface HubSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export type HubSocketConstructor = new (url: string) => HubSocket;

export interface HubOptions {
  /** A JWT for the worker, or a function returning one (called before every connect). */
  token?: string | (() => string | Promise<string>);
  /** Channels to follow: `table:<name>`, any name of yours, or a `prefix*` wildcard. */
  channels: string[];
  /** Resume after this seq (a cursor saved from `seq`); default: only new events. */
  since?: number;
  onEvent: (e: HubEvent) => void;
  /** Events after the cursor were pruned by the hub: the caller must resync fully. */
  onReset?: () => void;
  /** Subscribed (after every connect), with the hub's latest seq. */
  onReady?: (seq: number) => void;
  /** A connection failed or dropped (it is retried). */
  onError?: (error: unknown) => void;
  /** A WebSocket implementation, when there is no global one (Node < 22). */
  WebSocket?: HubSocketConstructor | typeof WebSocket;
  /** Reconnect backoff: first delay and cap, ms (default 250 and 30,000). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Ping period, ms (default 30,000; 0 disables): a silent connection is reopened. */
  pingIntervalMs?: number;
}

export interface HubConnection {
  /** Stops for good (no reconnect). */
  close(): void;
  /** The highest seq delivered (or acknowledged by `ready`): the resume cursor. */
  readonly seq: number;
  /** Whether the socket is subscribed right now. */
  readonly connected: boolean;
  /** Publishes an event; queued while disconnected and sent on reconnect. */
  publish(channel: string, data: unknown): void;
}

const OPEN = 1;
const MAX_QUEUED = 1000;

function textOf(data: unknown): string | undefined {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return undefined;
}

/** Connects to `<url>/subscribe` and keeps following `opts.channels` until close(). */
export function connectHub(url: string, opts: HubOptions): HubConnection {
  const Found = (opts.WebSocket ?? (globalThis as { WebSocket?: HubSocketConstructor }).WebSocket) as HubSocketConstructor | undefined;
  if (!Found) throw new TypeError("connectHub: no global WebSocket; pass one as opts.WebSocket (e.g. from the ws package)");
  if (!Array.isArray(opts.channels) || opts.channels.length === 0) throw new TypeError("connectHub: channels must be a non-empty array");
  const Socket: HubSocketConstructor = Found;
  const minDelay = opts.minDelayMs ?? 250;
  const maxDelay = opts.maxDelayMs ?? 30_000;
  const pingEvery = opts.pingIntervalMs ?? 30_000;
  const base = url.replace(/^http(s?):/i, "ws$1:").replace(/\/+$/, "");

  let cursor = opts.since ?? -1; // -1: no cursor yet (start with what is new)
  let ws: HubSocket | undefined;
  let ready = false;
  let closed = false;
  let attempt = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let pingTimer: ReturnType<typeof setInterval> | undefined;
  let heardSincePing = true;
  const queue: string[] = [];

  const report = (e: unknown) => {
    try {
      opts.onError?.(e);
    } catch {
      /* the caller's bug must not stop the client */
    }
  };

  async function subscribeUrl(): Promise<string> {
    const q = new URLSearchParams({ channels: opts.channels.join(",") });
    if (cursor >= 0) q.set("since", String(cursor));
    const token = typeof opts.token === "function" ? await opts.token() : opts.token;
    if (token) q.set("access_token", token);
    return `${base}/subscribe?${q}`;
  }

  function scheduleReconnect(): void {
    if (closed || retryTimer !== undefined) return;
    const cap = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 20));
    const delay = cap / 2 + Math.random() * (cap / 2); // "equal jitter"
    attempt++;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void open();
    }, delay);
  }

  /** Abandons the current socket (if any) and reconnects. */
  function drop(reason: unknown): void {
    const s = ws;
    ws = undefined;
    ready = false;
    if (pingTimer !== undefined) clearInterval(pingTimer);
    pingTimer = undefined;
    if (s) {
      s.onopen = s.onmessage = s.onclose = s.onerror = null;
      try {
        s.close(1000, "reconnecting");
      } catch {
        /* not open */
      }
    }
    if (reason !== undefined) report(reason);
    scheduleReconnect();
  }

  function onFrame(text: string): void {
    let m: { type?: string; seq?: number; channel?: string; data?: unknown; ts?: number; code?: string; message?: string };
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    switch (m.type) {
      case "event":
        if (typeof m.seq !== "number" || m.seq <= cursor) return; // already delivered
        cursor = m.seq;
        opts.onEvent({ channel: m.channel as string, seq: m.seq, data: m.data, ts: m.ts as number });
        return;
      case "reset":
        if (typeof m.seq === "number") cursor = m.seq;
        opts.onReset?.();
        return;
      case "ready":
        ready = true;
        attempt = 0;
        if (typeof m.seq === "number" && m.seq > cursor) cursor = m.seq;
        while (queue.length > 0 && ws?.readyState === OPEN) ws.send(queue.shift() as string);
        opts.onReady?.(cursor);
        return;
      case "error":
        report(new Error(`hub error ${m.code}: ${m.message}`));
        return;
    }
  }

  async function open(): Promise<void> {
    if (closed) return;
    let target: string;
    try {
      target = await subscribeUrl();
    } catch (e) {
      return drop(e);
    }
    if (closed) return;
    let s: HubSocket;
    try {
      s = new Socket(target);
    } catch (e) {
      return drop(e);
    }
    ws = s;
    heardSincePing = true;
    s.onmessage = (ev) => {
      heardSincePing = true;
      const text = textOf(ev.data);
      if (text === undefined) return;
      try {
        onFrame(text);
      } catch (e) {
        report(e); // a throwing callback must not kill the connection
      }
    };
    s.onclose = (ev) => {
      if (ws === s) drop(new Error(`hub connection closed (${ev?.code ?? "?"}${ev?.reason ? ` ${ev.reason}` : ""})`));
    };
    s.onerror = (ev) => {
      if (ws === s) drop(ev instanceof Error ? ev : new Error(`hub connection error: ${(ev as { message?: string })?.message ?? "failed"}`));
    };
    if (pingEvery > 0) {
      pingTimer = setInterval(() => {
        if (ws !== s || s.readyState !== OPEN) return;
        if (!heardSincePing) return drop(new Error("hub connection went silent"));
        heardSincePing = false;
        try {
          s.send('{"type":"ping"}');
        } catch {
          /* closing */
        }
      }, pingEvery);
      (pingTimer as { unref?: () => void }).unref?.();
    }
  }

  void open();

  return {
    close() {
      closed = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      retryTimer = undefined;
      if (pingTimer !== undefined) clearInterval(pingTimer);
      pingTimer = undefined;
      const s = ws;
      ws = undefined;
      ready = false;
      if (s) {
        s.onopen = s.onmessage = s.onclose = s.onerror = null;
        try {
          s.close(1000, "closed");
        } catch {
          /* not open */
        }
      }
    },
    get seq() {
      return Math.max(cursor, 0);
    },
    get connected() {
      return ready;
    },
    publish(channel: string, data: unknown) {
      if (closed) throw new Error("connectHub: publish after close()");
      const frame = JSON.stringify({ type: "publish", channel, data });
      if (ready && ws?.readyState === OPEN) ws.send(frame);
      else {
        if (queue.length >= MAX_QUEUED) throw new Error("connectHub: too many events queued while disconnected");
        queue.push(frame);
      }
    },
  };
}

/** What `syncOnHub` needs of a replica: `createClient({ url: ":memory:", syncUrl })` fits. */
export interface SyncingReplica {
  sync(): Promise<{ changesPushed: number; changesApplied: number }>;
}

export interface SyncOnHubOptions extends Omit<HubOptions, "channels" | "onEvent"> {
  /** The replicated tables to announce and listen for (channels `sync:<table>`). */
  tables: string[];
  /** Called with each wake-up sync's result or error (errors never escape otherwise). */
  onSync?: (result: { changesPushed: number; changesApplied: number } | undefined, error?: unknown) => void;
}

export interface SyncOnHub {
  /** `replica.sync()`, and when it pushed changes, a wake-up for the other replicas. */
  sync(): Promise<{ changesPushed: number; changesApplied: number }>;
  close(): void;
  readonly hub: HubConnection;
}

/**
 * Wakes replicas through the real-time hub instead of waiting for their next
 * `syncInterval`: `sync()` through the returned object announces pushed changes on
 * `sync:<table>`, and an announcement from another replica makes this one sync at once
 * (one sync at a time; announcements that arrive meanwhile fold into one more).
 *
 * ```ts
 * const db = createClient({ url: ":memory:", syncUrl, authToken, syncInterval: 60 });
 * db.replicate("todos");
 * const live = syncOnHub(db, "https://edge.example.com", { token, tables: ["todos"] });
 * await db.execute("insert into todos (id, title) values (1, 'milk')");
 * await live.sync(); // pushed: every other replica on "todos" pulls it now
 * ```
 */
export function syncOnHub(replica: SyncingReplica, url: string, opts: SyncOnHubOptions): SyncOnHub {
  const { tables, onSync, ...hubOpts } = opts;
  // Our own announcements come back to us: recognized by this id and skipped.
  const self = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  let running: Promise<unknown> | undefined;
  let again = false;
  const wake = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = replica
      .sync()
      .then((r) => onSync?.(r), (e) => onSync?.(undefined, e))
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          wake();
        }
      });
  };
  const hub = connectHub(url, {
    ...hubOpts,
    channels: tables.map((t) => `sync:${t}`),
    onEvent: (e) => {
      const from = (e.data as { from?: unknown } | null)?.from;
      if (from !== self) wake();
    },
  });
  return {
    hub,
    async sync() {
      const r = await replica.sync();
      if (r.changesPushed > 0) {
        for (const t of tables) hub.publish(`sync:${t}`, { from: self, changesPushed: r.changesPushed });
      }
      return r;
    },
    close: () => hub.close(),
  };
}
