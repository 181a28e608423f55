/**
 * The checks of the options the JS layer reads itself (`writeMode`, `syncInterval`,
 * `syncOnOpen`, `maxRetries`, `paused`); the Rust module checks the rest
 * (`new Replica(config)`, or `checkReplicaConfig` in a browser page). One place, so that
 * an in-process replica (js/replica.ts) and a browser page's client of its worker
 * (js/browser/client.ts) refuse the same configs with the same errors, at `createClient`.
 */
import type { ReplicaConfig } from "./replica-types.js";
import { coded } from "./wasm-errors.js";

const bad = (message: string) => coded("INVALID_ARGUMENT", `invalid argument: ${message}`);

/** Throws `INVALID_ARGUMENT` for a bad option of the JS layer's. */
export function checkClientOptions(config: ReplicaConfig): void {
  const { syncInterval, writeMode } = config;
  if (writeMode !== undefined && writeMode !== "local" && writeMode !== "remote") {
    throw bad(`writeMode must be "local" or "remote"`);
  }
  if (syncInterval !== undefined && !(typeof syncInterval === "number" && syncInterval > 0 && Number.isFinite(syncInterval))) {
    throw bad("syncInterval must be a number of seconds > 0");
  }
  if (writeMode === "remote" && (config.syncUrl === undefined || config.syncUrl === null)) {
    throw bad('writeMode "remote" needs a syncUrl');
  }
  checkSyncOptions(config);
}

/** Checks the background-sync options (`syncOnOpen`, `maxRetries`, `paused`). */
export function checkSyncOptions(config: ReplicaConfig): void {
  const { syncOnOpen, maxRetries, paused } = config;
  if (syncOnOpen !== undefined && typeof syncOnOpen !== "boolean") throw bad("syncOnOpen must be a boolean");
  if (maxRetries !== undefined && !(Number.isInteger(maxRetries) && maxRetries >= 0)) throw bad("maxRetries must be a whole number ≥ 0");
  if (paused !== undefined && typeof paused !== "boolean") throw bad("paused must be a boolean");
}

/** `syncInterval` (seconds, as in `@libsql/client`) as the timer's milliseconds. */
export function intervalMs(config: ReplicaConfig): number | undefined {
  return config.syncInterval === undefined ? undefined : Math.max(1, Math.round(config.syncInterval * 1000));
}
