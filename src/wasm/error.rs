//! The one place where [`crate::Error`] becomes a JS `Error`.
//!
//! The object carries `code` (the stable string from [`crate::Error::code`]) and, where
//! known, `serverCode`, `step` (failing batch statement) and `status` (HTTP status).
//! The TS layer gives it the `EdgesyncError` prototype.

use std::cell::RefCell;

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::prelude::*;

use crate::Error;

/// `export type ErrorCode = …` in the package's type declarations
/// (pkg/wasm/edgesync.d.ts), generated from the Rust enum: the one list of codes.
#[wasm_bindgen(typescript_custom_section)]
const ERROR_CODE: &'static str = crate::error::TS_ERROR_CODE;

thread_local! {
    /// The TS layer's `EdgesyncError` class, registered by each entry point after
    /// instantiating the module, so errors are real instances of it.
    static ERROR_CLASS: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Registers the class errors are constructed with: `new cls(message, code)`.
#[wasm_bindgen(js_name = registerErrorClass)]
pub fn register_error_class(cls: Function) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = Some(cls));
}

fn new_error(message: &str, code: &str) -> JsValue {
    let registered = ERROR_CLASS.with(|c| c.borrow().clone());
    if let Some(cls) = registered {
        let args = Array::of2(&JsValue::from_str(message), &JsValue::from_str(code));
        if let Ok(e) = Reflect::construct(&cls, &args) {
            return e;
        }
    }
    let js = js_sys::Error::new(message);
    js.set_name("EdgesyncError");
    js.into()
}

pub(crate) fn to_js(err: Error) -> JsValue {
    let js = new_error(&err.to_string(), err.code());
    let obj: &JsValue = &js;
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
    js
}

/// Shorthand for argument errors raised while reading JS input.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}
