//! Row state: one row of merge state per row of a replicated table.
//!
//! Every replicated table `t` has a shadow table `_es_row_t`, on the server and in every
//! replica, keyed by the row's primary key (the JSON array records carry). It holds the
//! row's presence — `_live` (1 live, 0 deleted) with its version `_pv` — and, for each
//! data column `c`, a value `c_c` with the version `v_c` (`printf('%016x', hlc) ||
//! site`) of the newest write to the cell. For last-writer-wins, text and custom
//! columns `c_c` is the merged value. Counters and sets keep their values in tables of
//! their own (per site, per tag: [`super::rules`]); their `c_c` only says whether the
//! newest write was a NULL (`c_c` NULL) or a value (1), so a NULL replicates as NULL
//! while the increments and elements underneath keep merging. A cell no write has
//! reached (`v_c` NULL: a column added after the row was written) shows the column's
//! default.
//!
//! One row per table row, rather than one per cell, is what makes a push cheap: a
//! chunk of 2,000 inserted rows is one upsert of 2,000 shadow rows, read straight out of
//! the chunk's JSON, instead of 12,000 cell rows staged and merged.
//!
//! Every statement here reads the chunk — a JSON array of records
//! ([`super::record`]) — from a [`Source`]: on the server the chunk is sent once and
//! kept in `_es_chunk` for the batch's statements; locally it is bound as `?1`.
//!
//! The merge rule per column: an incoming value replaces the held one only when its
//! version is greater (a missing column has no version and changes nothing). It is
//! idempotent, commutative and associative, so a retried or reordered chunk changes
//! nothing, and every replica converges:
//!
//! ```text
//! c_x = CASE WHEN excluded.v_x > coalesce(v_x, '') THEN excluded.c_x ELSE c_x END
//! ```

use super::policy::{Column, Policy, TableSpec};

/// Where a statement reads the chunk and the writer's site from.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// SQL for the chunk's JSON text.
    pub chunk: &'static str,
    /// SQL for the site id that wrote the chunk.
    pub site: &'static str,
}

/// On the server: the chunk stored by [`STORE_CHUNK`] at the start of the batch — the
/// row at rowid 0, which that statement replaces: a row left in `_es_chunk` by
/// anyone else is never merged instead of the pusher's own chunk.
pub const SERVER: Source = Source {
    chunk: "(SELECT j FROM _es_chunk WHERE rowid = 0)",
    site: "(SELECT site FROM _es_chunk WHERE rowid = 0)",
};

/// Locally: `?1` the chunk, `?2` the writer's site.
pub const LOCAL: Source = Source {
    chunk: "?1",
    site: "?2",
};

/// The first statement of a server push (`?1` the chunk, `?2` the writer's site).
pub const STORE_CHUNK: &str = "INSERT OR REPLACE INTO _es_chunk (rowid, j, site) VALUES (0, ?1, ?2)";
/// The last statement of a server push (it clears any row left by others, too).
pub const DROP_CHUNK: &str = "DELETE FROM _es_chunk";

/// The shadow table's name.
pub fn shadow(table: &str) -> String {
    format!("\"_es_row_{table}\"")
}

/// The columns of the shadow row (`c_<col>`, `v_<col>`): every data column.
pub fn row_columns(spec: &TableSpec) -> impl Iterator<Item = &str> {
    spec.data_columns().map(|(_, c)| c.name.as_str())
}

/// The shadow columns `spec` needs that `existing` (the shadow's column names; empty
/// when there is no shadow yet) lacks, as `ALTER TABLE … ADD COLUMN` statements: for a
/// table that gained columns, and for a shadow made before counter and set columns
/// had a NULL flag there.
pub fn add_columns_sql(spec: &TableSpec, existing: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if existing.is_empty() {
        // No shadow yet: [`ddl`] makes it whole.
        return out;
    }
    for c in row_columns(spec) {
        for (name, ty) in [(format!("c_{c}"), ""), (format!("v_{c}"), " TEXT")] {
            if !existing.iter().any(|e| e.eq_ignore_ascii_case(&name)) {
                out.push(format!("ALTER TABLE {} ADD COLUMN {name}{ty}", shadow(&spec.name)));
            }
        }
    }
    out
}

