/**
 * The edge replica: an edgesync embedded replica in a SQLite-backed Durable Object
 * (`EdgeReplica`, binding `EDGE_REPLICA`, one instance per colo, named by it), whose
 * database persists in the object's own storage (`durableObjectFiles`: js/durable.ts),
 * so it survives eviction and restarts. The router treats it as a region in the Worker's
 * colo (edge.ts): reads it can answer are answered from it — fresh to within its last
 * sync, which the hub wakes right after any write elsewhere (hub.ts) — and background
 * sync runs on the object's alarms, not timers.
 *
 * It is a trusted replica: it syncs straight to the primary with the database token.
 * It mirrors the server's replicated tables named by EDGE_REPLICA_TABLES (a JSON array,
 * or "*" for all), read from the server's `_es_tables` when it first opens. If that read
 * fails (primary unreachable, 503, auth), the error is reported by status() (so /health)
 * and the read is tried again before each sync until it succeeds: a primary down at open
 * must not leave the object mirroring nothing for its whole life.
 *
 * RPC (from this Worker only, through the binding):
 *   query(sql, args)  → {columns, rows, …} (ResultSet.toJSON()) as JSON text — reads only;
 *                       answers are kept while the database cannot have changed (below)
 *   execute(sql, args) → the same for any statement: a write is committed in the
 *                       object's storage before it is answered, and pushed at once
 *   wake()            → a sync soon (coalesced with one in flight)
 *   status()          → {ready, tables, lastSyncAt, lagMs, pendingChanges, storageBytes, cursor, syncs, failures}
 */
import { DurableObject } from "cloudflare:workers";
import { classify, createClient, durableObjectFiles, durableObjectFilesBytes } from "edgesync";
import type { EmbeddedReplica, InArgs } from "edgesync";
import type { Env } from "./env.js";

/**
 * The replica each object of this isolate has open. workerd may construct an object
 * again in the same isolate (after it was reset, e.g. when overloaded): the earlier
 * instance is gone, but its database would still be open here — the new one closes it
 * before opening its own (else: DATABASE_LOCKED).
 */
const openReplicas = new Map<string, EmbeddedReplica>();

/**
 * Read answers kept by the object (`#answers`): exact, not a TTL cache. Only reads the
 * router would cache are kept (one deterministic statement: no random(), no clock); an
 * answer is kept only when no sync or write ran while it was read (`#gen` did not move),
 * is used only while no sync runs, and all are dropped when a sync starts or ends and
 * around every executed statement — the only ways the database changes — so a kept answer
 * is always what the database would answer now. Bounded by entries and bytes; an answer
 * larger than ANSWER_MAX_BYTES is not kept.
 */
const ANSWERS_MAX = 1_000;
const ANSWERS_MAX_BYTES = 8 * 1024 * 1024;
const ANSWER_MAX_BYTES = 64 * 1024;

/** Background sync period when nothing wakes the replica earlier. */
const DEFAULT_SYNC_MS = 5_000;

/** A read's answer: the result set's JSON text, or why not. */
export type QueryAnswer = { ok: true; body: string } | { ok: false; code: string; message: string };

export interface EdgeReplicaStatus {
  ready: boolean;
  tables: string[];
  /** When the last successful sync finished (ms since the epoch), 0 before the first. */
  lastSyncAt: number;
  /** How old the replica's view of the primary may be: now − lastSyncAt. */
  lagMs: number;
  pendingChanges: number;
  storageBytes: number;
  cursor: number;
  syncs: number;
  failures: number;
  error?: string;
}

/** The tables EDGE_REPLICA_TABLES names (`undefined`: every replicated table). */
export function edgeTables(env: Env): string[] | undefined {
  const raw = env.EDGE_REPLICA_TABLES?.trim();
  if (!raw || raw === '"*"' || raw === "*") return undefined;
  const list = JSON.parse(raw) as unknown;
  if (!Array.isArray(list) || !list.every((t) => typeof t === "string")) {
    throw new Error('EDGE_REPLICA_TABLES must be a JSON array of table names, or "*"');
  }
  return list as string[];
}

/** An error as status() reports it: its code, then its message. */
function describe(e: unknown): string {
  return e instanceof Error ? `${(e as { code?: string }).code ?? ""} ${e.message}`.trim() : String(e);
}

function primaryUrl(env: Env): string {
  if (env.REGIONS) {
    const regions = JSON.parse(env.REGIONS) as { url: string; role: string }[];
    const p = regions.find((r) => r.role === "primary");
    if (p) return p.url;
  }
  if (env.LIBSQL_URL) return env.LIBSQL_URL;
  throw new Error("the edge replica needs REGIONS (or LIBSQL_URL) to find the primary");
}

