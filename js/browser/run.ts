/**
 * How the owner of a browser store runs one call on its replica (js/browser/host.ts
 * decides who owns the store and in what order calls run; this file, what running one
 * means), and why a call sent twice runs once.
 *
 * A follower sends its unanswered calls again to each new owner, so a write the old
 * owner committed just before dying would otherwise run twice. A forwarded local write
 * runs in one transaction with a row of `_es_requests` (origin worker, call id, answer):
 * a second arrival is answered from that row. A forwarded write-through write
 * (`writeMode: "remote"`) commits on the server, not in a local transaction, so it runs
 * under the key `origin:id`, kept with its intent (src/sync/net/requests.rs): a second
 * arrival gets the first answer if the first attempt committed, and runs anew only if
 * the ledger fenced it. Reads and `sync()` are safe to repeat.
 */
import type { InStatement } from "../client.js";
import { atStatement } from "../replica.js";
import type { EmbeddedReplicaClient, Policy } from "../replica.js";
import { EdgesyncError } from "../wasm-errors.js";
import { coded, fromJson, isTransactionControl, rawResult, toJson } from "./protocol.js";
import type { Call, State } from "./protocol.js";

/** Answers kept for calls sent again, at most this long. */
const KEEP_ANSWERS_MS = 24 * 3600 * 1000;

/** The worker that forwarded a call, and the lowest of its calls still unanswered. */
export type From = { origin: string; low: number };

/** What running a call needs from the host that owns the store. */
export interface Owned {
  client: EmbeddedReplicaClient;
  /** Whether the store is shared in OPFS (else calls are never forwarded). */
  persistent: boolean;
  writeMode: "local" | "remote" | undefined;
  /** The replica's state changed (a table replicated, a method run). */
  changed(): void;
  state(): State;
}

/** Makes the table of forwarded writes' answers (`forgetAnswers` empties it of old ones). */
export async function keepAnswers(client: EmbeddedReplicaClient): Promise<void> {
  await client.execute(
    "CREATE TABLE IF NOT EXISTS _es_requests (origin TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, result TEXT NOT NULL, PRIMARY KEY (origin, seq)) WITHOUT ROWID",
  );
}

/** The call that forgets answers older than a day (the owner runs it once its first calls are answered). */
export function forgetAnswers(): Call {
  return { id: 0, m: "execute", a: ["DELETE FROM _es_requests WHERE at < ?", [Date.now() - KEEP_ANSWERS_MS]] };
}

/** A resolver sent as its source text (functions cannot be posted), made a function again. */
export function revive(policies: Record<string, unknown>): Record<string, Policy> {
  const out: Record<string, Policy> = {};
  for (const [col, p] of Object.entries(policies ?? {})) {
    const fn = p as { $fn?: string; name?: string };
    if (p === null || typeof p !== "object" || typeof fn.$fn !== "string") {
      out[col] = p as Policy;
      continue;
    }
    let made: unknown;
    for (const src of [`return (${fn.$fn});`, `return ({${fn.$fn}})[${JSON.stringify(fn.name ?? "")}];`]) {
      try {
        made = new Function(src)();
        if (typeof made === "function") break;
      } catch {
        made = undefined;
      }
    }
    if (typeof made !== "function") {
      throw coded(
        "INVALID_ARGUMENT",
        `invalid argument: the resolver for ${col} cannot be sent to the database worker: in the browser a resolver runs there, rebuilt from its source, so it must be a self-contained function`,
      );
    }
    out[col] = made as Policy;
  }
  return out;
}

export function statementsOf(c: Call): InStatement[] {
  if (c.m === "execute") {
    const [stmt, args] = c.a as [InStatement, unknown];
    return [typeof stmt === "string" && args !== undefined ? ({ sql: stmt, args } as InStatement) : stmt];
  }
  return Array.isArray(c.a[0]) ? (c.a[0] as InStatement[]) : [];
}

export function sqlOf(s: InStatement): unknown {
  return typeof s === "string" ? s : Array.isArray(s) ? s[0] : (s as { sql?: unknown } | null)?.sql;
}

/** Calls a shared store refuses wherever they would run. */
export function refuse(c: Call): Error | undefined {
  if (c.m !== "execute" && c.m !== "batch") return undefined;
  for (const s of statementsOf(c)) {
    const sql = sqlOf(s);
    if (typeof sql === "string" && isTransactionControl(sql)) {
      return coded(
        "INVALID_OPERATION",
        "invalid operation: BEGIN/COMMIT/ROLLBACK/SAVEPOINT cannot be run by hand on a browser replica (one connection shared by every tab): use batch(), which runs its statements in one transaction",
      );
    }
  }
  return undefined;
}

/**
 * Runs one call on the owned replica. `from`: the worker that sent it, for calls that
 * may arrive twice (forwarded); their writes are deduplicated.
 */
