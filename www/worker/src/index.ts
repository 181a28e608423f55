/**
 * The edgesync edge Worker (deployed by wrangler.toml): one in every region, in front
 * of a libSQL primary and its replicas.
 *
 *   GET  /health                 cluster health (no auth): 200 healthy/degraded, 503 unhealthy
 *   GET  /metrics                Prometheus text: HTTP, router, cache, sessions, regions, hub
 *   POST /query   {sql, args?}   one parameterized statement, routed (see edge.ts)
 *   POST /batch   {statements}   statements in one transaction on the primary
 *   POST|GET|PUT|DELETE /sessions[/:id]   distributed sessions (see sessions.ts)
 *   GET  /subscribe              WebSocket to the real-time hub (see hub.ts)
 *   POST /sync/v1/<step>         the sync gateway for user replicas (see sync.ts)
 *   GET  /sync/v1/audit          refused pushes (service tokens)
 *   POST /publish {channel, data}
 *
 * Every endpoint but /health needs `Authorization: Bearer <JWT>` (auth.ts). Errors are
 * `{error: {code, message}}`: 400 BAD_JSON / BAD_REQUEST / QUERY_UNPARSEABLE,
 * 401 AUTH_*, 413 BODY_TOO_LARGE, 503 PRIMARY_UNAVAILABLE / NO_HEALTHY_REGION, …
 * SQL travels only as parameterized statements: values are never spliced into SQL.
 */
import { MetricsRegistry } from "edgesync";
import type { InArgs } from "edgesync";
import { authenticate } from "./auth.js";
import { Edge } from "./edge.js";
import type { Caller } from "./edge.js";
import type { Env } from "./env.js";
import { bodyLimit, drainUnread, errorResponse, HttpError, json, jsonText, readJson } from "./http.js";
import { hubStats, publish, subscribe } from "./hub.js";
import { Sessions, sessionResponse } from "./sessions.js";
import { gatewayStats, handleAudit, handleSync, pipelineHint, SYNC_PREFIX } from "./sync.js";

export { RealtimeHub } from "./hub.js";
export type { Env } from "./env.js";

/** Everything an isolate keeps between requests, rebuilt when the configuration changes. */
interface Node {
  key: string;
  edge: Edge;
  sessions: Sessions | undefined;
  sessionsError: unknown;
  metrics: MetricsRegistry;
}
let node: Node | undefined;

function configKey(env: Env): string {
  return [env.REGIONS, env.LIBSQL_URL, env.ROUTER_OPTIONS, env.SESSION_OPTIONS, env.SESSION_KEYS, env.LIBSQL_AUTH_TOKEN, env.REGION_TIMEOUT_MS].join("\u0000");
}

/** Built on first use: nothing may do I/O or draw randomness at module top level. */
function getNode(env: Env): Node {
  const key = configKey(env);
  if (node?.key === key) return node;
  node?.edge.close();
  const seed = crypto.getRandomValues(new Uint32Array(1))[0];
  const edge = new Edge(env, seed);
  let sessions: Sessions | undefined;
  let sessionsError: unknown;
  try {
    sessions = new Sessions(env, edge, crypto.getRandomValues(new Uint8Array(16)));
  } catch (e) {
    sessionsError = e; // only the session endpoints fail without SESSION_KEYS
  }
  const metrics = new MetricsRegistry();
  metrics.describe("edgesync_http_requests_total", "counter", "HTTP requests by route and status.");
  metrics.describe("edgesync_http_request_duration_ms", "histogram", "HTTP request handling time in milliseconds.");
  metrics.describe("edgesync_queries_total", "counter", "Routed queries by kind and cache outcome.");
  metrics.describe("edgesync_hub_sockets", "gauge", "WebSockets connected to the real-time hub.");
  metrics.describe("edgesync_hub_events", "gauge", "Events retained by the hub for catch-up.");
  metrics.describe("edgesync_hub_last_seq", "gauge", "The hub's latest event version.");
  node = { key, edge, sessions, sessionsError, metrics };
  return node;
}

function caller(request: Request, sub: string | undefined): Caller {
  const cf = request.cf as { latitude?: string; longitude?: string } | undefined;
  const header = request.headers.get("x-edgesync-location") ?? undefined;
  const location = header ?? (cf?.latitude && cf?.longitude ? `${cf.latitude},${cf.longitude}` : undefined);
  return { client: sub, location };
}

/** The region this request is served in: the colo in production, a header in tests. */
function servingRegion(request: Request): string {
  const cf = request.cf as { colo?: string } | undefined;
  return request.headers.get("x-edgesync-region") ?? cf?.colo ?? "local";
}

