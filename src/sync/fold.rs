//! Folding captured row writes into change records.
//!
//! The capture triggers only store old and new row images (cheap, inside the user's
//! own transaction). Folding turns them into records — what changed, under which
//! policy — right before they are needed (a sync, or a write-through call): a counter
//! becomes this site's cumulative increments and decrements, a set edit becomes tagged
//! adds and removes, a text edit becomes a CRDT update, a custom column a
//! compare-and-set against the version this replica last saw.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value as Json};

use super::policy::{Policy, TableSpec};
use super::record::{decode_row, encode_row, encode_value, Record};
use crate::crdt::text::Text;
use crate::error::{Error, Result};
use crate::remote::Value;
use crate::store::sql_error;

/// One captured write, as read from `_es_capture`.
pub struct Capture {
    pub id: i64,
    pub table: String,
    pub op: char,
    pub old: Option<Vec<Value>>,
    pub new: Option<Vec<Value>>,
    pub hlc: i64,
}

/// A record ready for the outbox, with the base value a custom column was edited from
/// (the resolver's third argument).
pub struct Outgoing {
    pub record: Record,
    pub base_value: Option<Value>,
}

/// Reads up to `limit` captures in write order.
pub fn read_captures(conn: &Connection, limit: usize) -> Result<Vec<Capture>> {
    let mut stmt = conn
        .prepare_cached("SELECT id, tbl, op, old, new, hlc FROM _es_capture ORDER BY id LIMIT ?1")
        .map_err(sql_error)?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<Vec<u8>>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(sql_error)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, table, op, old, new, hlc) = row.map_err(sql_error)?;
        out.push(Capture {
            id,
            table,
            op: op.chars().next().unwrap_or('?'),
            old: old.map(|b| decode_row(&b)).transpose()?,
            new: new.map(|b| decode_row(&b)).transpose()?,
            hlc,
        });
    }
    Ok(out)
}

/// A primary key as the JSON array records carry.
pub fn pk_json(spec: &TableSpec, row: &[Value]) -> Json {
    Json::Array(spec.pk.iter().map(|&i| encode_value(&row[i])).collect())
}

/// Everything a fold needs to know about this replica.
pub struct FoldContext<'a> {
    pub conn: &'a Connection,
    pub tables: &'a HashMap<String, TableSpec>,
    pub site: &'a str,
    pub text_site: u64,
    /// Set when a folded write will not be the merged value as written — a counter
    /// that saturated, a value written before the column's checks existed — so its row
    /// must be rebuilt from the state rather than left as the writer wrote it (which
    /// would differ from every other replica).
    pub rebuild: std::cell::Cell<bool>,
}

