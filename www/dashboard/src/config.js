// Where the dashboard syncs to, and who this device is. Read once at start from, in
// order of precedence: the page's query string, ./config.json next to the page (what
// `scripts/demo.sh --serve` serves), and what this browser saved last time.
//
//   index.html?sync=http://127.0.0.1:8080&token=<JWT>&hub=http://127.0.0.1:8787&device=Laptop
//
// `url` is accepted for `sync`, as the earlier dashboard took it.

const SAVED = "edgesync.dashboard.config";

/**
 * @typedef {{
 *   sync: string, token: string, hub: string, device: string, user: string,
 *   interval: number, maxRetries: number, store: string, hubPrefix: string | undefined,
 * }} DashboardConfig
 */

function fromQuery() {
  const q = new URLSearchParams(location.search);
  /** @type {Record<string, string>} */
  const out = {};
  for (const key of ["sync", "token", "hub", "device", "user", "interval", "maxRetries", "store", "hubPrefix"]) {
    const v = q.get(key);
    if (v !== null) out[key] = v;
  }
  if (out.sync === undefined && q.get("url") !== null) out.sync = /** @type {string} */ (q.get("url"));
  return out;
}

async function fromFile() {
  try {
    const res = await fetch(new URL("../config.json", import.meta.url), { cache: "no-store" });
    if (!res.ok) return {};
    return await res.json();
  } catch {
    return {};
  }
}

function saved() {
  try {
    return JSON.parse(localStorage.getItem(SAVED) ?? "{}");
  } catch {
    return {};
  }
}

const NAMES = ["Ada", "Grace", "Linus", "Barbara", "Alan", "Edsger", "Margaret", "Ken", "Frances", "Dennis"];

/** @returns {Promise<DashboardConfig>} */
export async function loadConfig() {
  const merged = { ...saved(), ...(await fromFile()), ...fromQuery() };
  const device = merged.device || `Device ${crypto.randomUUID().slice(0, 4).toUpperCase()}`;
  const config = {
    sync: String(merged.sync ?? ""),
    token: String(merged.token ?? ""),
    hub: String(merged.hub ?? ""),
    device: String(device),
    user: String(merged.user || NAMES[Math.floor(Math.random() * NAMES.length)]),
    interval: Number(merged.interval ?? 5000) || 5000,
    maxRetries: merged.maxRetries === undefined || merged.maxRetries === "" ? 8 : Number(merged.maxRetries),
    store: String(merged.store || "edgesync-dashboard"),
    hubPrefix: merged.hubPrefix === undefined ? undefined : String(merged.hubPrefix),
  };
  // The device keeps its name and user across reloads; the server settings too.
  localStorage.setItem(SAVED, JSON.stringify({ ...saved(), ...config }));
  return config;
}

/** The `sub` claim of a JWT (not verified: only to name hub channels), or "". */
export function tokenSubject(token) {
  try {
    const payload = token.split(".")[1];
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    return String(JSON.parse(json).sub ?? "");
  } catch {
    return "";
  }
}

/**
 * A subject as the Worker writes it in channel names (`{sub}` in its grants): every
 * byte outside `A–Z a–z 0–9 - . _ ~` as `%XX`.
 */
export function escapeSub(sub) {
  let out = "";
  for (const b of new TextEncoder().encode(sub)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Whether this device was switched offline by its user (kept across reloads). */
export const offlineFlag = {
  get: () => localStorage.getItem("edgesync.dashboard.offline") === "1",
  set: (v) => (v ? localStorage.setItem("edgesync.dashboard.offline", "1") : localStorage.removeItem("edgesync.dashboard.offline")),
};
