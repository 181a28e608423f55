/**
 * A client for the edge Worker's real-time hub (`GET /subscribe`, www/worker/src/hub.ts):
 * change events pushed over a WebSocket, e.g. to wake a replica the moment a table it
 * mirrors changes instead of polling. The frames are defined once, in ./hub-protocol.ts.
 *
 * A token may follow only the channels granted to it (docs/security.md): a user token
 * its own `user:<sub>:*` by default (ask `GET /whoami` for the exact names), a service
 * token any. `table:` and `sync:` channels are published by the worker itself.
 *
 * ```ts
 * import { connectHub } from "edgesync";
 * const hub = connectHub("https://edge.example.com", {
 *   token,                                   // a JWT, or a function returning a fresh one
 *   channels: ["user:alice:*"],
 *   onEvent: (e) => void replica.sync(),     // {channel, seq, data, ts}
 *   onReset: () => void replica.sync(),      // history was pruned: resync fully
 * });
 * hub.publish("user:alice:notes", { hello: "world" });
 * hub.close();
 * ```
 *
 * The connection reconnects by itself (exponential backoff with jitter) and resumes
 * where it left off (`since` = the last seq seen), so no event is missed; events are
 * delivered once each, in seq order. When the hub no longer has the missed events it
 * says so and `onReset` runs. In Node < 22 pass a WebSocket implementation
 * (`WebSocket: (await import("ws")).WebSocket`).
 */

import type { ClientFrame, EventFrame, HubFrame, SyncAnnouncement } from "./hub-protocol.js";

export * from "./hub-protocol.js";

/** One event of the hub. */
export type HubEvent = Omit<EventFrame, "type">;

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
  /** Channels to follow (granted to the token), or a `prefix*` wildcard. */
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
    let m: HubFrame;
    try {
      m = JSON.parse(text) as HubFrame;
    } catch {
      return;
    }
    switch (m?.type) {
      case "event":
        if (typeof m.seq !== "number" || m.seq <= cursor) return; // already delivered
        cursor = m.seq;
        opts.onEvent({ channel: m.channel, seq: m.seq, data: m.data, ts: m.ts });
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
          s.send(JSON.stringify({ type: "ping" } satisfies ClientFrame));
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
      const frame = JSON.stringify({ type: "publish", channel, data } satisfies ClientFrame);
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
  /** The replica's site id: its own pushes, announced back, do not wake it. */
  readonly siteId?: string;
  /** Once true, announcements no longer wake the replica (the hub connection closes). */
  readonly closed?: boolean;
}

export interface SyncOnHubOptions extends Omit<HubOptions, "channels" | "onEvent"> {
  /** The replicated tables to listen for (channels `sync:<table>`; the token must be granted them). */
  tables: string[];
  /** Called with each wake-up sync's result or error (errors never escape otherwise). */
  onSync?: (result: { changesPushed: number; changesApplied: number } | undefined, error?: unknown) => void;
  /** `fetch` for `POST /sync/notify` (default: the global one). */
  fetch?: typeof fetch;
}

export interface SyncOnHub {
  /** `replica.sync()`, and when it pushed changes, `POST /sync/notify` so the worker wakes the others. */
  sync(): Promise<{ changesPushed: number; changesApplied: number }>;
  close(): void;
  readonly hub: HubConnection;
}

/**
 * Wakes replicas through the real-time hub instead of waiting for their next
 * `syncInterval`: after `sync()` through the returned object pushed changes, the worker
 * is asked to announce them (`POST /sync/notify`); it reads the server's change log and
 * publishes `sync:<table>` for each table with new records — only the worker writes
 * those channels, so nobody can make replicas sync on demand without changing data. An
 * announcement makes every other replica on that table sync at once (one sync at a
 * time; announcements that arrive meanwhile fold into one more).
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
  const { tables, onSync, fetch: fetchImpl, ...hubOpts } = opts;
  const base = url.replace(/\/+$/, "");
  const doFetch = fetchImpl ?? globalThis.fetch;
  let running: Promise<unknown> | undefined;
  let again = false;
  // The caller's onSync must not turn a wake-up into an unhandled rejection.
  const report = (r: { changesPushed: number; changesApplied: number } | undefined, e?: unknown): void => {
    try {
      onSync?.(r, e);
    } catch {
      /* the caller's bug must not stop the wake-ups */
    }
  };
  const wake = (): void => {
    if (replica.closed) {
      hub.close(); // a closed replica is never called again
      return;
    }
    if (running) {
      again = true;
      return;
    }
    running = replica
      .sync()
      .then(
        (r) => report(r),
        (e) => report(undefined, e),
      )
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
      const site = (e.data as Partial<SyncAnnouncement> | null)?.site;
      if (site === undefined || site !== replica.siteId) wake();
    },
  });
  const notify = async (): Promise<void> => {
    const token = typeof hubOpts.token === "function" ? await hubOpts.token() : hubOpts.token;
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await doFetch(`${base}/sync/notify`, { method: "POST", headers, body: "{}" });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`POST /sync/notify answered ${res.status}`);
  };
  return {
    hub,
    async sync() {
      const r = await replica.sync();
      if (r.changesPushed > 0) {
        // The data is pushed either way; a failed announcement only delays the others.
        await notify().catch((e) => hubOpts.onError?.(e));
      }
      return r;
    },
    close: () => hub.close(),
  };
}
