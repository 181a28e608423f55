//! Native replicas syncing through a real sqld on loopback.

mod common;

use common::{block, Sqld};
use edgesync::remote::UreqTransport;
use edgesync::sync::{ConflictResolver, Env, Policy, Replica, ReplicaConfig};
use edgesync::{Statement, Value};

type R = Replica<UreqTransport>;

fn replica(s: &Sqld) -> R {
    replica_at(s, ":memory:")
}

/// A replica of `s` at `path` (`:memory:` or a `file:` URL).
fn replica_at(s: &Sqld, path: &str) -> R {
    let config = ReplicaConfig {
        path: path.into(),
        sync_url: Some(s.url.clone()),
        auth_token: Some(s.rw.clone()),
        timeout_ms: Some(10_000),
        ..Default::default()
    };
    Replica::open(config, UreqTransport::default(), Env::default()).unwrap()
}

fn exec(r: &R, sql: &str) -> edgesync::ResultSet {
    r.execute(&Statement::new(sql)).unwrap()
}

fn dump(r: &R, table: &str) -> Vec<Vec<Value>> {
    exec(r, &format!("select * from {table} order by 1")).rows
}

fn server_dump(s: &Sqld, table: &str) -> Vec<Vec<Value>> {
    block(
        s.client()
            .execute(&Statement::new(format!("select * from {table} order by 1"))),
    )
    .unwrap()
    .rows
}

const SCHEMA: &str =
    "create table items (id text primary key, name text, qty integer not null default 0, tags text, note text)";

fn setup(r: &R) {
    exec(r, SCHEMA);
    r.replicate(
        "items",
        &[
            ("qty".into(), Policy::Counter),
            ("tags".into(), Policy::Set),
            ("note".into(), Policy::Text),
        ],
        vec![],
    )
    .unwrap();
}

#[test]
fn three_replicas_converge_with_every_policy() {
    let s = Sqld::start();
    let (a, b, c) = (replica(&s), replica(&s), replica(&s));
    for r in [&a, &b, &c] {
        setup(r);
    }
    exec(
        &a,
        "insert into items values ('x', 'first', 10, '[\"red\"]', 'hello world')",
    );
    block(a.sync()).unwrap();
    block(b.sync()).unwrap();
    block(c.sync()).unwrap();
    assert_eq!(dump(&b, "items"), dump(&a, "items"));

    // Concurrent edits on all three, offline from each other.
    exec(
        &a,
        "update items set qty = qty + 5, name = 'from a', tags = '[\"red\",\"blue\"]' where id = 'x'",
    );
    exec(
        &b,
        "update items set qty = qty - 3, tags = '[]', note = 'hello brave world' where id = 'x'",
    );
    exec(
        &c,
        "update items set qty = qty + 1, note = 'hello world!' where id = 'x'",
    );
    exec(&c, "insert into items (id, name) values ('y', 'from c')");
    exec(&b, "insert into items (id, name, qty) values ('z', 'doomed', 1)");
    for r in [&a, &b, &c] {
        block(r.sync()).unwrap();
    }
    block(a.sync()).unwrap();
    // a saw z and deletes it; c updates it concurrently: the delete wins.
    exec(&a, "delete from items where id = 'z'");
    exec(&c, "update items set name = 'late edit' where id = 'z'");
    for _ in 0..2 {
        for r in [&a, &b, &c] {
            block(r.sync()).unwrap();
        }
    }
    let want = dump(&a, "items");
    assert_eq!(dump(&b, "items"), want);
    assert_eq!(dump(&c, "items"), want);
    assert_eq!(server_dump(&s, "items"), want);
    let x = &want[0];
    assert_eq!(x[2], Value::Integer(13), "10 + 5 - 3 + 1");
    // b removed the "red" it had seen; a only added "blue" (its "red" was the same one).
    assert_eq!(x[3], Value::Text("[\"blue\"]".into()));
    assert_eq!(x[4], Value::Text("hello brave world!".into()));
    assert_eq!(want.len(), 2, "z deleted: {want:?}");
}

#[test]
fn offline_writes_queue_and_push_once() {
    let mut s = Sqld::start();
    let a = replica(&s);
    setup(&a);
    s.kill();
    for i in 0..50 {
        exec(&a, &format!("insert into items (id, qty) values ('k{i}', {i})"));
    }
    let err = block(a.sync()).unwrap_err();
    assert_eq!(err.code(), "SERVER_UNREACHABLE");
    let st = a.status().unwrap();
    assert_eq!(st.pending, 50);
    assert_eq!(st.retries, 1);
    assert!(!st.online);
    s.restart();
    let rep = block(a.sync()).unwrap();
    assert_eq!(rep.changes_pushed, 50);
    assert_eq!(a.status().unwrap().pending, 0);
    assert_eq!(server_dump(&s, "items").len(), 50);
    let log = block(
        s.client()
            .execute(&Statement::new("select count(*) from _es_log where seq > 0")),
    )
    .unwrap();
    assert_eq!(log.rows[0][0], Value::Integer(50));
    let b = replica(&s);
    setup(&b);
    block(b.sync()).unwrap();
    assert_eq!(dump(&b, "items"), dump(&a, "items"));
}

