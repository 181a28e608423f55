//! Schema changes of replicated tables, through a real sqld (issue 13, §4): a column
//! added on one replica (`ALTER TABLE … ADD COLUMN`, then `replicate()` again) reaches
//! the server and, through `migrate()`, every other replica — including one that was
//! offline with queued writes — while replicas on the old schema are told
//! `SCHEMA_MISMATCH` until they migrate; an `ALTER` that is not declared is a
//! mismatch, never a silent success.

mod common;

use common::replicas::{exec, query, replica, server_query, sync, sync_all, R};
use common::{block, Sqld};
use edgesync::sync::Policy;
use edgesync::Value;

const SCHEMA: &str = "create table items (id text primary key, name text, qty integer not null default 0, tags text)";

fn policies() -> Vec<(String, Policy)> {
    vec![("qty".into(), Policy::Counter), ("tags".into(), Policy::Set)]
}

fn setup(r: &R) {
    exec(r, SCHEMA);
    r.replicate("items", &policies(), vec![]).unwrap();
}

fn sync_err(r: &R) -> String {
    match block(r.sync()) {
        Ok(rep) => panic!("sync succeeded: {rep:?}"),
        Err(e) => format!("{}: {e}", e.code()),
    }
}

const ALL: &str = "select * from items order by id";

#[test]
fn an_added_column_reaches_the_server_and_every_replica_even_one_offline() {
    let s = Sqld::start();
    let (a, b, c) = (replica(&s), replica(&s), replica(&s));
    for r in [&a, &b, &c] {
        setup(r);
    }
    exec(
        &a,
        "insert into items (id, name, qty, tags) values ('x', 'first', 10, '[\"red\"]')",
    );
    sync_all(&[&a, &b, &c]);
    // c goes offline with queued writes on the old schema.
    exec(&c, "update items set qty = qty + 1, name = 'from c' where id = 'x'");
    exec(&c, "insert into items (id, name) values ('y', 'offline insert')");

    // a adds a column, declared once.
    exec(
        &a,
        "alter table items add column color text default 'none' check (color <> '')",
    );
    let mut p = policies();
    p.push(("color".into(), Policy::Lww));
    a.replicate("items", &p, vec![]).unwrap();
    exec(&a, "update items set color = 'blue' where id = 'x'");
    sync(&a);
    let cols = server_query(&s, "select name from pragma_table_info('items') order by cid");
    assert_eq!(
        cols.last().unwrap()[0],
        Value::Text("color".into()),
        "added on the server"
    );
    assert_eq!(
        server_query(&s, "select color from items where id = 'x'"),
        vec![vec![Value::Text("blue".into())]]
    );
    // The server kept the definition as written: its CHECK holds there too.
    assert!(
        common::replicas::server_exec(&s, "update items set color = '' where id = 'x'")
            .starts_with("SQLITE_CONSTRAINT")
    );

    // b, on the old schema, is told — and changes nothing — until it migrates.
    let e = sync_err(&b);
    assert!(
        e.starts_with("SCHEMA_MISMATCH") && e.contains("color") && e.contains("migrate()"),
        "{e}"
    );
    let ran = block(b.migrate()).unwrap();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(ran[0].contains("ADD COLUMN color text default 'none'"), "{ran:?}");
    sync(&b);
    assert_eq!(
        query(&b, "select color from items where id = 'x'"),
        vec![vec![Value::Text("blue".into())]]
    );
    assert!(block(b.migrate()).unwrap().is_empty(), "nothing left to migrate");

    // c comes back: its writes on the old columns go (they merge as any other), but
    // it pulls nothing it cannot hold: told too, until it migrates.
    let e = sync_err(&c);
    assert!(e.starts_with("SCHEMA_MISMATCH"), "{e}");
    assert_eq!(query(&c, "select count(*) from items"), vec![vec![Value::Integer(2)]]);
    block(c.migrate()).unwrap();
    sync_all(&[&c, &a, &b]);
    let want = query(&a, ALL);
    assert_eq!(query(&b, ALL), want);
    assert_eq!(query(&c, ALL), want);
    assert_eq!(server_query(&s, ALL), want);
    // c's offline increment and insert counted; the new row shows the default.
    assert_eq!(want[0][2], Value::Integer(11));
    assert_eq!(want[1][0], Value::Text("y".into()));
    assert_eq!(want[1][4], Value::Text("none".into()));
    // A replica made now gets the whole table.
    let d = replica(&s);
    exec(&d, SCHEMA);
    exec(
        &d,
        "alter table items add column color text default 'none' check (color <> '')",
    );
    d.replicate("items", &p, vec![]).unwrap();
    sync(&d);
    assert_eq!(query(&d, ALL), want);
}

