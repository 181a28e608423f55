/**
 * The query path: edgesync's Rust router (`EdgeRouter`, src/router/) decides, this file
 * does the I/O. One `Edge` per isolate and configuration holds the router (latency
 * EWMAs, circuit breakers, read-your-writes floors, the read cache) and one libSQL
 * client per region.
 *
 * Every client statement is authorized first (`routeFor` / `AccessPolicy.authorizeSql`,
 * src/auth/): only service tokens run SQL, read-only ones only reads, and nobody
 * reaches what the guard refuses (host files, raw pages, ATTACH, the worker's tables).
 * Cached results are kept per principal scope.
 *
 * A read: cached → answered without I/O. Otherwise the plan's targets are tried in
 * order (power-of-two-choices pick first, then by score, the primary always among
 * them), at most READ_ATTEMPTS of them; a transport failure (timeout, refused, a 5xx
 * the region also gives a `select 1` probe) is reported to the router (it opens the
 * region's breaker after repeated failures) and the next target is tried; a replica
 * whose answer is older than the client's read-your-writes floor is skipped for the
 * next target. A SQL error is the answer — and so is an HTTP 500 for a statement the
 * region fails on while it answers the probe (e.g. a result it cannot encode):
 * `STATEMENT_FAILED` (422), never a region failure, so no client can mark a region or
 * the cluster unhealthy.
 *
 * A write: the primary only, never retried elsewhere (a replica must not accept it and
 * a timed-out write may have committed): a transport failure is `PRIMARY_UNAVAILABLE`
 * (503) and the write is not acknowledged. On success the client's read-your-writes
 * floor becomes the primary's replication index, cached reads of the written tables
 * are dropped, and the hub is told (channel `table:<name>`).
 */
import { createClient, EdgeRouter, EdgesyncError } from "edgesync";
import type { AccessPolicy, Client, ErrorCode, InArgs, Principal, ResultSet, RoutePlan } from "edgesync";
import type { QueryAnswer } from "./edge-replica.js";
import type { Env } from "./env.js";
import { HttpError, redact } from "./http.js";

/** Reads try at most this many regions (the retry budget). */
const READ_ATTEMPTS = 3;
const DEFAULT_TIMEOUT_MS = 2000;

export interface QueryOutcome {
  /** The result as JSON text (`ResultSet.toJSON()`), ready to send. */
  body: string;
  /** The region that answered; `undefined` for a cache hit. */
  region: string | undefined;
  cache: "hit" | "miss" | "bypass";
  kind: "read" | "write";
  /** Tables a write changed (for the hub); empty for reads. */
  writes: string[];
  replicationIndex: number | undefined;
}

/** Who a request comes from (authorization, cache scope, read-your-writes) and where (locality). */
export interface Caller {
  principal: Principal;
  /** `"lat,lon"` from request.cf or the x-edgesync-location header. */
  location: string | undefined;
}

function transportFailure(e: unknown): "timeout" | "unreachable" | "server" | undefined {
  if (!(e instanceof EdgesyncError)) return undefined;
  switch (e.code) {
    case "TIMEOUT":
      return "timeout";
    case "SERVER_UNREACHABLE":
      return "unreachable";
    case "SERVER_ERROR": // 5xx, or the region refuses the worker's libSQL token: unusable for now
    case "HRANA_PROTO_ERROR":
    case "HRANA_WEBSOCKET_ERROR":
      return e.status === 403 ? undefined : "server";
    default:
      return undefined; // SQL and auth errors: the region answered
  }
}

export class Edge {
  readonly router: EdgeRouter;
  readonly regions: { id: string; url: string; role: "primary" | "replica" }[];
  private readonly clients: Client[];
  /** Index of the primary in `regions`. */
  readonly primary: number;
  private schemaReady = new Set<string>();
  private lastProbeAll = -Infinity;
  /** A `select 1` in flight per region, shared by the 500s that wait on it. */
  private readonly checks = new Map<number, Promise<boolean>>();

