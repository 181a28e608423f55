/**
 * The real-time hub: one SQLite-backed Durable Object (`RealtimeHub`, binding `HUB`,
 * instance "global") that stores change events and fans them out over WebSockets. The
 * frames and limits are defined once, in js/hub-protocol.ts (imported through the
 * package); see there for the protocol.
 *
 * Every event gets a monotonically increasing `seq` (its version) and is kept in
 * `events` for catch-up: the last `HUB_RETENTION_EVENTS` events (default 10,000) no older
 * than `HUB_RETENTION_MS` (default 24 h). Sockets use the Hibernation API, so an idle hub
 * costs nothing; each socket's subscriptions and principal live in its attachment.
 *
 * Access control (src/auth/, docs/security.md) on every path — the upgrade URL, the
 * subscribe and publish frames, HTTP publish, and history (`since` replays only the
 * channels the socket was allowed to subscribe to): `table:` and `sync:` channels are
 * published by the worker alone; a user token uses only the channels HUB_CHANNELS grants
 * it (default `user:{sub}:*`); `*` and everything else is for service tokens. A socket
 * lives no longer than its token: past `exp` it gets an AUTH_EXPIRED error and is closed.
 *
 * The Durable Object is reachable only through this worker's binding: the worker
 * authenticates the request and hands the principal over in a header it sets itself
 * (hub-api.ts holds the worker's side).
 */
import { DurableObject } from "cloudflare:workers";
import {
  AccessPolicy,
  eventFrameText,
  HUB_MAX_CHANNELS_PER_SOCKET,
  HUB_MAX_DATA_BYTES,
  HUB_MAX_FRAME_BYTES,
  HUB_MAX_FRAME_DEPTH,
  jsonDeeperThan,
} from "edgesync";
import type { HubErrorCode, HubFrame, SyncAnnouncement } from "edgesync";
import { accessPolicyConfig } from "./auth.js";
import type { Env } from "./env.js";
import { checkChannel, PRINCIPAL_HEADER, urlChannels } from "./hub-api.js";
import type { Holder, HubStats } from "./hub-api.js";
import { HttpError, errorResponse, json } from "./http.js";

/** serializeAttachment() takes at most 2,048 bytes. */
const MAX_ATTACHMENT_BYTES = 2000;
const DEFAULT_RETENTION_EVENTS = 10_000;
const DEFAULT_RETENTION_MS = 24 * 3600_000;
/** Channels with their own prune watermark before they collapse into the global one. */
const MAX_WATERMARKS = 10_000;
/** Clock skew tolerated on a socket's token expiry (as for the token itself). */
const EXPIRY_LEEWAY_MS = 30_000;
/** Close code for a socket whose token expired (4000–4999: application codes). */
const CLOSE_TOKEN_EXPIRED = 4401;

function positiveInt(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new HttpError(500, "CONFIG_ERROR", `${name} must be a positive integer`);
  return n;
}

/** What a socket remembers across hibernation (serializeAttachment). */
interface Attachment extends Holder {
  id: string;
  channels: string[];
}

