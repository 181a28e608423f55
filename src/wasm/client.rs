//! `RemoteClient`, the exported class behind the TS `createClient`.

use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::error::Result;
use crate::remote::{RemoteClient, RemoteConfig};
use crate::sql::TransactionMode;
use crate::wasm::convert::{js_to_statement, js_to_statements, IntMode};
use crate::wasm::error::{invalid, to_js};
use crate::wasm::fetch::FetchTransport;
use crate::wasm::result::{result_set_to_js, result_sets_to_js};

/// A client for a remote libSQL database. Use `createClient` from the `edgesync`
/// package rather than this class directly.
#[wasm_bindgen(js_name = RemoteClient)]
pub struct JsRemoteClient {
    inner: Rc<RemoteClient<FetchTransport>>,
    int_mode: IntMode,
}

pub(crate) fn field(config: &JsValue, key: &str) -> JsValue {
    Reflect::get(config, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

pub(crate) fn optional_string(config: &JsValue, key: &str) -> Result<Option<String>> {
    let v = field(config, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| invalid(format!("`{key}` must be a string")))
}

fn parse_config(config: &JsValue) -> Result<(RemoteConfig, IntMode, Option<Function>)> {
    if !config.is_object() {
        return Err(invalid("createClient() takes a config object: { url, authToken? }"));
    }
    let url = optional_string(config, "url")?.ok_or_else(|| invalid("`url` is required"))?;
    let token = optional_string(config, "authToken")?;
    let mut remote = RemoteConfig::parse(&url, token.as_deref())?;
    let timeout = field(config, "timeout");
    if !timeout.is_undefined() && !timeout.is_null() {
        let ms = timeout
            .as_f64()
            .filter(|n| n.fract() == 0.0 && *n >= 1.0 && *n <= f64::from(u32::MAX))
            .ok_or_else(|| invalid("`timeout` must be a whole number of milliseconds ≥ 1"))?;
        remote = remote.with_timeout_ms(ms as u32)?;
    }
    let int_mode = match optional_string(config, "intMode")? {
        Some(m) => IntMode::parse(&m)?,
        None => IntMode::Auto,
    };
    let fetch = field(config, "fetch");
    let fetch = if fetch.is_undefined() || fetch.is_null() {
        None
    } else {
        Some(
            fetch
                .dyn_into::<Function>()
                .map_err(|_| invalid("`fetch` must be a function"))?,
        )
    };
    Ok((remote, int_mode, fetch))
}

/// `"write" | "read" | "deferred"` (default deferred), as `batch` takes it.
pub(crate) fn parse_mode(mode: Option<String>) -> Result<TransactionMode> {
    match mode.as_deref() {
        None => Ok(TransactionMode::Deferred),
        Some(m) => TransactionMode::parse(m).ok_or_else(|| {
            invalid(format!(
                "batch mode must be \"write\", \"read\" or \"deferred\", not {m:?}"
            ))
        }),
    }
}

#[wasm_bindgen(js_class = RemoteClient)]
impl JsRemoteClient {
    /// `config`: `{ url, authToken?, timeout?, intMode?, fetch? }`. Throws
    /// `URL_INVALID` / `INVALID_ARGUMENT` synchronously.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> std::result::Result<JsRemoteClient, JsValue> {
        let (remote, int_mode, custom) = parse_config(&config).map_err(to_js)?;
        Ok(JsRemoteClient {
            inner: Rc::new(RemoteClient::new(remote, FetchTransport::new(custom))),
            int_mode,
        })
    }

    /// Resolves to the result as bytes (`wasm/result.rs`), which `decodeResult`
    /// (js/result.ts) turns into a `ResultSet`.
    pub fn execute(&self, stmt: JsValue) -> Promise {
        let stmt = match js_to_statement(&stmt) {
            Ok(s) => s,
            Err(e) => return Promise::reject(&to_js(e)),
        };
        let (inner, mode) = (self.inner.clone(), self.int_mode);
        future_to_promise(async move {
            let rs = inner.execute(&stmt).await.map_err(to_js)?;
            Ok(result_set_to_js(&rs, mode))
        })
    }

    /// Runs the statements atomically; `mode` is `"write" | "read" | "deferred"`.
    pub fn batch(&self, stmts: JsValue, mode: Option<String>) -> Promise {
        let parsed = js_to_statements(&stmts).and_then(|s| Ok((s, parse_mode(mode)?)));
        let (stmts, mode) = match parsed {
            Ok(p) => p,
            Err(e) => return Promise::reject(&to_js(e)),
        };
        let (inner, int_mode) = (self.inner.clone(), self.int_mode);
        future_to_promise(async move {
            let results = inner.batch(&stmts, mode).await.map_err(to_js)?;
            Ok(result_sets_to_js(&results, int_mode))
        })
    }

    /// Later calls fail with `CLIENT_CLOSED`.
    pub fn close(&self) {
        self.inner.close();
    }

    #[wasm_bindgen(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// `3`, or `2` for a server without Hrana v3.
    #[wasm_bindgen(getter, js_name = protocolVersion)]
    pub fn protocol_version(&self) -> u8 {
        self.inner.protocol_version()
    }

    /// The HTTP(S) base URL requests go to (after `libsql://` mapping).
    #[wasm_bindgen(getter, js_name = baseUrl)]
    pub fn base_url(&self) -> String {
        self.inner.config().base_url.clone()
    }
}