export class EdgeReplica extends DurableObject<Env> {
  #db: EmbeddedReplica | undefined;
  #root = "";
  #tables: string[] = [];
  #lastSyncAt = 0;
  #syncing: Promise<void> | undefined;
  #again = false;
  #syncs = 0;
  #failures = 0;
  #error: string | undefined;
  /** Whether the server's table list was read (in this life of the object). */
  #mirrored = false;
  /** Why it could not be, until it is. */
  #mirrorError: string | undefined;
  /** A table was declared since the last successful sync: its rows are not here yet. */
  #unsynced = false;
  /** Kept read answers (see ANSWERS_MAX): key → JSON text. */
  #answers = new Map<string, string>();
  #answerBytes = 0;
  /** Moves whenever the database may change (a sync starts or ends, a statement runs). */
  #gen = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Requests wait until the replica is open (its file read back from storage).
    ctx.blockConcurrencyWhile(() => this.#open());
  }

  async #open(): Promise<void> {
    try {
      // EDGE_REPLICA_STORAGE = "memory": the design measured against the durable one
      // (docs/decisions.md): nothing kept, the replica bootstraps again after a restart.
      const inMemory = this.env.EDGE_REPLICA_STORAGE === "memory";
      const id = this.ctx.id.toString();
      openReplicas.get(id)?.close();
      openReplicas.delete(id);
      this.#root = inMemory ? "" : durableObjectFiles(this.ctx.storage, this.ctx.id.toString());
      const db = createClient({
        url: inMemory ? ":memory:" : `file:${this.#root}/replica.db`,
        syncUrl: primaryUrl(this.env),
        authToken: this.env.LIBSQL_AUTH_TOKEN || undefined,
      });
      this.#changed();
      this.#db = db;
      openReplicas.set(id, db);
      await this.#mirror(db);
      this.#changed();
      // Even unmirrored: the tables an earlier life held are served, and syncs retry it.
      await this.#scheduleNext(0);
      // Woken by the hub after writes elsewhere.
      const hub = this.env.HUB.get(this.env.HUB.idFromName("global"));
      await hub.fetch("https://hub/edge-register", { method: "POST", body: JSON.stringify({ id: this.ctx.id.toString() }) });
    } catch (e) {
      this.#error = describe(e);
      this.#db?.close();
      this.#db = undefined;
      await this.ctx.storage.setAlarm(Date.now() + DEFAULT_SYNC_MS); // try again
    }
  }

  /**
   * Declares the server's replicated tables locally (once per table). Only "the server
   * has no `_es_tables`" (no replica has synced yet) means nothing to mirror; any other
   * failure to read the list is recorded, and the next sync tries again.
   */
  async #mirror(db: EmbeddedReplica): Promise<void> {
    const wanted = edgeTables(this.env);
    const known = new Set(
      (await db.execute("SELECT tbl FROM _es_tables")).rows.map((r) => String(r[0])),
    );
    const remote = createClient({ url: primaryUrl(this.env), authToken: this.env.LIBSQL_AUTH_TOKEN || undefined });
    try {
      let rows: unknown[][] = [];
      try {
        rows = (await remote.execute("SELECT tbl, pol, create_sql FROM _es_tables ORDER BY tbl")).rows.map((r) => [r[0], r[1], r[2]]);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        if (!/no such table:?\s*(main\.)?_es_tables/i.test(message)) {
          this.#mirrorError = `the primary's table list: ${describe(e)}`;
          this.#tables = [...known].filter((t) => !wanted || wanted.includes(t)).sort();
          return;
        }
        rows = []; // no replica has synced yet: nothing to mirror
      }
      for (const [tbl, pol, create] of rows as [string, string, string][]) {
        if (wanted && !wanted.includes(tbl)) continue;
        if (!known.has(tbl)) {
          await db.execute(create.replace(/^CREATE TABLE /i, "CREATE TABLE IF NOT EXISTS "));
          this.#unsynced = true;
        }
        db.replicate(tbl, JSON.parse(pol));
        known.add(tbl);
      }
    } finally {
      remote.close();
    }
    this.#tables = [...known].filter((t) => !wanted || wanted.includes(t)).sort();
    this.#mirrored = true;
    this.#mirrorError = undefined;
  }

  /** The next background sync: in `inMs`, or the configured period. */
  async #scheduleNext(inMs?: number): Promise<void> {
    const every = Number(this.env.EDGE_REPLICA_SYNC_MS || DEFAULT_SYNC_MS);
    await this.ctx.storage.setAlarm(Date.now() + (inMs ?? every));
  }

  /** One sync; a wake-up during a sync runs another right after it. */
  #sync(): Promise<void> {
    if (this.#syncing) {
      this.#again = true;
      return this.#syncing;
    }
    const run = async () => {
      this.#changed();
      do {
        this.#again = false;
        const db = this.#db;
        if (!db) return;
        try {
          if (!this.#mirrored) await this.#mirror(db);
          const declared = this.#unsynced;
          await db.sync();
          if (declared) this.#unsynced = false;
          this.#lastSyncAt = Date.now();
          this.#syncs++;
          this.#error = undefined;
        } catch (e) {
          this.#failures++;
          this.#error = e instanceof Error ? e.message : String(e);
        }
      } while (this.#again);
    };
    this.#syncing = run().finally(() => {
      this.#syncing = undefined;
      this.#changed();
    });
    return this.#syncing;
  }

  /** The database may have changed: kept answers are dropped. */
  #changed(): void {
    this.#gen++;
    this.#answers.clear();
    this.#answerBytes = 0;
  }

  override async alarm(): Promise<void> {
    if (!this.#db) await this.#open();
    await this.#sync();
    await this.#scheduleNext();
  }

  /** A sync soon: after writes elsewhere (the hub) or here (the Worker). */
  async wake(): Promise<void> {
    this.ctx.waitUntil(this.#sync());
  }

  /** A read, answered from the replica. Writes are refused (the router sends them to the primary). */
  async query(sql: string, args?: InArgs): Promise<QueryAnswer> {
    const db = this.#db;
    if (!db) return { ok: false, code: "NOT_READY", message: this.#error ?? "the edge replica is not open" };
    const key = args === undefined ? sql : `${sql}\u0000${JSON.stringify(args)}`;
    const kept = this.#syncing ? undefined : this.#answers.get(key);
    if (kept !== undefined) return { ok: true, body: kept };
    try {
      const c = classify(sql);
      if (c.kind !== "read") return { ok: false, code: "NOT_A_READ", message: "the edge replica answers reads only" };
      const gen = this.#gen;
      const rs = await db.execute(args === undefined ? sql : { sql, args });
      const body = JSON.stringify(rs.toJSON());
      // Only what the router would cache: one deterministic read (no random(), no clock).
      if (c.cacheable && gen === this.#gen && !this.#syncing && body.length <= ANSWER_MAX_BYTES) this.#keep(key, body);
      return { ok: true, body };
    } catch (e) {
      const code = (e as { code?: string }).code ?? "INTERNAL_ERROR";
      return { ok: false, code, message: e instanceof Error ? e.message : String(e) };
    }
  }

  #keep(key: string, body: string): void {
    while (this.#answers.size >= ANSWERS_MAX || (this.#answers.size > 0 && this.#answerBytes + body.length > ANSWERS_MAX_BYTES)) {
      const [k, v] = this.#answers.entries().next().value as [string, string];
      this.#answers.delete(k);
      this.#answerBytes -= v.length;
    }
    this.#answers.set(key, body);
    this.#answerBytes += body.length;
  }

  /**
   * Any statement on the replica (offline-first, as any replica): a write is committed
   * locally — in the object's storage, before the answer leaves — and pushed by a sync
   * started now (or by a later one: the outbox keeps it).
   */
  async execute(sql: string, args?: InArgs): Promise<{ ok: true; result: unknown } | { ok: false; code: string; message: string }> {
    const db = this.#db;
    if (!db) return { ok: false, code: "NOT_READY", message: this.#error ?? "the edge replica is not open" };
    this.#changed();
    try {
      const rs = await db.execute(args === undefined ? sql : { sql, args });
      if (classify(sql).kind === "write") this.ctx.waitUntil(this.#sync());
      return { ok: true, result: rs.toJSON() };
    } catch (e) {
      const code = (e as { code?: string }).code ?? "INTERNAL_ERROR";
      return { ok: false, code, message: e instanceof Error ? e.message : String(e) };
    } finally {
      this.#changed();
    }
  }

  async status(): Promise<EdgeReplicaStatus> {
    const s = this.#db?.status();
    return {
      // Synced in this life of the object, or holding what an earlier one synced — and
      // holding some table (the server's list read, or tables an earlier life mirrored),
      // each synced since it was declared.
      ready:
        this.#db !== undefined &&
        (this.#lastSyncAt > 0 || (s?.cursor ?? 0) > 0) &&
        (this.#mirrored || this.#tables.length > 0) &&
        !this.#unsynced,
      tables: this.#tables,
      lastSyncAt: this.#lastSyncAt,
      lagMs: this.#lastSyncAt ? Date.now() - this.#lastSyncAt : -1,
      pendingChanges: s?.pendingChanges ?? 0,
      storageBytes: this.#root ? durableObjectFilesBytes(this.#root) : 0,
      cursor: s?.cursor ?? 0,
      syncs: this.#syncs,
      failures: this.#failures,
      ...(this.#mirrorError || this.#error ? { error: [this.#mirrorError, this.#error].filter(Boolean).join("; ") } : {}),
    };
  }
}
