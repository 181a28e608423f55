//! The server's tables are the truth, through a real sqld (issue 13, §6 and the clock
//! item of §7): writes made there by other SQL clients reach every replica; leftovers
//! in edgesync's tables are never merged or trusted silently; a recreated log is
//! detected; a changed policy is noticed at the next sync; a replica whose clock runs
//! fast finds out from the server's time.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::replicas::{exec, query, replica, replica_with, server_exec, server_query, sync, sync_all, R};
use common::{block, Sqld};
use edgesync::sync::{Env, Event, Policy};
use edgesync::Value;

const SCHEMA: &str =
    "create table items (id text primary key, name text, qty integer, tags text, note text, price real, img blob)";

fn setup(r: &R) {
    exec(r, SCHEMA);
    let p = [
        ("qty".into(), Policy::Counter),
        ("tags".into(), Policy::Set),
        ("note".into(), Policy::Text),
    ];
    r.replicate("items", &p, vec![]).unwrap();
}

const ALL: &str = "select * from items order by id";

/// The codes of the `sync:error` events a replica emits.
fn errors(r: &R) -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    r.set_listener(Some(Box::new(move |e: &Event| {
        if let Event::Error { code, message, .. } = e {
            s.borrow_mut().push(format!("{code}: {message}"));
        }
    })));
    seen
}

#[test]
fn writes_by_other_sql_clients_reach_every_replica() {
    let s = Sqld::start();
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    exec(
        &a,
        "insert into items values ('x', 'from a', 10, '[\"red\"]', 'hello', 1.5, x'00')",
    );
    sync_all(&[&a, &b]);
    // Another client (a backend, the Turso shell) writes on the server.
    for sql in [
        "insert into items values ('s', 'from the server', 3, '[\"b\",\"a\",\"a\"]', 'seeded text', 0.1, x'ff00')",
        "update items set name = 'renamed on the server', qty = qty + 5, tags = '[\"red\",\"green\"]', price = 2.25 where id = 'x'",
        "insert into items (id, name) values ('gone', 'soon deleted')",
        "delete from items where id = 'gone'",
        "update items set note = NULL where id = 'x'",
    ] {
        assert_eq!(server_exec(&s, sql), "ok", "{sql}");
    }
    // Meanwhile a replica counts too: both increments stay.
    exec(&b, "update items set qty = qty + 1 where id = 'x'");
    sync_all(&[&a, &b]);
    let want = server_query(&s, ALL);
    assert_eq!(want.len(), 2, "{want:?}");
    assert_eq!(query(&a, ALL), want);
    assert_eq!(query(&b, ALL), want);
    assert_eq!(want[1][2], Value::Integer(16), "10 + 5 on the server + 1 on b");
    assert_eq!(want[1][3], Value::Text("[\"green\",\"red\"]".into()));
    assert_eq!(want[1][4], Value::Null);
    assert_eq!(
        want[0][3],
        Value::Text("[\"a\",\"b\"]".into()),
        "normalized on the server too"
    );
    assert_eq!(want[0][4], Value::Text("seeded text".into()));
    // The seeded text edits like any other, from every replica.
    exec(&a, "update items set note = 'seeded text, edited' where id = 's'");
    exec(&b, "update items set note = 'well seeded text' where id = 's'");
    sync_all(&[&a, &b]);
    let note = "select note from items where id = 's'";
    assert_eq!(
        query(&a, note),
        vec![vec![Value::Text("well seeded text, edited".into())]]
    );
    assert_eq!(query(&b, note), query(&a, note));
    assert_eq!(server_query(&s, note), query(&a, note));
    // A replica made now has it all.
    let c = replica(&s);
    setup(&c);
    sync(&c);
    assert_eq!(query(&c, ALL), query(&a, ALL));
}

#[test]
fn other_clients_get_coded_errors_for_what_a_column_cannot_hold() {
    let s = Sqld::start();
    let a = replica(&s);
    setup(&a);
    exec(&a, "insert into items (id, note) values ('x', 'text')");
    sync(&a);
    for sql in [
        "update items set qty = 'abc' where id = 'x'",
        "update items set tags = 'not json' where id = 'x'",
        "update items set note = x'00' where id = 'x'",
        // A collaborative text changes by edits, which plain SQL does not make.
        "update items set note = 'rewritten' where id = 'x'",
    ] {
        let got = server_exec(&s, sql);
        assert!(got.starts_with("UNSUPPORTED_VALUE"), "{sql}: {got}");
    }
    sync(&a);
    assert_eq!(query(&a, ALL), server_query(&s, ALL));
}

#[test]
fn a_row_left_in_the_chunk_table_is_never_merged_instead_of_the_push() {
    let s = Sqld::start();
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    sync_all(&[&a, &b]);
    // A stale chunk (a crashed push, or anyone), at the rowid a push uses and after it.
    let stale = "[[1, \"items\", [\"evil\"], \"i\", {\"name\": \"stale\"}]]";
    for rowid in [0, 1, 2] {
        let sql = format!("insert into _es_chunk (rowid, j, site) values ({rowid}, '{stale}', '00000000000000ff')");
        assert_eq!(server_exec(&s, &sql), "ok");
    }
    exec(&a, "insert into items (id, name) values ('mine', 'pushed')");
    sync_all(&[&a, &b]);
    let want = vec![vec![Value::Text("mine".into()), Value::Text("pushed".into())]];
    assert_eq!(server_query(&s, "select id, name from items"), want);
    assert_eq!(query(&b, "select id, name from items"), want);
    assert_eq!(
        server_query(&s, "select count(*) from _es_chunk"),
        vec![vec![Value::Integer(0)]]
    );
}

