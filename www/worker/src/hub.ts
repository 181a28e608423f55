/**
 * The real-time hub: one SQLite-backed Durable Object (`RealtimeHub`, binding `HUB`,
 * instance "global") that stores change events and fans them out over WebSockets.
 *
 * Every event gets a monotonically increasing `seq` (its version) and is kept in
 * `events` for catch-up: the last `HUB_RETENTION_EVENTS` events (default 10,000) no older
 * than `HUB_RETENTION_MS` (default 24 h). Sockets use the Hibernation API, so an idle hub
 * costs nothing; each socket's subscriptions live in its attachment.
 *
 * Protocol (JSON text frames, at most 64 KiB):
 *
 *   client → {"type":"subscribe","channels":["table:todos","room:*"],"since":123?}
 *            adds channels; with `since`, first replays (in seq order) the retained events
 *            on them with seq > since — preceded by {"type":"reset","seq"} instead when
 *            some of those were already pruned (or `since` is ahead of the hub): the
 *            client must resync fully. Always answered by {"type":"ready","seq":<latest>}.
 *   client → {"type":"unsubscribe","channels":[…]}          → {"type":"unsubscribed","channels"}
 *   client → {"type":"publish","channel","data","id"?}      → {"type":"published","seq","id"?}
 *   client → {"type":"ping"}                                → {"type":"pong"}
 *   hub    → {"type":"event","channel","seq","data","ts"}   to every subscriber
 *   hub    → {"type":"error","code","message"}              bad frame; the socket stays open
 *
 * The upgrade URL takes the first subscription too: `/subscribe?channels=a,b&since=5`;
 * every new socket gets `ready` (after its replay) once it is live.
 * Channel names are 1–200 characters without control characters or commas; a
 * subscription may end in `*` to match every channel with that prefix (`table:*`).
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env.js";
import { HttpError, errorResponse, json } from "./http.js";

export interface HubStats {
  /** Connected WebSockets. */
  sockets: number;
  /** Events retained for catch-up. */
  events: number;
  /** The latest event's seq (0 before the first). */
  lastSeq: number;
  /** Events published since the hub was created. */
  published: number;
}

const MAX_CHANNEL_CHARS = 200;
const MAX_FRAME_BYTES = 64 * 1024;
/** Largest `data` of one event, as JSON text. */
const MAX_DATA_BYTES = 64 * 1024;
const MAX_CHANNELS_PER_SOCKET = 100;
/** serializeAttachment() takes at most 2,048 bytes. */
const MAX_ATTACHMENT_BYTES = 2000;
const DEFAULT_RETENTION_EVENTS = 10_000;
const DEFAULT_RETENTION_MS = 24 * 3600_000;
/** Channels with their own prune watermark before they collapse into the global one. */
const MAX_WATERMARKS = 10_000;

