//! Single JS values ⇄ [`Value`]s, for what crosses value by value: CRDT values,
//! resolver arguments and results, conflict events, the edge classes' arguments.
//!
//! Argument rule: `null`/`undefined` → NULL; `boolean` → 0/1; a safe-integer `number` →
//! INTEGER, any other finite `number` → REAL; `bigint` → INTEGER (must fit 64 bits);
//! `string` → TEXT; `Uint8Array`/`ArrayBuffer`/any typed-array view → BLOB; `Date` →
//! INTEGER milliseconds since the epoch; a string with a lone surrogate, and anything
//! else, is `INVALID_ARGUMENT`.

use js_sys::{ArrayBuffer, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::error::Result;
use crate::sql::Value;
use crate::wasm::convert::IntMode;
use crate::wasm::error::invalid;

/// 2^53 − 1: the largest integer a JS number holds exactly.
const MAX_SAFE: i64 = 9_007_199_254_740_991;

/// A JS string as Rust text; `None` when `v` is not a string.
///
/// A JS string is UTF-16 and may hold a lone surrogate (half of a pair, e.g.
/// `"\uD800"`), which no UTF-8 text can: `as_string` would silently store U+FFFD
/// instead. Such a string is refused (`INVALID_ARGUMENT`). The check only runs when
/// the converted text holds U+FFFD, so ordinary text costs nothing more. (Statements'
/// arguments are checked in js/args.ts.)
#[cfg(any(feature = "js-crdt", feature = "js-replica"))]
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

#[cfg(any(feature = "js-crdt", feature = "js-replica"))]
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

pub(crate) fn value_to_js(v: &Value, mode: IntMode) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Integer(i) => match mode {
            IntMode::Auto | IntMode::Number if (-MAX_SAFE..=MAX_SAFE).contains(i) => JsValue::from_f64(*i as f64),
            IntMode::Auto | IntMode::Number | IntMode::BigInt => JsValue::from(*i),
            IntMode::String => JsValue::from_str(&i.to_string()),
        },
        Value::Real(f) => JsValue::from_f64(*f),
        Value::Text(s) => JsValue::from_str(s),
        Value::Blob(b) => Uint8Array::from(&b[..]).into(),
    }
}

/// A database value for JS as query results give it (conflict events, resolver
/// arguments): BLOBs as an `ArrayBuffer` of their own, as from the official client.
#[cfg(feature = "js-replica")]
pub(crate) fn sql_value_to_js(v: &Value, mode: IntMode) -> JsValue {
    match v {
        Value::Blob(b) => Uint8Array::from(&b[..]).buffer().into(),
        v => value_to_js(v, mode),
    }
}