#[test]
fn custom_rule_never_oversells() {
    let s = Sqld::start();
    let conservative = || -> ConflictResolver {
        Box::new(|local: &Value, remote: &Value, base: Option<&Value>| {
            let n = |v: &Value| match v {
                Value::Integer(i) => *i,
                _ => 0,
            };
            let delta = n(local) - base.map(n).unwrap_or(0);
            Ok(Value::Integer((n(remote) + delta).max(0)))
        })
    };
    let (a, b) = (replica(&s), replica(&s));
    for r in [&a, &b] {
        exec(r, "create table stock (sku text primary key, n integer not null)");
        r.replicate(
            "stock",
            &[("n".into(), Policy::Custom)],
            vec![("n".into(), conservative())],
        )
        .unwrap();
    }
    exec(&a, "insert into stock values ('w', 10)");
    block(a.sync()).unwrap();
    block(b.sync()).unwrap();
    assert_eq!(dump(&b, "stock")[0][1], Value::Integer(10));
    exec(&a, "update stock set n = n - 7 where sku = 'w'");
    exec(&b, "update stock set n = n - 6 where sku = 'w'");
    block(a.sync()).unwrap();
    block(b.sync()).unwrap();
    block(a.sync()).unwrap();
    assert_eq!(dump(&a, "stock")[0][1], Value::Integer(0));
    assert_eq!(dump(&b, "stock")[0][1], Value::Integer(0));
    assert_eq!(server_dump(&s, "stock")[0][1], Value::Integer(0));
    assert_eq!(b.metrics().conflicts, 1);
}

#[test]
fn schema_errors_are_clear() {
    let s = Sqld::start();
    let a = replica(&s);
    exec(&a, "create table t (id integer primary key, v text)");
    a.replicate("t", &[], vec![]).unwrap();
    block(a.sync()).unwrap();
    let b = replica(&s);
    exec(&b, "create table t (id integer primary key, v text, extra integer)");
    b.replicate("t", &[], vec![]).unwrap();
    let err = block(b.sync()).unwrap_err();
    assert_eq!(err.code(), "SCHEMA_MISMATCH");
    assert_eq!(a.replicate("nope", &[], vec![]).unwrap_err().code(), "SCHEMA_ERROR");
}

type Hook = Box<dyn FnMut(&str)>;

/// A transport that runs a local write while a request is on the wire, to pin down
/// the race where a pull rebuilds a row that has a write not yet folded.
struct DuringRequest {
    inner: UreqTransport,
    hook: std::cell::RefCell<Option<Hook>>,
}

impl edgesync::remote::HttpTransport for DuringRequest {
    async fn post(
        &self,
        req: edgesync::remote::HttpRequest<'_>,
    ) -> Result<edgesync::remote::HttpResponse, edgesync::remote::TransportError> {
        let body = String::from_utf8_lossy(&req.body).to_string();
        if let Some(h) = self.hook.borrow_mut().as_mut() {
            h(&body);
        }
        self.inner.post(req).await
    }
}

