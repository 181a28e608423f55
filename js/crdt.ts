/**
 * CRDTs: conflict-free replicated data types, implemented in Rust (`src/crdt/`) and
 * exported from the wasm module as they are.
 *
 * ```ts
 * import { PNCounter } from "edgesync";
 * const a = new PNCounter("node-a"), b = new PNCounter("node-b");
 * a.increment(10); b.decrement(3);
 * b.applyUpdate(a.encodeUpdateSince(b.version())); // only what b lacks
 * a.merge(b);                                      // or the whole state
 * a.value(); // 7, and b.value() is 7 too
 * ```
 *
 * Every class shares:
 * - `new X(siteId?)`: the replica's site id — a non-negative integer `number`, a
 *   `bigint` below 2^64, or a `string` (hashed, FNV-1a 64); random when absent. Two live
 *   replicas of one object must never share a site id.
 * - `merge(other)`: joins another replica of the same class.
 * - `version(): Uint8Array`: the operations seen (an encoded version vector).
 * - `encodeUpdateSince(version?): Uint8Array`: what a replica at `version` lacks
 *   (absent: everything). `applyUpdate(bytes)` applies it; applying an update twice or
 *   an older one later is harmless. An `ORSet` update built on operations the receiver
 *   has not seen is refused (`INVALID_OPERATION`): ask for `encodeUpdateSince(version())`.
 * - `encode(): Uint8Array` / `X.decode(bytes, siteId?)`: the full state.
 * - `free()`: releases the wasm memory (also done by a FinalizationRegistry).
 * - `siteId: bigint`.
 *
 * Values are `null`, `number`, `bigint`, `string`, `Uint8Array` (booleans are stored as
 * 0/1, `Date` as its milliseconds); integers come back as `number` when safe and
 * `bigint` otherwise. Errors are `EdgesyncError`s with a `code`: `INVALID_ARGUMENT`
 * (bad argument), `DECODE_ERROR` (bytes that are not a valid encoding),
 * `INVALID_OPERATION` (counter overflow, an ORSet update on an unseen base),
 * `CLOCK_DRIFT` (an LWW update, or an LWW replica given to `merge`, with writes more
 * than a minute in the future).
 *
 * - `GCounter`: `increment(amount = 1)`, `value()`.
 * - `PNCounter`: `increment(amount = 1)`, `decrement(amount = 1)`, `value()`.
 * - `ORSet` (add-wins): `add(v)`, `remove(v): boolean`, `has(v)`, `values()`, `size`.
 * - `LWWRegister`: `set(v)`, `get()` (`undefined` until set). Writes are ordered by a
 *   hybrid logical clock over `Date.now()`.
 * - `LWWMap`: `set(key, v)`, `get(key)`, `has(key)`, `delete(key): boolean`, `keys()`,
 *   `entries()`, `size`. A delete is a timestamped write: a later set revives the key.
 */
import * as wasm from "./wasm/edgesync.js";
import { adopt, adoptFrom, retiredError } from "./wasm-errors.js";

type Fn = (...args: unknown[]) => unknown;

/**
 * Wraps a method (or getter) so that what it throws is an `EdgesyncError`, and a trap
 * retires the object (see `adoptFrom`): a retired object's calls fail at once, and its
 * `free()` does nothing.
 */
function guardMethod(owner: object, key: string): void {
  const d = Object.getOwnPropertyDescriptor(owner, key);
  if (key === "constructor" || d === undefined) return;
  const wrap = (f: Fn): Fn =>
    function (this: unknown, ...args: unknown[]): unknown {
      const dead = retiredError(this);
      if (dead !== undefined) {
        if (key === "free") return undefined;
        throw dead;
      }
      try {
        return f.apply(this, args);
      } catch (e) {
        throw adoptFrom(this, e);
      }
    };
  if (typeof d.value === "function") Object.defineProperty(owner, key, { ...d, value: wrap(d.value as Fn) });
  else if (typeof d.get === "function") Object.defineProperty(owner, key, { ...d, get: wrap(d.get as Fn) });
}

/** The class itself (instances, `instanceof` and statics unchanged), with errors adopted. */
function guard<C extends abstract new (...args: never[]) => unknown>(cls: C): C {
  for (const key of Object.getOwnPropertyNames(cls.prototype)) guardMethod(cls.prototype, key);
  guardMethod(cls, "decode");
  return new Proxy(cls, {
    construct(target, args, newTarget) {
      try {
        return Reflect.construct(target, args, newTarget);
      } catch (e) {
        throw adopt(e);
      }
    },
  });
}

