//! `SYNC_RULES`: which rows of each replicated table a user may read and write.
//!
//! ```json
//! {
//!   "todos": {
//!     "read":   "owner = :sub",
//!     "write":  "owner = :sub",
//!     "columns": ["title", "done"]
//!   },
//!   "messages": {
//!     "read":   "room_id IN (SELECT room_id FROM members WHERE user_id = :sub)",
//!     "insert": "author = :sub AND room_id IN (SELECT room_id FROM members WHERE user_id = :sub)",
//!     "update": "author = :sub",
//!     "delete": false
//!   }
//! }
//! ```
//!
//! - Each predicate is a SQL expression over the row's columns (bare names, or
//!   qualified by the table's name), evaluated on the primary inside the transaction
//!   that merges the push. Token claims are named parameters: `:sub`, `:role`, any
//!   top-level claim whose name is an identifier (arrays and objects as JSON text, so
//!   `room_id IN (SELECT value FROM json_each(:rooms))` works). A claim the token does not
//!   carry is NULL, and a predicate that is NULL refuses, as in Postgres row security.
//! - `write` is shorthand for `insert`, `update` and `delete` where those are not given.
//!   A missing operation is refused; so is every table that is not listed (default deny).
//! - `true` / `false` are accepted for "every row" / "no row".
//! - `columns` (optional) lists the columns a user may change in an existing row; every
//!   other column keeps its value (pk columns never change). Inserts are governed by the
//!   `insert` predicate alone.
//!
//! How each operation is checked (Postgres' USING / WITH CHECK): an insert checks the
//! new row; an update checks the row before and after (so a row cannot be moved out of
//! the user's reach); a delete checks the row before.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::router::lexer::{ident_name, tokenize, Kind};
use crate::sql::Value;
use crate::sync::policy::check_identifier;

/// An operation a rule governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Read,
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// The rules of one table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableRules {
    pub read: Option<String>,
    pub insert: Option<String>,
    pub update: Option<String>,
    pub delete: Option<String>,
    /// The columns an update may change; `None` = every column.
    pub columns: Option<BTreeSet<String>>,
}

impl TableRules {
    /// The predicate of `op`, `None` when the operation is refused outright.
    pub fn predicate(&self, op: Op) -> Option<&str> {
        match op {
            Op::Read => self.read.as_deref(),
            Op::Insert => self.insert.as_deref(),
            Op::Update => self.update.as_deref(),
            Op::Delete => self.delete.as_deref(),
        }
    }

    /// `(predicate)` ready to splice into a `WHERE`, `0` when the operation is refused.
    /// A NULL result counts as refused.
    pub fn condition(&self, op: Op) -> String {
        match self.predicate(op) {
            Some(p) => format!("coalesce(({p}), 0)"),
            None => "0".into(),
        }
    }

    /// The identifiers (lowercase) the write predicates name: the columns a write
    /// check must see (a superset: a name used for another table's column counts too).
    pub fn write_names(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for op in [Op::Insert, Op::Update, Op::Delete] {
            if let Some(p) = self.predicate(op) {
                let mut toks = Vec::new();
                if tokenize(p, &mut toks).is_ok() {
                    out.extend(
                        toks.iter()
                            .filter(|t| matches!(t.kind, Kind::Word | Kind::Quoted))
                            .map(|t| ident_name(t, p)),
                    );
                }
            }
        }
        out
    }

    /// Whether an update may change `column`.
    pub fn may_change(&self, column: &str) -> bool {
        self.columns.as_ref().is_none_or(|c| c.contains(column))
    }
}

/// The parsed `SYNC_RULES`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncRules {
    tables: BTreeMap<String, TableRules>,
    /// Every named parameter the predicates use, without the colon.
    params: BTreeSet<String>,
}

/// Keys a table's rules may have (anything else is a typo, refused).
const KEYS: [&str; 6] = ["read", "write", "insert", "update", "delete", "columns"];

