//! `WsSession`, the exported class behind the TS WebSocket client (js/ws.ts): one
//! [`crate::remote::ws::WsSession`] over one socket. The TS layer owns the socket: it
//! passes `send` (a function that sends a text message, or queues it until the socket is
//! open), feeds `receive` every message and calls `closed` when the socket closes; this
//! class turns calls into messages and answers into results. Calls return promises that
//! settle when the server's answer arrives, or fail when the socket closes.

use std::cell::RefCell;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

use crate::error::{Error, Result};
use crate::remote::hrana::{Batch, Plan, Request, Response};
use crate::remote::ws::{Received, WsSession};
use crate::sql::{Statement, TransactionMode};
use crate::wasm::client::parse_mode;
use crate::wasm::convert::{decode_args, decode_statements, IntMode};
use crate::wasm::error::to_js;
use crate::wasm::result::{result_set_to_js, result_sets_to_js};

/// What a caller wants from its response.
enum Want {
    /// A statement's result bytes.
    Result,
    /// A batch's result bytes, read through its plan.
    Batch(Plan),
    /// Only that it succeeded.
    Done,
}

/// A promise's settling functions and what to settle it with.
struct Waiter {
    resolve: Function,
    reject: Function,
    want: Want,
}

impl Waiter {
    fn settle(self, result: Result<Response>, mode: IntMode) {
        let value = result.and_then(|r| match self.want {
            Want::Result => Ok(result_set_to_js(&r.into_result_set()?, mode)),
            Want::Batch(plan) => Ok(result_sets_to_js(&r.into_batch(&plan)?, mode)),
            Want::Done => Ok(JsValue::UNDEFINED),
        });
        match value {
            Ok(v) => drop(self.resolve.call1(&JsValue::NULL, &v)),
            Err(e) => drop(self.reject.call1(&JsValue::NULL, &to_js(e))),
        }
    }

    fn fail(self, e: &Error) {
        let _ = self.reject.call1(&JsValue::NULL, &to_js(clone_error(e)));
    }
}

/// Each waiter gets its own error object (the same message and code).
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Sql {
            code,
            message,
            server_code,
            ..
        } => Error::Sql {
            code: *code,
            message: message.clone(),
            server_code: server_code.clone(),
            extended: None,
            statement_index: None,
        },
        Error::Protocol(m) => Error::Protocol(m.clone()),
        other => Error::WebSocket(other.to_string()),
    }
}

/// A promise and its waiter.
fn waiter(want: Want) -> (Promise, Waiter) {
    let mut fns = None;
    let p = Promise::new(&mut |resolve, reject| fns = Some((resolve, reject)));
    let (resolve, reject) = fns.expect("the executor runs at once");
    (p, Waiter { resolve, reject, want })
}

/// Hrana over one WebSocket. Use `createClient({ url: "ws://…" | "wss://…" })` rather
/// than this class directly.
#[wasm_bindgen(js_name = WsSession)]
pub struct JsWsSession {
    session: RefCell<WsSession<Waiter>>,
    send: Function,
    int_mode: IntMode,
}

impl JsWsSession {
    fn send_text(&self, text: Result<String>) -> Result<()> {
        let text = text?;
        self.send
            .call1(&JsValue::NULL, &JsValue::from_str(&text))
            .map(|_| ())
            .map_err(|e| Error::WebSocket(format!("cannot send on the WebSocket: {}", describe(&e))))
    }

    /// Sends `request` on `stream` with a waiter for its answer.
    fn call(&self, request: Result<Request<'_>>, stream: i32, want: Want) -> Result<Promise> {
        let request = request?;
        let (p, w) = waiter(want);
        let text = self.session.borrow_mut().request(&request, Some(stream), Some(w));
        self.send_text(text)?;
        Ok(p)
    }

