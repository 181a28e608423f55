/**
 * Distributed sessions over the edge: the Rust `SessionStore` (src/session/) keeps the
 * isolate's cache, the TTL rules, home-region migration and the sealing (compression,
 * AES-256-GCM under SESSION_KEYS with key ids); this file runs the parameterized SQL it
 * produces against libSQL: writes on the primary, loads through the router (nearest
 * healthy region, read-your-writes on the session's own writes).
 *
 *   POST   /sessions            {id?, data}  → 201 session
 *   GET    /sessions/:id                     → session (404 / 410 / 422 on a bad seal)
 *   PUT    /sessions/:id        {data}       → session (409 on a concurrent update)
 *   DELETE /sessions/:id                     → 204
 *   POST   /sessions/gc                      → {evicted, deleted}
 *   GET    /sessions/stats                   → analytics
 */
import { EdgesyncError, SessionStore } from "edgesync";
import type { InArgs, SessionView, SqlWrite, Value } from "edgesync";
import type { Edge } from "./edge.js";
import type { Env } from "./env.js";
import { HttpError, json } from "./http.js";

export class Sessions {
  readonly store: SessionStore;

  constructor(
    env: Env,
    private readonly edge: Edge,
    seed: Uint8Array,
  ) {
    if (!env.SESSION_KEYS) throw new HttpError(500, "CONFIG_ERROR", "SESSION_KEYS is not set (a worker secret)");
    this.store = new SessionStore(env.SESSION_KEYS, env.SESSION_OPTIONS || undefined, seed);
  }

  private async ready(): Promise<void> {
    await this.edge.primaryBatch("sessions", SessionStore.schema());
  }

  private async run(write: SqlWrite, id: string): Promise<number> {
    await this.ready();
    const rs = await this.edge.write({ sql: write.sql, args: write.args as InArgs });
    this.edge.router.recordWrite(scope(id), rs.replicationIndex, [], false, Date.now());
    return rs.rowsAffected;
  }

  async create(id: string, data: unknown, region: string): Promise<Response> {
    const { session, write } = this.store.create(id, dataText(data), region, Date.now());
    try {
      await this.run(write, id);
    } catch (e) {
      this.store.evict(id); // nothing was stored: drop the cached copy
      if (e instanceof EdgesyncError && e.code === "SQLITE_CONSTRAINT") {
        throw new HttpError(409, "SESSION_CONFLICT", `session ${id} already exists`);
      }
      throw e;
    }
    return sessionResponse(session, 201);
  }

  /** The session, from the cache or loaded; throws SESSION_NOT_FOUND / _EXPIRED / _TAMPERED. */
  async get(id: string, region: string, background: (p: Promise<unknown>) => void): Promise<SessionView> {
    const now = Date.now();
    const found = this.store.getCached(id, region, now);
    if (found.status === "hit") {
      // A sliding-expiry touch or a migration: persisted after the answer.
      if (found.write) background(this.run(found.write, id).catch((e) => console.error("session touch", e)));
      return found.session!;
    }
    if (found.status === "expired") {
      // The DELETE removes the row only if it is still expired: another isolate may
      // have extended it, and then this is a cache miss like any other.
      if ((await this.run(found.write!, id)) > 0) {
        throw new EdgesyncError(`session ${id} has expired`, "SESSION_EXPIRED");
      }
    }
    await this.ready();
    const plan = this.edge.router.route(SessionStore.selectSql(), id, scope(id), undefined, now);
    const stmt = { sql: SessionStore.selectSql(), args: [id] };
    let { rs, region: servedBy } = await this.edge.read(plan, stmt);
    if (rs.rows.length === 0 && servedBy !== this.edge.primary) {
      // Created by another isolate moments ago, and this replica has not caught up:
      // only the primary can say a session does not exist.
      ({ rs } = await this.edge.read({ ...plan, targets: [this.edge.primary], minReplicationIndex: undefined }, stmt));
    }
    if (rs.rows.length === 0) throw new EdgesyncError(`session ${id} does not exist`, "SESSION_NOT_FOUND");
    const r = rs.rows[0];
    const row = {
      home: String(r[0]),
      createdMs: Number(r[1]),
      expiresMs: Number(r[2]),
      absoluteMs: Number(r[3]),
      version: Number(r[4]),
      body: new Uint8Array(r[5] as ArrayBuffer), // BLOBs are ArrayBuffers (as from @libsql/client)
    };
    try {
      const { session, write } = this.store.load(id, row, region, Date.now());
      if (write) background(this.run(write, id).catch((e) => console.error("session migrate", e)));
      return session;
    } catch (e) {
      if (e instanceof EdgesyncError && e.code === "SESSION_EXPIRED") {
        background(this.run(this.store.expiredDelete(id, Date.now()), id).catch(() => undefined));
      }
      throw e;
    }
  }

  async update(id: string, data: unknown, region: string, background: (p: Promise<unknown>) => void): Promise<Response> {
    await this.get(id, region, background);
    const { session, write } = this.store.update(id, dataText(data), region, Date.now());
    let changed: number;
    try {
      changed = await this.run(write, id);
    } catch (e) {
      this.store.evict(id); // the cache already holds data that was not stored
      throw e;
    }
    if (changed !== 1) {
      this.store.conflict(id);
      throw new HttpError(409, "SESSION_CONFLICT", `session ${id} was changed concurrently (or removed); reload it`);
    }
    return sessionResponse(session, 200);
  }

  async destroy(id: string): Promise<Response> {
    const changed = await this.run(this.store.destroy(id), id);
    if (changed === 0) throw new EdgesyncError(`session ${id} does not exist`, "SESSION_NOT_FOUND");
    return new Response(null, { status: 204 });
  }

  async gc(): Promise<Response> {
    const { evicted, write } = this.store.gc(Date.now());
    const deleted = await this.run(write, "gc");
    return json({ evicted, deleted });
  }
}

/** The read-your-writes scope of a session's own writes. */
const scope = (id: string): string => `session:${id}`;

function dataText(data: unknown): string {
  if (data === undefined) throw new HttpError(400, "BAD_REQUEST", "data is required");
  return JSON.stringify(data);
}

/** The session as JSON, with its data inlined as the JSON text it was stored as. */
export function sessionResponse(s: SessionView, status = 200): Response {
  const meta = JSON.stringify({
    id: s.id,
    home: s.home,
    createdMs: s.createdMs,
    expiresMs: s.expiresMs,
    absoluteMs: s.absoluteMs,
    version: s.version,
  });
  return new Response(`${meta.slice(0, -1)},"data":${s.data}}`, {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

export type { Value };
