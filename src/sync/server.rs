//! Writes made on the server by other SQL clients (`@libsql/client`, the Turso shell, a
//! backend): captured there by triggers, as records of the server's own site
//! ([`SERVER_SITE`]) with a version from the server's clock, and merged by the same
//! rules as a push — so every replica receives them.
//!
//! Each replicated table gets, on the server:
//!
//! - value checks (`BEFORE INSERT` / `BEFORE UPDATE OF …`): what a column's policy
//!   cannot hold is refused there too (`UNSUPPORTED_VALUE` through the client's error);
//!   a `text` column can be set on insert and set to NULL, but not changed to other
//!   text (a collaborative text changes by character edits, which plain SQL does not
//!   make): that `UPDATE` is refused with the reason;
//! - capture (`AFTER INSERT / UPDATE / DELETE`): the written row is compared with the
//!   merged state, and what differs becomes one record — a counter's change as the
//!   server site's new totals, a set's as tagged adds and removes, a text inserted on
//!   the server as a seed every replica turns into the same characters (see
//!   [`seed_update`]) — whose version is above the row's and the server clock's. The
//!   record is then merged exactly as a pushed chunk is (`_es_chunk` holds it while
//!   the push statements run, which also keeps these triggers from firing on the
//!   rows a push or the merge itself writes).
//!
//! Rows that were on the server before its triggers (a table the app already had, or
//! state that was dropped) are adopted once: [`adopt_sql`] touches every row, and the
//! capture records whatever differs from the merged state.

use super::policy::{Policy, TableSpec};
use super::rows::{self, SERVER};
use super::rules;
use crate::clock::site_id_from_str;

/// The site id of writes captured on the server. Not hexadecimal, so it is never a
/// replica's (16 hex digits); `~` sorts after them, so the server wins a tie.
pub const SERVER_SITE: &str = "~server";

/// The server's clock and scratch: `hlc` is the last version it gave out.
pub const SERVER_STATE_DDL: &str = "CREATE TABLE IF NOT EXISTS _es_server (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
INSERT INTO _es_server (k, v) VALUES ('hlc', 0) ON CONFLICT DO NOTHING";

/// The server's time in ms, in SQL.
pub const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

/// The trigger name prefix for `table`; the names also carry a hash of their SQL, so
/// a replica finds out whether the server's triggers are the ones it would make.
fn prefix(spec: &TableSpec) -> String {
    let body = [
        body_sql(spec, Event::Insert),
        body_sql(spec, Event::Update),
        body_sql(spec, Event::Delete),
    ]
    .concat();
    format!("_es_srv{:08x}_", site_id_from_str(&body) as u32)
}

/// `LIKE` pattern of every server trigger of `table` (any version).
pub fn trigger_pattern(table: &str) -> String {
    format!("_es\\_srv%\\_{table}\\_%")
}

#[derive(Clone, Copy, PartialEq)]
enum Event {
    Insert,
    Update,
    Delete,
}

/// The statements that create the server triggers of `spec`, and their names.
pub fn triggers(spec: &TableSpec) -> (Vec<String>, Vec<String>) {
    let p = prefix(spec);
    let t = &spec.name;
    let guard = "NOT EXISTS (SELECT 1 FROM _es_chunk)";
    let mut sql = Vec::new();
    let mut names = Vec::new();
    let checks = spec.check_trigger_sql(&p, guard);
    if !checks.is_empty() {
        for kind in ["ci", "cu"] {
            names.push(format!("{p}{t}_{kind}"));
        }
        sql.extend(checks.split('\n').map(str::to_string));
    }
    let texts: Vec<&str> = spec
        .data_columns()
        .filter(|(_, c)| c.policy == Policy::Text)
        .map(|(_, c)| c.name.as_str())
        .collect();
    if !texts.is_empty() {
        // A text with a history (a version) changes only by a replica's edits: plain
        // SQL may give it the same text again, or NULL. (On a row new to the merged
        // state, any text is seeded; see `column_record`.)
        let changed: Vec<String> = texts
            .iter()
            .map(|c| {
                format!(
                    "(NEW.\"{c}\" IS NOT NULL AND {} IS NOT NULL AND NEW.\"{c}\" IS NOT {})",
                    shadow_of(spec, &format!("s.v_{c}")),
                    shadow_of(spec, &format!("s.c_{c}"))
                )
            })
            .collect();
        let cols: Vec<String> = texts.iter().map(|c| format!("\"{c}\"")).collect();
        let message = format!(
            "{}{t}.{} is a text (collaborative) column: on the server a row's text can be inserted once or set to \
             NULL; change it through a replica",
            crate::error::UNSUPPORTED_VALUE_PREFIX,
            texts.join("/")
        );
        for (kind, event) in [
            ("cti", "INSERT".to_string()),
            ("ctu", format!("UPDATE OF {}", cols.join(", "))),
        ] {
            names.push(format!("{p}{t}_{kind}"));
            sql.push(format!(
                "CREATE TRIGGER IF NOT EXISTS \"{p}{t}_{kind}\" BEFORE {event} ON \"{t}\" WHEN {guard} AND ({}) \
                 BEGIN SELECT RAISE(ABORT, '{}'); END",
                changed.join(" OR "),
                message.replace('\'', "''")
            ));
        }
    }
    for (kind, event, ev) in [
        ("i", "INSERT", Event::Insert),
        ("u", "UPDATE", Event::Update),
        ("d", "DELETE", Event::Delete),
    ] {
        names.push(format!("{p}{t}_{kind}"));
        // Whether the write changes anything is decided inside (see `scratch_sql`).
        let when = guard;
        sql.push(format!(
            "CREATE TRIGGER IF NOT EXISTS \"{p}{t}_{kind}\" AFTER {event} ON \"{t}\" WHEN {when} BEGIN {} END",
            body_sql(spec, ev)
        ));
    }
    (sql, names)
}

