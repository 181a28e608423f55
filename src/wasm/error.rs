//! The one place where [`crate::Error`] becomes a JS `Error`.
//!
//! The object carries `code` (the stable string from [`crate::Error::code`]) and, where
//! known, `serverCode`, `step` (failing batch statement) and `status` (HTTP status).
//! The TS layer gives it the `EdgesyncError` prototype.

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use crate::Error;

pub(crate) fn to_js(err: Error) -> JsValue {
    let js = js_sys::Error::new(&err.to_string());
    js.set_name("EdgesyncError");
    let obj: &JsValue = js.as_ref();
    let set = |k: &str, v: JsValue| {
        // Setting a property on a fresh Error object cannot fail.
        let _ = Reflect::set(obj, &JsValue::from_str(k), &v);
    };
    set("code", JsValue::from_str(err.code()));
    set("retryable", JsValue::from_bool(err.is_retryable()));
    match &err {
        Error::Sql { server_code, step, .. } => {
            if let Some(c) = server_code {
                set("serverCode", JsValue::from_str(c));
            }
            if let Some(s) = step {
                set("step", JsValue::from_f64(*s as f64));
            }
        }
        Error::Server { status, .. } => set("status", JsValue::from_f64(f64::from(*status))),
        _ => {}
    }
    js.into()
}

/// Shorthand for argument errors raised while reading JS input.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}
