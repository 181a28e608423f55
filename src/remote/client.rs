//! [`RemoteClient`]: a libSQL server over HTTP — `execute`, `batch`, `migrate` and
//! `sequence` each in one pipeline on a fresh stream, and interactive transactions on a
//! stream kept open by its baton ([`HttpStream`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::remote::config::RemoteConfig;
use crate::remote::hrana::{self, Batch, Request, Response};
use crate::remote::transport::{HttpRequest, HttpTransport, TransportError};
use crate::sql::{ResultSet, Statement, TransactionMode};

/// Hrana v3 is tried first (Turso and sqld ≥ 0.22 serve it); a server answering 404 is
/// asked again over v2, and the client remembers the answer.
const V3: u8 = 3;
const V2: u8 = 2;

/// A client for one remote database. Cheap to share: all methods take `&self`.
pub struct RemoteClient<T> {
    config: RemoteConfig,
    transport: T,
    version: AtomicU8,
    closed: AtomicBool,
    /// Requests sent and their body bytes, for metrics.
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    /// Set once the server answered Hrana with the edge gateway's hint: this URL is
    /// an edgesync Worker, synced through its records protocol ([`Self::post_json`]).
    gateway: AtomicBool,
}

impl<T: HttpTransport> RemoteClient<T> {
    pub fn new(config: RemoteConfig, transport: T) -> Self {
        RemoteClient {
            config,
            transport,
            version: AtomicU8::new(V3),
            closed: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            gateway: AtomicBool::new(false),
        }
    }

