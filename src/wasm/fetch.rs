//! [`HttpTransport`] on the JS `fetch` API: the global one (Node 18+, browsers, Web
//! Workers, Cloudflare Workers) or one the application passes in `createClient`.
//!
//! Bodies cross the boundary as bytes (`Uint8Array` / `arrayBuffer()`), never as JS
//! strings, so nothing is transcoded UTF-8 → UTF-16 → UTF-8. The deadline is an
//! `AbortSignal.timeout`, which also covers reading the body.

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::remote::{HttpRequest, HttpResponse, HttpTransport, TransportError};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch, catch)]
    fn global_fetch(url: &str, init: &Object) -> Result<Promise, JsValue>;

    type FetchResponse;
    #[wasm_bindgen(method, getter)]
    fn status(this: &FetchResponse) -> u16;
    #[wasm_bindgen(method, js_name = arrayBuffer, catch)]
    fn array_buffer(this: &FetchResponse) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_namespace = AbortSignal, js_name = timeout)]
    fn abort_signal_timeout(ms: u32) -> JsValue;
}

pub(crate) struct FetchTransport {
    /// A user-supplied `fetch`; `None` uses the global one.
    pub(crate) custom: Option<Function>,
}

fn set(obj: &Object, k: &str, v: &JsValue) {
    // Plain data properties on a fresh object: cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(k), v);
}

fn get_str(v: &JsValue, k: &str) -> Option<String> {
    Reflect::get(v, &JsValue::from_str(k)).ok()?.as_string()
}

/// `message` plus the `cause` Node attaches (`ECONNREFUSED …`).
fn describe(e: &JsValue) -> String {
    let mut s = get_str(e, "message").unwrap_or_else(|| format!("{e:?}"));
    if let Ok(cause) = Reflect::get(e, &JsValue::from_str("cause")) {
        if let Some(c) = get_str(&cause, "message").or_else(|| get_str(&cause, "code")) {
            s = format!("{s} ({c})");
        }
    }
    s
}

fn classify(e: JsValue, stage: &str) -> TransportError {
    match get_str(&e, "name").as_deref() {
        Some("TimeoutError" | "AbortError") => TransportError::Timeout,
        _ => TransportError::Unreachable(format!("{stage}: {}", describe(&e))),
    }
}

impl HttpTransport for FetchTransport {
    async fn post(&self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        let headers = Object::new();
        set(&headers, "content-type", &JsValue::from_str("application/json"));
        if let Some(t) = req.bearer {
            set(&headers, "authorization", &JsValue::from_str(&format!("Bearer {t}")));
        }
        let init = Object::new();
        set(&init, "method", &JsValue::from_str("POST"));
        set(&init, "headers", &headers);
        set(&init, "body", &Uint8Array::from(&req.body[..]));
        set(&init, "signal", &abort_signal_timeout(req.timeout_ms));

        let promise = match &self.custom {
            Some(f) => f
                .call2(&JsValue::UNDEFINED, &JsValue::from_str(req.url), &init)
                .map(|v| Promise::resolve(&v)),
            None => global_fetch(req.url, &init),
        }
        .map_err(|e| classify(e, "fetch failed"))?;
        let resp: FetchResponse = JsFuture::from(promise)
            .await
            .map_err(|e| classify(e, "fetch failed"))?
            .unchecked_into();
        let status = resp.status();
        let buf = resp
            .array_buffer()
            .map_err(|e| classify(e, "reading the response failed"))?;
        let buf = JsFuture::from(buf)
            .await
            .map_err(|e| classify(e, "connection lost while reading the response"))?;
        let body = Uint8Array::new(&buf).to_vec();
        Ok(HttpResponse { status, body })
    }
}
