//! This replica's own records, applied to the row state without going through JSON.
//!
//! Folding 2,000 local writes must not cost what merging 2,000 pulled records does: the
//! records' values are already decoded in Rust, and they almost always win (see
//! [`super::rows::own_upsert`]). So they are bound straight into multi-row upserts that
//! take a row only when all of it wins. When some row does not — this replica's clock
//! ran behind another's — the caller merges the batch again through the general path,
//! which settles each column and rebuilds the rows (re-applying what was applied here
//! changes nothing).

use std::collections::HashMap;

use rusqlite::ToSql;

use super::multirow::insert_rows_as;
use super::policy::{Policy, TableSpec};
use super::record::{version, Record};
use super::rows;
use crate::error::Result;
use crate::remote::Value;

/// Whether the fast path can take `records`: inserts, updates, deletes and custom
/// values of known tables without set columns (whose rows must be rebuilt after every
/// write, to keep sets normalized).
pub fn eligible(tables: &HashMap<String, TableSpec>, records: &[&Record]) -> bool {
    records.iter().all(|r| {
        tables
            .get(&r.table)
            .is_some_and(|spec| !spec.columns.iter().any(|c| c.policy == Policy::Set))
            && matches!(r.op, 'i' | 'u' | 'd' | 'x')
    })
}

/// Applies `records` (all [`eligible`], written by `site`) to the shadows. `Ok(false)`
/// when some row was not taken whole.
pub fn apply(
    conn: &rusqlite::Connection,
    tables: &HashMap<String, TableSpec>,
    records: &[&Record],
    site: &str,
) -> Result<bool> {
    let mut by_table: Vec<(&TableSpec, Vec<&Record>)> = Vec::new();
    for r in records {
        let spec = &tables[&r.table];
        match by_table.iter_mut().find(|(s, _)| s.name == spec.name) {
            Some((_, v)) => v.push(r),
            None => by_table.push((spec, vec![r])),
        }
    }
    let mut all_taken = true;
    for (spec, recs) in by_table {
        let (head, row, tail, width) = rows::own_upsert(spec);
        let cols: Vec<(&str, Policy)> = spec.data_columns().map(|(_, c)| (c.name.as_str(), c.policy)).collect();
        let mut vals: Vec<Value> = Vec::with_capacity(recs.len() * width);
        for r in &recs {
            let ver = version(r.hlc, site);
            vals.push(Value::Text(r.pk.to_string()));
            if matches!(r.op, 'i' | 'd') {
                vals.push(Value::Text(ver.clone()));
                vals.push(Value::Integer(i64::from(r.op == 'i')));
            } else {
                vals.extend([Value::Null, Value::Null]);
            }
            let data = r.data.as_object();
            for (c, policy) in &cols {
                match data.and_then(|d| d.get(*c)) {
                    Some(v) => {
                        vals.push(rows::shadow_value(*policy, v));
                        vals.push(Value::Text(ver.clone()));
                    }
                    None => vals.extend([Value::Null, Value::Null]),
                }
            }
        }
        let args: Vec<&dyn ToSql> = vals.iter().map(|v| v as &dyn ToSql).collect();
        let taken = insert_rows_as(conn, (&head, &tail), &row, width, &args)?;
        all_taken &= taken == recs.len();
    }
    Ok(all_taken)
}
