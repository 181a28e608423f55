//! Native (non-wasm) HTTP transport on `ureq`: blocking I/O behind the async trait.
//!
//! The future completes on its first poll, so any executor works (the tests use
//! `pollster::block_on`). Connections are pooled and kept alive by the agent.

use std::io::ErrorKind;
use std::time::Duration;

use crate::remote::transport::{HttpRequest, HttpResponse, HttpTransport, TransportError};

/// Largest response body accepted (a query returning more must be paged).
const MAX_BODY: u64 = 512 * 1024 * 1024;

/// A `ureq` agent (connection pool) used as an [`HttpTransport`].
pub struct UreqTransport {
    agent: ureq::Agent,
}

impl Default for UreqTransport {
    fn default() -> Self {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        UreqTransport { agent }
    }
}

fn classify(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => TransportError::Timeout,
        other => TransportError::Unreachable(other.to_string()),
    }
}

impl HttpTransport for UreqTransport {
    async fn post(&self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        let mut r = self
            .agent
            .post(req.url)
            .config()
            .timeout_global(Some(Duration::from_millis(u64::from(req.timeout_ms))))
            .build()
            .header("content-type", "application/json");
        if let Some(t) = req.bearer {
            r = r.header("authorization", &format!("Bearer {t}"));
        }
        let resp = r.send(&req.body[..]).map_err(classify)?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(classify)?;
        Ok(HttpResponse { status, body })
    }
}