/// Touches every row of `spec`'s table on the server, so the capture triggers record
/// the rows that differ from the merged state (rows no replica has seen).
pub fn adopt_sql(spec: &TableSpec) -> String {
    let first = &spec.columns[spec.pk[0]].name;
    format!("UPDATE \"{}\" SET \"{first}\" = \"{first}\"", spec.name)
}

/// The row's primary key as the JSON array records carry.
fn pk(spec: &TableSpec, row: &str) -> String {
    let cols: Vec<String> = spec
        .pk
        .iter()
        .map(|&i| format!("{row}.\"{}\"", spec.columns[i].name))
        .collect();
    format!("json_array({})", cols.join(", "))
}

/// A subquery over the row's shadow (alias `s`), `expr` its result.
fn shadow_of(spec: &TableSpec, expr: &str) -> String {
    format!(
        "(SELECT {expr} FROM {} s WHERE s.pk = {})",
        rows::shadow(&spec.name),
        pk(spec, "NEW")
    )
}

/// A value the capture computed once for the row being written (see [`scratch_sql`]).
fn sv(key: &str) -> String {
    format!("(SELECT v FROM _es_server WHERE k = '{key}')")
}

/// The merged state of the row being written, before the write, computed once into
/// `_es_server`: whether the row is live, each column's merged value (`m:<col>`), a
/// text column's version (`v:<col>`), a counter's exact total (`sum:<col>`). The
/// statements after it read these instead of repeating the subqueries (which made
/// each trigger tens of KB of SQL).
fn scratch_sql(spec: &TableSpec) -> String {
    let mut rows = vec![format!("('live', coalesce({}, 0))", shadow_of(spec, "s._live"))];
    for (_, c) in spec.data_columns() {
        rows.push(format!(
            "('m:{}', {})",
            c.name,
            shadow_of(spec, &rows::merged_value(spec, c))
        ));
        if c.policy == Policy::Text {
            rows.push(format!(
                "('v:{0}', {1})",
                c.name,
                shadow_of(spec, &format!("s.v_{}", c.name))
            ));
        }
        if c.policy == Policy::Counter {
            rows.push(format!("('sum:{}', {})", c.name, rows::counter_sum_sql(&cell(spec, c))));
        }
    }
    format!("INSERT OR REPLACE INTO _es_server (k, v) VALUES {}", rows.join(", "))
}

/// Whether the row is live in the merged state (before the write being captured).
fn live() -> String {
    format!("{} = 1", sv("live"))
}

/// Whether column `c` of `NEW` differs from the merged state (for `text`: only a
/// cell no write has reached, or a NULL — other changes are refused before).
///
/// Values differ as replicas tell them apart: by type too (`0` and `0.0` are equal to
/// SQL's `IS`, but a REAL written over an INTEGER is a write).
fn column_differs(c: &super::policy::Column) -> String {
    let merged = sv(&format!("m:{}", c.name));
    let n = format!("NEW.\"{}\"", c.name);
    let distinct = format!("({n} IS NOT {merged} OR typeof({n}) <> typeof({merged}))");
    match c.policy {
        Policy::Text => format!(
            "({distinct} AND ({n} IS NULL OR {} IS NULL))",
            sv(&format!("v:{}", c.name))
        ),
        _ => distinct,
    }
}

/// Whether the write changes the merged state: the row is new to it, or some column
/// differs from it. (An insert is compared like an update: the merged state may hold
/// the row already, when the table and its state had drifted apart.)
fn differs(spec: &TableSpec) -> String {
    let mut any = vec![format!("NOT ({})", live())];
    any.extend(spec.data_columns().map(|(_, c)| column_differs(c)));
    any.join(" OR ")
}

