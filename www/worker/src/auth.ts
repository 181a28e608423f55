/**
 * Bearer authentication for the edge Worker: every endpoint but /health carries a JWT,
 * verified here with WebCrypto (no libraries).
 *
 * - The token comes from `Authorization: Bearer <jwt>`; on the hub's WebSocket upgrade
 *   (`GET /subscribe`: browsers cannot set headers there) also from the `access_token`
 *   query parameter (RFC 6750 §2.3) — on no other route.
 * - Algorithms, chosen by the token's `alg` header and only if that key is configured:
 *   `HS256` with `JWT_SECRET` (its raw UTF-8 bytes) and `EdDSA` (Ed25519; also the fully
 *   specified name `Ed25519`, RFC 9864) with `JWT_PUBLIC_KEY` (PEM SPKI, or the raw
 *   32-byte key in base64). `none` and every other algorithm are refused.
 * - `exp` is required (a token that never expires is refused); `exp` / `nbf` are checked
 *   with 30 s leeway; `iss` / `aud` against `JWT_ISSUER` / `JWT_AUDIENCE` when those are
 *   set. Every segment must be canonical base64url (no padding, unused bits zero), so a
 *   token has exactly one spelling.
 * - Who the token is and what it may do — `sub` required, service or user, read-only —
 *   is the authorization model in Rust (`AccessPolicy`, src/auth/; docs/security.md):
 *   `principalOf`.
 *
 * Failures are `HttpError`s: 401 `AUTH_REQUIRED` (no token), 401 `AUTH_INVALID`
 * (malformed, bad signature, refused algorithm, wrong issuer/audience), 401
 * `AUTH_EXPIRED` (expired or not yet valid), 500 `CONFIG_ERROR` (no key configured, or
 * an unusable `JWT_PUBLIC_KEY`).
 *
 * Keys are imported once per isolate, and verified tokens are cached (bounded, until
 * they expire), so a busy client does not pay a signature check per request. Failures
 * are never cached.
 */
import type { AccessPolicy, Principal } from "edgesync";
import type { Env } from "./env.js";
import { HttpError } from "./http.js";

/** The claims of a verified token. */
export interface Claims {
  sub?: string;
  iss?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  [k: string]: unknown;
}

/** Clock skew tolerated on `exp` and `nbf`, seconds. */
const LEEWAY_S = 30;
/** Tokens longer than this are refused before any parsing. */
const MAX_TOKEN_CHARS = 8192;
/** Verified tokens kept (oldest evicted first). */
const CACHE_MAX = 10_000;

const invalid = (message: string) => new HttpError(401, "AUTH_INVALID", message);
const expired = (message: string) => new HttpError(401, "AUTH_EXPIRED", message);

// ---- base64url / base64 without exceptions ------------------------------------------

const B64_VALUES = (() => {
  const t = new Int16Array(128).fill(-1);
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  for (let i = 0; i < abc.length; i++) t[abc.charCodeAt(i)] = i;
  return t;
})();

/**
 * Decodes base64url (`urlSafe`, no padding) or standard base64 (padding optional).
 * Returns null for any character outside the alphabet, an impossible length, or
 * non-zero unused bits in the last character (a second spelling of the same bytes:
 * tokens must not be malleable).
 */
