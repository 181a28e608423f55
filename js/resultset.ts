/**
 * Result sets and their rows, built by the one result reader (result.ts) for the
 * remote client and the embedded replica alike.
 */
import type { ResultSet, ResultSetJson, Row, Value } from "./types.js";

/**
 * One row class per result set: indices and `length` are getters on its prototype
 * (not enumerable, like `@libsql/client`), names are plain own properties (enumerable,
 * so `{...row}` and `JSON.stringify(row)` give `{ column: value }`; the first of two
 * same-named columns wins the name). The values live in a private field. Building a
 * row is one allocation and plain assignments — several times faster than
 * `Object.defineProperty` per field.
 */
export function rowMaker(columns: string[]): (values: Value[]) => Row {
  const key = columns.join("\u0000");
  let make = rowMakers.get(key);
  if (make === undefined) {
    if (rowMakers.size >= 512) rowMakers.clear();
    make = newRowMaker(columns);
    rowMakers.set(key, make);
  }
  return make;
}

/** Row classes by column list: queries repeat, and a class costs ~10 µs to build. */
const rowMakers = new Map<string, (values: Value[]) => Row>();

function newRowMaker(columns: string[]): (values: Value[]) => Row {
  // Parallel arrays and an index loop: no iterator or destructuring per row.
  const names: string[] = [];
  const at: number[] = [];
  const seen = new Set<string>();
  columns.forEach((name, i) => {
    if (!seen.has(name) && !/^(0|[1-9][0-9]*)$/.test(name) && name !== "length") {
      seen.add(name);
      names.push(name);
      at.push(i);
    }
  });
  const n = names.length;
  class RowImpl {
    #values: Value[];
    constructor(values: Value[]) {
      this.#values = values;
      const self = this as unknown as Record<string, Value>;
      for (let j = 0; j < n; j++) self[names[j]] = values[at[j]];
    }
    static at(row: RowImpl, i: number): Value {
      return row.#values[i];
    }
    get length(): number {
      return this.#values.length;
    }
  }
  for (let i = 0; i < columns.length; i++) {
    Object.defineProperty(RowImpl.prototype, i, {
      get(this: RowImpl) {
        return RowImpl.at(this, i);
      },
    });
  }
  return (values: Value[]): Row => new RowImpl(values) as unknown as Row;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Standard base64 with padding, as `@libsql/client`'s `toJSON()` writes BLOBs. */
export function base64(b: Uint8Array): string {
  let s = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < b.length) {
    const n = (b[i] << 16) | ((i + 1 < b.length ? b[i + 1] : 0) << 8);
    s += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < b.length ? B64[(n >> 6) & 63] : "=") + "=";
  }
  return s;
}

function jsonValue(v: Value): null | string | number {
  if (typeof v === "bigint") return v.toString();
  if (v instanceof ArrayBuffer) return base64(new Uint8Array(v));
  return v;
}

export class ResultSetImpl implements ResultSet {
  columns: string[];
  columnTypes: string[];
  rows: Row[];
  rowsAffected: number;
  lastInsertRowid: bigint | undefined;
  replicationIndex: number | undefined;

  constructor(
    columns: string[],
    columnTypes: string[],
    rows: Row[],
    rowsAffected: number,
    lastInsertRowid: bigint | undefined,
    replicationIndex: number | undefined,
  ) {
    this.columns = columns;
    this.columnTypes = columnTypes;
    this.rows = rows;
    this.rowsAffected = rowsAffected;
    this.lastInsertRowid = lastInsertRowid;
    this.replicationIndex = replicationIndex;
  }

  /** JSON-safe: bigints as strings, BLOBs as base64 strings, rows as arrays. */
  toJSON(): ResultSetJson {
    return {
      columns: this.columns,
      columnTypes: this.columnTypes,
      rows: this.rows.map((r) => Array.from({ length: r.length }, (_, i) => jsonValue(r[i]))),
      rowsAffected: this.rowsAffected,
      lastInsertRowid: this.lastInsertRowid === undefined ? null : this.lastInsertRowid.toString(),
    };
  }
}
