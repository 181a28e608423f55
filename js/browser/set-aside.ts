/**
 * The calls the owner's queue (js/browser/host.ts) sets aside because of a transaction
 * (js/browser/tx-slot.ts): *held* while another client's transaction is open (they run
 * when it ends), *parked* while a `transaction()` waits for the sync in flight (it
 * begins after the sync, as on Node, and the queue goes on meanwhile: awaited in the
 * queue, every tab's calls would wait on the network). Either way they go back to the
 * head of the queue together, in the order they came.
 */
import type { Call } from "./protocol.js";
import type { From } from "./run.js";

export class SetAside<T extends { c: Call; from: From | null }> {
  #held: T[] = [];
  #parked: T[] = [];
  /** `requeue`: puts calls back at the head of the owner's queue, and pumps it. */
  constructor(private readonly requeue: (items: T[]) => void) {}

  hold(item: T): void {
    this.#held.push(item);
  }

  /** Parks a `transaction()` until `syncing` settles. */
  park(item: T, syncing: Promise<unknown>): void {
    if (this.#parked.length === 0) {
      const back = () => {
        const parked = this.#parked;
        this.#parked = [];
        this.requeue(parked);
      };
      void syncing.then(back, back);
    }
    this.#parked.push(item);
  }

  /** The transaction ended: the held calls run first. */
  release(): void {
    if (this.#held.length === 0) return;
    const held = this.#held;
    this.#held = [];
    this.requeue(held);
  }

  /** A follower closed: its calls set aside must not run (its tab answered them). */
  dropFrom(origin: string): void {
    const theirs = (q: T) => q.from?.origin === origin;
    this.#held = this.#held.filter((q) => !theirs(q));
    this.#parked = this.#parked.filter((q) => !theirs(q));
  }
}
