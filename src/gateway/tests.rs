//! Property tests of the gateway's pure parts on an in-process SQLite (the statements a
//! push sends to sqld, run by [`crate::store::Store`]): the rule checks against a
//! reference model, and the validator against arbitrary input. The same statements
//! against a real sqld: tests/gateway_sqld.rs.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::protocol::PushResponse;
use super::push::{self, Pusher};
use super::schema;
use super::validate::check_records;
use super::SyncRules;
use crate::sql::{Statement, TransactionMode, Value};
use crate::store::Store;
use crate::sync::record::Record;
use crate::sync::{rows, rules as sync_rules, TableSpec};

const RULES: &str = r#"{"t": {"read": "owner = :sub", "write": "owner = :sub", "columns": ["title"]}}"#;
const CREATE: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, owner TEXT, title TEXT)";

fn server() -> (Store, HashMap<String, TableSpec>) {
    let db = Store::open(":memory:").unwrap();
    db.execute(&Statement::new(CREATE)).unwrap();
    let spec = TableSpec::introspect(db.conn(), "t", &[]).unwrap();
    for s in schema::setup() {
        db.execute(&s).unwrap();
    }
    for s in sync_rules::STATE_DDL.split(';').filter(|s| !s.trim().is_empty()) {
        db.execute(&Statement::new(s)).unwrap();
    }
    db.execute(&Statement::new(rows::ddl(&spec))).unwrap();
    (db, [("t".to_string(), spec)].into_iter().collect())
}

/// One write by one user: `(user, id, op, owner, title)`.
type Write = (usize, i64, char, usize, u8);

fn write() -> impl Strategy<Value = Write> {
    (
        0..3usize,
        0..6i64,
        prop_oneof![Just('i'), Just('u'), Just('d')],
        0..3usize,
        any::<u8>(),
    )
}

const USERS: [&str; 3] = ["ann", "ben", "cat"];

/// The reference: the rules as plain Rust over `(owner, title, live)` per id.
#[derive(Default, Clone)]
struct Model {
    rows: BTreeMap<i64, (Option<String>, Option<String>, bool)>,
}

impl Model {
    /// Applies one user's chunk: each row's records checked together, the net way.
    fn push(&mut self, sub: &str, recs: &[(i64, char, Json)]) -> Vec<bool> {
        let mut by_row: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, (id, _, _)) in recs.iter().enumerate() {
            by_row.entry(*id).or_default().push(i);
        }
        let mut ok = vec![false; recs.len()];
        let mut next = self.rows.clone();
        for (id, idx) in by_row {
            let old = self.rows.get(&id).cloned();
            let live = old.as_ref().is_some_and(|o| o.2);
            let mut over = old.clone().unwrap_or((None, None, false));
            for &i in &idx {
                if let Json::Object(d) = &recs[i].2 {
                    if let Some(o) = d.get("owner") {
                        over.0 = o.as_str().map(str::to_string);
                    }
                    if let Some(t) = d.get("title") {
                        over.1 = t.as_str().map(str::to_string);
                    }
                }
            }
            let last = recs[*idx.last().unwrap()].1;
            let mine = |o: &Option<String>| o.as_deref() == Some(sub);
            let allowed = match (live, last) {
                (true, 'd') => mine(&old.as_ref().unwrap().0),
                // `owner` is outside `columns`: an update of the row may not name it
                // (an insert finding the row may, with the value it has).
                (true, _) => {
                    let named = idx.iter().any(|&i| recs[i].2.get("owner").is_some());
                    mine(&old.as_ref().unwrap().0) && over.0 == old.as_ref().unwrap().0 && (last == 'i' || !named)
                }
                (false, _) => mine(&over.0),
            };
            if allowed {
                for &i in &idx {
                    ok[i] = true;
                }
                let entry = next.entry(id).or_insert((None, None, false));
                for &i in &idx {
                    match recs[i].1 {
                        'd' => entry.2 = false,
                        op => {
                            if let Json::Object(d) = &recs[i].2 {
                                if let Some(o) = d.get("owner") {
                                    entry.0 = o.as_str().map(str::to_string);
                                }
                                if let Some(t) = d.get("title") {
                                    entry.1 = t.as_str().map(str::to_string);
                                }
                            }
                            if op == 'i' {
                                entry.2 = true;
                            }
                        }
                    }
                }
            }
        }
        self.rows = next;
        ok
    }
}

