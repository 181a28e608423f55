//! The one place where [`crate::Error`] becomes a JS `Error`.
//!
//! As in the official `@libsql/client`: a `LibsqlError` (`code`, and for a local SQLite
//! failure `extendedCode` and `rawCode`), a `LibsqlBatchError` with `statementIndex` for
//! the failing statement of a batch, and a plain `RangeError` / `TypeError` for a value
//! that cannot be bound or read. edgesync's additions: `retryable`, `serverCode` (the
//! server's code as sent) and `status` (an HTTP status). The classes are the TS layer's
//! (js/errors.ts), registered by each entry point once the module is instantiated.

use std::cell::RefCell;

use js_sys::{Array, Function, Reflect};
use wasm_bindgen::prelude::*;

use crate::Error;

/// `export type ErrorCode = …` in the package's type declarations
/// (pkg/wasm/edgesync.d.ts), generated from the Rust enum: the one list of codes.
#[wasm_bindgen(typescript_custom_section)]
const ERROR_CODE: &'static str = crate::error::TS_ERROR_CODE;

thread_local! {
    /// `LibsqlError` and `LibsqlBatchError` of the TS layer.
    static CLASSES: RefCell<Option<(Function, Function)>> = const { RefCell::new(None) };
    /// What JS code called from Rust last threw (a custom conflict resolver): the `cause`
    /// of the `RESOLVER_ERROR` it becomes.
    static THROWN: RefCell<Option<JsValue>> = const { RefCell::new(None) };
}

/// Keeps `e`, thrown by a JS callback, as the cause of the error it turns into.
#[cfg(feature = "js-replica")]
pub(crate) fn remember_thrown(e: JsValue) {
    THROWN.with(|t| *t.borrow_mut() = Some(e));
}

/// Registers the classes errors are constructed with: `new LibsqlError(message, code)`
/// and `new LibsqlBatchError(message, statementIndex, code)`.
#[wasm_bindgen(js_name = registerErrorClasses)]
pub fn register_error_classes(error: Function, batch_error: Function) {
    CLASSES.with(|c| *c.borrow_mut() = Some((error, batch_error)));
}

fn new_error(message: &str, code: &str, statement_index: Option<usize>) -> JsValue {
    let registered = CLASSES.with(|c| c.borrow().clone());
    let (message_js, code_js) = (JsValue::from_str(message), JsValue::from_str(code));
    if let Some((error, batch)) = registered {
        let made = match statement_index {
            Some(i) => Reflect::construct(&batch, &Array::of3(&message_js, &JsValue::from_f64(i as f64), &code_js)),
            None => Reflect::construct(&error, &Array::of2(&message_js, &code_js)),
        };
        if let Ok(e) = made {
            return e;
        }
    }
    // Before the classes are registered: an Error the TS layer adopts (js/errors.ts).
    let js = js_sys::Error::new(&format!("{code}: {message}"));
    js.set_name(if statement_index.is_some() {
        "LibsqlBatchError"
    } else {
        "LibsqlError"
    });
    js.into()
}

pub(crate) fn to_js(err: Error) -> JsValue {
    match &err {
        Error::Range(m) => return js_sys::RangeError::new(m).into(),
        Error::Type(m) => return js_sys::TypeError::new(m).into(),
        _ => {}
    }
    let index = err.statement_index();
    let js = new_error(&err.to_string(), err.code(), index);
    let obj: &JsValue = &js;
    let set = |k: &str, v: JsValue| {
        // Setting a property on a fresh Error object cannot fail.
        let _ = Reflect::set(obj, &JsValue::from_str(k), &v);
    };
    set("code", JsValue::from_str(err.code()));
    set("retryable", JsValue::from_bool(err.is_retryable()));
    if let Some(i) = index {
        set("statementIndex", JsValue::from_f64(i as f64));
    }
    if let Some(s) = err.status() {
        set("status", JsValue::from_f64(f64::from(s)));
    }
    if let Error::Resolver(_) = &err {
        if let Some(cause) = THROWN.with(|t| t.borrow_mut().take()) {
            set("cause", cause);
        }
    }
    if let Error::Sql {
        server_code, extended, ..
    } = &err
    {
        if let Some(c) = server_code {
            set("serverCode", JsValue::from_str(c));
        }
        if let Some(x) = extended {
            set("extendedCode", JsValue::from_str(x.name));
            set("rawCode", JsValue::from_f64(f64::from(x.raw)));
        }
    }
    js
}

/// Shorthand for argument errors raised while reading JS input.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}
