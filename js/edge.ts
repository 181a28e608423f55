/**
 * The edge building blocks the Worker (www/worker/) is made of, implemented in Rust and
 * exported from the wasm module: the query router (`src/router/`), distributed
 * sessions (`src/session/`) and metrics (`src/metrics/`). They do no I/O themselves:
 * they decide and remember, and the caller runs the requests and reports back, so the
 * same code serves a Worker, Node or a test.
 *
 * ```ts
 * import { EdgeRouter, classify } from "edgesync";
 * classify("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x").kind; // "write"
 * const router = new EdgeRouter(JSON.stringify([
 *   { id: "fra", url: "http://primary:8080", role: "primary", location: "50.11,8.68" },
 *   { id: "nyc", url: "http://replica:8080", role: "replica", location: "40.71,-74.01" },
 * ]), undefined, 42);
 * const plan = router.route("select * from t where id = ?", "[1]", "user-1", "40.7,-74.0", Date.now());
 * // plan.targets[0] is the region to try first (here nyc: nearer, no latency samples yet)
 * router.begin(plan.targets[0]);
 * router.reportSuccess(plan.targets[0], 12.5, 1042, Date.now()); // latency ms, replication index
 * ```
 */
import * as wasm from "./wasm/edgesync.js";
import { adopt } from "./wasm-errors.js";

/** How the router classified a SQL text. */
export interface Classification {
  kind: "read" | "write";
  /** Number of statements in the text (`;`-separated, empty ones ignored). */
  statements: number;
  /** Tables read (lowercase, schema stripped), for cache invalidation. */
  reads: string[];
  /** Tables written. */
  writes: string[];
  /** A write whose targets cannot be named (DROP INDEX, ATTACH, PRAGMA x = y, …): invalidates every cached read. */
  writesUnknown: boolean;
  /** False when the result depends on more than the data (random(), now, changes(), …): never cached. */
  deterministic: boolean;
}

/** What `EdgeRouter.route` decided. */
export interface RoutePlan extends Omit<Classification, "deterministic"> {
  /** Region indices (into `regions()`) to try in order. Writes: the primary only. */
  targets: number[];
  /** Read-your-writes: a replica's answer must be at least this replication index. */
  minReplicationIndex?: number;
  /** Set when the result may be cached (`cachePut`). */
  cacheKey?: string;
}

export interface RegionInfo {
  id: string;
  url: string;
  role: "primary" | "replica";
  priority: number;
  location?: { lat: number; lon: number };
}

export interface RegionStatus {
  id: string;
  role: "primary" | "replica";
  state: "closed" | "open" | "halfOpen";
  healthy: boolean;
  ewmaLatencyMs?: number;
  errorRate: number;
  inflight: number;
  replicationIndex: number;
  lagFrames?: number;
  requests: number;
  failures: number;
}

export interface ClusterHealth {
  status: "healthy" | "degraded" | "unhealthy";
  healthy: number;
  total: number;
  primaryHealthy: boolean;
  regions: {
    id: string;
    status: "healthy" | "degraded" | "unhealthy";
    latencyMs?: number;
    errorRate: number;
    lagFrames?: number;
    reasons: string[];
  }[];
}

/** A session as stored: `data` is the JSON text it was created or updated with. */
export interface SessionView {
  id: string;
  data: string;
  home: string;
  createdMs: number;
  expiresMs: number;
  absoluteMs: number;
  version: number;
}

/** A parameterized statement the caller must run on the primary. */
export interface SqlWrite {
  sql: string;
  args: (null | number | bigint | string | Uint8Array)[];
}

export type SessionLookup =
  | { status: "hit"; session: SessionView; write?: SqlWrite }
  | { status: "miss"; session?: undefined; write?: undefined }
  | { status: "expired"; session?: undefined; write: SqlWrite };

export interface StoredSessionRow {
  home: string;
  createdMs: number;
  expiresMs: number;
  absoluteMs: number;
  version: number;
  body: Uint8Array;
}

/** Classifies SQL text as the router does; throws `QUERY_UNPARSEABLE` for broken input. */
export function classify(sql: string): Classification {
  try {
    return wasm.classify(sql) as Classification;
  } catch (e) {
    throw adopt(e);
  }
}

/**
 * The query router: statement classification, latency (EWMA) / locality / load
 * (power-of-two choices) aware region choice, read-your-writes floors, the read cache
 * and per-region circuit breakers. See the README's "Edge worker" section.
 */
export class EdgeRouter {
  readonly #r: wasm.EdgeRouter;