    /// One request on a stream of its own: open, the request, close — sent together.
    fn once<'a>(&self, request: impl FnOnce(i32) -> Result<Request<'a>>, want: Want) -> Promise {
        let run = || -> Result<Promise> {
            let id = self.session.borrow_mut().stream_id();
            let request = request(id)?;
            let open = self.session.borrow_mut().open_stream(id);
            self.send_text(open)?;
            let p = self.call(Ok(request), id, want)?;
            let close = self.session.borrow_mut().close_stream(id);
            self.send_text(close)?;
            Ok(p)
        };
        run().unwrap_or_else(|e| Promise::reject(&to_js(e)))
    }

    fn batch_once(&self, batch: Result<Batch<'_>>) -> Promise {
        match batch {
            Ok(b) => {
                let plan = b.plan().clone();
                self.once(
                    |id| {
                        Ok(Request::Batch {
                            stream_id: Some(id),
                            batch: &b,
                        })
                    },
                    Want::Batch(plan),
                )
            }
            Err(e) => Promise::reject(&to_js(e)),
        }
    }

    fn on_stream(&self, stream: i32, stmts: Result<Vec<Statement>>, begin: Option<String>) -> Promise {
        let run = || -> Result<Promise> {
            let stmts = stmts?;
            let begin = begin.map(|m| parse_mode(Some(m))).transpose()?;
            let batch = Batch::in_transaction(&stmts, begin)?;
            let plan = batch.plan().clone();
            self.call(
                Ok(Request::Batch {
                    stream_id: Some(stream),
                    batch: &batch,
                }),
                stream,
                Want::Batch(plan),
            )
        };
        run().unwrap_or_else(|e| Promise::reject(&to_js(e)))
    }
}

