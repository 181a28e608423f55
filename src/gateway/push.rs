//! A push through the gateway: the rules checked and the merge run in one transaction.
//!
//! The batch, on the primary, in order:
//!
//! 1. (first push of a site in this isolate) the site is bound to the user, or found
//!    bound to them; a site another user or a direct replica writes under fails the
//!    batch before anything is written (a forged site id could shadow another writer's
//!    log entries).
//! 2. (a chunk editing text cells) the text guard: the cells' documents the gateway
//!    merged the chunk's updates into are still the server's ([`super::text`]);
//! 3. per table, one statement checks every touched row against the rules and records
//!    the refused ones in `_es_gw_refused` ([`check_sql`]);
//! 4. the accepted records are stored as the chunk, and the sync engine's own merge
//!    of that chunk runs ([`crate::sync::chunk::server_merge`]) — the same statements
//!    a replica syncing straight to sqld sends (with, for text cells, the merged texts
//!    set in the shadow before the rows are rebuilt, and the documents saved);
//! 5. the refusals are read back and written to the audit trail; the server's state of
//!    the refused rows the user may read is read for the replica to restore.
//!
//! Rules see a row's *net* change: a row written several times in one chunk (inserted
//! then updated, say) is checked once, as the row before the chunk and the row the
//! chunk's records leave, and all its records are accepted or refused together.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value as Json};

use super::protocol::{PushResponse, Refusal};
use super::rules::{Op, SyncRules, TableRules};
use super::state;
use super::text::TextMerge;
use super::validate::{Valid, PERMISSION_DENIED};
use super::view::{bind, quote};
use crate::error::{Error, Result};
use crate::sql::{ResultSet, Statement, Value};
use crate::sync::chunk::server_merge;
use crate::sync::record::encode_value;
use crate::sync::{rows, Policy, TableSpec};

/// One row a chunk touches, with the net effect of its records.
#[derive(Debug, Clone, PartialEq)]
pub struct NetRow {
    pub table: String,
    pub pk: String,
    /// The last record's operation.
    pub op: char,
    /// Its records (indexes into the valid records), in chunk order.
    pub records: Vec<usize>,
}

/// Groups the valid records by row; returns the rows and, per record, its row's index.
pub fn net_rows(valid: &[Valid]) -> (Vec<NetRow>, Vec<usize>) {
    let mut rows: Vec<NetRow> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut row_of = Vec::with_capacity(valid.len());
    for (k, v) in valid.iter().enumerate() {
        let i = *index.entry((&v.table, &v.pk)).or_insert_with(|| {
            rows.push(NetRow {
                table: v.table.clone(),
                pk: v.pk.clone(),
                op: v.op,
                records: Vec::new(),
            });
            rows.len() - 1
        });
        rows[i].op = v.op;
        rows[i].records.push(k);
        row_of.push(i);
    }
    (rows, row_of)
}

/// `:_es_rows`: `[table, pk, op, data]` per row, the data cut to the columns the rules
/// look at (see [`check_sql`]).
fn rows_json(rows: &[NetRow], valid: &[Valid], rules: &SyncRules, specs: &HashMap<String, TableSpec>) -> String {
    let mut keep: HashMap<&str, Vec<String>> = HashMap::new();
    let mut out = String::with_capacity(rows.len() * 48);
    out.push('[');
    for (i, r) in rows.iter().enumerate() {
        let cols = keep.entry(r.table.as_str()).or_insert_with(|| {
            let (Some(spec), Some(tr)) = (specs.get(&r.table), rules.table(&r.table)) else {
                return Vec::new();
            };
            let names = tr.write_names();
            spec.data_columns()
                .filter(|(_, c)| names.contains(&c.name.to_ascii_lowercase()) || !tr.may_change(&c.name))
                .map(|(_, c)| c.name.clone())
                .collect()
        });
        // The data of its non-delete records, later ones over earlier ones.
        let mut data: Map<String, Json> = Map::new();
        for &k in &r.records {
            let d: Json = serde_json::from_str(&valid[k].data).unwrap_or(Json::Null);
            for (c, v) in d.as_object().into_iter().flatten() {
                if cols.contains(c) {
                    data.insert(c.clone(), v.clone());
                }
            }
        }
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        out.push_str(&Json::from(r.table.as_str()).to_string());
        out.push(',');
        out.push_str(&r.pk);
        out.push_str(",\"");
        out.push(r.op);
        out.push_str("\",");
        out.push_str(&Json::Object(data).to_string());
        out.push(']');
    }
    out.push(']');
    out
}

