//! Replicated tables: which columns merge how, checked against the real schema.
//!
//! `replicate("inventory", {stock: Counter, tags: Set})` reads the table's schema from
//! SQLite itself and refuses what the sync model cannot carry exactly — no primary key,
//! a primary key that is not INTEGER or TEXT, a counter on a non-INTEGER column, a
//! generated column — with a `SCHEMA_ERROR` naming the table and column.

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::store::sql_error;

/// How concurrent writes to one column merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Last writer wins, per column, by hybrid logical timestamp (ties by site id).
    Lww,
    /// A PN-counter: every replica's increments and decrements all count.
    Counter,
    /// An add-wins set stored as a JSON array (sorted, distinct).
    Set,
    /// Collaborative text: concurrent edits interleave instead of overwriting.
    Text,
    /// The application's resolver `(local, remote, base) => value`, with
    /// compare-and-set on the server.
    Custom,
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy> {
        Ok(match s {
            "lww" => Policy::Lww,
            "counter" => Policy::Counter,
            "set" => Policy::Set,
            "text" => Policy::Text,
            "custom" => Policy::Custom,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown policy {other:?}: use \"lww\", \"counter\", \"set\", \"text\" or \"custom\""
                )))
            }
        })
    }

    /// What a column of this policy cannot hold, as a SQL condition over `v` that is
    /// true when the value is fine, and the rule in words. `None`: any value.
    ///
    /// - `counter`: an INTEGER from −(2^63 − 1) to 2^63 − 1, or NULL. (A REAL such as
    ///   `1.5`, or the `1.2e19` that `6e18 + 6e18` overflows to, is refused; so is
    ///   −2^63, whose decrements a per-replica total cannot hold.)
    /// - `set`: NULL, or TEXT holding a JSON array of strings and integers (the
    ///   elements must compare the same everywhere: a float or an object could print
    ///   differently on another SQLite).
    /// - `text`: TEXT or NULL (INTEGER and REAL arrive as TEXT through the column's
    ///   TEXT affinity); a BLOB is refused.
    pub fn value_check(self, v: &str) -> Option<(String, &'static str)> {
        Some(match self {
            Policy::Lww | Policy::Custom => return None,
            Policy::Counter => (
                format!("typeof({v}) = 'null' OR (typeof({v}) = 'integer' AND {v} >= -9223372036854775807)"),
                "it holds integers from -(2^63 - 1) to 2^63 - 1, or NULL",
            ),
            Policy::Set => (
                format!(
                    "CASE WHEN {v} IS NULL THEN 1 WHEN typeof({v}) <> 'text' OR NOT json_valid({v}) THEN 0 \
                     WHEN json_type({v}) <> 'array' THEN 0 \
                     ELSE NOT EXISTS (SELECT 1 FROM json_each({v}) WHERE type NOT IN ('text', 'integer')) END"
                ),
                "it holds a JSON array of strings and integers (as TEXT), or NULL",
            ),
            Policy::Text => (format!("typeof({v}) IN ('text', 'null')"), "it holds TEXT or NULL"),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Lww => "lww",
            Policy::Counter => "counter",
            Policy::Set => "set",
            Policy::Text => "text",
            Policy::Custom => "custom",
        }
    }
}

/// One column of a replicated table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// The declared type as written (`"INTEGER"`, `"text"`, `""`).
    pub decl_type: String,
    /// Position in the primary key (1-based), 0 when not part of it.
    pub pk: usize,
    pub policy: Policy,
    /// The column's `DEFAULT` expression as SQL text (`pragma_table_info`'s
    /// `dflt_value`): what a row shows in a column no write has reached yet (a column
    /// added after the row was written).
    pub default: Option<String>,
}

/// A replicated table: its columns in table order, and its primary key.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<Column>,
    /// Indexes into `columns`, in primary-key order.
    pub pk: Vec<usize>,
    /// The `CREATE TABLE` statement, used to create the table on the server.
    pub create_sql: String,
}

/// How a refused value's trigger error starts; [`crate::error::Error::from_sql_message`]
/// turns such an error into `UNSUPPORTED_VALUE`.
pub const VALUE_ERROR_PREFIX: &str = crate::error::UNSUPPORTED_VALUE_PREFIX;