  /** `regions`: JSON array of regions; `options`: JSON router options (camelCase) or undefined. */
  constructor(regions: string, options: string | undefined, seed: number) {
    try {
      this.#r = new wasm.EdgeRouter(regions, options, seed);
    } catch (e) {
      throw adopt(e);
    }
  }

  /** The cached answer (JSON text) for this read by this client, without classifying it. */
  cached(sql: string, argsKey: string, client: string | undefined, nowMs: number): string | undefined {
    return this.#r.cached(sql, argsKey, client, nowMs);
  }

  route(sql: string, argsKey: string, client: string | undefined, location: string | undefined, nowMs: number): RoutePlan {
    try {
      return this.#r.route(sql, argsKey, client, location, nowMs) as RoutePlan;
    } catch (e) {
      throw adopt(e);
    }
  }

  begin(region: number): void {
    this.#r.begin(region);
  }

  reportSuccess(region: number, latencyMs: number, replicationIndex: number | undefined, nowMs: number): void {
    this.#r.reportSuccess(region, latencyMs, replicationIndex, nowMs);
  }

  reportFailure(region: number, failure: "timeout" | "unreachable" | "server", nowMs: number): void {
    this.#r.reportFailure(region, failure, nowMs);
  }

  recordWrite(client: string | undefined, replicationIndex: number | undefined, writes: string[], writesUnknown: boolean, nowMs: number): void {
    this.#r.recordWrite(client, replicationIndex, writes, writesUnknown, nowMs);
  }

  /** A plan's cache entry, if read at or after `minReplicationIndex` (counts a hit or a miss). */
  cacheGet(key: string, minReplicationIndex: number | undefined, nowMs: number): string | undefined {
    return this.#r.cacheGet(key, minReplicationIndex, nowMs);
  }

  cachePut(key: string, reads: string[], replicationIndex: number | undefined, value: string, nowMs: number): void {
    this.#r.cachePut(key, reads, replicationIndex, value, nowMs);
  }

  /** Regions whose breaker allows a probe now. */
  probesDue(nowMs: number): number[] {
    return Array.from(this.#r.probesDue(nowMs));
  }

  regions(): RegionInfo[] {
    return this.#r.regions() as RegionInfo[];
  }

  regionStatus(nowMs: number): RegionStatus[] {
    return this.#r.regionStatus(nowMs) as RegionStatus[];
  }

  stats(): Record<string, unknown> {
    return this.#r.stats() as Record<string, unknown>;
  }

  /** Cluster health from the regions' current figures; `thresholds` JSON or undefined. */
  health(thresholds: string | undefined, nowMs: number): ClusterHealth {
    try {
      return this.#r.health(thresholds, nowMs) as ClusterHealth;
    } catch (e) {
      throw adopt(e);
    }
  }

  /** Router, cache and per-region series in Prometheus text format. */
  metricsText(nowMs: number): string {
    return this.#r.metricsText(nowMs);
  }

  free(): void {
    this.#r.free();
  }
}

/**
 * Distributed sessions: the isolate's cache, sliding and absolute TTLs, home-region
 * migration, compression and AES-256-GCM sealing with key ids. It returns the SQL to run
 * (`SqlWrite`, parameterized); see www/worker/src/sessions.ts for the I/O side.
 */
export class SessionStore {
  readonly #s: wasm.SessionStore;

  /** `keys`: `kid:base64(32 bytes)[,kid:…]`, current key first; `seed`: 16 random bytes. */
  constructor(keys: string, options: string | undefined, seed: Uint8Array) {
    try {
      this.#s = new wasm.SessionStore(keys, options, seed);
    } catch (e) {
      throw adopt(e);
    }
  }

  /** The statements that create the session table (idempotent). */
  static schema(): string[] {
    return wasm.SessionStore.schema() as string[];
  }

  /** `select home, created_ms, expires_ms, absolute_ms, version, body from es_sessions where id = ?` */
  static selectSql(): string {
    return wasm.SessionStore.selectSql();
  }

  #call<T>(f: () => unknown): T {
    try {
      return f() as T;
    } catch (e) {
      throw adopt(e);
    }
  }

  create(id: string, data: string, region: string, nowMs: number): { session: SessionView; write: SqlWrite } {
    return this.#call(() => this.#s.create(id, data, region, nowMs));
  }

  getCached(id: string, region: string, nowMs: number): SessionLookup {
    return this.#call(() => this.#s.getCached(id, region, nowMs));
  }