#[test]
fn writes_made_during_a_pull_are_not_overwritten() {
    use std::rc::Rc;
    let s = Sqld::start();
    let a = replica(&s);
    let config = ReplicaConfig {
        path: ":memory:".into(),
        sync_url: Some(s.url.clone()),
        auth_token: Some(s.rw.clone()),
        ..Default::default()
    };
    let hooked = Rc::new(
        Replica::open(
            config,
            DuringRequest {
                inner: UreqTransport::default(),
                hook: Default::default(),
            },
            Env::default(),
        )
        .unwrap(),
    );
    let b = &hooked;
    setup(&a);
    b.execute(&Statement::new(SCHEMA)).unwrap();
    b.replicate(
        "items",
        &[
            ("qty".into(), Policy::Counter),
            ("tags".into(), Policy::Set),
            ("note".into(), Policy::Text),
        ],
        vec![],
    )
    .unwrap();
    exec(
        &a,
        "insert into items (id, name, qty, tags, note) values ('x', 'a', 1, '[]', '[a1]')",
    );
    block(a.sync()).unwrap();
    block(b.sync()).unwrap();
    exec(
        &a,
        "update items set note = note || '[a2]', qty = qty + 1, name = 'from a' where id = 'x'",
    );
    block(a.sync()).unwrap();
    // While b's pull request is on the wire, b writes the same row.
    let weak = Rc::downgrade(&hooked);
    *b.transport().unwrap().hook.borrow_mut() = Some(Box::new(move |body: &str| {
        if body.contains("FROM _es_log WHERE seq >") {
            if let Some(b) = weak.upgrade() {
                b.execute(&Statement::new(
                    "update items set note = '[b1]' || note, qty = qty + 10, tags = '[\"b\"]' where id = 'x'",
                ))
                .unwrap();
            }
        }
    }));
    block(b.sync()).unwrap();
    *b.transport().unwrap().hook.borrow_mut() = None;
    for _ in 0..2 {
        block(a.sync()).unwrap();
        block(b.sync()).unwrap();
    }
    let want = dump(&a, "items");
    assert_eq!(
        b.execute(&Statement::new("select * from items order by 1"))
            .unwrap()
            .rows,
        want
    );
    assert_eq!(server_dump(&s, "items"), want);
    assert_eq!(want[0][2], Value::Integer(12), "1 + 1 + 10");
    assert_eq!(want[0][3], Value::Text("[\"b\"]".into()));
    assert_eq!(want[0][4], Value::Text("[b1][a1][a2]".into()));
}

