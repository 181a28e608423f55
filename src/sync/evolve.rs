//! Declared tables and how they evolve: `replicate()` again after `ALTER TABLE … ADD
//! COLUMN`.
//!
//! A replicated table is what was *declared*: `_es_tables` keeps the `CREATE TABLE`
//! and the policies of the last `replicate()`, and the capture triggers list exactly
//! those columns. The live table may move ahead of it (the app ran an `ALTER`); then:
//!
//! - `replicate()` again accepts columns that were **added** (nullable, or with a
//!   constant default — what SQLite's `ADD COLUMN` allows), each with its policy. The
//!   captures still queued are folded with the old declaration first, the triggers
//!   and the row state are remade for the new one, the column's definition is kept
//!   (`_es_columns`) for the server, and rows already written into the new column
//!   between the `ALTER` and `replicate()` are queued as updates. The next `sync()`
//!   adds the column on the server ([`super::net`]'s schema step), from where other
//!   replicas are told `SCHEMA_MISMATCH` until they `migrate()` (or run the same
//!   `ALTER` and `replicate()`).
//! - a changed type, key or policy, or a dropped or renamed column is refused
//!   (`SCHEMA_ERROR`): records already on the server were merged by the old rules.
//! - until `replicate()` is called again, `sync()` fails with `SCHEMA_MISMATCH`
//!   ([`live_mismatch`]): a column written locally and never replicated would be a
//!   silent divergence.

use rusqlite::{params, Connection};

use super::policy::{Column, Policy, TableSpec};
use crate::error::{Error, Result};
use crate::store::sql_error;

/// The local (and server) table of added columns' definitions, for `ALTER TABLE …
/// ADD COLUMN` elsewhere.
pub const COLUMNS_DDL: &str = "CREATE TABLE IF NOT EXISTS _es_columns (tbl TEXT NOT NULL, col TEXT NOT NULL, \
  def TEXT NOT NULL, PRIMARY KEY (tbl, col)) WITHOUT ROWID";

/// The declaration of `table`: its stored `CREATE TABLE` (run in a scratch in-memory
/// database to read its columns back) with the stored policies. Falls back to the live
/// table when the statement cannot be run alone (a collation only the app registers).
pub fn declared_spec(
    conn: &Connection,
    table: &str,
    create_sql: &str,
    policies: &[(String, Policy)],
) -> Result<TableSpec> {
    let scratch = Connection::open_in_memory().map_err(sql_error)?;
    let mut spec = match scratch.execute_batch(create_sql) {
        Ok(()) => TableSpec::introspect(&scratch, table, policies)?,
        Err(_) => TableSpec::introspect(conn, table, policies)?,
    };
    spec.create_sql = create_sql.to_string();
    Ok(spec)
}

/// The columns `new` (the live table, with the policies just given) adds to `old`
/// (the declaration), in table order. Any other difference is a `SCHEMA_ERROR`.
pub fn added_columns<'a>(old: &TableSpec, new: &'a TableSpec) -> Result<Vec<&'a Column>> {
    let t = &old.name;
    for o in &old.columns {
        let Some(n) = new.columns.iter().find(|n| n.name == o.name) else {
            return Err(Error::Schema(format!(
                "{t}.{} was dropped or renamed; a replicated table can only gain columns",
                o.name
            )));
        };
        let what = if !n.decl_type.eq_ignore_ascii_case(&o.decl_type) {
            Some(format!("type {:?} to {:?}", o.decl_type, n.decl_type))
        } else if n.pk != o.pk {
            Some("its place in the primary key".to_string())
        } else if n.policy != o.policy {
            Some(format!("policy {} to {}", o.policy.as_str(), n.policy.as_str()))
        } else {
            None
        };
        if let Some(what) = what {
            return Err(Error::Schema(format!(
                "{t}.{} is already replicated; changing its {what} is not supported \
                 (records on the server were merged by the old rule)",
                o.name
            )));
        }
    }
    let added: Vec<&Column> = new
        .columns
        .iter()
        .filter(|n| !old.columns.iter().any(|o| o.name == n.name))
        .collect();
    for c in &added {
        // A counter's rows that existed before the column count from 0: a default
        // other than 0 would show there but be missing from every sum.
        let zero = matches!(c.default.as_deref().map(str::trim), None | Some("NULL" | "null" | "0"));
        if c.policy == Policy::Counter && !zero {
            return Err(Error::Schema(format!(
                "{t}.{} is an added counter column with DEFAULT {}: an added counter's default must be 0 or NULL",
                c.name,
                c.default.as_deref().unwrap_or_default()
            )));
        }
    }
    Ok(added)
}

/// The `ADD COLUMN` definitions of `added`, as written in the app's `ALTER TABLE`.
///
/// SQLite records an added column by inserting `", <definition>"` before the closing
/// parenthesis of the stored `CREATE TABLE`, so the definitions are what `new_sql`
/// has that `old_sql` has not. When that is not how the two differ (the table was
/// re-created, say), each definition is rebuilt from the column's type, `NOT NULL`
/// and default.
pub fn column_defs(
    conn: &Connection,
    table: &str,
    old_sql: &str,
    new_sql: &str,
    added: &[&Column],
) -> Result<Vec<String>> {
    if let Some(defs) = diff_defs(old_sql, new_sql, added) {
        return Ok(defs);
    }
    let mut stmt = conn
        .prepare("SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info(?1)")
        .map_err(sql_error)?;
    let info: Vec<(String, String, bool, Option<String>)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(sql_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_error)?;
    Ok(added
        .iter()
        .map(|c| {
            let (_, ty, notnull, default) = info.iter().find(|i| i.0 == c.name).cloned().unwrap_or_default();
            let mut def = format!("\"{}\"", c.name);
            if !ty.is_empty() {
                def.push_str(&format!(" {ty}"));
            }
            if notnull {
                def.push_str(" NOT NULL");
            }
            if let Some(d) = default {
                def.push_str(&format!(" DEFAULT {d}"));
            }
            def
        })
        .collect())
}

