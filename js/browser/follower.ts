/**
 * The calls of this worker's own client while another worker owns the store (the
 * follower's side of js/browser/host.ts): each is kept until it is answered, forwarded
 * on the store's channel — the calls made in one tick in one message — and sent again,
 * in order, to each new owner. The owner deduplicates what arrives twice
 * (js/browser/run.ts); this side only has to never forget a call, and to say which were
 * forwarded (they may have run already, so the worker that takes the store over runs
 * them deduplicated too).
 */
import type { Call, Forwarded, OnChannel } from "./protocol.js";

/** How long a closing follower waits for the answers to writes it forwarded. */
const CLOSE_WAIT_MS = 3000;
/** Calls safe to give up when closing (they may be made again): not writes. */
const REPEATABLE = new Set(["sync", "migrate", "syncLog", "state", "listen"]);

/** An own call not answered yet; `forwarded` once another worker may have run it. */
export type Kept = Call & { forwarded?: boolean };

export class Forwarder {
  readonly #origin: string;
  /** Asks the host for a flush (the queue goes out with it). */
  readonly #schedule: () => void;
  #pending = new Map<number, Kept>();
  #queue: Forwarded[] = [];
  /** Called when an answer came, while close() waits for the writes. */
  #onAnswer: (() => void) | undefined;

  /** `origin`: this worker, as the sender of forwarded calls. */
  constructor(origin: string, schedule: () => void) {
    this.#origin = origin;
    this.#schedule = schedule;
  }

  /** Keeps an own call until it is answered; forwards it now if `send` (a follower). */
  keep(c: Call, send: boolean): void {
    this.#pending.set(c.id, c);
    if (send) this.forward(c);
  }

  /** Queues a call for the owner (sent with the next flush). */
  forward(c: Call): void {
    this.#queue.push({ ...c, origin: this.#origin, low: 0 });
    this.#schedule();
  }

  /** Forwards every call still unanswered again, in order (a new owner, or a start). */
  resend(): void {
    for (const c of this.#sorted()) this.forward(c);
  }

  /** The lowest own call id still unanswered: the owner may forget answers below it. */
  low(): number {
    let low = Number.MAX_SAFE_INTEGER;
    for (const id of this.#pending.keys()) if (id < low) low = id;
    return low;
  }

  /** Sends what is queued to the owner, marking those calls forwarded. */
  flush(channel: BroadcastChannel): void {
    if (this.#queue.length === 0) return;
    const low = this.low();
    const calls = this.#queue.map((c) => ({ ...c, low }));
    this.#queue = [];
    for (const c of calls) {
      const own = this.#pending.get(c.id);
      if (own && c.m !== "listen") own.forwarded = true;
    }
    channel.postMessage({ t: "req", calls } satisfies OnChannel);
  }

  /** The owner answered call `id`: the call, or undefined if answered already (sent twice). */
  answered(id: number): Kept | undefined {
    const c = this.#pending.get(id);
    if (c !== undefined) this.#pending.delete(id);
    return c;
  }

  /**
   * Takes the first call still unanswered (this worker now owns the store and runs it).
   * One at a time: `low()` must still count the later ones, whose kept answers the owner
   * must not forget before they run.
   */
  next(): Kept | undefined {
    const [first] = this.#sorted();
    if (first !== undefined) this.#pending.delete(first.id);
    return first;
  }

  /** Takes every call still unanswered, in order: this worker fails them now. */
  drain(): Kept[] {
    const all = this.#sorted();
    this.#pending.clear();
    return all;
  }

  /** Some call of this worker's client was answered (close() may stop waiting). */
  replied(): void {
    this.#onAnswer?.();
  }

  /** Waits until no write of this worker's client is waiting on another worker (3 s at most). */
  async settle(): Promise<void> {
    const writing = () => [...this.#pending.values()].some((c) => !REPEATABLE.has(c.m));
    if (!writing()) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, CLOSE_WAIT_MS);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#onAnswer = () => {
        if (!writing()) done();
      };
    });
    this.#onAnswer = undefined;
  }

  #sorted(): Kept[] {
    return [...this.#pending.values()].sort((a, b) => a.id - b.id);
  }
}
