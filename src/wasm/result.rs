//! Query results as bytes for JS: the one layout every result crosses the boundary in,
//! and its writer. `readResult` in js/result.ts is the one reader.
//!
//! Why bytes: building a result from Rust value by value costs a boundary call per
//! value (and a `Reflect.set` per field, its key decoded out of wasm memory each time);
//! one buffer that JS decodes in one pass costs one crossing.
//!
//! Two paths write it. The kept-statement path of a replica's local `execute`
//! (`wasm/fast.rs`) leaves it in wasm memory and returns its address; JS reads it in
//! place, and keeps each statement's column header itself, so the header is included
//! only when the statement's columns changed. The generic path (the remote client,
//! batches, write-through, SQL that is not one statement) returns a copy as a
//! `Uint8Array`; there the header is included the first time its id is used, and JS
//! keeps decoded headers by id.
//!
//! Layout (little endian; `str` = u32 byte length, then UTF-8 or the blob's bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | u32 number of rows |
//! | 4 | 1 | u8 1 = the column header follows this fixed part |
//! | 5 | 1 | u8 1 = there is a last insert rowid |
//! | 6 | 1 | u8 1 = there is a replication index |
//! | 7 | 1 | u8 int mode of the generic path: 0 `auto`, 1 `bigint`, 2 `string`, 3 `number` (the kept path's reader knows its own) |
//! | 8 | 8 | f64 rows affected |
//! | 16 | 8 | i64 last insert rowid |
//! | 24 | 4 | u32 number of columns |
//! | 28 | 4 | u32 header id (generic path; 0 on the kept path) |
//! | 32 | 8 | f64 replication index (frame numbers stay far below 2^53) |
//! | 40 | | the header, if included: per column `str` name, `str` declared type |
//! | | | the values, row by row: a tag byte, then 0 NULL (nothing), 1 INTEGER (i64), 2 REAL (f64), 3 TEXT (`str`), 4 BLOB (`str`) |

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::sql::{ResultSet, ValueRef};
use crate::wasm::convert::IntMode;

const HEADER_INCLUDED: usize = 4;
const HAS_ROWID: usize = 5;
const HAS_REPLICATION_INDEX: usize = 6;
const INT_MODE: usize = 7;
const ROWS_AFFECTED: usize = 8;
const ROWID: usize = 16;
const NCOLS: usize = 24;
const HEADER_ID: usize = 28;
const REPLICATION_INDEX: usize = 32;
/// Where the header (if included) and then the values start.
const VALUES_AT: usize = 40;

/// Distinct headers seen by the generic path, by id; JS keeps the decoded ones by the
/// same ids. Cleared (and the ids reused, headers then sent again) past 4,096.
const MAX_HEADER_IDS: usize = 4096;

thread_local! {
    static HEADER_IDS: RefCell<HashMap<Vec<u8>, u32>> = Default::default();
}

/// A result being written in the layout above.
#[derive(Default)]
pub(crate) struct ResultWriter {
    buf: Vec<u8>,
    /// The generic path's header, held back until the first row (or the end) finds
    /// out whether JS has it already. `None` on the kept path: its header goes
    /// straight into `buf`.
    held_header: Option<Vec<u8>>,
    ncols: u32,
    nrows: u32,
}

/// A `str` of the layout: u32 length, then the bytes.
fn write_str(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn write_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.push(0),
        ValueRef::Integer(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        ValueRef::Real(f) => {
            out.push(2);
            out.extend_from_slice(&f.to_le_bytes());
        }
        ValueRef::Text(t) => {
            out.push(3);
            write_str(out, t);
        }
        ValueRef::Blob(b) => {
            out.push(4);
            write_str(out, b);
        }
    }
}

impl ResultWriter {
    /// A result of the generic path, to be returned with [`ResultWriter::to_js`].
    pub(crate) fn generic(mode: IntMode) -> Self {
        let mut w = ResultWriter {
            buf: Vec::with_capacity(256),
            held_header: Some(Vec::new()),
            ..Default::default()
        };
        w.buf.resize(VALUES_AT, 0);
        w.buf[INT_MODE] = match mode {
            IntMode::Auto => 0,
            IntMode::BigInt => 1,
            IntMode::String => 2,
            IntMode::Number => 3,
        };
        w
    }

    /// Starts the next result of the kept path in the same buffer (no allocation once
    /// warm).
    #[cfg(feature = "js-replica")]
    pub(crate) fn start_kept(&mut self) {
        self.buf.clear();
        self.buf.resize(VALUES_AT, 0);
        self.held_header = None;
        self.ncols = 0;
        self.nrows = 0;
    }

