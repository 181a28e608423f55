//! JS values ⇄ [`Value`]s, statements and result sets.
//!
//! Argument rule (documented in the README):
//! `null`/`undefined` → NULL; `boolean` → 0/1; a safe-integer `number` → INTEGER,
//! any other finite `number` → REAL; `bigint` → INTEGER (must fit 64 bits);
//! `string` → TEXT; `Uint8Array`/`ArrayBuffer`/any typed-array view → BLOB;
//! `Date` → INTEGER milliseconds since the epoch. Anything else is `INVALID_ARGUMENT`.
//!
//! Result rule: INTEGER → `number` when it is a safe integer (|n| ≤ 2^53 − 1), else
//! `bigint` (intMode `"auto"`, the default); always `bigint` with `"bigint"`; always a
//! decimal `string` with `"string"`. REAL → `number`, TEXT → `string`, BLOB →
//! `Uint8Array`, NULL → `null`.

use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::error::Result;
use rusqlite::types::ValueRef;

use crate::sql::{ResultSet, Statement, Value};
use crate::store::RowSink;
use crate::wasm::error::invalid;

#[wasm_bindgen(module = "/src/wasm/glue.js")]
extern "C" {
    /// Decodes [`encode_result`]'s bytes into the raw result object, in one call.
    #[wasm_bindgen(js_name = decodeResult)]
    fn decode_result(bytes: &[u8], int_mode: u8) -> JsValue;
}

#[wasm_bindgen]
extern "C" {
    /// `{ sql, args }`: property getters compile to plain `obj.sql` in the glue, with no
    /// key string crossing the boundary (unlike `Reflect::get`).
    type JsStatement;
    #[wasm_bindgen(method, getter)]
    fn sql(this: &JsStatement) -> JsValue;
    #[wasm_bindgen(method, getter)]
    fn args(this: &JsStatement) -> JsValue;
}

/// 2^53 − 1: the largest integer a JS number holds exactly.
const MAX_SAFE: i64 = 9_007_199_254_740_991;

/// How INTEGER results reach JS.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntMode {
    Auto,
    BigInt,
    String,
}

impl IntMode {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(IntMode::Auto),
            "bigint" => Ok(IntMode::BigInt),
            "string" => Ok(IntMode::String),
            other => Err(invalid(format!(
                "intMode must be \"auto\", \"bigint\" or \"string\", not {other:?}"
            ))),
        }
    }
}

/// A JS string as Rust text; `None` when `v` is not a string.
///
/// A JS string is UTF-16 and may hold a lone surrogate (half of a pair, e.g.
/// `"\uD800"`), which no UTF-8 text can: `as_string` would silently store U+FFFD
/// instead. Such a string is refused (`INVALID_ARGUMENT`). The check only runs when
/// the converted text holds U+FFFD, so ordinary text costs nothing more.
pub(crate) fn js_string(v: &JsValue, what: &dyn Fn() -> String) -> Option<Result<String>> {
    let s = v.as_string()?;
    if s.contains('\u{FFFD}') && !v.unchecked_ref::<js_sys::JsString>().is_valid_utf16() {
        return Some(Err(invalid(format!(
            "{}: the string holds a lone surrogate (half of a UTF-16 pair), which UTF-8 text cannot store",
            what()
        ))));
    }
    Some(Ok(s))
}

pub(crate) fn js_to_value(v: &JsValue, what: &dyn Fn() -> String) -> Result<Value> {
    if v.is_null() || v.is_undefined() {
        return Ok(Value::Null);
    }
    if let Some(s) = js_string(v, what) {
        return s.map(Value::Text);
    }
    if let Some(n) = v.as_f64() {
        if !n.is_finite() {
            return Err(invalid(format!(
                "{}: {n} cannot be stored (SQLite has no NaN or infinity)",
                what()
            )));
        }
        let is_safe_int = n.fract() == 0.0 && n.abs() <= MAX_SAFE as f64;
        return Ok(if is_safe_int {
            Value::Integer(n as i64)
        } else {
            Value::Real(n)
        });
    }
    if let Some(b) = v.as_bool() {
        return Ok(Value::Integer(i64::from(b)));
    }
    if v.is_bigint() {
        return i64::try_from(v.clone())
            .map(Value::Integer)
            .map_err(|_| invalid(format!("{}: bigint does not fit in 64 bits", what())));
    }
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        return Ok(Value::Blob(a.to_vec()));
    }
    if let Some(ab) = v.dyn_ref::<ArrayBuffer>() {
        return Ok(Value::Blob(Uint8Array::new(ab).to_vec()));
    }
    if ArrayBuffer::is_view(v) {
        let get = |k: &str| Reflect::get(v, &JsValue::from_str(k)).ok();
        if let (Some(buf), Some(off), Some(len)) = (get("buffer"), get("byteOffset"), get("byteLength")) {
            if let (Ok(buf), Some(off), Some(len)) = (buf.dyn_into::<ArrayBuffer>(), off.as_f64(), len.as_f64()) {
                return Ok(Value::Blob(
                    Uint8Array::new_with_byte_offset_and_length(&buf, off as u32, len as u32).to_vec(),
                ));
            }
        }
    }
    if let Some(d) = v.dyn_ref::<js_sys::Date>() {
        let ms = d.get_time();
        if ms.is_finite() {
            return Ok(Value::Integer(ms as i64));
        }
        return Err(invalid(format!("{}: invalid Date", what())));
    }
    let kind = v.js_typeof().as_string().unwrap_or_default();
    Err(invalid(format!(
        "{}: unsupported type {kind}; use null, boolean, number, bigint, string, Uint8Array, ArrayBuffer or Date",
        what()
    )))
}

