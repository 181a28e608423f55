//! The sync engine: embedded replicas that write locally, work offline and converge
//! through a stock libSQL server.
//!
//! - [`Replica`] owns a local SQLite database ([`crate::store::Store`]). Tables declared
//!   with [`Replica::replicate`] get capture triggers; every write to them is recorded
//!   in the same local transaction.
//! - [`Replica::sync`] folds captures into change [`record`]s, pushes them in atomic
//!   Hrana batches whose merge rules are SQL — per-table row state (`rows.rs`: one
//!   shadow row per table row) and per-site counters and per-tag sets ([`rules`]) —
//!   then pulls the server's log after its cursor and applies it with the same rules.
//! - Status, events and metrics: [`status`].
//!
//! ```no_run
//! # #[cfg(feature = "native")] {
//! use edgesync::sync::{Policy, Replica, ReplicaConfig, Env};
//! use edgesync::remote::UreqTransport;
//! use edgesync::Statement;
//! let config = ReplicaConfig {
//!     path: ":memory:".into(),
//!     sync_url: Some("http://127.0.0.1:8080".into()),
//!     ..Default::default()
//! };
//! let db = Replica::open(config, UreqTransport::default(), Env::default()).unwrap();
//! db.execute(&Statement::new("create table inv (sku text primary key, stock integer)")).unwrap();
//! db.replicate("inv", &[("stock".into(), Policy::Counter)], vec![]).unwrap();
//! db.execute(&Statement::new("insert into inv values ('a', 10)")).unwrap();
//! pollster::block_on(db.sync()).unwrap();
//! # }
//! ```

mod apply;
pub mod chunk;
mod evolve;
mod fold;
mod multirow;
mod net;
mod own;
mod pending;
pub mod policy;
pub mod record;
mod replica;
pub mod rows;
pub mod rules;
pub(crate) mod server;
pub mod status;
#[cfg(all(test, feature = "native"))]
mod tests;
#[cfg(all(test, feature = "native"))]
mod tests_server;
#[cfg(all(test, feature = "native"))]
mod tests_values;

// For the edge gateway's server half (src/gateway/), built with `edge`.
#[cfg(feature = "edge")]
pub(crate) use evolve::COLUMNS_DDL;
#[cfg(feature = "edge")]
pub(crate) use net::PAGE_BYTES;
pub use net::{Mirror, SyncReport, BACKOFF_BASE_MS, BACKOFF_MAX_MS};
pub use policy::{Column, Policy, TableSpec};
pub use replica::{ConflictResolver, Env, Replica, ReplicaConfig};
pub use status::{backoff_ms, Event, Metrics, Outcome, Status};