/** Why a channel name is unusable, or undefined when it is fine. */
function channelProblem(channel: unknown, allowWildcard: boolean): string | undefined {
  if (typeof channel !== "string") return "a channel must be a string";
  if (channel.length === 0 || channel.length > MAX_CHANNEL_CHARS) return `a channel must be 1–${MAX_CHANNEL_CHARS} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f,]/.test(channel)) return "a channel must not contain control characters or commas";
  const star = channel.indexOf("*");
  if (star !== -1 && !(allowWildcard && star === channel.length - 1)) {
    return allowWildcard ? "`*` is only allowed as the last character of a subscription" : "a published channel must not contain `*`";
  }
  return undefined;
}

function positiveInt(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new HttpError(500, "CONFIG_ERROR", `${name} must be a positive integer`);
  return n;
}

function hubStub(env: Env): DurableObjectStub {
  return env.HUB.get(env.HUB.idFromName("global"));
}

/** A non-2xx answer of the hub as the HttpError it stands for. */
async function hubError(res: Response): Promise<HttpError> {
  const text = await res.text();
  try {
    const { error } = JSON.parse(text) as { error: { code: string; message: string } };
    return new HttpError(res.status, error.code, error.message);
  } catch {
    return new HttpError(res.status >= 500 ? 502 : res.status, "HUB_ERROR", `hub answered ${res.status}: ${text.slice(0, 200)}`);
  }
}

/** GET /subscribe: hands the WebSocket upgrade to the hub (426 without `Upgrade: websocket`). */
export async function subscribe(request: Request, env: Env): Promise<Response> {
  if ((request.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new HttpError(426, "UPGRADE_REQUIRED", "GET /subscribe needs a WebSocket upgrade (Upgrade: websocket)");
  }
  return hubStub(env).fetch(request);
}

/** Stores an event on `channel` and sends it to every subscriber; returns its seq. */
export async function publish(env: Env, channel: string, data: unknown): Promise<{ channel: string; seq: number }> {
  const problem = channelProblem(channel, false);
  if (problem) throw new HttpError(400, "BAD_REQUEST", problem);
  const res = await hubStub(env).fetch("https://hub/publish", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ channel, data: data === undefined ? null : data }),
  });
  if (!res.ok) throw await hubError(res);
  return (await res.json()) as { channel: string; seq: number };
}

/** The hub's gauges for /metrics. */
export async function hubStats(env: Env): Promise<HubStats> {
  const res = await hubStub(env).fetch("https://hub/stats");
  if (!res.ok) throw await hubError(res);
  return (await res.json()) as HubStats;
}

/** What a socket remembers across hibernation (serializeAttachment). */
interface Attachment {
  id: string;
  channels: string[];
}

class BadMessage extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function errorFrame(code: string, message: string): string {
  return JSON.stringify({ type: "error", code, message });
}

function trySend(ws: WebSocket, text: string): void {
  try {
    ws.send(text);
  } catch {
    /* closing or closed: its webSocketClose/Error cleans up */
  }
}

export class RealtimeHub extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private lastSeq = 0;
  private published = 0;
  /** Every event up to this seq may have been pruned on any channel. */
  private prunedAll = 0;
  private sincePrune = 0;
  private readonly retentionEvents: number;
  private readonly retentionMs: number;
  /** Live sockets by id, and the ids subscribed to each exact channel / wildcard prefix. */
  private readonly sockets = new Map<string, { ws: WebSocket; channels: Set<string> }>();
  private readonly exact = new Map<string, Set<string>>();
  private readonly prefixes = new Map<string, Set<string>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.retentionEvents = positiveInt(env.HUB_RETENTION_EVENTS, DEFAULT_RETENTION_EVENTS, "HUB_RETENTION_EVENTS");
    this.retentionMs = positiveInt(env.HUB_RETENTION_MS, DEFAULT_RETENTION_MS, "HUB_RETENTION_MS");
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        data TEXT NOT NULL,
        ts INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS events_channel_seq ON events (channel, seq);
      CREATE TABLE IF NOT EXISTS hub_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        published INTEGER NOT NULL,
        pruned_all INTEGER NOT NULL
      );
      INSERT OR IGNORE INTO hub_state (id, last_seq, published, pruned_all) VALUES (1, 0, 0, 0);
      CREATE TABLE IF NOT EXISTS pruned (
        channel TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
      ) WITHOUT ROWID;
    `);
    const state = this.sql.exec<{ last_seq: number; published: number; pruned_all: number }>(
      "SELECT last_seq, published, pruned_all FROM hub_state WHERE id = 1",
    ).one();
    const maxSeq = this.sql.exec<{ m: number | null }>("SELECT max(seq) AS m FROM events").one().m ?? 0;
    this.lastSeq = Math.max(state.last_seq, maxSeq);
    this.published = state.published;
    this.prunedAll = state.pruned_all;
    // Sockets that outlived a hibernation: rebuild the fan-out index from their attachments.
    for (const ws of ctx.getWebSockets()) {
      const a = ws.deserializeAttachment() as Attachment | null;
      if (a?.id) this.index(a.id, ws, a.channels);
    }
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('{"type":"ping"}', '{"type":"pong"}'));
    this.prune(Date.now());
  }

  // ---- HTTP ---------------------------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url);
      const route = `${request.method} ${url.pathname}`;
      if (url.pathname === "/subscribe" && request.method === "GET") return this.accept(request, url);
      if (route === "POST /publish") {
        let body: { channel?: unknown; data?: unknown };
        try {
          body = (await request.json()) as typeof body;
        } catch {
          throw new HttpError(400, "BAD_JSON", "publish body is not JSON");
        }
        const problem = channelProblem(body?.channel, false);
        if (problem) throw new HttpError(400, "BAD_REQUEST", problem);
        const dataText = JSON.stringify(body.data === undefined ? null : body.data);
        if (dataText.length > MAX_DATA_BYTES) throw new HttpError(413, "EVENT_TOO_LARGE", `event data exceeds ${MAX_DATA_BYTES} bytes`);
        const seq = this.store(body.channel as string, dataText);
        return json({ channel: body.channel, seq });
      }
      if (route === "GET /stats") return json(this.stats());
      throw new HttpError(404, "NOT_FOUND", `no hub route for ${route}`);
    } catch (e) {
      return errorResponse(e);
    }
  }

  /** The WebSocket upgrade; `?channels=a,b&since=n` subscribes at once. */
  private accept(request: Request, url: URL): Response {
    if ((request.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
      throw new HttpError(426, "UPGRADE_REQUIRED", "GET /subscribe needs a WebSocket upgrade (Upgrade: websocket)");
    }
    const channels = url.searchParams
      .getAll("channels")
      .flatMap((v) => v.split(","))
      .filter((c) => c !== "");
    for (const c of channels) {
      const problem = channelProblem(c, true);
      if (problem) throw new HttpError(400, "BAD_REQUEST", `${problem}: ${JSON.stringify(c.slice(0, 60))}`);
    }
    const sinceRaw = url.searchParams.get("since");
    let since: number | undefined;
    if (sinceRaw !== null && sinceRaw !== "") {
      since = Number(sinceRaw);
      if (!Number.isSafeInteger(since) || since < 0) throw new HttpError(400, "BAD_REQUEST", "since must be a non-negative integer");
    }
    const unique = [...new Set(channels)];
    if (unique.length > MAX_CHANNELS_PER_SOCKET) throw new HttpError(400, "BAD_REQUEST", `at most ${MAX_CHANNELS_PER_SOCKET} channels per socket`);
    const attachment: Attachment = { id: crypto.randomUUID(), channels: unique };
    if (JSON.stringify(attachment).length > MAX_ATTACHMENT_BYTES) {
      throw new HttpError(400, "BAD_REQUEST", "the channel names are too long in total for one socket");
    }

    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment(attachment);
    this.index(attachment.id, server, unique);
    this.catchUp(server, unique, since); // always ends with `ready`: the socket is live
    return new Response(null, { status: 101, webSocket: client });
  }

  // ---- WebSocket events (Hibernation API) ---------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      if (typeof message !== "string") throw new BadMessage("BAD_MESSAGE", "binary frames are not supported: send JSON text");
      // UTF-16 length ≤ UTF-8 length ≤ 3 × UTF-16 length: encode only when it matters.
      const tooLarge =
        message.length > MAX_FRAME_BYTES ||
        (message.length * 3 > MAX_FRAME_BYTES && new TextEncoder().encode(message).byteLength > MAX_FRAME_BYTES);
      if (tooLarge) {
        throw new BadMessage("FRAME_TOO_LARGE", `frames are limited to ${MAX_FRAME_BYTES} bytes`);
      }
      let msg: unknown;
      try {
        msg = JSON.parse(message);
      } catch {
        throw new BadMessage("BAD_MESSAGE", "the frame is not JSON");
      }
      if (msg === null || typeof msg !== "object" || Array.isArray(msg)) throw new BadMessage("BAD_MESSAGE", "the frame must be a JSON object");
      const m = msg as Record<string, unknown>;
      switch (m.type) {
        case "ping":
          trySend(ws, '{"type":"pong"}');
          return;
        case "subscribe":
          return this.onSubscribe(ws, m);
        case "unsubscribe":
          return this.onUnsubscribe(ws, m);
        case "publish":
          return this.onPublish(ws, m);
        default:
          throw new BadMessage("BAD_MESSAGE", `unknown message type ${JSON.stringify(m.type)?.slice(0, 40)}`);
      }
    } catch (e) {
      if (e instanceof BadMessage) trySend(ws, errorFrame(e.code, e.message));
      else {
        console.error("hub: unexpected error handling a frame", e);
        trySend(ws, errorFrame("INTERNAL_ERROR", e instanceof Error ? e.message : String(e)));
      }
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.forget(ws);
    // Answer the client's close handshake, or workerd reports a hung worker.
    try {
      ws.close(code === 1005 || code === 1006 || code === 1015 ? 1000 : code, reason);
    } catch {
      /* already closed */
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.forget(ws);
    try {
      ws.close(1011, "error");
    } catch {
      /* already closed */
    }
  }

  // ---- protocol -----------------------------------------------------------------------

  private attachmentOf(ws: WebSocket): Attachment {
    const a = ws.deserializeAttachment() as Attachment | null;
    if (a?.id) {
      if (!this.sockets.has(a.id)) this.index(a.id, ws, a.channels);
      return a;
    }
    // Not accepted by this hub (should not happen): adopt it.
    const fresh: Attachment = { id: crypto.randomUUID(), channels: [] };
    ws.serializeAttachment(fresh);
    this.index(fresh.id, ws, []);
    return fresh;
  }

  private channelsOf(m: Record<string, unknown>): string[] {
    const list = m.channels;
    if (!Array.isArray(list) || list.length === 0) throw new BadMessage("BAD_MESSAGE", "channels must be a non-empty array of strings");
    for (const c of list) {
      const problem = channelProblem(c, true);
      if (problem) throw new BadMessage("BAD_MESSAGE", `${problem}: ${JSON.stringify(String(c).slice(0, 60))}`);
    }
    return [...new Set(list as string[])];
  }

  private onSubscribe(ws: WebSocket, m: Record<string, unknown>): void {
    const channels = this.channelsOf(m);
    let since: number | undefined;
    if (m.since !== undefined && m.since !== null) {
      if (typeof m.since !== "number" || !Number.isSafeInteger(m.since) || m.since < 0) {
        throw new BadMessage("BAD_MESSAGE", "since must be a non-negative integer");
      }
      since = m.since;
    }
    const a = this.attachmentOf(ws);
    const merged = [...new Set([...a.channels, ...channels])];
    if (merged.length > MAX_CHANNELS_PER_SOCKET) throw new BadMessage("TOO_MANY_CHANNELS", `at most ${MAX_CHANNELS_PER_SOCKET} channels per socket`);
    const next: Attachment = { id: a.id, channels: merged };
    if (JSON.stringify(next).length > MAX_ATTACHMENT_BYTES) {
      throw new BadMessage("TOO_MANY_CHANNELS", "the channel names are too long in total for one socket");
    }
    ws.serializeAttachment(next);
    this.index(a.id, ws, merged);
    this.catchUp(ws, channels, since);
  }

  private onUnsubscribe(ws: WebSocket, m: Record<string, unknown>): void {
    const channels = this.channelsOf(m);
    const a = this.attachmentOf(ws);
    const drop = new Set(channels);
    const next: Attachment = { id: a.id, channels: a.channels.filter((c) => !drop.has(c)) };
    ws.serializeAttachment(next);
    this.index(a.id, ws, next.channels);
    trySend(ws, JSON.stringify({ type: "unsubscribed", channels }));
  }

  private onPublish(ws: WebSocket, m: Record<string, unknown>): void {
    const problem = channelProblem(m.channel, false);
    if (problem) throw new BadMessage("BAD_MESSAGE", problem);
    const dataText = JSON.stringify(m.data === undefined ? null : m.data);
    if (dataText.length > MAX_DATA_BYTES) throw new BadMessage("EVENT_TOO_LARGE", `event data exceeds ${MAX_DATA_BYTES} bytes`);
    const id = typeof m.id === "string" || typeof m.id === "number" ? m.id : undefined;
    this.attachmentOf(ws);
    const seq = this.store(m.channel as string, dataText);
    trySend(ws, JSON.stringify(id === undefined ? { type: "published", seq } : { type: "published", seq, id }));
  }

  /**
   * Replays what a (re)subscribing socket missed on `channels` since `since`, or tells it
   * to resync (`reset`) when that history is gone; then `ready` with the latest seq. Runs
   * without awaiting, so no publish can slip in between the replay and `ready`.
   */
  private catchUp(ws: WebSocket, channels: string[], since: number | undefined): void {
    if (since !== undefined && channels.length > 0) {
      if (since > this.lastSeq || this.prunedSince(channels, since)) {
        trySend(ws, JSON.stringify({ type: "reset", seq: this.lastSeq }));
      } else if (since < this.lastSeq) {
        const { where, args } = this.matchClause(channels);
        const rows = this.sql
          .exec<{ seq: number; channel: string; data: string; ts: number }>(
            `SELECT seq, channel, data, ts FROM events WHERE seq > ? AND (${where}) ORDER BY seq`,
            since,
            ...args,
          )
          .raw();
        for (const [seq, channel, data, ts] of rows as IterableIterator<[number, string, string, number]>) {
          trySend(ws, eventFrame(channel, seq, data, ts));
        }
      }
    }
    trySend(ws, JSON.stringify({ type: "ready", seq: this.lastSeq }));
  }

  /** SQL matching `channel` against exact names and `prefix*` wildcards. */
  private matchClause(channels: string[]): { where: string; args: (string | number)[] } {
    const exact = channels.filter((c) => !c.endsWith("*"));
    const wild = channels.filter((c) => c.endsWith("*")).map((c) => c.slice(0, -1));
    const parts: string[] = [];
    const args: (string | number)[] = [];
    if (exact.length > 0) {
      parts.push(`channel IN (${exact.map(() => "?").join(",")})`);
      args.push(...exact);
    }
    for (const prefix of wild) {
      if (prefix === "") {
        parts.push("1");
      } else {
        parts.push("substr(channel, 1, ?) = ?");
        args.push(prefix.length, prefix);
      }
    }
    return { where: parts.join(" OR ") || "0", args };
  }

  /** Whether any event with seq > since on these channels may have been pruned. */
  private prunedSince(channels: string[], since: number): boolean {
    if (this.prunedAll > since) return true;
    const { where, args } = this.matchClause(channels);
    const row = this.sql.exec<{ m: number | null }>(`SELECT max(seq) AS m FROM pruned WHERE ${where}`, ...args).one();
    return (row.m ?? 0) > since;
  }

  /** Stores an event and fans it out; returns its seq. */
  private store(channel: string, dataText: string): number {
    const ts = Date.now();
    const seq = this.lastSeq + 1;
    this.sql.exec("INSERT INTO events (seq, channel, data, ts) VALUES (?, ?, ?, ?)", seq, channel, dataText, ts);
    this.sql.exec("UPDATE hub_state SET last_seq = ?, published = published + 1 WHERE id = 1", seq);
    this.lastSeq = seq;
    this.published++;
    this.fanOut(channel, eventFrame(channel, seq, dataText, ts));
    if (++this.sincePrune >= Math.min(100, this.retentionEvents)) this.prune(ts);
    return seq;
  }

  private fanOut(channel: string, frame: string): void {
    const targets = new Set<string>(this.exact.get(channel));
    for (const [prefix, ids] of this.prefixes) {
      if (channel.startsWith(prefix)) for (const id of ids) targets.add(id);
    }
    for (const id of targets) {
      const s = this.sockets.get(id);
      if (s) trySend(s.ws, frame);
    }
  }

  /** Drops events beyond the retention, remembering per channel what is gone. */
  private prune(now: number): void {
    this.sincePrune = 0;
    const bySize = this.lastSeq - this.retentionEvents;
    const byAge =
      this.sql.exec<{ m: number | null }>("SELECT max(seq) AS m FROM events WHERE ts < ?", now - this.retentionMs).one().m ?? 0;
    const cutoff = Math.max(bySize, byAge);
    if (cutoff <= 0) return;
    const oldest = this.sql.exec<{ m: number | null }>("SELECT min(seq) AS m FROM events").one().m;
    if (oldest === null || oldest > cutoff) return;
    this.sql.exec(
      `INSERT INTO pruned (channel, seq) SELECT channel, max(seq) FROM events WHERE seq <= ? GROUP BY channel
       ON CONFLICT (channel) DO UPDATE SET seq = max(seq, excluded.seq)`,
      cutoff,
    );
    this.sql.exec("DELETE FROM events WHERE seq <= ?", cutoff);
    const watermarks = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pruned").one().n;
    if (watermarks > MAX_WATERMARKS) {
      // Too many channels to track one by one: one conservative watermark for all.
      this.prunedAll = Math.max(this.prunedAll, this.sql.exec<{ m: number }>("SELECT max(seq) AS m FROM pruned").one().m);
      this.sql.exec("DELETE FROM pruned");
      this.sql.exec("UPDATE hub_state SET pruned_all = ? WHERE id = 1", this.prunedAll);
    }
  }

  private stats(): HubStats {
    const events = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM events").one().n;
    return { sockets: this.ctx.getWebSockets().length, events, lastSeq: this.lastSeq, published: this.published };
  }

  // ---- fan-out index ------------------------------------------------------------------

  private index(id: string, ws: WebSocket, channels: string[]): void {
    this.unindex(id);
    const set = new Set(channels);
    this.sockets.set(id, { ws, channels: set });
    for (const c of set) {
      const [map, key] = c.endsWith("*") ? [this.prefixes, c.slice(0, -1)] : [this.exact, c];
      let ids = map.get(key);
      if (!ids) map.set(key, (ids = new Set()));
      ids.add(id);
    }
  }

  private unindex(id: string): void {
    const s = this.sockets.get(id);
    if (!s) return;
    for (const c of s.channels) {
      const [map, key] = c.endsWith("*") ? [this.prefixes, c.slice(0, -1)] : [this.exact, c];
      const ids = map.get(key);
      ids?.delete(id);
      if (ids?.size === 0) map.delete(key);
    }
    this.sockets.delete(id);
  }

  private forget(ws: WebSocket): void {
    const a = ws.deserializeAttachment() as Attachment | null;
    if (a?.id) this.unindex(a.id);
  }
}

function eventFrame(channel: string, seq: number, dataText: string, ts: number): string {
  return `{"type":"event","channel":${JSON.stringify(channel)},"seq":${seq},"data":${dataText},"ts":${ts}}`;
}
