/**
 * The real-time hub's wire protocol: the one definition of the frames exchanged over
 * `GET /subscribe` and of the hub's limits, imported by the client (js/hub.ts) and by
 * the hub itself (www/worker/src/hub.ts, through the package). JSON text frames:
 *
 *   client → {"type":"subscribe","channels":["user:alice:*"],"since":123?}
 *            adds channels; with `since`, first replays (in seq order) the retained events
 *            on them with seq > since — preceded by {"type":"reset","seq"} instead when
 *            some were already pruned (or `since` is ahead of the hub). Always answered
 *            by {"type":"ready","seq":<latest>}. Every channel must be granted to the
 *            token (docs/security.md), or the whole frame is refused.
 *   client → {"type":"unsubscribe","channels":[…]}          → {"type":"unsubscribed","channels"}
 *   client → {"type":"publish","channel","data","id"?}      → {"type":"published","seq","id"?}
 *   client → {"type":"ping"}                                → {"type":"pong"}
 *   hub    → {"type":"event","channel","seq","data","ts"}   to every subscriber
 *   hub    → {"type":"error","code","message"}              a refused frame; the socket stays open
 *
 * The upgrade URL takes the first subscription too: `/subscribe?channels=a,b&since=5`.
 */

/** Largest frame the hub reads, in UTF-8 bytes. */
export const HUB_MAX_FRAME_BYTES = 64 * 1024;
/** Largest `data` of one event, as JSON text. */
export const HUB_MAX_DATA_BYTES = 64 * 1024;
/** Deepest JSON nesting a frame may have (the frames themselves need 3 levels; `data` gets the rest). */
export const HUB_MAX_FRAME_DEPTH = 32;
/** Channels one socket may follow. */
export const HUB_MAX_CHANNELS_PER_SOCKET = 100;
/** Longest channel name, in characters. */
export const HUB_MAX_CHANNEL_CHARS = 200;

/** Codes of the hub's `error` frames. */
export type HubErrorCode =
  | "BAD_MESSAGE"
  | "FRAME_TOO_LARGE"
  | "EVENT_TOO_LARGE"
  | "TOO_MANY_CHANNELS"
  | "FORBIDDEN"
  | "CHANNEL_RESERVED"
  | "PERMISSION_DENIED"
  | "AUTH_EXPIRED"
  | "INTERNAL_ERROR";

export interface SubscribeFrame {
  type: "subscribe";
  channels: string[];
  since?: number;
}
export interface UnsubscribeFrame {
  type: "unsubscribe";
  channels: string[];
}
export interface PublishFrame {
  type: "publish";
  channel: string;
  data: unknown;
  id?: string | number;
}
export interface PingFrame {
  type: "ping";
}
/** What a client sends. */
export type ClientFrame = SubscribeFrame | UnsubscribeFrame | PublishFrame | PingFrame;

export interface EventFrame {
  type: "event";
  channel: string;
  /** The hub's version of this event: increases by one per event across all channels. */
  seq: number;
  data: unknown;
  /** When the hub stored it (ms since the epoch). */
  ts: number;
}
export interface ResetFrame {
  type: "reset";
  seq: number;
}
export interface ReadyFrame {
  type: "ready";
  seq: number;
}
export interface UnsubscribedFrame {
  type: "unsubscribed";
  channels: string[];
}
export interface PublishedFrame {
  type: "published";
  seq: number;
  id?: string | number;
}
export interface PongFrame {
  type: "pong";
}
export interface ErrorFrame {
  type: "error";
  code: HubErrorCode;
  message: string;
}
/** What the hub sends. */
export type HubFrame = EventFrame | ResetFrame | ReadyFrame | UnsubscribedFrame | PublishedFrame | PongFrame | ErrorFrame;

/**
 * The `data` of a `sync:<table>` event. The worker publishes it itself, only after it
 * has seen new records of that table in the server's change log (`POST /sync/notify`).
 */
export interface SyncAnnouncement {
  table: string;
  /** The log sequence of the newest record announced. */
  seq: number;
  /** The replica that wrote them, when it was only one: that replica need not wake. */
  site?: string;
}

/** An event frame's text, with `data` already serialized (the hub stores it as text). */
export function eventFrameText(channel: string, seq: number, dataText: string, ts: number): string {
  return `{"type":"event","channel":${JSON.stringify(channel)},"seq":${seq},"data":${dataText},"ts":${ts}}`;
}

/**
 * Whether `text` nests JSON arrays/objects deeper than `max` (strings are skipped). A
 * linear scan, so a hostile frame cannot exhaust the stack before it is refused.
 */
export function jsonDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}
