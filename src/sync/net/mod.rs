//! The network half of a replica, one file per step:
//!
//! - `sync.rs`: the sync loop (`sync()`: fold, schema, bootstrap, doubts, push, pull)
//! - `schema.rs`: the server's tables on first sync, checked against the local ones
//! - `bootstrap.rs`: loading the server's state for tables not bootstrapped yet
//! - `push.rs`: the outbox, one atomic Hrana batch per chunk (merge rules in SQL)
//! - `pull.rs`: the log after the cursor, applied with the same rules
//! - `write_through.rs`: `writeMode: "remote"` writes
//! - `doubts.rs`: write-through writes whose answer was lost, settled by a ledger
//! - `requests.rs`: write-through calls sent again (a browser tab's), answered once
//! - `mirror.rs`: read-only mirrors of the server's other tables
//! - `held.rs`: custom conflicts met before their resolver was registered
//! - `pace.rs`: how many records one request carries, halved after a timeout
//! - `status.rs`: status and metrics accessors
//!
//! Every `await` happens with no local transaction open and no borrow held, so local
//! reads and writes go on while a sync waits on the network.

use serde_json::Value as Json;

use super::record::Record;
use super::replica::Replica;
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, RemoteClient, ResultSet, Statement, TransactionMode, Value};

mod bootstrap;
mod doubts;
mod gateway;
mod held;
mod mirror;
mod pace;
mod pull;
mod push;
mod requests;
mod schema;
mod status;
mod sync;
mod write_through;

pub use mirror::Mirror;
pub(crate) use pace::Pace;
#[cfg(feature = "edge")]
pub(crate) use pull::PAGE_BYTES;

/// What one `sync()` did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SyncReport {
    pub changes_pushed: u64,
    pub changes_applied: u64,
    pub duration_ms: f64,
}

/// An outbox row waiting to be pushed. A push only needs each record's table and
/// operation; the whole record is parsed only where it is needed (conflicts,
/// write-through), which keeps JSON parsing off the push path.
#[derive(Clone)]
struct Queued {
    id: i64,
    table: String,
    op: char,
    json: String,
    base: Option<Value>,
}

/// The table and operation of a record's JSON (`[hlc, table, key, op, …]`), read
/// without building the rest.
fn record_head(json: &str) -> Result<(String, char)> {
    let bad = |e: String| Error::Protocol(format!("malformed change record: {e}"));
    let parts: Vec<&serde_json::value::RawValue> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let field = |i: usize| -> Result<String> {
        let raw = parts.get(i).ok_or_else(|| bad(format!("{} fields", parts.len())))?;
        serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))
    };
    let op = field(3)?.chars().next().ok_or_else(|| bad("no operation".into()))?;
    Ok((field(1)?, op))
}

impl Queued {
    fn record(&self) -> Result<Record> {
        let rec: Json = serde_json::from_str(&self.json).map_err(|e| Error::Protocol(e.to_string()))?;
        Record::from_json(&rec)
    }
}

/// Whether the server refused a request as too large: a value or statement of
/// 5,000,000 bytes or more (`SQLITE_TOOBIG`, or `ARGS_INVALID` "string or blob too
/// big" for an argument), or a result over its response limit (`RESPONSE_TOO_LARGE`).
/// Nothing was committed: the batch failed whole.
pub(super) fn is_too_large(e: &Error) -> bool {
    match e {
        Error::Sql {
            server_code, message, ..
        } => {
            matches!(server_code.as_deref(), Some("SQLITE_TOOBIG" | "RESPONSE_TOO_LARGE"))
                || message.contains("string or blob too big")
                || message.contains("Response is too large")
        }
        _ => false,
    }
}

/// Background sync delay after success, and the backoff bounds after failures.
pub const BACKOFF_BASE_MS: u64 = 500;
pub const BACKOFF_MAX_MS: u64 = 60_000;

impl<T: HttpTransport> Replica<T> {
    fn remote(&self) -> Result<&RemoteClient<T>> {
        self.remote
            .as_ref()
            .ok_or_else(|| Error::InvalidOperation("this replica has no syncUrl to sync with".into()))
    }

    /// Stops this replica's network work: requests in flight fail at once with
    /// `CLIENT_CLOSED`, and no new one is made (`close()` in JS). A write-through
    /// write whose request was in flight stays in doubt (see `doubts.rs`).
    pub fn cancel_remote(&self) {
        if let Some(r) = &self.remote {
            r.cancel();
        }
    }

    async fn remote_batch(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
        self.remote()?.batch(stmts, mode).await
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Null => String::new(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Integer(i) => *i,
        Value::Real(f) => *f as i64,
        Value::Text(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Polls `f` once: its output if it is ready at once, else `None` (it has started, and
/// the task will be woken when it can go on).
async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
