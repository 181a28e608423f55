/**
 * The edge sync gateway's routes: untrusted replicas (browsers, user devices) sync
 * through the Worker with their user's token (see docs/gateway.md).
 *
 *   POST /sync/v1/{schema,push,pull,scope,rows,bootstrap}   the records protocol
 *   GET  /sync/v1/audit?since=&limit=                        refused records (service tokens)
 *   POST /v2/pipeline, /v3/pipeline                          404 USE_SYNC_GATEWAY
 *
 * The protocol, the rules (`SYNC_RULES`) and the limits (`SYNC_LIMITS`) are Rust
 * (`SyncGateway`, src/gateway/); this file reads the body within the limit, passes the
 * token's verified claims, reports the primary's health to the router, and has new
 * records announced after a push. The database token stays inside the gateway.
 */
import { SyncGateway } from "edgesync";
import type { GatewayReply } from "edgesync";
import type { Edge } from "./edge.js";
import type { Env } from "./env.js";
import { HttpError, json, readBytes } from "./http.js";

export const SYNC_PREFIX = "/sync/v1/";
const STEPS = new Set(["schema", "push", "pull", "scope", "rows", "bootstrap"]);

/** A gateway per isolate and configuration. */
let current: { key: string; gateway: SyncGateway } | undefined;

function gatewayFor(env: Env, edge: Edge): SyncGateway {
  if (!env.SYNC_RULES) {
    throw new HttpError(404, "SYNC_DISABLED", "this Worker has no SYNC_RULES: replicas cannot sync through it");
  }
  const primary = edge.regions[edge.primary];
  const key = [env.SYNC_RULES, env.SYNC_LIMITS, primary.url, env.LIBSQL_AUTH_TOKEN, env.REGION_TIMEOUT_MS].join("\u0000");
  if (current?.key !== key) {
    const timeout = env.REGION_TIMEOUT_MS ? Number(env.REGION_TIMEOUT_MS) : 10_000;
    current = {
      key,
      gateway: new SyncGateway(env.SYNC_RULES, env.SYNC_LIMITS || undefined, primary.url, env.LIBSQL_AUTH_TOKEN || undefined, timeout),
    };
  }
  return current.gateway;
}

/** The gateway of this isolate, when configured (for /metrics). */
export function gatewayStats(): ReturnType<SyncGateway["stats"]> | undefined {
  return current?.gateway.stats();
}

function reply(r: GatewayReply): Response {
  const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
  if (r.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(r.retryAfterMs / 1000)));
  return new Response(r.body, { status: r.status, headers });
}

/** Runs one gateway call on the primary, reporting it to the router like any request. */
async function onPrimary(edge: Edge, call: () => Promise<GatewayReply>): Promise<GatewayReply> {
  const target = edge.primary;
  edge.router.begin(target);
  const t0 = performance.now();
  const r = await call();
  if (r.upstreamFailure) edge.router.reportFailure(target, r.upstreamFailure, Date.now());
  else edge.router.reportSuccess(target, performance.now() - t0, undefined, Date.now());
  return r;
}

/**
 * `POST /sync/v1/<step>` for a verified token. `notify(tables)` is called after a push
 * that changed tables (their new records are announced on the hub).
 */
export async function handleSync(
  request: Request,
  env: Env,
  edge: Edge,
  claims: Record<string, unknown>,
  step: string,
  notify: (tables: string[]) => void,
): Promise<Response> {
  if (request.method !== "POST" || !STEPS.has(step)) {
    throw new HttpError(404, "NOT_FOUND", `no route for ${request.method} ${SYNC_PREFIX}${step}`);
  }
  const gateway = gatewayFor(env, edge);
  const body = await readBytes(request, gateway.maxBodyBytes);
  const r = await onPrimary(edge, () => gateway.handle(step, claims, body, Date.now()));
  if (step === "push" && r.status === 200) {
    const changed = (JSON.parse(r.body) as { changed?: string[] }).changed ?? [];
    if (changed.length > 0) notify(changed);
  }
  return reply(r);
}

/** `GET /sync/v1/audit?since=&limit=`: the audit trail (the caller checks the token). */
export async function handleAudit(request: Request, env: Env, edge: Edge): Promise<Response> {
  const url = new URL(request.url);
  const since = Number(url.searchParams.get("since") ?? "0");
  const limit = Number(url.searchParams.get("limit") ?? "100");
  if (!Number.isInteger(since) || since < 0 || !Number.isInteger(limit) || limit < 1) {
    throw new HttpError(400, "BAD_REQUEST", "since and limit must be whole numbers (limit ≥ 1)");
  }
  const gateway = gatewayFor(env, edge);
  return reply(await onPrimary(edge, () => gateway.audit(since, Math.min(limit, 1000))));
}

/**
 * The answer to a Hrana request (`/v2/pipeline`, `/v3/pipeline`): this is not a libSQL
 * server. An edgesync replica that reads this code syncs through the gateway instead.
 * Answered without authentication: it says nothing but what this server is. A 404 (no
 * Hrana here), not 421: fetch (the WHATWG spec, undici) re-sends a request answered
 * 421 on a new connection, and undici's resend of the body then fails.
 */
export async function pipelineHint(request: Request): Promise<Response> {
  // Read the body first: answering before it is read makes wrangler's proxy fail the
  // exchange ("Request body length does not match content-length header").
  await readBytes(request, 8 * 1024 * 1024).catch(() => undefined);
  return json(
    {
      error: {
        code: "USE_SYNC_GATEWAY",
        message: "this is an edgesync Worker, not a libSQL server: replicas sync through /sync/v1 with a user token",
      },
    },
    404,
  );
}