/// The shadow's column names, from `SELECT name FROM pragma_table_info(…)`.
pub fn shadow_info_sql(table: &str) -> String {
    format!("SELECT name FROM pragma_table_info('_es_row_{table}')")
}

/// What a record's value of a column (`t` its JSON type, `r` its raw `->>` value,
/// `col` the column's name in the data object `d`) stores in the shadow's `c_<col>`.
fn shadow_expr(policy: Policy, col: &str, t: &str, r: &str) -> String {
    match policy {
        Policy::Lww | Policy::Text | Policy::Custom => {
            format!(
                "CASE {t} WHEN 'object' THEN {} WHEN 'array' THEN NULL ELSE {r} END",
                tagged(col)
            )
        }
        // A counter record is the writer's totals (an array); NULL is a null write.
        Policy::Counter => format!("CASE {t} WHEN 'null' THEN NULL ELSE 1 END"),
        // A set record is an edit (an object); a NULL write is an edit with "null": true.
        Policy::Set => {
            format!("CASE WHEN {t} = 'null' OR ({t} = 'object' AND json_extract({r}, '$.null')) THEN NULL ELSE 1 END")
        }
    }
}

/// [`shadow_expr`] done in Rust, for this replica's own records bound straight into
/// the shadow ([`super::own`]).
pub fn shadow_value(policy: Policy, v: &serde_json::Value) -> crate::remote::Value {
    use crate::remote::Value;
    match policy {
        Policy::Lww | Policy::Text | Policy::Custom => super::record::decode_value(v),
        Policy::Counter if v.is_null() => Value::Null,
        Policy::Set if v.is_null() || v.get("null").is_some_and(|n| n == &serde_json::Value::Bool(true)) => Value::Null,
        Policy::Counter | Policy::Set => Value::Integer(1),
    }
}

fn columns_with(spec: &TableSpec, policies: &[Policy]) -> Vec<String> {
    spec.data_columns()
        .filter(|(_, c)| policies.contains(&c.policy))
        .map(|(_, c)| c.name.clone())
        .collect()
}

/// `CREATE TABLE IF NOT EXISTS` for the shadow of `spec`.
pub fn ddl(spec: &TableSpec) -> String {
    let cols: String = row_columns(spec).map(|c| format!(", c_{c}, v_{c} TEXT")).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} (pk TEXT PRIMARY KEY, _pv TEXT, _live INTEGER{cols}) WITHOUT ROWID",
        shadow(&spec.name)
    )
}

/// The chunk's records of `table`, one per row: `pk` (canonical JSON), `op`, `ver`
/// and `d` (the data object).
///
/// Each record's text is taken out of the chunk once (`e`): every `json_each` value
/// read renders the element again, and every function applied to it parses it again.
fn records(src: Source, table: &str) -> String {
    format!(
        "e AS MATERIALIZED (SELECT value AS v FROM json_each({chunk})), \
         x AS MATERIALIZED (SELECT json(v -> 2) AS pk, v ->> 3 AS op, printf('%016x', v ->> 0) || {site} AS ver, \
         v -> 4 AS d FROM e WHERE v ->> 1 = '{table}')",
        site = src.site,
        chunk = src.chunk,
    )
}

/// [`records`] with, besides, `base`, `hlc`, `xcol` (the column of a custom record)
/// and `rec` (the record's JSON), for the statements about custom values.
fn custom_records(src: Source, table: &str) -> String {
    format!(
        "e AS MATERIALIZED (SELECT value AS v FROM json_each({chunk})), \
         x AS MATERIALIZED (SELECT json(v -> 2) AS pk, v ->> 3 AS op, printf('%016x', v ->> 0) || {site} AS ver, \
         v -> 4 AS d, v ->> 5 AS base, v ->> 0 AS hlc, (SELECT key FROM json_each(v -> 4) LIMIT 1) AS xcol, v AS rec \
         FROM e WHERE v ->> 1 = '{table}' AND v ->> 3 = 'x')",
        site = src.site,
        chunk = src.chunk,
    )
}

/// A column's value in a record's data object `d`, decoded as [`super::record`] encodes
/// it: a BLOB is `{"b": hex}`, ±∞ `{"r": "inf"}`, a text edit `{"t": text, …}`.
pub fn value(col: &str) -> String {
    format!(
        "CASE json_type(d, '$.{col}') WHEN 'object' THEN {} WHEN 'array' THEN NULL ELSE d ->> '{col}' END",
        tagged(col)
    )
}

