/**
 * The edgesync edge Worker (deployed by wrangler.toml): one in every region, in front
 * of a libSQL primary and its replicas.
 *
 *   GET  /health                 cluster health (no auth): 200 healthy/degraded, 503 unhealthy
 *   GET  /whoami                 the caller's principal and hub channel grants
 *   GET  /metrics                Prometheus text (service tokens)
 *   POST /query   {sql, args?}   one parameterized statement, routed (service tokens; see edge.ts)
 *   POST /batch   {statements}   statements in one transaction on the primary (service tokens)
 *   POST|GET|PUT|DELETE /sessions[/:id]   distributed sessions, owned by their subject (sessions.ts)
 *   GET  /subscribe              WebSocket to the real-time hub (hub.ts; `?access_token=` allowed here only)
 *   POST /publish {channel, data}   an event on a channel the token may publish on
 *   POST /sync/notify            announce new change-log records on `sync:<table>` (hub.ts)
 *   POST /sync/v1/<step>         the sync gateway for user replicas (sync.ts, docs/gateway.md)
 *   GET  /sync/v1/audit          refused pushes (service tokens)
 *   POST /edge/execute {sql, args?}   a statement on this colo's edge replica (service tokens)
 *   POST /v2/pipeline, /v3/pipeline   404 USE_SYNC_GATEWAY: replicas sync through /sync/v1
 *
 * Every endpoint but /health needs `Authorization: Bearer <JWT>` (auth.ts), with a `sub`.
 * What a token may do is the authorization model of src/auth/ (docs/security.md): a
 * service token (role claim SERVICE_ROLE) runs SQL and manages any session; a user
 * token uses its own sessions and the hub channels HUB_CHANNELS grants it. Errors are
 * `{error: {code, message}}`: 400 BAD_JSON / BAD_REQUEST / QUERY_UNPARSEABLE,
 * 401 AUTH_*, 403 FORBIDDEN / SQL_NOT_ALLOWED / PERMISSION_DENIED / CHANNEL_RESERVED,
 * 413 BODY_TOO_LARGE, 422 STATEMENT_FAILED, 503 PRIMARY_UNAVAILABLE / NO_HEALTHY_REGION, …
 * SQL travels only as parameterized statements: values are never spliced into SQL.
 */
import { AccessPolicy, EdgesyncError, MetricsRegistry } from "edgesync";
import type { ErrorCode, InArgs, Principal, SyncAnnouncement } from "edgesync";
import { accessPolicyConfig, authenticate, principalOf } from "./auth.js";
import { Edge } from "./edge.js";
import type { Caller } from "./edge.js";
import type { Env } from "./env.js";
import { bodyLimit, drainUnread, errorResponse, HttpError, json, jsonText, readJson } from "./http.js";
import { announceSync, checkChannel, hubStats, publish, subscribe, syncCursor } from "./hub-api.js";
import { Sessions, sessionResponse } from "./sessions.js";
import { corsOrigins, preflight, withCors } from "./cors.js";
import { gatewayStats, handleAudit, handleSync, pipelineHint, SYNC_PREFIX } from "./sync.js";
import type { EdgeReplicaStatus } from "./edge-replica.js";

export { RealtimeHub } from "./hub.js";
export { EdgeReplica } from "./edge-replica.js";
export type { Env } from "./env.js";

/** Everything an isolate keeps between requests, rebuilt when the configuration changes. */
interface Node {
  key: string;
  policy: AccessPolicy;
  edge: Edge;
  sessions: Sessions | undefined;
  sessionsError: unknown;
  metrics: MetricsRegistry;
  regionIds: Set<string>;
}
let node: Node | undefined;

function configKey(env: Env): string {
  return [
    env.REGIONS,
    env.LIBSQL_URL,
    env.ROUTER_OPTIONS,
    env.SESSION_OPTIONS,
    env.SESSION_KEYS,
    env.LIBSQL_AUTH_TOKEN,
    env.REGION_TIMEOUT_MS,
    env.SERVICE_ROLE,
    env.SERVICE_ROLE_CLAIM,
    env.HUB_CHANNELS,
  ].join("\u0000");
}