/// The `_es_ctr` / `_es_set` condition of `NEW`'s cell of column `c`.
fn cell(spec: &TableSpec, c: &super::policy::Column) -> String {
    format!(
        "tbl = '{}' AND pk = {} AND col = '{}'",
        spec.name,
        pk(spec, "NEW"),
        c.name
    )
}

/// A SQL value as the JSON text records carry ([`super::record::encode_value`]).
fn encode(v: &str) -> String {
    format!(
        "CASE typeof({v}) WHEN 'null' THEN 'null' WHEN 'integer' THEN CAST({v} AS TEXT) \
         WHEN 'real' THEN CASE WHEN {v} = 9e999 THEN '{{\"r\":\"inf\"}}' WHEN {v} = -9e999 THEN '{{\"r\":\"-inf\"}}' \
         ELSE printf('%!.17g', {v}) END \
         WHEN 'text' THEN json_quote({v}) ELSE json_object('b', lower(hex({v}))) END"
    )
}

/// The JSON text of column `c`'s value in the server's record for `NEW`.
fn column_record(spec: &TableSpec, c: &super::policy::Column) -> String {
    let n = format!("NEW.\"{}\"", c.name);
    let cell = cell(spec, c);
    match c.policy {
        Policy::Lww | Policy::Custom => encode(&n),
        Policy::Counter => {
            let total = |f: &str| format!("coalesce((SELECT {f} FROM _es_ctr WHERE {cell} AND site = '{SERVER_SITE}'), 0)");
            let delta = format!("({n} - {})", sv(&format!("sum:{}", c.name)));
            format!(
                "CASE WHEN {n} IS NULL THEN 'null' ELSE json_array(\
                 CASE WHEN {delta} > 0 THEN min({p} + {delta}, 9223372036854775807) ELSE {p} END, \
                 CASE WHEN {delta} < 0 THEN min({m} - {delta}, 9223372036854775807) ELSE {m} END) END",
                p = total("p"),
                m = total("n"),
            )
        }
        Policy::Set => {
            let canon = format!(
                "SELECT DISTINCT CASE WHEN type IN ('object', 'array') THEN json(value) ELSE json_quote(value) END AS e \
                 FROM json_each(coalesce({n}, '[]'))"
            );
            let alive = format!("SELECT elem, tag FROM _es_set WHERE {cell} AND alive = 1");
            let adds = format!(
                "(SELECT json_group_array(json(e)) FROM ({canon}) WHERE e NOT IN (SELECT elem FROM ({alive})))"
            );
            let removes = format!(
                "(SELECT json_group_array(json_array(json(elem), tag)) FROM ({alive}) WHERE elem NOT IN (SELECT e FROM ({canon})))"
            );
            format!(
                "CASE WHEN {n} IS NULL THEN json_object('+', json('[]'), '-', json({removes}), 'null', json('true')) \
                 ELSE json_object('+', json({adds}), '-', json({removes})) END"
            )
        }
        Policy::Text => format!(
            "CASE WHEN {n} IS NULL THEN json_object('t', NULL, 'u', '') ELSE json_object('t', {n}, 'u', '', 'seed', json('true')) END"
        ),
    }
}

/// The record's data object for `NEW`: every column for a row new to the merged
/// state, else the columns that differ from it.
fn data_sql(spec: &TableSpec) -> String {
    let parts: Vec<String> = spec
        .data_columns()
        .map(|(_, c)| {
            format!(
                "SELECT '{}' AS k, {} AS v WHERE NOT ({}) OR {}",
                c.name,
                column_record(spec, c),
                live(),
                column_differs(c)
            )
        })
        .collect();
    if parts.is_empty() {
        return "'{}'".into();
    }
    format!(
        "(SELECT json_group_object(k, json(v)) FROM ({}))",
        parts.join(" UNION ALL ")
    )
}

