//! The edge sync gateway: untrusted replicas (browsers, user devices) sync through the
//! Worker with their user's token, under per-user rules, on a stock libSQL server.
//!
//! Between a replica and the Worker travel change records and log pages — never SQL
//! ([`protocol`]). The Worker verifies the token, then [`Gateway`]:
//!
//! - checks every pushed record against its table's schema ([`validate`]) and the
//!   user's rules ([`rules`], the `SYNC_RULES` var), in the same transaction as the
//!   merge, which is the sync engine's own ([`crate::sync::chunk::server_merge`]):
//!   refused records are never applied, the rest are ([`push`]); a text edit's
//!   rendering is the server's merged document's text, never the writer's ([`text`]);
//! - answers pulls, scope checks and bootstraps with only the rows the user may read
//!   ([`pull`], [`state`]);
//! - binds each replica's site id to its user, keeps an audit trail of refusals, and
//!   limits request sizes and records per minute ([`limits`]).
//!
//! The replica's side is [`crate::sync::Replica::sync`] itself: a `syncUrl` that
//! answers Hrana with [`protocol::USE_GATEWAY`] is synced through these steps instead.
//!
//! Everything but [`service`] is pure: statements out, result sets in.

//! Features: [`protocol`] (the wire types, and the Hrana hint every remote client
//! recognises) is always built; [`digest`] with `sync` (a replica checks its pulls with
//! it); the server half — everything else, which needs the sync engine's merge and the
//! router's SQL lexer — only with `sync` and `edge` together, so the `edgesync/replica`
//! flavour carries the replica's half alone and the full flavour (the Worker) both.

#[cfg(feature = "sync")]
pub mod digest;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod limits;
pub mod protocol;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod pull;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod push;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod rules;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod schema;
#[cfg(all(feature = "sync", feature = "edge"))]
mod service;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod state;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod text;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod validate;
#[cfg(all(feature = "sync", feature = "edge"))]
pub mod view;

#[cfg(all(test, feature = "native", feature = "sync", feature = "edge"))]
mod tests;
#[cfg(all(test, feature = "native", feature = "sync", feature = "edge"))]
mod text_tests;

#[cfg(all(feature = "sync", feature = "edge"))]
pub use limits::Limits;
#[cfg(all(feature = "sync", feature = "edge"))]
pub use rules::SyncRules;
#[cfg(all(feature = "sync", feature = "edge"))]
pub use service::{Failure, Gateway, GatewayStats, Reply};