    /// HTTP requests sent so far and the bytes of their bodies.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes_sent.load(Ordering::Relaxed),
        )
    }

    /// The transport requests go through (tests wrap one to inject faults).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// The Hrana version in use (3, or 2 after a v3 endpoint answered 404).
    pub fn protocol_version(&self) -> u8 {
        self.version.load(Ordering::Relaxed)
    }

    /// Runs one statement in its own implicit transaction.
    pub async fn execute(&self, stmt: &Statement) -> Result<ResultSet> {
        let body = hrana::encode_execute(stmt)?;
        let resp = self.pipeline(None, body).await?;
        hrana::decode_execute(&resp)
    }

    /// Runs `stmts` in one transaction and one round trip: all of them commit, or none.
    /// On failure the error's `statement_index` is the failing statement's index.
    pub async fn batch(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
        self.atomic(&Batch::transaction(stmts, mode)?).await
    }

    /// [`RemoteClient::batch`] (deferred) with foreign keys off: schema migrations that
    /// rebuild tables other tables refer to.
    pub async fn migrate(&self, stmts: &[Statement]) -> Result<Vec<ResultSet>> {
        self.atomic(&Batch::migration(stmts)?).await
    }

    async fn atomic(&self, batch: &Batch<'_>) -> Result<Vec<ResultSet>> {
        let requests = [Request::Batch { stream_id: None, batch }, Request::Close];
        let mut results = self.fresh_stream(&requests).await?;
        results.swap_remove(0)?.into_batch(batch.plan())
    }

    /// Runs SQL statements separated by semicolons one after the other, outside any
    /// transaction unless the SQL begins one; the first failure stops it.
    pub async fn sequence(&self, sql: &str) -> Result<()> {
        let requests = [Request::Sequence { stream_id: None, sql }, Request::Close];
        self.fresh_stream(&requests).await?.swap_remove(0).map(|_| ())
    }

    async fn fresh_stream(&self, requests: &[Request<'_>]) -> Result<Vec<Result<Response>>> {
        let body = hrana::pipeline(None, requests)?;
        let resp = self.pipeline(None, body).await?;
        Ok(hrana::decode_pipeline(&resp, requests.len())?.results)
    }

    /// Sends `requests` on `stream` (opening it on first use) and returns each one's
    /// outcome. A failed exchange, or one that ends with `Request::Close`, leaves the
    /// stream closed; later calls on it fail with `TRANSACTION_CLOSED`.
    pub async fn on_stream(&self, stream: &mut HttpStream, requests: &[Request<'_>]) -> Result<Vec<Result<Response>>> {
        let body = stream.body(requests)?;
        self.send_on_stream(stream, body, requests.len()).await
    }

    /// The second half of [`RemoteClient::on_stream`]: sends a body made by
    /// [`HttpStream::body`] (of `count` requests) and reads the answer.
    pub async fn send_on_stream(
        &self,
        stream: &mut HttpStream,
        body: Vec<u8>,
        count: usize,
    ) -> Result<Vec<Result<Response>>> {
        let sent = async {
            let resp = self.pipeline(stream.base_url.as_deref(), body).await?;
            hrana::decode_pipeline(&resp, count)
        }
        .await;
        match sent {
            Ok(p) => {
                stream.closed = p.baton.is_none();
                stream.baton = p.baton;
                if p.base_url.is_some() {
                    stream.base_url = p.base_url;
                }
                Ok(p.results)
            }
            Err(e) => {
                stream.closed = true;
                Err(e)
            }
        }
    }

    /// Marks the client closed; later calls fail with `CLIENT_CLOSED`. Requests
    /// already in flight complete.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// [`Self::close`], and the requests in flight fail at once with `CLIENT_CLOSED`
    /// too (whether the server received them is not known).
    pub fn cancel(&self) {
        self.close();
        self.transport.cancel();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn ensure_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::ClientClosed)
        } else {
            Ok(())
        }
    }

    /// Whether the server turned out to be an edgesync Worker (its sync gateway).
    pub fn is_gateway(&self) -> bool {
        self.gateway.load(Ordering::Relaxed)
    }

    /// POSTs a JSON body to `path` under the base URL (the edge gateway's records
    /// protocol) and returns the body of a 200 answer; every other outcome becomes a
    /// typed error (`{"error": {"code", "message"}}` bodies are read for the message).
    pub async fn post_json(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>> {
        self.ensure_open()?;
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let resp = self.send(&url, body).await?;
        let (code, message) = json_error(&resp.body);
        match resp.status {
            200 => Ok(resp.body),
            401 => Err(Error::AuthInvalid { message }),
            403 => Err(Error::PermissionDenied { message }),
            400 | 404 => Err(Error::Protocol(format!(
                "{url} answered {}: {code} {message}",
                resp.status
            ))),
            status => Err(Error::Server {
                status,
                message: format!("{code}: {message}"),
            }),
        }
    }

    /// One POST with the client's token, counted; a transport failure as a typed error.
    async fn send(&self, url: &str, body: Vec<u8>) -> Result<crate::remote::HttpResponse> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        let req = HttpRequest {
            url,
            bearer: self.config.auth_token.as_deref(),
            body,
            timeout_ms: self.config.timeout_ms,
        };
        self.transport.post(req).await.map_err(|e| match e {
            TransportError::Timeout => Error::Timeout {
                url: url.to_string(),
                timeout_ms: self.config.timeout_ms,
            },
            TransportError::Unreachable(reason) => Error::Unreachable {
                url: url.to_string(),
                reason,
            },
            TransportError::Cancelled => Error::ClientClosed,
        })
    }

    /// POSTs a pipeline body (to `base`, a stream's own server, or the configured one)
    /// and returns the body of a 200 response; every other outcome becomes a typed error.
    async fn pipeline(&self, base: Option<&str>, body: Vec<u8>) -> Result<Vec<u8>> {
        self.ensure_open()?;
        loop {
            let version = self.version.load(Ordering::Relaxed);
            let url = format!(
                "{}/v{version}/pipeline",
                base.unwrap_or(&self.config.base_url).trim_end_matches('/')
            );
            let resp = self.send(&url, body.clone()).await?;
            let message = || hrana::http_error_message(&resp.body);
            if gateway_hint(resp.status, &resp.body) {
                self.gateway.store(true, Ordering::Relaxed);
                return Err(Error::Protocol(format!(
                    "{} is an edgesync Worker: replicas sync through its gateway, other SQL is refused",
                    self.config.base_url
                )));
            }
            if resp.status != 200 {
                // An error the server explains with a code (a stream that expired, a bad
                // baton) is reported by that code, as the official client does.
                if let Ok(e) = serde_json::from_slice::<hrana::ErrorBody>(&resp.body) {
                    if e.code.is_some() && resp.status != 404 {
                        return Err(e.into_error());
                    }
                }
            }
            return match resp.status {
                200 => Ok(resp.body),
                404 if version == V3 => {
                    self.version.store(V2, Ordering::Relaxed);
                    continue;
                }
                // SERVER_ERROR with the status, as from the official client; the message
                // says what to do.
                401 if self.config.auth_token.is_none() => Err(Error::Server {
                    status: 401,
                    message: format!("the server requires an auth token (pass `authToken`): {}", message()),
                }),
                401 => Err(Error::Server {
                    status: 401,
                    message: format!("the server rejected the auth token: {}", message()),
                }),
                403 => Err(Error::Server {
                    status: 403,
                    message: format!("permission denied: {}", message()),
                }),
                404 => Err(Error::Protocol(format!(
                    "{url} answered 404: is this a libSQL server? ({})",
                    message()
                ))),
                status => Err(Error::Server {
                    status,
                    message: message(),
                }),
            };
        }
    }
}