  /** The edge replica (a Durable Object in this colo), when one is bound. */
  readonly edge: EdgeReplicaRegion | undefined;

  constructor(
    env: Env,
    seed: number,
    private readonly policy: AccessPolicy,
  ) {
    let regionsJson = regionsConfig(env);
    const timeout = positive(env.REGION_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, "REGION_TIMEOUT_MS");
    const withEdge = env.EDGE_REPLICA !== undefined && !!env.EDGE_REPLICA_TABLES;
    if (withEdge) regionsJson = withEdgeRegion(regionsJson);
    this.router = new EdgeRouter(regionsJson, env.ROUTER_OPTIONS || undefined, seed);
    this.regions = this.router.regions();
    this.primary = this.regions.findIndex((r) => r.role === "primary");
    const authToken = env.LIBSQL_AUTH_TOKEN || undefined;
    const edgeIndex = this.regions.findIndex((r) => r.id === EDGE_REGION_ID);
    this.edge = withEdge && edgeIndex >= 0 ? new EdgeReplicaRegion(env, edgeIndex) : undefined;
    this.clients = this.regions.map((r, i) =>
      i === edgeIndex && this.edge ? this.edge.client : createClient({ url: r.url, authToken, timeout }),
    );
  }

  /** Runs one client statement where the router says, once the principal may run it. */
  async query(sql: string, args: InArgs | undefined, caller: Caller): Promise<QueryOutcome> {
    const argsKey = args === undefined ? "" : JSON.stringify(args);
    const now = Date.now();
    const { principal } = caller;
    // With an edge replica, the reads it holds are answered from it (never from the
    // cache: no TTL staleness), so every statement is routed first.
    const hit = this.edge ? undefined : this.router.cachedFor(principal, sql, argsKey, now);
    if (hit !== undefined) {
      return { body: hit, region: undefined, cache: "hit", kind: "read", writes: [], replicationIndex: undefined };
    }
    const plan = this.router.routeFor(principal, sql, argsKey, caller.location, now);
    if (plan.statements > 1) {
      throw new HttpError(400, "MULTI_STATEMENT", `one statement per query (got ${plan.statements}); use /batch`);
    }
    if (plan.kind === "write") {
      const rs = await this.write({ sql, args });
      this.router.recordWrite(principal.sub, rs.replicationIndex, plan.writes, plan.writesUnknown, Date.now());
      return {
        body: JSON.stringify(rs.toJSON()),
        region: this.regions[this.primary].id,
        cache: "bypass",
        kind: "write",
        writes: plan.writesUnknown ? ["*"] : plan.writes,
        replicationIndex: rs.replicationIndex,
      };
    }
    if (this.edge) {
      if (this.edge.serves(plan)) {
        // The edge replica first; the router's own targets if it cannot answer.
        plan.targets = [this.edge.index, ...plan.targets.filter((t) => t !== this.edge!.index)];
        const { rs, region } = await this.read(plan, { sql, args });
        return {
          // The edge replica's answer comes as JSON text (a region's as a result set).
          body: (rs as { body?: string }).body ?? JSON.stringify(rs.toJSON()),
          region: this.regions[region].id,
          cache: "bypass",
          kind: "read",
          writes: [],
          replicationIndex: rs.replicationIndex,
        };
      }
      plan.targets = plan.targets.filter((t) => t !== this.edge!.index);
    }
    if (plan.cacheKey !== undefined) {
      // Stored since the lookup above, or held back only by this client's floor.
      const again = this.router.cacheGet(plan.cacheKey, plan.minReplicationIndex, now);
      if (again !== undefined) {
        return { body: again, region: undefined, cache: "hit", kind: "read", writes: [], replicationIndex: undefined };
      }
    }
    const { rs, region } = await this.read(plan, { sql, args });
    const body = JSON.stringify(rs.toJSON());
    if (plan.cacheKey !== undefined) {
      this.router.cachePut(plan.cacheKey, plan.reads, rs.replicationIndex, body, Date.now());
    }
    return {
      body,
      region: this.regions[region].id,
      cache: plan.cacheKey === undefined ? "bypass" : "miss",
      kind: "read",
      writes: [],
      replicationIndex: rs.replicationIndex,
    };
  }