function statementOf(body: Record<string, unknown>, where: string): { sql: string; args?: InArgs } {
  const { sql, args } = body as { sql?: unknown; args?: unknown };
  if (typeof sql !== "string") throw new HttpError(400, "BAD_REQUEST", `${where}.sql must be a string`);
  if (args === undefined || args === null) return { sql };
  if (typeof args !== "object") throw new HttpError(400, "BAD_REQUEST", `${where}.args must be an array or an object`);
  return { sql, args: args as InArgs };
}

function sessionsOf(n: Node): Sessions {
  if (n.sessions === undefined) throw n.sessionsError;
  return n.sessions;
}

async function handle(request: Request, env: Env, ctx: ExecutionContext, n: Node): Promise<Response> {
  const url = new URL(request.url);
  const { pathname } = url;
  const route = `${request.method} ${pathname}`;
  const background = (p: Promise<unknown>) => ctx.waitUntil(p);
  n.edge.probe(background);

  if (route === "GET /health") {
    await n.edge.probeAll();
    const health = n.edge.router.health(env.HEALTH_THRESHOLDS || undefined, Date.now());
    return json(health, health.status === "unhealthy" ? 503 : 200);
  }
  if (route === "POST /v2/pipeline" || route === "POST /v3/pipeline") return pipelineHint(request);
  const claims = await authenticate(request, env);
  const limit = bodyLimit(env.MAX_BODY_BYTES);
  if (route === `GET ${SYNC_PREFIX}audit`) {
    if (claims.role !== "service") throw new HttpError(403, "PERMISSION_DENIED", "the audit trail is for service tokens");
    return handleAudit(request, env, n.edge);
  }
  if (pathname.startsWith(SYNC_PREFIX)) {
    const notify = (tables: string[]) => {
      for (const table of tables) background(publish(env, `table:${table}`, { table }).catch(() => undefined));
    };
    return handleSync(request, env, n.edge, claims, pathname.slice(SYNC_PREFIX.length), notify);
  }

  switch (route) {
    case "GET /metrics": {
      const hub = await hubStats(env).catch(() => undefined);
      return new Response(metricsText(n, hub), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    case "POST /query": {
      const stmt = statementOf(await readJson(request, limit), "body");
      const out = await n.edge.query(stmt.sql, stmt.args, caller(request, claims.sub));
      n.metrics.inc("edgesync_queries_total", ["kind", out.kind, "cache", out.cache], 1);
      for (const table of out.writes) {
        background(publish(env, `table:${table}`, { table, replicationIndex: out.replicationIndex }).catch(() => undefined));
      }
      const headers: Record<string, string> = { "x-edgesync-cache": out.cache };
      if (out.region) headers["x-edgesync-region"] = out.region;
      return jsonText(out.body, 200, headers);
    }
    case "POST /batch": {
      const body = await readJson(request, limit);
      if (!Array.isArray(body.statements) || body.statements.length === 0) {
        throw new HttpError(400, "BAD_REQUEST", "statements must be a non-empty array");
      }
      const stmts = body.statements.map((s, i) => {
        if (typeof s === "string") return { sql: s };
        if (s === null || typeof s !== "object" || Array.isArray(s)) {
          throw new HttpError(400, "BAD_REQUEST", `statements[${i}] must be a string or {sql, args?}`);
        }
        return statementOf(s as Record<string, unknown>, `statements[${i}]`);
      });
      const mode = body.mode ?? "write";
      if (mode !== "write" && mode !== "read" && mode !== "deferred") {
        throw new HttpError(400, "BAD_REQUEST", "mode must be one of write, read, deferred");
      }
      const results = await n.edge.batch(stmts, mode, caller(request, claims.sub));
      for (const table of results.writes) {
        background(publish(env, `table:${table}`, { table, replicationIndex: results.replicationIndex }).catch(() => undefined));
      }
      return jsonText(`{"results":[${results.bodies.join(",")}]}`);
    }
    case "GET /subscribe":
      return subscribe(request, env);
    case "POST /publish": {
      const body = await readJson(request, limit);
      if (typeof body.channel !== "string") throw new HttpError(400, "BAD_REQUEST", "channel must be a string");
      // `table:*` channels announce committed writes: only the worker's query path
      // publishes there, so a client cannot fake a change notification.
      if (body.channel.startsWith("table:")) {
        throw new HttpError(403, "CHANNEL_RESERVED", "table: channels are published by the worker after writes");
      }
      return json(await publish(env, body.channel, body.data));
    }
    case "POST /sessions": {
      const body = await readJson(request, limit);
      const id = body.id === undefined ? crypto.randomUUID() : body.id;
      if (typeof id !== "string") throw new HttpError(400, "BAD_REQUEST", "id must be a string");
      return sessionsOf(n).create(id, body.data, servingRegion(request));
    }
    case "POST /sessions/gc":
      return sessionsOf(n).gc();
    case "GET /sessions/stats":
      return json(sessionsOf(n).store.analytics());
  }
  const m = /^\/sessions\/([^/]+)$/.exec(pathname);
  if (m) {
    const id = decodeURIComponent(m[1]);
    const sessions = sessionsOf(n);
    switch (request.method) {
      case "GET":
        return sessionResponse(await sessions.get(id, servingRegion(request), background));
      case "PUT": {
        const body = await readJson(request, limit);
        return sessions.update(id, body.data, servingRegion(request), background);
      }
      case "DELETE":
        return sessions.destroy(id);
    }
    throw new HttpError(405, "METHOD_NOT_ALLOWED", `${request.method} is not allowed on ${pathname}`);
  }
  throw new HttpError(404, "NOT_FOUND", `no route for ${request.method} ${pathname}`);
}

function metricsText(n: Node, hub: { sockets: number; events: number; lastSeq: number } | undefined): string {
  if (hub) {
    n.metrics.set("edgesync_hub_sockets", [], hub.sockets);
    n.metrics.set("edgesync_hub_events", [], hub.events);
    n.metrics.set("edgesync_hub_last_seq", [], hub.lastSeq);
  }
  let text = n.metrics.render() + n.edge.router.metricsText(Date.now());
  text += gatewayMetricsText(gatewayStats());
  if (n.sessions) text += n.sessions.store.metricsText();
  return text;
}

/** The sync gateway's counters, when it has served this isolate. */
function gatewayMetricsText(stats: ReturnType<typeof gatewayStats>): string {
  if (!stats) return "";
  const m = new MetricsRegistry();
  const counters: [string, number, string][] = [
    ["edgesync_gateway_pushes_total", stats.pushes, "Pushes served by the sync gateway."],
    ["edgesync_gateway_records_accepted_total", stats.recordsAccepted, "Pushed records merged."],
    ["edgesync_gateway_records_refused_total", stats.recordsRefused, "Pushed records refused (rules, validation)."],
    ["edgesync_gateway_pulls_total", stats.pulls, "Pull pages served."],
    ["edgesync_gateway_records_pulled_total", stats.recordsPulled, "Log records sent to replicas."],
    ["edgesync_gateway_scope_checks_total", stats.scopeChecks, "Scope checks served."],
    ["edgesync_gateway_scope_mismatches_total", stats.scopeMismatches, "Tables whose replica held other rows than readable."],
    ["edgesync_gateway_rate_limited_total", stats.rateLimited, "Pushes refused with 429."],
  ];
  for (const [name, value, help] of counters) {
    m.describe(name, "counter", help);
    m.inc(name, [], value);
  }
  return m.render();
}

/** Route label: the path with ids folded, so labels stay bounded. */
function routeLabel(request: Request): string {
  const { pathname } = new URL(request.url);
  if (pathname.startsWith(SYNC_PREFIX)) {
    return /^\/sync\/v1\/(schema|push|pull|scope|rows|bootstrap|audit)$/.test(pathname) ? pathname : "/sync/v1/:unknown";
  }
  return pathname.startsWith("/sessions/") && !/^\/sessions\/(gc|stats)$/.test(pathname) ? "/sessions/:id" : pathname;
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const t0 = performance.now();
    let n: Node | undefined;
    let response: Response;
    try {
      n = getNode(env);
      response = await handle(request, env, ctx, n);
    } catch (e) {
      response = errorResponse(e);
    }
    await drainUnread(request);
    if (n) {
      const labels = ["route", routeLabel(request), "status", String(response.status)];
      n.metrics.inc("edgesync_http_requests_total", labels, 1);
      n.metrics.observe("edgesync_http_request_duration_ms", [], performance.now() - t0);
    }
    return response;
  },

  /** Cron trigger (wrangler.toml [triggers]): collects expired sessions. */
  async scheduled(_controller: ScheduledController, env: Env): Promise<void> {
    const n = getNode(env);
    if (n.sessions) await n.sessions.gc();
  },
} satisfies ExportedHandler<Env>;

