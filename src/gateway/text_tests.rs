//! Text columns through the gateway ([`super::text`]), on an in-process SQLite running the
//! statements a push sends to sqld: the server's column is always the merged document's
//! text, whatever rendering (`t`) the writers send; rules see that text; two pushes
//! merged from the same read cannot both commit. Against the real Worker and sqld:
//! tests/js/gateway-text.test.mjs.

use std::collections::HashMap;

use base64::Engine;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::protocol::{PushResponse, Refusal};
use super::push::{self, PushPlan, Pusher};
use super::validate::check_records;
use super::{schema, text, SyncRules};
use crate::crdt::text::Text;
use crate::sql::{Statement, TransactionMode, Value};
use crate::store::Store;
use crate::sync::{rows, rules as sync_rules, Policy, TableSpec};

const NOW: u64 = 1_800_000_000_000;
/// Anyone may write a document, but not make its text hold a `!`.
const RULES: &str = r#"{"d": {"read": "true", "write": "body IS NULL OR instr(body, '!') = 0"}}"#;

fn server() -> (Store, HashMap<String, TableSpec>) {
    let db = Store::open(":memory:").unwrap();
    db.execute(&Statement::new("CREATE TABLE d (id INTEGER PRIMARY KEY, body TEXT)"))
        .unwrap();
    let spec = TableSpec::introspect(db.conn(), "d", &[("body".to_string(), Policy::Text)]).unwrap();
    for s in schema::setup() {
        db.execute(&s).unwrap();
    }
    for s in sync_rules::STATE_DDL.split(';').filter(|s| !s.trim().is_empty()) {
        db.execute(&Statement::new(s)).unwrap();
    }
    db.execute(&Statement::new(rows::ddl(&spec))).unwrap();
    (db, [("d".to_string(), spec)].into_iter().collect())
}

/// A push read and planned (the gateway's steps before its write batch).
fn prepare(
    db: &Store,
    specs: &HashMap<String, TableSpec>,
    rules: &SyncRules,
    site: &str,
    records: &[Json],
) -> (PushPlan, Vec<Refusal>) {
    let raws: Vec<_> = records
        .iter()
        .map(|r| serde_json::value::to_raw_value(r).unwrap())
        .collect();
    let checked = check_records(
        &raws.iter().map(|b| b.as_ref()).collect::<Vec<_>>(),
        rules,
        specs,
        NOW,
        60_000,
    );
    let mut early = checked.refused;
    let cells = text::cells(&checked.valid, specs);
    let (valid, merged) = if cells.is_empty() {
        (checked.valid, None)
    } else {
        let rs = db.batch(&text::reads(&cells), TransactionMode::Read).unwrap();
        let (v, r, m) = text::merge(checked.valid, &cells, &rs).unwrap();
        early.extend(r);
        (v, Some(m))
    };
    let args = rules.args(&json!({ "sub": "u" }));
    let who = Pusher {
        sub: "u",
        site,
        now_ms: NOW,
        args: &args,
        check_site: true,
    };
    let plan = push::plan(valid, &early, rules, specs, &who, merged.as_ref());
    (plan, early)
}

/// Runs a prepared push; `Err` carries the failing statement's index.
fn commit(db: &Store, plan: PushPlan, early: Vec<Refusal>) -> Result<PushResponse, Option<usize>> {
    match db.batch(&plan.stmts, TransactionMode::Write) {
        Ok(rs) => Ok(push::finish(plan, &rs, early).unwrap()),
        Err(crate::error::Error::Sql { statement_index, .. }) => Err(statement_index),
        Err(e) => panic!("{e}"),
    }
}

fn push_text(db: &Store, specs: &HashMap<String, TableSpec>, site: &str, records: &[Json]) -> PushResponse {
    let rules = SyncRules::parse(RULES).unwrap();
    let (plan, early) = prepare(db, specs, &rules, site, records);
    commit(db, plan, early).unwrap()
}

