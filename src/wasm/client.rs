//! `RemoteClient` and `HttpTransaction`, the exported classes behind the TS remote client
//! over HTTP (js/remote.ts). Statements arrive packed by `encodeStatement` /
//! `encodeStatements` (js/args.ts); results leave as bytes (`wasm/result.rs`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::error::{Error, Result};
use crate::remote::hrana::{Batch, Request, Response};
use crate::remote::{HttpStream, RemoteClient, RemoteConfig};
use crate::sql::{Statement, TransactionMode};
use crate::wasm::convert::{decode_args, decode_statements, IntMode};
use crate::wasm::error::{invalid, to_js};
use crate::wasm::fetch::FetchTransport;
use crate::wasm::result::{result_set_to_js, result_sets_to_js};

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

/// `timeout` (ms) from a config object, if given.
pub(crate) fn timeout(config: &JsValue) -> Result<Option<u32>> {
    let t = field(config, "timeout");
    if t.is_undefined() || t.is_null() {
        return Ok(None);
    }
    t.as_f64()
        .filter(|n| n.fract() == 0.0 && *n >= 1.0 && *n <= f64::from(u32::MAX))
        .map(|n| Some(n as u32))
        .ok_or_else(|| invalid("`timeout` must be a whole number of milliseconds ≥ 1"))
}

/// `fetch` from a config object, if given.
pub(crate) fn custom_fetch(config: &JsValue) -> Result<Option<Function>> {
    let f = field(config, "fetch");
    if f.is_undefined() || f.is_null() {
        return Ok(None);
    }
    f.dyn_into::<Function>()
        .map(Some)
        .map_err(|_| invalid("`fetch` must be a function"))
}

pub(crate) fn int_mode(config: &JsValue) -> Result<IntMode> {
    match optional_string(config, "intMode")? {
        Some(m) => IntMode::parse(&m),
        None => Ok(IntMode::Auto),
    }
}

/// The remote part of a config: `{ url, authToken?, timeout? }`.
pub(crate) fn remote_config(config: &JsValue) -> Result<RemoteConfig> {
    let url = optional_string(config, "url")?.ok_or_else(|| invalid("`url` is required"))?;
    let token = optional_string(config, "authToken")?;
    let remote = RemoteConfig::parse(&url, token.as_deref())?;
    match timeout(config)? {
        Some(ms) => remote.with_timeout_ms(ms),
        None => Ok(remote),
    }
}

/// `"write" | "read" | "deferred"` (default deferred), as `batch` takes it.
pub(crate) fn parse_mode(mode: Option<String>) -> Result<TransactionMode> {
    match mode.as_deref() {
        None => Ok(TransactionMode::Deferred),
        Some(m) => TransactionMode::parse(m).ok_or_else(|| {
            Error::Range("Unknown transaction mode, supported values are \"write\", \"read\" and \"deferred\"".into())
        }),
    }
}

/// A promise for `f`'s outcome; a synchronous failure (bad input) rejects it too.
pub(crate) fn promise<F>(f: Result<F>) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + 'static,
{
    match f {
        Ok(fut) => future_to_promise(async move { fut.await.map_err(to_js) }),
        Err(e) => Promise::reject(&to_js(e)),
    }
}

/// A client for a remote libSQL database over HTTP. Use `createClient` from the
/// `edgesync` package rather than this class directly.
#[wasm_bindgen(js_name = RemoteClient)]
pub struct JsRemoteClient {
    inner: Rc<RemoteClient<FetchTransport>>,
    int_mode: IntMode,
}