/// Where [`check_sql`] reads the rows to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// `:_es_rows`: the net change of each row ([`NetRow`]), when some row has several
    /// records in the chunk.
    Net,
    /// The stored chunk itself, when every row has one record (the common case: no
    /// second copy of the records travels).
    Chunk,
}

/// The statement that records in `_es_gw_refused` each row of `spec` that the rules
/// refuse (see the module docs and [`super::rules`]).
pub fn check_sql(spec: &TableSpec, rules: &TableRules, src: Rows) -> String {
    let t = &spec.name;
    let rows = match src {
        Rows::Net => format!(
            "SELECT key AS _es_ri, json(value -> 1) AS _es_pk, value ->> 2 AS _es_op, value -> 3 AS d \
             FROM json_each(:_es_rows) WHERE value ->> 0 = {}",
            quote(t)
        ),
        Rows::Chunk => format!(
            "SELECT key AS _es_ri, json(value -> 2) AS _es_pk, value ->> 3 AS _es_op, value -> 4 AS d \
             FROM json_each({}) WHERE value ->> 1 = {}",
            rows::SERVER.chunk,
            quote(t)
        ),
    };
    let alias = format!("\"{t}\"");
    // Only the columns a write predicate names, or that may not change, are looked at.
    let names = rules.write_names();
    let data_cols: Vec<(&str, Policy)> = spec
        .data_columns()
        .filter(|(_, c)| names.contains(&c.name.to_ascii_lowercase()) || !rules.may_change(&c.name))
        .map(|(_, c)| (c.name.as_str(), c.policy))
        .collect();
    let merged: Vec<&str> = data_cols
        .iter()
        .filter(|(_, p)| matches!(p, Policy::Lww | Policy::Text | Policy::Custom))
        .map(|(c, _)| *c)
        .collect();
    let mut x_cols: String = merged
        .iter()
        .map(|c| {
            format!(
                ", json_type(d, '$.{c}') AS \"_es_t_{c}\", {} AS \"_es_v_{c}\"",
                rows::value(c)
            )
        })
        .collect();
    // Whether the records name a column that may not change (counters and sets too,
    // whose merged value the "row after" cannot show).
    for (c, _) in data_cols
        .iter()
        .filter(|(c, _)| !merged.contains(c) && !rules.may_change(c))
    {
        x_cols.push_str(&format!(", json_type(d, '$.{c}') AS \"_es_t_{c}\""));
    }
    let mut w_cols = Vec::new();
    for (j, &i) in spec.pk.iter().enumerate() {
        w_cols.push(format!("x._es_pk ->> {j} AS \"{}\"", spec.columns[i].name));
    }
    for (c, _) in &data_cols {
        if merged.contains(c) {
            w_cols.push(format!(
                "CASE WHEN x.\"_es_t_{c}\" IS NOT NULL THEN x.\"_es_v_{c}\" ELSE o.\"{c}\" END AS \"{c}\""
            ));
        } else {
            w_cols.push(format!("o.\"{c}\" AS \"{c}\""));
        }
        if !rules.may_change(c) {
            w_cols.push(format!("o.\"{c}\" AS \"_es_o_{c}\""));
            w_cols.push(format!("x.\"_es_t_{c}\" AS \"_es_n_{c}\""));
        }
    }
    // A column outside `columns` may not be named by an update of an existing row,
    // whatever its policy; an insert that finds the row (a concurrent insert of the same
    // key) may name a plain or custom column with the value it already has. A counter,
    // set or text edit is refused outright: its merged value is not the value pushed
    // (a text edit's update need not even match its rendered text).
    let fixed: String = data_cols
        .iter()
        .filter(|(c, _)| !rules.may_change(c))
        .map(|(c, p)| match p {
            Policy::Lww | Policy::Custom => format!(
                " AND {alias}.\"{c}\" IS {alias}.\"_es_o_{c}\" AND ({alias}._es_op = 'i' OR {alias}.\"_es_n_{c}\" IS NULL)"
            ),
            _ => format!(" AND {alias}.\"_es_n_{c}\" IS NULL"),
        })
        .collect();
    let (ins, upd, del) = (
        rules.condition(Op::Insert),
        rules.condition(Op::Update),
        rules.condition(Op::Delete),
    );
    let tq = quote(t);
    let refuse = |from: &str, when: &str, cond: &str, why: &str| {
        format!(
            "SELECT {alias}._es_ri, {tq}, {alias}._es_pk, {} FROM {from} AS {alias} WHERE {when} AND NOT ({cond})",
            quote(why)
        )
    };
    let o = "_es_o";
    let w = "_es_w";
    let view = format!("({}) v", super::view::row_view(spec));
    let live = format!("{alias}._es_live = 1");
    let old = format!("{alias}._es_old = 1");
    let new = format!("{alias}._es_old <> 1");
    let del_op = format!("{alias}._es_op = 'd'");
    let up_op = format!("{alias}._es_op <> 'd'");
    let checks = [
        refuse(
            o,
            &format!("{live} AND {del_op}"),
            &del,
            &format!("the rules of {t} do not allow deleting this row"),
        ),
        refuse(
            o,
            &format!("{live} AND {up_op}"),
            &upd,
            &format!("the rules of {t} do not allow updating this row"),
        ),
        refuse(
            w,
            &format!("{old} AND {up_op}"),
            &format!("{upd}{fixed}"),
            &format!("the rules of {t} do not allow this change (the row after it, or a column that may not change)"),
        ),
        refuse(
            w,
            &format!("{new} AND {up_op}"),
            &ins,
            &format!("the rules of {t} do not allow inserting this row"),
        ),
        refuse(
            w,
            &format!("{new} AND {del_op}"),
            &del,
            &format!("the rules of {t} do not allow deleting this row"),
        ),
    ];
    format!(
        "WITH _es_x AS MATERIALIZED (SELECT _es_ri, _es_pk, _es_op{x_cols} FROM ({rows})), \
         _es_o AS MATERIALIZED (SELECT x._es_ri AS _es_ri, x._es_op AS _es_op, v.* FROM _es_x x JOIN {view} ON v._es_pk = x._es_pk), \
         _es_w AS MATERIALIZED (SELECT x._es_ri AS _es_ri, x._es_pk AS _es_pk, x._es_op AS _es_op, \
           coalesce(o._es_live, 0) AS _es_old, {w_cols} FROM _es_x x LEFT JOIN _es_o o ON o._es_ri = x._es_ri) \
         INSERT OR IGNORE INTO _es_gw_refused (ri, tbl, pk, why) {checks}",
        view = view,
        w_cols = w_cols.join(", "),
        checks = checks.join(" UNION ALL "),
    )
}

