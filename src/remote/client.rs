//! [`RemoteClient`]: `execute` and `batch` against a libSQL server.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::remote::config::RemoteConfig;
use crate::remote::hrana;
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
        let resp = self.pipeline(body).await?;
        hrana::decode_execute(&resp)
    }

    /// Runs `stmts` in one transaction and one round trip: all of them commit, or none.
    /// On failure the error's `step` is the failing statement's index.
    pub async fn batch(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
        if stmts.is_empty() {
            self.ensure_open()?;
            return Ok(Vec::new());
        }
        let body = hrana::encode_batch(stmts, mode)?;
        let resp = self.pipeline(body).await?;
        hrana::decode_batch(&resp, stmts.len())
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

    /// POSTs a pipeline body and returns the body of a 200 response; every other
    /// outcome becomes a typed error.
    async fn pipeline(&self, body: Vec<u8>) -> Result<Vec<u8>> {
        self.ensure_open()?;
        loop {
            let version = self.version.load(Ordering::Relaxed);
            let url = format!("{}/v{version}/pipeline", self.config.base_url);
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.bytes_sent.fetch_add(body.len() as u64, Ordering::Relaxed);
            let req = HttpRequest {
                url: &url,
                bearer: self.config.auth_token.as_deref(),
                body: body.clone(),
                timeout_ms: self.config.timeout_ms,
            };
            let resp = self.transport.post(req).await.map_err(|e| match e {
                TransportError::Timeout => Error::Timeout {
                    url: url.clone(),
                    timeout_ms: self.config.timeout_ms,
                },
                TransportError::Unreachable(reason) => Error::Unreachable {
                    url: url.clone(),
                    reason,
                },
                TransportError::Cancelled => Error::ClientClosed,
            })?;
            let message = || hrana::http_error_message(&resp.body);
            return match resp.status {
                200 => Ok(resp.body),
                404 if version == V3 => {
                    self.version.store(V2, Ordering::Relaxed);
                    continue;
                }
                401 if self.config.auth_token.is_none() => Err(Error::AuthRequired { message: message() }),
                401 => Err(Error::AuthInvalid { message: message() }),
                403 => Err(Error::PermissionDenied { message: message() }),
                404 => Err(Error::Protocol(format!(
                    "{url} answered 404: is this a libSQL server? ({})",
                    message()
                ))),
                // sqld answers 400 with a JSON error for statement-level failures in
                // some versions; anything it explains is reported as it explained it.
                status @ 400..=499 => match serde_json::from_slice::<hrana::ErrorBody>(&resp.body) {
                    Ok(e) if e.code.is_some() => Err(hrana::classify_error(e, None)),
                    _ => Err(Error::Server {
                        status,
                        message: message(),
                    }),
                },
                status => Err(Error::Server {
                    status,
                    message: message(),
                }),
            };
        }
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

    const OK: &str = r#"{"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[],"rows":[],"affected_row_count":0,"last_insert_rowid":null}}}]}"#;

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
    fn maps_http_statuses() {
        let code = |status, token| {
            let c = client(Canned::new(vec![resp(status, r#"{"error":"x"}"#)]), token);
            pollster::block_on(c.execute(&"select 1".into())).unwrap_err().code()
        };
        assert_eq!(code(401, None), "AUTH_REQUIRED");
        assert_eq!(code(401, Some("t")), "AUTH_INVALID");
        assert_eq!(code(403, Some("t")), "PERMISSION_DENIED");
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
}
