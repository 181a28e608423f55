//! Checking every pushed record against its table's schema before any SQL sees it.
//!
//! A record the gateway accepts is re-serialized from its parsed form (never passed
//! through as received) and has: a table the rules list and the server replicates; a
//! key of the table's key length made of integers and strings; an operation the merge
//! knows; data naming only the table's non-key columns, each value of a shape its
//! column's policy merges (a counter never receives text, a set never a number); a
//! clock no further ahead of the Worker's than the allowed drift (a record stamped in
//! the far future would win every last-writer-wins merge forever). Anything else is
//! refused, alone: the rest of the chunk goes on.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Map, Value as Json};

use super::protocol::Refusal;
use super::rules::SyncRules;
use crate::crdt::text::Text;
use crate::sync::{Policy, TableSpec};

/// Longest key value (bytes of one string in a key).
pub const MAX_KEY_BYTES: usize = 512;

/// A record that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid {
    /// Its index in the request.
    pub index: usize,
    pub table: String,
    /// The key as JSON text.
    pub pk: String,
    pub op: char,
    /// The data object (`Null` for deletes).
    pub data: Json,
    /// The record as it will be merged and logged.
    pub json: String,
}

/// The records of a push, sorted into valid ones and refusals.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub valid: Vec<Valid>,
    pub refused: Vec<Refusal>,
}

pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
pub const INVALID_RECORD: &str = "INVALID_RECORD";

