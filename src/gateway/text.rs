//! Text columns through the gateway: the server's column is the merged document's text.
//!
//! A text edit travels as `{"t": rendering, "u": CRDT update}`. Replicas apply `u` to the
//! cell's document and show the document's text; `t` is only the writer's rendering. The
//! gateway therefore never trusts `t`: before the push's batch it reads the cell's
//! document — a snapshot it keeps in `_es_gw_text` (the merged document up to a log
//! position) plus the cell's text records logged after it — applies the chunk's
//! updates in order, and replaces each record's `t` with the document's text after it.
//! So the rules check, the log, the shadow and the table all see the text replicas
//! converge to, whatever `t` the writer sent (a crafted `t`, or an honest one that
//! lacks other writers' concurrent edits).
//!
//! In the push's batch, atomically with the merge:
//!
//! - [`GUARD`] fails the batch if a record for one of the cells was logged after the
//!   read (a concurrent push through another isolate, or a direct replica's): the
//!   gateway reads again and retries, so two concurrent edits never each write a text
//!   that lacks the other;
//! - [`shadow_sql`] sets the shadow's text of each accepted cell to the merged text,
//!   unless the cell's newest write is a NULL (as replicas do: the text stays NULL until
//!   a newer edit) — also when the shadow holds a newer rendering from another writer;
//! - [`SAVE`] stores the new documents as the cells' snapshots.
//!
//! Refused rows are left out of both (their updates are not logged either).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use serde_json::{Map, Value as Json};

use super::protocol::Refusal;
use super::validate::{Valid, INVALID_RECORD};
use super::view::quote;
use crate::crdt::text::Text;
use crate::error::{Error, Result};
use crate::sql::{ResultSet, Statement, Value};
use crate::sync::{rows, Policy, TableSpec};

/// A text cell: table, key (canonical JSON text, as [`Valid::pk`]) and column.
pub type Cell = (String, String, String);

/// The snapshots table (in [`super::schema::GATEWAY_DDL`]).
pub const DDL: &str = "CREATE TABLE IF NOT EXISTS _es_gw_text (tbl TEXT NOT NULL, pk TEXT NOT NULL, \
     col TEXT NOT NULL, epoch TEXT, seq INTEGER NOT NULL, doc BLOB NOT NULL, PRIMARY KEY (tbl, pk, col)) WITHOUT ROWID";

fn text_columns(spec: &TableSpec) -> impl Iterator<Item = &str> {
    spec.data_columns()
        .filter(|(_, c)| c.policy == Policy::Text)
        .map(|(_, c)| c.name.as_str())
}

/// The text cells the records edit, in a fixed order.
pub fn cells(valid: &[Valid], specs: &HashMap<String, TableSpec>) -> Vec<Cell> {
    let mut out = BTreeSet::new();
    for v in valid.iter().filter(|v| v.op != 'd') {
        let Some(spec) = specs.get(&v.table) else { continue };
        let texts: Vec<&str> = text_columns(spec).collect();
        if texts.is_empty() {
            continue;
        }
        let Ok(Json::Object(d)) = serde_json::from_str::<Json>(&v.data) else {
            continue;
        };
        for (c, x) in &d {
            if x.is_object() && texts.contains(&c.as_str()) {
                out.insert((v.table.clone(), v.pk.clone(), c.clone()));
            }
        }
    }
    out.into_iter().collect()
}

/// `[[tbl, pk, col], …]` with the key as JSON (SQL renders it as the shadow does).
fn cells_json(cells: &[Cell]) -> String {
    let parts: Vec<String> = cells
        .iter()
        .map(|(t, pk, c)| format!("[{},{pk},{}]", Json::from(t.as_str()), Json::from(c.as_str())))
        .collect();
    format!("[{}]", parts.join(","))
}

