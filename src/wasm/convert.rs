//! Statements packed by js/args.ts (which checks every argument: docs/compatibility.md)
//! into [`Statement`]s, and the int modes of results (results go back as bytes:
//! `result.rs`; single JS values: `values.rs`).
//!
//! Result rule: INTEGER → `number` when it is a safe integer (|n| ≤ 2^53 − 1), else
//! `bigint` (intMode `"auto"`, the default); always `bigint` with `"bigint"`; always a
//! decimal `string` with `"string"`; `"number"`: a `number`, a `RangeError` beyond 2^53.
//! REAL → `number`, TEXT → `string`, BLOB → `ArrayBuffer`, NULL → `null`.

use crate::error::Result;
#[cfg(feature = "js-client")]
use crate::sql::{Statement, Value};
#[cfg(feature = "js-client")]
use crate::wasm::error::invalid;

/// How INTEGER results reach JS.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "js-client"), allow(dead_code))]
pub(crate) enum IntMode {
    /// A `number` when it is a safe integer, else a `bigint` (edgesync's default).
    Auto,
    BigInt,
    String,
    /// Always a `number`; a `RangeError` for one that a number cannot hold exactly (the
    /// official client's default).
    Number,
}

impl IntMode {
    #[cfg_attr(not(feature = "js-client"), allow(dead_code))]
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(IntMode::Auto),
            "bigint" => Ok(IntMode::BigInt),
            "string" => Ok(IntMode::String),
            "number" => Ok(IntMode::Number),
            other => Err(crate::Error::Type(format!(
                "Invalid value for intMode, expected \"number\", \"bigint\", \"string\" or \"auto\", got {other:?}"
            ))),
        }
    }
}

#[cfg(feature = "js-client")]
/// Decodes the arguments `encodeStatement` (js/args.ts) packed into bytes.
pub(crate) fn decode_args(sql: String, bytes: &[u8]) -> Result<Statement> {
    let mut stmt = Statement::new(sql);
    let mut p = crate::sql::packed::Packed::new(bytes)?;
    while let Some((name, v)) = p.next()? {
        let v = Value::from(v);
        match name {
            Some(n) => stmt.named_args.push((n.to_string(), v)),
            None => stmt.args.push(v),
        }
    }
    Ok(stmt)
}

#[cfg(feature = "js-client")]
/// Decodes the statements `encodeStatements` (js/args.ts) packed: `u32` count, then per
/// statement its SQL (`u32` length + UTF-8) and its arguments (the layout of
/// [`decode_args`]).
pub(crate) fn decode_statements(bytes: &[u8]) -> Result<Vec<Statement>> {
    let bad = || invalid("malformed packed statements");
    let u32_at = |at: usize| -> Result<usize> {
        let b = bytes.get(at..at + 4).ok_or_else(bad)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let n = u32_at(0)?;
    if n > bytes.len() {
        return Err(bad());
    }
    let mut at = 4;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len = u32_at(at)?;
        let sql = bytes.get(at + 4..at + 4 + len).ok_or_else(bad)?;
        let sql = std::str::from_utf8(sql).map_err(|_| bad())?.to_string();
        at += 4 + len;
        let rest = bytes.get(at..).ok_or_else(bad)?;
        let mut p = crate::sql::packed::Packed::new(rest)?;
        let mut stmt = Statement::new(sql);
        while let Some((name, v)) = p.next()? {
            let v = Value::from(v);
            match name {
                Some(n) => stmt.named_args.push((n.to_string(), v)),
                None => stmt.args.push(v),
            }
        }
        at += p.position();
        out.push(stmt);
    }
    Ok(out)
}
