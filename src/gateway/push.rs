//! A push through the gateway: the rules checked and the merge run in one transaction.
//!
//! The batch, on the primary, in order:
//!
//! 1. (first push of a site in this isolate) the site is bound to the user, or found
//!    bound to them; a site another user or a direct replica writes under fails the
//!    batch before anything is written (a forged site id could shadow another writer's
//!    log entries).
//! 2. per table, one statement checks every touched row against the rules and records
//!    the refused ones in `_es_gw_refused` ([`check_sql`]);
//! 3. the accepted records are stored as the chunk, and the sync engine's own merge
//!    of that chunk runs ([`crate::sync::chunk::server_merge`]) — the same statements
//!    a replica syncing straight to sqld sends;
//! 4. the refusals are read back and written to the audit trail; the server's state of
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
    /// The data of its non-delete records, later ones over earlier ones.
    pub data: Map<String, Json>,
}

/// Groups the valid records by row; returns the rows and, per record, its row's index.
pub fn net_rows(valid: &[Valid]) -> (Vec<NetRow>, Vec<usize>) {
    let mut rows: Vec<NetRow> = Vec::new();
    let mut index: HashMap<(&str, &str), usize> = HashMap::new();
    let mut row_of = Vec::with_capacity(valid.len());
    for v in valid {
        let i = *index.entry((&v.table, &v.pk)).or_insert_with(|| {
            rows.push(NetRow {
                table: v.table.clone(),
                pk: v.pk.clone(),
                op: v.op,
                data: Map::new(),
            });
            rows.len() - 1
        });
        let row = &mut rows[i];
        row.op = v.op;
        if let Json::Object(d) = &v.data {
            for (k, val) in d {
                row.data.insert(k.clone(), val.clone());
            }
        }
        row_of.push(i);
    }
    (rows, row_of)
}

/// The statement that records in `_es_gw_refused` each row of `spec` in `:_es_rows`
/// that the rules refuse (see the module docs and [`super::rules`]).
pub fn check_sql(spec: &TableSpec, rules: &TableRules) -> String {
    let t = &spec.name;
    let alias = format!("\"{t}\"");
    let data_cols: Vec<(&str, Policy)> = spec.data_columns().map(|(_, c)| (c.name.as_str(), c.policy)).collect();
    let merged: Vec<&str> = data_cols
        .iter()
        .filter(|(_, p)| matches!(p, Policy::Lww | Policy::Text | Policy::Custom))
        .map(|(c, _)| *c)
        .collect();
    let x_cols: String = merged
        .iter()
        .map(|c| {
            format!(
                ", json_type(d, '$.{c}') AS \"_es_t_{c}\", {} AS \"_es_v_{c}\"",
                rows::value(c)
            )
        })
        .collect();
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
        }
    }
    let fixed: String = data_cols
        .iter()
        .filter(|(c, _)| !rules.may_change(c))
        .map(|(c, _)| format!(" AND {alias}.\"{c}\" IS {alias}.\"_es_o_{c}\""))
        .collect();
    let (ins, upd, del) = (
        rules.condition(Op::Insert),
        rules.condition(Op::Update),
        rules.condition(Op::Delete),
    );
    let refuse = |from: &str, when: &str, cond: &str, why: &str| {
        format!(
            "SELECT {alias}._es_ri, {} FROM {from} AS {alias} WHERE {when} AND NOT ({cond})",
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
        "WITH _es_n AS MATERIALIZED (SELECT r.key AS _es_ri, json(r.value -> 1) AS _es_pk, r.value ->> 2 AS _es_op, \
           r.value -> 3 AS d FROM json_each(:_es_rows) r WHERE r.value ->> 0 = {tq}), \
         _es_x AS MATERIALIZED (SELECT _es_ri, _es_pk, _es_op{x_cols} FROM _es_n), \
         _es_o AS MATERIALIZED (SELECT x._es_ri AS _es_ri, x._es_op AS _es_op, v.* FROM _es_x x JOIN {view} ON v._es_pk = x._es_pk), \
         _es_w AS MATERIALIZED (SELECT x._es_ri AS _es_ri, x._es_op AS _es_op, coalesce(o._es_live, 0) AS _es_old, {w_cols} \
           FROM _es_x x LEFT JOIN _es_o o ON o._es_ri = x._es_ri) \
         INSERT OR IGNORE INTO _es_gw_refused (ri, why) {checks}",
        tq = quote(t),
        view = view,
        w_cols = w_cols.join(", "),
        checks = checks.join(" UNION ALL "),
    )
}

