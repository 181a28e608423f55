//! [`HttpTransport`] on the JS `fetch` API: the global one (Node 18+, browsers, Web
//! Workers, Cloudflare Workers) or one the application passes in `createClient`.
//!
//! The request itself is made by `post` in `glue.js` (one boundary crossing per
//! request); this file maps its outcome onto [`HttpResponse`] / [`TransportError`].
//! Bodies cross the boundary as bytes, never as JS strings.

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::remote::{HttpRequest, HttpResponse, HttpTransport, TransportError};

#[wasm_bindgen(module = "/src/wasm/glue.js")]
extern "C" {
    /// A promise resolved by a zero-delay timer: after the event loop's I/O phase.
    #[wasm_bindgen(js_name = idle)]
    fn glue_idle() -> Promise;
    #[wasm_bindgen(js_name = post)]
    fn glue_post(
        fetch: &JsValue,
        url: &str,
        body: Vec<u8>,
        bearer: Option<String>,
        timeout_ms: u32,
        cancelled: &JsValue,
    ) -> Promise;
    /// A canceller object that [`glue_cancel`] cancels (plain JS, not an AbortController:
    /// a Worker binds those to the request that made them).
    #[wasm_bindgen(js_name = canceller)]
    fn glue_canceller() -> JsValue;
    #[wasm_bindgen(js_name = cancel)]
    fn glue_cancel(c: &JsValue);

    type PostResult;
    #[wasm_bindgen(method, getter)]
    fn status(this: &PostResult) -> u16;
    #[wasm_bindgen(method, getter)]
    fn body(this: &PostResult) -> Uint8Array;
}

pub(crate) struct FetchTransport {
    /// A user-supplied `fetch`; `None` uses the global one.
    custom: Option<Function>,
    /// Aborted by [`HttpTransport::cancel`]: every request in flight ends at once.
    cancelled: JsValue,
}

impl FetchTransport {
    pub(crate) fn new(custom: Option<Function>) -> Self {
        FetchTransport {
            custom,
            cancelled: glue_canceller(),
        }
    }
}

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// `message`, plus the `cause` Node attaches (`connect ECONNREFUSED …`).
fn describe(e: &JsValue) -> String {
    let mut s = get(e, "message").as_string().unwrap_or_else(|| format!("{e:?}"));
    let cause = get(e, "cause");
    if let Some(c) = get(&cause, "message")
        .as_string()
        .or_else(|| get(&cause, "code").as_string())
    {
        s = format!("{s} ({c})");
    }
    s
}

/// Failures are rare: reading their fields with `Reflect` is fine here.
fn classify(failure: JsValue) -> TransportError {
    let stage = get(&failure, "stage").as_string();
    let error = get(&failure, "error");
    match get(&error, "name").as_string().as_deref() {
        Some("ClientClosed") => TransportError::Cancelled,
        Some("TimeoutError" | "AbortError") => TransportError::Timeout,
        _ => TransportError::Unreachable(match stage.as_deref() {
            Some("read") => format!("connection lost while reading the response: {}", describe(&error)),
            _ => format!("fetch failed: {}", describe(&error)),
        }),
    }
}

impl HttpTransport for FetchTransport {
    async fn post(&self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        let fetch = self.custom.as_ref().map_or(JsValue::UNDEFINED, |f| f.clone().into());
        let promise = glue_post(
            &fetch,
            req.url,
            req.body,
            req.bearer.map(str::to_owned),
            req.timeout_ms,
            &self.cancelled,
        );
        let result: PostResult = JsFuture::from(promise).await.map_err(classify)?.unchecked_into();
        Ok(HttpResponse {
            status: result.status(),
            body: result.body().to_vec(),
        })
    }

    async fn idle(&self) {
        let _ = JsFuture::from(glue_idle()).await;
    }

    fn cancel(&self) {
        glue_cancel(&self.cancelled);
    }
}