/// The server's column, its shadow text, and the `t` of the newest logged record.
fn server_text(db: &Store) -> (Option<String>, Option<String>) {
    let one = |sql: &str| {
        let rs = db.execute(&Statement::new(sql)).unwrap();
        match rs.rows.first().map(|r| r[0].clone()) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    };
    let col = one("SELECT body FROM d WHERE id = 1");
    let shadow = one(&format!("SELECT c_body FROM {} WHERE pk = '[1]'", rows::shadow("d")));
    (col, shadow)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One writer: its document, and what it has pushed of it.
struct Writer {
    site: String,
    doc: Text,
    pushed: crate::crdt::text::Version,
    hlc: i64,
}

impl Writer {
    fn new(n: u64) -> Self {
        let doc = Text::new(n);
        let pushed = doc.version().clone();
        Writer {
            site: format!("{n:016x}"),
            doc,
            pushed,
            hlc: ((NOW as i64) << 16) + n as i64,
        }
    }

    /// A record of the edits not pushed yet, rendered as `t`.
    fn record(&mut self, op: &str, t: &str) -> Json {
        let u = self.doc.encode_update_since(&self.pushed);
        self.pushed = self.doc.version().clone();
        self.hlc += 16;
        json!([self.hlc, "d", [1], op, {"body": {"t": t, "u": b64(&u)}}])
    }
}

/// The regression: a record whose update disagrees with its rendering. Before the fix
/// the server's column held the rendering ("nice") while replicas showed "evil".
#[test]
fn a_crafted_rendering_never_reaches_the_server_column() {
    let (db, specs) = server();
    let mut w = Writer::new(7);
    w.doc.insert(0, "evil").unwrap();
    let r = push_text(&db, &specs, &w.site.clone(), &[w.record("i", "nice")]);
    assert_eq!((r.accepted, r.refused.len()), (1, 0));
    assert_eq!(server_text(&db), (Some("evil".into()), Some("evil".into())));
    // The log carries the merged text too: what other replicas receive as the rendering.
    let log = db
        .execute(&Statement::new(
            "SELECT rec ->> '$[4].body.t' FROM _es_log WHERE seq > 0",
        ))
        .unwrap();
    assert_eq!(log.rows, vec![vec![Value::Text("evil".into())]]);
    // A rendering with no update (what `render_back` sends) cannot set other text either.
    let mut data = w.record("u", "anything");
    data[4]["body"]["u"] = json!("");
    push_text(&db, &specs, &w.site, &[data]);
    assert_eq!(server_text(&db).0.as_deref(), Some("evil"));
}

/// Rules naming a text column see the merged text, not the writer's rendering.
#[test]
fn rules_see_the_merged_text() {
    let (db, specs) = server();
    let mut w = Writer::new(3);
    w.doc.insert(0, "ok").unwrap();
    push_text(&db, &specs, &w.site.clone(), &[w.record("i", "ok")]);
    w.doc.insert(2, "!").unwrap();
    let r = push_text(&db, &specs, &w.site.clone(), &[w.record("u", "ok")]);
    assert_eq!(r.refused.len(), 1, "{r:?}");
    assert_eq!(r.refused[0].code, "PERMISSION_DENIED");
    assert_eq!(server_text(&db).0.as_deref(), Some("ok"));
}

/// Two isolates merge from the same read: the second batch finds the cell changed and
/// fails at the guard; read again, it commits the text holding both edits.
#[test]
fn concurrent_pushes_of_one_cell_never_both_commit_a_stale_text() {
    let (db, specs) = server();
    let rules = SyncRules::parse(RULES).unwrap();
    let mut a = Writer::new(1);
    a.doc.insert(0, "base").unwrap();
    push_text(&db, &specs, &a.site.clone(), &[a.record("i", "base")]);
    let mut b = Writer::new(2);
    b.doc.merge(&a.doc).unwrap();
    b.pushed = b.doc.version().clone();
    a.doc.insert(0, "A").unwrap();
    b.doc.insert(4, "B").unwrap();
    let ra = a.record("u", "Abase");
    let rb = b.record("u", "baseB");
    let (pa, ea) = prepare(&db, &specs, &rules, &a.site, &[ra]);
    let (pb, eb) = prepare(&db, &specs, &rules, &b.site, std::slice::from_ref(&rb));
    let guard = pb.text_step;
    commit(&db, pa, ea).unwrap();
    assert_eq!(commit(&db, pb, eb).unwrap_err(), guard);
    let (pb, eb) = prepare(&db, &specs, &rules, &b.site, &[rb]);
    commit(&db, pb, eb).unwrap();
    a.doc.merge(&b.doc).unwrap();
    assert_eq!(a.doc.text(), "AbaseB");
    assert_eq!(server_text(&db), (Some("AbaseB".into()), Some("AbaseB".into())));
}

/// One step: a writer types or deletes, or pushes (with its honest rendering or a
/// crafted one), or pulls what the server has.
#[derive(Debug, Clone)]
enum Step {
    Type(usize, usize, char),
    Delete(usize, usize),
    Push(usize, Option<String>),
    Pull(usize),
    /// The gateway's snapshots lost (a server from before them, or a reset): the
    /// documents are read from the whole log.
    Forget,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, any::<usize>(), prop::sample::select(vec!['a', 'b', 'c', '!'])).prop_map(|(w, p, c)| Step::Type(w, p, c)),
        1 => (0..3usize, any::<usize>()).prop_map(|(w, p)| Step::Delete(w, p)),
        3 => (0..3usize, prop::option::of("[a-z!]{0,4}")).prop_map(|(w, t)| Step::Push(w, t)),
        1 => (0..3usize).prop_map(Step::Pull),
        1 => Just(Step::Forget),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the writers push (any renderings, edits interleaved with pulls), the
    /// server's column and shadow are the text of the merge of every accepted update,
    /// which is what replicas converge to; a record is refused exactly when that text
    /// would hold a `!`.
    #[test]
    fn the_server_column_is_the_merged_document(steps in prop::collection::vec(step(), 1..40)) {
        let (db, specs) = server();
        let mut ws: Vec<Writer> = (1..=3).map(Writer::new).collect();
        // The merge of the accepted updates: what a replica that pulls everything shows.
        let mut merged = Text::new(99);
        let mut live = false;
        for s in steps {
            match s {
                Step::Type(w, p, c) => {
                    let d = &mut ws[w].doc;
                    let n = d.len();
                    d.insert(p % (n + 1), &c.to_string()).unwrap();
                }
                Step::Delete(w, p) => {
                    let d = &mut ws[w].doc;
                    if !d.is_empty() {
                        let n = d.len();
                        d.delete(p % n, 1).unwrap();
                    }
                }
                Step::Pull(w) => {
                    ws[w].doc.merge(&merged).unwrap();
                }
                Step::Forget => {
                    db.execute(&Statement::new("DELETE FROM _es_gw_text")).unwrap();
                }
                Step::Push(w, crafted) => {
                    let honest = ws[w].doc.text();
                    let rec = ws[w].record(if live { "u" } else { "i" }, crafted.as_deref().unwrap_or(&honest));
                    let mut next = merged.clone();
                    let u = rec[4]["body"]["u"].as_str().unwrap();
                    next.apply_update(&base64::engine::general_purpose::STANDARD.decode(u).unwrap()).unwrap();
                    let r = push_text(&db, &specs, &ws[w].site.clone(), &[rec]);
                    let allowed = !next.text().contains('!');
                    prop_assert_eq!(r.accepted == 1, allowed, "{:?}", r);
                    if allowed {
                        merged = next;
                        live = true;
                    } else {
                        // The replica restores the server's version of the cell.
                        let site = ws[w].doc.site();
                        ws[w].doc = Text::decode(&merged.encode(), site).unwrap();
                        ws[w].pushed = ws[w].doc.version().clone();
                    }
                    if live {
                        let t = merged.text();
                        prop_assert_eq!(server_text(&db), (Some(t.clone()), Some(t)));
                    }
                }
            }
        }
    }
}
