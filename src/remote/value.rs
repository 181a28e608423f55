//! The Hrana JSON encoding of [`Value`] (the type itself is in [`crate::sql`]).
//!
//! Hrana (the libSQL remote protocol) sends every value as a small tagged object:
//!
//! | SQLite  | JSON                                          |
//! |---------|-----------------------------------------------|
//! | NULL    | `{"type":"null"}`                             |
//! | INTEGER | `{"type":"integer","value":"-42"}` (a string, so all 64 bits survive JSON) |
//! | REAL    | `{"type":"float","value":1.5}`                |
//! | TEXT    | `{"type":"text","value":"héllo"}`             |
//! | BLOB    | `{"type":"blob","base64":"AP8="}`             |
//!
//! The (de)serializers here are written by hand rather than derived: rows are the hot
//! path of every query, and a derived internally-tagged enum would buffer each value
//! into an intermediate tree first.
//!
//! ```
//! use edgesync::Value;
//! let json = serde_json::to_string(&Value::Integer(i64::MAX)).unwrap();
//! assert_eq!(json, r#"{"type":"integer","value":"9223372036854775807"}"#);
//! let back: Value = serde_json::from_str(&json).unwrap();
//! assert_eq!(back, Value::Integer(i64::MAX));
//! ```

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sql::Value;

/// Standard base64 that writes padding and accepts input with or without it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        match self {
            Value::Null => m.serialize_entry("type", "null")?,
            Value::Integer(i) => {
                m.serialize_entry("type", "integer")?;
                m.serialize_entry("value", &i.to_string())?;
            }
            Value::Real(f) => {
                m.serialize_entry("type", "float")?;
                m.serialize_entry("value", f)?;
            }
            Value::Text(t) => {
                m.serialize_entry("type", "text")?;
                m.serialize_entry("value", t)?;
            }
            Value::Blob(b) => {
                m.serialize_entry("type", "blob")?;
                m.serialize_entry("base64", &BASE64.encode(b))?;
            }
        }
        m.end()
    }
}

/// The `value` field before we know the `type`: a string (integer, text), a number,
/// or `null` (sqld's encoding of a float that JSON cannot carry: ±infinity).
enum Scalar {
    Str(String),
    Num(f64),
    Null,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Null)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a Hrana value object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
                let mut kind: Option<String> = None;
                let mut scalar: Option<Scalar> = None;
                let mut base64: Option<String> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "type" => kind = Some(map.next_value()?),
                        "value" => scalar = Some(map.next_value()?),
                        "base64" => base64 = Some(map.next_value()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
                match (kind.as_str(), scalar, base64) {
                    ("null", _, _) => Ok(Value::Null),
                    ("integer", Some(Scalar::Str(s)), _) => s
                        .parse::<i64>()
                        .map(Value::Integer)
                        .map_err(|_| de::Error::custom(format!("integer out of range: {s:?}"))),
                    ("integer", Some(Scalar::Num(n)), _) if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 => {
                        Ok(Value::Integer(n as i64))
                    }
                    ("float", Some(Scalar::Num(n)), _) => Ok(Value::Real(n)),
                    // sqld writes ±infinity as `"value": null`, losing the sign: the
                    // honest reading is "a float that is not a number".
                    ("float", Some(Scalar::Null), _) => Ok(Value::Real(f64::NAN)),
                    ("float", Some(Scalar::Str(s)), _) => s
                        .parse::<f64>()
                        .map(Value::Real)
                        .map_err(|_| de::Error::custom(format!("bad float {s:?}"))),
                    ("text", Some(Scalar::Str(s)), _) => Ok(Value::Text(s)),
                    ("blob", _, Some(b64)) => BASE64
                        .decode(b64.as_bytes())
                        .map(Value::Blob)
                        .map_err(|e| de::Error::custom(format!("bad base64 blob: {e}"))),
                    (other, _, _) => Err(de::Error::custom(format!("malformed value of type {other:?}"))),
                }
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::Real),
            any::<String>().prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Blob),
        ]
    }

    proptest! {
        #[test]
        fn json_round_trip(v in any_value()) {
            let json = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&json).unwrap();
            // Compare floats bit-for-bit so -0.0 and 0.0 are told apart.
            match (&v, &back) {
                (Value::Real(a), Value::Real(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                _ => prop_assert_eq!(&v, &back),
            }
        }

        #[test]
        fn garbage_never_panics(s in ".{0,200}") {
            let _ = serde_json::from_str::<Value>(&s);
        }
    }

    #[test]
    fn decodes_server_forms() {
        let v: Value = serde_json::from_str(r#"{"value":"-9223372036854775808","type":"integer"}"#).unwrap();
        assert_eq!(v, Value::Integer(i64::MIN));
        let v: Value = serde_json::from_str(r#"{"type":"blob","base64":"AP8"}"#).unwrap();
        assert_eq!(v, Value::Blob(vec![0, 255]));
        let v: Value = serde_json::from_str(r#"{"type":"float","value":0.30000000000000004}"#).unwrap();
        assert_eq!(v, Value::Real(0.1 + 0.2));
        let v: Value = serde_json::from_str(r#"{"type":"float","value":null}"#).unwrap();
        assert!(matches!(v, Value::Real(f) if f.is_nan()));
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            r#"{"type":"integer","value":"99999999999999999999"}"#,
            r#"{"type":"integer"}"#,
            r#"{"type":"text","value":3}"#,
            r#"{"type":"blob","base64":"!!"}"#,
            r#"{"type":"date","value":"x"}"#,
            r#"{"value":"x"}"#,
            r#"[1,2]"#,
        ] {
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
        }
    }
}