fn push_through(
    db: &Store,
    specs: &HashMap<String, TableSpec>,
    rules: &SyncRules,
    sub: &str,
    site: &str,
    records: &[Json],
) -> PushResponse {
    let now = 1_800_000_000_000u64;
    let checked = check_records(
        &raw(records).iter().map(|b| b.as_ref()).collect::<Vec<_>>(),
        rules,
        specs,
        now,
        60_000,
    );
    let args = rules.args(&json!({ "sub": sub }));
    let who = Pusher {
        sub,
        site,
        now_ms: now,
        args: &args,
        check_site: true,
    };
    let early = checked.refused;
    let plan = push::plan(checked.valid, &early, rules, specs, &who, None);
    let results = db.batch(&plan.stmts, TransactionMode::Write).unwrap();
    push::finish(plan, &results, early).unwrap()
}

/// Main's NULL writes pass validation (a counter's `null`, a set's `"null": true`, a
/// text's `"t": null`); what the columns' value checks refuse at write time — a set
/// element that is not a string or an integer, a counter that is not totals — is refused
/// here too, as `INVALID_RECORD`, before any SQL.
#[test]
fn validation_takes_null_writes_and_refuses_what_value_checks_refuse() {
    use crate::sync::Policy;
    let db = Store::open(":memory:").unwrap();
    db.execute(&Statement::new(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, owner TEXT, c INTEGER, s TEXT, x TEXT)",
    ))
    .unwrap();
    let policies = [
        ("c".to_string(), Policy::Counter),
        ("s".to_string(), Policy::Set),
        ("x".to_string(), Policy::Text),
    ];
    let spec = TableSpec::introspect(db.conn(), "p", &policies).unwrap();
    let specs: HashMap<String, TableSpec> = [("p".to_string(), spec)].into_iter().collect();
    let rules = SyncRules::parse(r#"{"p": {"read": "owner = :sub", "write": "owner = :sub"}}"#).unwrap();
    let now = 1_800_000_000_000u64;
    let rec = |d: Json| json!([(now as i64) << 16, "p", [1], "u", d]);
    let recs = [
        rec(json!({"c": null})),
        rec(json!({"s": {"+": [], "-": [], "null": true}})),
        rec(json!({"x": {"t": null, "u": ""}})),
        rec(json!({"s": {"+": ["a", 7]}})),
        rec(json!({"s": {"+": [1.5]}})),
        rec(json!({"s": {"+": [{"a": 1}]}})),
        rec(json!({"s": {"null": false}})),
        rec(json!({"c": "5"})),
        rec(json!({"x": {"t": 5}})),
    ];
    let raws = raw(&recs);
    let c = check_records(
        &raws.iter().map(|b| b.as_ref()).collect::<Vec<_>>(),
        &rules,
        &specs,
        now,
        60_000,
    );
    let valid: Vec<usize> = c.valid.iter().map(|v| v.index).collect();
    assert_eq!(valid, [0, 1, 2, 3]);
    let refused: Vec<(usize, &str)> = c.refused.iter().map(|r| (r.index, r.code.as_str())).collect();
    assert_eq!(
        refused,
        [4, 5, 6, 7, 8].map(|i| (i, super::validate::INVALID_RECORD)).to_vec()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever users push, in chunks of any shape, the gateway accepts exactly what
    /// the reference model of the rules accepts, and the server ends as the model does.
    #[test]
    fn rule_checks_match_the_model(chunks in proptest::collection::vec(proptest::collection::vec(write(), 1..6), 1..8)) {
        let (db, specs) = server();
        let rules = SyncRules::parse(RULES).unwrap();
        let mut model = Model::default();
        let mut hlc = 1_800_000_000_000i64 << 16;
        for chunk in &chunks {
            // One user per chunk (a chunk is one replica's).
            let sub = USERS[chunk[0].0];
            let recs: Vec<(i64, char, Json)> = chunk
                .iter()
                .map(|&(_, id, op, owner, title)| {
                    let data = match op {
                        'd' => Json::Null,
                        'i' => json!({"owner": USERS[owner], "title": format!("t{title}")}),
                        _ if title % 2 == 0 => json!({"title": format!("t{title}")}),
                        _ => json!({"owner": USERS[owner]}),
                    };
                    (id, op, data)
                })
                .collect();
            let json: Vec<Json> = recs
                .iter()
                .map(|(id, op, data)| {
                    hlc += 1;
                    json!([hlc, "t", [id], op.to_string(), data])
                })
                .collect();
            let site = format!("{:016x}", chunk[0].0 + 1);
            let resp = push_through(&db, &specs, &rules, sub, &site, &json);
            let want = model.push(sub, &recs);
            let got: Vec<bool> = (0..recs.len()).map(|i| !resp.refused.iter().any(|r| r.index == i)).collect();
            prop_assert_eq!(&got, &want, "chunk {:?} by {}: {:?}", recs, sub, resp.refused);
            prop_assert_eq!(resp.accepted, want.iter().filter(|x| **x).count());
        }
        let rows = db.execute(&Statement::new("SELECT id, owner, title FROM t ORDER BY id")).unwrap().rows;
        let expect: Vec<Vec<Value>> = model
            .rows
            .iter()
            .filter(|(_, r)| r.2)
            .map(|(id, r)| vec![Value::Integer(*id), r.0.clone().map_or(Value::Null, Value::Text), r.1.clone().map_or(Value::Null, Value::Text)])
            .collect();
        prop_assert_eq!(rows, expect);
        prop_assert!(db.execute(&Statement::new("SELECT * FROM _es_gw_refused")).unwrap().rows.is_empty());
    }

    /// The validator takes any JSON without panicking; what it accepts re-parses as the
    /// record it checked.
    #[test]
    fn validation_takes_any_input(recs in proptest::collection::vec(arb_json(3), 0..12)) {
        let (_, specs) = server();
        let rules = SyncRules::parse(RULES).unwrap();
        let raws = raw(&recs);
        let c = check_records(&raws.iter().map(|b| b.as_ref()).collect::<Vec<_>>(), &rules, &specs, 1_800_000_000_000, 60_000);
        // A record stamped too far ahead fails the whole push instead (`ahead_ms`).
        if c.ahead_ms.is_none() {
            prop_assert_eq!(c.valid.len() + c.refused.len(), recs.len());
        }
        for v in &c.valid {
            let back = Record::from_json(&serde_json::from_str::<Json>(&v.json).unwrap()).unwrap();
            prop_assert_eq!(back.table, "t");
            prop_assert_eq!(back.pk.to_string(), v.pk.clone());
        }
    }

    #[test]
    fn rules_parsing_takes_any_input(s in ".{0,200}") {
        let _ = SyncRules::parse(&s);
        let _ = SyncRules::parse(&format!(r#"{{"t": {{"read": {}}}}}"#, Json::from(s.as_str())));
    }
}

fn raw(recs: &[Json]) -> Vec<Box<serde_json::value::RawValue>> {
    recs.iter()
        .map(|r| serde_json::value::to_raw_value(r).unwrap())
        .collect()
}

/// Arbitrary JSON, biased towards record-like arrays.
fn arb_json(depth: u32) -> BoxedStrategy<Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Json::from),
        prop_oneof![
            Just("t".to_string()),
            Just("i".to_string()),
            Just("u".to_string()),
            ".{0,8}".prop_map(String::from)
        ]
        .prop_map(Json::from),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let inner = arb_json(depth - 1);
    prop_oneof![
        leaf,
        proptest::collection::vec(inner.clone(), 0..7).prop_map(Json::Array),
        proptest::collection::btree_map(
            prop_oneof![
                Just("owner".to_string()),
                Just("title".to_string()),
                ".{0,6}".prop_map(String::from)
            ],
            inner,
            0..3
        )
        .prop_map(|m| Json::Object(m.into_iter().collect())),
        (
            any::<u32>(),
            0..6i64,
            prop_oneof![Just("i"), Just("u"), Just("d"), Just("x")],
            arb_json(depth - 1)
        )
            .prop_map(|(h, id, op, d)| json!([(h as i64) << 8, "t", [id], op, d])),
    ]
    .boxed()
}