/// [`value`] of a column known to hold an object.
fn tagged(col: &str) -> String {
    let e = format!("d -> '{col}'");
    format!(
        "CASE WHEN {e} ->> 'b' IS NOT NULL THEN unhex({e} ->> 'b') WHEN {e} ->> 'r' = 'inf' THEN 9e999 \
         WHEN {e} ->> 'r' = '-inf' THEN -9e999 ELSE {e} ->> 't' END"
    )
}

fn newer(v: &str) -> String {
    format!("excluded.{v} > coalesce({v}, '')")
}

/// The merge rule for a shadow upsert: each version and its value, and the presence,
/// taken only from a greater version.
pub fn merge_set(spec: &TableSpec) -> String {
    let mut sets = vec![
        format!("_live = CASE WHEN {} THEN excluded._live ELSE _live END", newer("_pv")),
        format!("_pv = CASE WHEN {} THEN excluded._pv ELSE _pv END", newer("_pv")),
    ];
    for c in row_columns(spec) {
        let v = format!("v_{c}");
        sets.push(format!(
            "c_{c} = CASE WHEN {} THEN excluded.c_{c} ELSE c_{c} END",
            newer(&v)
        ));
        sets.push(format!("{v} = CASE WHEN {} THEN excluded.{v} ELSE {v} END", newer(&v)));
    }
    format!("ON CONFLICT (pk) DO UPDATE SET {}", sets.join(", "))
}

/// Merges the chunk's inserts, updates and deletes of `spec` (and, locally, the custom
/// values the server accepted) into its shadow. On the server custom columns are left
/// to [`custom_sql`]'s compare-and-set.
pub fn upsert_sql(spec: &TableSpec, src: Source, server: bool) -> String {
    let mut policies = vec![Policy::Lww, Policy::Text, Policy::Counter, Policy::Set];
    if !server {
        policies.push(Policy::Custom);
    }
    let cols = columns_with(spec, &policies);
    let policy_of = |c: &str| {
        spec.columns
            .iter()
            .find(|x| x.name == c)
            .map_or(Policy::Lww, |x| x.policy)
    };
    let ops = if server { "'i', 'u', 'd'" } else { "'i', 'u', 'd', 'x'" };
    let names: String = cols.iter().map(|c| format!(", c_{c}, v_{c}")).collect();
    // Each column's JSON type and raw value are read once (`t_c`, `r_c`); only a
    // tagged value (an object: BLOB, ±∞, text edit) is looked at again.
    let raw: String = cols
        .iter()
        .map(|c| format!(", json_type(d, '$.{c}') AS t_{c}, d ->> '{c}' AS r_{c}"))
        .collect();
    let exprs: String = cols
        .iter()
        .map(|c| {
            format!(
                ", {}, CASE WHEN t_{c} IS NOT NULL THEN ver END",
                shadow_expr(policy_of(c), c, &format!("t_{c}"), &format!("r_{c}"))
            )
        })
        .collect();
    format!(
        "WITH {x}, y AS MATERIALIZED (SELECT pk, op, ver, d{raw} FROM x WHERE op IN ({ops})) \
         INSERT INTO {s} (pk, _pv, _live{names}) SELECT pk, CASE WHEN op IN ('i', 'd') THEN ver END, \
         CASE op WHEN 'i' THEN 1 WHEN 'd' THEN 0 END{exprs} FROM y WHERE true {set}",
        x = records(src, &spec.name),
        s = shadow(&spec.name),
        set = merge_set(spec),
    )
}