/// The cells (`?1`) with their snapshot's log position (`after`) and document. A
/// snapshot of another epoch of the log (a reset server) is ignored. A cell without one
/// is read from the log's start (`after` 0) — unless its row has no shadow row: no record
/// of it was ever merged, so the log holds none (`after` NULL: a new row reads nothing).
fn cells_cte(cells: &[Cell]) -> String {
    let mut tables: Vec<&str> = cells.iter().map(|c| c.0.as_str()).collect();
    tables.dedup();
    let known: String = tables
        .iter()
        .map(|t| {
            format!(
                " WHEN {} THEN EXISTS (SELECT 1 FROM {} s WHERE s.pk = json(c.value -> 1))",
                quote(t),
                rows::shadow(t)
            )
        })
        .collect();
    format!(
        "_es_c AS MATERIALIZED (SELECT c.key AS i, c.value ->> 0 AS tbl, json(c.value -> 1) AS pk, \
         c.value ->> 2 AS col, CASE WHEN g.seq IS NOT NULL THEN g.seq \
         WHEN CASE c.value ->> 0{known} ELSE 1 END THEN 0 END AS after, g.doc AS doc FROM json_each(?1) c \
         LEFT JOIN _es_gw_text g ON g.tbl = c.value ->> 0 AND g.pk = json(c.value -> 1) AND g.col = c.value ->> 2 \
         AND g.epoch IS (SELECT id FROM _es_log WHERE seq = 0))"
    )
}

/// The statements reading the cells' documents (one read transaction): the log's top,
/// the snapshots, and the cells' text records logged after their snapshot.
pub fn reads(cells: &[Cell]) -> Vec<Statement> {
    let list = cells_json(cells);
    let with = cells_cte(cells);
    vec![
        Statement::new("SELECT coalesce(max(seq), 0) FROM _es_log"),
        Statement::new(format!("WITH {with} SELECT i, doc FROM _es_c WHERE doc IS NOT NULL")).arg(list.clone()),
        Statement::new(format!(
            "WITH {with} SELECT c.i, l.site, l.rec FROM _es_log l JOIN _es_c c ON c.tbl = l.rec ->> 1 \
             AND c.pk = json(l.rec -> 2) AND l.seq > c.after \
             WHERE l.seq > (SELECT min(after) FROM _es_c) AND l.rec LIKE '%\"u\":%' ORDER BY l.seq"
        ))
        .arg(list),
    ]
}

/// The documents read, and what the push's batch writes.
#[derive(Debug, Clone)]
pub struct TextMerge {
    /// The log's top when the documents were read ([`GUARD`]'s `?2`).
    pub seen: i64,
    /// The cells ([`GUARD`]'s `?1`).
    pub cells: String,
    /// `[[tbl, pk, col, text, doc hex], …]`: each cell's merged text and document.
    pub texts: String,
    /// The tables with text cells.
    pub tables: Vec<String>,
}

/// A text edit's update bytes (`None`: no update, a rendering or a NULL write).
fn update_of(v: &Json) -> Result<Option<Vec<u8>>> {
    match v.get("u").and_then(Json::as_str).filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(u) => base64::engine::general_purpose::STANDARD
            .decode(u)
            .map(Some)
            .map_err(|e| Error::Protocol(format!("bad text update: {e}"))),
    }
}

/// Applies a logged text record's edit of `col` (an update, or a text the server
/// seeded: see [`crate::sync::server::seed_update`]) to `doc`.
fn apply_logged(doc: &mut Text, site: &str, rec: &Json, col: &str) -> Result<()> {
    let Some(v) = rec.get(4).and_then(|d| d.get(col)) else {
        return Ok(());
    };
    if let Some(bytes) = update_of(v)? {
        return doc.apply_update(&bytes);
    }
    if let (Some(true), Some(t), Some(hlc)) = (
        v.get("seed").and_then(Json::as_bool),
        v.get("t").and_then(Json::as_str),
        rec.get(0).and_then(Json::as_i64),
    ) {
        let version = crate::sync::record::version(hlc, site);
        doc.apply_update(&crate::sync::server::seed_update(&version, t)?)?;
    }
    Ok(())
}

/// The cells' documents as the server holds them, from [`reads`]' results.
fn documents(cells: &[Cell], results: &[ResultSet]) -> Result<Vec<Text>> {
    let bad = |m: &str| Error::Protocol(format!("text state read: {m}"));
    let mut docs: Vec<Text> = cells.iter().map(|_| Text::new(0)).collect();
    for r in &results.get(1).ok_or_else(|| bad("no snapshots"))?.rows {
        if let (Value::Integer(i), Value::Blob(b)) = (&r[0], &r[1]) {
            let doc = docs.get_mut(*i as usize).ok_or_else(|| bad("cell index"))?;
            *doc = Text::decode(b, 0)?;
        }
    }
    for r in &results.get(2).ok_or_else(|| bad("no log"))?.rows {
        if let (Value::Integer(i), Value::Text(site), Value::Text(rec)) = (&r[0], &r[1], &r[2]) {
            let rec: Json = serde_json::from_str(rec).map_err(|e| bad(&e.to_string()))?;
            let i = *i as usize;
            let col = &cells.get(i).ok_or_else(|| bad("cell index"))?.2;
            apply_logged(&mut docs[i], site, &rec, col)?;
        }
    }
    Ok(docs)
}