export async function runCall(o: Owned, c: Call, from: From | null): Promise<unknown> {
  const client = o.client;
  switch (c.m) {
    case "execute": {
      const [stmt, args] = c.a as [InStatement, undefined];
      if (from && writesThrough(o, c)) return rawResult((await client.writeThroughOnce(statementsOf(c), `${from.origin}:${c.id}`))[0]);
      if (from && dedupes(o, c)) return deduped(client, from, c.id, statementsOf(c), false);
      return rawResult(await client.execute(stmt as string, args));
    }
    case "batch": {
      const [stmts, mode] = c.a as [InStatement[], "write" | "read" | "deferred" | undefined];
      if (from && mode !== "read" && writesThrough(o, c)) return (await client.writeThroughOnce(stmts, `${from.origin}:${c.id}`)).map(rawResult);
      if (from && mode !== "read" && dedupes(o, c)) return deduped(client, from, c.id, stmts, true);
      return (await client.batch(stmts, mode)).map(rawResult);
    }
    case "replicate": {
      const [table, pol] = c.a as [string, Record<string, unknown>];
      await client.replicate(table, revive(pol));
      o.changed();
      return undefined;
    }
    case "state":
      return o.state();
    case "close":
    case "on":
    case "constructor":
      throw coded("INVALID_OPERATION", `invalid operation: ${c.m} cannot be forwarded`);
    default: {
      const f = (client as unknown as Record<string, unknown>)[c.m];
      if (typeof f !== "function" || c.m.startsWith("_")) throw coded("INVALID_OPERATION", `invalid operation: no method ${c.m}`);
      const v = await (f as (...a: unknown[]) => unknown).apply(client, c.a);
      o.changed();
      return v;
    }
  }
}

/** Whether a forwarded execute/batch writes (reads are safe to run twice). */
function dedupes(o: Owned, c: Call): boolean {
  return o.persistent && o.writeMode !== "remote" && writes(o.client, c);
}

/**
 * Whether a forwarded execute/batch is a write-through write: it runs under the key
 * of its sender and call number, so a second arrival (after the owner that ran it
 * died) gets the first answer if the first attempt committed on the server.
 */
function writesThrough(o: Owned, c: Call): boolean {
  return o.persistent && o.writeMode === "remote" && writes(o.client, c);
}

function writes(client: EmbeddedReplicaClient, c: Call): boolean {
  try {
    return !client.readonly(statementsOf(c));
  } catch {
    return false; // it fails to prepare: it will fail the same way when run
  }
}

/**
 * Runs forwarded write `seq` of `from` once: a second arrival gets the first answer.
 * A statement SQLite refuses inside a transaction (VACUUM, ATTACH…) runs as it is.
 */
async function deduped(client: EmbeddedReplicaClient, from: From, seq: number, stmts: InStatement[], batch: boolean): Promise<unknown> {
  try {
    return await once(client, from, seq, stmts, batch);
  } catch (e) {
    if (!(e instanceof EdgesyncError && /within (a )?transaction/i.test(e.message) && !batch)) throw e;
    return rawResult(await client.execute(stmts[0]));
  }
}

async function once(client: EmbeddedReplicaClient, from: From, seq: number, stmts: InStatement[], batch: boolean): Promise<unknown> {
  await client.execute("BEGIN IMMEDIATE");
  let open = true;
  try {
    const hit = await client.execute("SELECT result FROM _es_requests WHERE origin = ? AND seq = ?", [from.origin, seq]);
    if (hit.rows.length > 0) return fromJson(String(hit.rows[0][0]));
    const out = [];
    for (let i = 0; i < stmts.length; i++) {
      try {
        out.push(rawResult(await client.execute(stmts[i])));
      } catch (e) {
        throw batch ? withStep(e, i) : e;
      }
    }
    const value = batch ? out : out[0];
    await client.execute("INSERT INTO _es_requests (origin, seq, at, result) VALUES (?, ?, ?, ?)", [from.origin, seq, Date.now(), toJson(value)]);
    await client.execute("DELETE FROM _es_requests WHERE origin = ? AND seq < ?", [from.origin, from.low]);
    await client.execute("COMMIT");
    open = false;
    return value;
  } finally {
    if (open) await client.execute("ROLLBACK").catch(() => undefined);
  }
}

/** `e` as the failure of a batch's statement `i` (`LibsqlBatchError`), as from `@libsql/client`. */
function withStep(e: unknown, i: number): unknown {
  return atStatement(e, i);
}

/** What the owner tells every tab about the store (status, metrics, site id). */
export function stateOf(client: EmbeddedReplicaClient, persistent: boolean, owner: boolean): State {
  return {
    status: client.status() as unknown as Record<string, unknown>,
    metrics: client.metrics() as unknown as Record<string, unknown>,
    metricsText: client.metricsText(),
    siteId: client.siteId,
    persistent,
    owner,
  };
}
