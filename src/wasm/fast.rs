//! The fast path of a local `execute` (js/local.ts): statements kept by handle
//! (`Store::prepare_kept`), arguments that JS writes straight into a buffer in wasm
//! memory, and results that JS reads straight out of one — a call passes and returns
//! only numbers, and neither side allocates per call once warm.
//!
//! Why: a point read in SQLite takes ~2 µs in wasm; the generic path spent as much
//! again on copying the SQL string in, hashing it, re-reading the column header and
//! building JS values across the boundary.

use wasm_bindgen::prelude::*;

use rusqlite::types::ValueRef;

use crate::error::Error;
use crate::store::{RowSink, Run};
use crate::wasm::convert::{write_str, write_value};
use crate::wasm::error::to_js;
use crate::wasm::replica::JsReplica;

/// `run`'s answer when the statement failed: `takeError()` has the error.
const FAILED: u32 = 0;
/// `run`'s answer when the handle's statement was replaced: prepare again.
const STALE: u32 = 1;

/// The fast path's buffers. A result is written in the layout that
/// `KeptStatements.#decode` (js/local.ts) reads, little endian: `u32 nrows`, `u8 header
/// included`, `u8 hasRowid`, 2 bytes padding, `f64 rowsAffected`, `i64 rowid`, `u32
/// ncols` (with the header), 4 bytes padding; then the header if included (per column
/// `str name`, `str declared type`; `str` is a u32 length and UTF-8); then each value
/// as a tag byte and its bytes: 0 NULL, 1 INTEGER (i64), 2 REAL (f64), 3 TEXT (str),
/// 4 BLOB (u32 length and bytes).
#[derive(Default)]
pub(crate) struct Buffers {
    /// Arguments as `encodeArgs` (js/args.ts) packs them, written by JS. Always fully
    /// initialized (`len == capacity` in use), so JS writes only into live bytes.
    args: Vec<u8>,
    out: Out,
    error: Option<Error>,
}

/// The result being written (the layout above).
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    ncols: u32,
    nrows: u32,
}

const VALUES_AT: usize = 32;

impl Out {
    fn start(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; VALUES_AT]);
        self.ncols = 0;
        self.nrows = 0;
    }
}

impl RowSink for Out {
    fn column(&mut self, name: &str, decl_type: &str) {
        self.ncols += 1;
        write_str(&mut self.buf, name.as_bytes());
        write_str(&mut self.buf, decl_type.as_bytes());
    }

    fn begin_row(&mut self, _width: usize) {
        self.nrows += 1;
    }

    fn value(&mut self, v: ValueRef<'_>) {
        write_value(&mut self.buf, v);
    }

    fn finish(&mut self, rows_affected: u64, last_insert_rowid: Option<i64>) {
        let o = &mut self.buf;
        o[0..4].copy_from_slice(&self.nrows.to_le_bytes());
        o[5] = last_insert_rowid.is_some() as u8;
        o[8..16].copy_from_slice(&(rows_affected as f64).to_le_bytes());
        o[16..24].copy_from_slice(&last_insert_rowid.unwrap_or(0).to_le_bytes());
        o[24..28].copy_from_slice(&self.ncols.to_le_bytes());
    }
}

/// The module's `WebAssembly.Memory`, for JS views over the argument and result
/// buffers (re-created when the memory grows).
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

#[wasm_bindgen(js_class = Replica)]
impl JsReplica {
    /// Keeps `sql` prepared; returns its handle, or 0 when it must run through
    /// `executePacked` (not a single statement). Throws the statement's error.
    #[wasm_bindgen(js_name = prepareKept)]
    pub fn prepare_kept(&self, sql: &str) -> Result<u32, JsValue> {
        Ok(self.inner.store().prepare_kept(sql).map_err(to_js)?.unwrap_or(0))
    }

    /// Makes the argument buffer at least `len` bytes (keeping its contents) and
    /// returns its address in wasm memory.
    #[wasm_bindgen(js_name = argsReserve)]
    pub fn args_reserve(&mut self, len: u32) -> u32 {
        let args = &mut self.fast.args;
        if args.len() < len as usize {
            args.resize(len as usize, 0);
        }
        args.as_ptr() as u32
    }

    /// Runs a kept statement with the first `len` bytes of the argument buffer.
    /// Returns the address of the result (see [`Buffers`]), 0 when it failed (the
    /// error is in `takeError()`), 1 when the handle is stale.
    pub fn run(&mut self, handle: u32, len: u32) -> u32 {
        let Buffers { args, out, error } = &mut self.fast;
        out.start();
        let res = match args.get(..len as usize) {
            Some(a) => self.inner.store().run_prepared(handle, a, out),
            None => Err(Error::InvalidArgument("malformed packed arguments".into())),
        };
        match res {
            Ok(Run::Stale) => STALE,
            Ok(Run::Done { header }) => {
                out.buf[4] = header as u8;
                out.buf.as_ptr() as u32
            }
            Err(e) => {
                *error = Some(e);
                FAILED
            }
        }
    }

    /// The error of the last failed `run`, as the `Error` to throw.
    #[wasm_bindgen(js_name = takeError)]
    pub fn take_error(&mut self) -> JsValue {
        let e = self.fast.error.take();
        to_js(e.unwrap_or_else(|| Error::InvalidOperation("takeError() without a failed run".into())))
    }
}
