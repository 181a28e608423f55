//! The merge rules, written once in SQL and run in two places: on the server inside the
//! push batch, and in the local database when pulled changes are applied.
//!
//! A chunk of records is first staged in `_es_stage`, one row per record and one per
//! (record, column), parsed once — on the server from the chunk's JSON by one
//! `json_each` statement, locally straight from Rust. Every rule then reads plain
//! columns. Each rule is idempotent, commutative and associative — a retried or
//! reordered chunk changes nothing — which is what makes "at least once" delivery exact:
//!
//! | state table | rule |
//! |---|---|
//! | `_es_cv` (column values) | keep the value with the greatest version; `-` is the row's presence |
//! | `_es_ctr` (counters) | per writer site, keep the greatest cumulative increments and decrements |
//! | `_es_set` (sets) | one row per (element, tag); adding a tag never revives a removed one |
//! | `_es_log` (server) | one row per record id; a duplicate is ignored |
//!
//! Afterwards the touched rows of each user table are rebuilt from the state tables
//! (`materialize`), so ordinary SQL readers — `@libsql/client` on the server, the app
//! locally — see plain rows.

use super::policy::{Policy, TableSpec};

/// The metadata tables, on the server and in every replica.
pub const STATE_DDL: &str = "
CREATE TABLE IF NOT EXISTS _es_cv (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, val, ver TEXT NOT NULL,
  PRIMARY KEY (tbl, pk, col)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _es_ctr (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, site TEXT NOT NULL,
  p INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tbl, pk, col, site)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _es_set (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, elem TEXT NOT NULL,
  tag TEXT NOT NULL, alive INTEGER NOT NULL, PRIMARY KEY (tbl, pk, col, elem, tag)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _es_stage (hlc INTEGER NOT NULL, tbl TEXT NOT NULL, pk TEXT NOT NULL, op TEXT NOT NULL,
  col TEXT, pol TEXT, typ TEXT, val, jv TEXT, ver TEXT NOT NULL, base TEXT, xcol TEXT, rec TEXT, site TEXT NOT NULL);
";

/// Only on the server: the change log that replicas pull from, and the list of
/// replicated tables with their policies.
pub const SERVER_DDL: &str = "
CREATE TABLE IF NOT EXISTS _es_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, site TEXT NOT NULL, rec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _es_tables (tbl TEXT PRIMARY KEY, pol TEXT NOT NULL, create_sql TEXT NOT NULL);
";

/// Where the rules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// In the push batch: custom columns go through compare-and-set, records are logged.
    Server,
    /// In a replica: custom values the server accepted are taken by version.
    Local,
}

const UPSERT_NEWER: &str =
    "ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, ver = excluded.ver WHERE excluded.ver > _es_cv.ver";

/// Server side: parses a chunk (`?1` records JSON, `?2` the writer's site, `?3` the
/// column policies JSON) into `_es_stage`. The local side stages from Rust instead
/// (`Replica::stage`), with the same rows.
pub const STAGE: &str = "WITH x AS MATERIALIZED (SELECT r.value ->> 0 AS hlc, r.value ->> 1 AS tbl, json(r.value -> 2) AS pk, \
     r.value ->> 3 AS op, r.value -> 4 AS data, r.value ->> 5 AS base, r.value AS rec, printf('%016x', r.value ->> 0) || ?2 AS ver \
     FROM json_each(?1) r) \
   INSERT INTO _es_stage (hlc, tbl, pk, op, col, pol, typ, val, jv, ver, base, xcol, rec, site) \
   SELECT hlc, tbl, pk, op, NULL, NULL, NULL, NULL, NULL, ver, base, \
     CASE op WHEN 'x' THEN (SELECT key FROM json_each(x.data) LIMIT 1) END, rec, ?2 FROM x \
   UNION ALL \
   SELECT x.hlc, x.tbl, x.pk, x.op, c.key, coalesce(json_extract(?3, '$.' || x.tbl || '.' || c.key), 'lww'), c.type, \
     CASE c.type WHEN 'object' THEN CASE WHEN c.value ->> 'b' IS NOT NULL THEN unhex(c.value ->> 'b') \
       WHEN c.value ->> 'r' = 'inf' THEN 9e999 WHEN c.value ->> 'r' = '-inf' THEN -9e999 ELSE c.value ->> 't' END \
       WHEN 'true' THEN 1 WHEN 'false' THEN 0 WHEN 'array' THEN NULL ELSE c.value END, \
     CASE WHEN c.type IN ('object', 'array') THEN c.value END, x.ver, x.base, NULL, NULL, ?2 \
   FROM x, json_each(x.data) c WHERE c.key IS NOT NULL";

/// Empties the stage (the last statement of every chunk).
pub const UNSTAGE: &str = "DELETE FROM _es_stage";

/// The merge statements for one staged chunk, in order, before materializing.
pub fn merge_sql(side: Side) -> Vec<String> {
    let cols = "FROM _es_stage s WHERE s.col IS NOT NULL";
    let recs = "FROM _es_stage s WHERE s.col IS NULL";
    let mut out = Vec::new();
    if side == Side::Server {
        // Custom columns: compare-and-set against the version the writer saw.
        out.push(format!(
            "UPDATE _es_cv SET val = s.val, ver = s.ver {cols} AND s.op = 'x' \
             AND _es_cv.tbl = s.tbl AND _es_cv.pk = s.pk AND _es_cv.col = s.col AND _es_cv.ver = s.base"
        ));
        out.push(format!(
            "INSERT INTO _es_cv (tbl, pk, col, val, ver) SELECT s.tbl, s.pk, s.col, s.val, s.ver {cols} \
             AND s.op = 'x' AND s.base IS NULL ON CONFLICT DO NOTHING"
        ));
        // The log: every record once; a custom record only if its value won.
        out.push(format!(
            "INSERT INTO _es_log (id, site, rec) SELECT s.ver || s.op || coalesce(s.xcol, ''), s.site, s.rec {recs} \
             AND (s.op <> 'x' OR (SELECT ver FROM _es_cv WHERE tbl = s.tbl AND pk = s.pk AND col = s.xcol) = s.ver) \
             ON CONFLICT (id) DO NOTHING"
        ));
    }
    // Row presence: inserts and deletes, last writer wins (see the README's delete rule).
    out.push(format!(
        "INSERT INTO _es_cv (tbl, pk, col, val, ver) SELECT s.tbl, s.pk, '-', s.op <> 'd', s.ver {recs} \
         AND s.op IN ('i', 'd') {UPSERT_NEWER}"
    ));
    let (ops, lww) = match side {
        Side::Server => ("('i', 'u')", "('lww', 'text')"),
        Side::Local => ("('i', 'u', 'x')", "('lww', 'text', 'custom')"),
    };
    out.push(format!(
        "INSERT INTO _es_cv (tbl, pk, col, val, ver) SELECT s.tbl, s.pk, s.col, s.val, s.ver {cols} \
         AND s.op IN {ops} AND s.pol IN {lww} {UPSERT_NEWER}"
    ));
    out.push(format!(
        "INSERT INTO _es_ctr (tbl, pk, col, site, p, n) SELECT s.tbl, s.pk, s.col, s.site, s.jv ->> 0, s.jv ->> 1 \
         {cols} AND s.op IN ('i', 'u') AND s.pol = 'counter' AND s.typ = 'array' \
         ON CONFLICT DO UPDATE SET p = max(p, excluded.p), n = max(n, excluded.n)"
    ));
    out.push(
        "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) SELECT s.tbl, s.pk, s.col, \
         CASE WHEN e.type IN ('object', 'array') THEN json(e.value) ELSE json_quote(e.value) END, s.ver, 1 \
         FROM _es_stage s, json_each(s.jv, '$.\"+\"') e WHERE s.col IS NOT NULL AND s.op IN ('i', 'u') \
         AND s.pol = 'set' AND s.typ = 'object' ON CONFLICT DO NOTHING"
            .to_string(),
    );
    out.push(
        "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) SELECT s.tbl, s.pk, s.col, e.value -> 0, e.value ->> 1, 0 \
         FROM _es_stage s, json_each(s.jv, '$.\"-\"') e WHERE s.col IS NOT NULL AND s.op IN ('i', 'u') \
         AND s.pol = 'set' AND s.typ = 'object' ON CONFLICT DO UPDATE SET alive = 0"
        .to_string(),
    );
    out
}

/// After a server push: the custom values that lost their compare-and-set, with the
/// server's current value and version (`hlc, tbl, pk, col, val, ver`).
///
/// A custom record whose id is in the log was accepted — now, or by an earlier attempt
/// whose answer was lost — and is never reported (resolving it again would apply the
/// writer's change twice).
pub fn conflicts_sql() -> &'static str {
    "SELECT s.hlc, s.tbl, s.pk, s.col, cv.val, cv.ver FROM _es_stage s \
     JOIN _es_cv cv ON cv.tbl = s.tbl AND cv.pk = s.pk AND cv.col = s.col WHERE s.col IS NOT NULL AND s.op = 'x' \
     AND cv.ver <> s.ver AND NOT EXISTS (SELECT 1 FROM _es_log WHERE id = s.ver || 'x' || s.col)"
}

