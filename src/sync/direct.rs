//! This replica's own last-writer-wins records, applied straight to the state table.
//!
//! A record folded from a local write carries a fresh version (this replica's clock
//! has just ticked past everything it has seen), so on the state table the merge rule
//! — "keep the greater version" — almost always takes it: one upsert per cell does
//! what staging the record and running the set-based rules ([`super::rules`]) would,
//! at a fraction of the cost (no stage rows to write and delete, no joins; the cells
//! of a dozen writes go in one multi-row statement). Only when
//! a cell keeps an equal or newer version (this replica's clock ran behind another's)
//! does the caller fall back to the staged rules, which also rebuild the rows that
//! lost. Counters, sets, text and custom columns always take the staged rules.

use std::collections::HashMap;

use rusqlite::ToSql;

use super::policy::{Policy, TableSpec};
use super::record::{decode_value, version, Record};
use crate::error::Result;
use crate::remote::Value;
use crate::store::sql_error;

/// The last-writer-wins rule for one cell, as in [`super::rules`]: `-` is the row's
/// presence (1 live, 0 deleted).
const UPSERT_CELLS: (&str, &str) = (
    "INSERT INTO _es_cv (tbl, pk, col, val, ver) VALUES",
    "ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, ver = excluded.ver WHERE excluded.ver > _es_cv.ver",
);

/// Statement sizes (rows per statement), largest first: few distinct statements to
/// keep prepared, and a dozen local writes' cells per statement instead of one each.
const BATCH_SIZES: [usize; 4] = [64, 16, 4, 1];

/// Runs `head VALUES (…), (…) … tail` over `args`, `width` values a row, a batch of
/// rows per statement; returns the rows changed.
pub fn insert_rows(
    conn: &rusqlite::Connection,
    (head, tail): (&str, &str),
    width: usize,
    args: &[&dyn ToSql],
) -> Result<usize> {
    let row = format!("({})", vec!["?"; width].join(", "));
    let mut changed = 0;
    let mut rest = args;
    for size in BATCH_SIZES {
        if rest.len() < size * width {
            continue;
        }
        let sql = format!("{head} {} {tail}", vec![row.as_str(); size].join(", "));
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
        while rest.len() >= size * width {
            let (batch, more) = rest.split_at(size * width);
            changed += stmt.execute(batch).map_err(sql_error)?;
            rest = more;
        }
    }
    Ok(changed)
}

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
    let keys: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.pk.to_string(), version(r.hlc, site)))
        .collect();
    let mut cells: Vec<(&str, &str, &str, Value, &str)> = Vec::with_capacity(records.len() * 6);
    for (r, (pk, ver)) in records.iter().zip(&keys) {
        if r.op != 'u' {
            cells.push((&r.table, pk, "-", Value::Integer(i64::from(r.op == 'i')), ver));
        }
        for (col, v) in r.data.as_object().into_iter().flatten() {
            cells.push((&r.table, pk, col, decode_value(v), ver));
        }
    }
    // A cell that keeps its version changes nothing and is not counted.
    let args: Vec<&dyn ToSql> = cells
        .iter()
        .flat_map(|(t, pk, col, val, ver)| [t as &dyn ToSql, pk, col, val, ver])
        .collect();
    let taken = insert_rows(conn, UPSERT_CELLS, 5, &args)?;
    Ok(taken == cells.len())
}