/** Built on first use: nothing may do I/O or draw randomness at module top level. */
function getNode(env: Env): Node {
  const key = configKey(env);
  if (node?.key === key) return node;
  node?.edge.close();
  const policy = new AccessPolicy(accessPolicyConfig(env));
  const seed = crypto.getRandomValues(new Uint32Array(1))[0];
  const edge = new Edge(env, seed, policy);
  let sessions: Sessions | undefined;
  let sessionsError: unknown;
  try {
    sessions = new Sessions(env, edge, policy, crypto.getRandomValues(new Uint8Array(16)));
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
  const regionIds = new Set(edge.regions.map((r) => r.id));
  node = { key, policy, edge, sessions, sessionsError, metrics, regionIds };
  return node;
}

function caller(request: Request, principal: Principal): Caller {
  const cf = request.cf as { latitude?: string; longitude?: string } | undefined;
  const header = request.headers.get("x-edgesync-location") ?? undefined;
  const location = header ?? (cf?.latitude && cf?.longitude ? `${cf.latitude},${cf.longitude}` : undefined);
  return { principal, location };
}

/**
 * The region this request is served in: the colo in production. The
 * `x-edgesync-region` header counts only with TRUST_REGION_HEADER=true (tests, local
 * development) and only for a configured region id: a client cannot invent regions.
 */
function servingRegion(request: Request, env: Env, n: Node): string {
  const header = request.headers.get("x-edgesync-region");
  if (header !== null && env.TRUST_REGION_HEADER === "true" && n.regionIds.has(header)) return header;
  const cf = request.cf as { colo?: string } | undefined;
  return cf?.colo ?? "local";
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

function requireService(principal: Principal, what: string): void {
  if (principal.role !== "service") throw new EdgesyncError(`${what} needs a service token`, "FORBIDDEN");
}

/** `/sessions/:id` ids are generated (base64url): anything else cannot name a session. */
const SESSION_PATH = /^\/sessions\/([A-Za-z0-9_-]{1,128})$/;

async function handle(request: Request, env: Env, ctx: ExecutionContext, n: Node): Promise<Response> {
  const url = new URL(request.url);
  const { pathname } = url;
  const route = `${request.method} ${pathname}`;
  const background = (p: Promise<unknown>) => ctx.waitUntil(p);
  n.edge.probe(background);
  if (n.edge.edge) {
    n.edge.edge.setColo(servingRegion(request, env, n));
    n.edge.edge.refresh(background);
  }

  if (route === "GET /health") {
    await n.edge.probeAll();
    const health = n.edge.router.health(env.HEALTH_THRESHOLDS || undefined, Date.now());
    const edgeReplica = n.edge.edge ? await n.edge.edge.status().catch((e) => ({ error: String(e) })) : undefined;
    return json(edgeReplica ? { ...health, edgeReplica } : health, health.status === "unhealthy" ? 503 : 200);
  }
  if (route === "POST /v2/pipeline" || route === "POST /v3/pipeline") return pipelineHint(request);
  const claims = await authenticate(request, env, route === "GET /subscribe");
  const principal = principalOf(claims, n.policy);
  const limit = bodyLimit(env.MAX_BODY_BYTES);
  if (route === `GET ${SYNC_PREFIX}audit`) {
    requireService(principal, "the sync gateway's audit trail");
    return handleAudit(request, env, n.edge);
  }
  if (pathname.startsWith(SYNC_PREFIX)) {
    const step = pathname.slice(SYNC_PREFIX.length);
    if (step === "push" && principal.access === "ro") {
      throw new EdgesyncError("a read-only token cannot push changes", "FORBIDDEN");
    }
    // Pushed records are in the change log: announce them on `sync:<table>` as
    // POST /sync/notify does (edge replicas and syncOnHub replicas wake up).
    const notify = () => {
      const p = notifyCoalesced(env, n);
      if (p) background(p);
    };
    return handleSync(request, env, n.edge, { ...claims, sub: principal.sub }, step, notify);
  }

  switch (route) {
    case "GET /whoami":
      return json({ ...principal, channels: n.policy.channels(principal) });
    case "GET /metrics": {
      requireService(principal, "GET /metrics");
      const hub = await hubStats(env).catch(() => undefined);
      const edgeReplica = n.edge.edge ? await n.edge.edge.status().catch(() => undefined) : undefined;
      return new Response(metricsText(n, hub) + edgeReplicaMetrics(edgeReplica), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    case "POST /query": {
      const stmt = statementOf(await readJson(request, limit), "body");
      const out = await n.edge.query(stmt.sql, stmt.args, caller(request, principal));
      n.metrics.inc("edgesync_queries_total", ["kind", out.kind, "cache", out.cache], 1);
      for (const table of out.writes) {
        background(publish(env, `table:${table}`, { table, replicationIndex: out.replicationIndex }).catch(() => undefined));
      }
      const headers: Record<string, string> = { "x-edgesync-cache": out.cache };
      if (out.region) headers["x-edgesync-region"] = out.region;
      return jsonText(out.body, 200, headers);
    }
    case "POST /batch": {
      requireService(principal, "running SQL through /query and /batch");
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
      const results = await n.edge.batch(stmts, mode, caller(request, principal));
      for (const table of results.writes) {
        background(publish(env, `table:${table}`, { table, replicationIndex: results.replicationIndex }).catch(() => undefined));
      }
      return jsonText(`{"results":[${results.bodies.join(",")}]}`);
    }
    case "GET /subscribe":
      return subscribe(request, env, n.policy, { p: principal, exp: claims.exp as number });
    case "POST /publish": {
      const body = await readJson(request, limit);
      if (typeof body.channel !== "string") throw new HttpError(400, "BAD_REQUEST", "channel must be a string");
      checkChannel(n.policy, principal, body.channel, "publish");
      return json(await publish(env, body.channel, body.data));
    }
    case "POST /sync/notify":
      return json({ announced: await notifySync(env, n) });
    case "POST /edge/execute": {
      // A statement on this colo's edge replica (service tokens): a write is
      // acknowledged once committed in the replica's storage, and pushed from there.
      requireService(principal, "POST /edge/execute");
      if (!n.edge.edge) throw new HttpError(404, "NOT_FOUND", "this Worker has no edge replica (EDGE_REPLICA_TABLES)");
      const stmt = statementOf(await readJson(request, limit), "body");
      n.policy.authorizeSql(principal, stmt.sql);
      const out = (await n.edge.edge.stub().execute(stmt.sql, stmt.args)) as { ok: boolean; result?: unknown; code?: string; message?: string };
      if (!out.ok && out.code === "NOT_READY") throw new HttpError(503, "EDGE_REPLICA_NOT_READY", out.message ?? "the edge replica is not open");
      if (!out.ok) throw new EdgesyncError(out.message ?? "the edge replica failed", (out.code ?? "INTERNAL_ERROR") as ErrorCode);
      return json(out.result);
    }
    case "POST /sessions": {
      const body = await readJson(request, limit);
      if (body.id !== undefined) {
        throw new HttpError(400, "BAD_REQUEST", "session ids are generated by the server: do not send one");
      }
      if (body.owner !== undefined && typeof body.owner !== "string") throw new HttpError(400, "BAD_REQUEST", "owner must be a string");
      return sessionsOf(n).create(principal, body.owner as string | undefined, body.data, servingRegion(request, env, n));
    }
    case "POST /sessions/gc":
      requireService(principal, "POST /sessions/gc");
      return sessionsOf(n).gc();
    case "GET /sessions/stats":
      requireService(principal, "GET /sessions/stats");
      return json(sessionsOf(n).store.analytics());
  }
  if (pathname.startsWith("/sessions/")) {
    const m = SESSION_PATH.exec(pathname);
    if (!m) throw new EdgesyncError("no session has that id", "SESSION_NOT_FOUND");
    const id = m[1];
    const sessions = sessionsOf(n);
    const region = servingRegion(request, env, n);
    switch (request.method) {
      case "GET":
        return sessionResponse(await sessions.get(id, principal, region, background));
      case "PUT": {
        const body = await readJson(request, limit);
        if (body.version !== undefined && typeof body.version !== "number") throw new HttpError(400, "BAD_REQUEST", "version must be a number");
        return sessions.update(id, principal, body.data, body.version as number | undefined, region, background);
      }
      case "DELETE":
        return sessions.destroy(id, principal, region, background);
    }
    throw new HttpError(405, "METHOD_NOT_ALLOWED", `${request.method} is not allowed on ${pathname}`);
  }
  throw new HttpError(404, "NOT_FOUND", `no route for ${request.method} ${pathname}`);
}

/** The gateway's announcement after a push, per isolate: one at a time (see notifyCoalesced). */
let notifying: Promise<void> | undefined;
let notifyingSince = 0;
let notifyAgain = false;
/** A run older than this is not waited for (its request may have been cancelled with it). */
const NOTIFY_STUCK_MS = 10_000;

/**
 * After a push through the gateway: the log is read and announced as by
 * `POST /sync/notify`, but one read at a time per isolate — a push answered while one is
 * running has one more run after it (which sees its records too), instead of a read of
 * the log per chunk competing with the next chunk's merge. Returns the promise to keep
 * the request alive for, or undefined when the running one will cover this push.
 */
function notifyCoalesced(env: Env, n: Node): Promise<void> | undefined {
  if (notifying && Date.now() - notifyingSince < NOTIFY_STUCK_MS) {
    notifyAgain = true;
    return undefined;
  }
  notifyingSince = Date.now();
  const run = async () => {
    do {
      notifyAgain = false;
      await notifySync(env, n).catch(() => undefined);
    } while (notifyAgain);
  };
  const p: Promise<void> = run().finally(() => {
    if (notifying === p) notifying = undefined;
  });
  notifying = p;
  return p;
}

/**
 * `POST /sync/notify`: reads the server's change log (`_es_log`, src/sync/rules.rs:
 * `rec ->> 1` is a record's table) after the hub's cursor and has the hub announce
 * `sync:<table>` for each table with new records. Anyone may ask — only real records
 * are ever announced, so nobody can make replicas sync on demand.
 */
async function notifySync(env: Env, n: Node): Promise<string[]> {
  const cursor = await syncCursor(env);
  let rows: unknown[][];
  try {
    // The first row is the log's top: below the cursor, the log was replaced (a new or
    // restored database), and the cursor starts again from there.
    const rs = await n.edge.primaryRead({
      sql:
        "SELECT NULL, (SELECT coalesce(max(seq), 0) FROM _es_log), 0, NULL UNION ALL " +
        "SELECT rec ->> 1, max(seq), count(DISTINCT site), min(site) FROM _es_log WHERE seq > ? GROUP BY 1",
      args: [cursor],
    });
    rows = rs.rows.map((r) => [r[0], r[1], r[2], r[3]]);
  } catch (e) {
    // No replica has pushed yet: no such table (SQLite's SQLITE_ERROR, named SQLITE_UNKNOWN by sqld).
    if (e instanceof EdgesyncError && e.code === "SQLITE_UNKNOWN") return [];
    throw e;
  }
  const top = Number(rows[0]?.[1] ?? 0);
  if (top < cursor) return announceSync(env, top, [], true);
  const tables: SyncAnnouncement[] = [];
  let upto = cursor;
  for (const [table, seq, sites, site] of rows.slice(1)) {
    const s = Number(seq);
    upto = Math.max(upto, s);
    if (typeof table !== "string" || AccessPolicy.channelProblem(`sync:${table}`, false) !== undefined) continue;
    tables.push(Number(sites) === 1 ? { table, seq: s, site: String(site) } : { table, seq: s });
  }
  if (tables.length === 0 && upto === cursor) return [];
  return announceSync(env, upto, tables);
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

/** The edge replica of this colo: lag, pending changes, storage size. */
function edgeReplicaMetrics(s: EdgeReplicaStatus | undefined): string {
  if (!s) return "";
  return familiesText("gauge", [
    ["edgesync_edge_replica_ready", s.ready ? 1 : 0, "Whether the edge replica of this colo has synced and answers reads."],
    ["edgesync_edge_replica_lag_ms", s.lagMs, "Milliseconds since the edge replica's last successful sync (-1 before the first)."],
    ["edgesync_edge_replica_pending_changes", s.pendingChanges, "Changes the edge replica has not pushed yet."],
    ["edgesync_edge_replica_storage_bytes", s.storageBytes, "Bytes of the edge replica's database in its Durable Object's storage."],
    ["edgesync_edge_replica_syncs", s.syncs, "Syncs since the edge replica's object started."],
    ["edgesync_edge_replica_sync_failures", s.failures, "Failed syncs since the edge replica's object started."],
  ]);
}

/** Unlabelled families of one kind, rendered: `[name, value, help]` each. */
function familiesText(kind: "counter" | "gauge", families: [string, number, string][]): string {
  const m = new MetricsRegistry();
  for (const [name, value, help] of families) {
    m.describe(name, kind, help);
    if (kind === "counter") m.inc(name, [], value);
    else m.set(name, [], value);
  }
  return m.render();
}

/** The sync gateway's counters, when it has served this isolate. */
function gatewayMetricsText(stats: ReturnType<typeof gatewayStats>): string {
  if (!stats) return "";
  return familiesText("counter", [
    ["edgesync_gateway_pushes_total", stats.pushes, "Pushes served by the sync gateway."],
    ["edgesync_gateway_records_accepted_total", stats.recordsAccepted, "Pushed records merged."],
    ["edgesync_gateway_records_refused_total", stats.recordsRefused, "Pushed records refused (rules, validation)."],
    ["edgesync_gateway_pulls_total", stats.pulls, "Pull pages served."],
    ["edgesync_gateway_records_pulled_total", stats.recordsPulled, "Log records sent to replicas."],
    ["edgesync_gateway_scope_checks_total", stats.scopeChecks, "Scope checks served."],
    ["edgesync_gateway_scope_mismatches_total", stats.scopeMismatches, "Tables whose replica held other rows than readable."],
    ["edgesync_gateway_rate_limited_total", stats.rateLimited, "Pushes refused with 429."],
    ["edgesync_gateway_text_retries_total", stats.textRetries, "Pushes read again: a text cell changed meanwhile."],
  ]);
}

/** Route label: the path with ids folded, so labels stay bounded. */
function routeLabel(request: Request): string {
  const { pathname } = new URL(request.url);
  if (/^\/sessions\/(gc|stats)$/.test(pathname)) return pathname;
  if (pathname.startsWith("/sessions/")) return "/sessions/:id";
  if (/^\/sync\/v1\/(schema|push|pull|scope|rows|bootstrap|audit)$/.test(pathname)) return pathname;
  const known = ["/health", "/whoami", "/metrics", "/query", "/batch", "/sessions", "/subscribe", "/publish", "/sync/notify", "/edge/execute"];
  return known.includes(pathname) ? pathname : "other";
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const t0 = performance.now();
    let n: Node | undefined;
    let response: Response;
    const cors = corsOrigins(env.CORS_ORIGINS);
    try {
      n = getNode(env);
      response = preflight(request, cors) ?? (await handle(request, env, ctx, n));
    } catch (e) {
      response = errorResponse(e);
    }
    await drainUnread(request);
    response = withCors(request, response, cors);
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