/** A grow-only counter. */
export const GCounter = guard(wasm.GCounter);
export type GCounter = wasm.GCounter;
/** A counter that goes up and down. */
export const PNCounter = guard(wasm.PNCounter);
export type PNCounter = wasm.PNCounter;
/** An add-wins observed-remove set. */
export const ORSet = guard(wasm.ORSet);
export type ORSet = wasm.ORSet;
/** A last-writer-wins register. */
export const LWWRegister = guard(wasm.LWWRegister);
export type LWWRegister = wasm.LWWRegister;
/** A map of last-writer-wins registers. */
export const LWWMap = guard(wasm.LWWMap);
export type LWWMap = wasm.LWWMap;

/** A site id as `new X(siteId)` accepts it. */
export type SiteId = number | bigint | string;

/**
 * Collaborative plain text (see `src/crdt/text/`). Errors are `EdgesyncError`s; a trap
 * in the wasm module retires the object (`INTERNAL_ERROR`, see js/wasm-errors.ts). The
 * per-keystroke calls keep their fast path (a try/catch costs nothing until a throw).
 *
 * `new Text(siteId?)`, `insert(index, str)`, `delete(index, length)`, `toString()`,
 * `length`; `insertUtf16` / `deleteUtf16` / `lengthUtf16` take JavaScript string
 * offsets; `encode(options?)` / `Text.decode(bytes, siteId?)` — `encode()` leaves out
 * the text of deleted characters (`textAt` / `restore` of older versions is then an
 * `INVALID_OPERATION` error on a replica loaded from it), `encode({ history: true })`
 * keeps it; `version()`, `encodeUpdateSince(version?)`, `applyUpdate(bytes)`,
 * `merge(other)`, `pendingOps`; `anchor(index, "before" | "after")` /
 * `resolve(anchor)` for cursors; `textAt(version)` / `restore(version)` for history;
 * `free()`.
 */
export const Text = wasm.Text;
// The per-keystroke methods return their error instead of throwing it (a `Result`
// return would cost a JavaScript array per call; see `status` in src/wasm/text.rs); a
// try/catch costs nothing until something throws.
const keystroke = ["insert", "delete", "insertUtf16", "deleteUtf16"] as const;
for (const name of keystroke) {
  const raw = wasm.Text.prototype[name] as (this: wasm.Text, a: number, b: never) => unknown;
  Object.defineProperty(wasm.Text.prototype, name, {
    value: function (this: wasm.Text, a: number, b: never): void {
      let error;
      try {
        error = raw.call(this, a, b);
      } catch (e) {
        throw retiredError(this) ?? adoptFrom(this, e);
      }
      if (error !== undefined) throw error;
    },
    writable: true,
    configurable: true,
  });
}
// The other methods and getters: errors adopted, a trap retires the object.
for (const key of Object.getOwnPropertyNames(wasm.Text.prototype)) {
  if (!(keystroke as readonly string[]).includes(key)) guardMethod(wasm.Text.prototype, key);
}
guardMethod(wasm.Text, "decode");
export type Text = wasm.Text;

/**
 * One replica's named CRDT objects (see `src/crdt/resolver.rs`), with the same error
 * adoption as the CRDT classes.
 *
 * `new Resolver(siteId?)`; `getCRDT(id, type)` creates or returns the object `id`
 * (`"gcounter" | "pncounter" | "orset" | "lwwregister" | "lwwmap" | "text"`) and returns
 * `{ id, type, value }` (a snapshot); `applyOperation(id, op, args?)` — `increment` /
 * `decrement` (`{ amount?, nodeId? }`), `add` / `remove` (`{ value }`), `set`
 * (`{ value }` or `{ key, value }`), `delete` (`{ key }`), `insert` (`{ index, text }`),
 * `deleteText` (`{ index, length }`); `version()`, `encodeUpdatesSince(version?)`,
 * `applyUpdates(bytes)`, `merge(other)`; `encode()` / `Resolver.decode(bytes, siteId?)`
 * (objects, conflict stats and the operation log); `operationLog()`;
 * `getConflictStats()`; `ids()`; `siteId`; `free()`.
 */
export const Resolver = guard(wasm.Resolver);
export type Resolver = wasm.Resolver;
