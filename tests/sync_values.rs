//! What each policy does with each SQLite value, through a real sqld (issue 13, §3):
//! NULL replicates as NULL, what a policy cannot hold is refused by the writing
//! statement (`UNSUPPORTED_VALUE`), counters saturate and never stop a sync, and every
//! value a last-writer-wins column holds comes back exactly — on every replica and in
//! the server's table.

mod common;

use common::replicas::{exec, query, replica, server_query, sync, sync_all, try_exec};
use common::Sqld;
use edgesync::sync::Policy;
use edgesync::Value;

const SCHEMA: &str = "create table v (id integer primary key, l, c integer, s text, t text, x)";

fn setup(r: &common::replicas::R) {
    exec(r, SCHEMA);
    let policies = [
        ("c".into(), Policy::Counter),
        ("s".into(), Policy::Set),
        ("t".into(), Policy::Text),
        ("x".into(), Policy::Custom),
    ];
    r.replicate("v", &policies, vec![]).unwrap();
}

const ROW: &str = "select l, c, s, t, x from v where id = 1";

#[test]
fn null_replicates_as_null_on_every_policy() {
    let s = Sqld::start();
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    exec(&a, "insert into v values (1, 'l', 5, '[\"a\"]', 'text', 'x')");
    sync_all(&[&a, &b]);
    exec(
        &a,
        "update v set l = NULL, c = NULL, s = NULL, t = NULL, x = NULL where id = 1",
    );
    sync_all(&[&a, &b]);
    let nulls = vec![vec![Value::Null; 5]];
    assert_eq!(query(&a, ROW), nulls, "the writer");
    // The text used to arrive as "" and the counter as 0 (and the set as []).
    assert_eq!(query(&b, ROW), nulls, "another replica");
    assert_eq!(server_query(&s, ROW), nulls, "the server");
    // A replica made now reads the same.
    let c = replica(&s);
    setup(&c);
    sync(&c);
    assert_eq!(query(&c, ROW), nulls, "a new replica");
}

/// A replica that bootstrapped a text and then set it to NULL keeps the NULL: its next
/// pull used to re-render the (empty) document as "" and push that.
#[test]
fn a_bootstrapped_text_set_to_null_stays_null() {
    let s = Sqld::start();
    let a = replica(&s);
    setup(&a);
    exec(&a, "insert into v (id, t) values (1, 'text')");
    sync(&a);
    let c = replica(&s);
    setup(&c);
    sync(&c);
    exec(&c, "update v set t = NULL where id = 1");
    sync(&c);
    sync(&c);
    let t = "select t from v where id = 1";
    assert_eq!(query(&c, t), vec![vec![Value::Null]], "the writer");
    assert_eq!(server_query(&s, t), vec![vec![Value::Null]], "the server");
}

#[test]
fn values_a_policy_cannot_hold_are_refused_at_write_time() {
    let s = Sqld::start();
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    exec(&a, "insert into v (id, c, s, t) values (1, 1, '[]', 'a')");
    for (sql, v) in [
        ("update v set t = ?1 where id = 1", Value::Blob(vec![0, 255, 0])),
        ("update v set c = ?1 where id = 1", Value::Text("abc".into())),
        ("update v set c = ?1 where id = 1", Value::Real(1.5)),
        ("update v set c = ?1 where id = 1", Value::Integer(i64::MIN)),
        ("update v set s = ?1 where id = 1", Value::Text("abc".into())),
        (
            "update v set l = cast(?1 as text) where id = 1",
            Value::Blob(vec![0xff]),
        ),
    ] {
        assert_eq!(try_exec(&a, sql, vec![v.clone()]), "UNSUPPORTED_VALUE", "{sql} {v:?}");
    }
    // Nothing of it reached anyone, and sync goes on.
    sync_all(&[&a, &b]);
    let want = vec![vec![
        Value::Null,
        Value::Integer(1),
        Value::Text("[]".into()),
        Value::Text("a".into()),
        Value::Null,
    ]];
    assert_eq!(query(&a, ROW), want);
    assert_eq!(query(&b, ROW), want);
    assert_eq!(server_query(&s, ROW), want);
}

#[test]
fn counters_saturate_and_sync_never_gets_stuck() {
    let s = Sqld::start();
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    exec(&a, "insert into v (id, c) values (1, 0)");
    sync_all(&[&a, &b]);
    // Two legitimate increments of 6e18: one replica's every sync used to fail with
    // SQL_ERROR (integer overflow in the server's sum).
    exec(&a, "update v set c = c + 6000000000000000000 where id = 1");
    exec(&b, "update v set c = c + 6000000000000000000 where id = 1");
    for _ in 0..3 {
        sync_all(&[&a, &b]);
    }
    let max = vec![vec![Value::Integer(i64::MAX)]];
    let c = "select c from v where id = 1";
    assert_eq!(query(&a, c), max);
    assert_eq!(query(&b, c), max);
    assert_eq!(server_query(&s, c), max);
    // −(2^63 − 1) from 0 replicates exactly; −2^63 was flipped to +2^63 − 1.
    exec(&a, "insert into v (id, c) values (2, 0)");
    sync_all(&[&a, &b]);
    exec(&a, "update v set c = -9223372036854775807 where id = 2");
    sync_all(&[&a, &b]);
    let min = vec![vec![Value::Integer(-i64::MAX)]];
    let c2 = "select c from v where id = 2";
    assert_eq!(query(&b, c2), min);
    assert_eq!(server_query(&s, c2), min);
    assert_eq!(
        try_exec(&a, "update v set c = c - 1 where id = 2", vec![]),
        "UNSUPPORTED_VALUE"
    );
}