  /**
   * Statements in one transaction. A transaction needs one consistent server, so a
   * batch runs on the primary whatever it contains; its writes count for
   * read-your-writes and cache invalidation like single writes. Every statement is
   * authorized first; a read-only principal's batch runs as a read transaction.
   */
  async batch(
    stmts: { sql: string; args?: InArgs }[],
    mode: "write" | "read" | "deferred",
    caller: Caller,
  ): Promise<{ bodies: string[]; writes: string[]; replicationIndex: number | undefined }> {
    const { principal } = caller;
    const writes = new Set<string>();
    let unknown = false;
    stmts.forEach((s, step) => {
      let c;
      try {
        c = this.policy.authorizeSql(principal, s.sql);
      } catch (e) {
        if (e instanceof EdgesyncError) Object.assign(e, { statementIndex: step });
        throw e;
      }
      if (c.kind === "write") {
        for (const t of c.writes) writes.add(t);
        unknown ||= c.writesUnknown;
      }
    });
    if (principal.access === "ro") mode = "read";
    const results = await this.onPrimary("batch", (c) => c.batch(stmts, mode), (r) => r.at(-1)?.replicationIndex);
    const replicationIndex = results.at(-1)?.replicationIndex;
    this.router.recordWrite(principal.sub, replicationIndex, [...writes], unknown, Date.now());
    return {
      bodies: results.map((rs) => JSON.stringify(rs.toJSON())),
      writes: unknown ? ["*"] : [...writes],
      replicationIndex,
    };
  }

  /** A write on the primary (also used by sessions); never retried elsewhere. */
  write(stmt: { sql: string; args?: InArgs }): Promise<ResultSet> {
    return this.onPrimary("write", (c) => c.execute(stmt), (rs) => rs.replicationIndex);
  }

  /**
   * `call` on the primary; a transport failure there means the work was not
   * acknowledged: `PRIMARY_UNAVAILABLE`. SQL errors pass through as they are.
   */
  private async onPrimary<T>(what: string, call: (c: Client) => Promise<T>, index: (r: T) => number | undefined): Promise<T> {
    try {
      return await this.attempt(this.primary, call, index);
    } catch (e) {
      if (transportFailure(e) === undefined) throw e;
      const cause = e instanceof EdgesyncError ? `${e.code}: ${redact(e.message)}` : redact(String(e));
      throw new HttpError(503, "PRIMARY_UNAVAILABLE", `the ${what} was not acknowledged: the primary (${this.regions[this.primary].id}) failed (${cause})`);
    }
  }

  /** The worker's own statements in one write transaction on the primary. */
  writeBatch(stmts: { sql: string; args?: InArgs }[]): Promise<ResultSet[]> {
    return this.onPrimary("write", (c) => c.batch(stmts, "write"), (r) => r.at(-1)?.replicationIndex);
  }

  /** One statement on the primary, for the worker's own reads that must be current (sessions). */
  primaryRead(stmt: { sql: string; args?: InArgs }): Promise<ResultSet> {
    return this.onPrimary("read", (c) => c.execute(stmt), (rs) => rs.replicationIndex);
  }

  /** A read through the plan's targets with failover (also used by sessions). */
  async read(plan: RoutePlan, stmt: { sql: string; args?: InArgs }): Promise<{ rs: ResultSet; region: number }> {
    const why: string[] = [];
    let tried = 0;
    for (const target of plan.targets) {
      if (tried >= READ_ATTEMPTS) break;
      tried++;
      let rs: ResultSet;
      try {
        rs = await this.execute(target, stmt);
      } catch (e) {
        if (transportFailure(e) === undefined) throw e;
        why.push(`${this.regions[target].id}: ${redact(e instanceof Error ? e.message : String(e))}`);
        continue;
      }
      const floor = plan.minReplicationIndex;
      if (floor !== undefined && target !== this.primary && (rs.replicationIndex ?? 0) < floor) {
        why.push(`${this.regions[target].id} is behind the client's last write`);
        tried--; // a stale answer is not a failure: it does not use up the retry budget
        continue;
      }
      return { rs, region: target };
    }
    throw new HttpError(503, "NO_HEALTHY_REGION", `no region could serve the read (${why.join("; ") || "no region was tried"})`);
  }

