//! Change records: the unit that is captured, queued, pushed, logged and pulled.
//!
//! A record is one captured row write, as compact JSON so the server can merge a whole
//! chunk with `json_each` in a handful of set-based statements:
//!
//! ```text
//! [hlc, "table", [pk…], op, {column: value…}, base?]
//! ```
//!
//! - `hlc`: the packed hybrid logical timestamp (see [`crate::clock::PackedClock`]); with the
//!   writer's site id it forms the version `printf('%016x', hlc) || site` that every
//!   last-writer-wins comparison uses.
//! - `op`: `i` insert (every data column), `u` update (changed columns), `d` delete,
//!   `x` a custom-policy column (compare-and-set against `base`, the version the
//!   writer last saw).
//! - values: JSON scalars; a BLOB is `{"b":"<hex>"}`, ±∞ is `{"r":"inf"|"-inf"}`; a
//!   counter is the writer's cumulative `[increments, decrements]`; a set edit is
//!   `{"+":[elements], "-":[[element, tag]…]}`; a text edit is
//!   `{"t": rendered text, "u": "<base64 CRDT update>"}`.

use serde_json::{json, Value as Json};

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::remote::Value;

/// One record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub hlc: i64,
    pub table: String,
    /// The primary key values, as a JSON array.
    pub pk: Json,
    pub op: char,
    /// Column → encoded value (`Json::Null` for deletes).
    pub data: Json,
    /// For `x` records: the version the custom value was based on.
    pub base: Option<String>,
}

impl Record {
    pub fn to_json(&self) -> Json {
        let mut a = vec![
            json!(self.hlc),
            json!(self.table),
            self.pk.clone(),
            json!(self.op.to_string()),
            self.data.clone(),
        ];
        if let Some(b) = &self.base {
            a.push(json!(b));
        }
        Json::Array(a)
    }

    /// Parses a record read back from the server's log or the outbox.
    pub fn from_json(j: &Json) -> Result<Record> {
        let bad = || Error::Protocol(format!("malformed change record {j}"));
        let a = j.as_array().filter(|a| a.len() >= 5).ok_or_else(bad)?;
        Ok(Record {
            hlc: a[0].as_i64().ok_or_else(bad)?,
            table: a[1].as_str().ok_or_else(bad)?.to_string(),
            pk: a[2].clone(),
            op: a[3].as_str().and_then(|s| s.chars().next()).ok_or_else(bad)?,
            data: a[4].clone(),
            base: a.get(5).and_then(|b| b.as_str()).map(str::to_string),
        })
    }
}

/// The version string of a write: 16 hex digits of the packed HLC, then the site id.
/// Comparing two versions as strings orders them by time, then by site.
pub fn version(hlc: i64, site: &str) -> String {
    format!("{hlc:016x}{site}")
}

/// A column value as it travels in a record.
pub fn encode_value(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Integer(i) => json!(i),
        Value::Real(f) if f.is_finite() => json!(f),
        Value::Real(f) => json!({ "r": if *f > 0.0 { "inf" } else { "-inf" } }),
        Value::Text(s) => json!(s),
        Value::Blob(b) => json!({ "b": hex(b) }),
    }
}

/// The inverse of [`encode_value`] (what the SQL `decode` expression does server-side).
pub fn decode_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Integer(*b as i64),
        Json::Number(n) => match n.as_i64() {
            Some(i) if !n.is_f64() => Value::Integer(i),
            _ => Value::Real(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Value::Text(s.clone()),
        Json::Object(o) => {
            if let Some(h) = o.get("b").and_then(Json::as_str) {
                Value::Blob(unhex(h))
            } else if let Some(r) = o.get("r").and_then(Json::as_str) {
                Value::Real(if r == "inf" { f64::INFINITY } else { f64::NEG_INFINITY })
            } else if let Some(t) = o.get("t").and_then(Json::as_str) {
                Value::Text(t.to_string())
            } else {
                Value::Null
            }
        }
        Json::Array(_) => Value::Text(j.to_string()),
    }
}

pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}

fn unhex(h: &str) -> Vec<u8> {
    let d = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    };
    h.as_bytes()
        .chunks(2)
        .map(|p| (d(p[0]) << 4) | d(*p.get(1).unwrap_or(&b'0')))
        .collect()
}

/// Row images: the capture triggers call `es_row(col…)`, which packs a row's values
/// into one blob (tag byte + payload per value) — cheaper than JSON and exact for
/// every SQLite type.
pub fn encode_row(values: &[Value]) -> Vec<u8> {
    let mut w = Writer::body();
    w.uvar(values.len() as u64);
    for v in values {
        match v {
            Value::Null => w.u8(0),
            Value::Integer(i) => {
                w.u8(1);
                w.ivar(*i);
            }
            Value::Real(f) => {
                w.u8(2);
                w.f64(*f);
            }
            Value::Text(s) => {
                w.u8(3);
                w.str(s);
            }
            Value::Blob(b) => {
                w.u8(4);
                w.bytes(b);
            }
        }
    }
    w.finish()
}

/// Unpacks [`encode_row`]. The blob comes from our own trigger, but is still read
/// with checked bounds: a damaged database gives an error, never a panic.
pub fn decode_row(buf: &[u8]) -> Result<Vec<Value>> {
    let mut r = Reader::body(buf);
    let n = r.count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match r.u8()? {
            0 => Value::Null,
            1 => Value::Integer(r.ivar()?),
            2 => Value::Real(r.f64()?),
            3 => Value::Text(r.str()?.to_string()),
            4 => Value::Blob(r.bytes()?.to_vec()),
            t => {
                return Err(Error::Decode {
                    reason: format!("unknown value tag {t} in a row image"),
                    offset: r.position(),
                })
            }
        });
    }
    r.end()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>()
                .prop_filter("no NaN", |f| !f.is_nan())
                .prop_map(Value::Real),
            ".*".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Blob),
        ]
    }

    proptest! {
        #[test]
        fn row_images_round_trip(vals in proptest::collection::vec(value(), 0..8)) {
            prop_assert_eq!(decode_row(&encode_row(&vals)).unwrap(), vals);
        }

        #[test]
        fn record_values_round_trip(v in value()) {
            let back = decode_value(&serde_json::from_str(&encode_value(&v).to_string()).unwrap());
            prop_assert_eq!(back, v);
        }

        #[test]
        fn garbage_row_images_are_errors(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_row(&bytes);
        }
    }

    #[test]
    fn versions_sort_by_time_then_site() {
        assert!(version(5, "b") > version(4, "z"));
        assert!(version(5, "b") > version(5, "a"));
        assert!(version(0x10, "a") > version(0xf, "a"));
    }

    #[test]
    fn records_round_trip() {
        let r = Record {
            hlc: 123,
            table: "t".into(),
            pk: json!([1, "a"]),
            op: 'x',
            data: json!({"stock": 3}),
            base: Some("00ff".into()),
        };
        assert_eq!(Record::from_json(&r.to_json()).unwrap(), r);
        assert!(Record::from_json(&json!([1, 2])).is_err());
    }
}