/// The SQL expression for one column's merged value, for the row whose key is `k.pk`.
pub fn column_value_sql(table: &str, col: &str, policy: Policy) -> String {
    let cell = format!("tbl = '{table}' AND pk = k.pk AND col = '{col}'");
    match policy {
        Policy::Lww | Policy::Text | Policy::Custom => format!("(SELECT val FROM _es_cv WHERE {cell})"),
        Policy::Counter => format!("(SELECT coalesce(sum(p) - sum(n), 0) FROM _es_ctr WHERE {cell})"),
        Policy::Set => format!(
            "(SELECT json_group_array(json(elem)) FROM (SELECT DISTINCT elem FROM _es_set WHERE {cell} AND alive = 1 ORDER BY elem))"
        ),
    }
}

/// Rebuilds the rows of `spec` that the staged chunk touched: upserts the live ones
/// from the state tables, deletes the dead ones.
pub fn materialize_sql(spec: &TableSpec) -> [String; 2] {
    let t = &spec.name;
    let keys = format!("(SELECT DISTINCT pk FROM _es_stage WHERE tbl = '{t}' AND col IS NULL) k");
    let presence = format!("(SELECT val FROM _es_cv WHERE tbl = '{t}' AND pk = k.pk AND col = '-')");
    let pk_names: Vec<String> = spec
        .pk
        .iter()
        .map(|&i| format!("\"{}\"", spec.columns[i].name))
        .collect();
    let pk_exprs: Vec<String> = (0..spec.pk.len()).map(|j| format!("k.pk ->> {j}")).collect();
    let mut names = pk_names.clone();
    let mut exprs = pk_exprs.clone();
    let mut sets = Vec::new();
    for (_, c) in spec.data_columns() {
        names.push(format!("\"{}\"", c.name));
        exprs.push(column_value_sql(t, &c.name, c.policy));
        sets.push(format!("\"{0}\" = excluded.\"{0}\"", c.name));
    }
    let action = if sets.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", sets.join(", "))
    };
    [
        format!(
            "INSERT INTO \"{t}\" ({}) SELECT {} FROM {keys} WHERE {presence} = 1 ON CONFLICT ({}) {action}",
            names.join(", "),
            exprs.join(", "),
            pk_names.join(", "),
        ),
        format!(
            "DELETE FROM \"{t}\" WHERE ({}) IN (SELECT {} FROM {keys} WHERE coalesce({presence}, 0) = 0)",
            pk_names.join(", "),
            pk_exprs.join(", "),
        ),
    ]
}
