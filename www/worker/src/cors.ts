/**
 * CORS for browser pages on another origin (a dashboard syncing its replica through
 * this Worker). `CORS_ORIGINS` lists the origins allowed, comma-separated, or `*`;
 * unset, the Worker sends no CORS headers and browsers on other origins are refused —
 * the default, since an open Worker needs no browser reach it was not given. Tokens
 * travel in `Authorization`, never in cookies, so no credentials mode is offered.
 */
export function corsOrigins(value: string | undefined): string[] | "*" | undefined {
  const v = (value ?? "").trim();
  if (!v) return undefined;
  if (v === "*") return "*";
  return v.split(",").map((s) => s.trim().replace(/\/+$/, "")).filter(Boolean);
}

function allowOrigin(request: Request, allowed: string[] | "*"): string | undefined {
  const origin = request.headers.get("origin");
  if (!origin) return undefined;
  if (allowed === "*") return "*";
  return allowed.includes(origin) ? origin : undefined;
}

/** The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`), or undefined. */
export function preflight(request: Request, allowed: string[] | "*" | undefined): Response | undefined {
  if (!allowed || request.method !== "OPTIONS" || !request.headers.has("access-control-request-method")) return undefined;
  const origin = allowOrigin(request, allowed);
  if (!origin) return new Response(null, { status: 403 });
  return new Response(null, {
    status: 204,
    headers: {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": "GET, POST, OPTIONS",
      "access-control-allow-headers": "authorization, content-type",
      "access-control-max-age": "600",
      vary: "origin",
    },
  });
}

/** `response` with the CORS headers for `request`'s origin, when that origin is allowed. */
export function withCors(request: Request, response: Response, allowed: string[] | "*" | undefined): Response {
  if (!allowed || response.status === 101 || response.webSocket) return response;
  const origin = allowOrigin(request, allowed);
  if (!origin) return response;
  const out = new Response(response.body, response);
  out.headers.set("access-control-allow-origin", origin);
  out.headers.set("access-control-expose-headers", "retry-after");
  out.headers.append("vary", "origin");
  return out;
}