/// Server only: the compare-and-set of custom columns — a value is taken when the
/// version its writer saw (`base`) is still the current one — and the log entries of
/// the custom records that won (a losing one is reported by [`conflicts_sql`], resolved
/// by its writer and pushed again against the new version).
pub fn custom_sql(spec: &TableSpec) -> Vec<String> {
    let x = custom_records(SERVER, &spec.name);
    let s = shadow(&spec.name);
    let mut out = Vec::new();
    let custom = columns_with(spec, &[Policy::Custom]);
    for c in &custom {
        let mine = format!("op = 'x' AND xcol = '{c}'");
        out.push(format!(
            "WITH {x} UPDATE {s} SET c_{c} = y.val, v_{c} = y.ver FROM (SELECT pk, ver, base, {v} AS val FROM x \
             WHERE {mine} AND base IS NOT NULL) y WHERE {s}.pk = y.pk AND {s}.v_{c} = y.base",
            v = value(c)
        ));
        out.push(format!(
            "WITH {x} INSERT INTO {s} (pk, c_{c}, v_{c}) SELECT pk, {v}, ver FROM x WHERE {mine} AND base IS NULL \
             ON CONFLICT (pk) DO UPDATE SET c_{c} = excluded.c_{c}, v_{c} = excluded.v_{c} WHERE v_{c} IS NULL",
            v = value(c)
        ));
    }
    if !custom.is_empty() {
        out.push(format!(
            "WITH {x} INSERT INTO _es_log (id, site, rec) SELECT x.ver || 'x' || x.xcol, {site}, x.rec FROM x \
             JOIN {s} s ON s.pk = x.pk WHERE x.op = 'x' AND {held} = x.ver ON CONFLICT (id) DO NOTHING",
            site = SERVER.site,
            held = held_version(&custom, "s"),
        ));
    }
    out
}

/// `CASE x.xcol WHEN 'a' THEN s.v_a … END`: the held version of a custom record's column.
fn held_version(custom: &[String], s: &str) -> String {
    let arms: String = custom.iter().map(|c| format!(" WHEN '{c}' THEN {s}.v_{c}")).collect();
    format!("CASE x.xcol{arms} END")
}

/// Server only: every record of the chunk that is not a custom one, into the log once
/// (its id is its version and op).
pub fn log_sql() -> String {
    format!(
        "WITH e AS MATERIALIZED (SELECT value AS v FROM json_each({chunk})) \
         INSERT INTO _es_log (id, site, rec) SELECT printf('%016x', v ->> 0) || {site} || (v ->> 3), {site}, v \
         FROM e WHERE v ->> 3 <> 'x' ON CONFLICT (id) DO NOTHING",
        site = SERVER.site,
        chunk = SERVER.chunk,
    )
}

/// Server only: the custom values of the chunk that lost their compare-and-set, with
/// the server's current value and version (`hlc, tbl, pk, col, val, ver`), for tables
/// with custom columns. A custom record whose id is in the log was accepted — now, or
/// by an earlier attempt whose answer was lost — and is never reported (resolving it
/// again would apply the writer's change twice).
pub fn conflicts_sql(spec: &TableSpec) -> Option<String> {
    let custom = columns_with(spec, &[Policy::Custom]);
    if custom.is_empty() {
        return None;
    }
    let arms: String = custom.iter().map(|c| format!(" WHEN '{c}' THEN s.c_{c}")).collect();
    let held = held_version(&custom, "s");
    Some(format!(
        "WITH {x} SELECT x.hlc, '{t}', x.pk, x.xcol, CASE x.xcol{arms} END, {held} FROM x JOIN {s} s ON s.pk = x.pk \
         WHERE x.op = 'x' AND {held} <> x.ver AND NOT EXISTS (SELECT 1 FROM _es_log WHERE id = x.ver || 'x' || x.xcol)",
        x = custom_records(SERVER, &spec.name),
        t = spec.name,
        s = shadow(&spec.name),
    ))
}

/// Locally, after applying this replica's own records: whether any of them did not
/// become the merged state (the replica's clock ran behind another's), so the rows
/// must be rebuilt from the state instead of left as written.
pub fn lost_sql(spec: &TableSpec) -> String {
    let mut lost = vec!["(x.op IN ('i', 'd') AND s._pv IS NOT x.ver)".to_string()];
    for c in row_columns(spec) {
        lost.push(format!(
            "(json_type(x.d, '$.{c}') IS NOT NULL AND s.v_{c} IS NOT x.ver)"
        ));
    }
    format!(
        "WITH {x} SELECT EXISTS (SELECT 1 FROM x JOIN {s} s ON s.pk = x.pk WHERE x.op IN ('i', 'u', 'd', 'x') AND ({}))",
        lost.join(" OR "),
        x = records(LOCAL, &spec.name),
        s = shadow(&spec.name),
    )
}

