//! Property test of the server's capture triggers ([`super::server`]): random writes
//! by "other clients" on a server database (plain SQLite here, running exactly the
//! SQL sqld runs), pulled by two replicas: the replicas end with the server's rows,
//! whatever the writes. (`tests/sync_server.rs` runs the same against a real sqld.)

use proptest::prelude::*;

use super::evolve::COLUMNS_DDL;
use super::record::Record;
use super::replica::Apply;
use super::*;
use crate::remote::UreqTransport;
use crate::{Statement, Value};

type R = Replica<UreqTransport>;

const SCHEMA: &str = "create table v (id integer primary key, l, c integer, s text, t text)";

fn policies() -> Vec<(String, Policy)> {
    vec![
        ("c".into(), Policy::Counter),
        ("s".into(), Policy::Set),
        ("t".into(), Policy::Text),
    ]
}

fn replica() -> R {
    let r = Replica::open(
        ReplicaConfig {
            path: ":memory:".into(),
            ..Default::default()
        },
        UreqTransport::default(),
        Env::default(),
    )
    .unwrap();
    r.execute(&Statement::new(SCHEMA)).unwrap();
    r.replicate("v", &policies(), vec![]).unwrap();
    r
}

/// A server database as the schema step leaves it, with the capture triggers.
fn server() -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for ddl in [
        rules::SERVER_DDL,
        rules::STATE_DDL,
        COLUMNS_DDL,
        super::server::SERVER_STATE_DDL,
        SCHEMA,
    ] {
        conn.execute_batch(ddl).unwrap();
    }
    let spec = policy::TableSpec::introspect(&conn, "v", &policies()).unwrap();
    conn.execute_batch(&rows::ddl(&spec)).unwrap();
    for sql in super::server::triggers(&spec).0 {
        conn.execute_batch(&sql).unwrap_or_else(|e| panic!("{e}: {sql}"));
    }
    conn
}

/// Applies the server's log after `cursor` to `r`, as a pull does.
fn pull(server: &rusqlite::Connection, r: &R, cursor: &mut i64) {
    let mut stmt = server
        .prepare("select seq, site, rec from _es_log where seq > ?1 order by seq")
        .unwrap();
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([*cursor], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    r.fold_all().unwrap();
    for (seq, site, rec) in rows {
        let rec = Record::from_json(&serde_json::from_str(&rec).unwrap()).unwrap();
        r.apply_records(&[&rec], &site, Apply::Remote).unwrap();
        *cursor = seq;
    }
    r.render_back().unwrap();
}

fn dump_server(server: &rusqlite::Connection) -> Vec<Vec<Value>> {
    let mut stmt = server.prepare("select * from v order by id").unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| crate::store::read_value(r.get_ref(i).unwrap()))
            .collect())
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn dump(r: &R) -> Vec<Vec<Value>> {
    r.execute(&Statement::new("select * from v order by id")).unwrap().rows
}

/// One write by another client: SQL with `?1` a key and `?2` a value.
fn write() -> impl Strategy<Value = (String, Value)> {
    let val = prop_oneof![
        Just(Value::Null),
        (-3i64..3).prop_map(Value::Integer),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>()
            .prop_filter("no NaN", |f| !f.is_nan())
            .prop_map(Value::Real),
        "[a-c]{0,3}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..3).prop_map(Value::Blob),
    ];
    let set = proptest::collection::vec(
        prop_oneof![
            "[ab]".prop_map(|s| format!("\"{s}\"")),
            (0..2i64).prop_map(|n| n.to_string())
        ],
        0..3,
    )
    .prop_map(|e| Value::Text(format!("[{}]", e.join(","))));
    prop_oneof![
        val.clone()
            .prop_map(|v| ("insert or replace into v (id, l) values (?1, ?2)".to_string(), v)),
        val.prop_map(|v| ("update v set l = ?2 where id = ?1".to_string(), v)),
        (-5i64..5).prop_map(|n| (
            "update v set c = coalesce(c, 0) + ?2 where id = ?1".to_string(),
            Value::Integer(n)
        )),
        Just(("update v set c = NULL where id = ?1".to_string(), Value::Null)),
        set.prop_map(|v| ("update v set s = ?2 where id = ?1".to_string(), v)),
        Just(("update v set s = NULL, t = NULL where id = ?1".to_string(), Value::Null)),
        "[xy]{0,3}".prop_map(|s| (
            "insert or ignore into v (id, c, s, t) values (?1, 1, '[]', ?2)".to_string(),
            Value::Text(s)
        )),
        Just(("delete from v where id = ?1".to_string(), Value::Null)),
        Just(("update v set id = id + 10 where id = ?1".to_string(), Value::Null)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replicas_read_what_other_clients_wrote_on_the_server(writes in proptest::collection::vec((0i64..3, write()), 1..25), pull_every in 1usize..6) {
        let srv = server();
        let (a, b) = (replica(), replica());
        let (mut ca, mut cb) = (0, 0);
        for (i, (k, (sql, v))) in writes.iter().enumerate() {
            let mut stmt = srv.prepare(sql).unwrap();
            // A refused value (a text changed by plain SQL, say) changes nothing.
            let res = if stmt.parameter_count() == 1 {
                stmt.execute(rusqlite::params![k])
            } else {
                stmt.execute(rusqlite::params![k, v])
            };
            if let Err(e) = res {
                let e = e.to_string();
                prop_assert!(e.contains("UNSUPPORTED_VALUE") || e.contains("UNIQUE constraint"), "{}: {}", sql, e);
            }
            if i % pull_every == 0 {
                pull(&srv, &a, &mut ca);
            }
        }
        pull(&srv, &a, &mut ca);
        pull(&srv, &b, &mut cb);
        let want = dump_server(&srv);
        prop_assert_eq!(dump(&a), want.clone());
        prop_assert_eq!(dump(&b), want);
    }
}

#[test]
fn a_key_changed_on_the_server_moves_the_row_everywhere() {
    let srv = server();
    let a = replica();
    let mut c = 0;
    srv.execute_batch("insert into v (id, l, c, s, t) values (1, 'x', 2, '[\"a\"]', 'hi')")
        .unwrap();
    pull(&srv, &a, &mut c);
    srv.execute_batch("update v set id = 11 where id = 1").unwrap();
    pull(&srv, &a, &mut c);
    assert_eq!(dump(&a), dump_server(&srv));
    assert_eq!(dump(&a).len(), 1);
}