impl SyncRules {
    /// Parses and checks `SYNC_RULES`; every problem is a `CONFIG_ERROR` naming the
    /// table and key.
    pub fn parse(json: &str) -> Result<SyncRules> {
        let bad = |m: String| Error::Config(format!("SYNC_RULES: {m}"));
        let doc: Json = serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
        let Json::Object(map) = doc else {
            return Err(bad("must be an object of table name → rules".into()));
        };
        let mut rules = SyncRules::default();
        for (table, spec) in map {
            check_identifier("table", &table).map_err(|e| bad(e.to_string()))?;
            let Json::Object(spec) = spec else {
                return Err(bad(format!("{table}: rules must be an object")));
            };
            if let Some(k) = spec.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(bad(format!("{table}: unknown key {k:?} (use {})", KEYS.join(", "))));
            }
            let pred = |key: &str| -> Result<Option<String>> {
                match spec.get(key) {
                    None | Some(Json::Null) => Ok(None),
                    Some(Json::Bool(true)) => Ok(Some("1".into())),
                    Some(Json::Bool(false)) => Ok(Some("0".into())),
                    Some(Json::String(s)) => {
                        check_predicate(s).map_err(|m| bad(format!("{table}.{key}: {m}")))?;
                        Ok(Some(s.clone()))
                    }
                    Some(_) => Err(bad(format!(
                        "{table}.{key}: a predicate is a SQL string, true or false"
                    ))),
                }
            };
            let write = pred("write")?;
            let mut t = TableRules {
                read: pred("read")?,
                insert: pred("insert")?.or_else(|| write.clone()),
                update: pred("update")?.or_else(|| write.clone()),
                delete: pred("delete")?.or(write),
                columns: None,
            };
            if let Some(cols) = spec.get("columns") {
                let list = cols
                    .as_array()
                    .ok_or_else(|| bad(format!("{table}.columns: must be an array of column names")))?;
                let mut set = BTreeSet::new();
                for c in list {
                    let c = c
                        .as_str()
                        .ok_or_else(|| bad(format!("{table}.columns: must be an array of column names")))?;
                    check_identifier("column", c).map_err(|e| bad(format!("{table}.columns: {e}")))?;
                    set.insert(c.to_string());
                }
                t.columns = Some(set);
            }
            for op in [Op::Read, Op::Insert, Op::Update, Op::Delete] {
                if let Some(p) = t.predicate(op) {
                    rules.params.extend(param_names(p));
                }
            }
            rules.tables.insert(table, t);
        }
        Ok(rules)
    }

    pub fn table(&self, name: &str) -> Option<&TableRules> {
        self.tables.get(name)
    }

    /// The tables that sync through the gateway, sorted.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &TableRules)> {
        self.tables.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The named arguments (`:name`) the predicates use, from the token's claims.
    pub fn args(&self, claims: &Json) -> Vec<(String, Value)> {
        self.params
            .iter()
            .map(|p| (format!(":{p}"), claim_value(claims.get(p))))
            .collect()
    }
}

/// A claim as a SQL value: scalars as themselves (booleans as 0/1), arrays and objects
/// as JSON text, a missing claim as NULL.
fn claim_value(v: Option<&Json>) -> Value {
    match v {
        None | Some(Json::Null) => Value::Null,
        Some(Json::Bool(b)) => Value::Integer(*b as i64),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().unwrap_or(0.0)),
        },
        Some(Json::String(s)) => Value::Text(s.clone()),
        Some(other) => Value::Text(other.to_string()),
    }
}