/// Drops the refused rows' records from the stored chunk (only when there are any).
/// The row stays (empty of records if every one was refused): while `_es_chunk` has a
/// row, the server's capture triggers ([`crate::sync`]'s `server.rs`) leave the
/// merge's writes alone, so a gateway push is logged once, as a direct push is.
const DROP_REFUSED: &str =
    "UPDATE _es_chunk SET j = (SELECT json_group_array(json(e.value)) FROM json_each(_es_chunk.j) e \
     WHERE NOT EXISTS (SELECT 1 FROM _es_gw_refused g WHERE g.tbl = e.value ->> 1 AND g.pk = json(e.value -> 2))) \
     WHERE rowid = 0 AND EXISTS (SELECT 1 FROM _es_gw_refused)";

/// Writes the refused records to the audit trail: those the rules refused (read from the
/// stored chunk, before [`DROP_REFUSED`]) and those refused before any SQL (`:_es_early`).
const AUDIT: &str = "INSERT INTO _es_gw_audit (at, sub, site, tbl, pk, op, code, reason) \
     SELECT :_es_now, :_es_sub, :_es_site, g.tbl, g.pk, e.value ->> 3, 'PERMISSION_DENIED', g.why \
     FROM json_each((SELECT j FROM _es_chunk WHERE rowid = 0)) e JOIN _es_gw_refused g ON g.tbl = e.value ->> 1 AND g.pk = json(e.value -> 2) \
     WHERE EXISTS (SELECT 1 FROM _es_gw_refused) \
     UNION ALL SELECT :_es_now, :_es_sub, :_es_site, e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4 \
     FROM json_each(:_es_early) e";

/// Binds the site to the user the first time; leaves it as it is otherwise. A site a
/// direct replica has written under is never bound.
const BIND_SITE: &str = "INSERT INTO _es_gw_site (site, sub, at) SELECT :_es_site, :_es_sub, :_es_now \
     WHERE NOT EXISTS (SELECT 1 FROM _es_gw_site WHERE site = :_es_site) \
     AND NOT EXISTS (SELECT 1 FROM _es_log WHERE site = :_es_site)";

