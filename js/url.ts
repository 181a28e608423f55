/**
 * `createClient`'s config checked and normalized by `@libsql/client`'s rules (its
 * `expandConfig` and URI parser): the same accepted URLs, error codes and messages.
 * It runs in TypeScript so that a bad config throws at `createClient`, even in a
 * browser where the wasm module is still loading. The Rust parser (src/remote/config.rs)
 * applies the same rules to `syncUrl` and for native programs; tests/data/urls.json
 * holds the cases both are checked against.
 */
import { coded } from "./wasm-errors.js";
import type { Config, IntMode } from "./types.js";

const SUPPORTED = "https://github.com/libsql/libsql-client-ts#supported-urls";

/** Where a config points: a remote server, or a local database. */
export type Target =
  | {
      kind: "remote";
      /** `http(s)://host[:port][/path]`, what requests (or the WebSocket) go to. */
      base: string;
      /** Hrana over WebSocket (`ws://`, `wss://`). */
      websocket: boolean;
      authToken: string | undefined;
    }
  | {
      kind: "local";
      /** The local database for the wasm module: `":memory:"` or `file:path`. */
      url: string;
      memory: boolean;
    };

export interface Expanded {
  target: Target;
  intMode: IntMode;
  /** 0: no limit. */
  concurrency: number;
}

interface Uri {
  scheme: string;
  authority: { host: string; port: string | undefined; userinfo: boolean } | undefined;
  path: string;
  query: Array<[string, string]>;
  fragment: string | undefined;
}

