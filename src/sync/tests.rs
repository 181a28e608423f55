//! Property tests for the merge rules: replicas that receive the same records in any
//! order, in any batches, with duplicates, interleaved with their own local edits,
//! end with identical rows. No server is involved: records are delivered directly
//! with the same local rules a pull uses.

use proptest::prelude::*;

use super::record::Record;
use super::replica::Apply;
use super::*;
use crate::remote::UreqTransport;
use crate::{Statement, Value};

type R = Replica<UreqTransport>;

const SCHEMA: &str =
    "create table items (id text primary key, name text, qty integer not null default 0, tags text, note text)";

/// An in-memory replica with `schema` created and `table` replicated.
fn open_replica(schema: &str, table: &str, policies: &[(String, Policy)]) -> R {
    let r = Replica::open(
        ReplicaConfig {
            path: ":memory:".into(),
            ..Default::default()
        },
        UreqTransport::default(),
        Env::default(),
    )
    .unwrap();
    r.execute(&Statement::new(schema)).unwrap();
    r.replicate(table, policies, vec![]).unwrap();
    r
}

fn replica() -> R {
    let policies = [
        ("qty".into(), Policy::Counter),
        ("tags".into(), Policy::Set),
        ("note".into(), Policy::Text),
    ];
    open_replica(SCHEMA, "items", &policies)
}