/// A counter's value from its per-site totals in `_es_ctr` (rows matching `cell`):
/// `Σ (p − n)`, computed exactly and saturated to ±(2^63 − 1) — never wrapped, and
/// never the "integer overflow" error `sum()` raises, which made every later sync fail.
///
/// Each site's `p − n` fits 64 bits (both totals are 0 … 2^63 − 1); the sum is taken
/// in two halves, the high 32 bits and the low 32 bits of each, which cannot overflow
/// for fewer than 2^31 sites, and recombined with a range check.
pub fn counter_sum_sql(cell: &str) -> String {
    format!(
        "(SELECT CASE WHEN h > 2147483647 THEN 9223372036854775807 WHEN h < -2147483648 THEN -9223372036854775807 \
         ELSE max(h * 4294967296 + l, -9223372036854775807) END \
         FROM (SELECT hs + (ls >> 32) AS h, ls & 4294967295 AS l \
         FROM (SELECT coalesce(sum((p - n) >> 32), 0) AS hs, coalesce(sum((p - n) & 4294967295), 0) AS ls \
         FROM _es_ctr WHERE {cell})))"
    )
}

/// The SQL expression for one column's merged value, for the shadow row `s` (key `s.pk`).
pub(crate) fn merged_value(spec: &TableSpec, col: &Column) -> String {
    let name = &col.name;
    let cell = format!("tbl = '{}' AND pk = s.pk AND col = '{name}'", spec.name);
    let (c, v) = (format!("s.c_{name}"), format!("s.v_{name}"));
    let default = format!("({})", col.default.as_deref().unwrap_or("NULL"));
    match col.policy {
        Policy::Lww | Policy::Text | Policy::Custom => format!("CASE WHEN {v} IS NULL THEN {default} ELSE {c} END"),
        Policy::Counter => format!(
            "CASE WHEN {v} IS NOT NULL AND {c} IS NULL THEN NULL \
             WHEN {v} IS NULL AND NOT EXISTS (SELECT 1 FROM _es_ctr WHERE {cell}) THEN {default} ELSE {} END",
            counter_sum_sql(&cell)
        ),
        Policy::Set => format!(
            "CASE WHEN {v} IS NOT NULL AND {c} IS NULL THEN NULL \
             WHEN {v} IS NULL AND NOT EXISTS (SELECT 1 FROM _es_set WHERE {cell}) THEN {default} \
             ELSE (SELECT json_group_array(json(elem)) FROM (SELECT DISTINCT elem FROM _es_set WHERE {cell} AND alive = 1 ORDER BY elem)) END"
        ),
    }
}

/// Rebuilds the rows of `spec` that the chunk touched, from the state: upserts the live
/// ones, deletes the dead ones.
pub fn materialize_sql(spec: &TableSpec, src: Source) -> [String; 2] {
    let t = &spec.name;
    let keys = format!(
        "(SELECT DISTINCT json(r.value -> 2) AS pk FROM json_each({}) r WHERE r.value ->> 1 = '{t}') k",
        src.chunk
    );
    rebuild_sql(spec, &keys)
}

/// [`materialize_sql`] for the keys `keys` (a subquery `… k` with a column `pk`).
pub fn rebuild_sql(spec: &TableSpec, keys: &str) -> [String; 2] {
    let t = &spec.name;
    let s = shadow(t);
    let pk_names: Vec<String> = spec
        .pk
        .iter()
        .map(|&i| format!("\"{}\"", spec.columns[i].name))
        .collect();
    let pk_exprs: Vec<String> = (0..spec.pk.len()).map(|j| format!("k.pk ->> {j}")).collect();
    let mut names = pk_names.clone();
    let mut exprs = pk_exprs.clone();
    let mut sets = Vec::new();
    for (_, c) in spec.data_columns() {
        names.push(format!("\"{}\"", c.name));
        exprs.push(merged_value(spec, c));
        sets.push(format!("\"{0}\" = excluded.\"{0}\"", c.name));
    }
    let action = if sets.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", sets.join(", "))
    };
    [
        format!(
            "INSERT INTO \"{t}\" ({}) SELECT {} FROM {keys} JOIN {s} s ON s.pk = k.pk WHERE s._live = 1 \
             ON CONFLICT ({}) {action}",
            names.join(", "),
            exprs.join(", "),
            pk_names.join(", "),
        ),
        format!(
            "DELETE FROM \"{t}\" WHERE ({}) IN (SELECT {} FROM {keys} LEFT JOIN {s} s ON s.pk = k.pk \
             WHERE coalesce(s._live, 0) = 0)",
            pk_names.join(", "),
            pk_exprs.join(", "),
        ),
    ]
}