const URI_RE = /^(?<scheme>[A-Za-z][A-Za-z.+-]*):(\/\/(?<authority>[^/?#]*))?(?<path>[^?#]*)(\?(?<query>[^#]*))?(#(?<fragment>.*))?$/su;
const AUTHORITY_RE = /^((?<username>[^:]*)(:(?<password>.*))?@)?((?<host>[^:[\]]*)|(\[(?<host_br>[^[\]]*)\]))(:(?<port>[0-9]*))?$/su;

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch (e) {
    throw coded("URL_INVALID", `URL component has invalid percent encoding: ${e}`, e);
  }
}

function parseUri(text: string): Uri {
  const m = URI_RE.exec(text);
  if (m === null) throw coded("URL_INVALID", `The URL '${text}' is not in a valid format`);
  const g = m.groups!;
  let authority: Uri["authority"];
  if (g.authority !== undefined) {
    const a = AUTHORITY_RE.exec(g.authority);
    if (a === null) throw coded("URL_INVALID", "The authority part of the URL is not in a valid format");
    const ag = a.groups!;
    authority = { host: decode(ag.host_br ?? ag.host), port: ag.port || undefined, userinfo: ag.username !== undefined };
  }
  const query: Array<[string, string]> = [];
  for (const seq of (g.query ?? "").split("&")) {
    if (seq === "") continue;
    const i = seq.indexOf("=");
    const [k, v] = i < 0 ? [seq, ""] : [seq.slice(0, i), seq.slice(i + 1)];
    query.push([decode(k.replaceAll("+", " ")), decode(v.replaceAll("+", " "))]);
  }
  return {
    scheme: g.scheme,
    authority,
    path: decode(g.path),
    query,
    fragment: g.fragment === undefined ? undefined : decode(g.fragment),
  };
}

/** Whether `url` names a local database (an embedded replica). */
export function isLocalUrl(url: unknown): boolean {
  return typeof url === "string" && (url === ":memory:" || /^file:/i.test(url));
}

/** Checks and normalizes `config` as `@libsql/client` does; throws its errors. */
export function expandConfig(config: Config): Expanded {
  if (typeof config !== "object" || config === null) {
    throw new TypeError(`Expected client configuration as object, got ${config === null ? "null" : typeof config}`);
  }
  let { url, authToken, tls, intMode, concurrency } = config;
  concurrency = Math.max(0, concurrency || 20);
  intMode ??= "auto";
  if (intMode !== "auto" && intMode !== "number" && intMode !== "bigint" && intMode !== "string") {
    throw new TypeError(`Invalid value for intMode, expected "number", "bigint", "string" or "auto", got ${JSON.stringify(intMode)}`);
  }
  if (config.encryptionKey !== undefined || config.remoteEncryptionKey !== undefined) {
    throw coded("ENCRYPTION_KEY_NOT_SUPPORTED", "Encryption keys are not supported by edgesync");
  }
  if (url === ":memory:") url = "file::memory:";
  const uri = parseUri(String(url));
  const scheme = uri.scheme.toLowerCase();
  const memory = scheme === "file" && uri.path === ":memory:" && uri.authority === undefined;
  for (const [key, value] of uri.query) {
    if (memory && key === "cache") {
      if (value !== "shared" && value !== "private") {
        throw coded("URL_INVALID", `Unknown value for the "cache" query argument: ${JSON.stringify(value)}. Supported values are: ["shared", "private"]`);
      }
    } else if (!memory && key === "tls") {
      if (value !== "0" && value !== "1") {
        throw coded("URL_INVALID", `Unknown value for the "tls" query argument: ${JSON.stringify(value)}. Supported values are: ["0", "1"]`);
      }
      tls = value === "1";
    } else if (!memory && key === "authToken") {
      authToken = value;
    } else {
      throw coded("URL_PARAM_NOT_SUPPORTED", `Unsupported URL query parameter ${JSON.stringify(key)}`);
    }
  }
  let target: string;
  if (scheme === "libsql") {
    if (tls === false) {
      if (uri.authority?.port === undefined) throw coded("URL_INVALID", 'A "libsql:" URL with ?tls=0 must specify an explicit port');
      target = "http";
    } else {
      target = "https";
    }
  } else {
    target = scheme;
  }
  if (!["http", "https", "ws", "wss", "file"].includes(target)) {
    throw coded(
      "URL_SCHEME_NOT_SUPPORTED",
      `The client supports only "libsql:", "wss:", "ws:", "https:", "http:" and "file:" URLs, got ${JSON.stringify(uri.scheme + ":")}. For more information, please read ${SUPPORTED}`,
    );
  }
  if (uri.fragment !== undefined) throw coded("URL_INVALID", `URL fragments are not supported: ${JSON.stringify("#" + uri.fragment)}`);
  if (target === "file") return { target: local(uri, memory), intMode, concurrency };
  const secure = target === "https" || target === "wss";
  tls ??= secure;
  if (tls !== secure) {
    throw coded(
      "URL_INVALID",
      secure ? `A "${target}:" URL cannot opt out of TLS by using ?tls=0` : `A "${target}:" URL cannot opt into TLS by using ?tls=1`,
    );
  }
  const a = uri.authority;
  if (a === undefined) throw coded("URL_INVALID", `URL with scheme ${JSON.stringify(target + ":")} requires authority (the "//" part)`);
  if (a.userinfo) throw coded("URL_INVALID", "user info in the URL is not supported; pass the token as `authToken`");
  const port = a.port === undefined ? undefined : Number(a.port);
  if (port !== undefined && !(port >= 1 && port <= 65535)) {
    throw coded("URL_INVALID", `invalid port ${JSON.stringify(a.port)}: a port is a number from 1 to 65535`);
  }
  const host = a.host.toLowerCase();
  if (host === "" || !/^[a-z0-9._:-]+$/.test(host)) throw coded("URL_INVALID", `invalid host ${JSON.stringify(host)}`);
  const hostText = host.includes(":") ? `[${host}]` : host;
  const path = uri.path
    .split("/")
    .map(encodeURIComponent)
    .join("/")
    .replace(/\/+$/, "");
  const base = `${secure ? "https" : "http"}://${hostText}${port === undefined ? "" : `:${port}`}${path && !path.startsWith("/") ? "/" + path : path}`;
  return {
    target: { kind: "remote", base, websocket: target === "ws" || target === "wss", authToken },
    intMode,
    concurrency,
  };
}

function local(uri: Uri, memory: boolean): Target {
  if (memory) return { kind: "local", url: ":memory:", memory: true };
  const a = uri.authority;
  if (a !== undefined) {
    if (a.host !== "" && a.host.toLowerCase() !== "localhost") {
      throw coded(
        "URL_INVALID",
        `Invalid host in file URL: ${JSON.stringify(a.host)}. A "file:" URL with an absolute path should start with one slash ("file:/absolute/path.db") or with three slashes ("file:///absolute/path.db"). For more information, please read ${SUPPORTED}`,
      );
    }
    if (a.port !== undefined) throw coded("URL_INVALID", "File URL cannot have a port");
    if (a.userinfo) throw coded("URL_INVALID", "File URL cannot have username and password");
  }
  return { kind: "local", url: `file:${uri.path}`, memory: false };
}