/// A predicate is one SQL expression: balanced parentheses, no `;`, parameters only as
/// `:name` (claims). It is spliced into the gateway's statements inside parentheses,
/// so it can neither end a statement nor close one of theirs.
fn check_predicate(p: &str) -> std::result::Result<(), String> {
    let mut toks = Vec::new();
    tokenize(p, &mut toks).map_err(|e| e.to_string())?;
    if toks.is_empty() {
        return Err("empty predicate".into());
    }
    let mut depth = 0i32;
    for t in &toks {
        match t.kind {
            Kind::Punct(b';') => return Err("a predicate is one expression: no ';'".into()),
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced ')'".into());
                }
            }
            Kind::Param => {
                let text = t.text(p);
                let name = text.strip_prefix(':').unwrap_or("");
                let ok = !name.is_empty()
                    && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(format!(
                        "parameter {text}: claims are named :name (letters, digits and _)"
                    ));
                }
                if name.starts_with("_es_") {
                    return Err(format!("parameter {text} is reserved"));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    Ok(())
}

fn param_names(p: &str) -> Vec<String> {
    let mut toks = Vec::new();
    if tokenize(p, &mut toks).is_err() {
        return Vec::new();
    }
    toks.iter()
        .filter(|t| t.kind == Kind::Param)
        .filter_map(|t| t.text(p).strip_prefix(':').map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_write_shorthand_and_columns() {
        let r = SyncRules::parse(
            r#"{"todos": {"read": "owner = :sub", "write": "owner = :sub", "delete": false, "columns": ["title"]}}"#,
        )
        .unwrap();
        let t = r.table("todos").unwrap();
        assert_eq!(t.insert.as_deref(), Some("owner = :sub"));
        assert_eq!(t.delete.as_deref(), Some("0"));
        assert!(t.may_change("title") && !t.may_change("owner"));
        assert!(r.table("other").is_none());
        assert_eq!(
            r.args(&json!({"sub": "u1", "x": 1})),
            vec![(":sub".to_string(), Value::Text("u1".into()))]
        );
    }

    #[test]
    fn missing_operations_are_refused() {
        let r = SyncRules::parse(r#"{"t": {"read": true}}"#).unwrap();
        let t = r.table("t").unwrap();
        assert_eq!(t.condition(Op::Read), "coalesce((1), 0)");
        assert_eq!(t.condition(Op::Insert), "0");
    }

    #[test]
    fn claims_become_values() {
        let r =
            SyncRules::parse(r#"{"t": {"read": ":a = 1 AND :b AND :c IS NULL AND :d = '[1]' AND :e = 1.5"}}"#).unwrap();
        let args = r.args(&json!({"a": 1, "b": true, "d": [1], "e": 1.5}));
        assert_eq!(
            args,
            vec![
                (":a".into(), Value::Integer(1)),
                (":b".into(), Value::Integer(1)),
                (":c".into(), Value::Null),
                (":d".into(), Value::Text("[1]".into())),
                (":e".into(), Value::Real(1.5)),
            ]
        );
    }

    #[test]
    fn refuses_bad_rules() {
        let err = |j: &str| SyncRules::parse(j).unwrap_err();
        for j in [
            "[]",
            "{",
            r#"{"t": 1}"#,
            r#"{"t": {"raed": "1"}}"#,
            r#"{"t": {"read": 1}}"#,
            r#"{"t": {"read": "1; DROP TABLE t"}}"#,
            r#"{"t": {"read": "1) OR (1"}}"#,
            r#"{"t": {"read": "(1"}}"#,
            r#"{"t": {"read": "owner = ?"}}"#,
            r#"{"t": {"read": "owner = @sub"}}"#,
            r#"{"t": {"read": "owner = :_es_site"}}"#,
            r#"{"t": {"read": "'unterminated"}}"#,
            r#"{"t": {"read": ""}}"#,
            r#"{"a b": {"read": "1"}}"#,
            r#"{"_es_log": {"read": "1"}}"#,
            r#"{"t": {"columns": "a"}}"#,
            r#"{"t": {"columns": ["a-b"]}}"#,
        ] {
            assert_eq!(err(j).code(), "CONFIG_ERROR", "{j}");
        }
        // A ';' inside a string literal is just text.
        assert!(SyncRules::parse(r#"{"t": {"read": "note <> ';'"}}"#).is_ok());
    }
}