  /** One statement on one region, timed and reported to the router. */
  private execute(target: number, stmt: { sql: string; args?: InArgs }): Promise<ResultSet> {
    return this.attempt(target, (c) => c.execute(stmt), (rs) => rs.replicationIndex);
  }

  /**
   * One request to one region, timed and reported to the router: a transport
   * failure counts against the region; any answer (a SQL error too) is a success.
   * An HTTP 500 is a failure only if the region also fails a `select 1`: otherwise the
   * statement caused it, and the caller gets STATEMENT_FAILED (422).
   */
  private async attempt<T>(target: number, call: (c: Client) => Promise<T>, index: (r: T) => number | undefined): Promise<T> {
    this.router.begin(target);
    const t0 = performance.now();
    try {
      const r = await call(this.clients[target]);
      this.router.reportSuccess(target, performance.now() - t0, index(r), Date.now());
      return r;
    } catch (e) {
      const failure = transportFailure(e);
      if (failure === "server" && e instanceof EdgesyncError && e.code === "SERVER_ERROR" && e.status === 500) {
        if (await this.answers(target)) {
          this.router.reportSuccess(target, performance.now() - t0, undefined, Date.now());
          const why = redact(e.message).replace(/^server error \(HTTP 500\): /, "");
          throw new EdgesyncError(
            `region ${this.regions[target].id} failed on this statement (HTTP 500: ${why}) while it answers others; a write may have been applied`,
            "STATEMENT_FAILED",
          );
        }
      }
      if (failure === undefined) this.router.reportSuccess(target, performance.now() - t0, undefined, Date.now());
      else this.router.reportFailure(target, failure, Date.now());
      throw e;
    }
  }

  /** Whether `target` answers `select 1` (one probe in flight per region, shared). */
  private answers(target: number): Promise<boolean> {
    let check = this.checks.get(target);
    if (!check) {
      check = this.clients[target]
        .execute("select 1")
        .then(
          () => true,
          () => false,
        )
        .finally(() => this.checks.delete(target));
      this.checks.set(target, check);
    }
    return check;
  }

  /** Statements on the primary in one transaction (schema set-up). */
  async primaryBatch(key: string, stmts: string[]): Promise<void> {
    if (this.schemaReady.has(key)) return;
    await this.onPrimary("schema set-up", (c) => c.batch(stmts, "write"), (r) => r.at(-1)?.replicationIndex);
    this.schemaReady.add(key);
  }

  /** Probes regions whose breaker waits for one (`select 1`), in the background. */
  probe(waitUntil: (p: Promise<unknown>) => void): void {
    for (const target of this.router.probesDue(Date.now())) {
      waitUntil(this.execute(target, { sql: "select 1" }).catch(() => undefined));
    }
  }