/// Table and column names must be plain identifiers: they are spliced into generated
/// SQL and JSON paths, so anything else is refused rather than quoted and hoped for.
pub fn check_identifier(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::Schema(format!(
            "{kind} name {name:?} is not supported: replicated names must be letters, digits and _ and start with a letter or _"
        )));
    }
    if name.to_ascii_lowercase().starts_with("_es_") || name.to_ascii_lowercase().starts_with("sqlite_") {
        return Err(Error::Schema(format!("{kind} name {name:?} is reserved")));
    }
    Ok(())
}

/// SQLite's type affinity rules (section 3.1 of the datatype docs), enough to tell
/// which columns can hold a counter or JSON text.
pub(crate) fn affinity(decl: &str) -> &'static str {
    let d = decl.to_ascii_uppercase();
    if d.contains("INT") {
        "INTEGER"
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        "TEXT"
    } else if d.contains("BLOB") || d.is_empty() {
        "BLOB"
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

impl TableSpec {
    /// Reads `table`'s schema from `conn` and attaches `policies` (column → policy;
    /// unnamed columns are LWW).
    pub fn introspect(conn: &Connection, table: &str, policies: &[(String, Policy)]) -> Result<TableSpec> {
        check_identifier("table", table)?;
        let create_sql: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .ok();
        let create_sql = create_sql.ok_or_else(|| {
            Error::Schema(format!(
                "unknown table {table:?}: create it locally before calling replicate()"
            ))
        })?;
        let mut stmt = conn
            .prepare("SELECT name, type, pk, hidden, dflt_value FROM pragma_table_xinfo(?1) ORDER BY cid")
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([table], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(sql_error)?;
        let mut columns = Vec::new();
        for row in rows {
            let (name, decl_type, pk, hidden, default) = row.map_err(sql_error)?;
            if hidden != 0 {
                return Err(Error::Schema(format!(
                    "{table}.{name} is a generated or hidden column, which cannot be replicated"
                )));
            }
            check_identifier("column", &name)?;
            columns.push(Column {
                name,
                decl_type,
                pk: pk as usize,
                policy: Policy::Lww,
                default,
            });
        }
        let mut pk: Vec<usize> = (0..columns.len()).filter(|&i| columns[i].pk > 0).collect();
        crate::sort::sort_by_key(&mut pk, |&i| columns[i].pk);
        if pk.is_empty() {
            return Err(Error::Schema(format!(
                "table {table:?} has no PRIMARY KEY: rows of a replicated table need a stable identity"
            )));
        }
        for &i in &pk {
            let c = &columns[i];
            if !matches!(affinity(&c.decl_type), "INTEGER" | "TEXT") {
                return Err(Error::Schema(format!(
                    "primary key column {table}.{} has type {:?}: only INTEGER and TEXT keys are supported",
                    c.name, c.decl_type
                )));
            }
        }
        for (col, policy) in policies {
            let c = columns
                .iter_mut()
                .find(|c| &c.name == col)
                .ok_or_else(|| Error::Schema(format!("unknown column {table}.{col} in replicate() policies")))?;
            if c.pk > 0 && *policy != Policy::Lww {
                return Err(Error::Schema(format!(
                    "{table}.{col} is part of the primary key and cannot have the {} policy",
                    policy.as_str()
                )));
            }
            let aff = affinity(&c.decl_type);
            let fits = match policy {
                Policy::Counter => aff == "INTEGER",
                Policy::Set | Policy::Text => aff == "TEXT",
                Policy::Lww | Policy::Custom => true,
            };
            if !fits {
                return Err(Error::Schema(format!(
                    "{table}.{col} has type {:?}: the {} policy needs {} column",
                    c.decl_type,
                    policy.as_str(),
                    if *policy == Policy::Counter {
                        "an INTEGER"
                    } else {
                        "a TEXT"
                    }
                )));
            }
            c.policy = *policy;
        }
        Ok(TableSpec {
            name: table.to_string(),
            columns,
            pk,
            create_sql,
        })
    }

    /// Columns that are not part of the primary key, with their indexes.
    pub fn data_columns(&self) -> impl Iterator<Item = (usize, &Column)> {
        self.columns.iter().enumerate().filter(|(_, c)| c.pk == 0)
    }

    /// `{"a":"lww","b":"counter"}`: the policies as the merge SQL reads them.
    pub fn policies_json(&self) -> serde_json::Value {
        // Inserted one by one: `collect()` would compile a sort of its own (src/sort.rs).
        let mut map = serde_json::Map::new();
        for (_, c) in self.data_columns() {
            map.insert(c.name.clone(), serde_json::Value::from(c.policy.as_str()));
        }
        serde_json::Value::Object(map)
    }

    /// The value checks of the columns whose policy cannot hold every SQLite value
    /// (see [`Policy::value_check`]), for the row `new` (`NEW`) and, for an update, the
    /// row `old` (`OLD`): `(column, holds, refusal)`, where `holds` is a condition and
    /// `refusal` a `SELECT RAISE(ABORT, …)` naming the table, column and rule.
    pub fn value_checks(&self, new: &str, old: Option<&str>) -> Vec<(&str, String, String)> {
        self.data_columns()
            .filter_map(|(_, c)| {
                let v = format!("{new}.\"{}\"", c.name);
                let (mut holds, mut rule) = c.policy.value_check(&v)?;
                if let (Some(old), Policy::Counter) = (old, c.policy) {
                    // One update may move a counter by at most 2^63 − 1 (a replica's
                    // running totals could not hold more): `5` to `−(2^63 − 1)`
                    // overflows the subtraction, which SQLite turns into a REAL.
                    let o = format!("{old}.\"{}\"", c.name);
                    holds = format!("({holds}) AND ({o} IS NULL OR {v} IS NULL OR typeof({v} - {o}) = 'integer')");
                    rule = "it holds integers from -(2^63 - 1) to 2^63 - 1, or NULL, and one update moves it by at most 2^63 - 1";
                }
                let message = format!(
                    "{VALUE_ERROR_PREFIX}{}.{} is a {} column: {rule}",
                    self.name,
                    c.name,
                    c.policy.as_str()
                );
                Some((c.name.as_str(), holds, format!("SELECT RAISE(ABORT, '{}')", message.replace('\'', "''"))))
            })
            .collect()
    }

    /// `BEFORE INSERT` and `BEFORE UPDATE OF …` triggers named `<prefix><table>_ci` and
    /// `…_cu` that refuse, in the writing statement itself, a value the column's policy
    /// cannot hold (`UNSUPPORTED_VALUE`), when `when` (SQL) holds. Empty when every
    /// column takes any value.
    pub fn check_trigger_sql(&self, prefix: &str, when: &str) -> String {
        let t = &self.name;
        let trigger = |kind: &str, event: String, checks: Vec<(&str, String, String)>| {
            let all: Vec<String> = checks.iter().map(|c| format!("({})", c.1)).collect();
            let body: String = checks
                .iter()
                .map(|(_, holds, raise)| format!("{raise} WHERE NOT ({holds}); "))
                .collect();
            format!(
                "CREATE TRIGGER IF NOT EXISTS \"{prefix}{t}_{kind}\" BEFORE {event} ON \"{t}\" \
                 WHEN {when} AND NOT ({}) BEGIN {body}END;",
                all.join(" AND ")
            )
        };
        let inserts = self.value_checks("NEW", None);
        if inserts.is_empty() {
            return String::new();
        }
        let cols: Vec<String> = inserts.iter().map(|c| format!("\"{}\"", c.0)).collect();
        let updates = self.value_checks("NEW", Some("OLD"));
        format!(
            "{}\n{}",
            trigger("ci", "INSERT".into(), inserts),
            trigger("cu", format!("UPDATE OF {}", cols.join(", ")), updates)
        )
    }

    /// The capture triggers: each write to the table records the old and new row
    /// images in `_es_capture`, in the same transaction as the write itself; values a
    /// column's policy cannot hold are refused first ([`Self::check_trigger_sql`]).
    pub fn trigger_sql(&self) -> String {
        let t = &self.name;
        let row = |prefix: &str| {
            let cols: Vec<String> = self
                .columns
                .iter()
                .map(|c| format!("{prefix}.\"{}\"", c.name))
                .collect();
            format!("es_row({})", cols.join(", "))
        };
        format!(
            "CREATE TRIGGER IF NOT EXISTS \"_es_{t}_i\" AFTER INSERT ON \"{t}\" WHEN es_capture() BEGIN \
               INSERT INTO _es_capture(tbl, op, old, new, hlc) VALUES ('{t}', 'i', NULL, {new}, es_hlc()); END;\n\
             CREATE TRIGGER IF NOT EXISTS \"_es_{t}_u\" AFTER UPDATE ON \"{t}\" WHEN es_capture() BEGIN \
               INSERT INTO _es_capture(tbl, op, old, new, hlc) VALUES ('{t}', 'u', {old}, {new}, es_hlc()); END;\n\
             CREATE TRIGGER IF NOT EXISTS \"_es_{t}_d\" AFTER DELETE ON \"{t}\" WHEN es_capture() BEGIN \
               INSERT INTO _es_capture(tbl, op, old, new, hlc) VALUES ('{t}', 'd', {old}, NULL, es_hlc()); END;",
            new = row("NEW"),
            old = row("OLD"),
        ) + "\n"
            + &self.check_trigger_sql("_es_", "es_capture()")
    }

    /// Drops every capture and check trigger of the table (before creating them for
    /// a new shape).
    pub fn drop_triggers_sql(&self) -> String {
        ["i", "u", "d", "ci", "cu"]
            .iter()
            .map(|k| format!("DROP TRIGGER IF EXISTS \"_es_{}_{k}\";", self.name))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Column names and declared types, to compare with the server's copy.
    pub fn shape(&self) -> Vec<(String, String, usize)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.decl_type.to_ascii_uppercase(), c.pk))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(sql: &str) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(sql).unwrap();
        c
    }

    #[test]
    fn reads_columns_and_policies() {
        let c = conn("create table inv (sku text primary key, stock integer not null, tags text, note)");
        let spec = TableSpec::introspect(
            &c,
            "inv",
            &[("stock".into(), Policy::Counter), ("tags".into(), Policy::Set)],
        )
        .unwrap();
        assert_eq!(spec.pk, [0]);
        assert_eq!(spec.columns[1].policy, Policy::Counter);
        assert_eq!(spec.columns[3].policy, Policy::Lww);
        assert_eq!(
            spec.policies_json().to_string(),
            r#"{"note":"lww","stock":"counter","tags":"set"}"#
        );
    }

    #[test]
    fn refuses_what_cannot_be_replicated() {
        let c = conn(
            "create table nokey (a, b); create table realkey (k real primary key, v);
             create table t (id integer primary key, n text, g as (id * 2));
             create table u (id integer primary key, n text, c integer)",
        );
        let err = |t: &str, p: &[(String, Policy)]| TableSpec::introspect(&c, t, p).unwrap_err();
        assert!(err("missing", &[]).to_string().contains("unknown table"));
        assert!(err("nokey", &[]).to_string().contains("no PRIMARY KEY"));
        assert!(err("realkey", &[]).to_string().contains("only INTEGER and TEXT"));
        assert!(err("t", &[]).to_string().contains("generated"));
        assert!(err("u", &[("zz".into(), Policy::Lww)])
            .to_string()
            .contains("unknown column u.zz"));
        assert!(err("u", &[("n".into(), Policy::Counter)])
            .to_string()
            .contains("needs an INTEGER"));
        assert!(err("u", &[("c".into(), Policy::Text)])
            .to_string()
            .contains("needs a TEXT"));
        assert!(err("u", &[("id".into(), Policy::Counter)])
            .to_string()
            .contains("primary key"));
        assert_eq!(err("nokey", &[]).code(), "SCHEMA_ERROR");
        assert!(check_identifier("table", "a b").is_err());
        assert!(check_identifier("table", "_es_x").is_err());
    }
}