#[test]
fn a_file_replica_keeps_its_queue_across_restarts() {
    let mut s = Sqld::start();
    let dir = std::env::temp_dir().join(format!("edgesync-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = format!("file:{}", dir.join("replica.db").display());
    let open = |s: &Sqld| replica_at(s, &path);
    let site;
    {
        let a: R = open(&s);
        site = a.site().to_string();
        setup(&a);
        exec(&a, "insert into items (id, qty) values ('p', 5)");
        block(a.sync()).unwrap();
        s.kill();
        exec(&a, "update items set qty = qty + 2 where id = 'p'");
        exec(&a, "insert into items (id, qty) values ('q', 1)");
        assert!(block(a.sync()).is_err());
    }
    s.restart();
    let a: R = open(&s);
    assert_eq!(a.site(), site, "the site id is stable");
    assert_eq!(a.status().unwrap().pending, 2, "the queue survived");
    // Apps call replicate() at every start: a no-op.
    a.replicate(
        "items",
        &[
            ("qty".into(), Policy::Counter),
            ("tags".into(), Policy::Set),
            ("note".into(), Policy::Text),
        ],
        vec![],
    )
    .unwrap();
    block(a.sync()).unwrap();
    let rows = server_dump(&s, "items");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][2], Value::Integer(7));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server whose state was written by the earlier per-cell layout (`_es_cv`): the
/// first replica to sync moves it into the row state, a new replica bootstraps from
/// it, and later writes on either side still merge by the versions it kept.
#[test]
fn server_state_in_the_earlier_layout_is_migrated() {
    let s = Sqld::start();
    let plain = "create table plain (id integer primary key, name text, n integer)";
    let a = replica(&s);
    exec(&a, plain);
    a.replicate("plain", &[], vec![]).unwrap();
    exec(
        &a,
        "insert into plain values (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)",
    );
    exec(&a, "delete from plain where id = 3");
    block(a.sync()).unwrap();
    let server = |sql: &str| block(s.client().execute(&Statement::new(sql))).unwrap();
    for sql in [
        "create table _es_cv (tbl text not null, pk text not null, col text not null, val, ver text not null, \
         primary key (tbl, pk, col)) without rowid",
        "insert into _es_cv select 'plain', pk, '-', _live, _pv from _es_row_plain where _pv is not null",
        "insert into _es_cv select 'plain', pk, 'name', c_name, v_name from _es_row_plain where v_name is not null",
        "insert into _es_cv select 'plain', pk, 'n', c_n, v_n from _es_row_plain where v_n is not null",
        "drop table _es_row_plain",
    ] {
        server(sql);
    }
    let b = replica(&s);
    exec(&b, plain);
    b.replicate("plain", &[], vec![]).unwrap();
    block(b.sync()).unwrap();
    assert_eq!(dump(&b, "plain"), dump(&a, "plain"));
    assert_eq!(dump(&b, "plain").len(), 2);
    let legacy = server("select count(*) from sqlite_master where name = '_es_cv'");
    assert_eq!(legacy.rows[0][0], Value::Integer(0));
    let shadow = server("select count(*) from _es_row_plain where _pv is not null");
    assert_eq!(
        shadow.rows[0][0],
        Value::Integer(3),
        "the delete's version was kept too"
    );
    exec(&b, "update plain set name = 'uno' where id = 1");
    block(b.sync()).unwrap();
    block(a.sync()).unwrap();
    assert_eq!(dump(&a, "plain"), dump(&b, "plain"));
    assert_eq!(dump(&a, "plain")[0][1], Value::Text("uno".into()));
    assert_eq!(server_dump(&s, "plain"), dump(&a, "plain"));
}

/// A reopened file replica syncs before `replicate()` has passed its custom column's
/// resolver in again (`syncOnOpen`, a background retry, a `sync()` called first): the
/// lost compare-and-set is held, not resolved as "the server wins" — which dropped the
/// local write — and resolved by the resolver once `replicate()` registers it.
#[test]
fn a_custom_conflict_met_before_the_resolver_is_registered_waits_for_it() {
    let s = Sqld::start();
    let dir = std::env::temp_dir().join(format!("edgesync-held-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = format!("file:{}", dir.join("replica.db").display());
    let open = || replica_at(&s, &path);
    let max = || -> ConflictResolver {
        Box::new(|local: &Value, remote: &Value, _base: Option<&Value>| {
            let n = |v: &Value| match v {
                Value::Integer(i) => *i,
                _ => 0,
            };
            Ok(Value::Integer(n(local).max(n(remote))))
        })
    };
    let declare = |r: &R| {
        r.replicate("hi", &[("v".into(), Policy::Custom)], vec![("v".into(), max())])
            .unwrap()
    };
    let b = replica(&s);
    {
        let a: R = open();
        exec(&a, "create table hi (id integer primary key, v integer not null)");
        declare(&a);
        exec(&a, "insert into hi values (1, 0)");
        block(a.sync()).unwrap();
        exec(&b, "create table hi (id integer primary key, v integer not null)");
        declare(&b);
        block(b.sync()).unwrap();
        // Both raise the value from 0: a to 946 (not pushed yet), b to 945 (pushed).
        exec(&a, "update hi set v = 946");
        std::thread::sleep(std::time::Duration::from_millis(5)); // b's version is the newer
        exec(&b, "update hi set v = 945");
        block(b.sync()).unwrap();
    }
    let a: R = open();
    // The first sync meets the conflict with no resolver registered yet.
    block(a.sync()).unwrap();
    // Meanwhile the cell shows the server's value (the pull brought the newer version);
    // the local write waits in the held conflict.
    assert_eq!(dump(&a, "hi")[0][1], Value::Integer(945));
    assert_eq!(a.status().unwrap().pending, 1, "the held conflict counts as pending");
    assert_eq!(server_dump(&s, "hi")[0][1], Value::Integer(945));
    declare(&a); // resolves it: max(946, 945)
    assert_eq!(a.metrics().conflicts, 1);
    block(a.sync()).unwrap();
    assert_eq!(a.status().unwrap().pending, 0);
    assert_eq!(server_dump(&s, "hi")[0][1], Value::Integer(946));
    block(b.sync()).unwrap();
    assert_eq!(dump(&b, "hi")[0][1], Value::Integer(946));
    // Declared in this session without a resolver: the server's value is kept, as
    // documented (no holding).
    exec(&a, "update hi set v = 1");
    exec(&b, "update hi set v = 2");
    block(b.sync()).unwrap();
    drop(a);
    let c: R = open();
    c.replicate("hi", &[("v".into(), Policy::Custom)], vec![]).unwrap();
    block(c.sync()).unwrap();
    assert_eq!(c.status().unwrap().pending, 0);
    assert_eq!(server_dump(&s, "hi")[0][1], Value::Integer(2));
    assert_eq!(dump(&c, "hi")[0][1], Value::Integer(2));
    // Held, then declared without a resolver: the server's value is kept then too.
    exec(&c, "update hi set v = 3");
    std::thread::sleep(std::time::Duration::from_millis(5));
    exec(&b, "update hi set v = 4");
    block(b.sync()).unwrap();
    drop(c);
    let d: R = open();
    block(d.sync()).unwrap();
    assert_eq!(d.status().unwrap().pending, 1, "held");
    d.replicate("hi", &[("v".into(), Policy::Custom)], vec![]).unwrap();
    block(d.sync()).unwrap();
    assert_eq!(d.status().unwrap().pending, 0);
    assert_eq!(server_dump(&s, "hi")[0][1], Value::Integer(4));
    assert_eq!(dump(&d, "hi")[0][1], Value::Integer(4));
    let _ = std::fs::remove_dir_all(&dir);
}