function decodeBase64(input: string, urlSafe: boolean): Uint8Array | null {
  let s = input;
  if (!urlSafe) s = s.replace(/=+$/, "");
  const n = s.length;
  if (n % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((n * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    let v: number;
    if (c === (urlSafe ? 0x2d : 0x2b)) v = 62; // '-' or '+'
    else if (c === (urlSafe ? 0x5f : 0x2f)) v = 63; // '_' or '/'
    else v = c < 128 ? B64_VALUES[c] : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) return null;
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** A base64url JSON object segment, or null. */
function decodeJsonSegment(segment: string): Record<string, unknown> | null {
  const bytes = decodeBase64(segment, true);
  if (!bytes) return null;
  try {
    const value: unknown = JSON.parse(utf8.decode(bytes));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

// ---- keys, imported once per isolate ------------------------------------------------

let hmacKey: { secret: string; key: Promise<CryptoKey> } | undefined;
let edKey: { pem: string; key: Promise<{ key: CryptoKey; algorithm: SubtleCryptoSignAlgorithm }> } | undefined;

function hmacKeyFor(secret: string): Promise<CryptoKey> {
  if (hmacKey?.secret !== secret) {
    const key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    hmacKey = { secret, key };
    key.catch(() => {
      if (hmacKey?.key === key) hmacKey = undefined;
    });
  }
  return hmacKey.key;
}

/** The SPKI DER (or raw 32-byte key) inside a PEM / base64 string; tolerates literal `\n`. */
function publicKeyBytes(pem: string): { format: "spki" | "raw"; bytes: Uint8Array } | null {
  const body = pem
    .replace(/\\n/g, "\n")
    .replace(/-----(BEGIN|END) [A-Z ]+-----/g, "")
    .replace(/\s+/g, "");
  const bytes = decodeBase64(body, false);
  if (!bytes || bytes.length === 0) return null;
  return { format: bytes.length === 32 ? "raw" : "spki", bytes };
}

async function importEd25519(pem: string): Promise<{ key: CryptoKey; algorithm: SubtleCryptoSignAlgorithm }> {
  const parsed = publicKeyBytes(pem);
  if (!parsed) throw new HttpError(500, "CONFIG_ERROR", "JWT_PUBLIC_KEY is not a PEM (SPKI) or base64 Ed25519 public key");
  // The standard name first; older runtimes only know Cloudflare's legacy "NODE-ED25519".
  const candidates: { import: SubtleCryptoImportKeyAlgorithm; verify: SubtleCryptoSignAlgorithm }[] = [
    { import: { name: "Ed25519" }, verify: { name: "Ed25519" } },
    { import: { name: "NODE-ED25519", namedCurve: "NODE-ED25519" }, verify: { name: "NODE-ED25519" } },
  ];
  let last: unknown;
  for (const c of candidates) {
    try {
      const key = await crypto.subtle.importKey(parsed.format, parsed.bytes, c.import, false, ["verify"]);
      return { key, algorithm: c.verify };
    } catch (e) {
      last = e;
    }
  }
  throw new HttpError(500, "CONFIG_ERROR", `JWT_PUBLIC_KEY cannot be imported as an Ed25519 key: ${last instanceof Error ? last.message : last}`);
}

function edKeyFor(pem: string): Promise<{ key: CryptoKey; algorithm: SubtleCryptoSignAlgorithm }> {
  if (edKey?.pem !== pem) {
    const key = importEd25519(pem);
    edKey = { pem, key };
    key.catch(() => {
      if (edKey?.key === key) edKey = undefined; // never cache a failure
    });
  }
  return edKey.key;
}

// ---- verified-token cache -----------------------------------------------------------

/** token → claims and the time (ms) the cached verdict stops being valid. */
const verified = new Map<string, { claims: Claims; until: number }>();
/** The configuration the cache was filled under: a change empties it. */
let cacheConfig = "";

function remember(token: string, claims: Claims & { exp: number }): void {
  const until = (claims.exp + LEEWAY_S) * 1000;
  if (verified.size >= CACHE_MAX) {
    const oldest = verified.keys().next();
    if (!oldest.done) verified.delete(oldest.value);
  }
  verified.set(token, { claims, until });
}

// ---- the token ----------------------------------------------------------------------

function isUpgrade(request: Request): boolean {
  return (request.headers.get("upgrade") ?? "").toLowerCase() === "websocket";
}

/**
 * The bearer token of the request, or undefined when it carries none. The query
 * parameter counts only for `queryToken` routes (the hub's WebSocket upgrade) and only
 * on an upgrade: elsewhere a token in a URL would end up in logs and caches.
 */
function bearerToken(request: Request, queryToken: boolean): string | undefined {
  const header = request.headers.get("authorization");
  if (header !== null) {
    const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
    if (m) return m[1];
  }
  if (queryToken && isUpgrade(request)) {
    const q = new URL(request.url).searchParams.get("access_token");
    if (q) return q;
  }
  return undefined;
}

function checkClaims(claims: Claims, env: Env, nowS: number): void {
  for (const name of ["exp", "nbf", "iat"] as const) {
    const v = claims[name];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v))) throw invalid(`the ${name} claim must be a number`);
  }
  if (claims.exp === undefined) throw invalid("the token has no exp claim: tokens must expire");
  if (claims.exp + LEEWAY_S <= nowS) throw expired("the token has expired");
  if (claims.nbf !== undefined && claims.nbf - LEEWAY_S > nowS) throw expired("the token is not valid yet (nbf)");
  if (env.JWT_ISSUER && claims.iss !== env.JWT_ISSUER) throw invalid("the token's issuer (iss) is not accepted");
  if (env.JWT_AUDIENCE) {
    const aud = claims.aud;
    const ok = typeof aud === "string" ? aud === env.JWT_AUDIENCE : Array.isArray(aud) && aud.includes(env.JWT_AUDIENCE);
    if (!ok) throw invalid("the token's audience (aud) is not accepted");
  }
}

async function verify(token: string, env: Env): Promise<Claims> {
  if (token.length > MAX_TOKEN_CHARS) throw invalid("the token is too long");
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) throw invalid("the token is not a JWS compact serialization (header.payload.signature)");
  const [h, p, s] = parts;
  const header = decodeJsonSegment(h);
  if (!header) throw invalid("the token header is not base64url JSON");
  const alg = header.alg;
  if (typeof alg !== "string") throw invalid("the token header has no alg");
  if (header.crit !== undefined) throw invalid("the token header has critical extensions (crit), which are not supported");
  const claims = decodeJsonSegment(p) as Claims | null;
  if (!claims) throw invalid("the token payload is not base64url JSON");
  const signature = decodeBase64(s, true);
  if (!signature) throw invalid("the token signature is not base64url");
  const data = new TextEncoder().encode(`${h}.${p}`);

  let ok: boolean;
  if (alg === "HS256") {
    if (!env.JWT_SECRET) throw invalid("HS256 tokens are not accepted (no JWT_SECRET configured)");
    ok = signature.length === 32 && (await crypto.subtle.verify("HMAC", await hmacKeyFor(env.JWT_SECRET), signature, data));
  } else if (alg === "EdDSA" || alg === "Ed25519") {
    if (!env.JWT_PUBLIC_KEY) throw invalid("EdDSA tokens are not accepted (no JWT_PUBLIC_KEY configured)");
    const { key, algorithm } = await edKeyFor(env.JWT_PUBLIC_KEY);
    ok = signature.length === 64 && (await crypto.subtle.verify(algorithm, key, signature, data));
  } else {
    throw invalid(`the token algorithm ${JSON.stringify(alg).slice(0, 40)} is not accepted (HS256 or EdDSA)`);
  }
  if (!ok) throw invalid("the token signature is invalid");
  return claims;
}

/**
 * Verifies the request's bearer token and returns its claims, or throws an `HttpError`
 * (401 AUTH_REQUIRED / AUTH_INVALID / AUTH_EXPIRED, 500 CONFIG_ERROR). `queryToken`:
 * the route accepts `?access_token=` on a WebSocket upgrade.
 */
export async function authenticate(request: Request, env: Env, queryToken = false): Promise<Claims> {
  if (!env.JWT_SECRET && !env.JWT_PUBLIC_KEY) {
    throw new HttpError(500, "CONFIG_ERROR", "no JWT key configured (JWT_SECRET or JWT_PUBLIC_KEY)");
  }
  const token = bearerToken(request, queryToken);
  if (token === undefined) {
    throw new HttpError(401, "AUTH_REQUIRED", "a bearer token is required (Authorization: Bearer <jwt>)");
  }
  const config = [env.JWT_SECRET ?? "", env.JWT_PUBLIC_KEY ?? "", env.JWT_ISSUER ?? "", env.JWT_AUDIENCE ?? ""].join("\u0000");
  if (config !== cacheConfig) {
    verified.clear();
    cacheConfig = config;
  }
  const now = Date.now();
  const hit = verified.get(token);
  if (hit) {
    if (now < hit.until) return hit.claims;
    verified.delete(token); // re-verified below: reports AUTH_EXPIRED
  }
  const claims = await verify(token, env);
  checkClaims(claims, env, Math.floor(now / 1000));
  Object.freeze(claims);
  remember(token, claims as Claims & { exp: number });
  return claims;
}

/** Principals by the (frozen, cached) claims object they were derived from. */
const principals = new WeakMap<Claims, { policy: AccessPolicy; principal: Principal }>();

/**
 * Who verified claims are (src/auth/): 401 AUTH_INVALID when `sub` is missing or the
 * access claim `a` is unknown. Derived once per cached token.
 */
export function principalOf(claims: Claims, policy: AccessPolicy): Principal {
  const hit = principals.get(claims);
  if (hit?.policy === policy) return hit.principal;
  let principal: Principal;
  try {
    principal = policy.principal(JSON.stringify(claims));
  } catch (e) {
    if ((e as { code?: string }).code === "AUTH_INVALID") throw invalid((e as Error).message.replace(/^(AUTH_INVALID: )?the server rejected the auth token: /, ""));
    throw e;
  }
  principals.set(claims, { policy, principal });
  return principal;
}

/** The authorization model's configuration (src/auth/ `AuthConfig`) from the worker's vars. */
export function accessPolicyConfig(env: Env): string {
  let channels: unknown;
  if (env.HUB_CHANNELS) {
    try {
      channels = JSON.parse(env.HUB_CHANNELS);
    } catch (e) {
      throw new HttpError(500, "CONFIG_ERROR", `HUB_CHANNELS is not JSON: ${e instanceof Error ? e.message : e}`);
    }
  }
  return JSON.stringify({
    serviceRole: env.SERVICE_ROLE || undefined,
    serviceRoleClaim: env.SERVICE_ROLE_CLAIM || undefined,
    channels,
  });
}