/// Values of every SQLite type, edge cases included, through the server.
#[test]
fn every_lww_and_custom_value_comes_back_exactly() {
    let s = Sqld::start();
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    let values = [
        Value::Null,
        Value::Integer(0),
        Value::Integer(i64::MIN),
        Value::Integer(i64::MAX),
        Value::Integer(-(1 << 53) - 1),
        Value::Real(0.1 + 0.2),
        Value::Real(-0.0),
        Value::Real(5e-324),
        Value::Real(f64::MAX),
        Value::Real(1.0),
        Value::Real(123_456_789.123_456_79),
        Value::Text(String::new()),
        Value::Text("é 😀 \u{0} \n \"'{}".into()),
        Value::Text("{\"b\":\"00ff\"}".into()),
        Value::Text("9223372036854775808".into()),
        Value::Blob(vec![]),
        Value::Blob(vec![0, 255, 1]),
    ];
    for (i, v) in values.iter().enumerate() {
        let mut st = edgesync::Statement::new("insert into v (id, l, x) values (?1, ?2, ?2)");
        st.args = vec![Value::Integer(i as i64 + 10), v.clone()];
        a.execute(&st).unwrap();
    }
    exec(&a, "insert into v (id, l, x) values (100, 9e999, -9e999)");
    sync_all(&[&a, &b]);
    let sql = "select id, l, typeof(l), x, typeof(x) from v order by id";
    let (ra, rb) = (query(&a, sql), query(&b, sql));
    assert_eq!(ra.len(), values.len() + 1);
    for (x, y) in ra.iter().zip(&rb) {
        for (p, q) in x.iter().zip(y) {
            let same = match (p, q) {
                (Value::Real(f), Value::Real(g)) => f.to_bits() == g.to_bits(),
                _ => p == q,
            };
            assert!(same, "{x:?} != {y:?}");
        }
    }
    // The server's table holds them too (Hrana carries no infinity: that row is left out).
    let server = server_query(
        &s,
        "select id, l, typeof(l), x, typeof(x) from v where id < 100 order by id",
    );
    assert_eq!(server.len(), values.len());
    for (x, y) in ra.iter().zip(&server) {
        assert_eq!(x[2], y[2], "{x:?} vs {y:?}");
        if !matches!(x[1], Value::Real(_)) {
            assert_eq!(x[1], y[1]);
        }
    }
}

/// Row state written by the previous edgesync (no NULL flags for counter and set
/// columns, no server triggers, no log epoch) is upgraded in place, locally at open
/// and on the server at the next sync.
#[test]
fn state_from_the_previous_layout_is_upgraded() {
    let s = Sqld::start();
    let dir = std::env::temp_dir().join(format!("es-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.db");
    let open = || {
        let config = edgesync::sync::ReplicaConfig {
            path: path.to_string_lossy().into_owned(),
            sync_url: Some(s.url.clone()),
            auth_token: Some(s.rw.clone()),
            timeout_ms: Some(10_000),
            ..Default::default()
        };
        edgesync::sync::Replica::open(config, edgesync::remote::UreqTransport::default(), Default::default()).unwrap()
    };
    {
        let a = open();
        setup(&a);
        exec(&a, "insert into v values (1, 'l', 5, '[\"a\"]', 'text', 'x')");
        sync(&a);
        // Back to the previous layout, here and on the server.
        for c in ["c_c", "v_c", "c_s", "v_s"] {
            exec(&a, &format!("alter table _es_row_v drop column {c}"));
            common::replicas::server_exec(&s, &format!("alter table _es_row_v drop column {c}"));
        }
        for t in server_query(&s, "select name from sqlite_master where type = 'trigger'") {
            let Value::Text(name) = &t[0] else { panic!() };
            common::replicas::server_exec(&s, &format!("drop trigger \"{name}\""));
        }
        common::replicas::server_exec(&s, "delete from _es_log where seq = 0");
    }
    let a = open();
    a.replicate(
        "v",
        &[
            ("c".into(), Policy::Counter),
            ("s".into(), Policy::Set),
            ("t".into(), Policy::Text),
            ("x".into(), Policy::Custom),
        ],
        vec![],
    )
    .unwrap();
    exec(&a, "update v set c = c + 1, s = NULL where id = 1");
    sync(&a);
    let b = replica(&s);
    setup(&b);
    sync(&b);
    let want = vec![vec![
        Value::Text("l".into()),
        Value::Integer(6),
        Value::Null,
        Value::Text("text".into()),
        Value::Text("x".into()),
    ]];
    assert_eq!(query(&a, ROW), want);
    assert_eq!(query(&b, ROW), want);
    assert_eq!(server_query(&s, ROW), want);
    let _ = std::fs::remove_dir_all(&dir);
}