/// `"sql"`, `{ sql, args }` or `[sql, args]`; `args` an array (positional) or an
/// object (named).
pub(crate) fn js_to_statement(v: &JsValue) -> Result<Statement> {
    let sql_text = || "the statement's SQL".to_string();
    if let Some(sql) = js_string(v, &sql_text) {
        return Ok(Statement::new(sql?));
    }
    let (sql, args) = if Array::is_array(v) {
        let a: &Array = v.unchecked_ref();
        (a.get(0), a.get(1))
    } else if v.is_object() {
        let s: &JsStatement = v.unchecked_ref();
        (s.sql(), s.args())
    } else {
        return Err(invalid("a statement must be a string, { sql, args } or [sql, args]"));
    };
    let sql = js_string(&sql, &sql_text).ok_or_else(|| invalid("the statement's `sql` must be a string"))??;
    let mut stmt = Statement::new(sql);
    if args.is_null() || args.is_undefined() {
        return Ok(stmt);
    }
    if Array::is_array(&args) {
        let a: Array = args.unchecked_into();
        stmt.args.reserve(a.length() as usize);
        for (i, item) in a.iter().enumerate() {
            stmt.args.push(js_to_value(&item, &|| format!("argument {}", i + 1))?);
        }
    } else if args.is_object() && !args.is_function() {
        for entry in Object::entries(args.unchecked_ref()).iter() {
            let pair: Array = entry.unchecked_into();
            let name = js_string(&pair.get(0), &|| "an argument name".into())
                .transpose()?
                .unwrap_or_default();
            let value = js_to_value(&pair.get(1), &|| format!("argument {name:?}"))?;
            stmt.named_args.push((name, value));
        }
    } else {
        return Err(invalid("`args` must be an array (positional) or an object (named)"));
    }
    Ok(stmt)
}

/// Decodes the arguments `encodeStatement` (js/args.ts) packed into bytes.
pub(crate) fn decode_args(sql: String, bytes: &[u8]) -> Result<Statement> {
    let mut stmt = Statement::new(sql);
    let mut p = crate::store::packed::Packed::new(bytes)?;
    while let Some((name, v)) = p.next()? {
        let v = crate::store::read_value(v);
        match name {
            Some(n) => stmt.named_args.push((n.to_string(), v)),
            None => stmt.args.push(v),
        }
    }
    Ok(stmt)
}

/// A JS array of statements.
pub(crate) fn js_to_statements(v: &JsValue) -> Result<Vec<Statement>> {
    if !Array::is_array(v) {
        return Err(invalid("batch() takes an array of statements"));
    }
    let a: &Array = v.unchecked_ref();
    a.iter()
        .enumerate()
        .map(|(i, s)| {
            js_to_statement(&s).map_err(|e| invalid(format!("statement {i}: {}", strip_prefix(&e.to_string()))))
        })
        .collect()
}

fn strip_prefix(s: &str) -> &str {
    s.strip_prefix("invalid argument: ").unwrap_or(s)
}

pub(crate) fn value_to_js(v: &Value, mode: IntMode) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Integer(i) => match mode {
            IntMode::Auto if (-MAX_SAFE..=MAX_SAFE).contains(i) => JsValue::from_f64(*i as f64),
            IntMode::Auto | IntMode::BigInt => JsValue::from(*i),
            IntMode::String => JsValue::from_str(&i.to_string()),
        },
        Value::Real(f) => JsValue::from_f64(*f),
        Value::Text(s) => JsValue::from_str(s),
        Value::Blob(b) => Uint8Array::from(&b[..]).into(),
    }
}