/// Whether an answer to a Hrana request is the edge gateway's hint to sync through it
/// (HTTP 404 with the error code [`crate::gateway::protocol::USE_GATEWAY`]).
fn gateway_hint(status: u16, body: &[u8]) -> bool {
    status == 404 && json_error(body).0 == crate::gateway::protocol::USE_GATEWAY
}

/// The code and message of a `{"error": {"code", "message"}}` body (the edge Worker's
/// error shape); the body's text otherwise.
fn json_error(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Inner {
        code: String,
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    match serde_json::from_slice::<Outer>(body) {
        Ok(o) => (o.error.code, o.error.message),
        Err(_) => (String::new(), hrana::http_error_message(body)),
    }
}

/// An interactive transaction's stream over HTTP: the baton of its last pipeline and the
/// server it lives on. Requests on one stream must not overlap.
#[derive(Debug, Default)]
pub struct HttpStream {
    baton: Option<String>,
    base_url: Option<String>,
    closed: bool,
}

impl HttpStream {
    /// The pipeline body that sends `requests` on this stream (with its current baton).
    pub fn body(&self, requests: &[Request<'_>]) -> Result<Vec<u8>> {
        if self.closed {
            return Err(Error::TransactionClosed {
                message: "Cannot execute statements because the transaction is closed".into(),
                statement_index: None,
            });
        }
        hrana::pipeline(self.baton.as_deref(), requests)
    }

    /// Marks the stream closed without telling the server (nothing was sent on it, or
    /// its closing was sent already).
    pub fn close_locally(&mut self) {
        self.closed = true;
    }

    /// Whether the stream was closed (by `close`, a failure, or the server).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the stream exists on the server (a pipeline was sent and it is open).
    pub fn is_open_on_server(&self) -> bool {
        self.baton.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::transport::HttpResponse;
    use std::cell::RefCell;

    /// Replays canned responses and records the URLs asked for.
    struct Canned {
        responses: RefCell<Vec<Result<HttpResponse, TransportError>>>,
        urls: RefCell<Vec<String>>,
    }

    impl Canned {
        fn new(r: Vec<Result<HttpResponse, TransportError>>) -> Self {
            Canned {
                responses: RefCell::new(r),
                urls: RefCell::new(Vec::new()),
            }
        }
    }

    impl HttpTransport for Canned {
        async fn post(&self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
            self.urls.borrow_mut().push(req.url.to_owned());
            self.responses.borrow_mut().remove(0)
        }
    }

    fn resp(status: u16, body: &str) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status,
            body: body.as_bytes().to_vec(),
        })
    }

    fn client(t: Canned, token: Option<&str>) -> RemoteClient<Canned> {
        RemoteClient::new(RemoteConfig::parse("http://h:1", token).unwrap(), t)
    }

    const OK: &str = r#"{"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[],"rows":[],"affected_row_count":0,"last_insert_rowid":null}}},{"type":"ok","response":{"type":"close"}}]}"#;

    #[test]
    fn falls_back_to_v2_once() {
        let c = client(
            Canned::new(vec![resp(404, "not found"), resp(200, OK), resp(200, OK)]),
            None,
        );
        pollster::block_on(c.execute(&"select 1".into())).unwrap();
        pollster::block_on(c.execute(&"select 1".into())).unwrap();
        assert_eq!(
            *c.transport.urls.borrow(),
            [
                "http://h:1/v3/pipeline",
                "http://h:1/v2/pipeline",
                "http://h:1/v2/pipeline"
            ]
        );
        assert_eq!(c.protocol_version(), 2);
    }

    #[test]
    fn recognizes_an_edge_gateway_at_once() {
        let hint = r#"{"error":{"code":"USE_SYNC_GATEWAY","message":"sync through /sync/v1"}}"#;
        let c = client(
            Canned::new(vec![
                resp(404, hint),
                resp(200, "{}"),
                resp(403, r#"{"error":{"code":"PERMISSION_DENIED","message":"no"}}"#),
            ]),
            Some("t"),
        );
        assert!(!c.is_gateway());
        let e = pollster::block_on(c.execute(&"select 1".into())).unwrap_err();
        assert_eq!(e.code(), "HRANA_PROTO_ERROR");
        assert!(c.is_gateway(), "no v2 retry: the hint is the answer");
        assert_eq!(
            pollster::block_on(c.post_json("/sync/v1/pull", b"{}".to_vec())).unwrap(),
            b"{}"
        );
        let e = pollster::block_on(c.post_json("/sync/v1/push", b"{}".to_vec())).unwrap_err();
        assert_eq!(e.to_string(), "permission denied: no");
        assert_eq!(
            *c.transport.urls.borrow(),
            [
                "http://h:1/v3/pipeline",
                "http://h:1/sync/v1/pull",
                "http://h:1/sync/v1/push"
            ]
        );
        // A plain 404 is still a libSQL server without v3.
        let plain = client(Canned::new(vec![resp(404, "not found"), resp(200, OK)]), None);
        pollster::block_on(plain.execute(&"select 1".into())).unwrap();
        assert!(!plain.is_gateway());
    }

    #[test]
    fn maps_http_statuses() {
        let code = |status, token| {
            let c = client(Canned::new(vec![resp(status, r#"{"error":"x"}"#)]), token);
            pollster::block_on(c.execute(&"select 1".into())).unwrap_err().code()
        };
        assert_eq!(code(401, None), "SERVER_ERROR");
        assert_eq!(code(401, Some("t")), "SERVER_ERROR");
        assert_eq!(code(403, Some("t")), "SERVER_ERROR");
        assert_eq!(code(500, None), "SERVER_ERROR");
        assert_eq!(code(502, None), "SERVER_ERROR");
    }

    #[test]
    fn maps_transport_failures_and_close() {
        let c = client(
            Canned::new(vec![
                Err(TransportError::Timeout),
                Err(TransportError::Unreachable("refused".into())),
            ]),
            None,
        );
        let e = pollster::block_on(c.execute(&"select 1".into())).unwrap_err();
        assert_eq!(e.code(), "TIMEOUT");
        let e = pollster::block_on(c.execute(&"select 1".into())).unwrap_err();
        assert_eq!(e.code(), "SERVER_UNREACHABLE");
        assert!(e.to_string().contains("refused"));
        c.close();
        let e = pollster::block_on(c.batch(&[], TransactionMode::Write)).unwrap_err();
        assert_eq!(e.code(), "CLIENT_CLOSED");
    }

    #[test]
    fn a_stream_keeps_its_baton_and_server() {
        let first = r#"{"baton":"b1","base_url":"http://other:2","results":[{"type":"ok","response":{"type":"execute","result":{"cols":[],"rows":[],"affected_row_count":0,"last_insert_rowid":null}}}]}"#;
        let last = r#"{"baton":null,"base_url":null,"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[],"rows":[],"affected_row_count":0,"last_insert_rowid":null}}},{"type":"ok","response":{"type":"close"}}]}"#;
        let c = client(Canned::new(vec![resp(200, first), resp(200, last)]), None);
        let mut st = HttpStream::default();
        let begin = Request::run(None, "BEGIN");
        pollster::block_on(c.on_stream(&mut st, &[begin])).unwrap();
        assert!(st.is_open_on_server() && !st.is_closed());
        let commit = [Request::run(None, "COMMIT"), Request::Close];
        pollster::block_on(c.on_stream(&mut st, &commit)).unwrap();
        assert!(st.is_closed());
        assert_eq!(
            *c.transport.urls.borrow(),
            ["http://h:1/v3/pipeline", "http://other:2/v3/pipeline"]
        );
        let e = pollster::block_on(c.on_stream(&mut st, &[Request::run(None, "select 1")])).unwrap_err();
        assert_eq!(e.code(), "TRANSACTION_CLOSED");
    }

    #[test]
    fn an_explained_http_error_has_the_servers_code() {
        let expired = r#"{"message":"The stream has expired due to inactivity","code":"STREAM_EXPIRED"}"#;
        let c = client(Canned::new(vec![resp(500, expired)]), None);
        let e = pollster::block_on(c.execute(&"select 1".into())).unwrap_err();
        assert_eq!(e.code(), "STREAM_EXPIRED");
    }
}
