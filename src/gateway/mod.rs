//! The edge sync gateway: untrusted replicas (browsers, user devices) sync through the
//! Worker with their user's token, under per-user rules, on a stock libSQL server.
//!
//! Between a replica and the Worker travel change records and log pages — never SQL
//! ([`protocol`]). The Worker verifies the token, then [`Gateway`]:
//!
//! - checks every pushed record against its table's schema ([`validate`]) and the
//!   user's rules ([`rules`], the `SYNC_RULES` var), in the same transaction as the
//!   merge, which is the sync engine's own ([`crate::sync::chunk::server_merge`]):
//!   refused records are never applied, the rest are ([`push`]);
//! - answers pulls, scope checks and bootstraps with only the rows the user may read
//!   ([`pull`], [`state`]);
//! - binds each replica's site id to its user, keeps an audit trail of refusals, and
//!   limits request sizes and records per minute ([`limits`]).
//!
//! The replica's side is [`crate::sync::Replica::sync`] itself: a `syncUrl` that
//! answers Hrana with [`protocol::USE_GATEWAY`] is synced through these steps instead.
//!
//! Everything but [`service`] is pure: statements out, result sets in.

pub mod digest;
pub mod limits;
pub mod protocol;
pub mod pull;
pub mod push;
pub mod rules;
pub mod schema;
mod service;
pub mod state;
pub mod validate;
pub mod view;

#[cfg(all(test, feature = "native"))]
mod tests;

pub use limits::Limits;
pub use rules::SyncRules;
pub use service::{Failure, Gateway, GatewayStats, Reply};
