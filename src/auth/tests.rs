//! The authorization model: principals, SQL policy, channel grants.

use serde_json::json;

use super::*;
use crate::router::classify;

fn config() -> AuthConfig {
    AuthConfig::default()
}

fn principal(claims: serde_json::Value) -> Principal {
    Principal::from_claims(&claims, &config()).unwrap()
}

fn service() -> Principal {
    principal(json!({"sub": "backend", "role": "service"}))
}

fn user(sub: &str) -> Principal {
    principal(json!({ "sub": sub }))
}

#[test]
fn sub_is_required_and_checked() {
    let c = config();
    for (claims, why) in [
        (json!({}), "no sub"),
        (json!({"sub": ""}), "empty"),
        (json!({"sub": 42}), "a number"),
        (json!({"sub": null}), "null"),
        (json!({"sub": ["a"]}), "an array"),
        (json!({"sub": "a\u{0}b"}), "NUL"),
        (json!({"sub": "a\nb"}), "newline"),
        (json!({"sub": "x".repeat(MAX_SUB_BYTES + 1)}), "too long"),
        (json!([1, 2]), "not an object"),
        (json!({"sub": "a", "a": "admin"}), "unknown access"),
        (json!({"sub": "a", "a": 1}), "access not a string"),
    ] {
        let err = Principal::from_claims(&claims, &c).expect_err(why);
        assert_eq!(err.code(), "AUTH_INVALID", "{why}");
    }
    assert!(Principal::from_claims(&json!({"sub": "x".repeat(MAX_SUB_BYTES)}), &c).is_ok());
}

