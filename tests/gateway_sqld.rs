//! The edge sync gateway against a real sqld: untrusted replicas (native here; in
//! workerd and Node in tests/js/gateway*.test.mjs) syncing through `Gateway` with
//! per-user rules, and crafted requests sent by hand.
//!
//! The Worker's part — verifying the JWT — is stood in for by [`Loop`]: its "token"
//! is the claims JSON itself. Everything after that is the gateway's real code on a
//! real server.

mod common;

use std::rc::Rc;

use common::{block, Sqld};
use edgesync::gateway::Gateway;
use edgesync::remote::{HttpRequest, HttpResponse, HttpTransport, TransportError, UreqTransport};
use edgesync::sync::{Env, Event, Policy, Replica, ReplicaConfig};
use edgesync::{Statement, Value};
use serde_json::{json, Value as Json};
use std::cell::RefCell;

type Gw = Rc<Gateway<UreqTransport>>;
type R = Replica<Loop>;

const RULES: &str = r#"{
  "todos": {"read": "owner = :sub OR shared = 1", "write": "owner = :sub", "columns": ["title", "done", "shared"]},
  "members": {"read": "user_id = :sub"},
  "messages": {
    "read": "room IN (SELECT room FROM members WHERE user_id = :sub)",
    "insert": "author = :sub AND room IN (SELECT room FROM members WHERE user_id = :sub)",
    "update": "author = :sub",
    "delete": "author = :sub"
  },
  "notes": {"read": "owner = :sub", "write": "owner = :sub"}
}"#;

const SCHEMA: &[&str] = &[
    "create table todos (id text primary key, owner text, title text, done integer, shared integer default 0)",
    "create table members (room text, user_id text, primary key (room, user_id))",
    "create table messages (id integer primary key, room text, author text, body text, likes integer default 0)",
    "create table notes (id text primary key, owner text, body text)",
    "create table secrets (id text primary key, owner text, v text)",
];

/// Routes a replica's requests as the Worker does: Hrana is answered with the
/// gateway hint, `/sync/v1/<step>` goes to the gateway with the bearer's claims.
#[derive(Clone)]
struct Loop {
    gw: Gw,
}