/// Stores the accepted records as the chunk (`:_es_tagged` holds `[row, record]`).
const STORE_ACCEPTED: &str = "INSERT INTO _es_chunk (j, site) SELECT (SELECT json_group_array(json(p.value -> 1)) \
     FROM json_each(:_es_tagged) p WHERE (p.value ->> 0) NOT IN (SELECT ri FROM _es_gw_refused)), :_es_site";

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
) -> PushPlan {
    let (rows, row_of) = net_rows(&valid);
    let mut args: Vec<(String, Value)> = who.args.to_vec();
    let rows_json: Vec<Json> = rows
        .iter()
        .map(|r| {
            json!([
                r.table,
                serde_json::from_str::<Json>(&r.pk).unwrap_or(Json::Null),
                r.op.to_string(),
                r.data
            ])
        })
        .collect();
    let tagged: Vec<String> = valid
        .iter()
        .zip(&row_of)
        .map(|(v, ri)| format!("[{ri},{}]", v.json))
        .collect();
    args.push((":_es_rows".into(), Value::Text(Json::Array(rows_json).to_string())));
    args.push((":_es_tagged".into(), Value::Text(format!("[{}]", tagged.join(",")))));
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
    let mut names: Vec<&str> = rows.iter().map(|r| r.table.as_str()).collect();
    names.sort();
    names.dedup();
    let touched: Vec<&TableSpec> = names.iter().filter_map(|n| specs.get(*n)).collect();
    for spec in &touched {
        if let Some(tr) = rules.table(&spec.name) {
            stmts.push(bind(check_sql(spec, tr), &args));
        }
    }
    let deletes = |t: &str| valid.iter().any(|v| v.op == 'd' && v.table == t);
    let merge = server_merge(&touched, String::new(), who.site, &deletes);
    stmts.push(bind(STORE_ACCEPTED.into(), &args));
    let base = stmts.len();
    stmts.extend(merge.merge);
    let conflict_steps = merge.conflict_steps.iter().map(|i| i + base).collect();
    let refused_step = stmts.len();
    stmts.push(Statement::new(READ_REFUSED));
    stmts.push(bind(
        format!(
            "INSERT INTO _es_gw_audit (at, sub, site, tbl, pk, op, code, reason) \
             SELECT :_es_now, :_es_sub, :_es_site, p.value -> 1 ->> 1, json(p.value -> 1 -> 2), p.value -> 1 ->> 3, \
             '{PERMISSION_DENIED}', (SELECT why FROM _es_gw_refused WHERE ri = p.value ->> 0) \
             FROM json_each(:_es_tagged) p WHERE (p.value ->> 0) IN (SELECT ri FROM _es_gw_refused) \
             UNION ALL SELECT :_es_now, :_es_sub, :_es_site, e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3, e.value ->> 4 \
             FROM json_each(:_es_early) e"
        ),
        &args,
    ));
    stmts.push(Statement::new(format!(
        "DELETE FROM _es_gw_audit WHERE id <= (SELECT max(id) FROM _es_gw_audit) - {AUDIT_KEEP}"
    )));
    let mut restore = Vec::new();
    let mut restore_tables: Vec<&str> = names.clone();
    restore_tables.extend(early.keys().map(String::as_str));
    restore_tables.sort();
    restore_tables.dedup();
    for t in restore_tables {
        let (Some(spec), Some(tr)) = (specs.get(t), rules.table(t)) else {
            continue;
        };
        let extra = Json::Array(early.get(t).cloned().unwrap_or_default()).to_string();
        let mut a = args.clone();
        a.push((":_es_extra".into(), Value::Text(extra)));
        let keys = format!(
            "_es_k AS MATERIALIZED (SELECT json(r.value -> 1) AS pk FROM json_each(:_es_rows) r \
             WHERE r.value ->> 0 = {} AND r.key IN (SELECT ri FROM _es_gw_refused) \
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
