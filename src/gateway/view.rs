//! The row as the rules see it, and the helpers that splice rules into statements.
//!
//! Rules are predicates over a table's columns. The gateway evaluates them over the
//! row's *merged state* (the shadow row, [`crate::sync::rows`]) rather than the table:
//! a deleted row keeps its last values there, so a delete record is shown to exactly the
//! users who could read the row, and the state is what the merge has just decided.
//! [`row_view`] is that state with the table's column names; every statement here
//! evaluates a predicate with the view aliased as the table (`"todos"`), so a rule may
//! write `owner` or `todos.owner`.
//!
//! Every helper name the gateway's statements use starts with `_es_` — reserved for
//! tables and columns ([`crate::sync::policy::check_identifier`]) and refused as a
//! parameter name by the rules parser — so a predicate never resolves to one of them.

use crate::router::lexer::{tokenize, Kind};
use crate::sql::{Statement, Value};
use crate::sync::rows;
use crate::sync::TableSpec;

/// `SELECT s.pk AS _es_pk, s._live AS _es_live, <each column by name> FROM _es_row_<t> s`.
pub fn row_view(spec: &TableSpec) -> String {
    let mut cols = vec!["s.pk AS _es_pk".to_string(), "s._live AS _es_live".to_string()];
    for (i, c) in spec.columns.iter().enumerate() {
        let expr = match spec.pk.iter().position(|&p| p == i) {
            Some(j) => format!("s.pk ->> {j}"),
            None => rows::merged_value(spec, c),
        };
        cols.push(format!("{expr} AS \"{}\"", c.name));
    }
    format!("SELECT {} FROM {} s", cols.join(", "), rows::shadow(&spec.name))
}

/// `(<row view>) AS "<table>"`: a FROM item predicates can be evaluated over.
pub fn aliased_view(spec: &TableSpec) -> String {
    format!("({}) AS \"{}\"", row_view(spec), spec.name)
}

/// The statement `sql` with the named arguments in `args` that it uses (a server may
/// refuse arguments a statement has no parameter for).
pub fn bind(sql: String, args: &[(String, Value)]) -> Statement {
    let mut toks = Vec::new();
    let mut used: Vec<&str> = Vec::new();
    if tokenize(&sql, &mut toks).is_ok() {
        used = toks
            .iter()
            .filter(|t| t.kind == Kind::Param)
            .map(|t| t.text(&sql))
            .collect();
    }
    let picked: Vec<(String, Value)> = args
        .iter()
        .filter(|(name, _)| used.contains(&name.as_str()))
        .cloned()
        .collect();
    let mut stmt = Statement::new(sql);
    stmt.named_args = picked;
    stmt
}

/// A SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{Column, Policy};

    fn spec() -> TableSpec {
        let col = |name: &str, pk: usize, policy: Policy| Column {
            name: name.into(),
            decl_type: "TEXT".into(),
            pk,
            policy,
            default: None,
        };
        TableSpec {
            name: "t".into(),
            columns: vec![
                col("id", 1, Policy::Lww),
                col("owner", 0, Policy::Lww),
                col("n", 0, Policy::Counter),
            ],
            pk: vec![0],
            create_sql: String::new(),
        }
    }

    #[test]
    fn view_names_every_column() {
        let v = row_view(&spec());
        assert!(v.starts_with(
            "SELECT s.pk AS _es_pk, s._live AS _es_live, s.pk ->> 0 AS \"id\", \
             CASE WHEN s.v_owner IS NULL THEN (NULL) ELSE s.c_owner END AS \"owner\", CASE"
        ));
        assert!(aliased_view(&spec()).ends_with(") AS \"t\""));
    }

    #[test]
    fn binds_only_used_arguments() {
        let args = vec![
            (":sub".to_string(), Value::from("a")),
            (":role".to_string(), Value::from("b")),
        ];
        let s = bind("SELECT :sub, ':role'".into(), &args);
        assert_eq!(s.named_args.len(), 1);
        assert_eq!(s.named_args[0].0, ":sub");
        assert_eq!(quote("it's"), "'it''s'");
    }
}
