//! The gateway's view of the server: which of the rules' tables the server replicates
//! (their specs, read from `_es_tables` exactly as replicas declared them), the
//! gateway's own tables, and the rules checked against the real schema.
//!
//! Untrusted replicas never create tables: a table syncs through the gateway once a
//! trusted process (a replica syncing straight to sqld, or a migration) has created and
//! replicated it on the server.

use std::collections::HashMap;

use rusqlite::Connection;
use serde_json::Value as Json;

use super::protocol::TableInfo;
use super::rules::{Op, SyncRules};
use super::view::{aliased_view, bind, quote};
use crate::error::{Error, Result};
use crate::sql::{ResultSet, Statement, Value};
use crate::sync::{rules as sync_rules, Policy, TableSpec};

/// The gateway's tables on the server: refused rows of the push in progress (emptied
/// before it commits), the site ids bound to users, the audit trail of refusals, and the
/// text cells' merged documents ([`super::text`]).
pub const GATEWAY_DDL: [&str; 5] = [
    super::text::DDL,
    "CREATE TABLE IF NOT EXISTS _es_gw_refused (ri INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk TEXT NOT NULL, why TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS _es_gw_refused_row ON _es_gw_refused (tbl, pk)",
    "CREATE TABLE IF NOT EXISTS _es_gw_site (site TEXT PRIMARY KEY, sub TEXT NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _es_gw_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, \
     sub TEXT NOT NULL, site TEXT NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL, op TEXT NOT NULL, \
     code TEXT NOT NULL, reason TEXT NOT NULL)",
];

/// Creates the sync engine's server tables (if no replica has yet), the change log's
/// epoch, and the gateway's tables.
pub fn setup() -> Vec<Statement> {
    sync_rules::SERVER_DDL
        .split(';')
        .chain(sync_rules::STATE_DDL.split(';'))
        .chain([crate::sync::COLUMNS_DDL, sync_rules::EPOCH_INIT])
        .filter(|s| !s.trim().is_empty())
        .chain(GATEWAY_DDL)
        .map(Statement::new)
        .collect()
}

/// The SQL list of the rules' table names.
fn table_list(rules: &SyncRules) -> String {
    let names: Vec<String> = rules.tables().map(|(t, _)| quote(t)).collect();
    if names.is_empty() {
        "NULL".into()
    } else {
        names.join(", ")
    }
}

/// The added columns' definitions of the rules' tables (`tbl, col, def`).
pub fn load_defs(rules: &SyncRules) -> Statement {
    Statement::new(format!(
        "SELECT tbl, col, def FROM _es_columns WHERE tbl IN ({}) ORDER BY tbl, col",
        table_list(rules)
    ))
}

/// One row: the change log's epoch, and the declarations of the rules' tables as one
/// text (what [`Loaded::version`] digests). Read at every pull page.
pub fn facts(rules: &SyncRules) -> Statement {
    Statement::new(format!(
        "SELECT (SELECT id FROM _es_log WHERE seq = 0), \
         (SELECT group_concat(x, char(30)) FROM (SELECT tbl || char(31) || pol || char(31) || create_sql AS x \
         FROM _es_tables WHERE tbl IN ({}) ORDER BY tbl))",
        table_list(rules)
    ))
}

/// The epoch and the declarations' digest from [`facts`]'s answer.
pub fn read_facts(rs: &ResultSet) -> (Option<String>, String) {
    let row = rs.rows.first();
    let text = |i: usize| match row.and_then(|r| r.get(i)) {
        Some(Value::Text(t)) => Some(t.clone()),
        _ => None,
    };
    let decl = text(1).unwrap_or_default();
    (text(0), super::digest::digest(std::iter::once(decl.as_str())))
}

/// Reads the rules' tables as the server replicates them.
pub fn load(rules: &SyncRules) -> Statement {
    Statement::new(format!(
        "SELECT tbl, pol, create_sql FROM _es_tables WHERE tbl IN ({}) ORDER BY tbl",
        table_list(rules)
    ))
}