  /**
   * Probes every region (for /health), so its figures are current — at most once a
   * second: /health needs no token, and must not let anyone multiply upstream load.
   */
  async probeAll(): Promise<void> {
    const now = Date.now();
    if (now - this.lastProbeAll < 1000) return;
    this.lastProbeAll = now;
    await Promise.all(this.regions.map((_, i) => this.execute(i, { sql: "select 1" }).catch(() => undefined)));
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

/** The router's name for the edge replica's region. */
export const EDGE_REGION_ID = "edge";

/**
 * The regions with the edge replica added as a replica region. Its URL is never
 * fetched: requests to it go to the Durable Object (`EdgeReplicaRegion.client`).
 */
function withEdgeRegion(regionsJson: string): string {
  const regions = JSON.parse(regionsJson) as { id: string }[];
  if (regions.some((r) => r.id === EDGE_REGION_ID)) throw new HttpError(500, "CONFIG_ERROR", `region id "${EDGE_REGION_ID}" is reserved for the edge replica`);
  return JSON.stringify([...regions, { id: EDGE_REGION_ID, url: "http://edge-replica.invalid", role: "replica" }]);
}

/**
 * The edge replica as the router sees it: a replica region whose "client" asks the
 * Durable Object of this colo. It serves a read when it holds every table the read
 * names, it has synced, and the caller has no read-your-writes floor (its answers carry
 * no replication index: a client that just wrote reads elsewhere until it is current).
 */
export class EdgeReplicaRegion {
  readonly client: Client;
  #tables: Set<string> | undefined;
  #ready = false;
  #checkedAt = -Infinity;
  #colo = "local";

  constructor(
    private readonly env: Env,
    readonly index: number,
  ) {
    const execute = async (stmt: { sql: string; args?: InArgs } | string): Promise<ResultSet> => {
      const { sql, args } = typeof stmt === "string" ? { sql: stmt, args: undefined } : stmt;
      const out = (await this.stub().query(sql, args)) as QueryAnswer;
      if (out.ok) {
        const body = out.body;
        return { toJSON: () => JSON.parse(body), body, replicationIndex: undefined } as unknown as ResultSet;
      }
      // Not open or not synced yet: a failure for the router (the next target answers).
      const message = out.message ?? "the edge replica failed";
      console.warn("edge replica:", out.code, message);
      if (out.code === "NOT_READY" || out.code === "NOT_A_READ") throw new EdgesyncError(message, "SERVER_UNREACHABLE");
      throw new EdgesyncError(message, (out.code ?? "INTERNAL_ERROR") as ErrorCode);
    };
    this.client = { execute } as unknown as Client;
  }

  /** The colo this isolate serves (the object is named by it). */
  setColo(colo: string): void {
    this.#colo = colo;
  }

  /** The object's id, by colo: `idFromName` hashes the name, once per colo, not per read. */
  #ids = new Map<string, DurableObjectId>();

  stub(): DurableObjectStub<import("./edge-replica.js").EdgeReplica> {
    const ns = this.env.EDGE_REPLICA!;
    let id = this.#ids.get(this.#colo);
    if (id === undefined) this.#ids.set(this.#colo, (id = ns.idFromName(this.#colo)));
    return ns.get(id);
  }

  /** Whether this read can be answered from the edge replica. */
  serves(plan: RoutePlan): boolean {
    if (plan.kind !== "read" || plan.minReplicationIndex !== undefined || plan.reads.length === 0 || !this.#ready) return false;
    return plan.reads.every((t) => this.#tables?.has(t));
  }

  /** Refreshes what the replica holds (at most every 2 s), in the background. */
  refresh(waitUntil: (p: Promise<unknown>) => void): void {
    const now = Date.now();
    if (now - this.#checkedAt < 2_000) return;
    this.#checkedAt = now;
    waitUntil(this.status().catch(() => undefined));
  }

  async status(): Promise<import("./edge-replica.js").EdgeReplicaStatus> {
    const s = await this.stub().status();
    this.#tables = new Set(s.tables.map((t) => t.toLowerCase()));
    this.#ready = s.ready;
    return s;
  }

  /** After a write: the replica syncs now. */
  wake(waitUntil: (p: Promise<unknown>) => void): void {
    waitUntil(this.stub().wake().catch(() => undefined));
  }
}

function regionsConfig(env: Env): string {
  if (env.REGIONS) return env.REGIONS;
  if (env.LIBSQL_URL) return JSON.stringify([{ id: "primary", url: env.LIBSQL_URL, role: "primary" }]);
  throw new HttpError(500, "CONFIG_ERROR", "set REGIONS (or LIBSQL_URL for a single primary)");
}

export function positive(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new HttpError(500, "CONFIG_ERROR", `${name} must be a positive number`);
  return n;
}
