/**
 * The background sync of an embedded replica (js/replica.ts): when the next sync runs
 * (`syncInterval`, `syncOnOpen`, the back-off after failures), giving up after
 * `maxRetries`, and `pause()`/`resume()`. It owns the timer; the client gives it the
 * sync to run and what it needs to read from the replica. Kept apart from the client
 * so that the scheduling rules are read in one place.
 */

/** What the scheduler needs from its client. */
export interface ScheduleHost {
  /** Whether the client may still sync (not closed, not retired by a trap, open). */
  alive(): boolean;
  sync(): Promise<unknown>;
  /** The back-off delay (ms) after the failures so far; undefined when it cannot be read. */
  retryDelay(): number | undefined;
  /** Consecutive failed syncs. */
  retryCount(): number;
  emit(name: string, detail: unknown): void;
}

export interface ScheduleOptions {
  /** Milliseconds between background syncs, if any. */
  intervalMs: number | undefined;
  syncOnOpen: boolean | undefined;
  maxRetries: number | undefined;
  paused: boolean | undefined;
}

export class Scheduler {
  readonly #host: ScheduleHost;
  readonly #interval: number | undefined;
  readonly #onOpen: boolean;
  /** Whether a background loop runs at all (syncInterval, or syncOnOpen until it succeeds). */
  readonly #background: boolean;
  readonly #maxRetries: number;
  #paused: boolean;
  #gaveUp = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dueAt: number | undefined;

  constructor(host: ScheduleHost, o: ScheduleOptions) {
    this.#host = host;
    this.#interval = o.intervalMs;
    this.#onOpen = o.syncOnOpen ?? o.intervalMs !== undefined;
    this.#background = this.#onOpen || o.intervalMs !== undefined;
    this.#maxRetries = o.maxRetries ?? Infinity;
    this.#paused = o.paused ?? false;
  }

  get paused(): boolean {
    return this.#paused;
  }

  get gaveUp(): boolean {
    return this.#gaveUp;
  }

  /** When the next background sync is due (ms since the epoch). */
  get dueAt(): number | undefined {
    return this.#dueAt;
  }

  /** The replica is open: the first background sync. */
  start(): void {
    if (this.#onOpen) this.schedule(0);
    else if (this.#interval !== undefined) this.schedule(this.#interval);
  }

  /**
   * The next sync after `delay` ms, or after the back-off delay when `delay` is
   * `"retry"`. `#dueAt` is set from the very delay the timer gets, so `nextSyncAt` is
   * exact. Nothing here may throw: it runs in promise callbacks nobody awaits.
   */
  schedule(delay: number | "retry"): void {
    if (!this.#background || this.#paused || this.#gaveUp || !this.#host.alive()) return;
    let ms = delay === "retry" ? 1000 : delay;
    if (delay === "retry") {
      const d = this.#host.retryDelay();
      if (d === undefined) return; // a trap retired the client: no more background syncs
      ms = Math.max(1, d);
    }
    this.stop();
    this.#dueAt = Date.now() + ms;
    this.#timer = setTimeout(() => {
      this.#timer = this.#dueAt = undefined;
      if (this.#paused || !this.#host.alive()) return;
      this.#host.sync().then(
        () => {
          if (this.#interval !== undefined) this.schedule(this.#interval);
        },
        (e: { code?: string; message?: string }) => this.#afterFailure(e),
      );
    }, ms);
    // A background sync must never keep a Node process alive on its own.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** After a failed background sync: give up past `maxRetries`, else retry after the back-off. */
  #afterFailure(e: { code?: string; message?: string }): void {
    if (this.#paused || this.#timer !== undefined || !this.#host.alive()) return;
    const retryCount = this.#host.retryCount();
    if (retryCount > this.#maxRetries) {
      this.#gaveUp = true;
      this.#host.emit("sync:gaveup", { retryCount, code: String(e?.code ?? "INTERNAL_ERROR"), message: String(e?.message ?? e) });
      return;
    }
    this.schedule("retry");
  }

  /** A `sync()` succeeded: one that works again after giving up restarts background sync. */
  succeeded(): void {
    if (!this.#gaveUp) return;
    this.#gaveUp = false;
    this.#host.emit("sync:resumed", {});
    if (this.#interval !== undefined) this.schedule(this.#interval);
  }

  /** Stops the timer (close, pause). */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = this.#dueAt = undefined;
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.stop();
    this.#host.emit("sync:paused", {});
  }

  resume(): void {
    if (!this.#paused && !this.#gaveUp) return;
    this.#paused = false;
    this.#gaveUp = false;
    this.#host.emit("sync:resumed", {});
    this.schedule(0);
  }
}