/// Fails the batch (SQLite's "malformed JSON") unless the site is this user's.
const CHECK_SITE: &str =
    "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM _es_gw_site WHERE site = :_es_site AND sub = :_es_sub) \
     THEN json('edgesync: this site id belongs to another writer') END";

const READ_REFUSED: &str = "SELECT ri, why FROM _es_gw_refused ORDER BY ri";
const CLEAR_REFUSED: &str = "DELETE FROM _es_gw_refused";

/// Keeps the audit trail to its last [`AUDIT_KEEP`] entries.
pub const AUDIT_KEEP: i64 = 100_000;

/// A planned push: the batch and where to read its answers.
#[derive(Debug)]
pub struct PushPlan {
    pub stmts: Vec<Statement>,
    /// The index of the site check, if the batch has one.
    pub site_step: Option<usize>,
    /// The index of the text guard ([`super::text::GUARD`]), if the batch has one.
    pub text_step: Option<usize>,
    rows: Vec<NetRow>,
    row_of: Vec<usize>,
    valid: Vec<Valid>,
    refused_step: usize,
    conflict_steps: Vec<usize>,
    /// Per table, the statements reading the refused rows' state.
    restore: Vec<(String, state::Steps)>,
    /// Keys of records refused before any SQL, per table (restored too).
    early: BTreeMap<String, Vec<Json>>,
}

/// Who is pushing, and when.
pub struct Pusher<'a> {
    pub sub: &'a str,
    pub site: &'a str,
    pub now_ms: u64,
    /// The rules' named arguments from the token's claims.
    pub args: &'a [(String, Value)],
    /// Whether the site must be bound or checked in this batch.
    pub check_site: bool,
}

pub fn plan(
    valid: Vec<Valid>,
    early_refused: &[Refusal],
    rules: &SyncRules,
    specs: &HashMap<String, TableSpec>,
    who: &Pusher,
    text: Option<&TextMerge>,
) -> PushPlan {
    let (rows, row_of) = net_rows(&valid);
    let mut args: Vec<(String, Value)> = who.args.to_vec();
    let src = if rows.len() == valid.len() {
        Rows::Chunk
    } else {
        Rows::Net
    };
    if src == Rows::Net {
        args.push((":_es_rows".into(), Value::Text(rows_json(&rows, &valid, rules, specs))));
    }
    args.push((":_es_site".into(), Value::from(who.site)));
    args.push((":_es_sub".into(), Value::from(who.sub)));
    args.push((":_es_now".into(), Value::Integer(who.now_ms as i64)));
    let mut early: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    for r in early_refused {
        if specs.contains_key(&r.table) && rules.table(&r.table).is_some() {
            early.entry(r.table.clone()).or_default().push(r.pk.clone());
        }
    }
    let audit_early: Vec<Json> = early_refused
        .iter()
        .map(|r| json!([r.table, r.pk.to_string(), r.op, r.code, r.reason]))
        .collect();
    args.push((":_es_early".into(), Value::Text(Json::Array(audit_early).to_string())));

    let mut stmts = Vec::new();
    let mut site_step = None;
    if who.check_site {
        stmts.push(bind(BIND_SITE.into(), &args));
        site_step = Some(stmts.len());
        stmts.push(bind(CHECK_SITE.into(), &args));
    }
    let text_step = text.map(|m| {
        stmts.push(super::text::guard(m));
        stmts.len() - 1
    });
    let mut names: Vec<&str> = rows.iter().map(|r| r.table.as_str()).collect();
    names.sort();
    names.dedup();
    let touched: Vec<&TableSpec> = names.iter().filter_map(|n| specs.get(*n)).collect();
    let deletes = |t: &str| valid.iter().any(|v| v.op == 'd' && v.table == t);
    let chunk = format!(
        "[{}]",
        valid.iter().map(|v| v.json.as_str()).collect::<Vec<_>>().join(",")
    );
    let merge = server_merge(&touched, chunk, who.site, &deletes);
    stmts.push(merge.store);
    for spec in &touched {
        if let Some(tr) = rules.table(&spec.name) {
            stmts.push(bind(check_sql(spec, tr, src), &args));
        }
    }
    stmts.push(bind(AUDIT.into(), &args));
    stmts.push(Statement::new(format!(
        "DELETE FROM _es_gw_audit WHERE id <= (SELECT max(id) FROM _es_gw_audit) - {AUDIT_KEEP}"
    )));
    stmts.push(Statement::new(DROP_REFUSED));
    let base = stmts.len();
    // The merged texts go into the shadow between its merge and the rows' rebuild.
    let text_writes = text.map(|m| super::text::writes(m, specs)).unwrap_or_default();
    let extra = text_writes.len();
    let mut merge_stmts = merge.merge;
    let after = merge_stmts.split_off(merge.rebuild_at);
    stmts.extend(merge_stmts);
    stmts.extend(text_writes);
    stmts.extend(after);
    let conflict_steps = merge
        .conflict_steps
        .iter()
        .map(|&i| i + base + if i >= merge.rebuild_at { extra } else { 0 })
        .collect();
    let refused_step = stmts.len();
    stmts.push(Statement::new(READ_REFUSED));
    let mut restore = Vec::new();
    let mut restore_tables: Vec<&str> = names.clone();
    restore_tables.extend(early.keys().map(String::as_str));
    restore_tables.sort();
    restore_tables.dedup();
    for t in restore_tables {
        let (Some(spec), Some(tr)) = (specs.get(t), rules.table(t)) else {
            continue;
        };
        let mut a = args.clone();
        let extra = early.get(t).cloned().unwrap_or_default();
        a.push((":_es_extra".into(), Value::Text(Json::Array(extra).to_string())));
        let keys = format!(
            "_es_k AS MATERIALIZED (SELECT pk FROM _es_gw_refused WHERE tbl = {} \
             UNION SELECT json(value) FROM json_each(:_es_extra) WHERE json_type(value) = 'array')",
            quote(t)
        );
        let steps = state::push_reads(spec, tr, &keys, &a, &mut stmts);
        restore.push((t.to_string(), steps));
    }
    stmts.push(Statement::new(CLEAR_REFUSED));
    PushPlan {
        stmts,
        site_step,
        text_step,
        rows,
        row_of,
        valid,
        refused_step,
        conflict_steps,
        restore,
        early,
    }
}