/// Applies the records' text updates to the cells' documents (read by [`reads`]) and
/// rewrites each text edit's `t` to the document's text after it. A record whose update
/// does not apply to its cell's document is refused (`INVALID_RECORD`): every replica
/// would fail on it.
pub fn merge(
    valid: Vec<Valid>,
    cells: &[Cell],
    results: &[ResultSet],
) -> Result<(Vec<Valid>, Vec<Refusal>, TextMerge)> {
    let seen = match results.first().and_then(|r| r.rows.first()).and_then(|r| r.first()) {
        Some(Value::Integer(n)) => *n,
        _ => return Err(Error::Protocol("text state read: no log top".into())),
    };
    let index: HashMap<(&str, &str, &str), usize> = cells
        .iter()
        .enumerate()
        .map(|(i, (t, p, c))| ((t.as_str(), p.as_str(), c.as_str()), i))
        .collect();
    let mut refused: Vec<Refusal> = Vec::new();
    let mut skip: BTreeSet<usize> = BTreeSet::new();
    // A refused record changes the documents the ones after it see: start again without it.
    'again: loop {
        let mut docs = documents(cells, results)?;
        let mut out = Vec::with_capacity(valid.len());
        for (k, v) in valid.iter().enumerate() {
            if skip.contains(&k) || v.op == 'd' {
                if !skip.contains(&k) {
                    out.push(v.clone());
                }
                continue;
            }
            let Ok(Json::Object(mut d)) = serde_json::from_str::<Json>(&v.data) else {
                out.push(v.clone());
                continue;
            };
            let mut changed = false;
            for (c, x) in d.iter_mut() {
                let Some(&i) = index.get(&(v.table.as_str(), v.pk.as_str(), c.as_str())) else {
                    continue;
                };
                let applied = match update_of(x) {
                    Ok(Some(bytes)) => docs[i].apply_update(&bytes),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = applied {
                    skip.insert(k);
                    refused.push(Refusal {
                        index: v.index,
                        table: v.table.clone(),
                        pk: serde_json::from_str(&v.pk).unwrap_or(Json::Null),
                        op: v.op.to_string(),
                        code: INVALID_RECORD.into(),
                        reason: format!(
                            "{}.{c}: the text update does not apply to the cell's document: {e}",
                            v.table
                        ),
                    });
                    continue 'again;
                }
                if let Some(t) = x.get_mut("t").filter(|t| t.is_string()) {
                    let merged = docs[i].text();
                    if t.as_str() != Some(merged.as_str()) {
                        *t = Json::String(merged);
                        changed = true;
                    }
                }
            }
            out.push(if changed { rewrite(v, d)? } else { v.clone() });
        }
        let mut texts = Vec::with_capacity(cells.len());
        let mut tables: Vec<String> = Vec::new();
        for ((t, pk, c), doc) in cells.iter().zip(&docs) {
            let hex: String = doc.encode().iter().map(|b| format!("{b:02x}")).collect();
            texts.push(format!(
                "[{},{pk},{},{},\"{hex}\"]",
                Json::from(t.as_str()),
                Json::from(c.as_str()),
                Json::from(doc.text())
            ));
            if !tables.contains(t) {
                tables.push(t.clone());
            }
        }
        let merge = TextMerge {
            seen,
            cells: cells_json(cells),
            texts: format!("[{}]", texts.join(",")),
            tables,
        };
        return Ok((out, refused, merge));
    }
}

/// `v` with its data object replaced by `d` (in `data` and in the record's JSON).
fn rewrite(v: &Valid, d: Map<String, Json>) -> Result<Valid> {
    let mut rec: Vec<Json> =
        serde_json::from_str(&v.json).map_err(|e| Error::Protocol(format!("record re-read: {e}")))?;
    let data = Json::Object(d);
    if let Some(slot) = rec.get_mut(4) {
        *slot = data.clone();
    }
    Ok(Valid {
        data: data.to_string(),
        json: Json::Array(rec).to_string(),
        ..v.clone()
    })
}