#[wasm_bindgen(js_class = RemoteClient)]
impl JsRemoteClient {
    /// `config`: `{ url, authToken?, timeout?, intMode?, fetch? }` — `url` as js/url.ts
    /// normalized it. Throws synchronously.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> std::result::Result<JsRemoteClient, JsValue> {
        (|| {
            let remote = remote_config(&config)?;
            Ok(JsRemoteClient {
                inner: Rc::new(RemoteClient::new(remote, FetchTransport::new(custom_fetch(&config)?))),
                int_mode: int_mode(&config)?,
            })
        })()
        .map_err(to_js)
    }

    /// One statement (arguments packed by `encodeStatement`); resolves to the result as
    /// bytes, which `decodeResult` (js/result.ts) reads.
    pub fn execute(&self, sql: String, args: &[u8]) -> Promise {
        let (inner, mode) = (self.inner.clone(), self.int_mode);
        promise(decode_args(sql, args).map(|stmt| async move {
            let rs = inner.execute(&stmt).await?;
            Ok(result_set_to_js(&rs, mode))
        }))
    }

    /// Statements packed by `encodeStatements`, atomically; `mode` is `"write" | "read" |
    /// "deferred"`.
    pub fn batch(&self, stmts: &[u8], mode: Option<String>) -> Promise {
        let (inner, int_mode) = (self.inner.clone(), self.int_mode);
        let parsed = parse_mode(mode).and_then(|m| Ok((decode_statements(stmts)?, m)));
        promise(
            parsed
                .map(|(stmts, mode)| async move { Ok(result_sets_to_js(&inner.batch(&stmts, mode).await?, int_mode)) }),
        )
    }

    /// As `batch` (deferred) with foreign keys off.
    pub fn migrate(&self, stmts: &[u8]) -> Promise {
        let (inner, int_mode) = (self.inner.clone(), self.int_mode);
        promise(
            decode_statements(stmts)
                .map(|stmts| async move { Ok(result_sets_to_js(&inner.migrate(&stmts).await?, int_mode)) }),
        )
    }

    /// `executeMultiple`: statements separated by semicolons.
    pub fn sequence(&self, sql: String) -> Promise {
        let inner = self.inner.clone();
        promise(Ok(async move {
            inner.sequence(&sql).await?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// An interactive transaction on a stream of its own; nothing is sent until its
    /// first statement.
    pub fn transaction(&self, mode: Option<String>) -> std::result::Result<HttpTransaction, JsValue> {
        if self.inner.is_closed() {
            return Err(to_js(Error::ClientClosed));
        }
        Ok(HttpTransaction {
            client: self.inner.clone(),
            stream: Rc::new(RefCell::new(HttpStream::default())),
            mode: parse_mode(mode).map_err(to_js)?,
            begun: Rc::new(Cell::new(false)),
            busy: Rc::new(Cell::new(false)),
            int_mode: self.int_mode,
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

/// An interactive transaction over HTTP: a server-side stream kept by its baton. Calls
/// must not overlap (js/remote.ts runs them one after the other).
#[wasm_bindgen]
pub struct HttpTransaction {
    client: Rc<RemoteClient<FetchTransport>>,
    stream: Rc<RefCell<HttpStream>>,
    mode: TransactionMode,
    begun: Rc<Cell<bool>>,
    /// An exchange is in flight (the stream is out of its cell).
    busy: Rc<Cell<bool>>,
    int_mode: IntMode,
}

impl HttpTransaction {
    /// Sends `requests` on the stream; `take(results)` reads what the caller wants. The
    /// body is made now, with the baton of the last exchange (calls never overlap), so
    /// the requests need not outlive this call.
    fn send<F>(&self, requests: &[Request<'_>], take: F) -> Promise
    where
        F: FnOnce(Vec<Result<Response>>) -> Result<JsValue> + 'static,
    {
        if self.busy.get() {
            return Promise::reject(&to_js(Error::InvalidOperation(
                "a transaction runs one call at a time: await the previous one first".into(),
            )));
        }
        let body = match self.stream.borrow().body(requests) {
            Ok(b) => b,
            Err(e) => return Promise::reject(&to_js(e)),
        };
        let (client, cell, busy, count) = (
            self.client.clone(),
            self.stream.clone(),
            self.busy.clone(),
            requests.len(),
        );
        busy.set(true);
        let mut stream = std::mem::take(&mut *cell.borrow_mut());
        promise(Ok(async move {
            let out = client.send_on_stream(&mut stream, body, count).await;
            *cell.borrow_mut() = stream;
            busy.set(false);
            take(out?)
        }))
    }

    /// The `BEGIN` to send with the next statements, the first time.
    fn begin(&self) -> Option<TransactionMode> {
        (!self.begun.replace(true)).then_some(self.mode)
    }

    /// A `BEGIN` that failed leaves no transaction: it is closed, as in the official
    /// client (a statement that failed leaves it open).
    fn began_or_closed(&self) -> impl Fn(&Error) + 'static {
        let (begun, stream) = (self.begun.clone(), self.stream.clone());
        move |_: &Error| {
            begun.set(false);
            stream.borrow_mut().close_locally();
        }
    }

    fn statements(&self, stmts: Vec<Statement>) -> Promise {
        let begin = self.begin();
        let batch = match Batch::in_transaction(&stmts, begin) {
            Ok(b) => b,
            Err(e) => return Promise::reject(&to_js(e)),
        };
        let plan = batch.plan().clone();
        let int_mode = self.int_mode;
        let failed_begin = self.began_or_closed();
        let requests = [Request::Batch {
            stream_id: None,
            batch: &batch,
        }];
        self.send(&requests, move |mut results| {
            let out = results.swap_remove(0).and_then(|r| r.into_batch(&plan));
            match out {
                Ok(rs) => Ok(result_sets_to_js(&rs, int_mode)),
                Err(e) => {
                    if plan.begin.is_some() && e.statement_index().is_none() {
                        failed_begin(&e);
                    }
                    Err(e)
                }
            }
        })
    }

    fn end(&self, sql: &'static str) -> Promise {
        if !self.begun.get() {
            // Nothing was sent: there is nothing to commit or roll back.
            self.stream.borrow_mut().close_locally();
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        if sql == "COMMIT" && self.stream.borrow().is_closed() {
            return Promise::reject(&to_js(Error::TransactionClosed {
                message: "Cannot commit the transaction because it is already closed".into(),
                statement_index: None,
            }));
        }
        if self.stream.borrow().is_closed() {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        self.send(&[Request::run(None, sql), Request::Close], |mut results| {
            results.swap_remove(0)?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

#[wasm_bindgen]
impl HttpTransaction {
    /// One statement (packed by `encodeStatement`), resolving to its result bytes in a
    /// one-element array (it runs as a batch of one, as in the official client).
    pub fn execute(&self, sql: String, args: &[u8]) -> Promise {
        match decode_args(sql, args) {
            Ok(stmt) => self.statements(vec![stmt]),
            Err(e) => Promise::reject(&to_js(e)),
        }
    }

    /// Statements packed by `encodeStatements`, each only if the one before succeeded.
    pub fn batch(&self, stmts: &[u8]) -> Promise {
        match decode_statements(stmts) {
            Ok(stmts) => self.statements(stmts),
            Err(e) => Promise::reject(&to_js(e)),
        }
    }

    /// `executeMultiple` inside the transaction (begins it first if needed).
    pub fn sequence(&self, sql: String) -> Promise {
        let begin = self.begin();
        let mut requests = Vec::new();
        if let Some(mode) = begin {
            requests.push(Request::run(None, mode.begin_sql()));
        }
        requests.push(Request::Sequence {
            stream_id: None,
            sql: &sql,
        });
        let failed_begin = self.began_or_closed();
        self.send(&requests, move |results| {
            let mut results = results.into_iter();
            if begin.is_some() {
                if let Some(Err(e)) = results.next() {
                    failed_begin(&e);
                    return Err(e);
                }
            }
            results.next().transpose()?;
            Ok(JsValue::UNDEFINED)
        })
    }

    pub fn commit(&self) -> Promise {
        self.end("COMMIT")
    }

    pub fn rollback(&self) -> Promise {
        self.end("ROLLBACK")
    }

    /// Closes the transaction: a stream that exists on the server is closed there (the
    /// server rolls back what was not committed); nothing waits for the answer.
    pub fn close(&self) {
        let (closed, on_server) = {
            let st = self.stream.borrow();
            (st.is_closed(), st.is_open_on_server())
        };
        if closed {
            return;
        }
        if on_server && !self.busy.get() {
            // Nobody waits for it: a failure to close is the server's to clean up.
            let body = self.stream.borrow().body(&[Request::Close]);
            if let Ok(body) = body {
                let (client, cell) = (self.client.clone(), self.stream.clone());
                let mut stream = std::mem::take(&mut *cell.borrow_mut());
                stream.close_locally();
                *cell.borrow_mut() = HttpStream::default();
                cell.borrow_mut().close_locally();
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = client.send_on_stream(&mut stream, body, 1).await;
                });
                return;
            }
        }
        self.stream.borrow_mut().close_locally();
    }

    #[wasm_bindgen(getter)]
    pub fn closed(&self) -> bool {
        self.stream.borrow().is_closed()
    }
}
