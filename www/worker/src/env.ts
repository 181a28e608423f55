/**
 * The Worker's bindings: [vars] from wrangler.toml, secrets (`wrangler secret put`, or
 * `.dev.vars` locally) and the real-time hub's Durable Object namespace.
 */
export interface Env {
  /**
   * The regions the router may use, as JSON: `[{ "id", "url", "role": "primary"|"replica",
   * "priority"?, "location"?: "lat,lon" }]`. Exactly one primary.
   */
  REGIONS?: string;
  /** Shorthand for a single primary region when REGIONS is not set. */
  LIBSQL_URL?: string;
  /** Router tuning as JSON (camelCase): ewmaAlpha, breakerFailures, cacheTtlMs, … */
  ROUTER_OPTIONS?: string;
  /** Session tuning as JSON (camelCase): idleTtlMs, absoluteTtlMs, compressThreshold, … */
  SESSION_OPTIONS?: string;
  /** /health thresholds as JSON (camelCase): maxLatencyMs, maxErrorRate, maxLagFrames, … */
  HEALTH_THRESHOLDS?: string;
  /** Largest accepted request body in bytes (default 65536); larger → 413. */
  MAX_BODY_BYTES?: string;
  /** Per-attempt timeout for a region request, ms (default 2000). */
  REGION_TIMEOUT_MS?: string;
  /** Real-time hub retention: the last N events (default 10000) … */
  HUB_RETENTION_EVENTS?: string;
  /** … none older than this many ms (default 24 h). Older `since` → a `reset` frame. */
  HUB_RETENTION_MS?: string;
  /** Expected `iss` / `aud` claims of client JWTs, when set. */
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  /** The role that makes a token a service token (default "service"); see docs/security.md. */
  SERVICE_ROLE?: string;
  /** The claim holding the role: a string or an array of strings (default "role"). */
  SERVICE_ROLE_CLAIM?: string;
  /**
   * Hub channels user tokens may use, as JSON `{"subscribe": [...], "publish": [...]}`;
   * patterns may hold `{sub}` and end in `*`. Default: `user:{sub}:*` for both.
   */
  HUB_CHANNELS?: string;
  /**
   * "true" lets a request name its serving region with the `x-edgesync-region` header
   * (one of the REGIONS ids) — for tests and local development only; otherwise the
   * region is the Cloudflare colo.
   */
  TRUST_REGION_HEADER?: string;

  /**
   * The sync gateway's rules (JSON): per replicated table, `read` / `write` / `insert` /
   * `update` / `delete` predicates over the row's columns with token claims as `:name`
   * parameters, and optionally `columns`. Unset: no replica syncs through this Worker.
   */
  SYNC_RULES?: string;
  /** Sync gateway limits (JSON, camelCase): maxBodyBytes, maxRecords, recordsPerMinute, maxPage, maxDriftMs. */
  SYNC_LIMITS?: string;

  /** Secret: libSQL auth token sent to every region (absent for servers without auth). */
  LIBSQL_AUTH_TOKEN?: string;
  /** Secret: HS256 key for client JWTs. */
  JWT_SECRET?: string;
  /** Secret: Ed25519 public key (PEM, SPKI) for EdDSA client JWTs. */
  JWT_PUBLIC_KEY?: string;
  /** Secret: session sealing keys `kid:base64(32 bytes)[,kid:…]`, current key first. */
  SESSION_KEYS?: string;

  /**
   * The edge replicas (SQLite-backed Durable Objects, one per colo): when bound, reads
   * of the tables they hold are answered from the one in the Worker's colo
   * (edge-replica.ts). Optional.
   */
  EDGE_REPLICA?: DurableObjectNamespace<import("./edge-replica.js").EdgeReplica>;
  /** The tables the edge replicas hold: a JSON array of names, or "*". Unset: no edge replica reads. */
  EDGE_REPLICA_TABLES?: string;
  /**
   * Where an edge replica keeps its database: "durable" (default: the object's storage,
   * kept across restarts) or "memory" (bootstrapped again after every restart).
   */
  EDGE_REPLICA_STORAGE?: string;
  /** Background sync period of the edge replicas, ms (default 5000); writes wake them sooner. */
  EDGE_REPLICA_SYNC_MS?: string;

  /** The real-time hub (a SQLite-backed Durable Object). */
  HUB: DurableObjectNamespace;
}