/// Fails the batch (SQLite's "malformed JSON") if a text record for one of the cells
/// (`?1`) was logged after the documents were read (`?2`, the log's top then).
pub const GUARD: &str = "SELECT CASE WHEN EXISTS (SELECT 1 FROM _es_log l, json_each(?1) c \
     WHERE l.seq > ?2 AND l.rec LIKE '%\"u\":%' AND c.value ->> 0 = l.rec ->> 1 \
     AND json(c.value -> 1) = json(l.rec -> 2) AND json_type(l.rec -> 4, '$.' || (c.value ->> 2)) = 'object') \
     THEN json('edgesync: a text cell changed while the gateway merged it') END";

/// Stores the accepted cells' documents (`?1`, [`TextMerge::texts`]) as their snapshots,
/// at the log's top (the batch has logged the chunk; [`GUARD`] held).
pub const SAVE: &str = "INSERT INTO _es_gw_text (tbl, pk, col, epoch, seq, doc) \
     SELECT value ->> 0, json(value -> 1), value ->> 2, (SELECT id FROM _es_log WHERE seq = 0), \
     (SELECT coalesce(max(seq), 0) FROM _es_log), unhex(value ->> 4) FROM json_each(?1) \
     WHERE NOT EXISTS (SELECT 1 FROM _es_gw_refused g WHERE g.tbl = value ->> 0 AND g.pk = json(value -> 1)) \
     ON CONFLICT (tbl, pk, col) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq, doc = excluded.doc";

/// Sets the shadow's text of `spec`'s accepted cells to the merged text (`?1`,
/// [`TextMerge::texts`]) where the cell's newest write is not a NULL.
pub fn shadow_sql(spec: &TableSpec) -> String {
    let t = quote(&spec.name);
    let cols: Vec<&str> = text_columns(spec).collect();
    let pivot: String = cols
        .iter()
        .map(|c| format!(", max(CASE WHEN value ->> 2 = '{c}' THEN value ->> 3 END) AS \"t_{c}\""))
        .collect();
    let sets: Vec<String> = cols
        .iter()
        .map(|c| {
            format!(
                "c_{c} = CASE WHEN s.c_{c} IS NOT NULL AND x.\"t_{c}\" IS NOT NULL THEN x.\"t_{c}\" ELSE s.c_{c} END"
            )
        })
        .collect();
    format!(
        "WITH _es_tx AS MATERIALIZED (SELECT json(value -> 1) AS pk{pivot} FROM json_each(?1) \
         WHERE value ->> 0 = {t} GROUP BY json(value -> 1)) \
         UPDATE {s} AS s SET {sets} FROM _es_tx x WHERE s.pk = x.pk \
         AND NOT EXISTS (SELECT 1 FROM _es_gw_refused g WHERE g.tbl = {t} AND g.pk = s.pk)",
        s = rows::shadow(&spec.name),
        sets = sets.join(", "),
    )
}

/// The batch's text statements after the chunk's shadow merge: per table the shadow
/// update, then the snapshots.
pub fn writes(m: &TextMerge, specs: &HashMap<String, TableSpec>) -> Vec<Statement> {
    let mut out: Vec<Statement> = m
        .tables
        .iter()
        .filter_map(|t| specs.get(t))
        .map(|spec| Statement::new(shadow_sql(spec)).arg(m.texts.clone()))
        .collect();
    out.push(Statement::new(SAVE).arg(m.texts.clone()));
    out
}

/// The guard statement for `m`.
pub fn guard(m: &TextMerge) -> Statement {
    Statement::new(GUARD).arg(m.cells.clone()).arg(m.seen)
}

/// The text of each cell as the documents `merge` computed (for tests).
pub fn texts_of(m: &TextMerge) -> BTreeMap<(String, String, String), String> {
    let all: Vec<Json> = serde_json::from_str(&m.texts).unwrap_or_default();
    all.iter()
        .filter_map(|e| {
            Some((
                (
                    e.get(0)?.as_str()?.to_string(),
                    e.get(1)?.to_string(),
                    e.get(2)?.as_str()?.to_string(),
                ),
                e.get(3)?.as_str()?.to_string(),
            ))
        })
        .collect()
}
