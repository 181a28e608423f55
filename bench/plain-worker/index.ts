/**
 * The benchmark's reference: a plain Worker that forwards every query to sqld as one
 * Hrana request (no routing, no cache, no edgesync), and answers with sqld's result.
 * It checks the same bearer JWT as the edge Worker (HS256, key imported once per
 * isolate), so both sides do the same request work except the routing and caching.
 */
interface Env {
  LIBSQL_URL: string;
  LIBSQL_AUTH_TOKEN?: string;
  JWT_SECRET: string;
}

let key: { secret: string; key: Promise<CryptoKey> } | undefined;

function hmacKey(secret: string): Promise<CryptoKey> {
  if (key?.secret !== secret) {
    const k = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    key = { secret, key: k };
  }
  return key.key;
}

function b64url(s: string): Uint8Array {
  const b = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

async function verify(request: Request, env: Env): Promise<boolean> {
  const m = /^Bearer (.+)\.(.+)\.(.+)$/.exec(request.headers.get("authorization") ?? "");
  if (!m) return false;
  const ok = await crypto.subtle.verify("HMAC", await hmacKey(env.JWT_SECRET), b64url(m[3]), new TextEncoder().encode(`${m[1]}.${m[2]}`));
  if (!ok) return false;
  const claims = JSON.parse(new TextDecoder().decode(b64url(m[2]))) as { exp?: number };
  return claims.exp === undefined || claims.exp * 1000 > Date.now();
}

function hranaValue(v: unknown): unknown {
  if (v === null) return { type: "null" };
  if (typeof v === "number") return Number.isInteger(v) ? { type: "integer", value: String(v) } : { type: "float", value: v };
  return { type: "text", value: String(v) };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    if (new URL(request.url).pathname === "/health") return new Response('{"ok":true}', { headers: { "content-type": "application/json" } });
    if (!(await verify(request, env))) return new Response('{"error":{"code":"AUTH_INVALID"}}', { status: 401 });
    const { sql, args } = (await request.json()) as { sql: string; args?: unknown[] };
    const res = await fetch(`${env.LIBSQL_URL}/v2/pipeline`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${env.LIBSQL_AUTH_TOKEN ?? ""}` },
      body: JSON.stringify({ requests: [{ type: "execute", stmt: { sql, args: (args ?? []).map(hranaValue) } }, { type: "close" }] }),
    });
    const body = (await res.json()) as { results: { type: string; response?: { result: unknown } }[] };
    return new Response(JSON.stringify(body.results[0].response?.result ?? body.results[0]), {
      status: res.status,
      headers: { "content-type": "application/json" },
    });
  },
};