/// `{ columns, columnTypes, rows, rowsAffected, lastInsertRowid }`; the TS layer
/// turns `rows` (arrays) into `Row`s readable by index and by column name.
///
/// The whole result crosses the boundary once, as bytes that `decodeResult` in
/// `glue.js` reads: creating each value from Rust would cost a call per value.
pub(crate) fn result_set_to_js(rs: &ResultSet, mode: IntMode) -> JsValue {
    let mut enc = ResultEncoder::new();
    for (name, ty) in rs.columns.iter().zip(&rs.column_types) {
        enc.column(name, ty);
    }
    for row in &rs.rows {
        enc.begin_row(row.len());
        for v in row {
            enc.value(match v {
                Value::Null => ValueRef::Null,
                Value::Integer(i) => ValueRef::Integer(*i),
                Value::Real(f) => ValueRef::Real(*f),
                Value::Text(t) => ValueRef::Text(t.as_bytes()),
                Value::Blob(b) => ValueRef::Blob(b),
            });
        }
    }
    enc.finish(rs.rows_affected, rs.last_insert_rowid);
    enc.set_replication_index(rs.replication_index);
    enc.to_js(mode)
}

/// Writes a result in the layout `decodeResult` reads (little endian; `str` = u32
/// length + UTF-8): `u32 ncols, u32 nrows, f64 rowsAffected, u8 hasRowid, i64 rowid,
/// u32 header id, u8 header included, u8 hasReplicationIndex, f64 replicationIndex`,
/// then — only the first time a header id is
/// used — `str name, str declared type` per column, then each value as a tag byte:
/// 0 NULL, 1 INTEGER (i64), 2 REAL (f64), 3 TEXT (str), 4 BLOB (u32 length + bytes).
///
/// Column names and types repeat on every call of the same query, so each distinct
/// header is sent once and JS keeps the decoded arrays by id.
/// A `str` of the result layouts: u32 length (little endian), then the bytes.
pub(crate) fn write_str(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// One value of the result layouts (this one and the kept-statement results of
/// `wasm/fast.rs`): a tag byte — 0 NULL, 1 INTEGER (i64), 2 REAL (f64), 3 TEXT (str),
/// 4 BLOB (u32 length + bytes) — then its bytes.
pub(crate) fn write_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
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

pub(crate) struct ResultEncoder {
    buf: Vec<u8>,
    header: Vec<u8>,
    ncols: u32,
    nrows: u32,
    header_done: bool,
}

const HEADER_AT: usize = 25;
const VALUES_AT: usize = 39;

thread_local! {
    static HEADERS: std::cell::RefCell<std::collections::HashMap<Vec<u8>, u32>> = Default::default();
}

impl ResultEncoder {
    pub(crate) fn new() -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.resize(VALUES_AT, 0);
        ResultEncoder {
            buf,
            header: Vec::new(),
            ncols: 0,
            nrows: 0,
            header_done: false,
        }
    }

    /// Puts the header id (and, the first time, the header itself) before the values.
    fn close_header(&mut self) {
        if self.header_done {
            return;
        }
        self.header_done = true;
        let (id, fresh) = HEADERS.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(id) = h.get(&self.header) {
                return (*id, false);
            }
            if h.len() >= 4096 {
                h.clear();
            }
            let id = h.len() as u32;
            h.insert(self.header.clone(), id);
            (id, true)
        });
        self.buf[HEADER_AT..HEADER_AT + 4].copy_from_slice(&id.to_le_bytes());
        self.buf[HEADER_AT + 4] = fresh as u8;
        if fresh {
            let header = std::mem::take(&mut self.header);
            self.buf.extend_from_slice(&header);
        }
    }

    /// A remote result's replication index (frame numbers stay far below 2^53).
    pub(crate) fn set_replication_index(&mut self, index: Option<u64>) {
        self.buf[30] = index.is_some() as u8;
        self.buf[31..39].copy_from_slice(&(index.unwrap_or(0) as f64).to_le_bytes());
    }

    pub(crate) fn to_js(&self, mode: IntMode) -> JsValue {
        let mode = match mode {
            IntMode::Auto => 0,
            IntMode::BigInt => 1,
            IntMode::String => 2,
        };
        decode_result(&self.buf, mode)
    }
}

impl RowSink for ResultEncoder {
    fn column(&mut self, name: &str, decl_type: &str) {
        self.ncols += 1;
        write_str(&mut self.header, name.as_bytes());
        write_str(&mut self.header, decl_type.as_bytes());
    }

    fn begin_row(&mut self, _width: usize) {
        self.close_header();
        self.nrows += 1;
    }

    fn value(&mut self, v: ValueRef<'_>) {
        write_value(&mut self.buf, v);
    }

    fn finish(&mut self, rows_affected: u64, last_insert_rowid: Option<i64>) {
        self.close_header();
        self.buf[0..4].copy_from_slice(&self.ncols.to_le_bytes());
        self.buf[4..8].copy_from_slice(&self.nrows.to_le_bytes());
        self.buf[8..16].copy_from_slice(&(rows_affected as f64).to_le_bytes());
        self.buf[16] = last_insert_rowid.is_some() as u8;
        self.buf[17..25].copy_from_slice(&last_insert_rowid.unwrap_or(0).to_le_bytes());
    }
}
