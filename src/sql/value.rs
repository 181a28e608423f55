//! One SQLite value, as every layer sees it: the local store, the remote protocol, the
//! CRDTs and the sync engine. How a value travels is each layer's business: the Hrana
//! JSON form is in `remote`, the CRDTs' binary form in `crdt`, the wasm result layout in
//! `wasm`.

use crate::error::{Error, Result};

/// One SQLite value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A value borrowed from where it is stored (a row, a packed argument buffer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 as SQLite stores it (not checked: SQLite does not check it either).
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl From<ValueRef<'_>> for Value {
    /// A copy; text that is not UTF-8 is read lossily (never fail a read over it).
    fn from(v: ValueRef<'_>) -> Value {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> ValueRef<'a> {
        match v {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

impl Value {
    /// Rejects values that cannot be sent exactly: SQLite and JSON have no NaN, and
    /// Hrana's JSON encoding cannot carry infinities.
    pub fn check_sendable(&self) -> Result<()> {
        match self {
            Value::Real(f) if !f.is_finite() => Err(Error::InvalidArgument(format!(
                "{f} cannot be stored: SQLite has no NaN and the remote protocol has no infinities"
            ))),
            _ => Ok(()),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_floats_are_refused() {
        assert!(Value::Real(f64::NAN).check_sendable().is_err());
        assert!(Value::Real(f64::INFINITY).check_sendable().is_err());
        assert!(Value::Real(1e308).check_sendable().is_ok());
    }
}