#[test]
fn a_recreated_log_is_detected_and_the_replica_reads_the_server_again() {
    let s = Sqld::start();
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    for i in 0..5 {
        exec(&a, &format!("insert into items (id, qty) values ('k{i}', {i})"));
    }
    sync_all(&[&a, &b]);
    let seen = errors(&b);
    // The log is dropped (or a backup restored): its sequence starts again.
    assert_eq!(server_exec(&s, "drop table _es_log"), "ok");
    let c = replica(&s);
    setup(&c);
    sync(&c);
    exec(
        &c,
        "insert into items (id, name) values ('after', 'written after the reset')",
    );
    exec(&c, "update items set qty = qty + 100 where id = 'k1'");
    sync(&c);
    // b's cursor was past the new log's end: it used to never receive these.
    sync(&b);
    sync(&b);
    assert!(
        seen.borrow().iter().any(|e| e.starts_with("SERVER_RESET")),
        "{:?}",
        seen.borrow()
    );
    assert_eq!(query(&b, ALL), server_query(&s, ALL));
    assert_eq!(
        query(&b, "select qty from items where id = 'k1'"),
        vec![vec![Value::Integer(101)]]
    );
    // a, too (its pushes recreated nothing: it learns at its next sync).
    sync_all(&[&a, &b, &c]);
    assert_eq!(query(&a, ALL), server_query(&s, ALL));
}

#[test]
fn a_policy_changed_on_the_server_is_noticed_at_the_next_sync() {
    let s = Sqld::start();
    let a = replica(&s);
    setup(&a);
    exec(&a, "insert into items (id, qty) values ('x', 1)");
    sync(&a);
    sync(&a);
    assert_eq!(
        server_exec(
            &s,
            "update _es_tables set pol = json_set(pol, '$.qty', 'lww') where tbl = 'items'"
        ),
        "ok"
    );
    exec(&a, "update items set qty = 2");
    let e = block(a.sync()).unwrap_err();
    assert_eq!(e.code(), "SCHEMA_MISMATCH", "{e}");
    // Every later sync too, until it is put right.
    assert_eq!(block(a.sync()).unwrap_err().code(), "SCHEMA_MISMATCH");
    assert_eq!(
        server_exec(
            &s,
            "update _es_tables set pol = json_set(pol, '$.qty', 'counter') where tbl = 'items'"
        ),
        "ok"
    );
    sync(&a);
}

#[test]
fn a_table_the_server_had_before_is_adopted() {
    let s = Sqld::start();
    assert_eq!(server_exec(&s, SCHEMA), "ok");
    assert_eq!(
        server_exec(
            &s,
            "insert into items (id, name, qty, tags, note) values ('old', 'before edgesync', 7, '[\"t\"]', 'old text')"
        ),
        "ok"
    );
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    exec(&a, "insert into items (id, name) values ('new', 'from a')");
    sync_all(&[&a, &b]);
    let want = server_query(&s, ALL);
    assert_eq!(want.len(), 2);
    assert_eq!(query(&a, ALL), want);
    assert_eq!(query(&b, ALL), want);
    exec(
        &b,
        "update items set qty = qty + 1, note = 'old text, edited' where id = 'old'",
    );
    sync_all(&[&a, &b]);
    assert_eq!(
        query(&a, "select qty, note from items where id = 'old'"),
        vec![vec![Value::Integer(8), Value::Text("old text, edited".into())]]
    );
}

fn an_hour_fast() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000
}

#[test]
fn a_replica_whose_clock_runs_fast_finds_out_and_stops_winning() {
    let s = Sqld::start();
    let fast = replica_with(
        &s,
        Env {
            now_ms: an_hour_fast,
            ..Env::default()
        },
    );
    let ok = replica(&s);
    setup(&fast);
    setup(&ok);
    let seen = errors(&fast);
    exec(&ok, "insert into items (id, name) values ('x', 'first')");
    sync(&ok);
    sync(&fast);
    assert!(
        seen.borrow()
            .iter()
            .any(|e| e.starts_with("CLOCK_DRIFT") && e.contains("ahead")),
        "{:?}",
        seen.borrow()
    );
    // From now on its writes carry the server's time: a later write elsewhere wins.
    exec(&fast, "update items set name = 'fast, earlier' where id = 'x'");
    sync(&fast);
    std::thread::sleep(std::time::Duration::from_millis(20));
    exec(&ok, "update items set name = 'correct, later' where id = 'x'");
    sync_all(&[&ok, &fast]);
    let want = vec![vec![Value::Text("correct, later".into())]];
    assert_eq!(query(&fast, "select name from items"), want);
    assert_eq!(query(&ok, "select name from items"), want);
    // Its delete, likewise, is not overridden by an hour.
    exec(&fast, "delete from items where id = 'x'");
    sync_all(&[&fast, &ok]);
    assert!(query(&ok, "select * from items").is_empty());
}

#[test]
fn replicas_setting_up_the_server_at_once_all_succeed() {
    let s = Sqld::start();
    let (url, token) = (s.url.clone(), s.rw.clone());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (url, token) = (url.clone(), token.clone());
            std::thread::spawn(move || {
                let config = edgesync::sync::ReplicaConfig {
                    path: ":memory:".into(),
                    sync_url: Some(url),
                    auth_token: Some(token),
                    timeout_ms: Some(10_000),
                    ..Default::default()
                };
                let r =
                    edgesync::sync::Replica::open(config, edgesync::remote::UreqTransport::default(), Env::default())
                        .unwrap();
                setup(&r);
                exec(&r, &format!("insert into items (id, qty) values ('r{i}', {i})"));
                block(r.sync()).map(|_| ()).map_err(|e| format!("{}: {e}", e.code()))
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(
        server_query(&s, "select count(*) from items"),
        vec![vec![Value::Integer(4)]]
    );
}