impl FoldContext<'_> {
    /// The records for one capture. Local state (counters, sets, text documents) must
    /// already include every earlier capture of the same row.
    pub fn fold(&self, cap: &Capture) -> Result<Vec<Outgoing>> {
        let Some(spec) = self.tables.get(&cap.table) else {
            return Ok(Vec::new());
        };
        for row in [&cap.old, &cap.new].into_iter().flatten() {
            if row.len() != spec.columns.len() {
                return Err(Error::SchemaMismatch(format!(
                    "table {} has {} columns but a write captured {}: it was altered after replicate(); \
                     sync, alter it on the server too, and call replicate() again",
                    spec.name,
                    spec.columns.len(),
                    row.len()
                )));
            }
        }
        let mut out = Vec::new();
        let rec = |op: char, pk: Json, data: Json| Record {
            hlc: cap.hlc,
            table: spec.name.clone(),
            pk,
            op,
            data,
            base: None,
        };
        match (cap.op, &cap.old, &cap.new) {
            ('d', Some(old), _) => out.push(Outgoing {
                record: rec('d', pk_json(spec, old), Json::Null),
                base_value: None,
            }),
            ('i', _, Some(new)) => self.upsert(spec, cap, None, new, &mut out)?,
            ('u', Some(old), Some(new)) => {
                if pk_json(spec, old) != pk_json(spec, new) {
                    // A changed key is a delete of the old row and an insert of the new one.
                    out.push(Outgoing {
                        record: rec('d', pk_json(spec, old), Json::Null),
                        base_value: None,
                    });
                    self.upsert(spec, cap, None, new, &mut out)?;
                } else {
                    self.upsert(spec, cap, Some(old), new, &mut out)?;
                }
            }
            _ => {
                return Err(Error::Decode {
                    reason: format!("capture {} has no row image for op {:?}", cap.id, cap.op),
                    offset: 0,
                })
            }
        }
        Ok(out)
    }

    fn upsert(
        &self,
        spec: &TableSpec,
        cap: &Capture,
        old: Option<&Vec<Value>>,
        new: &[Value],
        out: &mut Vec<Outgoing>,
    ) -> Result<()> {
        let pk = pk_json(spec, new);
        let pk_text = pk.to_string();
        let mut data = Map::new();
        for (i, c) in spec.data_columns() {
            if let Some(old) = old {
                if old[i] == new[i] {
                    continue;
                }
            }
            let cell = (spec.name.as_str(), pk_text.as_str(), c.name.as_str());
            match c.policy {
                Policy::Lww => {
                    data.insert(c.name.clone(), encode_value(&new[i]));
                }
                Policy::Counter => {
                    let edit = self.counter_edit(cell, old.map(|o| &o[i]), &new[i])?;
                    data.insert(c.name.clone(), edit);
                }
                Policy::Set => {
                    // Even an edit that leaves the same elements (reordered, say) is
                    // recorded: applying it rebuilds the row, normalizing the column.
                    let edit = self.set_edit(cell, &new[i])?;
                    data.insert(c.name.clone(), edit.unwrap_or_else(|| json!({})));
                }
                Policy::Text => {
                    if matches!(new[i], Value::Blob(_)) {
                        // Only from before the column's value check existed.
                        self.rebuild.set(true);
                    }
                    data.insert(c.name.clone(), self.text_edit(cell, &new[i], cap.hlc)?);
                }
                Policy::Custom => {
                    let base: Option<(String, Value)> = self
                        .conn
                        .prepare_cached(&format!(
                            "SELECT v_{0}, c_{0} FROM {1} WHERE pk = json(?1) AND v_{0} IS NOT NULL",
                            c.name,
                            super::rows::shadow(cell.0)
                        ))
                        .map_err(sql_error)?
                        .query_row(params![cell.1], |r| {
                            Ok((r.get(0)?, crate::store::read_value(r.get_ref(1)?)))
                        })
                        .optional()
                        .map_err(sql_error)?;
                    let mut d = Map::new();
                    d.insert(c.name.clone(), encode_value(&new[i]));
                    out.push(Outgoing {
                        record: Record {
                            hlc: cap.hlc,
                            table: spec.name.clone(),
                            pk: pk.clone(),
                            op: 'x',
                            data: Json::Object(d),
                            base: base.as_ref().map(|b| b.0.clone()),
                        },
                        base_value: base.map(|b| b.1),
                    });
                }
            }
        }
        if old.is_none() || !data.is_empty() {
            let op = if old.is_none() { 'i' } else { 'u' };
            out.insert(
                0,
                Outgoing {
                    record: Record {
                        hlc: cap.hlc,
                        table: spec.name.clone(),
                        pk,
                        op,
                        data: Json::Object(data),
                        base: None,
                    },
                    base_value: None,
                },
            );
        }
        Ok(())
    }

    /// A counter write as this site's new cumulative `[increments, decrements]`, or
    /// `null` for a NULL (the totals stay; the cell shows NULL until a newer value).
    ///
    /// The write's delta is `new − old` (the row as the writer saw it), or `new − the
    /// merged value` for an insert or a write from NULL. Arithmetic is exact (128-bit);
    /// a total that would pass 2^63 − 1 saturates, and then — as when the merged value
    /// itself saturates at ±(2^63 − 1) — the row is rebuilt from the state, so the
    /// writer shows what every other replica shows.
    fn counter_edit(&self, cell: (&str, &str, &str), old: Option<&Value>, new: &Value) -> Result<Json> {
        if *new == Value::Null {
            return Ok(Json::Null);
        }
        let (sum, (p, n)) = self.counter_state(cell)?;
        let merged = clamp(sum);
        let wanted = as_int(new);
        let before = match old {
            Some(o) if *o != Value::Null => as_int(o),
            _ => merged,
        };
        let delta = wanted - before;
        let (p2, n2) = if delta >= 0 {
            (saturate(i128::from(p) + delta), n)
        } else {
            (p, saturate(i128::from(n) - delta))
        };
        let applied = (i128::from(p2) - i128::from(p)) - (i128::from(n2) - i128::from(n));
        if clamp(sum + applied) != wanted || !matches!(new, Value::Integer(_)) {
            self.rebuild.set(true);
        }
        Ok(json!([p2, n2]))
    }

    /// A counter cell's exact sum over every site (`Σ p − n`) and this site's totals.
    fn counter_state(&self, (t, pk, col): (&str, &str, &str)) -> Result<(i128, (i64, i64))> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT site, p, n FROM _es_ctr WHERE tbl = ?1 AND pk = json(?2) AND col = ?3")
            .map_err(sql_error)?;
        let rows = stmt
            .query_map(params![t, pk, col], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .map_err(sql_error)?;
        let (mut sum, mut own) = (0i128, (0, 0));
        for row in rows {
            let (site, p, n) = row.map_err(sql_error)?;
            sum += i128::from(p) - i128::from(n);
            if site == self.site {
                own = (p, n);
            }
        }
        Ok((sum, own))
    }

    /// Adds and removes that turn the set's current elements into `new` (a JSON array;
    /// anything else — only from before the column's value check existed — is a
    /// one-element set holding the value). `None` when equal. NULL removes every
    /// element and marks the cell NULL (`"null": true`).
    ///
    /// Elements are compared in the canonical JSON text SQLite gives them, the form the
    /// merge rules store (`_es_set.elem`), so an element is never taken for another.
    fn set_edit(&self, (t, pk, col): (&str, &str, &str), new: &Value) -> Result<Option<Json>> {
        let is_null = *new == Value::Null;
        let wanted: Vec<String> = match new {
            Value::Null => Vec::new(),
            Value::Text(s) => {
                let array = serde_json::from_str::<Json>(s).is_ok_and(|j| j.is_array());
                let items = if array {
                    s.clone()
                } else {
                    Json::Array(vec![Json::String(s.clone())]).to_string()
                };
                let mut stmt = self
                    .conn
                    .prepare_cached(
                        "SELECT CASE WHEN type IN ('object', 'array') THEN json(value) ELSE json_quote(value) END \
                         FROM json_each(?1)",
                    )
                    .map_err(sql_error)?;
                let rows = stmt.query_map([items], |r| r.get::<_, String>(0)).map_err(sql_error)?;
                rows.collect::<rusqlite::Result<_>>().map_err(sql_error)?
            }
            other => vec![encode_value(other).to_string()],
        };
        let mut alive: HashMap<String, Vec<String>> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT elem, tag FROM _es_set WHERE tbl = ?1 AND pk = json(?2) AND col = ?3 AND alive = 1",
                )
                .map_err(sql_error)?;
            let rows = stmt
                .query_map(params![t, pk, col], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql_error)?;
            for row in rows {
                let (elem, tag) = row.map_err(sql_error)?;
                alive.entry(elem).or_default().push(tag);
            }
        }
        let mut seen = HashSet::new();
        let mut adds = Vec::new();
        for key in wanted {
            if !alive.contains_key(&key) && !seen.contains(&key) {
                adds.push(serde_json::from_str::<Json>(&key).unwrap_or_else(|_| Json::String(key.clone())));
            }
            seen.insert(key);
        }
        let mut removes = Vec::new();
        let mut gone: Vec<_> = alive.into_iter().filter(|(e, _)| !seen.contains(e)).collect();
        crate::sort::sort(&mut gone);
        for (elem, tags) in gone {
            let e: Json = serde_json::from_str(&elem).unwrap_or(Json::String(elem));
            for tag in tags {
                removes.push(json!([e.clone(), tag]));
            }
        }
        if is_null {
            return Ok(Some(json!({ "+": adds, "-": removes, "null": true })));
        }
        if adds.is_empty() && removes.is_empty() {
            return Ok(None);
        }
        Ok(Some(json!({ "+": adds, "-": removes })))
    }

    /// Diffs the column's text document against `new` and returns the CRDT update with
    /// the new rendering. NULL deletes the text and renders as `null`: the cell shows
    /// NULL until a newer edit.
    fn text_edit(&self, (t, pk, col): (&str, &str, &str), new: &Value, hlc: i64) -> Result<Json> {
        let new_text = match new {
            Value::Null => String::new(),
            Value::Text(s) => s.clone(),
            other => encode_value(other).to_string(),
        };
        let render = (*new != Value::Null).then_some(new_text.as_str());
        let mut doc = load_text(self.conn, (t, pk, col), self.text_site)?;
        let before = doc.version().clone();
        let old: Vec<char> = doc.text().chars().collect();
        let new_chars: Vec<char> = new_text.chars().collect();
        let prefix = old.iter().zip(&new_chars).take_while(|(a, b)| a == b).count();
        let suffix = old[prefix..]
            .iter()
            .rev()
            .zip(new_chars[prefix..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let removed = old.len() - prefix - suffix;
        if removed > 0 {
            doc.delete(prefix, removed)?;
        }
        let inserted: String = new_chars[prefix..new_chars.len() - suffix].iter().collect();
        if !inserted.is_empty() {
            doc.insert(prefix, &inserted)?;
        }
        let update = doc.encode_update_since(&before);
        save_text(self.conn, (t, pk, col), &doc)?;
        set_render_or_null(self.conn, (t, pk, col), &super::record::version(hlc, self.site), render)?;
        Ok(json!({ "t": render, "u": base64::engine::general_purpose::STANDARD.encode(update) }))
    }
}

/// A counter value as an integer. Only an INTEGER reaches here since the column's
/// value check; anything older is read as SQLite would (and its row rebuilt).
fn as_int(v: &Value) -> i128 {
    i128::from(match v {
        Value::Integer(i) => *i,
        Value::Real(f) => *f as i64,
        Value::Text(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// A per-site total, saturated to 0 … 2^63 − 1.
fn saturate(v: i128) -> i64 {
    v.clamp(0, i128::from(i64::MAX)) as i64
}

/// A counter's value, saturated to ±(2^63 − 1) as the merge rules do
/// ([`super::rows::counter_sum_sql`]).
fn clamp(v: i128) -> i128 {
    v.clamp(-i128::from(i64::MAX), i128::from(i64::MAX))
}

/// The text document of one cell (a new empty one if the cell has none yet).
pub fn load_text(conn: &Connection, (t, pk, col): (&str, &str, &str), site: u64) -> Result<Text> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT doc FROM _es_text WHERE tbl = ?1 AND pk = json(?2) AND col = ?3")
        .map_err(sql_error)?
        .query_row(params![t, pk, col], |r| r.get(0))
        .optional()
        .map_err(sql_error)?;
    match bytes {
        Some(b) => {
            // Checked whole: its updates are encoded and pushed from here.
            let t = Text::decode(&b, site)?;
            t.validate()?;
            Ok(t)
        }
        None => Ok(Text::new(site)),
    }
}

pub fn save_text(conn: &Connection, (t, pk, col): (&str, &str, &str), doc: &Text) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO _es_text (tbl, pk, col, doc) VALUES (?1, json(?2), ?3, ?4) \
         ON CONFLICT (tbl, pk, col) DO UPDATE SET doc = excluded.doc",
    )
    .map_err(sql_error)?
    .execute(params![t, pk, col, doc.encode()])
    .map_err(sql_error)?;
    Ok(())
}

/// Remembers the newest rendering of a text cell that went to the server (the one the
/// server's column shows). When the merged document differs from it, the replica
/// pushes its own rendering so the server's plain column converges too.
pub fn set_render(conn: &Connection, cell: (&str, &str, &str), ver: &str, render: &str) -> Result<()> {
    set_render_or_null(conn, cell, ver, Some(render))
}

/// [`set_render`] of a cell that may be NULL (`None`).
pub fn set_render_or_null(
    conn: &Connection,
    (t, pk, col): (&str, &str, &str),
    ver: &str,
    render: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE _es_text SET render = ?4, rver = ?5 WHERE tbl = ?1 AND pk = json(?2) AND col = ?3 AND (rver IS NULL OR rver < ?5)",
    )
    .map_err(sql_error)?
    .execute(params![t, pk, col, render, ver])
    .map_err(sql_error)?;
    Ok(())
}

/// The newest rendering the server has of a text cell, if any.
pub fn render_of(conn: &Connection, (t, pk, col): (&str, &str, &str)) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT render FROM _es_text WHERE tbl = ?1 AND pk = json(?2) AND col = ?3")
        .map_err(sql_error)?
        .query_row(params![t, pk, col], |r| r.get::<_, Option<String>>(0))
        .optional()
        .map_err(sql_error)?
        .flatten())
}

/// Stores the base value of a custom edit with its outbox row.
pub fn encode_base(v: &Option<Value>) -> Option<Vec<u8>> {
    v.as_ref().map(|v| encode_row(std::slice::from_ref(v)))
}