/// The greatest HLC among the row's versions (16 hex digits each), + 1.
fn row_floor(spec: &TableSpec, row: &str) -> String {
    let mut vers = vec!["coalesce(s._pv, '')".to_string()];
    vers.extend(rows::row_columns(spec).map(|c| format!("coalesce(s.v_{c}, '')")));
    let max = if vers.len() == 1 {
        vers.remove(0)
    } else {
        format!("max({})", vers.join(", "))
    };
    let digits: String = (1..=16)
        .map(|i| {
            format!(
                "((instr('0123456789abcdef', substr(m, {i}, 1)) - 1) << {})",
                4 * (16 - i)
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    format!(
        "coalesce((SELECT {digits} FROM (SELECT {max} AS m FROM {} s WHERE s.pk = {}) WHERE m <> ''), 0) + 1",
        rows::shadow(&spec.name),
        pk(spec, row)
    )
}

/// The statements of one capture: take a version, build the record into `_es_chunk`,
/// run a push's merge statements over it, clear the chunk.
fn body_sql(spec: &TableSpec, ev: Event) -> String {
    let t = &spec.name;
    let row = if ev == Event::Delete { "OLD" } else { "NEW" };
    let hlc = "(SELECT v FROM _es_server WHERE k = 'hlc')";
    let delete = format!("json_array({hlc}, '{t}', {}, 'd', NULL)", pk(spec, "OLD"));
    let upsert = format!(
        "json_array({hlc}, '{t}', {}, CASE WHEN {} THEN 'u' ELSE 'i' END, json({}))",
        pk(spec, "NEW"),
        live(),
        data_sql(spec)
    );
    let changes = sv("any");
    let chunk = match ev {
        Event::Delete => format!("json_array(json({delete}))"),
        Event::Insert => format!("CASE WHEN {changes} THEN json_array(json({upsert})) ELSE '[]' END"),
        // A changed key is a delete of the old row and an insert of the new one.
        Event::Update => format!(
            "CASE WHEN {} IS NOT {} THEN json_array(json({delete}), json({upsert})) \
             WHEN {changes} THEN json_array(json({upsert})) ELSE '[]' END",
            pk(spec, "OLD"),
            pk(spec, "NEW")
        ),
    };
    let floor = match ev {
        Event::Update => format!("{}, {}", row_floor(spec, "NEW"), row_floor(spec, "OLD")),
        _ => row_floor(spec, row),
    };
    let pol = serde_json::json!({ t.as_str(): spec.policies_json() }).to_string();
    let mut stmts = vec![format!(
        "INSERT OR REPLACE INTO _es_chunk (rowid, j, site) VALUES (0, '[]', '{SERVER_SITE}')"
    )];
    if ev != Event::Delete {
        stmts.push(scratch_sql(spec));
        stmts.push(format!(
            "INSERT OR REPLACE INTO _es_server (k, v) VALUES ('any', {})",
            differs(spec)
        ));
    }
    stmts.extend([
        format!("UPDATE _es_server SET v = max(v + 1, {NOW_MS} << 16, {floor}) WHERE k = 'hlc'"),
        format!("UPDATE _es_chunk SET j = {chunk} WHERE rowid = 0"),
    ]);
    if super::replica::has_cells(spec) {
        stmts.push(rules::STAGE.replace("?1", &format!("'{}'", pol.replace('\'', "''"))));
        stmts.extend(rules::merge_sql().iter().map(|s| s.to_string()));
    }
    stmts.push(rows::upsert_sql(spec, SERVER, false));
    stmts.push(rows::log_sql());
    let [materialize, unmaterialize] = rows::materialize_sql(spec, SERVER);
    stmts.push(materialize);
    if ev != Event::Insert {
        stmts.push(unmaterialize);
    }
    if super::replica::has_cells(spec) {
        stmts.push(rules::UNSTAGE.to_string());
    }
    stmts.push(rows::DROP_CHUNK.to_string());
    stmts.push("DELETE FROM _es_server WHERE k <> 'hlc'".to_string());
    stmts.iter().map(|s| format!("{}; ", with_inside(s))).collect()
}

/// `WITH … INSERT INTO t (…) SELECT …` as `INSERT INTO t (…) WITH … SELECT …`: a
/// trigger body takes a `WITH` only inside the `SELECT` (SQLite's grammar, and
/// sqld's parser with it). Other statements are returned as they are.
fn with_inside(sql: &str) -> String {
    if !sql.starts_with("WITH ") {
        return sql.to_string();
    }
    // Top-level positions (outside parentheses and quotes) of " INSERT INTO " and,
    // after it, of " SELECT ".
    let bytes = sql.as_bytes();
    let (mut depth, mut quoted) = (0i32, false);
    let mut insert = None;
    for i in 0..bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            _ if quoted || depth != 0 => {}
            _ => match insert {
                None if sql[i..].starts_with(" INSERT INTO ") => insert = Some(i),
                Some(at) if sql[i..].starts_with(" SELECT ") => {
                    return format!("{} {} {}", &sql[at + 1..i], &sql[..at], &sql[i + 1..]);
                }
                _ => {}
            },
        }
    }
    sql.to_string()
}

/// The text-CRDT update a replica applies for a text the server seeded (a `text`
/// column written by `INSERT` on the server, or adopted): the characters inserted at
/// the start by an agent derived from the record's version. Every replica makes the
/// same update, so applying it everywhere converges like any other edit.
pub fn seed_update(version: &str, text: &str) -> crate::error::Result<Vec<u8>> {
    let agent = site_id_from_str(version) & ((1 << 53) - 1);
    let mut doc = crate::crdt::text::Text::new(agent);
    let empty = doc.version().clone();
    doc.insert(0, text)?;
    Ok(doc.encode_update_since(&empty))
}
