/**
 * The query path: edgesync's Rust router (`EdgeRouter`, src/router/) decides, this file
 * does the I/O. One `Edge` per isolate and configuration holds the router (latency
 * EWMAs, circuit breakers, read-your-writes floors, the read cache) and one libSQL
 * client per region.
 *
 * A read: cached → answered without I/O. Otherwise the plan's targets are tried in
 * order (power-of-two-choices pick first, then by score, the primary always among
 * them), at most READ_ATTEMPTS of them; a transport failure (timeout, refused, 5xx)
 * is reported to the router (it opens the region's breaker after repeated failures)
 * and the next target is tried; a replica whose answer is older than the client's
 * read-your-writes floor is skipped for the next target. A SQL error is the answer.
 *
 * A write: the primary only, never retried elsewhere (a replica must not accept it and
 * a timed-out write may have committed): a transport failure is `PRIMARY_UNAVAILABLE`
 * (503) and the write is not acknowledged. On success the client's read-your-writes
 * floor becomes the primary's replication index, cached reads of the written tables
 * are dropped, and the hub is told (channel `table:<name>`).
 */
import { classify, createClient, EdgeRouter, EdgesyncError } from "edgesync";
import type { Client, InArgs, ResultSet, RoutePlan } from "edgesync";
import type { Env } from "./env.js";
import { HttpError } from "./http.js";

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

/** Where a request comes from, for locality and read-your-writes. */
export interface Caller {
  /** The authenticated subject (JWT `sub`): the read-your-writes scope. */
  client: string | undefined;
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

  constructor(env: Env, seed: number) {
    const regionsJson = regionsConfig(env);
    const timeout = positive(env.REGION_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, "REGION_TIMEOUT_MS");
    this.router = new EdgeRouter(regionsJson, env.ROUTER_OPTIONS || undefined, seed);
    this.regions = this.router.regions();
    this.primary = this.regions.findIndex((r) => r.role === "primary");
    const authToken = env.LIBSQL_AUTH_TOKEN || undefined;
    this.clients = this.regions.map((r) => createClient({ url: r.url, authToken, timeout }));
  }

  /** Runs one parameterized statement where the router says. */
  async query(sql: string, args: InArgs | undefined, caller: Caller): Promise<QueryOutcome> {
    const argsKey = args === undefined ? "" : JSON.stringify(args);
    const now = Date.now();
    const hit = this.router.cached(sql, argsKey, caller.client, now);
    if (hit !== undefined) {
      return { body: hit, region: undefined, cache: "hit", kind: "read", writes: [], replicationIndex: undefined };
    }
    const plan = this.router.route(sql, argsKey, caller.client, caller.location, now);
    if (plan.statements > 1) {
      throw new HttpError(400, "MULTI_STATEMENT", `one statement per query (got ${plan.statements}); use /batch`);
    }
    if (plan.kind === "write") {
      const rs = await this.write({ sql, args });
      this.router.recordWrite(caller.client, rs.replicationIndex, plan.writes, plan.writesUnknown, Date.now());
      return {
        body: JSON.stringify(rs.toJSON()),
        region: this.regions[this.primary].id,
        cache: "bypass",
        kind: "write",
        writes: plan.writesUnknown ? ["*"] : plan.writes,
        replicationIndex: rs.replicationIndex,
      };
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
   * read-your-writes and cache invalidation like single writes.
   */
  async batch(
    stmts: { sql: string; args?: InArgs }[],
    mode: "write" | "read" | "deferred",
    caller: Caller,
  ): Promise<{ bodies: string[]; writes: string[]; replicationIndex: number | undefined }> {
    const writes = new Set<string>();
    let unknown = false;
    for (const s of stmts) {
      const c = classify(s.sql);
      if (c.kind === "write") {
        for (const t of c.writes) writes.add(t);
        unknown ||= c.writesUnknown;
      }
    }
    const results = await this.onPrimary("batch", (c) => c.batch(stmts, mode), (r) => r.at(-1)?.replicationIndex);
    const replicationIndex = results.at(-1)?.replicationIndex;
    this.router.recordWrite(caller.client, replicationIndex, [...writes], unknown, Date.now());
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
      const cause = e instanceof EdgesyncError ? `${e.code}: ${e.message}` : String(e);
      throw new HttpError(503, "PRIMARY_UNAVAILABLE", `the ${what} was not acknowledged: the primary failed (${cause})`);
    }
  }

  /** A read through the plan's targets with failover (also used by sessions). */
  async read(plan: RoutePlan, stmt: { sql: string; args?: InArgs }): Promise<{ rs: ResultSet; region: number }> {
    let last = "no region was tried";
    let tried = 0;
    for (const target of plan.targets) {
      if (tried >= READ_ATTEMPTS) break;
      tried++;
      let rs: ResultSet;
      try {
        rs = await this.execute(target, stmt);
      } catch (e) {
        if (transportFailure(e) === undefined) throw e;
        last = `${this.regions[target].id}: ${e instanceof Error ? e.message : e}`;
        continue;
      }
      const floor = plan.minReplicationIndex;
      if (floor !== undefined && target !== this.primary && (rs.replicationIndex ?? 0) < floor) {
        last = `${this.regions[target].id} is behind the client's last write`;
        tried--; // a stale answer is not a failure: it does not use up the retry budget
        continue;
      }
      return { rs, region: target };
    }
    throw new HttpError(503, "NO_HEALTHY_REGION", `no region could serve the read (${last})`);
  }

  /** One statement on one region, timed and reported to the router. */
  private execute(target: number, stmt: { sql: string; args?: InArgs }): Promise<ResultSet> {
    return this.attempt(target, (c) => c.execute(stmt), (rs) => rs.replicationIndex);
  }

  /**
   * One request to one region, timed and reported to the router: a transport
   * failure counts against the region; any answer (a SQL error too) is a success.
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
      if (failure === undefined) this.router.reportSuccess(target, performance.now() - t0, undefined, Date.now());
      else this.router.reportFailure(target, failure, Date.now());
      throw e;
    }
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
