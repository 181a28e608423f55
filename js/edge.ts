/**
 * The edge building blocks the Worker (www/worker/) is made of, implemented in Rust and
 * exported from the wasm module: the query router (`src/router/`), distributed
 * sessions (`src/session/`), the authorization model (`src/auth/`) and metrics
 * (`src/metrics/`). They do no I/O themselves:
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
 * const plan = router.route("select * from t where id = ?", "[1]", "service", "user-1", "40.7,-74.0", Date.now());
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
  /** True only when every function called is on the allow-list of deterministic functions: others are never cached. */
  deterministic: boolean;
  /** A single deterministic SELECT/VALUES: its result may be cached. */
  cacheable: boolean;
  /** Why nobody may run this through the edge (host files, raw pages, ATTACH, worker tables, …), if so. */
  refused?: string;
}

/** What `EdgeRouter.route` decided. */
export interface RoutePlan extends Omit<Classification, "deterministic" | "cacheable" | "refused"> {
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
  /** The token subject it belongs to. */
  owner: string;
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
  /** `validate`: run `SessionStore.validateSql()` on the primary and pass the answer to `validated` first. */
  | { status: "hit"; session: SessionView; write?: SqlWrite; validate: boolean }
  | { status: "miss"; session?: undefined; write?: undefined }
  | { status: "expired"; session?: undefined; write: SqlWrite };

/** A row of `SessionStore.selectSql()`: the session and its ledger entry. */
export interface StoredSessionRow {
  home: string;
  createdMs: number;
  expiresMs: number;
  absoluteMs: number;
  version: number;
  body: Uint8Array;
  /** The ledger's latest version for the id; undefined when it has none. */
  ledgerVersion: number | undefined;
  /** The ledger says the session was destroyed. */
  revoked: boolean;
}

/** An authenticated caller (see `AccessPolicy.principal`). */
export interface Principal {
  sub: string;
  role: "service" | "user";
  access: "rw" | "ro";
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
 * and per-region circuit breakers. See docs/worker.md.
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

  /** The cached answer (JSON text) for this read in `scope` by this client, without classifying it. */
  cached(sql: string, argsKey: string, scope: string, client: string | undefined, nowMs: number): string | undefined {
    return this.#r.cached(sql, argsKey, scope, client, nowMs);
  }

  /** Routes the worker's own statement (no authorization); `scope` names who may see a cached result. */
  route(sql: string, argsKey: string, scope: string, client: string | undefined, location: string | undefined, nowMs: number): RoutePlan {
    try {
      return this.#r.route(sql, argsKey, scope, client, location, nowMs) as RoutePlan;
    } catch (e) {
      throw adopt(e);
    }
  }

  /**
   * Authorizes a client's statement for `principal` (FORBIDDEN, SQL_NOT_ALLOWED,
   * PERMISSION_DENIED), then routes it in the principal's cache scope.
   */
  routeFor(principal: Principal, sql: string, argsKey: string, location: string | undefined, nowMs: number): RoutePlan {
    try {
      return this.#r.routeFor(principal.sub, principal.role, principal.access, sql, argsKey, location, nowMs) as RoutePlan;
    } catch (e) {
      throw adopt(e);
    }
  }

  /** The cached answer for `principal` (its scope and read-your-writes floor); FORBIDDEN for a user. */
  cachedFor(principal: Principal, sql: string, argsKey: string, nowMs: number): string | undefined {
    try {
      return this.#r.cachedFor(principal.sub, principal.role, principal.access, sql, argsKey, nowMs);
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

  /** The session row joined with its ledger entry (one argument: the id); columns in `StoredSessionRow` order. */
  static selectSql(): string {
    return wasm.SessionStore.selectSql();
  }

  /** `SELECT version, revoked FROM es_session_ledger WHERE id = ?`: confirms a cached copy (run on the primary). */
  static validateSql(): string {
    return wasm.SessionStore.validateSql();
  }

  /** A new session id from 24 random bytes (`crypto.getRandomValues`): ids are never chosen by clients. */
  static newId(random: Uint8Array): string {
    try {
      return wasm.SessionStore.newId(random);
    } catch (e) {
      throw adopt(e);
    }
  }

  /** Whether `id` has the shape of a generated session id. */
  static isId(id: string): boolean {
    return wasm.SessionStore.isId(id);
  }

  #call<T>(f: () => unknown): T {
    try {
      return f() as T;
    } catch (e) {
      throw adopt(e);
    }
  }

  create(id: string, owner: string, data: string, region: string, nowMs: number): { session: SessionView; write: SqlWrite } {
    return this.#call(() => this.#s.create(id, owner, data, region, nowMs));
  }

  getCached(id: string, region: string, nowMs: number): SessionLookup {
    return this.#call(() => this.#s.getCached(id, region, nowMs));
  }

  /** The ledger's answer for a cached copy (`ledgerVersion` undefined: no entry). */
  validated(id: string, ledgerVersion: number | undefined, revoked: boolean, nowMs: number): "current" | "stale" | "gone" {
    return this.#s.validated(id, ledgerVersion, revoked, nowMs) as "current" | "stale" | "gone";
  }

  load(id: string, row: StoredSessionRow, region: string, nowMs: number): { session: SessionView; write?: SqlWrite } {
    return this.#call(() =>
      this.#s.load(id, row.home, row.createdMs, row.expiresMs, row.absoluteMs, row.version, row.body, row.ledgerVersion, row.revoked, region, nowMs),
    );
  }

