//! Reading the merge state of chosen rows — only those the user may read — for the
//! replica: after a refused push (to restore them), for rows entering the user's scope,
//! and page by page for a bootstrap.
//!
//! The rows are chosen by a `_es_k` common table expression (a column `pk`, canonical
//! key text); the read rule filters them into `_es_vis`; the statements then read what
//! the direct bootstrap reads ([`crate::sync::rows::dump_sql`], counters, sets, the
//! log's text updates), restricted to those keys.

use serde_json::Value as Json;

use super::protocol::TableState;
use super::rules::{Op, TableRules};
use super::view::{aliased_view, bind, quote};
use crate::error::{Error, Result};
use crate::sql::{ResultSet, Statement, Value};
use crate::sync::record::encode_value;
use crate::sync::{rows, Policy, TableSpec};

/// Where a table's state statements are in a batch.
#[derive(Debug, Clone)]
pub struct Steps {
    rows: usize,
    counters: Option<usize>,
    sets: Option<usize>,
    text: Option<usize>,
}

/// `_es_vis`: the keys of `_es_k` whose rows the user may read.
fn visible(spec: &TableSpec, tr: &TableRules) -> String {
    format!(
        "_es_vis AS MATERIALIZED (SELECT \"{t}\"._es_pk AS pk FROM {view} WHERE \"{t}\"._es_pk IN (SELECT pk FROM _es_k) AND {read})",
        t = spec.name,
        view = aliased_view(spec),
        read = tr.condition(Op::Read),
    )
}

/// Appends the statements reading the state of `keys` (a `_es_k AS …` CTE) to `stmts`.
pub fn push_reads(
    spec: &TableSpec,
    tr: &TableRules,
    keys: &str,
    args: &[(String, Value)],
    stmts: &mut Vec<Statement>,
) -> Steps {
    let with = format!("WITH {keys}, {}", visible(spec, tr));
    let t = quote(&spec.name);
    let mut add = |sql: String| {
        stmts.push(bind(sql, args));
        stmts.len() - 1
    };
    let has = |p: Policy| spec.columns.iter().any(|c| c.policy == p);
    Steps {
        rows: add(format!(
            "{with} {} WHERE pk IN (SELECT pk FROM _es_vis) ORDER BY pk",
            rows::dump_sql(spec)
        )),
        counters: has(Policy::Counter).then(|| {
            add(format!(
                "{with} SELECT pk, col, site, p, n FROM _es_ctr WHERE tbl = {t} AND pk IN (SELECT pk FROM _es_vis)"
            ))
        }),
        sets: has(Policy::Set).then(|| {
            add(format!(
                "{with} SELECT pk, col, elem, tag, alive FROM _es_set WHERE tbl = {t} AND pk IN (SELECT pk FROM _es_vis)"
            ))
        }),
        text: has(Policy::Text).then(|| {
            add(format!(
                "{with} SELECT site, rec FROM _es_log WHERE rec ->> 1 = {t} AND rec LIKE '%\"u\":%' \
                 AND json(rec -> 2) IN (SELECT pk FROM _es_vis) ORDER BY seq"
            ))
        }),
    }
}

fn values(rs: &ResultSet) -> Vec<Vec<Json>> {
    rs.rows.iter().map(|r| r.iter().map(encode_value).collect()).collect()
}

/// The state read by [`push_reads`], from the batch's results.
pub fn read(steps: &Steps, results: &[ResultSet]) -> Result<TableState> {
    let get = |i: usize| {
        results
            .get(i)
            .ok_or_else(|| Error::Protocol(format!("state read answered {} results", results.len())))
    };
    let mut out = TableState::default();
    for r in &get(steps.rows)?.rows {
        // pk, _pv, _live, then (value, version, ±∞ flag) per row column: Hrana's JSON
        // has no infinities, so they arrive as null and are put back from the flag.
        let mut row: Vec<Json> = r.iter().take(3).map(encode_value).collect();
        for cell in r.get(3..).unwrap_or_default().chunks(3) {
            let v = match cell.get(2) {
                Some(Value::Integer(1)) => Value::Real(f64::INFINITY),
                Some(Value::Integer(-1)) => Value::Real(f64::NEG_INFINITY),
                _ => cell[0].clone(),
            };
            row.push(encode_value(&v));
            row.push(encode_value(cell.get(1).unwrap_or(&Value::Null)));
        }
        out.rows.push(row);
    }
    if let Some(i) = steps.counters {
        out.counters = values(get(i)?);
    }
    if let Some(i) = steps.sets {
        out.sets = values(get(i)?);
    }
    if let Some(i) = steps.text {
        for r in &get(i)?.rows {
            let (Value::Text(site), Value::Text(rec)) = (&r[0], &r[1]) else {
                continue;
            };
            let rec: Json = serde_json::from_str(rec).map_err(|e| Error::Protocol(format!("bad log record: {e}")))?;
            out.text.push((site.clone(), rec));
        }
    }
    Ok(out)
}