/// [`column_defs`] by difference, when `new_sql` is `old_sql` with `", def1, def2…"`
/// inserted once, each definition starting with its column's name.
fn diff_defs(old_sql: &str, new_sql: &str, added: &[&Column]) -> Option<Vec<String>> {
    let prefix = old_sql.bytes().zip(new_sql.bytes()).take_while(|(a, b)| a == b).count();
    let rest = old_sql.len() - prefix;
    let suffix = old_sql[prefix..]
        .bytes()
        .rev()
        .zip(new_sql[prefix..].bytes().rev())
        .take(rest)
        .take_while(|(a, b)| a == b)
        .count();
    if prefix + suffix != old_sql.len() || !old_sql.is_char_boundary(prefix) {
        return None;
    }
    let mut middle = new_sql.get(prefix..new_sql.len() - suffix)?;
    let mut defs = Vec::new();
    for (i, c) in added.iter().enumerate() {
        middle = middle.trim_start().strip_prefix(',').unwrap_or(middle).trim_start();
        if !column_starts(middle, &c.name) {
            return None;
        }
        let end = match added.get(i + 1) {
            None => middle.len(),
            Some(next) => middle
                .match_indices(',')
                .map(|(p, _)| p)
                .find(|&p| column_starts(&middle[p + 1..], &next.name))?,
        };
        defs.push(middle[..end].trim().to_string());
        middle = &middle[end..];
    }
    middle.trim().is_empty().then_some(defs)
}

/// Whether `s` (after spaces) starts with the column name `name` (bare or quoted).
fn column_starts(s: &str, name: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    [
        name.clone(),
        format!("\"{name}\""),
        format!("`{name}`"),
        format!("[{name}]"),
    ]
    .iter()
    .any(|n| {
        lower.starts_with(n.as_str()) && !lower[n.len()..].starts_with(|ch: char| ch.is_alphanumeric() || ch == '_')
    })
}

/// Rows written into the added columns between the app's `ALTER TABLE` and
/// `replicate()` (the old triggers did not capture those columns): queued as updates
/// from the column defaults to the values now in the row.
pub fn capture_added_sql(spec: &TableSpec, added: &[&Column]) -> String {
    let t = &spec.name;
    let is_added = |c: &Column| added.iter().any(|a| a.name == c.name);
    let default = |c: &Column| format!("({})", c.default.as_deref().unwrap_or("NULL"));
    let old: Vec<String> = spec
        .columns
        .iter()
        .map(|c| {
            if is_added(c) {
                default(c)
            } else {
                format!("\"{}\"", c.name)
            }
        })
        .collect();
    let new: Vec<String> = spec.columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let unchanged: Vec<String> = added
        .iter()
        .map(|c| format!("\"{}\" IS {}", c.name, default(c)))
        .collect();
    format!(
        "INSERT INTO _es_capture (tbl, op, old, new, hlc) SELECT '{t}', 'u', es_row({}), es_row({}), es_hlc() \
         FROM \"{t}\" WHERE NOT ({})",
        old.join(", "),
        new.join(", "),
        unchanged.join(" AND ")
    )
}

/// Stores the definitions of columns added to `table` (for the server's `ALTER`).
pub fn store_defs(conn: &Connection, table: &str, added: &[&Column], defs: &[String]) -> Result<()> {
    for (c, def) in added.iter().zip(defs) {
        store_def(conn, table, &c.name, def)?;
    }
    Ok(())
}

/// Stores the definition of one added column.
pub fn store_def(conn: &Connection, table: &str, col: &str, def: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO _es_columns (tbl, col, def) VALUES (?1, ?2, ?3) ON CONFLICT DO UPDATE SET def = excluded.def",
        params![table, col, def],
    )
    .map_err(sql_error)?;
    Ok(())
}

/// The shadow's column names.
pub fn shadow_columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&super::rows::shadow_info_sql(table)).map_err(sql_error)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(sql_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_error);
    names
}

/// `SCHEMA_MISMATCH` when the live table has columns its declaration lacks (an
/// `ALTER TABLE` not yet followed by `replicate()`), or lacks declared ones.
pub fn live_mismatch(conn: &Connection, spec: &TableSpec) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM pragma_table_info(?1)")
        .map_err(sql_error)?;
    let live: Vec<String> = stmt
        .query_map([&spec.name], |r| r.get(0))
        .map_err(sql_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_error)?;
    let extra: Vec<&String> = live
        .iter()
        .filter(|l| !spec.columns.iter().any(|c| &c.name == *l))
        .collect();
    let missing: Vec<&str> = spec
        .columns
        .iter()
        .filter(|c| !live.contains(&c.name))
        .map(|c| c.name.as_str())
        .collect();
    if !extra.is_empty() {
        return Err(Error::SchemaMismatch(format!(
            "{t} has columns {extra:?} that are not replicated: call replicate(\"{t}\", …) again to replicate \
             them (the next sync adds them on the server)",
            t = spec.name
        )));
    }
    if !missing.is_empty() {
        return Err(Error::SchemaMismatch(format!(
            "{} lacks the replicated columns {missing:?}: a replicated column cannot be dropped",
            spec.name
        )));
    }
    Ok(())
}