#[test]
fn roles_come_from_the_configured_claim() {
    assert_eq!(service().role, Role::Service);
    assert_eq!(
        principal(json!({"sub": "a", "role": ["x", "service"]})).role,
        Role::Service
    );
    // Anything else is a user: another value, another claim, a look-alike.
    for claims in [
        json!({"sub": "a", "role": "read-only"}),
        json!({"sub": "a", "role": "Service"}),
        json!({"sub": "a", "role": "service "}),
        json!({"sub": "a", "roles": "service"}),
        json!({"sub": "a", "role": {"service": true}}),
        json!({"sub": "a", "role": [["service"]]}),
        json!({"sub": "a", "a": "rw"}),
    ] {
        assert_eq!(principal(claims.clone()).role, Role::User, "{claims}");
    }
    let custom =
        AuthConfig::from_json(r#"{"serviceRole": "edge-admin", "serviceRoleClaim": "https://example.com/roles"}"#)
            .unwrap();
    let p = Principal::from_claims(
        &json!({"sub": "a", "https://example.com/roles": ["edge-admin"]}),
        &custom,
    )
    .unwrap();
    assert_eq!(p.role, Role::Service);
    let p = Principal::from_claims(&json!({"sub": "a", "role": "service"}), &custom).unwrap();
    assert_eq!(p.role, Role::User);
    assert_eq!(
        AuthConfig::from_json(r#"{"serviceRol": "x"}"#).unwrap_err().code(),
        "CONFIG_ERROR"
    );
}

#[test]
fn access_claim() {
    assert_eq!(service().access, Access::ReadWrite);
    assert_eq!(principal(json!({"sub": "a", "a": "rw"})).access, Access::ReadWrite);
    assert_eq!(principal(json!({"sub": "a", "a": "ro"})).access, Access::ReadOnly);
    assert_eq!(principal(json!({"sub": "a", "a": "roa"})).access, Access::ReadOnly);
}

#[test]
fn users_run_no_sql_and_read_only_services_only_read() {
    let ro = principal(json!({"sub": "r", "role": "service", "a": "ro"}));
    let (svc, alice) = (service(), user("alice"));
    for sql in [
        "select 1",
        "select * from b_private",
        "create table t (x)",
        "delete from _es_log",
    ] {
        let c = classify(sql).unwrap();
        assert_eq!(authorize_sql(&alice, &c).unwrap_err().code(), "FORBIDDEN", "{sql}");
        assert!(authorize_sql(&svc, &c).is_ok(), "{sql}");
    }
    for sql in [
        "create table t (x)",
        "insert into t values (1)",
        "drop table t",
        "create trigger tr after insert on t begin insert into u values (1); end",
        "with x as (select 1) delete from t",
        "begin",
        "pragma user_version = 3",
    ] {
        let c = classify(sql).unwrap();
        assert_eq!(authorize_sql(&ro, &c).unwrap_err().code(), "PERMISSION_DENIED", "{sql}");
    }
    for sql in [
        "select * from t",
        "pragma table_info(t)",
        "explain query plan select 1",
        "values (1)",
    ] {
        assert!(authorize_sql(&ro, &classify(sql).unwrap()).is_ok(), "{sql}");
    }
}

#[test]
fn nobody_reaches_host_files_raw_pages_or_worker_tables() {
    let svc = service();
    let refused = [
        // SQLite's fileio extension, in every spelling SQLite resolves.
        "select readfile('/etc/passwd')",
        "SELECT ReadFile('/etc/passwd')",
        "select \"readfile\"('/etc/passwd')",
        "select [readfile]('/etc/passwd')",
        "select `readfile`('/etc/passwd')",
        "select readfile /* c */ ('/etc/passwd')",
        "select readfile\n('/etc/passwd')",
        "select writefile('/tmp/x', 'data')",
        "select lsmode(1)",
        "select * from fsdir('/etc')",
        "select name from main.fsdir('/')",
        "create virtual table f using fsdir",
        "select edit('x')",
        "select eval('delete from t')",
        // Extensions and SQL from a string.
        "select load_extension('/tmp/evil.so')",
        "select fts3_tokenizer('simple', x'0000000000000000')",
        "select sha3_query('select id from t')",
        "select sqlite_log(1, 'forged')",
        "select sqlite3mc_config('cipher', 'rc4')",
        "select sqlite3mc_codec_data('cipher_salt')",
        "select zipfile('a', 'b')",
        "select * from zipfile('/tmp/a.zip')",
        // Raw pages.
        "select data from sqlite_dbpage where pgno = 1",
        "update sqlite_dbpage set data = zeroblob(4096) where pgno = 1",
        "insert into main.sqlite_dbpage values (1, x'00')",
        "select * from sqlite_dbdata",
        "create virtual table x using fts3tokenize(simple)",
        // Other files and settings.
        "attach database '/tmp/x.db' as x",
        "ATTACH 'file:/etc/passwd?mode=ro' AS p",
        "detach x",
        "vacuum into '/tmp/copy.db'",
        "VACUUM main INTO 'file:/tmp/copy.db'",
        "pragma writable_schema = 1",
        "pragma journal_mode = delete",
        "pragma main.synchronous = off",
        "pragma optimize",
        "pragma trusted_schema(1)",
        "create function f language wasm as x'00'",
        // The worker's own tables: read, written, renamed, referenced.
        "select * from es_sessions",
        "select * from ES_SESSIONS",
        "select * from \"es_sessions\"",
        "select * from main.[es_sessions]",
        "select id from t where id in (select id from es_sessions)",
        "delete from es_session_ledger",
        "update es_sessions set expires_ms = 9e15",
        "alter table es_sessions rename to mine",
        "create view v as select * from es_sessions",
        "create trigger tr after insert on t begin delete from es_session_ledger; end",
        "select * from pragma_table_info('es_sessions')",
        "select * from dbstat where name = 'es_sessions'",
        // Refused anywhere in a multi-statement text.
        "select 1; select readfile('/etc/passwd')",
    ];
    for sql in refused {
        let c = classify(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(c.refused.is_some(), "not refused: {sql}");
        assert_eq!(authorize_sql(&svc, &c).unwrap_err().code(), "SQL_NOT_ALLOWED", "{sql}");
        assert_eq!(guard(sql).unwrap_err().code(), "SQL_NOT_ALLOWED", "{sql}");
    }
    // Ordinary SQL, and names that only look alike, pass.
    for sql in [
        "select 'readfile(' || x from t",
        "select readfile_count from stats",
        "select * from sessions",
        "select * from es_settings",
        "insert into notes (body) values ('es_sessions are described in the docs')",
        "pragma user_version = 7",
        "pragma application_id(42)",
        "pragma foreign_keys = on",
        "pragma table_info(t)",
        "vacuum",
        "create table t (id integer primary key, body text default ('x'))",
        "select sha3('abc')",
    ] {
        let c = classify(sql).unwrap();
        assert_eq!(c.refused, None, "{sql}");
        assert!(authorize_sql(&svc, &c).is_ok(), "{sql}");
    }
}

#[test]
fn cacheability_is_an_allow_list() {
    for sql in [
        "select 1",
        "select count(*), max(v), json_extract(j, '$.a') from t where lower(s) like ?",
        "select row_number() over (order by x) from t",
        "with x(a) as (select 1) select a from x",
        "select cast(x as text), coalesce(a, b), iif(a, 1, 2) from t",
        "select * from t where id in (1, 2) and exists (select 1 from u)",
        "select value from json_each(?)",
    ] {
        let c = classify(sql).unwrap();
        assert!(c.deterministic && c.cacheable, "should be cacheable: {sql}");
    }
    for sql in [
        "select uuid()",
        "select uuid_str(uuid_blob(uuid()))",
        "select random()",
        "select date('now')",
        "select current_timestamp",
        "select my_app_function(1)",
        "select \"ABS\"(1), changes()",
        "select writefile('/tmp/x', 'y')",
        "select sqlite_version()",
        "select * from vector_top_k('idx', ?, 3)",
        "select * from pragma_table_info('t')",
        "select last_rows_affected()",
    ] {
        let c = classify(sql).unwrap();
        assert!(!c.cacheable, "should not be cacheable: {sql}");
    }
}

#[test]
fn channel_grants() {
    let g = ChannelGrants::default();
    let svc = service();
    let ro_svc = principal(json!({"sub": "r", "role": "service", "a": "ro"}));
    let alice = user("alice");
    let sub = ChannelOp::Subscribe;
    let pubo = ChannelOp::Publish;
    let code = |r: crate::Result<()>| r.err().map(|e| e.code());

    // Reserved namespaces: nobody publishes there, service included.
    for p in [&svc, &alice] {
        assert_eq!(code(g.check(p, "table:b_orders", pubo)), Some("CHANNEL_RESERVED"));
        assert_eq!(code(g.check(p, "sync:todos", pubo)), Some("CHANNEL_RESERVED"));
    }
    // Service: every subscription (and `*`), every other publish.
    for c in ["*", "table:*", "sync:todos", "user:bob:inbox", "room:1"] {
        assert_eq!(code(g.check(&svc, c, sub)), None, "{c}");
    }
    assert_eq!(code(g.check(&svc, "room:1", pubo)), None);
    assert_eq!(code(g.check(&ro_svc, "room:1", pubo)), Some("PERMISSION_DENIED"));
    assert_eq!(code(g.check(&ro_svc, "*", sub)), None);

    // A user: only its own namespace by default.
    for c in ["user:alice:inbox", "user:alice:*", "user:alice:a:b*"] {
        assert_eq!(code(g.check(&alice, c, sub)), None, "{c}");
    }
    for c in [
        "*",
        "u*",
        "user:*",
        "user:alic*",
        "user:alice*",
        "user:bob:inbox",
        "table:todos",
        "table:*",
        "sync:todos",
        "room:1",
    ] {
        assert_eq!(code(g.check(&alice, c, sub)), Some("FORBIDDEN"), "{c}");
    }
    assert_eq!(code(g.check(&alice, "user:alice:inbox", pubo)), None);
    assert_eq!(code(g.check(&alice, "user:bob:inbox", pubo)), Some("FORBIDDEN"));
    // Malformed names are argument errors, whoever asks.
    for c in ["", "a,b", "a*b", "a\nb", &"x".repeat(201)] {
        assert_eq!(code(g.check(&svc, c, sub)), Some("INVALID_ARGUMENT"), "{c:?}");
    }
    assert_eq!(code(g.check(&svc, "room:*", pubo)), Some("INVALID_ARGUMENT"));
}

#[test]
fn a_subject_cannot_reach_into_another_namespace() {
    let g = ChannelGrants::default();
    // "bob:evil" must not get bob's channels, nor "bob*" all of bob's.
    for evil in ["bob:evil", "bob:*", "bob*", "bob,x", "bob%3Aevil", "user:bob"] {
        let p = user(evil);
        for c in ["user:bob:evil:inbox", "user:bob:inbox", "user:bob:*", "user:bob*"] {
            assert_eq!(
                g.check(&p, c, ChannelOp::Subscribe).err().map(|e| e.code()),
                Some("FORBIDDEN"),
                "sub {evil:?} reached {c}"
            );
        }
        let own = format!("user:{}:inbox", escape_sub(evil));
        assert!(g.check(&p, &own, ChannelOp::Subscribe).is_ok(), "{own}");
    }
    assert_eq!(escape_sub("bob%3Aevil"), "bob%253Aevil");
}

#[test]
fn configured_grants() {
    let c = AuthConfig::from_json(
        r#"{"channels": {"subscribe": ["user:{sub}:*", "room:*", "table:todos"], "publish": ["room:{sub}"]}}"#,
    )
    .unwrap();
    let alice = Principal::from_claims(&json!({"sub": "alice"}), &c).unwrap();
    let g = &c.channels;
    assert!(g.check(&alice, "room:*", ChannelOp::Subscribe).is_ok());
    assert!(g.check(&alice, "room:lobby", ChannelOp::Subscribe).is_ok());
    assert!(g.check(&alice, "table:todos", ChannelOp::Subscribe).is_ok());
    assert!(g.check(&alice, "table:todos*", ChannelOp::Subscribe).is_err());
    assert!(g.check(&alice, "room:alice", ChannelOp::Publish).is_ok());
    assert!(g.check(&alice, "room:lobby", ChannelOp::Publish).is_err());
    assert_eq!(
        g.expanded(&alice, ChannelOp::Subscribe),
        vec!["user:alice:*", "room:*", "table:todos"]
    );
    for bad in [
        r#"{"channels": {"subscribe": ["a*b"]}}"#,
        r#"{"channels": {"subscribe": [""]}}"#,
        r#"{"channels": {"publish": ["a,b"]}}"#,
        r#"{"channels": {"subscribe": "user:*"}}"#,
        r#"{"channels": {"read": []}}"#,
    ] {
        assert_eq!(AuthConfig::from_json(bad).unwrap_err().code(), "CONFIG_ERROR", "{bad}");
    }
}

#[test]
fn sessions_belong_to_their_subject() {
    assert!(user("alice").may_use_session("alice"));
    assert!(!user("alice").may_use_session("bob"));
    assert!(!user("alice").may_use_session("Alice"));
    assert!(service().may_use_session("bob"));
    assert_eq!(user("alice").require_service("gc").unwrap_err().code(), "FORBIDDEN");
    assert_eq!(service().cache_scope(), "service");
    assert_eq!(user("alice").cache_scope(), "user:alice");
}