/// A replica's site id: 16 lowercase hex digits (what replicas generate).
pub fn valid_site(site: &str) -> bool {
    site.len() == 16 && site.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks every record; `now_ms` is the Worker's clock.
pub fn check_records(
    records: &[Json],
    rules: &SyncRules,
    specs: &HashMap<String, TableSpec>,
    now_ms: u64,
    max_drift_ms: u64,
) -> Checked {
    let mut out = Checked::default();
    for (index, rec) in records.iter().enumerate() {
        match check_one(rec, rules, specs, now_ms, max_drift_ms) {
            Ok((table, pk, op, data, json)) => out.valid.push(Valid {
                index,
                table,
                pk,
                op,
                data,
                json,
            }),
            Err((code, reason)) => {
                let field = |i: usize| rec.get(i).cloned().unwrap_or(Json::Null);
                let s = |j: Json| j.as_str().map(|s| s.chars().take(128).collect()).unwrap_or_default();
                out.refused.push(Refusal {
                    index,
                    table: s(field(1)),
                    pk: field(2),
                    op: s(field(3)),
                    code: code.into(),
                    reason,
                })
            }
        }
    }
    out
}

type Checked1 = (String, String, char, Json, String);
type Refused = (&'static str, String);

fn check_one(
    rec: &Json,
    rules: &SyncRules,
    specs: &HashMap<String, TableSpec>,
    now_ms: u64,
    max_drift_ms: u64,
) -> Result<Checked1, Refused> {
    let invalid = |m: String| (INVALID_RECORD, m);
    let denied = |m: String| (PERMISSION_DENIED, m);
    let a = rec
        .as_array()
        .filter(|a| a.len() == 5 || a.len() == 6)
        .ok_or_else(|| invalid("a record is [hlc, table, key, op, data, base?]".into()))?;
    let hlc = a[0]
        .as_i64()
        .filter(|h| *h > 0)
        .ok_or_else(|| invalid("hlc must be a positive integer".into()))?;
    let ahead = ((hlc >> 16) as u64).saturating_sub(now_ms);
    if ahead > max_drift_ms {
        return Err(invalid(format!(
            "the record's clock is {ahead} ms ahead of the server's (at most {max_drift_ms} ms)"
        )));
    }
    let table = a[1].as_str().ok_or_else(|| invalid("table must be a string".into()))?;
    let shown: String = table.chars().take(64).collect();
    if rules.table(table).is_none() {
        return Err(denied(format!("table {shown:?} is not synced through this gateway")));
    }
    let spec = specs
        .get(table)
        .ok_or_else(|| denied(format!("table {shown:?} is not replicated on the server")))?;
    let pk = check_key(&a[2], spec).map_err(invalid)?;
    let op = match a[3].as_str() {
        Some("i") => 'i',
        Some("u") => 'u',
        Some("d") => 'd',
        Some("x") => 'x',
        _ => return Err(invalid("op must be \"i\", \"u\", \"d\" or \"x\"".into())),
    };
    let base = match a.get(5) {
        None | Some(Json::Null) => None,
        Some(Json::String(b)) if op == 'x' && b.len() <= 64 + 16 => Some(b.clone()),
        Some(_) => {
            return Err(invalid(
                "only a custom record has a base version (a short string)".into(),
            ))
        }
    };
    let data = match (op, &a[4]) {
        ('d', Json::Null) => Json::Null,
        ('d', _) => return Err(invalid("a delete carries no data".into())),
        (_, Json::Object(m)) => {
            if op == 'x' && m.len() != 1 {
                return Err(invalid("a custom record carries exactly one column".into()));
            }
            let mut clean = Map::new();
            for (col, v) in m {
                let c = spec
                    .columns
                    .iter()
                    .find(|c| &c.name == col && c.pk == 0)
                    .ok_or_else(|| denied(format!("unknown column {:?} in {table}", short(col))))?;
                if (op == 'x') != (c.policy == Policy::Custom) {
                    return Err(invalid(format!("column {col} of {table} is {}", c.policy.as_str())));
                }
                check_value(c.policy, v).map_err(|m| invalid(format!("{table}.{col}: {m}")))?;
                clean.insert(col.clone(), v.clone());
            }
            Json::Object(clean)
        }
        _ => return Err(invalid("data must be an object".into())),
    };
    // The record as merged and logged: re-serialized from what was checked.
    let mut json = String::with_capacity(64 + pk.len());
    json.push('[');
    json.push_str(&hlc.to_string());
    json.push(',');
    json.push_str(&Json::from(table).to_string());
    json.push(',');
    json.push_str(&pk);
    json.push_str(",\"");
    json.push(op);
    json.push_str("\",");
    json.push_str(&data.to_string());
    if let Some(b) = base {
        json.push(',');
        json.push_str(&Json::from(b).to_string());
    }
    json.push(']');
    Ok((table.to_string(), pk, op, data, json))
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A key: an array of the table's key length, of integers and strings.
fn check_key(pk: &Json, spec: &TableSpec) -> Result<String, String> {
    let a = pk
        .as_array()
        .filter(|a| a.len() == spec.pk.len())
        .ok_or_else(|| format!("the key of {} is an array of {} values", spec.name, spec.pk.len()))?;
    for v in a {
        match v {
            Json::Number(n) if n.is_i64() => {}
            Json::String(s) if s.len() <= MAX_KEY_BYTES => {}
            Json::String(_) => return Err(format!("key values are at most {MAX_KEY_BYTES} bytes")),
            _ => return Err("key values are integers or strings".into()),
        }
    }
    Ok(pk.to_string())
}

/// A plain value: null, a number, a string, `{"b": hex}` or `{"r": "inf" | "-inf"}`.
fn check_plain(v: &Json) -> Result<(), String> {
    match v {
        Json::Null | Json::Number(_) | Json::String(_) => Ok(()),
        Json::Object(o) if o.len() == 1 => match (o.get("b"), o.get("r")) {
            (Some(Json::String(h)), _) if h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
            (_, Some(Json::String(r))) if r == "inf" || r == "-inf" => Ok(()),
            _ => Err("a tagged value is {\"b\": hex} or {\"r\": \"inf\"|\"-inf\"}".into()),
        },
        _ => Err("not a value (null, number, string, {\"b\": hex}, {\"r\": \"inf\"})".into()),
    }
}

fn check_value(policy: Policy, v: &Json) -> Result<(), String> {
    match policy {
        Policy::Lww | Policy::Custom => check_plain(v),
        Policy::Counter => match v.as_array().map(Vec::as_slice) {
            Some([p, n]) if p.as_i64().is_some_and(|p| p >= 0) && n.as_i64().is_some_and(|n| n >= 0) => Ok(()),
            _ => Err("a counter is [increments, decrements], two non-negative integers".into()),
        },
        Policy::Set => {
            let o = v
                .as_object()
                .ok_or("a set edit is {\"+\": [...], \"-\": [[element, tag]...]}")?;
            for (k, list) in o {
                let list = list.as_array().ok_or("a set edit's adds and removes are arrays")?;
                match k.as_str() {
                    "+" => {}
                    "-" => {
                        if !list
                            .iter()
                            .all(|e| matches!(e.as_array().map(Vec::as_slice), Some([_, Json::String(_)])))
                        {
                            return Err("a set removal is [element, tag]".into());
                        }
                    }
                    _ => return Err(format!("unknown set edit key {k:?}")),
                }
            }
            Ok(())
        }
        Policy::Text => {
            let o = v
                .as_object()
                .ok_or("a text edit is {\"t\": text, \"u\": base64 update}")?;
            if o.keys().any(|k| k != "t" && k != "u") || !o.get("t").is_some_and(Json::is_string) {
                return Err("a text edit is {\"t\": text, \"u\": base64 update}".into());
            }
            match o.get("u") {
                None => Ok(()),
                Some(Json::String(u)) if u.is_empty() => Ok(()),
                Some(Json::String(u)) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(u)
                        .map_err(|e| format!("the text update is not base64: {e}"))?;
                    // Every replica that pulls it applies it: it must decode.
                    Text::new(0)
                        .apply_update(&bytes)
                        .map_err(|e| format!("the text update does not decode: {e}"))
                }
                Some(_) => Err("a text update is a base64 string".into()),
            }
        }
    }
}
