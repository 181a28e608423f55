//! The native remote client against a real sqld on loopback.

mod common;

use common::{block, fake_server, Sqld};
use edgesync::remote::{RemoteClient, RemoteConfig, UreqTransport};
use edgesync::{Error, Statement, TransactionMode, Value};

fn exec(c: &RemoteClient<UreqTransport>, s: impl Into<Statement>) -> edgesync::ResultSet {
    block(c.execute(&s.into())).unwrap()
}

fn err(c: &RemoteClient<UreqTransport>, s: impl Into<Statement>) -> Error {
    block(c.execute(&s.into())).unwrap_err()
}

#[test]
fn every_value_type_round_trips() {
    let s = Sqld::start();
    let c = s.client();
    exec(&c, "create table v(id integer primary key, x)");
    let big_blob: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 + i / 256) as u8).collect();
    let values = vec![
        Value::Null,
        Value::Integer(0),
        Value::Integer(i64::MAX),
        Value::Integer(i64::MIN),
        Value::Integer(9_007_199_254_740_993),
        Value::Real(0.1 + 0.2),
        Value::Real(1e308),
        Value::Real(-5e-324),
        Value::Real(-0.0),
        Value::Text(String::new()),
        Value::Text("héllo wörld ✓ 🦀 日本語 e\u{301} \u{0}nul".into()),
        Value::Blob(Vec::new()),
        Value::Blob(vec![0, 255, 1, 254]),
        Value::Blob(big_blob),
    ];
    for (i, v) in values.iter().enumerate() {
        let rs = exec(
            &c,
            Statement::new("insert into v values (?, ?)")
                .arg(i as i64)
                .arg(v.clone()),
        );
        assert_eq!(rs.rows_affected, 1);
        assert_eq!(rs.last_insert_rowid, Some(i as i64));
    }
    let rs = exec(&c, "select x, typeof(x) from v order by id");
    assert_eq!(rs.rows.len(), values.len());
    for (row, want) in rs.rows.iter().zip(&values) {
        match (want, &row[0]) {
            (Value::Real(a), Value::Real(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}"),
            _ => assert_eq!(&row[0], want),
        }
    }
    // Named arguments, with and without the prefix.
    let rs = exec(
        &c,
        Statement::new("select :a, @b, $c")
            .named(":a", 1)
            .named("b", "two")
            .named("$c", Value::Null),
    );
    assert_eq!(
        rs.rows[0],
        vec![Value::Integer(1), Value::Text("two".into()), Value::Null]
    );
    assert_eq!(rs.columns, [":a", "@b", "$c"]);
}

