//! Checking every pushed record against its table's schema before any SQL sees it.
//!
//! A record the gateway accepts is re-serialized from its parsed form (never passed
//! through as received) and has: a table the rules list and the server replicates; a
//! key of the table's key length, each value of its column's type (integer or string); an operation the merge
//! knows; data naming only the table's non-key columns, each value of a shape its
//! column's policy merges (a counter never receives text, a set never a number). Anything
//! else is refused, alone: the rest of the chunk goes on. A record stamped further ahead
//! of the Worker's clock than the allowed drift (it would win every last-writer-wins
//! merge for as long) fails the whole push instead, as `CLOCK_DRIFT` with the server's
//! time: the device's clock is wrong, and the replica keeps its writes and corrects it.

use std::collections::HashMap;

use base64::Engine;
use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value as Json;

use super::protocol::Refusal;
use super::rules::SyncRules;
use crate::crdt::text::Text;
use crate::sync::policy::affinity;
use crate::sync::{Policy, TableSpec};

/// Longest key value (bytes of one string in a key).
pub const MAX_KEY_BYTES: usize = 512;

/// A record that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Valid {
    /// Its index in the request.
    pub index: usize,
    pub table: String,
    /// The key as canonical JSON text.
    pub pk: String,
    pub op: char,
    /// The data object as JSON text (`null` for deletes).
    pub data: String,
    /// The record as it will be merged and logged.
    pub json: String,
}

/// The records of a push, sorted into valid ones and refusals.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub valid: Vec<Valid>,
    pub refused: Vec<Refusal>,
    /// How far ahead of the Worker's clock the furthest record is, when more than the
    /// allowed drift: the whole push is then answered `CLOCK_DRIFT` with the server's
    /// time (the device's clock is wrong, not the record: refusing the records alone
    /// would drop the writes from the replica's outbox).
    pub ahead_ms: Option<u64>,
}

pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
pub const INVALID_RECORD: &str = "INVALID_RECORD";
/// [`check_one`]'s mark for a record stamped too far ahead (the reason is how far, in
/// ms): not a refusal, see [`Checked::ahead_ms`].
const CLOCK_AHEAD: &str = "CLOCK_AHEAD";