  /** `expectedVersion`: refuse (SESSION_CONFLICT) unless the session is at that version. */
  update(id: string, data: string, region: string, expectedVersion: number | undefined, nowMs: number): { session: SessionView; write: SqlWrite } {
    return this.#call(() => this.#s.update(id, data, region, expectedVersion, nowMs));
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

  /** Evicts expired cached sessions; `writes` (run in one batch) delete expired rows and old ledger entries. */
  gc(nowMs: number): { evicted: number; writes: SqlWrite[] } {
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
 * The edge's authorization model (src/auth/): principals from verified token claims,
 * who may run which SQL, which hub channels a principal may use, session ownership.
 * See docs/security.md.
 *
 * ```ts
 * const policy = new AccessPolicy(JSON.stringify({ serviceRole: "service", channels: { subscribe: ["user:{sub}:*"] } }));
 * const p = policy.principal(JSON.stringify(claims)); // {sub, role, access}; AUTH_INVALID without sub
 * policy.checkChannel(p, "user:alice:inbox", "subscribe"); // throws FORBIDDEN / CHANNEL_RESERVED
 * ```
 */
export class AccessPolicy {
  readonly #p: wasm.AccessPolicy;

  /** `config`: JSON `{serviceRole?, serviceRoleClaim?, channels?: {subscribe?, publish?}}`, or undefined for the defaults. */
  constructor(config: string | undefined) {
    try {
      this.#p = new wasm.AccessPolicy(config);
    } catch (e) {
      throw adopt(e);
    }
  }

  /** The principal of verified claims; AUTH_INVALID when `sub` is missing or `a` is unknown. */
  principal(claimsJson: string): Principal {
    try {
      return this.#p.principal(claimsJson) as Principal;
    } catch (e) {
      throw adopt(e);
    }
  }

  /** Throws INVALID_ARGUMENT, CHANNEL_RESERVED, PERMISSION_DENIED or FORBIDDEN unless allowed. */
  checkChannel(p: Principal, channel: string, op: "subscribe" | "publish"): void {
    try {
      this.#p.checkChannel(p.sub, p.role, p.access, channel, op);
    } catch (e) {
      throw adopt(e);
    }
  }

  /** The channel patterns `p` holds, `{sub}` filled in. */
  channels(p: Principal): { subscribe: string[]; publish: string[] } {
    return this.#p.channels(p.sub, p.role, p.access) as { subscribe: string[]; publish: string[] };
  }

  /** Classifies `sql` and throws unless `p` may run it (FORBIDDEN, SQL_NOT_ALLOWED, PERMISSION_DENIED). */
  authorizeSql(p: Principal, sql: string): Pick<Classification, "kind" | "writes" | "writesUnknown"> {
    try {
      return this.#p.authorizeSql(p.sub, p.role, p.access, sql) as Pick<Classification, "kind" | "writes" | "writesUnknown">;
    } catch (e) {
      throw adopt(e);
    }
  }

  /** Whether `p` may read, change or end a session owned by `owner`. */
  mayUseSession(p: Principal, owner: string): boolean {
    return this.#p.mayUseSession(p.sub, p.role, p.access, owner);
  }

  /** A subject as it appears in channel names: `%XX` for every byte outside `A–Z a–z 0–9 - . _ ~`. */
  static escapeSub(sub: string): string {
    return wasm.AccessPolicy.escapeSub(sub);
  }

  /** Why `channel` is not a usable hub channel (`wildcard`: a trailing `*` allowed), or undefined. */
  static channelProblem(channel: string, wildcard: boolean): string | undefined {
    return wasm.AccessPolicy.channelProblem(channel, wildcard);
  }

  free(): void {
    this.#p.free();
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
  /** Pushes read again because a text cell changed meanwhile (concurrent edits). */
  textRetries: number;
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
