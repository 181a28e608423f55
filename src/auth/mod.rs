//! Who a token is and what it may do: the edge's authorization model.
//!
//! The worker verifies a token's signature and times (WebCrypto, in TypeScript); this
//! module turns its verified claims into a [`Principal`] and answers every "may it?"
//! question the edge asks, so the worker, the hub and (to come) the sync gateway share
//! one set of rules:
//!
//! - [`Principal::from_claims`]: `sub` is required. A token whose role claim (named by
//!   [`AuthConfig::service_role_claim`], default `role`) holds the configured service
//!   role (default `service`) is a *service* principal; every other token is a *user*.
//!   The claim `a: "ro"` makes a principal read-only (sqld's own convention).
//! - SQL ([`sql`]): only service principals run SQL through `/query` and `/batch`;
//!   read-only ones only reads. Nobody — service included — reaches what
//!   [`sql::guard`] refuses: the server's file functions, raw pages, SQL run from a
//!   string, `ATTACH`, `VACUUM INTO`, pragmas that write, and the worker's own tables.
//! - Hub channels ([`channels`]): `table:` and `sync:` are published only by the
//!   worker itself; a user subscribes and publishes only where the configuration
//!   grants it (default `user:{sub}:*`); a service principal subscribes anywhere.
//! - Sessions: a session belongs to the subject that created it
//!   ([`Principal::may_use_session`]); service principals may use any.
//!
//! Everything here is pure: no I/O, no clock.

pub mod channels;
mod principal;
pub mod sql;

pub use channels::{escape_sub, ChannelGrants, ChannelOp};
pub use principal::{Access, AuthConfig, Principal, Role, MAX_SUB_BYTES};
pub use sql::{authorize_sql, guard};

#[cfg(test)]
mod tests;
