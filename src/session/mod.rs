//! Distributed sessions for edge workers.
//!
//! A session is a small JSON document behind an opaque id (usually a cookie). It is
//! stored in the libSQL table `es_sessions`, one row per session, its body deflated
//! (when large enough and worth it) and sealed with AES-256-GCM ([`envelope`]) so
//! that the database never holds readable session data and a body cannot be
//! modified, truncated or copied onto another id unnoticed. Each worker isolate
//! keeps opened sessions in a bounded LRU cache, so most requests cost no query.
//!
//! [`Sessions`] does no I/O and reads no clock: every call takes `now_ms` and
//! returns the parameterized SQL ([`SqlWrite`]) the worker runs. The request flow:
//!
//! 1. [`Sessions::get_cached`] → [`Lookup::Hit`] (run the optional write),
//!    [`Lookup::Miss`] (run [`Sessions::SELECT`], then [`Sessions::load`] with the
//!    row, or answer "not found" if there is none) or [`Lookup::Expired`] (run the
//!    conditional DELETE; if it deleted nothing, treat as a miss).
//! 2. Changes: [`Sessions::update`] → an UPDATE guarded by the version; zero rows
//!    affected → [`Sessions::conflict`].
//! 3. Periodically (e.g. a cron trigger): [`Sessions::gc`].
//!
//! Lifetimes: an idle TTL that slides on use (written back at most about every
//! `touch_after_fraction · idle_ttl_ms`) capped by an absolute TTL from creation.
//! Home region: the region that last used a session; a use from another region
//! moves it there (`migrations` in [`Analytics`]).
//!
//! Keys: [`KeyRing`] (rotation by prepending a key). Nonces: [`NonceSource`].

mod cache;
pub mod envelope;
mod keys;
mod nonce;
mod options;
mod report;
mod store;

#[cfg(test)]
mod tests;

pub use keys::{KeyRing, MAX_KID_LEN};
pub use nonce::NonceSource;
pub use options::{Analytics, Lookup, SessionOptions, SessionView, SqlWrite, StoredRow, MAX_DATA_BYTES_LIMIT};
pub use store::Sessions;