/// A replica's site id: 16 lowercase hex digits (what replicas generate).
pub fn valid_site(site: &str) -> bool {
    site.len() == 16 && site.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks every record (as the request carried it); `now_ms` is the Worker's clock.
///
/// Records are read without building a JSON tree of their values (a push is thousands
/// of them): each value is looked at in its raw text, and only tagged values, counters,
/// sets and text edits are parsed.
pub fn check_records(
    records: &[&RawValue],
    rules: &SyncRules,
    specs: &HashMap<String, TableSpec>,
    now_ms: u64,
    max_drift_ms: u64,
) -> Checked {
    let mut out = Checked::default();
    for (index, rec) in records.iter().enumerate() {
        match check_one(rec, rules, specs, now_ms, max_drift_ms) {
            Err((CLOCK_AHEAD, ahead)) => {
                let ahead: u64 = ahead.parse().unwrap_or(u64::MAX);
                out.ahead_ms = Some(out.ahead_ms.unwrap_or(0).max(ahead));
            }
            Ok(mut v) => {
                v.index = index;
                out.valid.push(v)
            }
            Err((code, reason)) => {
                let rec: Json = serde_json::from_str(rec.get()).unwrap_or(Json::Null);
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

type Refused = (&'static str, String);

fn check_one(
    rec: &RawValue,
    rules: &SyncRules,
    specs: &HashMap<String, TableSpec>,
    now_ms: u64,
    max_drift_ms: u64,
) -> Result<Valid, Refused> {
    let invalid = |m: String| (INVALID_RECORD, m);
    let denied = |m: String| (PERMISSION_DENIED, m);
    let shape = || invalid("a record is [hlc, table, key, op, data, base?]".into());
    let a: Vec<&RawValue> = serde_json::from_str(rec.get()).map_err(|_| shape())?;
    if a.len() != 5 && a.len() != 6 {
        return Err(shape());
    }
    let hlc = serde_json::from_str::<i64>(a[0].get())
        .ok()
        .filter(|h| *h > 0)
        .ok_or_else(|| invalid("hlc must be a positive integer".into()))?;
    let ahead = ((hlc >> 16) as u64).saturating_sub(now_ms);
    if ahead > max_drift_ms {
        return Err((CLOCK_AHEAD, ahead.to_string()));
    }
    let table: Cow<str> = serde_json::from_str(a[1].get()).map_err(|_| invalid("table must be a string".into()))?;
    let shown = short(&table);
    if rules.table(&table).is_none() {
        return Err(denied(format!("table {shown:?} is not synced through this gateway")));
    }
    let spec = specs
        .get(table.as_ref())
        .ok_or_else(|| denied(format!("table {shown:?} is not replicated on the server")))?;
    let pk = check_key(a[2], spec).map_err(invalid)?;
    let op: Cow<str> = serde_json::from_str(a[3].get()).map_err(|_| invalid("op must be a string".into()))?;
    let op = match op.as_ref() {
        "i" => 'i',
        "u" => 'u',
        "d" => 'd',
        "x" => 'x',
        _ => return Err(invalid("op must be \"i\", \"u\", \"d\" or \"x\"".into())),
    };
    let base: Option<String> = match a.get(5).map(|b| serde_json::from_str::<Option<String>>(b.get())) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(b))) if op == 'x' && b.len() <= 64 + 16 => Some(b),
        Some(_) => {
            return Err(invalid(
                "only a custom record has a base version (a short string)".into(),
            ))
        }
    };
    let data = if op == 'd' {
        if a[4].get() != "null" {
            return Err(invalid("a delete carries no data".into()));
        }
        "null".to_string()
    } else {
        let m: BTreeMap<Cow<str>, &RawValue> =
            serde_json::from_str(a[4].get()).map_err(|_| invalid("data must be an object".into()))?;
        if op == 'x' && m.len() != 1 {
            return Err(invalid("a custom record carries exactly one column".into()));
        }
        let mut clean = String::with_capacity(a[4].get().len());
        clean.push('{');
        for (i, (col, v)) in m.iter().enumerate() {
            let c = spec
                .columns
                .iter()
                .find(|c| c.name == *col && c.pk == 0)
                .ok_or_else(|| denied(format!("unknown column {:?} in {table}", short(col))))?;
            if (op == 'x') != (c.policy == Policy::Custom) {
                return Err(invalid(format!("column {col} of {table} is {}", c.policy.as_str())));
            }
            check_value(c.policy, v).map_err(|m| invalid(format!("{table}.{col}: {m}")))?;
            if i > 0 {
                clean.push(',');
            }
            // Column names are plain identifiers (checked when replicated): no escaping.
            clean.push('"');
            clean.push_str(&c.name);
            clean.push_str("\":");
            clean.push_str(v.get());
        }
        clean.push('}');
        clean
    };
    // The record as merged and logged: re-assembled from what was checked.
    let mut json = String::with_capacity(48 + pk.len() + data.len());
    json.push('[');
    json.push_str(&hlc.to_string());
    json.push_str(",\"");
    json.push_str(&spec.name);
    json.push_str("\",");
    json.push_str(&pk);
    json.push_str(",\"");
    json.push(op);
    json.push_str("\",");
    json.push_str(&data);
    if let Some(b) = base {
        json.push(',');
        json.push_str(&Json::from(b).to_string());
    }
    json.push(']');
    Ok(Valid {
        index: 0,
        table: spec.name.clone(),
        pk,
        op,
        data,
        json,
    })
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A key: an array of the table's key length, each value of its column's type (an
/// integer for an INTEGER key column, a string for a TEXT one: the only key affinities
/// `replicate()` accepts); returned as canonical JSON text (re-encoded, so one key has
/// one spelling).
///
/// The type is checked because the rules find a row by its key's JSON text while
/// SQLite's upsert converts by the column's affinity: `["1"]` for an INTEGER key would
/// be checked as a new row yet land on row `1` (another user's), and `[1]` for a TEXT
/// key would land on row `'1'`. A replica sends its stored values, which its column's
/// affinity already converted, so its keys always pass.
fn check_key(pk: &RawValue, spec: &TableSpec) -> Result<String, String> {
    let wrong = || format!("the key of {} is an array of {} values", spec.name, spec.pk.len());
    let a: Vec<&RawValue> = serde_json::from_str(pk.get()).map_err(|_| wrong())?;
    if a.len() != spec.pk.len() {
        return Err(wrong());
    }
    let mut out = String::from("[");
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let col = &spec.columns[spec.pk[i]];
        let text = v.get();
        if affinity(&col.decl_type) == "TEXT" {
            let s: String = serde_json::from_str(text)
                .map_err(|_| format!("key column {}.{} is TEXT: its values are strings", spec.name, col.name))?;
            if s.len() > MAX_KEY_BYTES {
                return Err(format!("key values are at most {MAX_KEY_BYTES} bytes"));
            }
            out.push_str(&Json::from(s).to_string());
        } else {
            let n: i64 = serde_json::from_str(text).map_err(|_| {
                format!(
                    "key column {}.{} is INTEGER: its values are integers",
                    spec.name, col.name
                )
            })?;
            out.push_str(&n.to_string());
        }
    }
    out.push(']');
    Ok(out)
}

/// A plain value, read from its raw text: a string, a number or null pass as they are
/// (the request's JSON was already checked); an object must be a tagged value.
fn check_plain_raw(v: &RawValue) -> Result<(), String> {
    match v.get().as_bytes().first() {
        Some(b'"' | b'-' | b'0'..=b'9' | b'n') => Ok(()),
        Some(b'{') => check_plain(&serde_json::from_str(v.get()).map_err(|e| e.to_string())?),
        _ => Err("not a value (null, number, string, {\"b\": hex}, {\"r\": \"inf\"})".into()),
    }
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

fn check_value(policy: Policy, raw: &RawValue) -> Result<(), String> {
    if matches!(policy, Policy::Lww | Policy::Custom) {
        return check_plain_raw(raw);
    }
    let v: Json = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    let v = &v;
    match policy {
        Policy::Lww | Policy::Custom => check_plain(v),
        // A NULL write is `null` (the totals stay; the cell shows NULL).
        Policy::Counter if v.is_null() => Ok(()),
        Policy::Counter => match v.as_array().map(Vec::as_slice) {
            Some([p, n]) if p.as_i64().is_some_and(|p| p >= 0) && n.as_i64().is_some_and(|n| n >= 0) => Ok(()),
            _ => Err("a counter is [increments, decrements], two non-negative integers, or null".into()),
        },
        Policy::Set => {
            let o = v
                .as_object()
                .ok_or("a set edit is {\"+\": [...], \"-\": [[element, tag]...]}")?;
            for (k, list) in o {
                if k == "null" {
                    // A NULL write: every element removed, the cell NULL.
                    if list != &Json::Bool(true) {
                        return Err("a set edit's \"null\" is true".into());
                    }
                    continue;
                }
                let list = list.as_array().ok_or("a set edit's adds and removes are arrays")?;
                match k.as_str() {
                    // The column's value check (`Policy::value_check`): elements are
                    // strings and integers, which compare the same on every SQLite.
                    "+" => {
                        if !list.iter().all(|e| e.is_string() || e.is_i64()) {
                            return Err("a set holds strings and integers".into());
                        }
                    }
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
            // `"t": null` is a NULL write (the text deleted, the cell NULL).
            if o.keys().any(|k| k != "t" && k != "u") || !o.get("t").is_some_and(|t| t.is_string() || t.is_null()) {
                return Err("a text edit is {\"t\": text or null, \"u\": base64 update}".into());
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