class BadMessage extends Error {
  constructor(
    readonly code: HubErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function frame(f: HubFrame): string {
  return JSON.stringify(f);
}

function trySend(ws: WebSocket, text: string): void {
  try {
    ws.send(text);
  } catch {
    /* closing or closed: its webSocketClose/Error cleans up */
  }
}

/** A refused policy check (an EdgesyncError from AccessPolicy) as an error frame. */
function refused(e: unknown): BadMessage {
  const code = (e as { code?: string }).code;
  const message = e instanceof Error ? e.message : String(e);
  switch (code) {
    case "FORBIDDEN":
    case "CHANNEL_RESERVED":
    case "PERMISSION_DENIED":
      return new BadMessage(code, message);
    case "INVALID_ARGUMENT":
      return new BadMessage("BAD_MESSAGE", message.replace(/^invalid argument: /, ""));
    default:
      throw e;
  }
}

export class RealtimeHub extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly policy: AccessPolicy;
  private lastSeq = 0;
  private published = 0;
  /** Every event up to this seq may have been pruned on any channel. */
  private prunedAll = 0;
  private sincePrune = 0;
  private readonly retentionEvents: number;
  private readonly retentionMs: number;
  /** Live sockets by id, and the ids subscribed to each exact channel / wildcard prefix. */
  private readonly sockets = new Map<string, { ws: WebSocket; channels: Set<string>; exp: number }>();
  private readonly exact = new Map<string, Set<string>>();
  private readonly prefixes = new Map<string, Set<string>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.retentionEvents = positiveInt(env.HUB_RETENTION_EVENTS, DEFAULT_RETENTION_EVENTS, "HUB_RETENTION_EVENTS");
    this.retentionMs = positiveInt(env.HUB_RETENTION_MS, DEFAULT_RETENTION_MS, "HUB_RETENTION_MS");
    this.policy = new AccessPolicy(accessPolicyConfig(env));
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
      CREATE TABLE IF NOT EXISTS edge_replicas (id TEXT PRIMARY KEY);
      CREATE TABLE IF NOT EXISTS sync_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        log_cursor INTEGER NOT NULL
      );
      INSERT OR IGNORE INTO sync_state (id, log_cursor) VALUES (1, 0);
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
      if (a?.id && a.p) this.index(a, ws);
    }
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('{"type":"ping"}', '{"type":"pong"}'));
    this.prune(Date.now());
  }

  // ---- HTTP (from the worker only) ------------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url);
      const route = `${request.method} ${url.pathname}`;
      if (url.pathname === "/subscribe" && request.method === "GET") return this.accept(request, url);
      switch (route) {
        case "POST /publish": {
          // Already authorized by the worker (or the worker's own `table:` / `sync:` event).
          const body = (await request.json()) as { channel: string; data: unknown };
          const dataText = JSON.stringify(body.data ?? null);
          if (dataText.length > HUB_MAX_DATA_BYTES) throw new HttpError(413, "EVENT_TOO_LARGE", `event data exceeds ${HUB_MAX_DATA_BYTES} bytes`);
          const seq = this.store(body.channel, dataText);
          if (body.channel.startsWith("table:")) this.wakeEdgeReplicas();
          return json({ channel: body.channel, seq });
        }
        case "POST /edge-register": {
          // An edge replica (edge-replica.ts) asks to be woken after writes.
          const { id } = (await request.json()) as { id: string };
          if (typeof id !== "string" || !/^[0-9a-f]{64}$/.test(id)) throw new HttpError(400, "BAD_REQUEST", "id must be a Durable Object id");
          this.sql.exec("INSERT OR IGNORE INTO edge_replicas (id) VALUES (?)", id);
          return json({ registered: id });
        }
        case "GET /stats":
          return json(this.stats());
        case "GET /sync-cursor":
          return json({ cursor: this.logCursor() });
        case "POST /sync-announce":
          const out = this.announce((await request.json()) as { upto: number; tables: SyncAnnouncement[]; reset?: boolean });
          if (out.announced.length > 0) this.wakeEdgeReplicas();
          return json(out);
      }
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
    const raw = request.headers.get(PRINCIPAL_HEADER);
    if (raw === null) throw new HttpError(401, "AUTH_REQUIRED", "the hub takes sockets from the worker only");
    const holder = JSON.parse(raw) as Holder;
    const channels = urlChannels(url);
    for (const c of channels) checkChannel(this.policy, holder.p, c, "subscribe"); // checked by the worker too
    const sinceRaw = url.searchParams.get("since");
    let since: number | undefined;
    if (sinceRaw !== null && sinceRaw !== "") {
      since = Number(sinceRaw);
      if (!Number.isSafeInteger(since) || since < 0) throw new HttpError(400, "BAD_REQUEST", "since must be a non-negative integer");
    }
    const unique = [...new Set(channels)];
    if (unique.length > HUB_MAX_CHANNELS_PER_SOCKET) throw new HttpError(400, "BAD_REQUEST", `at most ${HUB_MAX_CHANNELS_PER_SOCKET} channels per socket`);
    const attachment: Attachment = { id: crypto.randomUUID(), channels: unique, p: holder.p, exp: holder.exp };
    if (JSON.stringify(attachment).length > MAX_ATTACHMENT_BYTES) {
      throw new HttpError(400, "BAD_REQUEST", "the channel names are too long in total for one socket");
    }

    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment(attachment);
    this.index(attachment, server);
    this.catchUp(server, unique, since); // always ends with `ready`: the socket is live
    return new Response(null, { status: 101, webSocket: client });
  }

  // ---- WebSocket events (Hibernation API) ---------------------------------------------

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      const a = this.attachmentOf(ws);
      if (a === undefined) return;
      if (typeof message !== "string") throw new BadMessage("BAD_MESSAGE", "binary frames are not supported: send JSON text");
      // UTF-16 length ≤ UTF-8 length ≤ 3 × UTF-16 length: encode only when it matters.
      const tooLarge =
        message.length > HUB_MAX_FRAME_BYTES ||
        (message.length * 3 > HUB_MAX_FRAME_BYTES && new TextEncoder().encode(message).byteLength > HUB_MAX_FRAME_BYTES);
      if (tooLarge) throw new BadMessage("FRAME_TOO_LARGE", `frames are limited to ${HUB_MAX_FRAME_BYTES} bytes`);
      if (jsonDeeperThan(message, HUB_MAX_FRAME_DEPTH)) {
        throw new BadMessage("BAD_MESSAGE", `frames may nest JSON at most ${HUB_MAX_FRAME_DEPTH} deep`);
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
          trySend(ws, frame({ type: "pong" }));
          return;
        case "subscribe":
          return this.onSubscribe(ws, a, m);
        case "unsubscribe":
          return this.onUnsubscribe(ws, a, m);
        case "publish":
          return this.onPublish(ws, a, m);
        default: {
          const shown = typeof m.type === "string" ? JSON.stringify(m.type.slice(0, 40)) : typeof m.type;
          throw new BadMessage("BAD_MESSAGE", `unknown message type ${shown}`);
        }
      }
    } catch (e) {
      if (e instanceof BadMessage) trySend(ws, frame({ type: "error", code: e.code, message: e.message }));
      else {
        console.error("hub: unexpected error handling a frame", e);
        trySend(ws, frame({ type: "error", code: "INTERNAL_ERROR", message: e instanceof Error ? e.message : String(e) }));
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

  /** The socket's attachment, or undefined after closing a socket whose token expired. */
  private attachmentOf(ws: WebSocket): Attachment | undefined {
    const a = ws.deserializeAttachment() as Attachment | null;
    if (!a?.id || !a.p) {
      // Accepted before sockets carried their principal: it must reconnect.
      this.closeExpired(ws, "this socket has no principal: reconnect");
      return undefined;
    }
    if (Date.now() > a.exp * 1000 + EXPIRY_LEEWAY_MS) {
      this.closeExpired(ws, "the socket's token has expired: reconnect with a fresh one");
      return undefined;
    }
    if (!this.sockets.has(a.id)) this.index(a, ws);
    return a;
  }

  private closeExpired(ws: WebSocket, message: string): void {
    trySend(ws, frame({ type: "error", code: "AUTH_EXPIRED", message }));
    this.forget(ws);
    try {
      ws.close(CLOSE_TOKEN_EXPIRED, "token expired");
    } catch {
      /* already closed */
    }
  }

  /** The frame's channels: a non-empty array of strings (anything else is refused unread). */
  private channelsOf(m: Record<string, unknown>): string[] {
    const list = m.channels;
    if (!Array.isArray(list) || list.length === 0) throw new BadMessage("BAD_MESSAGE", "channels must be a non-empty array of strings");
    if (list.length > HUB_MAX_CHANNELS_PER_SOCKET) throw new BadMessage("TOO_MANY_CHANNELS", `at most ${HUB_MAX_CHANNELS_PER_SOCKET} channels per socket`);
    for (const c of list) {
      if (typeof c !== "string") throw new BadMessage("BAD_MESSAGE", `channels must be strings, got ${Array.isArray(c) ? "an array" : typeof c}`);
    }
    return [...new Set(list as string[])];
  }

  private onSubscribe(ws: WebSocket, a: Attachment, m: Record<string, unknown>): void {
    const channels = this.channelsOf(m);
    for (const c of channels) {
      try {
        this.policy.checkChannel(a.p, c, "subscribe");
      } catch (e) {
        throw refused(e);
      }
    }
    let since: number | undefined;
    if (m.since !== undefined && m.since !== null) {
      if (typeof m.since !== "number" || !Number.isSafeInteger(m.since) || m.since < 0) {
        throw new BadMessage("BAD_MESSAGE", "since must be a non-negative integer");
      }
      since = m.since;
    }
    const merged = [...new Set([...a.channels, ...channels])];
    if (merged.length > HUB_MAX_CHANNELS_PER_SOCKET) throw new BadMessage("TOO_MANY_CHANNELS", `at most ${HUB_MAX_CHANNELS_PER_SOCKET} channels per socket`);
    const next: Attachment = { ...a, channels: merged };
    if (JSON.stringify(next).length > MAX_ATTACHMENT_BYTES) {
      throw new BadMessage("TOO_MANY_CHANNELS", "the channel names are too long in total for one socket");
    }
    ws.serializeAttachment(next);
    this.index(next, ws);
    this.catchUp(ws, channels, since);
  }

  private onUnsubscribe(ws: WebSocket, a: Attachment, m: Record<string, unknown>): void {
    const channels = this.channelsOf(m);
    const drop = new Set(channels);
    const next: Attachment = { ...a, channels: a.channels.filter((c) => !drop.has(c)) };
    ws.serializeAttachment(next);
    this.index(next, ws);
    trySend(ws, frame({ type: "unsubscribed", channels }));
  }

  private onPublish(ws: WebSocket, a: Attachment, m: Record<string, unknown>): void {
    if (typeof m.channel !== "string") throw new BadMessage("BAD_MESSAGE", "channel must be a string");
    try {
      this.policy.checkChannel(a.p, m.channel, "publish");
    } catch (e) {
      throw refused(e);
    }
    const dataText = JSON.stringify(m.data === undefined ? null : m.data);
    if (dataText.length > HUB_MAX_DATA_BYTES) throw new BadMessage("EVENT_TOO_LARGE", `event data exceeds ${HUB_MAX_DATA_BYTES} bytes`);
    const id = typeof m.id === "string" || typeof m.id === "number" ? m.id : undefined;
    const seq = this.store(m.channel, dataText);
    trySend(ws, frame(id === undefined ? { type: "published", seq } : { type: "published", seq, id }));
  }

  /**
   * Replays what a (re)subscribing socket missed on `channels` since `since`, or tells it
   * to resync (`reset`) when that history is gone; then `ready` with the latest seq. Runs
   * without awaiting, so no publish can slip in between the replay and `ready`. Only
   * channels the socket was allowed to subscribe to reach here.
   */
  private catchUp(ws: WebSocket, channels: string[], since: number | undefined): void {
    if (since !== undefined && channels.length > 0) {
      if (since > this.lastSeq || this.prunedSince(channels, since)) {
        trySend(ws, frame({ type: "reset", seq: this.lastSeq }));
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
          trySend(ws, eventFrameText(channel, seq, data, ts));
        }
      }
    }
    trySend(ws, frame({ type: "ready", seq: this.lastSeq }));
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
    this.fanOut(channel, eventFrameText(channel, seq, dataText, ts), ts);
    if (++this.sincePrune >= Math.min(100, this.retentionEvents)) this.prune(ts);
    return seq;
  }

  private fanOut(channel: string, text: string, now: number): void {
    const targets = new Set<string>(this.exact.get(channel));
    for (const [prefix, ids] of this.prefixes) {
      if (channel.startsWith(prefix)) for (const id of ids) targets.add(id);
    }
    for (const id of targets) {
      const s = this.sockets.get(id);
      if (!s) continue;
      if (now > s.exp * 1000 + EXPIRY_LEEWAY_MS) this.closeExpired(s.ws, "the socket's token has expired: reconnect with a fresh one");
      else trySend(s.ws, text);
    }
  }

  // ---- sync: announcements --------------------------------------------------------------

  private logCursor(): number {
    return this.sql.exec<{ c: number }>("SELECT log_cursor AS c FROM sync_state WHERE id = 1").one().c;
  }

  /**
   * `sync:<table>` for each table whose newest record is past the stored cursor, then the
   * cursor moves to `upto`: announcements of the same records (concurrent notifies) fold.
   */
  private announce(body: { upto: number; tables: SyncAnnouncement[]; reset?: boolean }): { announced: string[] } {
    const cursor = this.logCursor();
    const announced: string[] = [];
    for (const t of body.tables) {
      if (t.seq <= cursor) continue;
      this.store(`sync:${t.table}`, JSON.stringify(t));
      announced.push(t.table);
    }
    if (body.upto > cursor || body.reset) this.sql.exec("UPDATE sync_state SET log_cursor = ? WHERE id = 1", body.upto);
    return { announced };
  }

  /**
   * Tells every registered edge replica that the primary has new writes, so it syncs
   * now rather than at its next alarm (fire and forget: a replica that is down syncs on
   * its alarm when it is back).
   */
  private wakeEdgeReplicas(): void {
    const ns = this.env.EDGE_REPLICA;
    if (!ns) return;
    for (const row of this.sql.exec<{ id: string }>("SELECT id FROM edge_replicas").toArray()) {
      this.ctx.waitUntil(ns.get(ns.idFromString(row.id)).wake().catch(() => undefined));
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

  private index(a: Attachment, ws: WebSocket): void {
    this.unindex(a.id);
    const set = new Set(a.channels);
    this.sockets.set(a.id, { ws, channels: set, exp: a.exp });
    for (const c of set) {
      const [map, key] = c.endsWith("*") ? [this.prefixes, c.slice(0, -1)] : [this.exact, c];
      let ids = map.get(key);
      if (!ids) map.set(key, (ids = new Set()));
      ids.add(a.id);
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
