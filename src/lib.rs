//! # edgesync
//!
//! A sync engine and CRDT conflict resolver for edge programs, compiled to
//! WebAssembly with a TypeScript API. This crate is the pure Rust core; the JS
//! binding lives in `src/wasm/` behind the `wasm` feature and is the only code that
//! touches wasm-bindgen.
//!
//! Subsystems (one folder each; `crdt`, `store`, `sync`, `router` and `session` behind
//! the features of those names, all in the default `full`):
//! - [`sql`]: the SQL types every layer shares (values, statements, result sets).
//! - [`remote`]: the libSQL remote client (Hrana over HTTP) behind a transport trait.
//! - [`codec`]: the checked, versioned binary format every encoding uses.
//! - [`error`]: the crate's one error type with stable codes.
//! - [`store`]: the local SQLite database (rusqlite, native and wasm32).
//! - [`sync`]: embedded replicas — capture, outbox, push/pull with SQL merge rules.
//! - [`router`]: edge query routing — statement classification, latency- and
//!   load-aware region choice, read-your-writes, a read cache, circuit breakers.
//! - [`session`]: distributed sessions — TTLs, a local cache, home-region migration,
//!   compressed and AES-256-GCM-sealed storage in libSQL.
//! - [`metrics`]: counters, histograms, Prometheus text exposition, cluster health.
//! - [`auth`]: the edge's authorization model — principals from verified token
//!   claims, who may run which SQL, hub channel grants, session ownership.

#[cfg(feature = "edge")]
pub mod auth;
pub mod clock;
pub mod codec;
#[cfg(feature = "crdt")]
pub mod crdt;
pub mod error;
pub mod gateway;
pub mod metrics;
pub mod remote;
#[cfg(feature = "edge")]
pub mod router;
#[cfg(feature = "edge")]
pub mod session;
mod sort;
pub mod sql;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "sync")]
pub mod sync;

#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
mod wasm;

pub use error::{Error, Extended, Result, SqlCode};
pub use sql::{ResultSet, Statement, TransactionMode, Value};