/// Bootstrap: the server's shadow rows of `spec`, each value followed by a flag for
/// ±∞ (which Hrana's JSON cannot carry: they arrive as null).
pub fn dump_sql(spec: &TableSpec) -> String {
    let cols: String = row_columns(spec)
        .map(|c| format!(", c_{c}, v_{c}, CASE WHEN c_{c} = 9e999 THEN 1 WHEN c_{c} = -9e999 THEN -1 ELSE 0 END"))
        .collect();
    format!("SELECT pk, _pv, _live{cols} FROM {}", shadow(&spec.name))
}

/// Bootstrap: merges one dumped shadow row (`pk, _pv, _live`, then value and version
/// per row column) into the local shadow.
pub fn load_sql(spec: &TableSpec) -> String {
    let cols: Vec<&str> = row_columns(spec).collect();
    let names: String = cols.iter().map(|c| format!(", c_{c}, v_{c}")).collect();
    let marks = ", ?".repeat(3 + 2 * cols.len());
    format!(
        "INSERT INTO {} (pk, _pv, _live{names}) VALUES ({}) {}",
        shadow(&spec.name),
        &marks[2..],
        merge_set(spec)
    )
}

/// This replica's own records of `spec`, as rows for the shadow (`pk, _pv, _live`, then
/// value and version per row column): the head, one row's placeholders, and the tail
/// of a multi-row upsert that takes a row only when every version it carries is
/// greater than the one held. A record folded from a local write almost always is
/// (this replica's clock has just ticked past everything it has seen), so counting
/// the rows taken tells whether the merge would have kept anything else.
pub fn own_upsert(spec: &TableSpec) -> (String, String, String, usize) {
    let cols: Vec<&str> = row_columns(spec).collect();
    let names: String = cols.iter().map(|c| format!(", c_{c}, v_{c}")).collect();
    let width = 3 + 2 * cols.len();
    let row = format!("(json(?){})", ", ?".repeat(width - 1));
    let mut all_newer = vec![format!("(excluded._pv IS NULL OR {})", newer("_pv"))];
    for c in &cols {
        let v = format!("v_{c}");
        all_newer.push(format!("(excluded.{v} IS NULL OR {})", newer(&v)));
    }
    (
        format!("INSERT INTO {} (pk, _pv, _live{names}) VALUES", shadow(&spec.name)),
        row,
        format!("{} WHERE {}", merge_set(spec), all_newer.join(" AND ")),
        width,
    )
}

/// The state of `spec` in the earlier layout (`_es_cv`: one row per table, key and
/// column; column `-` the row's presence), merged into the shadow by version and then
/// deleted — run wherever `_es_cv` still exists (a file replica or a server written by
/// an earlier edgesync), so no merged value or version is left behind.
pub fn migrate_sql(spec: &TableSpec) -> [String; 2] {
    let t = &spec.name;
    let pick = |col: &str, field: &str| format!("max(CASE col WHEN '{col}' THEN {field} END)");
    let cols: Vec<&str> = row_columns(spec).collect();
    let names: String = cols.iter().map(|c| format!(", c_{c}, v_{c}")).collect();
    let exprs: String = cols
        .iter()
        .map(|c| format!(", {}, {}", pick(c, "val"), pick(c, "ver")))
        .collect();
    [
        format!(
            "INSERT INTO {s} (pk, _pv, _live{names}) SELECT pk, {pv}, {live}{exprs} FROM _es_cv WHERE tbl = '{t}' \
             GROUP BY pk {set}",
            s = shadow(t),
            pv = pick("-", "ver"),
            live = pick("-", "val"),
            set = merge_set(spec),
        ),
        format!("DELETE FROM _es_cv WHERE tbl = '{t}'"),
    ]
}
