//! The one seam between the protocol logic and the network.
//!
//! The remote client only needs "POST these bytes to this URL and give me the status
//! and the body". Each runtime supplies that: [`crate::remote::native::UreqTransport`]
//! for native Rust, the JS `fetch` transport in `src/wasm/fetch.rs` for Node, browsers
//! and Cloudflare Workers, and test doubles for fault injection.

/// One HTTP POST.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    pub url: &'a str,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer: Option<&'a str>,
    /// A JSON document.
    pub body: Vec<u8>,
    /// The whole exchange (connect, send, read the body) must finish within this.
    pub timeout_ms: u32,
}

/// Status and full body of an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why an exchange failed before an HTTP response was read.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// No connection, or it broke (refused, DNS, TLS, reset mid-response).
    Unreachable(String),
    /// The deadline passed.
    Timeout,
    /// [`HttpTransport::cancel`] ended the exchange (the client was closed). The request
    /// may or may not have reached the server.
    Cancelled,
}

/// Sends HTTP POST requests. Implementations must never panic on network failure and
/// must honour `timeout_ms`.
#[allow(async_fn_in_trait)] // used with concrete types; wasm futures are not Send
pub trait HttpTransport {
    async fn post(&self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError>;

    /// Resolves once the runtime has had a turn to do its I/O — in JS, after the event
    /// loop has run (a request started by [`Self::post`] is only written to the socket
    /// then). A blocking transport has nothing to wait for.
    async fn idle(&self) {}

    /// Ends every exchange in flight at once ([`TransportError::Cancelled`]), and every
    /// later one. A blocking transport has none in flight when it can be called.
    fn cancel(&self) {}
}