#[test]
fn an_alter_that_is_not_declared_is_a_mismatch_not_a_silent_success() {
    let s = Sqld::start();
    let (a, b) = (replica(&s), replica(&s));
    setup(&a);
    setup(&b);
    exec(&a, "insert into items (id, name) values ('x', 'n')");
    sync_all(&[&a, &b]);
    // ALTER on one replica only, no replicate(): it used to sync "successfully"
    // (changesPushed: 2) and the column stayed local.
    exec(&a, "alter table items add column note text");
    exec(&a, "update items set note = 'local only?', name = 'm' where id = 'x'");
    let e = sync_err(&a);
    assert!(
        e.starts_with("SCHEMA_MISMATCH") && e.contains("note") && e.contains("replicate"),
        "{e}"
    );
    // Declared, it syncs, the write to the new column included.
    let mut p = policies();
    p.push(("note".into(), Policy::Lww));
    a.replicate("items", &p, vec![]).unwrap();
    sync(&a);
    assert_eq!(
        server_query(&s, "select name, note from items"),
        vec![vec![Value::Text("m".into()), Value::Text("local only?".into())]]
    );
}

#[test]
fn other_schema_changes_are_refused_clearly() {
    let s = Sqld::start();
    let a = replica(&s);
    setup(&a);
    sync(&a);
    // A policy change.
    let e = a
        .replicate(
            "items",
            &[("qty".into(), Policy::Lww), ("tags".into(), Policy::Set)],
            vec![],
        )
        .unwrap_err();
    assert_eq!(e.code(), "SCHEMA_ERROR");
    assert!(e.to_string().contains("items.qty"), "{e}");
    // A dropped column: SQLite itself refuses (the capture triggers use it).
    assert!(a
        .execute(&edgesync::Statement::new("alter table items drop column tags"))
        .is_err());
    // A renamed one.
    exec(&a, "alter table items rename column tags to labels");
    let e = a
        .replicate(
            "items",
            &[("qty".into(), Policy::Counter), ("labels".into(), Policy::Set)],
            vec![],
        )
        .unwrap_err();
    assert_eq!(e.code(), "SCHEMA_ERROR");
    assert!(e.to_string().contains("dropped or renamed"), "{e}");
    assert!(sync_err(&a).starts_with("SCHEMA_MISMATCH"));
    // An added counter must count from 0.
    let b = replica(&s);
    setup(&b);
    exec(&b, "alter table items add column n integer default 5");
    let mut p = policies();
    p.push(("n".into(), Policy::Counter));
    assert_eq!(b.replicate("items", &p, vec![]).unwrap_err().code(), "SCHEMA_ERROR");
    // A table created with other columns elsewhere is a mismatch, not a migration.
    let c = replica(&s);
    exec(
        &c,
        "create table items (id text primary key, name text, qty integer not null default 0, tags text, extra)",
    );
    c.replicate("items", &policies(), vec![]).unwrap();
    assert!(sync_err(&c).starts_with("SCHEMA_MISMATCH"));
}

#[test]
fn a_file_replica_keeps_an_added_column_across_restarts() {
    let s = Sqld::start();
    let dir = std::env::temp_dir().join(format!("es-schema-{}", std::process::id()));
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
        exec(&a, "insert into items (id) values ('x')");
        sync(&a);
        // ALTER, then a write before replicate() (the old triggers do not see it) …
        exec(&a, "alter table items add column color text");
        exec(&a, "update items set color = 'red' where id = 'x'");
    }
    let a = open();
    let mut p = policies();
    p.push(("color".into(), Policy::Lww));
    // … which replicate() picks up.
    a.replicate("items", &p, vec![]).unwrap();
    sync(&a);
    assert_eq!(
        server_query(&s, "select color from items"),
        vec![vec![Value::Text("red".into())]]
    );
    drop(a);
    let a = open();
    a.replicate("items", &p, vec![]).unwrap();
    exec(&a, "update items set color = 'green'");
    sync(&a);
    assert_eq!(
        server_query(&s, "select color from items"),
        vec![vec![Value::Text("green".into())]]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
