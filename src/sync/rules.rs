//! The merge rules, written once in SQL and run in two places: on the server inside the
//! push batch, and in the local database when pulled changes are applied.
//!
//! A chunk of records is first stored in `_es_push` (one row: the records as JSON, the
//! writer's site, the column policies); every rule then reads it with `json_each`, so
//! the chunk's bytes cross the network once however many rules read it. Each rule is
//! idempotent, commutative and associative — a retried or reordered chunk changes
//! nothing — which is what makes "at least once" delivery exact:
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
CREATE TABLE IF NOT EXISTS _es_push (k INTEGER PRIMARY KEY CHECK (k = 1), recs TEXT NOT NULL, site TEXT NOT NULL, pol TEXT NOT NULL);
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

const RECS: &str = "(SELECT recs FROM _es_push)";
const SITE: &str = "(SELECT site FROM _es_push)";
const VER: &str = "(printf('%016x', r.value ->> 0) || (SELECT site FROM _es_push))";
const TBL: &str = "(r.value ->> 1)";
const PK: &str = "json(r.value -> 2)";
const OP: &str = "(r.value ->> 3)";
const POLICY: &str = "coalesce(json_extract((SELECT pol FROM _es_push), '$.' || (r.value ->> 1) || '.' || c.key), 'lww')";
/// A record value back to its SQLite value (see `record::encode_value`).
const DECODE: &str = "(CASE c.type WHEN 'object' THEN CASE WHEN c.value ->> 'b' IS NOT NULL THEN unhex(c.value ->> 'b') \
     WHEN c.value ->> 'r' = 'inf' THEN 9e999 WHEN c.value ->> 'r' = '-inf' THEN -9e999 ELSE c.value ->> 't' END \
     WHEN 'true' THEN 1 WHEN 'false' THEN 0 ELSE c.value END)";
const UPSERT_NEWER: &str =
    "ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, ver = excluded.ver WHERE excluded.ver > _es_cv.ver";

fn cols_of_records() -> String {
    format!("FROM json_each({RECS}) r, json_each(r.value, '$[4]') c")
}

/// Stores a chunk for the rules to read: `[records JSON, site, policies JSON]`.
pub const STAGE: &str = "INSERT OR REPLACE INTO _es_push (k, recs, site, pol) VALUES (1, ?1, ?2, ?3)";
pub const UNSTAGE: &str = "DELETE FROM _es_push";

/// The merge statements for one chunk, in order, before materializing.
pub fn merge_sql(side: Side) -> Vec<String> {
    let from = cols_of_records();
    let mut out = Vec::new();
    if side == Side::Server {
        // Custom columns: compare-and-set against the version the writer saw.
        out.push(format!(
            "UPDATE _es_cv SET val = s.val, ver = s.ver FROM (SELECT {TBL} AS tbl, {PK} AS pk, c.key AS col, \
             {DECODE} AS val, {VER} AS ver, r.value ->> 5 AS base {from} WHERE {OP} = 'x') AS s \
             WHERE _es_cv.tbl = s.tbl AND _es_cv.pk = s.pk AND _es_cv.col = s.col AND _es_cv.ver = s.base"
        ));
        out.push(format!(
            "INSERT INTO _es_cv (tbl, pk, col, val, ver) SELECT {TBL}, {PK}, c.key, {DECODE}, {VER} {from} \
             WHERE {OP} = 'x' AND r.value ->> 5 IS NULL ON CONFLICT DO NOTHING"
        ));
        // The log: every record once; a custom record only if its value won.
        out.push(format!(
            "INSERT INTO _es_log (id, site, rec) SELECT {VER} || {OP} || CASE {OP} WHEN 'x' THEN \
             (SELECT key FROM json_each(r.value, '$[4]') LIMIT 1) ELSE '' END, {SITE}, json(r.value) \
             FROM json_each({RECS}) r WHERE {OP} <> 'x' OR (SELECT ver FROM _es_cv WHERE tbl = {TBL} AND pk = {PK} \
             AND col = (SELECT key FROM json_each(r.value, '$[4]') LIMIT 1)) = {VER} ON CONFLICT (id) DO NOTHING"
        ));
    }
    // Row presence: inserts and deletes, last writer wins (see the README's delete rule).
    out.push(format!(
        "INSERT INTO _es_cv (tbl, pk, col, val, ver) SELECT {TBL}, {PK}, '-', {OP} <> 'd', {VER} \
         FROM json_each({RECS}) r WHERE {OP} IN ('i', 'd') {UPSERT_NEWER}"
    ));
    let (ops, lww) = match side {
        Side::Server => ("('i', 'u')", "('lww', 'text')"),
        Side::Local => ("('i', 'u', 'x')", "('lww', 'text', 'custom')"),
    };
    out.push(format!(
        "INSERT INTO _es_cv (tbl, pk, col, val, ver) SELECT {TBL}, {PK}, c.key, {DECODE}, {VER} {from} \
         WHERE {OP} IN {ops} AND {POLICY} IN {lww} {UPSERT_NEWER}"
    ));
    out.push(format!(
        "INSERT INTO _es_ctr (tbl, pk, col, site, p, n) SELECT {TBL}, {PK}, c.key, {SITE}, c.value ->> 0, c.value ->> 1 \
         {from} WHERE {OP} IN ('i', 'u') AND {POLICY} = 'counter' AND c.type = 'array' \
         ON CONFLICT DO UPDATE SET p = max(p, excluded.p), n = max(n, excluded.n)"
    ));
    out.push(format!(
        "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) SELECT {TBL}, {PK}, c.key, \
         CASE WHEN e.type IN ('object', 'array') THEN json(e.value) ELSE json_quote(e.value) END, {VER}, 1 \
         {from}, json_each(c.value, '$.\"+\"') e WHERE {OP} IN ('i', 'u') AND {POLICY} = 'set' AND c.type = 'object' \
         ON CONFLICT DO NOTHING"
    ));
    out.push(format!(
        "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) SELECT {TBL}, {PK}, c.key, e.value -> 0, e.value ->> 1, 0 \
         {from}, json_each(c.value, '$.\"-\"') e WHERE {OP} IN ('i', 'u') AND {POLICY} = 'set' AND c.type = 'object' \
         ON CONFLICT DO UPDATE SET alive = 0"
    ));
    out
}

/// After a server push: the custom values that lost their compare-and-set, with the
/// server's current value and version (`hlc, tbl, pk, col, val, ver`).
pub fn conflicts_sql() -> String {
    let from = cols_of_records();
    format!(
        "SELECT r.value ->> 0, {TBL}, {PK}, c.key, cv.val, cv.ver {from} \
         JOIN _es_cv cv ON cv.tbl = {TBL} AND cv.pk = {PK} AND cv.col = c.key WHERE {OP} = 'x' AND cv.ver <> {VER}"
    )
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
    let keys = format!("(SELECT DISTINCT json(r.value -> 2) AS pk FROM json_each({RECS}) r WHERE r.value ->> 1 = '{t}') k");
    let presence = format!("(SELECT val FROM _es_cv WHERE tbl = '{t}' AND pk = k.pk AND col = '-')");
    let pk_names: Vec<String> = spec.pk.iter().map(|&i| format!("\"{}\"", spec.columns[i].name)).collect();
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
