/**
 * HTTP plumbing shared by every endpoint: JSON responses, the error shape
 * `{ error: { code, message } }` with a status derived from the stable code, and a
 * body reader that enforces the size limit (413) and JSON syntax (400).
 */
import { EdgesyncError } from "edgesync";

/** An error of the worker itself (bad request, auth, limits), not of edgesync. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8" };

export function json(body: unknown, status = 200, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

/** A response whose body is already JSON text (cached results are kept serialized). */
export function jsonText(text: string, status = 200, headers?: Record<string, string>): Response {
  return new Response(text, { status, headers: { ...JSON_HEADERS, ...headers } });
}

/** The HTTP status for an edgesync error code (and the upstream's HTTP status, if any). */
export function statusFor(code: string, upstreamStatus?: number): number {
  switch (code) {
    case "SQL_PARSE_ERROR":
    case "SQL_INPUT_ERROR":
    case "SQL_NO_STATEMENT":
    case "SQL_MANY_STATEMENTS":
    case "ARGS_INVALID":
    case "ARGS_BOTH_POSITIONAL_AND_NAMED":
    case "SQLITE_ERROR":
    case "SQLITE_UNKNOWN":
    case "SQLITE_MISMATCH":
    case "SQLITE_RANGE":
    case "SQLITE_TOOBIG":
    case "INVALID_ARGUMENT":
    case "QUERY_UNPARSEABLE":
      return 400;
    case "SQLITE_READONLY":
    case "SQLITE_AUTH":
    case "PERMISSION_DENIED":
    case "FORBIDDEN":
    case "SQL_NOT_ALLOWED":
    case "CHANNEL_RESERVED":
      return 403;
    case "SESSION_NOT_FOUND":
      return 404;
    case "SQLITE_CONSTRAINT":
    case "SESSION_CONFLICT":
      return 409;
    case "SESSION_EXPIRED":
      return 410;
    case "AUTH_EXPIRED":
      return 401;
    case "SESSION_TAMPERED":
    case "SESSION_KEY_UNKNOWN":
    case "STATEMENT_FAILED":
      return 422;
    case "PRIMARY_UNAVAILABLE":
    case "NO_HEALTHY_REGION":
      return 503;
    // A libSQL server refused the worker's own token to do this (403): the caller may
    // not; its other answers (401: a misconfigured upstream token, 5xx) are a bad gateway.
    case "SERVER_ERROR":
      return upstreamStatus === 403 ? 403 : 502;
    case "SERVER_UNREACHABLE":
    case "TIMEOUT":
    case "HRANA_PROTO_ERROR":
    case "HRANA_WEBSOCKET_ERROR":
      return 502;
    default: // URL_INVALID, CONFIG_ERROR (misconfigured), CLIENT_CLOSED, INTERNAL_ERROR
      return 500;
  }
}

/**
 * An error message fit for a client: no upstream URL (region addresses, paths, query
 * strings) — the region's id is what a caller needs, and the worker adds it.
 */
export function redact(message: string): string {
  return message.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"')]*[^\s"'):.,;]/gi, "<upstream>");
}

export function errorResponse(e: unknown): Response {
  if (e instanceof HttpError) {
    const headers: Record<string, string> = {};
    if (e.status === 401) {
      headers["www-authenticate"] =
        e.code === "AUTH_REQUIRED" ? 'Bearer realm="edgesync"' : 'Bearer realm="edgesync", error="invalid_token"';
    }
    return json({ error: { code: e.code, message: redact(e.message) } }, e.status, headers);
  }
  if (e instanceof EdgesyncError) {
    const error: { code: string; message: string; step?: number } = { code: e.code, message: redact(e.message) };
    const index = (e as { statementIndex?: number }).statementIndex;
    if (index !== undefined) error.step = index;
    return json({ error }, statusFor(e.code, e.status));
  }
  console.error("unexpected error", e);
  const message = e instanceof Error ? e.message : String(e);
  return json({ error: { code: "INTERNAL_ERROR", message: redact(message) } }, 500);
}

/**
 * How much of an oversized streamed (chunked) body is still read, and dropped, before
 * the 413 goes out. A client that is still sending when the server stops reading sees
 * its connection reset before it reads the answer — and wrangler's dev proxy then failed
 * the request ("worker restarted mid-request", 503), for that client or another on the
 * same connection: 256 KiB of draining fixed bodies up to ~320 KiB, not 1 MiB. Dropping
 * bytes costs no memory and little CPU, and the sender pays the bandwidth, so the worker
 * drains up to 64 MiB; a larger undeclared body is cut off. (A declared Content-Length
 * over the limit is answered at once: the runtime discards that body itself.)
 */
const DRAIN_BYTES = 64 * 1024 * 1024;

/** Reads and drops up to `max` more bytes of a body, then cancels what is left. */
async function discardRest(reader: ReadableStreamDefaultReader<Uint8Array>, max: number): Promise<void> {
  let dropped = 0;
  while (dropped <= max) {
    const { done, value } = await reader.read();
    if (done) return;
    dropped += value.byteLength;
  }
  await reader.cancel();
}

/**
 * Reads and drops what is left of a request body an answer did not need (a refused
 * token, an unknown route): answering before the body is read makes wrangler's proxy
 * fail a later request on the same connection ("Request body length does not match
 * content-length header"). At most DRAIN_BYTES, as for a 413.
 */
export async function drainUnread(request: Request): Promise<void> {
  if (request.bodyUsed || !request.body) return;
  try {
    await discardRest(request.body.getReader(), DRAIN_BYTES);
  } catch {
    // already locked or errored: nothing left to drain
  }
}

/**
 * Reads the body as bytes, at most `limit`: a declared or actual larger body is 413
 * BODY_TOO_LARGE (a declared one unread; an undeclared one after draining at most
 * DRAIN_BYTES more).
 */
export async function readBytes(request: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > limit) {
    throw new HttpError(413, "BODY_TOO_LARGE", `request body of ${declared} bytes exceeds the limit of ${limit}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await discardRest(reader, DRAIN_BYTES);
        throw new HttpError(413, "BODY_TOO_LARGE", `request body exceeds the limit of ${limit} bytes`);
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return bytes;
}

/**
 * Reads the body as a JSON object, at most `limit` bytes: a declared or actual larger
 * body is 413 BODY_TOO_LARGE (a declared one unread; an undeclared one after draining at
 * most DRAIN_BYTES more), bad JSON is 400 BAD_JSON, and anything
 * but an object is 400 BAD_REQUEST.
 */
export async function readJson(request: Request, limit: number): Promise<Record<string, unknown>> {
  const bytes = await readBytes(request, limit);
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
  } catch (e) {
    throw new HttpError(400, "BAD_JSON", `request body is not valid JSON: ${e instanceof Error ? e.message : e}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "BAD_REQUEST", "request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** The configured body limit (MAX_BODY_BYTES, default 64 KiB). */
export function bodyLimit(raw: string | undefined): number {
  const n = raw === undefined || raw === "" ? 65536 : Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new HttpError(500, "CONFIG_ERROR", "MAX_BODY_BYTES must be a positive integer");
  return n;
}
