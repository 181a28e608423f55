/**
 * The worker's side of the real-time hub (hub.ts, the Durable Object): the calls it
 * makes to the hub, and the checks both sides share. The hub is reachable only through
 * the worker's `HUB` binding: the worker authenticates every request and hands the
 * principal over in a header it sets itself.
 */
import type { AccessPolicy, Principal, SyncAnnouncement } from "edgesync";
import type { Env } from "./env.js";
import { HttpError } from "./http.js";

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

/** The header carrying the authenticated principal from the worker to the hub. */
export const PRINCIPAL_HEADER = "x-edgesync-principal";
/** A principal and its token's expiry (seconds), as the hub keeps it per socket. */
export interface Holder {
  p: Principal;
  exp: number;
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

/** The channels named in an upgrade URL (`?channels=a,b`, repeatable). */
export function urlChannels(url: URL): string[] {
  return url.searchParams
    .getAll("channels")
    .flatMap((v) => v.split(","))
    .filter((c) => c !== "");
}

/**
 * Throws unless the principal may `op` on `channel`: 400 BAD_REQUEST for a malformed
 * name, 403 CHANNEL_RESERVED / PERMISSION_DENIED / FORBIDDEN (src/auth/channels.rs).
 */
export function checkChannel(policy: AccessPolicy, p: Principal, channel: string, op: "subscribe" | "publish"): void {
  try {
    policy.checkChannel(p, channel, op);
  } catch (e) {
    if ((e as { code?: string }).code === "INVALID_ARGUMENT") {
      throw new HttpError(400, "BAD_REQUEST", (e as Error).message.replace(/^invalid argument: /, ""));
    }
    throw e;
  }
}

/**
 * GET /subscribe: checks the URL's subscriptions against the principal (403 before any
 * upgrade) and hands the WebSocket upgrade to the hub, with the principal attached.
 */
export async function subscribe(request: Request, env: Env, policy: AccessPolicy, holder: Holder): Promise<Response> {
  if ((request.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
    throw new HttpError(426, "UPGRADE_REQUIRED", "GET /subscribe needs a WebSocket upgrade (Upgrade: websocket)");
  }
  for (const c of urlChannels(new URL(request.url))) checkChannel(policy, holder.p, c, "subscribe");
  const headers = new Headers(request.headers);
  headers.set(PRINCIPAL_HEADER, JSON.stringify(holder)); // replaces anything the client sent
  return hubStub(env).fetch(new Request(request.url, { method: "GET", headers }));
}

/**
 * Stores an event on `channel` and sends it to every subscriber; returns its seq. The
 * worker's own publishes (`table:`, `sync:`) and client publishes it has authorized.
 */
export async function publish(env: Env, channel: string, data: unknown): Promise<{ channel: string; seq: number }> {
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

/** The change-log position up to which `sync:` announcements were made. */
export async function syncCursor(env: Env): Promise<number> {
  const res = await hubStub(env).fetch("https://hub/sync-cursor");
  if (!res.ok) throw await hubError(res);
  return ((await res.json()) as { cursor: number }).cursor;
}

/**
 * Publishes `sync:<table>` for every table with records after the cursor; moves it to
 * `upto` (`reset`: sets it there even when lower — the log was replaced).
 */
export async function announceSync(env: Env, upto: number, tables: SyncAnnouncement[], reset = false): Promise<string[]> {
  const res = await hubStub(env).fetch("https://hub/sync-announce", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ upto, tables, reset }),
  });
  if (!res.ok) throw await hubError(res);
  return ((await res.json()) as { announced: string[] }).announced;
}
