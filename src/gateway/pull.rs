//! Pull, scope, rows and bootstrap through the gateway: everything a replica reads,
//! filtered by the read rules.
//!
//! - **pull**: a page of the log after the cursor, keeping the records of rows the user
//!   may read *now* (the rule over the row's merged state; a deleted row keeps its last
//!   values, so its delete reaches exactly those who could read it). The cursor moves
//!   past the records left out too.
//! - **scope**: rows enter or leave a user's reach without a record of their own (the
//!   user joins or leaves a room; another user gives them a row). The replica sends a
//!   digest ([`super::digest`]) of the keys it holds per table; where it differs from
//!   the digest of the keys the user may read now, the gateway answers those keys, and
//!   the replica drops the rows it holds beyond them and fetches (**rows**) the ones it
//!   lacks.
//! - **bootstrap**: the readable rows of a table, page by page in key order.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::protocol::{BootstrapResponse, PullResponse, ScopeResponse, State};
use super::rules::{Op, SyncRules};
use super::state;
use super::view::{aliased_view, bind, quote};
use crate::error::{Error, Result};
use crate::sql::{ResultSet, Statement, Value};
use crate::sync::TableSpec;

const TOP: &str = "SELECT coalesce(max(seq), 0) FROM _es_log";

fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Integer(i)) => *i,
        _ => 0,
    }
}

fn first(results: &[ResultSet], i: usize) -> Result<&ResultSet> {
    results
        .get(i)
        .ok_or_else(|| Error::Protocol(format!("the gateway's read answered {} results", results.len())))
}

/// How many log records a pull page looks at, per record it may return: a user who may
/// read a tenth of the log still gets full pages in one request.
pub const SCAN_FACTOR: usize = 10;
/// The most log records one pull page looks at.
pub const MAX_SCAN: usize = 50_000;

/// The statements of a pull page: the readable records among the next
/// `limit × SCAN_FACTOR` of the log (at most `limit` of them), the extent of what was
/// looked at, the top; then, if `digests`, the readable keys per table (for the
/// digests a final page carries).
pub fn pull_plan(
    rules: &SyncRules,
    specs: &HashMap<String, TableSpec>,
    args: &[(String, Value)],
    cursor: i64,
    limit: usize,
    only: Option<&[String]>,
    digests: bool,
) -> (Vec<Statement>, Vec<String>) {
    let mut arms = Vec::new();
    let mut tables = Vec::new();
    for (t, tr) in rules.tables() {
        let Some(spec) = specs.get(t) else { continue };
        if only.is_some_and(|o| !o.iter().any(|x| x == t)) {
            continue;
        }
        tables.push(t.to_string());
        arms.push(format!(
            "(p._es_rec ->> 1 = {tq} AND EXISTS (SELECT 1 FROM {view} WHERE \"{t}\"._es_pk = json(p._es_rec -> 2) AND {read}))",
            tq = quote(t),
            view = aliased_view(spec),
            read = tr.condition(Op::Read),
        ));
    }
    let readable = if arms.is_empty() {
        "0".to_string()
    } else {
        arms.join(" OR ")
    };
    let mut a = args.to_vec();
    a.push((":_es_cursor".into(), Value::Integer(cursor)));
    a.push((":_es_limit".into(), Value::Integer(limit as i64)));
    a.push((":_es_scan".into(), Value::Integer(scan_of(limit) as i64)));
    a.push((":_es_bytes".into(), Value::Integer(crate::sync::PAGE_BYTES)));
    let mut stmts = vec![
        // As a direct pull's page ([`crate::sync::PAGE_BYTES`]): cut where the bytes
        // before a record pass the budget (the first record always comes), with how
        // many records the count alone would have given.
        bind(
            format!(
                "WITH _es_p AS MATERIALIZED (SELECT seq AS _es_seq, site AS _es_site, rec AS _es_rec FROM _es_log \
                 WHERE seq > :_es_cursor ORDER BY seq LIMIT :_es_scan), \
                 _es_r AS MATERIALIZED (SELECT p._es_seq, p._es_site, p._es_rec FROM _es_p p \
                 WHERE p._es_site <> :_es_site AND ({readable}) ORDER BY p._es_seq LIMIT :_es_limit) \
                 SELECT _es_seq, _es_site, _es_rec, _es_asked FROM (SELECT r.*, count(*) OVER () AS _es_asked, \
                 sum(octet_length(r._es_rec)) OVER (ORDER BY r._es_seq ROWS UNBOUNDED PRECEDING) \
                 - octet_length(r._es_rec) AS _es_before FROM _es_r r) WHERE _es_before <= :_es_bytes ORDER BY _es_seq"
            ),
            &a,
        ),
        bind(
            "SELECT coalesce(max(seq), :_es_cursor), count(*) FROM (SELECT seq FROM _es_log WHERE seq > :_es_cursor \
             ORDER BY seq LIMIT :_es_scan)"
                .into(),
            &a,
        ),
        Statement::new(TOP),
    ];
    if digests {
        let names: Vec<&str> = tables.iter().map(String::as_str).collect();
        let mut keys = scope_plan(rules, specs, args, &names);
        keys.pop(); // its TOP: the page has one
        stmts.extend(keys);
    } else {
        tables.clear();
    }
    (stmts, tables)
}

