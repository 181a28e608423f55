//! The records protocol between an untrusted replica and the edge Worker: JSON over
//! `POST /sync/v1/<step>`, with the user's token. Change records and log pages travel,
//! never SQL. One source for both sides: the replica (src/gateway/client/) and the
//! gateway ([`super::Gateway`]) use these types.
//!
//! | step | request | answer |
//! |---|---|---|
//! | `schema` | `{}` | the tables the rules sync, with columns and policies |
//! | `push` | `{site, records}` | per-record refusals, custom conflicts, the server's state of refused rows |
//! | `pull` | `{site, cursor, limit?}` | the log records after `cursor` the user may read |
//! | `scope` | `{site, cursor, digests}` | for tables whose readable set differs: its keys |
//! | `rows` | `{tables: {t: [pk…]}}` | the state of those rows the user may read |
//! | `bootstrap` | `{table, after?, limit?}` | one page of the table's readable rows |
//!
//! Values use the record encoding ([`crate::sync::record::encode_value`]): a BLOB is
//! `{"b": hex}`, ±∞ `{"r": "inf"}`. A key (`pk`) is the JSON array records carry; where
//! it is compared (scope, bootstrap pages) it is SQLite's canonical text of that array.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value as Json;

/// The protocol version (`schema` answers it; a replica refuses another).
pub const PROTOCOL: u32 = 1;

/// Where the steps live, under the Worker's URL.
pub const PREFIX: &str = "/sync/v1";

/// The JSON error code a Worker answers to Hrana requests (`/v2/pipeline`,
/// `/v3/pipeline`): a replica seeing it syncs through [`PREFIX`] instead.
pub const USE_GATEWAY: &str = "USE_SYNC_GATEWAY";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PushRequest<'a> {
    /// The replica's site id (16 lowercase hex digits), bound to the user on first use.
    pub site: String,
    /// The records as the request carries them (checked one by one, without building
    /// a JSON tree of each).
    #[serde(borrow)]
    pub records: Vec<&'a RawValue>,
}

/// One refused record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// The record's index in the request.
    pub index: usize,
    pub table: String,
    pub pk: Json,
    pub op: String,
    /// `PERMISSION_DENIED` (the rules, an unknown table or column, a forbidden column)
    /// or `INVALID_RECORD` (malformed, a value the column's policy cannot hold, a clock
    /// too far ahead).
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PushResponse {
    /// Records merged (or found already merged: a retried push).
    pub accepted: usize,
    pub refused: Vec<Refusal>,
    /// Custom values that lost their compare-and-set: `[hlc, table, pk, column, value, version]`.
    pub conflicts: Vec<Json>,
    /// The server's state of the refused rows the user may read (the others are in
    /// `missing`): the replica puts them back in place of its refused changes.
    pub restore: State,
    /// The tables whose records were merged (for change notifications).
    #[serde(default)]
    pub changed: Vec<String>,
}

/// The merge state of some rows, as the direct bootstrap reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TableState {
    /// Shadow rows: `pk, _pv, _live`, then value and version per row column.
    pub rows: Vec<Vec<Json>>,
    /// `pk, column, site, p, n`.
    pub counters: Vec<Vec<Json>>,
    /// `pk, column, element, tag, alive`.
    pub sets: Vec<Vec<Json>>,
    /// Log records carrying text updates of these rows: `[site, record]`, in log order.
    pub text: Vec<(String, Json)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub tables: BTreeMap<String, TableState>,
    /// Keys asked for that the user may not read (or that do not exist): the replica
    /// drops them.
    pub missing: BTreeMap<String, Vec<Json>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullRequest {
    pub site: String,
    pub cursor: i64,
    #[serde(default)]
    pub limit: Option<usize>,
    /// The tables the replica syncs (records of others are left out); `None`: every
    /// table the user may read.
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    /// Whether a final page should carry the digests of the readable keys per table
    /// (so a replica holding exactly those needs no scope request).
    #[serde(default)]
    pub digests: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PullResponse {
    /// `[seq, site, record]`, in log order.
    pub records: Vec<(i64, String, Json)>,
    /// Where the next pull starts (past the records the user may not read too).
    pub cursor: i64,
    /// Whether the log has more after `cursor`.
    pub more: bool,
    /// On a final page, when asked: per table, the digest of the keys the user may
    /// read now ([`super::digest`]).
    #[serde(default)]
    pub digests: Option<BTreeMap<String, String>>,
    /// As in [`SchemaResponse`], read with the page: a replica whose schema step saw
    /// others does not apply the page, and goes through that step again.
    #[serde(default)]
    pub epoch: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeRequest {
    pub site: String,
    /// The replica's pull cursor: the answer is for the log up to it.
    pub cursor: i64,
    /// Per table, the digest ([`super::digest`]) of the keys of the live rows the
    /// replica holds (without those it has not pushed yet).
    pub digests: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScopeResponse {
    /// The log moved past `cursor`: pull first, then ask again.
    pub stale: bool,
    /// For each table whose digest differs: the keys the user may read now.
    pub tables: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RowsRequest {
    pub tables: BTreeMap<String, Vec<Json>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootstrapRequest {
    pub table: String,
    /// The last key of the previous page (canonical text), `None` for the first.
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapResponse {
    pub state: State,
    /// The log position the page was read at (the first page's is the pull cursor).
    pub cursor: i64,
    /// The page's last key when there may be more, `None` at the end.
    pub after: Option<String>,
}

/// One synced table as the server has it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TableInfo {
    pub name: String,
    /// `{column: policy}`, as replicas declare it.
    pub policies: Json,
    /// `[name, declared type (upper case), pk position]` per column.
    pub columns: Vec<(String, String, usize)>,
    /// The `ADD COLUMN` definitions of columns added after the table was first
    /// replicated (`_es_columns`): what `migrate()` runs on a replica that lacks them.
    #[serde(default)]
    pub defs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SchemaResponse {
    pub protocol: u32,
    pub tables: Vec<TableInfo>,
    /// The change log's epoch (its row 0): another than the one a replica synced with
    /// means the server's state was reset (`SERVER_RESET`: the replica reads it again).
    #[serde(default)]
    pub epoch: Option<String>,
    /// A digest of the synced tables' declarations: a pull answering another sends
    /// the replica through the schema step again (a column was added, say).
    #[serde(default)]
    pub version: Option<String>,
}