/// One local edit, as SQL.
#[derive(Debug, Clone)]
enum Edit {
    Insert(u8, String, i64),
    Name(u8, String),
    Add(u8, i64),
    Tags(u8, Vec<u8>),
    Note(u8, usize, String),
    Delete(u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let key = 0u8..4;
    prop_oneof![
        (key.clone(), "[a-z]{0,3}", -5i64..5).prop_map(|(k, n, q)| Edit::Insert(k, n, q)),
        (key.clone(), "[a-z]{1,3}").prop_map(|(k, n)| Edit::Name(k, n)),
        (key.clone(), -3i64..4).prop_map(|(k, d)| Edit::Add(k, d)),
        (key.clone(), proptest::collection::vec(0u8..4, 0..3)).prop_map(|(k, t)| Edit::Tags(k, t)),
        (key.clone(), 0usize..6, "[xyz ]{0,2}").prop_map(|(k, p, s)| Edit::Note(k, p, s)),
        key.prop_map(Edit::Delete),
    ]
}

fn run(r: &R, e: &Edit) {
    let sql = match e {
        Edit::Insert(k, n, q) => {
            format!("insert or ignore into items (id, name, qty, tags, note) values ('k{k}', '{n}', {q}, '[]', '')")
        }
        Edit::Name(k, n) => format!("update items set name = '{n}' where id = 'k{k}'"),
        Edit::Add(k, d) => format!("update items set qty = qty + {d} where id = 'k{k}'"),
        Edit::Tags(k, t) => {
            let tags: Vec<String> = t.iter().map(|t| format!("\"t{t}\"")).collect();
            format!("update items set tags = '[{}]' where id = 'k{k}'", tags.join(","))
        }
        Edit::Note(k, p, s) => format!(
            "update items set note = substr(coalesce(note, ''), 1, {p}) || '{s}' || substr(coalesce(note, ''), {p} + 1) where id = 'k{k}'"
        ),
        Edit::Delete(k) => format!("delete from items where id = 'k{k}'"),
    };
    r.execute(&Statement::new(sql)).unwrap();
}

/// Everything in a replica's outbox, as (site, record).
fn outbox(r: &R) -> Vec<(String, Record)> {
    r.fold_all().unwrap();
    let rs = r
        .execute(&Statement::new("select rec from _es_outbox order by id"))
        .unwrap();
    rs.rows
        .iter()
        .map(|row| match &row[0] {
            Value::Text(t) => (
                r.site().to_string(),
                Record::from_json(&serde_json::from_str(t).unwrap()).unwrap(),
            ),
            v => panic!("{v:?}"),
        })
        .collect()
}

/// Delivers records the way a pull does: one transaction, grouped by writer.
fn deliver(r: &R, recs: &[(String, Record)]) {
    r.fold_all().unwrap();
    for (site, rec) in recs {
        if site != r.site() {
            r.apply_records(&[rec], site, Apply::Remote).unwrap();
        }
    }
    r.render_back().unwrap();
}

fn dump(r: &R) -> Vec<Vec<Value>> {
    r.execute(&Statement::new("select * from items order by id"))
        .unwrap()
        .rows
}

/// A deterministic shuffle with duplicates, from a seed.
fn scramble(recs: &[(String, Record)], seed: u64) -> Vec<(String, Record)> {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out: Vec<(String, Record)> = recs.to_vec();
    for i in (1..out.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    let dups: Vec<(String, Record)> = out.iter().filter(|_| next() % 4 == 0).cloned().collect();
    for d in dups {
        let at = (next() % (out.len() as u64 + 1)) as usize;
        out.insert(at, d);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Three replicas edit concurrently, exchange some records mid-way, edit more,
    /// then receive everything in scrambled orders with duplicates: same rows.
    #[test]
    fn replicas_converge_under_any_delivery(
        first in proptest::collection::vec((0usize..3, edit()), 1..25),
        second in proptest::collection::vec((0usize..3, edit()), 0..15),
        seeds in proptest::array::uniform3(any::<u64>()),
        partial in any::<u64>(),
    ) {
        let rs = [replica(), replica(), replica()];
        for (i, e) in &first {
            run(&rs[*i], e);
        }
        // Replica 0 receives part of replica 1's work early.
        let early = outbox(&rs[1]);
        let cut = (partial as usize) % (early.len() + 1);
        deliver(&rs[0], &early[..cut]);
        for (i, e) in &second {
            run(&rs[*i], e);
        }
        // Exchange until nothing new is produced (text renderings may add records).
        for _round in 0..3 {
            let all: Vec<(String, Record)> = rs.iter().flat_map(outbox).collect();
            for (k, r) in rs.iter().enumerate() {
                deliver(r, &scramble(&all, seeds[k]));
            }
        }
        let want = dump(&rs[0]);
        prop_assert_eq!(&dump(&rs[1]), &want);
        prop_assert_eq!(&dump(&rs[2]), &want);
    }
}

#[test]
fn delivery_is_idempotent_and_order_free() {
    let (a, b, c) = (replica(), replica(), replica());
    run(&a, &Edit::Insert(1, "a".into(), 5));
    run(&b, &Edit::Insert(1, "b".into(), 7));
    run(&a, &Edit::Tags(1, vec![1, 2]));
    run(&b, &Edit::Tags(1, vec![3]));
    let (ra, rb) = (outbox(&a), outbox(&b));
    let mut fwd = ra.clone();
    fwd.extend(rb.clone());
    let mut back = rb.clone();
    back.extend(ra.clone());
    back.extend(ra.clone());
    deliver(&c, &fwd);
    let d = replica();
    deliver(&d, &back);
    deliver(&a, &rb);
    deliver(&b, &ra);
    assert_eq!(dump(&c), dump(&d));
    assert_eq!(dump(&a), dump(&c));
    assert_eq!(dump(&b), dump(&c));
    // Both inserts count: 5 + 7. Both replicas' tags survive (add-wins).
    assert_eq!(dump(&c)[0][2], Value::Integer(12));
    assert_eq!(dump(&c)[0][3], Value::Text("[\"t1\",\"t2\",\"t3\"]".into()));
}

/// A table whose columns are all last-writer-wins: own writes take the fast path
/// (`own.rs`), not the JSON merge.
fn lww_replica() -> R {
    open_replica(
        "create table plain (id integer primary key, name text, n integer, b blob)",
        "plain",
        &[],
    )
}

fn lww_sql(e: &(u8, u8, i64)) -> String {
    let (kind, k, v) = *e;
    match kind % 5 {
        0 => format!(
            "insert or replace into plain values ({k}, 'n{v}', {v}, x'0{}')",
            v.rem_euclid(10)
        ),
        1 => format!("update plain set name = 'u{v}' where id = {k}"),
        2 => format!("update plain set n = n + {v}, b = null where id = {k}"),
        3 => format!("update or ignore plain set id = {} where id = {k}", (k + 1) % 4),
        _ => format!("delete from plain where id = {k}"),
    }
}

fn lww_dump(r: &R) -> Vec<Vec<Value>> {
    r.execute(&Statement::new("select * from plain order by id"))
        .unwrap()
        .rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Own writes applied directly converge exactly like staged ones: every replica,
    /// each having folded its own writes (several to one row between folds, key
    /// changes, deletes and re-inserts), ends with the same rows after any delivery.
    #[test]
    fn lww_tables_converge_under_any_delivery(
        first in proptest::collection::vec((0usize..3, (0u8..5, 0u8..4, -3i64..4)), 1..30),
        second in proptest::collection::vec((0usize..3, (0u8..5, 0u8..4, -3i64..4)), 0..15),
        seeds in proptest::array::uniform3(any::<u64>()),
    ) {
        let rs = [lww_replica(), lww_replica(), lww_replica()];
        for (i, e) in &first {
            rs[*i].execute(&Statement::new(lww_sql(e))).unwrap();
        }
        // A fold in the middle: the later writes fold against that state.
        for r in &rs {
            r.fold_all().unwrap();
        }
        for (i, e) in &second {
            rs[*i].execute(&Statement::new(lww_sql(e))).unwrap();
        }
        let all: Vec<(String, Record)> = rs.iter().flat_map(outbox).collect();
        for (k, r) in rs.iter().enumerate() {
            deliver(r, &scramble(&all, seeds[k]));
        }
        // Writes after a delivery that did not move the clocks: some lose to records
        // already merged, and their rows must be rebuilt from the state.
        for (i, e) in &second {
            rs[(*i + 1) % 3].execute(&Statement::new(lww_sql(e))).unwrap();
        }
        let all: Vec<(String, Record)> = rs.iter().flat_map(outbox).collect();
        for (k, r) in rs.iter().enumerate() {
            deliver(r, &scramble(&all, seeds[k] ^ 2));
        }
        let want = lww_dump(&rs[0]);
        prop_assert_eq!(&lww_dump(&rs[1]), &want);
        prop_assert_eq!(&lww_dump(&rs[2]), &want);
        // And a fresh replica that only receives the records agrees too.
        let fresh = lww_replica();
        deliver(&fresh, &scramble(&all, seeds[0] ^ 1));
        prop_assert_eq!(&lww_dump(&fresh), &want);
    }
}

/// A replica whose clock runs behind: its write to a row that already holds a newer
/// version loses, the row shows the newer value at once, and the losing record changes
/// nothing where it is delivered.
#[test]
fn an_own_write_that_loses_is_rebuilt_from_the_state() {
    fn ahead() -> u64 {
        (Env::default().now_ms)() + 3_600_000
    }
    let a = Replica::open(
        ReplicaConfig {
            path: ":memory:".into(),
            ..Default::default()
        },
        UreqTransport::default(),
        Env {
            now_ms: ahead,
            ..Env::default()
        },
    )
    .unwrap();
    a.execute(&Statement::new(
        "create table plain (id integer primary key, name text, n integer, b blob)",
    ))
    .unwrap();
    a.replicate("plain", &[], vec![]).unwrap();
    let b = lww_replica();
    a.execute(&Statement::new("insert into plain values (1, 'from a', 1, null)"))
        .unwrap();
    let from_a = outbox(&a);
    deliver(&b, &from_a);
    b.execute(&Statement::new("update plain set name = 'from b', n = 2 where id = 1"))
        .unwrap();
    b.execute(&Statement::new("insert into plain values (2, 'only b', 3, null)"))
        .unwrap();
    let from_b: Vec<(String, Record)> = outbox(&b);
    let row = |r: &R| lww_dump(r);
    assert_eq!(row(&b)[0][1], Value::Text("from a".into()), "the older write lost");
    assert_eq!(row(&b)[0][2], Value::Integer(1));
    assert_eq!(
        row(&b)[1][1],
        Value::Text("only b".into()),
        "the rest of the batch stands"
    );
    deliver(&a, &from_b);
    assert_eq!(row(&a), row(&b));
}

/// A file replica written by the earlier per-cell layout (`_es_cv`) keeps every merged
/// value and version: `replicate()` moves them into the row state and drops the old
/// table.
#[test]
fn state_in_the_earlier_layout_is_migrated() {
    let dir = std::env::temp_dir().join(format!("es-migrate-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let open = || {
        let r = Replica::open(
            ReplicaConfig {
                path: dir.to_string_lossy().into_owned(),
                ..Default::default()
            },
            UreqTransport::default(),
            Env::default(),
        )
        .unwrap();
        r
    };
    let shadow = |r: &R| {
        r.execute(&Statement::new("select * from _es_row_plain order by pk"))
            .unwrap()
            .rows
    };
    let r = open();
    r.execute(&Statement::new(
        "create table plain (id integer primary key, name text, n integer, b blob)",
    ))
    .unwrap();
    r.replicate("plain", &[], vec![]).unwrap();
    r.execute(&Statement::new(
        "insert into plain values (1, 'one', 1, x'01'), (2, 'two', 2, null)",
    ))
    .unwrap();
    r.execute(&Statement::new("update plain set name = 'uno' where id = 1"))
        .unwrap();
    r.execute(&Statement::new("delete from plain where id = 2")).unwrap();
    r.fold_all().unwrap();
    let before = shadow(&r);
    assert_eq!(before.len(), 2);
    // Rewrite the state as the earlier layout held it.
    for sql in [
        "create table _es_cv (tbl text not null, pk text not null, col text not null, val, ver text not null, \
         primary key (tbl, pk, col)) without rowid",
        "insert into _es_cv select 'plain', pk, '-', _live, _pv from _es_row_plain where _pv is not null",
        "insert into _es_cv select 'plain', pk, 'name', c_name, v_name from _es_row_plain where v_name is not null",
        "insert into _es_cv select 'plain', pk, 'n', c_n, v_n from _es_row_plain where v_n is not null",
        "insert into _es_cv select 'plain', pk, 'b', c_b, v_b from _es_row_plain where v_b is not null",
        "drop table _es_row_plain",
    ] {
        r.execute(&Statement::new(sql)).unwrap();
    }
    drop(r);
    let r = open();
    r.replicate("plain", &[], vec![]).unwrap();
    assert_eq!(shadow(&r), before);
    let gone = r
        .execute(&Statement::new(
            "select count(*) from sqlite_master where name = '_es_cv'",
        ))
        .unwrap();
    assert_eq!(gone.rows[0][0], Value::Integer(0));
    drop(r);
    let _ = std::fs::remove_file(&dir);
}