fn scan_of(limit: usize) -> usize {
    limit.saturating_mul(SCAN_FACTOR).clamp(limit, MAX_SCAN.max(limit))
}

/// The page from [`pull_plan`]'s results; `tables` are the tables whose keys follow
/// (their digests go with a final page).
pub fn pull_finish(results: &[ResultSet], cursor: i64, limit: usize, tables: &[String]) -> Result<PullResponse> {
    let page = first(results, 0)?;
    let extent = first(results, 1)?.rows.first().cloned().unwrap_or_default();
    let top = int(first(results, 2)?.rows.first().and_then(|r| r.first()));
    let (returned, scanned) = (page.rows.len(), int(extent.get(1)) as usize);
    let asked = page.rows.first().map(|r| int(r.get(3)) as usize).unwrap_or(0);
    let (to, more) = if returned >= limit || returned < asked {
        // Full, or cut by bytes: the next page starts after the last record returned.
        (int(page.rows.last().and_then(|r| r.first())), true)
    } else if scanned >= scan_of(limit) {
        (int(extent.first()), true)
    } else {
        (top.max(cursor), false)
    };
    let mut records = Vec::with_capacity(page.rows.len());
    for r in &page.rows {
        let (Value::Text(site), Value::Text(rec)) = (&r[1], &r[2]) else {
            continue;
        };
        let rec: Json = serde_json::from_str(rec).map_err(|e| Error::Protocol(format!("bad log record: {e}")))?;
        records.push((int(r.first()), site.clone(), rec));
    }
    let digests = if more || tables.is_empty() {
        None
    } else {
        let mut d = BTreeMap::new();
        for (i, t) in tables.iter().enumerate() {
            let keys = first(results, 3 + i)?.rows.iter().filter_map(|r| match r.first() {
                Some(Value::Text(k)) => Some(k.as_str()),
                _ => None,
            });
            d.insert(t.clone(), super::digest::digest(keys));
        }
        Some(d)
    };
    Ok(PullResponse {
        records,
        cursor: to,
        more,
        digests,
        ..Default::default()
    })
}

/// The statements of a scope check: per table, the keys of the live rows the user may
/// read; then the top of the log.
pub fn scope_plan(
    rules: &SyncRules,
    specs: &HashMap<String, TableSpec>,
    args: &[(String, Value)],
    tables: &[&str],
) -> Vec<Statement> {
    let mut out = Vec::new();
    for t in tables {
        let (Some(spec), Some(tr)) = (specs.get(*t), rules.table(t)) else {
            continue;
        };
        out.push(bind(
            format!(
                "SELECT \"{t}\"._es_pk FROM {} WHERE \"{t}\"._es_live = 1 AND {}",
                aliased_view(spec),
                tr.condition(Op::Read)
            ),
            args,
        ));
    }
    out.push(Statement::new(TOP));
    out
}

/// Compares the replica's digests with the readable sets.
pub fn scope_finish(
    results: &[ResultSet],
    tables: &[&str],
    digests: &BTreeMap<String, String>,
    cursor: i64,
) -> Result<ScopeResponse> {
    let top = int(first(results, results.len().saturating_sub(1))?
        .rows
        .first()
        .and_then(|r| r.first()));
    if top > cursor {
        return Ok(ScopeResponse {
            stale: true,
            tables: BTreeMap::new(),
        });
    }
    let mut out = ScopeResponse::default();
    for (i, t) in tables.iter().enumerate() {
        let keys: Vec<String> = first(results, i)?
            .rows
            .iter()
            .filter_map(|r| match r.first() {
                Some(Value::Text(k)) => Some(k.clone()),
                _ => None,
            })
            .collect();
        let d = super::digest::digest(keys.iter().map(String::as_str));
        if digests.get(*t) != Some(&d) {
            out.tables.insert(t.to_string(), keys);
        }
    }
    Ok(out)
}

