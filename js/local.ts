/**
 * The fast path of an embedded replica's local `execute`: statements kept prepared in
 * the wasm module by handle (src/store/prepared.rs, src/wasm/fast.rs), arguments
 * written straight into wasm memory (`encodeArgs`), results read straight out of it.
 * A call crosses the boundary with two numbers and returns one; the column header and
 * the row class are kept here per statement and only re-read when the module says the
 * header changed (first run, or SQLite re-prepared the statement after a schema
 * change). Results are read by the same reader as the generic path's (result.ts).
 */
import type { Replica } from "./wasm/edgesync.js";
import type { InArgs, InStatement, ResultSet } from "./types.js";
import { encodeArgs, statementParts } from "./args.js";
import type { ArgsTarget } from "./args.js";
import { emptyHeader, readResult } from "./result.js";
import type { Header } from "./result.js";

/** `Replica.run`'s answers that are not a result address (see src/wasm/fast.rs). */
const FAILED = 0;
const STALE = 1;
/** Statements remembered here; the module keeps its own bounded set (stale handles are re-prepared). */
const MAX_KEPT = 512;

interface Kept extends Header {
  /** 0: run this SQL through the generic path (not a single statement). */
  handle: number;
}

export class KeptStatements implements ArgsTarget {
  u8: Uint8Array;
  dv: DataView;
  ptr: number;
  cap = 4096;
  #r: Replica;
  #memory: WebAssembly.Memory;
  #kept = new Map<string, Kept>();
  /** 0 auto, 1 bigint, 2 string, 3 number. */
  #intMode: number;
  /** Bind every number as REAL (`numberArgs: "real"`). */
  #real: boolean;

  constructor(r: Replica, memory: WebAssembly.Memory, intMode: string | undefined, real: boolean) {
    this.#r = r;
    this.#intMode = intMode === "bigint" ? 1 : intMode === "string" ? 2 : intMode === "number" ? 3 : 0;
    this.#real = real;
    this.#memory = memory;
    this.ptr = r.argsReserve(this.cap);
    this.u8 = new Uint8Array(this.#memory.buffer);
    this.dv = new DataView(this.#memory.buffer);
  }

  reserve(need: number): void {
    this.ptr = this.#r.argsReserve(need);
    this.cap = need;
    this.#views();
  }

  /** Views over wasm memory go stale (length 0) when it grows. */
  #views(): void {
    if (this.u8.byteLength === 0) {
      this.u8 = new Uint8Array(this.#memory.buffer);
      this.dv = new DataView(this.#memory.buffer);
    }
  }

  #prepare(sql: string): Kept {
    const handle = this.#r.prepareKept(sql);
    if (this.#kept.size >= MAX_KEPT) this.#kept.clear();
    const k: Kept = { handle, ...emptyHeader() };
    this.#kept.set(sql, k);
    return k;
  }

  /**
   * Runs a statement; `undefined` when it has to go through the generic path. Throws
   * `RangeError` / `TypeError` for bad arguments and the module's errors as they are.
   */
  execute(stmt: InStatement | [string, InArgs?], extra?: InArgs): ResultSet | undefined {
    const [sql, args] = statementParts(stmt, extra);
    if (this.u8.byteLength === 0) this.#views();
    // Arguments first: a bad argument is reported before anything about the SQL, as
    // on the generic path. Preparing does not touch the argument buffer.
    const len = encodeArgs(args, this, this.#real);
    let k = this.#kept.get(sql) ?? this.#prepare(sql);
    if (k.handle === 0) return undefined;
    let at = this.#r.run(k.handle, len);
    if (at === STALE) {
      k = this.#prepare(sql);
      if (k.handle === 0) return undefined;
      at = this.#r.run(k.handle, len);
    }
    if (at === FAILED) throw this.#r.takeError();
    this.#views();
    return readResult(this.u8, this.dv, at, this.#intMode, k);
  }
}