/// The answer to a push from the batch's results (`early` are the records refused
/// before any SQL).
pub fn finish(plan: PushPlan, results: &[ResultSet], early: Vec<Refusal>) -> Result<PushResponse> {
    let get = |i: usize| {
        results
            .get(i)
            .ok_or_else(|| Error::Protocol(format!("push batch answered {} results", results.len())))
    };
    let mut why: HashMap<usize, String> = HashMap::new();
    for r in &get(plan.refused_step)?.rows {
        if let (Value::Integer(ri), Value::Text(w)) = (&r[0], &r[1]) {
            why.insert(*ri as usize, w.clone());
        }
    }
    let mut refused = early;
    let mut accepted = 0;
    let mut changed: Vec<String> = Vec::new();
    for (v, ri) in plan.valid.iter().zip(&plan.row_of) {
        if !why.contains_key(ri) && !changed.contains(&v.table) {
            changed.push(v.table.clone());
        }
        match why.get(ri) {
            Some(w) => refused.push(Refusal {
                index: v.index,
                table: v.table.clone(),
                pk: serde_json::from_str(&v.pk).unwrap_or(Json::Null),
                op: v.op.to_string(),
                code: PERMISSION_DENIED.into(),
                reason: w.clone(),
            }),
            None => accepted += 1,
        }
    }
    refused.sort_by_key(|r| r.index);
    let mut conflicts = Vec::new();
    for &i in &plan.conflict_steps {
        for r in &get(i)?.rows {
            conflicts.push(Json::Array(r.iter().map(encode_value).collect()));
        }
    }
    let mut restore = super::protocol::State::default();
    for (table, steps) in &plan.restore {
        let ts = state::read(steps, results)?;
        let mut asked: Vec<Json> = plan.early.get(table).cloned().unwrap_or_default();
        for (ri, row) in plan.rows.iter().enumerate() {
            if row.table == *table && why.contains_key(&ri) {
                asked.push(serde_json::from_str(&row.pk).unwrap_or(Json::Null));
            }
        }
        let found: Vec<&str> = ts
            .rows
            .iter()
            .filter_map(|r| r.first().and_then(Json::as_str))
            .collect();
        let missing: Vec<Json> = asked
            .into_iter()
            .filter(|pk| !found.contains(&pk.to_string().as_str()))
            .collect();
        if !missing.is_empty() {
            restore.missing.insert(table.clone(), missing);
        }
        if !ts.rows.is_empty() {
            restore.tables.insert(table.clone(), ts);
        }
    }
    Ok(PushResponse {
        accepted,
        refused,
        conflicts,
        restore,
        changed,
    })
}
