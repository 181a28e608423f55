//! The libSQL remote: a client for a stock libSQL server (sqld, Turso) speaking
//! Hrana over HTTP, and the sans-I/O core of Hrana over WebSocket ([`ws::WsSession`]).
//!
//! [`RemoteClient`] holds the HTTP protocol logic and is generic over an
//! [`HttpTransport`], so the same code runs natively (ureq) and in wasm (JS `fetch`).
//! The WebSocket session only turns calls into messages and messages into results; the
//! wasm binding runs it over the JS `WebSocket`.
//!
//! ```no_run
//! # #[cfg(feature = "native")] {
//! use edgesync::remote::{RemoteClient, RemoteConfig, UreqTransport};
//! use edgesync::Statement;
//! let config = RemoteConfig::parse("http://127.0.0.1:8080", Some("token")).unwrap();
//! let client = RemoteClient::new(config, UreqTransport::default());
//! let rs = pollster::block_on(client.execute(&Statement::new("select 1 as one"))).unwrap();
//! assert_eq!(rs.columns, ["one"]);
//! # }
//! ```

mod client;
mod config;
pub mod hrana;
#[cfg(feature = "native")]
mod native;
mod transport;
mod value;
pub mod ws;

pub use client::{HttpStream, RemoteClient};
pub use config::{RemoteConfig, DEFAULT_TIMEOUT_MS};
#[cfg(feature = "native")]
pub use native::UreqTransport;
pub use transport::{HttpRequest, HttpResponse, HttpTransport, TransportError};
// The shared SQL types moved to `crate::sql`; re-exported here until every caller
// imports them from there.
pub use crate::sql::{ResultSet, Statement, TransactionMode, Value};
