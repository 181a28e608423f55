//! This replica's own last-writer-wins records, applied straight to the state table.
//!
//! A record folded from a local write carries a fresh version (this replica's clock
//! has just ticked past everything it has seen), so on the state table the merge rule
//! — "keep the greater version" — almost always takes it: one upsert per cell does
//! what staging the record and running the set-based rules ([`super::rules`]) would,
//! at a fraction of the cost (no stage rows to write and delete, no joins). Only when
//! a cell keeps an equal or newer version (this replica's clock ran behind another's)
//! does the caller fall back to the staged rules, which also rebuild the rows that
//! lost. Counters, sets, text and custom columns always take the staged rules.

use std::collections::HashMap;

use rusqlite::params;

use super::policy::{Policy, TableSpec};
use super::record::{decode_value, version, Record};
use crate::error::Result;
use crate::store::sql_error;

/// The last-writer-wins rule for one cell, as in [`super::rules`]: `-` is the row's
/// presence (1 live, 0 deleted).
const UPSERT_CELL: &str = "INSERT INTO _es_cv (tbl, pk, col, val, ver) VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, ver = excluded.ver WHERE excluded.ver > _es_cv.ver";

/// Whether every record is an insert, update or delete whose columns are all
/// last-writer-wins, of a table without set columns (the staged rules rebuild the rows
/// of such tables after every local write, to keep sets normalized: a later record of
/// the same fold must rebuild them again).
pub fn all_lww(tables: &HashMap<String, TableSpec>, records: &[&Record]) -> bool {
    records.iter().all(|r| {
        let Some(spec) = tables.get(&r.table) else { return false };
        matches!(r.op, 'i' | 'u' | 'd')
            && !spec.columns.iter().any(|c| c.policy == Policy::Set)
            && r.data.as_object().is_none_or(|data| {
                data.keys()
                    .all(|col| spec.columns.iter().any(|c| &c.name == col && c.policy == Policy::Lww))
            })
    })
}

/// Applies `records` (by `site`, all passing [`all_lww`]) to `_es_cv`. `Ok(false)`
/// when some cell kept its version — an equal or newer one — and the staged rules must
/// settle the batch (re-applying what was applied here changes nothing).
pub fn apply(conn: &rusqlite::Connection, records: &[&Record], site: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached(UPSERT_CELL).map_err(sql_error)?;
    let mut all_taken = true;
    for r in records {
        let pk = r.pk.to_string();
        let ver = version(r.hlc, site);
        if r.op != 'u' {
            let live = i64::from(r.op == 'i');
            let n = stmt.execute(params![r.table, pk, "-", live, ver]).map_err(sql_error)?;
            all_taken &= n == 1;
        }
        for (col, v) in r.data.as_object().into_iter().flatten() {
            let n = stmt
                .execute(params![r.table, pk, col, decode_value(v), ver])
                .map_err(sql_error)?;
            all_taken &= n == 1;
        }
    }
    Ok(all_taken)
}