  load(id: string, row: StoredSessionRow, region: string, nowMs: number): { session: SessionView; write?: SqlWrite } {
    return this.#call(() => this.#s.load(id, row.home, row.createdMs, row.expiresMs, row.absoluteMs, row.version, row.body, region, nowMs));
  }

  update(id: string, data: string, region: string, nowMs: number): { session: SessionView; write: SqlWrite } {
    return this.#call(() => this.#s.update(id, data, region, nowMs));
  }

  destroy(id: string): SqlWrite {
    return this.#call(() => this.#s.destroy(id));
  }

  /** After an UPDATE that changed no row: drops the stale copy, counts a conflict. */
  conflict(id: string): void {
    this.#s.conflict(id);
  }

  /** Drops `id` from the cache (its write failed); whether it was cached. */
  evict(id: string): boolean {
    return this.#s.evict(id);
  }

  /** The DELETE for a session found expired on load; removes the row only if still expired. */
  expiredDelete(id: string, nowMs: number): SqlWrite {
    return this.#call(() => this.#s.expiredDelete(id, nowMs));
  }

  gc(nowMs: number): { evicted: number; write: SqlWrite } {
    return this.#call(() => this.#s.gc(nowMs));
  }

  analytics(): Record<string, number> {
    return this.#s.analytics() as Record<string, number>;
  }

  metricsText(): string {
    return this.#s.metricsText();
  }

  free(): void {
    this.#s.free();
  }
}

/**
 * Named counters, gauges and histograms rendered as Prometheus text. Labels are a flat
 * list `[name1, value1, name2, value2, …]`; each family keeps at most 1000 label sets.
 */
export class MetricsRegistry {
  readonly #m = new wasm.MetricsRegistry();

  describe(name: string, kind: "counter" | "gauge" | "histogram", help: string): void {
    try {
      this.#m.describe(name, kind, help);
    } catch (e) {
      throw adopt(e);
    }
  }

  inc(name: string, labels: string[], by = 1): void {
    this.#m.inc(name, labels, by);
  }

  set(name: string, labels: string[], value: number): void {
    this.#m.set(name, labels, value);
  }

  observe(name: string, labels: string[], value: number): void {
    this.#m.observe(name, labels, value);
  }

  render(): string {
    return this.#m.render();
  }
}

/** What `SyncGateway.handle` answers: an HTTP status and a JSON body to send as is. */
export interface GatewayReply {
  status: number;
  body: string;
  /** For 429: when the user may push again. */
  retryAfterMs?: number;
  /** Set when the primary failed (not a statement error), for the router's breaker. */
  upstreamFailure?: "timeout" | "unreachable" | "server";
}

/** The gateway's counters (per isolate). */
export interface GatewayStats {
  pushes: number;
  recordsAccepted: number;
  recordsRefused: number;
  pulls: number;
  recordsPulled: number;
  scopeChecks: number;
  scopeMismatches: number;
  bootstraps: number;
  rateLimited: number;
  tooLarge: number;
}

/**
 * The edge sync gateway (`src/gateway/`): untrusted replicas sync through the Worker
 * with their user's token. It takes the token's verified claims and one request of the
 * records protocol (`/sync/v1/<step>`), checks it against `SYNC_RULES`, runs the merge
 * on the primary with the database token it was given, and answers. See docs/gateway.md.
 */
export class SyncGateway {
  readonly #g: wasm.SyncGateway;

  /** Throws `CONFIG_ERROR` for bad rules or limits, `URL_INVALID` for a bad primary URL. */
  constructor(rules: string, limits: string | undefined, url: string, authToken: string | undefined, timeoutMs?: number) {
    try {
      this.#g = new wasm.SyncGateway(rules, limits, url, authToken, timeoutMs);
    } catch (e) {
      throw adopt(e);
    }
  }

  /** Serves `step` (`schema`, `push`, `pull`, `scope`, `rows`, `bootstrap`) for `claims`. */
  handle(step: string, claims: Record<string, unknown>, body: Uint8Array, nowMs = Date.now()): Promise<GatewayReply> {
    return this.#g.handle(step, JSON.stringify(claims), body, nowMs) as Promise<GatewayReply>;
  }

  /** The audit trail of refused records after id `since` (`{entries: [...]}`). */
  audit(since: number, limit: number): Promise<GatewayReply> {
    return this.#g.audit(since, limit) as Promise<GatewayReply>;
  }

  stats(): GatewayStats {
    return JSON.parse(this.#g.stats()) as GatewayStats;
  }

  get maxBodyBytes(): number {
    return this.#g.maxBodyBytes();
  }
}