impl HttpTransport for Loop {
    async fn post(&self, req: HttpRequest<'_>) -> Result<HttpResponse, TransportError> {
        let path = req.url.split_once("//").map(|(_, r)| r).unwrap_or(req.url);
        let path = &path[path.find('/').unwrap_or(path.len())..];
        if path.ends_with("/pipeline") {
            return Ok(HttpResponse {
                status: 404,
                body: br#"{"error":{"code":"USE_SYNC_GATEWAY","message":"sync through /sync/v1"}}"#.to_vec(),
            });
        }
        let step = path.strip_prefix("/sync/v1/").unwrap_or("?");
        let claims: Json = serde_json::from_str(req.bearer.unwrap_or("{}")).unwrap_or(Json::Null);
        let reply = self.gw.handle(step, &claims, &req.body, now()).await;
        Ok(HttpResponse {
            status: reply.status,
            body: reply.body.into_bytes(),
        })
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn direct(s: &Sqld) -> Replica<UreqTransport> {
    let config = ReplicaConfig {
        path: ":memory:".into(),
        sync_url: Some(s.url.clone()),
        auth_token: Some(s.rw.clone()),
        timeout_ms: Some(10_000),
        ..Default::default()
    };
    Replica::open(config, UreqTransport::default(), Env::default()).unwrap()
}

fn declare<T: HttpTransport>(r: &Replica<T>, tables: &[&str]) {
    for sql in SCHEMA {
        r.execute(&Statement::new(*sql)).unwrap();
    }
    for t in tables {
        let pol: Vec<(String, Policy)> = match *t {
            "messages" => vec![("likes".into(), Policy::Counter)],
            "notes" => vec![("body".into(), Policy::Text)],
            _ => vec![],
        };
        r.replicate(t, &pol, vec![]).unwrap();
    }
}

const ALL: &[&str] = &["todos", "members", "messages", "notes", "secrets"];
const SYNCED: &[&str] = &["todos", "members", "messages", "notes"];

/// A sqld whose tables a trusted replica created, and a gateway in front of it.
fn world() -> (Sqld, Replica<UreqTransport>, Gw) {
    let s = Sqld::start();
    let admin = direct(&s);
    declare(&admin, ALL);
    block(admin.sync()).unwrap();
    let gw = Gateway::new(RULES, None, s.client()).unwrap();
    (s, admin, Rc::new(gw))
}

fn user(gw: &Gw, sub: &str) -> R {
    let config = ReplicaConfig {
        path: ":memory:".into(),
        sync_url: Some("http://worker.test".into()),
        auth_token: Some(json!({ "sub": sub }).to_string()),
        ..Default::default()
    };
    let r = Replica::open(config, Loop { gw: gw.clone() }, Env::default()).unwrap();
    declare(&r, SYNCED);
    r
}

fn exec<T: HttpTransport>(r: &Replica<T>, sql: &str) {
    r.execute(&Statement::new(sql)).unwrap();
}

fn rows<T: HttpTransport>(r: &Replica<T>, sql: &str) -> Vec<Vec<Value>> {
    r.execute(&Statement::new(sql)).unwrap().rows
}

fn server(s: &Sqld, sql: &str) -> Vec<Vec<Value>> {
    block(s.client().execute(&Statement::new(sql))).unwrap().rows
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn each_user_sees_only_their_rows() {
    let (s, admin, gw) = world();
    exec(
        &admin,
        "insert into todos (id, owner, title) values ('a1', 'alice', 'A'), ('b1', 'bob', 'B'), ('s1', 'carol', 'S')",
    );
    exec(&admin, "update todos set shared = 1 where id = 's1'");
    block(admin.sync()).unwrap();
    let (alice, bob) = (user(&gw, "alice"), user(&gw, "bob"));
    block(alice.sync()).unwrap();
    block(bob.sync()).unwrap();
    assert_eq!(
        rows(&alice, "select id from todos order by id"),
        vec![vec![t("a1")], vec![t("s1")]]
    );
    assert_eq!(
        rows(&bob, "select id from todos order by id"),
        vec![vec![t("b1")], vec![t("s1")]]
    );
    // Their own writes go through; each sees the other's only if shared.
    exec(
        &alice,
        "insert into todos (id, owner, title) values ('a2', 'alice', 'A2')",
    );
    exec(
        &bob,
        "insert into todos (id, owner, title, shared) values ('b2', 'bob', 'B2', 1)",
    );
    block(alice.sync()).unwrap();
    block(bob.sync()).unwrap();
    block(alice.sync()).unwrap();
    assert_eq!(
        rows(&alice, "select id from todos order by id"),
        vec![vec![t("a1")], vec![t("a2")], vec![t("b2")], vec![t("s1")]]
    );
    assert_eq!(
        server(&s, "select id, owner from todos order by id").len(),
        5,
        "both pushes reached the server"
    );
    // The table without rules never reaches a user replica; one that declares it
    // gets a clear error.
    let eve = user(&gw, "eve");
    eve.replicate("secrets", &[], vec![]).unwrap();
    let err = block(eve.sync()).unwrap_err();
    assert_eq!(err.code(), "PERMISSION_DENIED", "{err}");
}

/// One hand-made request, as the Worker would pass it on.
fn call(gw: &Gw, sub: &str, step: &str, body: &Json) -> (u16, Json) {
    let r = block(gw.handle(step, &json!({ "sub": sub }), body.to_string().as_bytes(), now()));
    (r.status, serde_json::from_str(&r.body).unwrap_or(Json::Null))
}

fn hlc() -> i64 {
    (now() as i64) << 16
}

fn codes(resp: &Json) -> Vec<(u64, String)> {
    resp["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn crafted_pushes_are_refused_record_by_record() {
    let (s, admin, gw) = world();
    exec(
        &admin,
        "insert into todos (id, owner, title) values ('a1', 'alice', 'A'), ('b1', 'bob', 'B')",
    );
    block(admin.sync()).unwrap();
    let before = server(&s, "select * from todos order by id");
    let h = hlc();
    let site = "00000000000000b0";
    let chunk = json!({"site": site, "records": [
        [h, "todos", ["a1"], "u", {"title": "pwned"}],                       // 0 another user's row
        [h, "todos", ["b9"], "i", {"owner": "alice", "title": "x", "done": 0, "shared": 0}], // 1 insert for another user
        [h, "todos", ["b1"], "u", {"owner": "alice"}],                       // 2 moves it out, and a forbidden column
        [h, "todos; DROP TABLE todos", ["b1"], "u", {"title": "x"}],        // 3 unknown table
        [h, "todos", ["b1"], "u", {"evil": "x"}],                            // 4 unknown column
        [h, "todos", ["b1"], "u", {"id": "b2"}],                             // 5 a key column as data
        [h, "secrets", ["k"], "i", {"owner": "bob", "v": "x"}],              // 6 a table without rules
        [h, "todos", [4], "i", {"owner": "bob", "title": "number"}],         // 7 a number for a TEXT key
        [h, "todos", [1, 2], "u", {"title": "x"}],                           // 8 a key of the wrong length
        [h, "todos", ["b1"], "u", {"title": {"b": "zz"}}],                   // 9 a malformed tagged value
        "not a record",                                                       // 10
        [h, "todos", ["b3'); DROP TABLE todos;--"], "i", {"owner": "bob", "title": "x'); DROP TABLE todos;--", "done": 0, "shared": 0}], // 11 SQL as data: fine
        [h, "todos", ["b1"], "u", {"title": "B!"}],                          // 12 fine
    ]});
    let (status, resp) = call(&gw, "bob", "push", &chunk);
    assert_eq!(status, 200, "{resp}");
    let want: Vec<(u64, String)> = [
        (0, "PERMISSION_DENIED"),
        (1, "PERMISSION_DENIED"),
        (2, "PERMISSION_DENIED"),
        (3, "PERMISSION_DENIED"),
        (4, "PERMISSION_DENIED"),
        (5, "PERMISSION_DENIED"),
        (6, "PERMISSION_DENIED"),
        (7, "INVALID_RECORD"),
        (8, "INVALID_RECORD"),
        (9, "INVALID_RECORD"),
        (10, "INVALID_RECORD"),
    ]
    .iter()
    .map(|(i, c)| (*i, c.to_string()))
    .collect();
    // Records 2 and 12 touch the same row: the row is checked as a whole, so 12 is
    // refused with 2 (all of a row's records in a chunk stand or fall together).
    let mut got = codes(&resp);
    assert!(got.contains(&(12, "PERMISSION_DENIED".into())), "{resp}");
    got.retain(|(i, _)| *i != 12);
    assert_eq!(got, want, "{resp}");
    assert_eq!(resp["accepted"], 1, "{resp}");
    // a1 is alice's: bob may not read it, so nothing of it comes back to restore.
    assert!(
        resp["restore"]["missing"]["todos"]
            .as_array()
            .unwrap()
            .contains(&json!(["a1"])),
        "{resp}"
    );
    // b1 is bob's: its server version comes back.
    let restored = &resp["restore"]["tables"]["todos"]["rows"];
    assert!(
        restored.as_array().unwrap().iter().any(|r| r[0] == "[\"b1\"]"),
        "{resp}"
    );
    let mut after = server(&s, "select * from todos order by id");
    let sql_key = after
        .iter()
        .position(|r| r[0] == t("b3'); DROP TABLE todos;--"))
        .expect("the SQL-looking key is data");
    assert_eq!(after[sql_key][2], t("x'); DROP TABLE todos;--"));
    after.remove(sql_key);
    assert_eq!(after, before, "nothing refused reached the server");
    assert!(server(&s, "select * from secrets").is_empty());

    // The audit trail has who, what and why.
    let audit = server(&s, "select sub, site, tbl, pk, op, code from _es_gw_audit order by id");
    assert_eq!(audit.len(), 12, "{audit:?}");
    assert_eq!(audit[0][..3], [t("bob"), t(site), t("todos")]);
    let reply = block(gw.audit(0, 100));
    assert_eq!(reply.status, 200);
    let entries: Json = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(entries["entries"].as_array().unwrap().len(), 12);
    assert!(entries["entries"][0]["reason"].as_str().unwrap().contains("todos"));

    // A replayed chunk changes nothing (and is refused the same way).
    let snapshot = server(&s, "select * from todos order by id");
    let (status, again) = call(&gw, "bob", "push", &chunk);
    assert_eq!(status, 200);
    assert_eq!(again["accepted"], 1);
    assert_eq!(server(&s, "select * from todos order by id"), snapshot);
    assert_eq!(
        server(&s, "select count(*) from _es_log where site = '00000000000000b0'")[0][0],
        Value::Integer(1)
    );
}

#[test]
fn forged_sites_sizes_rates_and_tokens_are_refused_whole() {
    let (s, admin, _) = world();
    let gw: Gw = Rc::new(
        Gateway::new(
            RULES,
            Some(r#"{"maxBodyBytes": 20000, "maxRecords": 50, "recordsPerMinute": 60}"#),
            s.client(),
        )
        .unwrap(),
    );
    let rec = |id: &str, owner: &str| json!([hlc(), "todos", [id], "i", {"owner": owner, "title": "t", "done": 0, "shared": 0}]);
    let (status, _) = call(
        &gw,
        "bob",
        "push",
        &json!({"site": "00000000000000b0", "records": [rec("b1", "bob")]}),
    );
    assert_eq!(status, 200);
    // Alice claims bob's site: refused before anything is written.
    let (status, resp) = call(
        &gw,
        "alice",
        "push",
        &json!({"site": "00000000000000b0", "records": [rec("a1", "alice")]}),
    );
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{resp}"
    );
    // So is the site a trusted direct replica writes under.
    exec(&admin, "insert into todos (id, owner) values ('z', 'zed')");
    block(admin.sync()).unwrap();
    let (status, _) = call(
        &gw,
        "alice",
        "push",
        &json!({"site": admin.site(), "records": [rec("a2", "alice")]}),
    );
    assert_eq!(status, 403);
    assert!(server(&s, "select id from todos where owner = 'alice'").is_empty());
    for bad_site in ["", "XYZ", "0123456789abcdeF", "00000000000000b0' OR 1=1"] {
        let (status, _) = call(
            &gw,
            "alice",
            "push",
            &json!({"site": bad_site, "records": [rec("a3", "alice")]}),
        );
        assert_eq!(status, 400, "{bad_site}");
    }
    // Too many records, too many bytes.
    let many: Vec<Json> = (0..51).map(|i| rec(&format!("m{i}"), "bob")).collect();
    let (status, resp) = call(
        &gw,
        "bob",
        "push",
        &json!({"site": "00000000000000b0", "records": many}),
    );
    assert_eq!((status, resp["error"]["code"].as_str()), (413, Some("BODY_TOO_LARGE")));
    let big = "x".repeat(30_000);
    let (status, _) = call(
        &gw,
        "bob",
        "push",
        &json!({"site": "00000000000000b0", "records": [[hlc(), "todos", ["big"], "i", {"owner": "bob", "title": big}]]}),
    );
    assert_eq!(status, 413);
    // 60 records a minute: the bucket runs dry, with the time to come back.
    let batch: Vec<Json> = (0..40).map(|i| rec(&format!("r{i}"), "bob")).collect();
    let (status, _) = call(
        &gw,
        "bob",
        "push",
        &json!({"site": "00000000000000b0", "records": batch.clone()}),
    );
    assert_eq!(status, 200);
    let reply = block(
        gw.handle(
            "push",
            &json!({"sub": "bob"}),
            json!({"site": "00000000000000b0", "records": batch})
                .to_string()
                .as_bytes(),
            now(),
        ),
    );
    assert_eq!(reply.status, 429);
    let wait = reply.retry_after_ms.unwrap();
    assert!(wait > 0 && wait <= 60_000, "{wait}");
    // Another user has their own bucket.
    let (status, _) = call(
        &gw,
        "carol",
        "push",
        &json!({"site": "00000000000000c0", "records": [rec("c1", "carol")]}),
    );
    assert_eq!(status, 200);
    // No subject, no service; malformed bodies; unknown steps; unsynced tables.
    let r = block(gw.handle("pull", &json!({"role": "x"}), b"{}", now()));
    assert_eq!(r.status, 401);
    assert_eq!(call(&gw, "bob", "push", &json!({"site": "00000000000000b0"})).0, 400);
    assert_eq!(
        call(&gw, "bob", "pull", &json!({"site": "00000000000000b0", "cursor": "x"})).0,
        400
    );
    assert_eq!(call(&gw, "bob", "nope", &json!({})).0, 404);
    assert_eq!(call(&gw, "bob", "bootstrap", &json!({"table": "secrets"})).0, 403);
    assert_eq!(call(&gw, "bob", "bootstrap", &json!({"table": "todos\"; --"})).0, 403);
}

#[test]
fn reads_are_filtered_by_the_rules() {
    let (s, admin, gw) = world();
    let mut sql = String::from("insert into todos (id, owner, title) values ");
    sql.push_str(
        &(0..300)
            .map(|i| format!("('t{i}', '{}', 'x')", if i % 10 == 0 { "alice" } else { "bob" }))
            .collect::<Vec<_>>()
            .join(", "),
    );
    exec(&admin, &sql);
    block(admin.sync()).unwrap();
    // Pull pages of 100: alice gets her 30 records, the cursor passes bob's.
    let mut cursor = 0;
    let mut seen = 0;
    loop {
        let (status, page) = call(
            &gw,
            "alice",
            "pull",
            &json!({"site": "00000000000000a0", "cursor": cursor, "limit": 100}),
        );
        assert_eq!(status, 200, "{page}");
        for r in page["records"].as_array().unwrap() {
            assert_eq!(r[2][4]["owner"], "alice", "{r}");
            seen += 1;
        }
        cursor = page["cursor"].as_i64().unwrap();
        if !page["more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen, 30);
    let top = server(&s, "select max(seq) from _es_log")[0][0].clone();
    assert_eq!(Value::Integer(cursor), top);
    // Rows asked for by key: only readable ones come back.
    let (_, st) = call(
        &gw,
        "alice",
        "rows",
        &json!({"tables": {"todos": [["t0"], ["t1"], ["nope"]]}}),
    );
    assert_eq!(st["tables"]["todos"]["rows"].as_array().unwrap().len(), 1, "{st}");
    assert_eq!(st["missing"]["todos"], json!([["t1"], ["nope"]]));
    // Bootstrap pages.
    let (_, b) = call(&gw, "alice", "bootstrap", &json!({"table": "todos", "limit": 20}));
    assert_eq!(b["state"]["tables"]["todos"]["rows"].as_array().unwrap().len(), 20);
    let after = b["after"].as_str().unwrap().to_string();
    let (_, b2) = call(
        &gw,
        "alice",
        "bootstrap",
        &json!({"table": "todos", "limit": 20, "after": after}),
    );
    assert_eq!(b2["state"]["tables"]["todos"]["rows"].as_array().unwrap().len(), 10);
    assert!(b2["after"].is_null());
}

#[test]
fn rows_leave_and_enter_a_users_scope_at_the_next_sync() {
    let (_s, admin, gw) = world();
    exec(
        &admin,
        "insert into todos (id, owner, title, done) values ('a1', 'alice', 'A', 1)",
    );
    exec(
        &admin,
        "insert into members values ('r1', 'alice'), ('r1', 'bob'), ('r2', 'alice')",
    );
    exec(&admin, "insert into messages (id, room, author, body) values (1, 'r1', 'alice', 'hi'), (2, 'r1', 'bob', 'yo'), (3, 'r2', 'alice', 'private')");
    block(admin.sync()).unwrap();
    let (alice, bob) = (user(&gw, "alice"), user(&gw, "bob"));
    block(alice.sync()).unwrap();
    block(bob.sync()).unwrap();
    assert_eq!(
        rows(&bob, "select id from messages order by id"),
        vec![vec![Value::Integer(1)], vec![Value::Integer(2)]]
    );
    assert_eq!(rows(&alice, "select count(*) from messages")[0][0], Value::Integer(3));

    // The row changes hands: it leaves alice's replica and arrives whole at bob's.
    exec(&admin, "update todos set owner = 'bob' where id = 'a1'");
    block(admin.sync()).unwrap();
    block(alice.sync()).unwrap();
    block(bob.sync()).unwrap();
    assert!(rows(&alice, "select * from todos").is_empty());
    assert_eq!(
        rows(&bob, "select id, owner, title, done from todos"),
        vec![vec![t("a1"), t("bob"), t("A"), Value::Integer(1)]]
    );

    // Bob leaves room r1: its messages leave his replica (no record of theirs changed).
    exec(&admin, "delete from members where room = 'r1' and user_id = 'bob'");
    block(admin.sync()).unwrap();
    block(bob.sync()).unwrap();
    assert!(
        rows(&bob, "select * from messages").is_empty(),
        "{:?}",
        rows(&bob, "select * from messages")
    );
    assert!(rows(&bob, "select * from members").is_empty());
    // Nothing was pushed as a delete: the server and alice still have them.
    block(alice.sync()).unwrap();
    assert_eq!(rows(&alice, "select count(*) from messages")[0][0], Value::Integer(3));
    assert_eq!(rows(&admin, "select count(*) from messages")[0][0], Value::Integer(3));

    // He joins r2: its history arrives.
    exec(&admin, "insert into members values ('r2', 'bob')");
    block(admin.sync()).unwrap();
    block(bob.sync()).unwrap();
    assert_eq!(
        rows(&bob, "select id, body from messages order by id"),
        vec![vec![Value::Integer(3), t("private")]]
    );
    // A second sync finds everything in place.
    let r = block(bob.sync()).unwrap();
    assert_eq!((r.changes_pushed, r.changes_applied), (0, 0));
    assert_eq!(rows(&bob, "select count(*) from messages")[0][0], Value::Integer(1));
}

#[test]
fn a_refused_write_goes_back_to_the_servers_version_with_an_event() {
    let (s, admin, gw) = world();
    exec(
        &admin,
        "insert into todos (id, owner, title, shared) values ('c1', 'carol', 'shared by carol', 1)",
    );
    block(admin.sync()).unwrap();
    let alice = user(&gw, "alice");
    let events: Rc<RefCell<Vec<(String, String, String)>>> = Rc::default();
    let ev = events.clone();
    alice.set_listener(Some(Box::new(move |e: &Event| {
        if let Event::Refused { table, pk, code, .. } = e {
            ev.borrow_mut().push((table.clone(), pk.clone(), code.clone()));
        }
    })));
    block(alice.sync()).unwrap();
    exec(&alice, "update todos set title = 'mine now' where id = 'c1'"); // readable, not writable
    exec(
        &alice,
        "insert into todos (id, owner, title) values ('x1', 'bob', 'for bob')",
    ); // not hers to insert
    exec(
        &alice,
        "insert into todos (id, owner, title) values ('a1', 'alice', 'fine')",
    );
    block(alice.sync()).unwrap();
    let mut got = events.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("todos".into(), "[\"c1\"]".into(), "PERMISSION_DENIED".into()),
            ("todos".into(), "[\"x1\"]".into(), "PERMISSION_DENIED".into())
        ]
    );
    assert_eq!(
        rows(&alice, "select id, title from todos order by id"),
        vec![vec![t("a1"), t("fine")], vec![t("c1"), t("shared by carol")]]
    );
    assert_eq!(rows(&alice, "select count(*) from _es_outbox")[0][0], Value::Integer(0));
    assert_eq!(
        server(&s, "select title from todos where id = 'c1'")[0][0],
        t("shared by carol")
    );
    assert!(server(&s, "select * from todos where id = 'x1'").is_empty());
    // Nothing is retried: the next sync is quiet.
    let r = block(alice.sync()).unwrap();
    assert_eq!(r.changes_pushed, 0);
    assert_eq!(events.borrow().len(), 2);
    // A refused delete puts the row back.
    exec(&alice, "delete from todos where id = 'c1'");
    block(alice.sync()).unwrap();
    assert_eq!(
        rows(&alice, "select title from todos where id = 'c1'"),
        vec![vec![t("shared by carol")]]
    );
    // A refusal followed by an accepted write of the same row in a later sync: the
    // row keeps the later write.
    exec(&alice, "update todos set title = 'A1' where id = 'a1'");
    block(alice.sync()).unwrap();
    assert_eq!(server(&s, "select title from todos where id = 'a1'")[0][0], t("A1"));
}

#[test]
fn counters_and_text_converge_through_the_gateway_and_directly() {
    let (s, admin, gw) = world();
    exec(&admin, "insert into members values ('r', 'alice'), ('r', 'bob')");
    exec(
        &admin,
        "insert into messages (id, room, author, body) values (1, 'r', 'alice', 'hello')",
    );
    exec(
        &admin,
        "insert into notes (id, owner, body) values ('n', 'alice', 'abc')",
    );
    block(admin.sync()).unwrap();
    let (alice, alice2, bob) = (user(&gw, "alice"), user(&gw, "alice"), user(&gw, "bob"));
    for r in [&alice, &alice2, &bob] {
        block(r.sync()).unwrap();
    }
    // Likes are a counter: every increment counts, from anyone who may update...
    exec(&alice, "update messages set likes = likes + 2 where id = 1");
    exec(&admin, "update messages set likes = likes + 5 where id = 1");
    // ...and bob may not update alice's message: his like is refused.
    exec(&bob, "update messages set likes = likes + 1 where id = 1");
    // Two devices of alice edit the note concurrently.
    exec(&alice, "update notes set body = 'Xabc' where id = 'n'");
    exec(&alice2, "update notes set body = 'abcY' where id = 'n'");
    for _ in 0..2 {
        for r in [&alice, &alice2, &bob] {
            block(r.sync()).unwrap();
        }
        block(admin.sync()).unwrap();
    }
    let likes = |r: &R| rows(r, "select likes from messages where id = 1")[0][0].clone();
    assert_eq!(likes(&alice), Value::Integer(7));
    assert_eq!(likes(&bob), Value::Integer(7));
    assert_eq!(rows(&admin, "select likes from messages")[0][0], Value::Integer(7));
    assert_eq!(server(&s, "select likes from messages")[0][0], Value::Integer(7));
    let body = |r: &R| rows(r, "select body from notes")[0][0].clone();
    assert_eq!(body(&alice), t("XabcY"));
    assert_eq!(body(&alice2), t("XabcY"));
    assert_eq!(rows(&admin, "select body from notes")[0][0], t("XabcY"));
    assert!(rows(&bob, "select * from notes").is_empty());
}

/// Issue 13's server features hold through the gateway: a push is logged once (the
/// server's capture triggers leave the merge alone), a NULL text is a value (a row
/// bootstrapped with its text, then set to NULL, stays NULL), a column
/// added by a trusted replica reaches a gateway replica through `migrate()`, and a
/// replaced change log is a `SERVER_RESET` and a new bootstrap.
#[test]
fn schema_changes_resets_and_server_capture_hold_through_the_gateway() {
    let (s, admin, gw) = world();
    exec(
        &admin,
        "insert into notes (id, owner, body) values ('n1', 'alice', 'one')",
    );
    block(admin.sync()).unwrap();
    let alice = user(&gw, "alice");
    let errors: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = errors.clone();
    alice.set_listener(Some(Box::new(move |e: &Event| {
        if let Event::Error { code, .. } = e {
            seen.borrow_mut().push(code.clone());
        }
    })));
    block(alice.sync()).unwrap();
    exec(
        &alice,
        "insert into notes (id, owner, body) values ('n2', 'alice', 'two')",
    );
    exec(&alice, "update notes set body = NULL where id = 'n1'");
    block(alice.sync()).unwrap();
    assert_eq!(
        server(&s, "select id, body from notes order by id"),
        vec![vec![t("n1"), Value::Null], vec![t("n2"), t("two")]]
    );
    assert_eq!(
        rows(&alice, "select body from notes where id = 'n1'"),
        vec![vec![Value::Null]]
    );
    assert_eq!(
        server(&s, "select count(*) from _es_log where site = '~server'")[0][0],
        Value::Integer(0),
        "a gateway push is captured by no server trigger"
    );
    // A trusted replica adds a column: alice's next sync says to migrate, then works.
    exec(&admin, "alter table notes add column tag text default 'none'");
    admin
        .replicate("notes", &[("body".into(), Policy::Text)], vec![])
        .unwrap();
    block(admin.sync()).unwrap();
    exec(&admin, "update notes set tag = 'red' where id = 'n2'");
    block(admin.sync()).unwrap();
    let e = block(alice.sync()).unwrap_err();
    assert_eq!(e.code(), "SCHEMA_MISMATCH", "{e}");
    assert!(e.to_string().contains("migrate()"), "{e}");
    let ran = block(alice.migrate()).unwrap();
    assert_eq!(ran.len(), 1, "{ran:?}");
    block(alice.sync()).unwrap();
    assert_eq!(
        rows(&alice, "select id, tag from notes order by id"),
        vec![vec![t("n1"), t("none")], vec![t("n2"), t("red")]]
    );
    exec(&alice, "update notes set tag = 'blue' where id = 'n1'");
    block(alice.sync()).unwrap();
    assert_eq!(server(&s, "select tag from notes where id = 'n1'")[0][0], t("blue"));
    // The log is dropped: the gateway makes a new one, alice re-reads the server.
    server(&s, "drop table _es_log");
    exec(
        &admin,
        "insert into notes (id, owner, body) values ('n3', 'alice', 'three')",
    );
    // (A direct replica's first sync after it fails, and sends the next through the
    // schema step, which makes the log again.)
    let _ = block(admin.sync());
    block(admin.sync()).unwrap();
    block(alice.sync()).unwrap();
    block(alice.sync()).unwrap();
    assert!(
        errors.borrow().iter().any(|c| c == "SERVER_RESET"),
        "{:?}",
        errors.borrow()
    );
    assert_eq!(
        rows(&alice, "select id from notes order by id"),
        vec![vec![t("n1")], vec![t("n2")], vec![t("n3")]]
    );
}

/// Pages through the gateway are cut by bytes as a direct sync's are: 12 MB of rows (sqld
/// answers at most 10 MB) reach a gateway replica by pull, and a new one by bootstrap,
/// and 12 MB of its own writes go up in several chunks.
#[test]
fn large_rows_travel_in_byte_sized_pages_through_the_gateway() {
    let (s, admin, gw) = world();
    let alice = user(&gw, "alice");
    block(alice.sync()).unwrap();
    let big = |c: char| c.to_string().repeat(1_500_000);
    for i in 0..8 {
        exec(
            &admin,
            &format!(
                "insert into todos (id, owner, title) values ('t{i}', 'alice', '{}')",
                big('a')
            ),
        );
    }
    block(admin.sync()).unwrap();
    block(alice.sync()).unwrap();
    let count = "select count(*), sum(length(title)) from todos";
    let all = vec![vec![Value::Integer(8), Value::Integer(12_000_000)]];
    assert_eq!(rows(&alice, count), all, "by pull");
    let fresh = user(&gw, "alice");
    block(fresh.sync()).unwrap();
    assert_eq!(rows(&fresh, count), all, "by bootstrap");
    for i in 0..8 {
        exec(
            &fresh,
            &format!("update todos set title = '{}' where id = 't{i}'", big('b')),
        );
    }
    block(fresh.sync()).unwrap();
    assert_eq!(
        server(&s, "select count(*) from todos where title like 'b%'")[0][0],
        Value::Integer(8)
    );
}

/// Not a test: where a gateway push's SQL time goes, statement by statement, on an
/// in-process SQLite (`cargo test --release --test gateway_sqld push_profile -- --ignored --nocapture`).
#[test]
#[ignore]
fn push_profile() {
    use edgesync::gateway::{push, schema, validate, SyncRules};
    let c = rusqlite::Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA[0]).unwrap();
    let spec = edgesync::sync::TableSpec::introspect(&c, "todos", &[]).unwrap();
    for s in schema::setup() {
        c.execute_batch(&s.sql).unwrap();
    }
    c.execute_batch(&edgesync::sync::rows::ddl(&spec)).unwrap();
    let rules = SyncRules::parse(RULES).unwrap();
    let specs: std::collections::HashMap<String, edgesync::sync::TableSpec> =
        [("todos".to_string(), spec.clone())].into_iter().collect();
    for round in 0..3 {
        let h = hlc();
        let recs: Vec<Json> = (0..2000)
            .map(|i| json!([h + i, "todos", [format!("r{round}-{i}")], "i", {"owner": "bob", "title": format!("title {i}"), "done": 0, "shared": 0}]))
            .collect();
        let t0 = std::time::Instant::now();
        let raws: Vec<Box<serde_json::value::RawValue>> = recs
            .iter()
            .map(|r| serde_json::value::to_raw_value(r).unwrap())
            .collect();
        let checked = validate::check_records(
            &raws.iter().map(|b| b.as_ref()).collect::<Vec<_>>(),
            &rules,
            &specs,
            now(),
            60_000,
        );
        let args = rules.args(&json!({"sub": "bob"}));
        let who = push::Pusher {
            sub: "bob",
            site: "00000000000000bf",
            now_ms: now(),
            args: &args,
            check_site: true,
        };
        let plan = push::plan(checked.valid, &[], &rules, &specs, &who, None);
        println!(
            "round {round}: validate + plan {:.1} ms",
            t0.elapsed().as_secs_f64() * 1000.0
        );
        c.execute_batch("BEGIN").unwrap();
        for s in &plan.stmts {
            let t0 = std::time::Instant::now();
            let mut st = c.prepare(&s.sql).unwrap();
            for (k, v) in &s.named_args {
                let i = st.parameter_index(k).unwrap().unwrap();
                st.raw_bind_parameter(i, v).unwrap();
            }
            for (i, v) in s.args.iter().enumerate() {
                st.raw_bind_parameter(i + 1, v).unwrap();
            }
            let mut rows = st.raw_query();
            while rows.next().unwrap().is_some() {}
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            if ms > 1.0 {
                println!("  {ms:7.1} ms  {}", &s.sql[..s.sql.len().min(110)]);
            }
        }
        c.execute_batch("COMMIT").unwrap();
    }
}

/// A key must be of its column's type: SQLite's upsert converts `'1'` to `1` for an
/// INTEGER key, so `["1"]` would be checked as a new row and land on another user's.
#[test]
fn keys_of_another_type_than_their_column_are_refused() {
    let (s, admin, gw) = world();
    exec(&admin, "insert into members values ('r1', 'alice'), ('r1', 'bob')");
    exec(
        &admin,
        "insert into messages (id, room, author, body) values (1, 'r1', 'alice', 'mine')",
    );
    block(admin.sync()).unwrap();
    let h = hlc();
    let chunk = json!({"site": "00000000000000b0", "records": [
        [h, "messages", ["1"], "i", {"room": "r1", "author": "bob", "body": "pwned"}], // 0 alice's row 1
        [h, "messages", ["1"], "d", null],                                           // 1 its delete
        [h, "messages", [1.0], "d", null],                                           // 2 a real for an integer
        [h, "todos", [7], "i", {"owner": "bob", "title": "x"}],                      // 3 a number for a TEXT key
        [h, "messages", [5], "i", {"room": "r1", "author": "bob", "body": "fine"}],  // 4 fine
    ]});
    let (status, resp) = call(&gw, "bob", "push", &chunk);
    assert_eq!(status, 200, "{resp}");
    let want: Vec<(u64, String)> = (0..4).map(|i| (i, "INVALID_RECORD".to_string())).collect();
    assert_eq!(codes(&resp), want, "{resp}");
    assert_eq!(resp["accepted"], 1, "{resp}");
    assert_eq!(
        server(&s, "select id, author, body from messages order by id"),
        vec![
            vec![Value::Integer(1), t("alice"), t("mine")],
            vec![Value::Integer(5), t("bob"), t("fine")]
        ]
    );
    assert!(server(&s, "select * from todos").is_empty());
}

/// `columns` holds whatever the policy of a column outside it: a counter, a set or a
/// text cell may not be named by an edit of an existing row; a text column a write rule
/// names is checked as the merged document's text, never the writer's rendering `t`.
#[test]
fn columns_protect_counters_and_text_and_rules_see_merged_text() {
    let (s, admin, _) = world();
    let rules = r#"{
      "messages": {"read": "author = :sub", "write": "author = :sub", "columns": ["body"]},
      "notes": {"read": "owner = :sub", "write": "owner = :sub AND length(body) < 100"},
      "todos": {"read": "owner = :sub", "write": "owner = :sub", "columns": ["title"]}
    }"#;
    let gw: Gw = Rc::new(Gateway::new(rules, None, s.client()).unwrap());
    exec(
        &admin,
        "insert into messages (id, room, author, body) values (2, 'r1', 'bob', 'hi')",
    );
    exec(&admin, "insert into notes (id, owner, body) values ('n', 'bob', 'abc')");
    block(admin.sync()).unwrap();
    let h = hlc();
    let chunk = json!({"site": "00000000000000b0", "records": [
        [h, "messages", [2], "u", {"likes": [100, 0]}],             // 0 a counter outside columns
        // 1 a text column the rule names, with a rendering the rule would refuse: the
        // rule sees the document's text ("abc"), and so does the server's column
        [h, "notes", ["n"], "u", {"body": {"t": "y".repeat(200), "u": ""}}],
        [h, "messages", [3], "i", {"room": "r1", "author": "bob", "body": "x", "likes": [1, 0]}], // 2 a new row: fine
    ]});
    let (status, resp) = call(&gw, "bob", "push", &chunk);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(codes(&resp), vec![(0, "PERMISSION_DENIED".to_string())], "{resp}");
    assert_eq!(resp["accepted"], 2, "{resp}");
    assert_eq!(server(&s, "select body from notes where id = 'n'")[0][0], t("abc"));
    assert_eq!(
        server(&s, "select id, likes from messages order by id"),
        vec![
            vec![Value::Integer(2), Value::Integer(0)],
            vec![Value::Integer(3), Value::Integer(1)]
        ]
    );
    // The column `columns` lists still changes.
    let (_, ok) = call(
        &gw,
        "bob",
        "push",
        &json!({"site": "00000000000000b0", "records": [[hlc(), "messages", [2], "u", {"body": "edited"}]]}),
    );
    assert_eq!(ok["accepted"], 1, "{ok}");
    assert_eq!(server(&s, "select body from messages where id = 2")[0][0], t("edited"));
}

fn an_hour_fast() -> u64 {
    now() + 3_600_000
}

/// A device whose clock runs ahead: the push fails as a whole with `CLOCK_DRIFT` and
/// the server's time; the replica keeps its writes queued (nothing refused, nothing
/// dropped) and its clock takes the server's time for new writes.
#[test]
fn a_replica_whose_clock_runs_fast_keeps_its_writes() {
    let (s, _admin, gw) = world();
    let h = hlc();
    let (status, resp) = call(
        &gw,
        "bob",
        "push",
        &json!({"site": "00000000000000b0", "records": [
            [h, "todos", ["b1"], "i", {"owner": "bob", "title": "fine"}],
            [h + (3_600_000 << 16), "todos", ["b2"], "i", {"owner": "bob", "title": "future"}],
        ]}),
    );
    assert_eq!(status, 409, "{resp}");
    assert_eq!(resp["error"]["code"], "CLOCK_DRIFT", "{resp}");
    assert!(server(&s, "select * from todos").is_empty(), "the push fails whole");

    let config = ReplicaConfig {
        path: ":memory:".into(),
        sync_url: Some("http://worker.test".into()),
        auth_token: Some(json!({ "sub": "alice" }).to_string()),
        ..Default::default()
    };
    let env = Env {
        now_ms: an_hour_fast,
        ..Env::default()
    };
    let fast = Replica::open(config, Loop { gw: gw.clone() }, env).unwrap();
    declare(&fast, SYNCED);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    fast.set_listener(Some(Box::new(move |e: &Event| {
        if let Event::Refused { code, .. } = e {
            s2.borrow_mut().push(code.clone());
        }
    })));
    exec(
        &fast,
        "insert into todos (id, owner, title) values ('a1', 'alice', 'offline')",
    );
    for _ in 0..2 {
        let e = block(fast.sync()).unwrap_err();
        assert_eq!(e.code(), "CLOCK_DRIFT", "{e}");
        assert!(e.to_string().contains("ahead of the server"), "{e}");
    }
    assert!(seen.borrow().is_empty(), "nothing refused: {:?}", seen.borrow());
    assert_eq!(rows(&fast, "select title from todos"), vec![vec![t("offline")]]);
    assert!(server(&s, "select * from todos").is_empty());
}