fn describe(e: &JsValue) -> String {
    js_sys::Reflect::get(e, &JsValue::from_str("message"))
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

#[wasm_bindgen(js_class = WsSession)]
impl JsWsSession {
    /// Starts a session: `hello` (with `jwt`) is sent through `send` at once.
    #[wasm_bindgen(constructor)]
    pub fn new(
        send: Function,
        jwt: Option<String>,
        int_mode: Option<String>,
    ) -> std::result::Result<JsWsSession, JsValue> {
        (|| {
            let int_mode = match int_mode {
                Some(m) => IntMode::parse(&m)?,
                None => IntMode::Auto,
            };
            let (session, hello) = WsSession::start(jwt.as_deref())?;
            let s = JsWsSession {
                session: RefCell::new(session),
                send,
                int_mode,
            };
            s.send_text(Ok(hello))?;
            Ok(s)
        })()
        .map_err(to_js)
    }

    /// One statement (packed by `encodeStatement`) on a stream of its own.
    pub fn execute(&self, sql: String, args: &[u8]) -> Promise {
        match decode_args(sql, args) {
            Ok(stmt) => self.once(|id| Request::execute(Some(id), &stmt), Want::Result),
            Err(e) => Promise::reject(&to_js(e)),
        }
    }

    /// Statements packed by `encodeStatements`, atomically.
    pub fn batch(&self, stmts: &[u8], mode: Option<String>) -> Promise {
        let parsed = parse_mode(mode).and_then(|m| Ok((decode_statements(stmts)?, m)));
        match parsed {
            Ok((stmts, mode)) => self.batch_once(Batch::transaction(&stmts, mode)),
            Err(e) => Promise::reject(&to_js(e)),
        }
    }

    /// As `batch` (deferred) with foreign keys off.
    pub fn migrate(&self, stmts: &[u8]) -> Promise {
        match decode_statements(stmts) {
            Ok(stmts) => self.batch_once(Batch::migration(&stmts)),
            Err(e) => Promise::reject(&to_js(e)),
        }
    }

    /// `executeMultiple`: statements separated by semicolons.
    pub fn sequence(&self, sql: String) -> Promise {
        self.once(
            |id| {
                Ok(Request::Sequence {
                    stream_id: Some(id),
                    sql: &sql,
                })
            },
            Want::Done,
        )
    }

    /// Opens a stream for an interactive transaction and returns its id.
    #[wasm_bindgen(js_name = openStream)]
    pub fn open_stream(&self) -> std::result::Result<i32, JsValue> {
        let id = self.session.borrow_mut().stream_id();
        let open = self.session.borrow_mut().open_stream(id);
        self.send_text(open).map_err(to_js)?;
        Ok(id)
    }

    /// A statement in stream `stream`'s transaction, as a batch of one (with `BEGIN
    /// <begin>` first when given): resolves to an array of one result.
    #[wasm_bindgen(js_name = streamExecute)]
    pub fn stream_execute(&self, stream: i32, sql: String, args: &[u8], begin: Option<String>) -> Promise {
        self.on_stream(stream, decode_args(sql, args).map(|s| vec![s]), begin)
    }

    /// Statements in stream `stream`'s transaction, each only if the one before
    /// succeeded (with `BEGIN <begin>` first when given).
    #[wasm_bindgen(js_name = streamBatch)]
    pub fn stream_batch(&self, stream: i32, stmts: &[u8], begin: Option<String>) -> Promise {
        self.on_stream(stream, decode_statements(stmts), begin)
    }

    /// A statement without arguments or rows on stream `stream` (`BEGIN`, `COMMIT`,
    /// `ROLLBACK`).
    #[wasm_bindgen(js_name = streamRun)]
    pub fn stream_run(&self, stream: i32, sql: String) -> Promise {
        self.call(Ok(Request::run(Some(stream), &sql)), stream, Want::Done)
            .unwrap_or_else(|e| Promise::reject(&to_js(e)))
    }

    /// `executeMultiple` on stream `stream`.
    #[wasm_bindgen(js_name = streamSequence)]
    pub fn stream_sequence(&self, stream: i32, sql: String) -> Promise {
        let request = Request::Sequence {
            stream_id: Some(stream),
            sql: &sql,
        };
        self.call(Ok(request), stream, Want::Done)
            .unwrap_or_else(|e| Promise::reject(&to_js(e)))
    }

    /// Closes stream `stream` (the server rolls back what it did not commit).
    #[wasm_bindgen(js_name = closeStream)]
    pub fn close_stream(&self, stream: i32) {
        let close = self.session.borrow_mut().close_stream(stream);
        // A session that failed has no stream to close.
        let _ = self.send_text(close);
    }

    /// A text message from the server. Returns false when the session failed (the server
    /// refused `hello` or broke the protocol): the socket should be closed.
    pub fn receive(&self, text: &str) -> bool {
        let received = self.session.borrow_mut().receive(text);
        match received {
            Received::Done(w, result) => w.settle(result, self.int_mode),
            Received::Nothing => {}
            Received::Failed(waiters, e) => {
                for w in waiters {
                    w.fail(&e);
                }
                return false;
            }
        }
        true
    }

    /// The socket closed (`reason`: "WebSocket was closed with code 1006", or the
    /// error): every call waiting fails, and so does every later one.
    pub fn closed(&self, reason: &str) {
        let (waiters, e) = self.session.borrow_mut().closed(reason);
        for w in waiters {
            w.fail(&e);
        }
    }

    /// Whether calls can still be made on this session.
    #[wasm_bindgen(getter, js_name = isOpen)]
    pub fn is_open(&self) -> bool {
        self.session.borrow().is_open()
    }

    /// How many calls wait for an answer.
    #[wasm_bindgen(getter)]
    pub fn waiting(&self) -> usize {
        self.session.borrow().waiting()
    }
}

/// `BEGIN` for a mode, for the TS layer's transactions over WebSocket.
#[wasm_bindgen(js_name = beginSql)]
pub fn begin_sql(mode: Option<String>) -> std::result::Result<String, JsValue> {
    parse_mode(mode)
        .map(|m: TransactionMode| m.begin_sql().to_string())
        .map_err(to_js)
}
