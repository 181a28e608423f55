// The device: this browser's local replica (every app's tables in one store), its sync
// loop, the real-time hub connection, and what the dashboard watches over time.
//
// The replica is `createClient({ url: "file:<store>", syncUrl, … })`: a durable store in
// the Origin Private File System, shared by the dashboard's tabs. Where the browser has
// no OPFS here (an insecure origin, some private modes), the package keeps it in memory
// and says so with a `storage` event (the sidebar shows which).
import { createClient, connectHub } from "edgesync";
import { escapeSub, tokenSubject, offlineFlag } from "./config.js";

/** Samples kept for the charts (one every SAMPLE_MS). */
const SAMPLE_MS = 2000;
const MAX_SAMPLES = 900;

/**
 * @typedef {import("edgesync").EmbeddedReplica} Replica
 * @typedef {{ schema: string[], replicate: Array<[string, Record<string, any>]> }} AppSchema
 */

export class Device {
  /** @param {import("./config.js").DashboardConfig} config @param {AppSchema[]} schemas */
  constructor(config, schemas) {
    this.config = config;
    this.schemas = schemas;
    /** @type {Replica} */
    this.db = /** @type {any} */ (undefined);
    /** "opfs" | "memory" */
    this.storage = "memory";
    this.storageNote = "";
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    /** Conflicts seen (newest first), from the sync log at start and live events after. */
    /** @type {Array<import("edgesync").ConflictEvent & { at: number }>} */
    this.conflicts = [];
    /** Time series for the charts: parallel arrays (uPlot's layout). */
    this.series = { t: [], p50: [], p95: [], p99: [], pending: [], bytes: [], durations: [] };
    this.lastBytes = 0;
    /** @type {import("edgesync").HubConnection | undefined} */
    this.hub = undefined;
    // The channels a user token may use on the Worker's hub by default: `user:{sub}:*`.
    const sub = tokenSubject(config.token);
    this.hubPrefix = config.hubPrefix ?? (sub ? `user:${escapeSub(sub)}:` : "");
    this.hubListeners = new Map();
    this.wakeTimer = undefined;
  }

  /** Opens the replica, creates the apps' tables and starts syncing. */
  async open() {
    const { config } = this;
    const common = {
      syncUrl: config.sync || undefined,
      authToken: config.token || undefined,
      // `interval` is in ms; `syncInterval` in seconds, as in @libsql/client.
      syncInterval: config.sync ? config.interval / 1000 : undefined,
      maxRetries: Number.isInteger(config.maxRetries) ? config.maxRetries : undefined,
      syncOnOpen: Boolean(config.sync),
      // The user's offline switch holds across reloads: not even the open sync runs.
      paused: offlineFlag.get(),
      timeout: 10_000,
    };
    this.db = createClient({ url: `file:${config.store}`, ...common });
    this.storage = "opfs";
    const db = this.db;
    db.on("sync:completed", (r) => {
      this.series.durations.push(r.duration);
      if (r.changesApplied > 0) this.emit("changed", { tables: null });
      if (r.changesPushed > 0) this.publish("sync", { from: db.siteId });
      this.emit("synced", r);
    });
    db.on("sync:error", (e) => this.emit("sync-error", e));
    db.on("sync:gaveup", (e) => this.emit("gave-up", e));
    // The edge Worker's rules refused a pushed record (another user's row): the row is
    // back to the server's version, and the sync log says why.
    db.on("sync:refused", (e) => this.emit("refused", e));
    db.on("conflict", (c) => {
      this.conflicts.unshift({ ...c, at: Date.now() });
      this.emit("conflict", c);
    });
    // Live queries where the package reports changes (browser file: replicas).
    db.on(/** @type {any} */ ("change"), (/** @type {any} */ c) => this.emit("changed", { tables: c?.tables ?? null }));
    db.on(/** @type {any} */ ("storage"), (/** @type {any} */ s) => {
      if (s && s.persistent === false) {
        this.storage = "memory";
        this.storageNote = s.reason ?? "OPFS is not available";
      }
      this.emit("storage", s);
    });

    for (const app of this.schemas) {
      for (const sql of app.schema) await db.execute(sql);
      for (const [table, policies] of app.replicate) await db.replicate(table, policies);
    }
    for (const entry of await db.syncLog(500)) {
      if (entry.event === "conflict") this.conflicts.push({ ...(/** @type {any} */ (entry.details)), at: entry.at });
    }
    this.startHub();
    this.sampler = setInterval(() => this.sample(), SAMPLE_MS);
    this.sample();
    return this;
  }

