//! JS values ⇄ [`Value`]s and statements (results go back as bytes: `result.rs`).
//!
//! Argument rule (documented in docs/client.md, "Values"):
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

use crate::sql::{Statement, Value};
use crate::wasm::error::invalid;

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