/// The statements reading the state of the readable rows among `keys`, per table.
pub fn rows_plan(
    rules: &SyncRules,
    specs: &HashMap<String, TableSpec>,
    args: &[(String, Value)],
    keys: &BTreeMap<String, Vec<Json>>,
) -> (Vec<Statement>, Vec<(String, state::Steps)>) {
    let mut stmts = Vec::new();
    let mut steps = Vec::new();
    for (t, pks) in keys {
        let (Some(spec), Some(tr)) = (specs.get(t), rules.table(t)) else {
            continue;
        };
        let mut a = args.to_vec();
        a.push((":_es_keys".into(), Value::Text(Json::Array(pks.clone()).to_string())));
        let k = "_es_k AS MATERIALIZED (SELECT DISTINCT json(value) AS pk FROM json_each(:_es_keys) WHERE json_type(value) = 'array')";
        steps.push((t.clone(), state::push_reads(spec, tr, k, &a, &mut stmts)));
    }
    (stmts, steps)
}

pub fn rows_finish(
    results: &[ResultSet],
    steps: &[(String, state::Steps)],
    keys: &BTreeMap<String, Vec<Json>>,
) -> Result<State> {
    let mut out = State::default();
    for (t, s) in steps {
        let ts = state::read(s, results)?;
        let found: Vec<&str> = ts
            .rows
            .iter()
            .filter_map(|r| r.first().and_then(Json::as_str))
            .collect();
        let missing: Vec<Json> = keys
            .get(t)
            .into_iter()
            .flatten()
            .filter(|pk| !found.contains(&pk.to_string().as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            out.missing.insert(t.clone(), missing);
        }
        out.tables.insert(t.clone(), ts);
    }
    Ok(out)
}

/// One bootstrap page of `spec`: the next `limit` readable live rows after `after`.
pub fn bootstrap_plan(
    spec: &TableSpec,
    rules: &SyncRules,
    args: &[(String, Value)],
    after: &str,
    limit: usize,
) -> Option<(Vec<Statement>, state::Steps)> {
    let tr = rules.table(&spec.name)?;
    let t = &spec.name;
    let mut a = args.to_vec();
    a.push((":_es_after".into(), Value::from(after)));
    a.push((":_es_limit".into(), Value::Integer(limit as i64)));
    a.push((":_es_bytes".into(), Value::Integer(crate::sync::PAGE_BYTES)));
    // The page is cut by bytes as a direct bootstrap's is (the shadow row's key and
    // values; the first row always comes); `_es_k0` is the page by count alone.
    let mut bytes = "octet_length(s.pk)".to_string();
    for c in crate::sync::rows::row_columns(spec) {
        bytes.push_str(&format!(" + coalesce(octet_length(s.c_{c}), 0)"));
    }
    let keys = format!(
        "_es_k0 AS MATERIALIZED (SELECT \"{t}\"._es_pk AS pk FROM {} WHERE \"{t}\"._es_live = 1 AND \"{t}\"._es_pk > :_es_after \
         AND {} ORDER BY \"{t}\"._es_pk LIMIT :_es_limit), \
         _es_k AS MATERIALIZED (SELECT pk FROM (SELECT pk, sum(b) OVER (ORDER BY pk ROWS UNBOUNDED PRECEDING) - b AS before \
         FROM (SELECT k0.pk AS pk, (SELECT {bytes} FROM {} s WHERE s.pk = k0.pk) AS b FROM _es_k0 k0)) \
         WHERE before <= :_es_bytes)",
        aliased_view(spec),
        tr.condition(Op::Read),
        crate::sync::rows::shadow(t),
    );
    let mut stmts = vec![
        Statement::new(TOP),
        bind(
            format!("WITH {keys} SELECT (SELECT count(*) FROM _es_k0), (SELECT count(*) FROM _es_k)"),
            &a,
        ),
    ];
    let steps = state::push_reads(spec, tr, &keys, &a, &mut stmts);
    Some((stmts, steps))
}

pub fn bootstrap_finish(
    table: &str,
    results: &[ResultSet],
    steps: &state::Steps,
    limit: usize,
) -> Result<BootstrapResponse> {
    let cursor = int(first(results, 0)?.rows.first().and_then(|r| r.first()));
    let counts = first(results, 1)?.rows.first().cloned().unwrap_or_default();
    let (by_count, taken) = (int(counts.first()) as usize, int(counts.get(1)) as usize);
    let ts = state::read(steps, results)?;
    // Full by count, or cut by bytes: more may follow.
    let after = if by_count >= limit || taken < by_count {
        ts.rows
            .last()
            .and_then(|r| r.first())
            .and_then(Json::as_str)
            .map(str::to_string)
    } else {
        None
    };
    let mut state = State::default();
    state.tables.insert(table.to_string(), ts);
    Ok(BootstrapResponse { state, cursor, after })
}
