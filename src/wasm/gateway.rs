//! The edge sync gateway (`src/gateway/`) for the Worker: `SyncGateway` serves one
//! step of the records protocol per call, talking to the primary itself through
//! `fetch` with the database token it was given (which never leaves it).

use std::rc::Rc;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::gateway::Gateway;
use crate::remote::{RemoteClient, RemoteConfig};
use crate::wasm::error::to_js;
use crate::wasm::fetch::FetchTransport;

#[wasm_bindgen(js_name = SyncGateway)]
pub struct JsSyncGateway {
    inner: Rc<Gateway<FetchTransport>>,
}

fn reply_js(r: crate::gateway::Reply) -> JsValue {
    let o = Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&o, &JsValue::from_str(k), &v);
    };
    set("status", JsValue::from(r.status));
    set("body", JsValue::from_str(&r.body));
    if let Some(ms) = r.retry_after_ms {
        set("retryAfterMs", JsValue::from(ms as f64));
    }
    if let Some(f) = r.upstream_failure {
        set("upstreamFailure", JsValue::from_str(f));
    }
    o.into()
}

#[wasm_bindgen(js_class = SyncGateway)]
impl JsSyncGateway {
    /// `rules`: `SYNC_RULES`; `limits`: `SYNC_LIMITS`; `url` / `authToken`: the
    /// primary; `timeoutMs`: per request to it. Throws `CONFIG_ERROR` / `URL_INVALID`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        rules: &str,
        limits: Option<String>,
        url: &str,
        auth_token: Option<String>,
        timeout_ms: Option<u32>,
    ) -> Result<JsSyncGateway, JsValue> {
        let mut config = RemoteConfig::parse(url, auth_token.as_deref()).map_err(to_js)?;
        if let Some(ms) = timeout_ms {
            config = config.with_timeout_ms(ms).map_err(to_js)?;
        }
        let remote = RemoteClient::new(config, FetchTransport::new(None));
        let inner = Gateway::new(rules, limits.as_deref(), remote).map_err(to_js)?;
        Ok(JsSyncGateway { inner: Rc::new(inner) })
    }

    /// Serves `step` for the verified `claims` (JSON text): resolves to
    /// `{status, body, retryAfterMs?, upstreamFailure?}`, never rejects.
    pub fn handle(&self, step: String, claims: &str, body: Vec<u8>, now_ms: f64) -> Promise {
        let inner = self.inner.clone();
        let claims: serde_json::Value = serde_json::from_str(claims).unwrap_or(serde_json::Value::Null);
        future_to_promise(async move { Ok(reply_js(inner.handle(&step, &claims, &body, now_ms as u64).await)) })
    }

    /// The audit trail of refused records after id `since`.
    pub fn audit(&self, since: f64, limit: u32) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { Ok(reply_js(inner.audit(since as i64, limit as usize).await)) })
    }

    /// Counters for `/metrics` (JSON text).
    pub fn stats(&self) -> String {
        serde_json::to_string(&self.inner.stats()).unwrap_or_default()
    }

    /// The largest request body the gateway takes, bytes.
    #[wasm_bindgen(js_name = maxBodyBytes)]
    pub fn max_body_bytes(&self) -> f64 {
        self.inner.limits().max_body_bytes as f64
    }
}