#[test]
fn batch_is_atomic() {
    let s = Sqld::start();
    let c = s.client();
    exec(&c, "create table t(id integer primary key, name text not null)");
    let ok = block(c.batch(
        &[
            Statement::new("insert into t values (1, 'a')"),
            Statement::new("insert into t values (2, 'b')"),
            Statement::new("select count(*) from t"),
        ],
        TransactionMode::Write,
    ))
    .unwrap();
    assert_eq!(ok.len(), 3);
    assert_eq!(ok[2].rows[0][0], Value::Integer(2));

    let e = block(c.batch(
        &[
            Statement::new("insert into t values (3, 'c')"),
            Statement::new("insert into t values (4, null)"),
            Statement::new("insert into t values (5, 'e')"),
        ],
        TransactionMode::Write,
    ))
    .unwrap_err();
    assert_eq!(e.code(), "SQLITE_CONSTRAINT");
    assert!(
        matches!(
            e,
            Error::Sql {
                statement_index: Some(1),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(exec(&c, "select count(*) from t").rows[0][0], Value::Integer(2));

    // A read batch sees a consistent snapshot.
    let r = block(c.batch(
        &["select 1".into(), "select name from t order by id".into()],
        TransactionMode::Read,
    ))
    .unwrap();
    assert_eq!(r[1].rows.len(), 2);
    // An empty batch is a no-op.
    assert!(block(c.batch(&[], TransactionMode::Deferred)).unwrap().is_empty());
}

#[test]
fn sql_errors_have_codes() {
    let s = Sqld::start();
    let c = s.client();
    exec(
        &c,
        "create table t(id integer primary key, u unique, n not null, k check (k > 0))",
    );
    exec(&c, "insert into t values (1, 1, 1, 1)");
    // The server's own codes, as the official client reports them.
    assert_eq!(err(&c, "selec 1").code(), "SQL_PARSE_ERROR");
    for bad in [
        "insert into t values (1, 2, 1, 1)",
        "insert into t values (2, 1, 1, 1)",
        "insert into t values (3, 3, null, 1)",
        "insert into t values (4, 4, 1, -1)",
    ] {
        let e = err(&c, bad);
        assert_eq!(e.code(), "SQLITE_CONSTRAINT", "{bad}: {e}");
        assert!(e.to_string().contains("constraint failed"), "{e}");
    }
    let e = err(&c, "select * from missing_table");
    assert_eq!(e.code(), "SQLITE_UNKNOWN");
    assert!(e.to_string().contains("missing_table"), "{e}");
    let e = err(&c, Statement::new("select ?").arg(f64::NAN));
    assert_eq!(e.code(), "INVALID_ARGUMENT");
    assert_eq!(err(&c, "create table t(x)").code(), "SQL_INPUT_ERROR");
    assert_eq!(err(&c, Statement::new("select ?").arg(1).arg(2)).code(), "ARGS_INVALID");
    assert_eq!(err(&c, "select 1; select 2").code(), "SQL_MANY_STATEMENTS");
}

#[test]
fn interactive_transactions_and_sequences_on_streams() {
    use edgesync::remote::hrana::{Batch, Request};
    use edgesync::remote::HttpStream;
    let s = Sqld::start();
    let c = s.client();
    block(c.sequence("create table t(x); insert into t values (1); insert into t values (2);")).unwrap();
    assert_eq!(exec(&c, "select count(*) from t").rows[0][0], Value::Integer(2));
    assert_eq!(
        block(c.sequence("insert into t values (3); insert into nope values (1);"))
            .unwrap_err()
            .code(),
        "SQLITE_UNKNOWN"
    );

    // A transaction over several pipelines, kept by its baton, invisible until committed.
    let mut st = HttpStream::default();
    let stmts = [Statement::new("insert into t values (10)")];
    let batch = Batch::in_transaction(&stmts, Some(TransactionMode::Write)).unwrap();
    let res = block(c.on_stream(
        &mut st,
        &[Request::Batch {
            stream_id: None,
            batch: &batch,
        }],
    ))
    .unwrap();
    assert!(res.into_iter().next().unwrap().is_ok());
    assert!(st.is_open_on_server());
    assert_eq!(
        exec(&c, "select count(*) from t where x = 10").rows[0][0],
        Value::Integer(0)
    );
    block(c.on_stream(&mut st, &[Request::run(None, "COMMIT"), Request::Close])).unwrap();
    assert!(st.is_closed());
    assert_eq!(
        exec(&c, "select count(*) from t where x = 10").rows[0][0],
        Value::Integer(1)
    );

    // migrate: foreign keys off inside, all or nothing.
    block(c.migrate(&[
        "create table p(id integer primary key)".into(),
        "create table ch(id integer primary key, p references p(id))".into(),
    ]))
    .unwrap();
    let e = block(c.migrate(&["insert into p values (1)".into(), "insert into p values (1)".into()])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Sql {
                statement_index: Some(1),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(exec(&c, "select count(*) from p").rows[0][0], Value::Integer(0));
}

#[test]
fn auth_failures_have_codes() {
    let s = Sqld::start();
    // As the official client: SERVER_ERROR with the HTTP status (the message says more).
    let e = err(&s.client_with(None), "select 1");
    assert_eq!((e.code(), e.status()), ("SERVER_ERROR", Some(401)));
    assert!(e.to_string().contains("requires an auth token"), "{e}");
    let e = err(&s.client_with(Some("not.a.jwt")), "select 1");
    assert_eq!((e.code(), e.status()), ("SERVER_ERROR", Some(401)));
    assert!(e.to_string().contains("rejected the auth token"), "{e}");
    let other_key = common::Auth::new().token(&serde_json::json!({"a": "rw"}));
    assert_eq!(err(&s.client_with(Some(&other_key)), "select 1").status(), Some(401));
    let expired = s.auth.token(&serde_json::json!({"a": "rw", "exp": 1_000_000}));
    assert_eq!(err(&s.client_with(Some(&expired)), "select 1").status(), Some(401));

    let ro = s.client_with(Some(&s.ro));
    assert_eq!(exec(&ro, "select 41 + 1").rows[0][0], Value::Integer(42));
    let e = err(&ro, "create table nope(x)");
    assert_eq!((e.code(), e.status()), ("SERVER_ERROR", Some(403)));
    assert!(e.to_string().contains("Write permission"), "{e}");
}

#[test]
fn network_failures_have_codes() {
    // Nothing listens: refused.
    let port = common::free_port();
    let c = RemoteClient::new(
        RemoteConfig::parse(&format!("http://127.0.0.1:{port}"), None).unwrap(),
        UreqTransport::default(),
    );
    let e = err(&c, "select 1");
    assert_eq!(e.code(), "SERVER_UNREACHABLE");
    assert!(e.is_retryable());

    // Accepts, never answers: times out (no hang).
    let port = fake_server(None);
    let config = RemoteConfig::parse(&format!("http://127.0.0.1:{port}"), None)
        .unwrap()
        .with_timeout_ms(300)
        .unwrap();
    let c = RemoteClient::new(config, UreqTransport::default());
    let started = std::time::Instant::now();
    assert_eq!(err(&c, "select 1").code(), "TIMEOUT");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // Answers, but not Hrana.
    let port = fake_server(Some(
        b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\nconnection: close\r\n\r\n<html>hi</html>",
    ));
    let c = RemoteClient::new(
        RemoteConfig::parse(&format!("http://127.0.0.1:{port}"), None).unwrap(),
        UreqTransport::default(),
    );
    assert_eq!(err(&c, "select 1").code(), "HRANA_PROTO_ERROR");

    // A proxy's 502.
    let port = fake_server(Some(
        b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 3\r\nconnection: close\r\n\r\nbad",
    ));
    let c = RemoteClient::new(
        RemoteConfig::parse(&format!("http://127.0.0.1:{port}"), None).unwrap(),
        UreqTransport::default(),
    );
    let e = err(&c, "select 1");
    assert_eq!(e.code(), "SERVER_ERROR");
    assert!(e.is_retryable());
}

#[test]
fn server_restart_is_survived() {
    let mut s = Sqld::start();
    let c = s.client();
    exec(&c, "create table t(x)");
    exec(&c, "insert into t values (1)");
    s.kill();
    assert_eq!(err(&c, "select count(*) from t").code(), "SERVER_UNREACHABLE");
    s.restart();
    assert_eq!(exec(&c, "select count(*) from t").rows[0][0], Value::Integer(1));
}

#[test]
fn closed_client_refuses_work() {
    let s = Sqld::start();
    let c = s.client();
    c.close();
    assert_eq!(err(&c, "select 1").code(), "CLIENT_CLOSED");
}