  // ---- events ------------------------------------------------------------------------

  on(name, fn) {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit(name, detail) {
    for (const fn of this.listeners.get(name) ?? []) {
      try {
        fn(detail);
      } catch (e) {
        console.error(`listener for ${name} failed`, e);
      }
    }
  }

  /** Apps call this after their own writes, so every view on those tables refreshes. */
  changed(...tables) {
    this.emit("changed", { tables });
  }

  // ---- sync --------------------------------------------------------------------------

  status() {
    return this.db.status();
  }

  get paused() {
    return this.db.status().paused;
  }

  /** "Sync now": resolves to the result, or to the error (never rejects). */
  async syncNow() {
    try {
      return await this.db.sync();
    } catch (e) {
      return /** @type {Error} */ (e);
    }
  }

  /** The online/offline switch: pause() or resume() the replica; kept across reloads. */
  async setOnline(online) {
    offlineFlag.set(!online);
    if (online) await this.db.resume();
    else await this.db.pause();
    this.emit("online", online);
  }

  sample() {
    const db = this.db;
    if (db.closed) return;
    const m = db.metrics();
    const s = db.status();
    const S = this.series;
    S.t.push(Date.now() / 1000);
    S.p50.push(m.syncs > m.failures ? m.p50 : null);
    S.p95.push(m.syncs > m.failures ? m.p95 : null);
    S.p99.push(m.syncs > m.failures ? m.p99 : null);
    S.pending.push(s.pendingChanges);
    S.bytes.push(Math.max(0, m.bytesSent - this.lastBytes));
    this.lastBytes = m.bytesSent;
    if (S.t.length > MAX_SAMPLES) for (const k of ["t", "p50", "p95", "p99", "pending", "bytes"]) S[k].shift();
    if (S.durations.length > MAX_SAMPLES) S.durations.splice(0, S.durations.length - MAX_SAMPLES);
    this.emit("sample", null);
  }

  // ---- the real-time hub ---------------------------------------------------------------

  startHub() {
    if (!this.config.hub) return;
    this.hub = connectHub(this.config.hub, {
      token: this.config.token || undefined,
      channels: [`${this.hubPrefix}*`],
      onEvent: (e) => this.onHubEvent(e),
      onReady: () => this.emit("hub", { connected: true }),
      onError: () => this.emit("hub", { connected: false }),
      maxDelayMs: 5000,
      pingIntervalMs: 15_000,
    });
  }

  onHubEvent(e) {
    const topic = e.channel.slice(this.hubPrefix.length);
    if (topic === "sync") {
      // Another device pushed: pull now instead of at the next interval.
      if (/** @type {any} */ (e.data)?.from === this.db.siteId || this.db.status().paused) return;
      clearTimeout(this.wakeTimer);
      this.wakeTimer = setTimeout(() => void this.db.sync().catch(() => undefined), 30);
      return;
    }
    for (const [prefix, set] of this.hubListeners) {
      if (topic.startsWith(prefix)) for (const fn of set) fn(topic, e.data, e);
    }
  }

  /** Publishes an ephemeral event (typing, presence) to the other devices; dropped while offline. */
  publish(topic, data) {
    if (!this.hub || this.db.status().paused) return;
    try {
      this.hub.publish(`${this.hubPrefix}${topic}`, data);
    } catch {
      /* too many queued while disconnected: ephemeral, so dropped */
    }
  }

  /** Follows hub topics starting with `prefix`: `fn(topic, data)`. */
  subscribe(prefix, fn) {
    let set = this.hubListeners.get(prefix);
    if (!set) this.hubListeners.set(prefix, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  get hubConnected() {
    return Boolean(this.hub?.connected);
  }
}
