/**
 * A minimal Worker over edgesync: a JSON HTTP front for a remote libSQL database.
 *
 *   GET  /health                      -> 200 {ok:true} after `select 1` (503 {ok:false, code})
 *   POST /query  {sql, args?}          -> {columns, columnTypes, rows, rowsAffected, lastInsertRowid}
 *   POST /batch  {statements, mode?}   -> {results:[…same…]}  (one transaction: all or nothing)
 *
 * Results use ResultSet.toJSON(): INTEGERs beyond 2^53 are decimal strings, BLOBs are byte
 * arrays. Errors are {error:{code, message, step?}} with an HTTP status from the code.
 */
import { createClient, EdgesyncError } from "edgesync";
import type { Client, InArgs, InStatement, TransactionMode } from "edgesync";

export interface Env {
  /** libsql://…, https://… or http://… ([vars] in wrangler.toml). */
  LIBSQL_URL: string;
  /** Secret (`wrangler secret put LIBSQL_AUTH_TOKEN`); absent for a server without auth. */
  LIBSQL_AUTH_TOKEN?: string;
}

/** An error of the worker itself (bad request body, configuration), not of edgesync. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// One client per isolate, created on first use: nothing may do I/O or draw randomness at
// module top level. Keyed on the config so that changed bindings get a fresh client.
let cached: { key: string; client: Client } | undefined;

function getClient(env: Env): Client {
  const url = env.LIBSQL_URL;
  if (typeof url !== "string" || url === "") {
    throw new HttpError(500, "CONFIG_ERROR", "LIBSQL_URL is not set");
  }
  const authToken = env.LIBSQL_AUTH_TOKEN || undefined;
  const key = `${url}\n${authToken ?? ""}`;
  if (cached === undefined || cached.key !== key || cached.client.closed) {
    cached?.client.close();
    cached = { key, client: createClient({ url, authToken }) };
  }
  return cached.client;
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

function statusFor(code: string): number {
  switch (code) {
    case "SQL_SYNTAX_ERROR":
    case "SQL_CONSTRAINT":
    case "SQL_ERROR":
    case "INVALID_ARGUMENT":
      return 400;
    case "AUTH_REQUIRED":
    case "AUTH_INVALID":
      return 401;
    case "PERMISSION_DENIED":
      return 403;
    case "SERVER_UNREACHABLE":
    case "SERVER_ERROR":
    case "TIMEOUT":
    case "PROTOCOL_ERROR":
      return 502;
    default: // URL_INVALID (misconfigured), CLIENT_CLOSED, INTERNAL_ERROR
      return 500;
  }
}

function errorResponse(e: unknown): Response {
  if (e instanceof HttpError) {
    return json({ error: { code: e.code, message: e.message } }, e.status);
  }
  if (e instanceof EdgesyncError) {
    const error: { code: string; message: string; step?: number } = { code: e.code, message: e.message };
    if (e.step !== undefined) error.step = e.step;
    return json({ error }, statusFor(e.code));
  }
  console.error("unexpected error", e);
  const message = e instanceof Error ? e.message : String(e);
  return json({ error: { code: "INTERNAL_ERROR", message } }, 500);
}

async function readJson(request: Request): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = JSON.parse(await request.text());
  } catch (e) {
    throw new HttpError(400, "BAD_JSON", `request body is not valid JSON: ${e instanceof Error ? e.message : e}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "BAD_REQUEST", "request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** `"sql"` or `{sql, args?}` from JSON into an edgesync statement. */
function toStatement(value: unknown, where: string): InStatement {
  if (typeof value === "string") return value;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new HttpError(400, "BAD_REQUEST", `${where} must be a string or {sql, args?}`);
  }
  const { sql, args } = value as { sql?: unknown; args?: unknown };
  if (typeof sql !== "string") throw new HttpError(400, "BAD_REQUEST", `${where}.sql must be a string`);
  if (args === undefined || args === null) return { sql };
  if (typeof args !== "object") {
    throw new HttpError(400, "BAD_REQUEST", `${where}.args must be an array or an object`);
  }
  return { sql, args: args as InArgs };
}

const MODES: readonly TransactionMode[] = ["write", "read", "deferred"];

async function handle(request: Request, env: Env): Promise<Response> {
  const { pathname } = new URL(request.url);
  const route = `${request.method} ${pathname}`;
  switch (route) {
    case "GET /health": {
      try {
        await getClient(env).execute("select 1");
        return json({ ok: true });
      } catch (e) {
        const code = e instanceof EdgesyncError || e instanceof HttpError ? e.code : "INTERNAL_ERROR";
        return json({ ok: false, code }, 503);
      }
    }
    case "POST /query": {
      const body = await readJson(request);
      const stmt = toStatement(body, "body");
      const rs = await getClient(env).execute(stmt);
      return json(rs.toJSON());
    }
    case "POST /batch": {
      const body = await readJson(request);
      if (!Array.isArray(body.statements)) {
        throw new HttpError(400, "BAD_REQUEST", "statements must be an array");
      }
      const stmts = body.statements.map((s, i) => toStatement(s, `statements[${i}]`));
      const mode = body.mode ?? "deferred";
      if (!MODES.includes(mode as TransactionMode)) {
        throw new HttpError(400, "BAD_REQUEST", `mode must be one of ${MODES.join(", ")}`);
      }
      const results = await getClient(env).batch(stmts, mode as TransactionMode);
      return json({ results: results.map((rs) => rs.toJSON()) });
    }
  }
  if (pathname === "/health" || pathname === "/query" || pathname === "/batch") {
    throw new HttpError(405, "METHOD_NOT_ALLOWED", `${request.method} is not allowed on ${pathname}`);
  }
  throw new HttpError(404, "NOT_FOUND", `no route for ${pathname}`);
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    try {
      return await handle(request, env);
    } catch (e) {
      return errorResponse(e);
    }
  },
} satisfies ExportedHandler<Env>;