    /// Kept path: whether the header was written (the store reports the columns only
    /// when they changed).
    #[cfg(feature = "js-replica")]
    pub(crate) fn set_header_included(&mut self, included: bool) {
        self.buf[HEADER_INCLUDED] = u8::from(included);
    }

    /// A remote result's replication index.
    pub(crate) fn set_replication_index(&mut self, index: Option<u64>) {
        self.buf[HAS_REPLICATION_INDEX] = u8::from(index.is_some());
        self.buf[REPLICATION_INDEX..REPLICATION_INDEX + 8].copy_from_slice(&(index.unwrap_or(0) as f64).to_le_bytes());
    }

    /// Where the result is in wasm memory (valid until the writer is used again).
    #[cfg(feature = "js-replica")]
    pub(crate) fn address(&self) -> u32 {
        self.buf.as_ptr() as u32
    }

    /// A copy for JS, which decodes it with `decodeResult` (js/result.ts).
    pub(crate) fn to_js(&self) -> JsValue {
        Uint8Array::from(&self.buf[..]).into()
    }

    /// Generic path: puts the header id (and, the first time, the header itself)
    /// before the values.
    fn close_header(&mut self) {
        let Some(header) = self.held_header.take() else {
            return;
        };
        let (id, fresh) = HEADER_IDS.with(|ids| {
            let mut ids = ids.borrow_mut();
            if let Some(id) = ids.get(&header) {
                return (*id, false);
            }
            if ids.len() >= MAX_HEADER_IDS {
                ids.clear();
            }
            let id = ids.len() as u32;
            ids.insert(header.clone(), id);
            (id, true)
        });
        self.buf[HEADER_ID..HEADER_ID + 4].copy_from_slice(&id.to_le_bytes());
        self.buf[HEADER_INCLUDED] = u8::from(fresh);
        if fresh {
            self.buf.extend_from_slice(&header);
        }
    }
}

impl ResultWriter {
    pub(crate) fn column(&mut self, name: &str, decl_type: &str) {
        self.ncols += 1;
        let out = self.held_header.as_mut().unwrap_or(&mut self.buf);
        write_str(out, name.as_bytes());
        write_str(out, decl_type.as_bytes());
    }

    pub(crate) fn begin_row(&mut self) {
        self.close_header();
        self.nrows += 1;
    }

    pub(crate) fn value(&mut self, v: ValueRef<'_>) {
        write_value(&mut self.buf, v);
    }

    pub(crate) fn finish(&mut self, rows_affected: u64, last_insert_rowid: Option<i64>) {
        self.close_header();
        let b = &mut self.buf;
        b[0..4].copy_from_slice(&self.nrows.to_le_bytes());
        b[HAS_ROWID] = u8::from(last_insert_rowid.is_some());
        b[ROWS_AFFECTED..ROWS_AFFECTED + 8].copy_from_slice(&(rows_affected as f64).to_le_bytes());
        b[ROWID..ROWID + 8].copy_from_slice(&last_insert_rowid.unwrap_or(0).to_le_bytes());
        b[NCOLS..NCOLS + 4].copy_from_slice(&self.ncols.to_le_bytes());
    }
}

/// A result set (from the remote client or a batch) as bytes for JS.
pub(crate) fn result_set_to_js(rs: &ResultSet, mode: IntMode) -> JsValue {
    let mut w = ResultWriter::generic(mode);
    for (name, ty) in rs.columns.iter().zip(&rs.column_types) {
        w.column(name, ty);
    }
    for row in &rs.rows {
        w.begin_row();
        for v in row {
            w.value(v.into());
        }
    }
    w.finish(rs.rows_affected, rs.last_insert_rowid);
    w.set_replication_index(rs.replication_index);
    w.to_js()
}

/// Several result sets, as a JS array of byte arrays.
pub(crate) fn result_sets_to_js(results: &[ResultSet], mode: IntMode) -> JsValue {
    results
        .iter()
        .map(|rs| result_set_to_js(rs, mode))
        .collect::<Array>()
        .into()
}

/// The local database writes its rows straight into the result (no `ResultSet` first).
#[cfg(feature = "js-replica")]
impl crate::store::RowSink for ResultWriter {
    fn column(&mut self, name: &str, decl_type: &str) {
        ResultWriter::column(self, name, decl_type);
    }

    fn begin_row(&mut self, _width: usize) {
        ResultWriter::begin_row(self);
    }

    fn value(&mut self, v: rusqlite::types::ValueRef<'_>) {
        ResultWriter::value(self, crate::store::value_ref(v));
    }

    fn finish(&mut self, rows_affected: u64, last_insert_rowid: Option<i64>) {
        ResultWriter::finish(self, rows_affected, last_insert_rowid);
    }
}
