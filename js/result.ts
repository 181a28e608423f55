/**
 * The one reader of query results out of wasm memory. The byte layout is documented
 * once, at its writer: src/wasm/result.rs. Two paths produce it:
 *
 * - the kept-statement path of an embedded replica (local.ts) leaves a result in wasm
 *   memory and `readResult` reads it in place, with the statement's last header;
 * - the generic path (the remote client, batches, write-through, SQL that is not one
 *   statement) returns a copy, which `decodeResult` reads, headers kept by id.
 *
 * Value rules: NULL → `null`, REAL → `number`, TEXT → `string`, BLOB → an `ArrayBuffer`
 * of its own (as from `@libsql/client`), INTEGER by int mode: 0 `auto` (a `number` when
 * it is a safe integer, else a `bigint`), 1 `bigint`, 2 `string` (decimal), 3 `number`
 * (a `RangeError` when it is not a safe integer, as from `@libsql/client`).
 */
import type { ResultSet, Row, Value } from "./types.js";
import { ResultSetImpl, rowMaker } from "./resultset.js";

/** Field offsets of the fixed part (src/wasm/result.rs). */
const HEADER_INCLUDED = 4;
const HAS_ROWID = 5;
const HAS_REPLICATION_INDEX = 6;
const INT_MODE = 7;
const ROWS_AFFECTED = 8;
const ROWID = 16;
const NCOLS = 24;
const HEADER_ID = 28;
const REPLICATION_INDEX = 32;
const VALUES_AT = 40;

const TWO32 = 4294967296;
const utf8 = new TextDecoder();

/** A statement's columns as last decoded, and the row class for them. */
export interface Header {
  columns: string[];
  columnTypes: string[];
  make: (values: Value[]) => Row;
}

/** A header for a statement whose columns have not been read yet. */
export function emptyHeader(): Header {
  return { columns: [], columnTypes: [], make: rowMaker([]) };
}

/**
 * Text out of wasm memory. Short ASCII (ids, names, labels) decodes by hand, eight
 * bytes per `String.fromCharCode`: ~3× faster than a loop per byte and ~4× faster than
 * TextDecoder for strings under ~50 bytes. Anything else goes through TextDecoder.
 */
function readStr(bytes: Uint8Array, at: number, len: number): string {
  const end = at + len;
  if (len > 48) return utf8.decode(bytes.subarray(at, end));
  let s = "";
  let i = at;
  for (; i + 8 <= end; i += 8) {
    const c0 = bytes[i], c1 = bytes[i + 1], c2 = bytes[i + 2], c3 = bytes[i + 3];
    const c4 = bytes[i + 4], c5 = bytes[i + 5], c6 = bytes[i + 6], c7 = bytes[i + 7];
    if ((c0 | c1 | c2 | c3 | c4 | c5 | c6 | c7) > 127) return utf8.decode(bytes.subarray(at, end));
    s += String.fromCharCode(c0, c1, c2, c3, c4, c5, c6, c7);
  }
  for (; i + 2 <= end; i += 2) {
    const c0 = bytes[i], c1 = bytes[i + 1];
    if ((c0 | c1) > 127) return utf8.decode(bytes.subarray(at, end));
    s += String.fromCharCode(c0, c1);
  }
  if (i < end) {
    const c0 = bytes[i];
    if (c0 > 127) return utf8.decode(bytes.subarray(at, end));
    s += String.fromCharCode(c0);
  }
  return s;
}

/**
 * Reads the result at `p`. `header` holds the statement's columns from an earlier
 * result; when this result includes a header, `header` is updated in place.
 * `intMode`: 0 auto, 1 bigint, 2 string, 3 number.
 */
export function readResult(bytes: Uint8Array, dv: DataView, p: number, intMode: number, header: Header): ResultSet {
  const nrows = dv.getUint32(p, true);
  let at = p + VALUES_AT;
  if (bytes[p + HEADER_INCLUDED] === 1) {
    const n = dv.getUint32(p + NCOLS, true);
    const columns = new Array<string>(n);
    const columnTypes = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      let len = dv.getUint32(at, true);
      columns[i] = readStr(bytes, at + 4, len);
      at += 4 + len;
      len = dv.getUint32(at, true);
      columnTypes[i] = readStr(bytes, at + 4, len);
      at += 4 + len;
    }
    header.columns = columns;
    header.columnTypes = columnTypes;
    header.make = rowMaker(columns);
  }
  const ncols = header.columns.length;
  const make = header.make;
  const rows = new Array<Row>(nrows);
  for (let r = 0; r < nrows; r++) {
    const row = new Array<Value>(ncols);
    for (let c = 0; c < ncols; c++) {
      const tag = bytes[at++];
      if (tag === 0) {
        row[c] = null;
      } else if (tag === 1) {
        const lo = dv.getUint32(at, true);
        const hi = dv.getInt32(at + 4, true);
        if ((intMode === 0 || intMode === 3) && hi >= -2097152 && hi < 2097152 && (hi !== -2097152 || lo !== 0)) {
          row[c] = hi * TWO32 + lo;
        } else {
          const big = dv.getBigInt64(at, true);
          if (intMode === 3) throw new RangeError("Received integer which is too large to be safely represented as a JavaScript number");
          row[c] = intMode === 2 ? big.toString() : intMode === 0 && big >= -9007199254740991n && big <= 9007199254740991n ? Number(big) : big;
        }
        at += 8;
      } else if (tag === 2) {
        row[c] = dv.getFloat64(at, true);
        at += 8;
      } else {
        const len = dv.getUint32(at, true);
        // Blobs are copied out: a view would change with the next call.
        row[c] = tag === 3 ? readStr(bytes, at + 4, len) : bytes.slice(at + 4, at + 4 + len).buffer;
        at += 4 + len;
      }
    }
    rows[r] = make(row);
  }
  const rowsAffected = dv.getFloat64(p + ROWS_AFFECTED, true);
  const lastInsertRowid = bytes[p + HAS_ROWID] === 1 ? dv.getBigInt64(p + ROWID, true) : undefined;
  const replicationIndex = bytes[p + HAS_REPLICATION_INDEX] === 1 ? dv.getFloat64(p + REPLICATION_INDEX, true) : undefined;
  // Fresh arrays per result: callers may keep or change them.
  return new ResultSetImpl(header.columns.slice(), header.columnTypes.slice(), rows, rowsAffected, lastInsertRowid, replicationIndex);
}

/** Headers of the generic path by the id the module gave them. */
const headers = new Map<number, Header>();

/** A result of the generic path (a copy, its own buffer): the module's int mode and header id are in it. */
export function decodeResult(bytes: Uint8Array): ResultSet {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const id = dv.getUint32(HEADER_ID, true);
  let header = headers.get(id);
  if (bytes[HEADER_INCLUDED] === 1) {
    header = emptyHeader();
    headers.set(id, header);
  } else if (header === undefined) {
    throw new Error(`result header ${id} was never sent`); // a bug: the module sends each id's header first
  }
  return readResult(bytes, dv, 0, bytes[INT_MODE], header);
}