/// The tables the gateway serves.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub specs: HashMap<String, TableSpec>,
    pub info: Vec<TableInfo>,
    /// Rules' tables the server does not replicate (yet).
    pub missing: Vec<String>,
    /// The change log's epoch and the digest of the tables' declarations when they
    /// were read ([`facts`]).
    pub epoch: Option<String>,
    pub version: String,
}

/// Builds the specs from [`load`]'s result: each table's `CREATE TABLE` is run in an
/// in-memory SQLite and read back by the same introspection replicas use, so the
/// gateway's spec is exactly a replica's. `defs`: [`load_defs`]'s result.
pub fn specs(rules: &SyncRules, rs: &ResultSet, defs: &ResultSet) -> Result<Loaded> {
    let mut out = Loaded::default();
    for r in &rs.rows {
        let (Some(Value::Text(tbl)), Some(Value::Text(pol)), Some(Value::Text(create))) =
            (r.first(), r.get(1), r.get(2))
        else {
            continue;
        };
        let conn = Connection::open_in_memory().map_err(crate::store::sql_error)?;
        conn.execute_batch(create)
            .map_err(|e| Error::Schema(format!("the server's CREATE TABLE of {tbl} does not run: {e}")))?;
        let pj: Json = serde_json::from_str(pol).map_err(|e| Error::Schema(format!("bad policies of {tbl}: {e}")))?;
        let mut policies = Vec::new();
        for (c, p) in pj.as_object().into_iter().flatten() {
            policies.push((c.clone(), Policy::parse(p.as_str().unwrap_or("lww"))?));
        }
        let spec = TableSpec::introspect(&conn, tbl, &policies)?;
        let defs = defs
            .rows
            .iter()
            .filter_map(|r| match (r.first(), r.get(1), r.get(2)) {
                (Some(Value::Text(t)), Some(Value::Text(c)), Some(Value::Text(d))) if t == tbl => {
                    Some((c.clone(), d.clone()))
                }
                _ => None,
            })
            .collect();
        out.info.push(TableInfo {
            name: tbl.clone(),
            policies: spec.policies_json(),
            columns: spec.shape(),
            defs,
        });
        out.specs.insert(tbl.clone(), spec);
    }
    out.missing = rules
        .tables()
        .map(|(t, _)| t.to_string())
        .filter(|t| !out.specs.contains_key(t))
        .collect();
    Ok(out)
}

/// Every column a rule's `columns` names must be a non-key column of its table.
pub fn check_columns(rules: &SyncRules, loaded: &Loaded) -> Result<()> {
    for (t, tr) in rules.tables() {
        let Some(spec) = loaded.specs.get(t) else { continue };
        for c in tr.columns.iter().flatten() {
            if !spec.columns.iter().any(|x| &x.name == c && x.pk == 0) {
                return Err(Error::Config(format!(
                    "SYNC_RULES: {t}.columns names {c}, which is not a non-key column of {t}"
                )));
            }
        }
    }
    Ok(())
}

/// One statement per rule that compiles it against the real schema without reading
/// a row (`LIMIT 0`), named `table.op` for the error.
pub fn rule_checks(rules: &SyncRules, loaded: &Loaded, args: &[(String, Value)]) -> Vec<(String, Statement)> {
    let mut out = Vec::new();
    for (t, tr) in rules.tables() {
        let Some(spec) = loaded.specs.get(t) else { continue };
        for op in [Op::Read, Op::Insert, Op::Update, Op::Delete] {
            if tr.predicate(op).is_none() {
                continue;
            }
            let sql = format!(
                "SELECT 1 FROM {} WHERE {} LIMIT 0",
                aliased_view(spec),
                tr.condition(op)
            );
            out.push((format!("{t}.{}", op.as_str()), bind(sql, args)));
        }
    }
    out
}
