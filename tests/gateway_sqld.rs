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
                status: 421,
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
