//! The kept-statement path against the generic `execute` path: same results, same
//! errors, header only when it changes.

use super::super::Store;
use super::{Run, CAPACITY};
use crate::sql::{ResultSet, Statement, Value};

/// Packs arguments as js/args.ts does.
fn pack(stmt: &Statement) -> Vec<u8> {
    fn value(b: &mut Vec<u8>, v: &Value) {
        match v {
            Value::Null => b.push(0),
            Value::Integer(i) => {
                b.push(5);
                b.extend_from_slice(&i.to_le_bytes());
            }
            Value::Real(f) => {
                b.push(2);
                b.extend_from_slice(&f.to_le_bytes());
            }
            Value::Text(t) => {
                b.push(3);
                b.extend_from_slice(&(t.len() as u32).to_le_bytes());
                b.extend_from_slice(t.as_bytes());
            }
            Value::Blob(x) => {
                b.push(4);
                b.extend_from_slice(&(x.len() as u32).to_le_bytes());
                b.extend_from_slice(x);
            }
        }
    }
    let mut b = Vec::new();
    if !stmt.named_args.is_empty() {
        b.push(2);
        b.extend_from_slice(&(stmt.named_args.len() as u32).to_le_bytes());
        for (n, v) in &stmt.named_args {
            b.extend_from_slice(&(n.len() as u32).to_le_bytes());
            b.extend_from_slice(n.as_bytes());
            value(&mut b, v);
        }
    } else {
        b.push(u8::from(!stmt.args.is_empty()));
        b.extend_from_slice(&(stmt.args.len() as u32).to_le_bytes());
        for v in &stmt.args {
            value(&mut b, v);
        }
    }
    b
}

/// Runs `stmt` on the kept path, preparing it on first use (or when stale).
fn fast(db: &Store, stmt: &Statement) -> crate::Result<(ResultSet, bool)> {
    let h = db.prepare_kept(&stmt.sql)?.expect("a single statement");
    let mut rs = ResultSet::default();
    match db.run_prepared(h, &pack(stmt), &mut rs)? {
        Run::Done { header } => Ok((rs, header)),
        Run::Stale => panic!("fresh handle is stale"),
    }
}

fn db() -> Store {
    let db = Store::open(":memory:").unwrap();
    db.execute(&Statement::new(
        "create table t (id integer primary key, name text not null, r real, b blob)",
    ))
    .unwrap();
    db
}

#[test]
fn same_results_as_the_generic_path() {
    let db = db();
    let stmts = [
        Statement::new("insert into t values (?, ?, ?, ?)")
            .arg(1)
            .arg("héllo ✓")
            .arg(1.5)
            .arg(Value::Blob(vec![0, 255])),
        Statement::new("insert into t (name, b) values (:name, @b)")
            .named("name", "x")
            .named("@b", Value::Null),
        Statement::new("replace into t (id, name) values ($id, 'y')").named("$id", 2),
        Statement::new("update t set r = ? where id > ?").arg(i64::MAX).arg(0),
        Statement::new("select * from t order by id"),
        Statement::new("select * from t where id = ?").arg(99),
        Statement::new("select count(*) as n, 1 + 1, ? as big from t").arg(i64::MIN),
        Statement::new("delete from t where id = 2;  "),
    ];
    for s in &stmts {
        // Each statement on a copy of the same database state: run the generic path,
        // undo with a savepoint, then the kept path.
        db.conn().execute_batch("savepoint s").unwrap();
        let want = db.execute(s).unwrap();
        db.conn().execute_batch("rollback to s; release s").unwrap();
        db.conn().execute_batch("savepoint s").unwrap();
        let (got, header) = fast(&db, s).unwrap();
        db.conn().execute_batch("rollback to s; release s").unwrap();
        assert!(header, "{}", s.sql);
        assert_eq!(got, want, "{}", s.sql);
        // And for real, so the next statement sees the change.
        db.execute(s).unwrap();
    }
}

#[test]
fn header_only_when_it_changes() {
    let db = db();
    db.execute(&Statement::new("insert into t (name) values ('a')"))
        .unwrap();
    let h = db.prepare_kept("select * from t").unwrap().unwrap();
    let args = pack(&Statement::new(""));
    let run = |rs: &mut ResultSet| db.run_prepared(h, &args, rs).unwrap();
    let mut rs = ResultSet::default();
    assert_eq!(run(&mut rs), Run::Done { header: true });
    assert_eq!(rs.columns, ["id", "name", "r", "b"]);
    let mut rs = ResultSet::default();
    assert_eq!(run(&mut rs), Run::Done { header: false });
    assert!(rs.columns.is_empty());
    assert_eq!(rs.rows.len(), 1);
    db.execute(&Statement::new("alter table t add column extra integer default 7"))
        .unwrap();
    let mut rs = ResultSet::default();
    assert_eq!(run(&mut rs), Run::Done { header: true });
    assert_eq!(rs.columns, ["id", "name", "r", "b", "extra"]);
    assert_eq!(rs.column_types, ["INTEGER", "TEXT", "REAL", "BLOB", "INTEGER"]);
    assert_eq!(rs.rows[0][4], Value::Integer(7));
    db.conn()
        .execute_batch("drop table t; create table t (z text)")
        .unwrap();
    let mut rs = ResultSet::default();
    assert_eq!(run(&mut rs), Run::Done { header: true });
    assert_eq!(rs.columns, ["z"]);
    assert!(rs.rows.is_empty());
}

#[test]
fn errors_match_and_do_not_stick() {
    let db = db();
    db.execute(&Statement::new("insert into t (id, name) values (1, 'a')"))
        .unwrap();
    let cases = [
        Statement::new("insert into t (id, name) values (?, ?)")
            .arg(1)
            .arg("dup"),
        Statement::new("insert into t (id, name) values (?, ?)")
            .arg(5)
            .arg(Value::Null),
        Statement::new("select * from t where id = ?"),
        Statement::new("select * from t where id = ?").arg(1).arg(2),
        Statement::new("select * from t where id = :id").named("nope", 1),
        Statement::new("select * from t where id = ?").arg(f64::NAN),
    ];
    for s in &cases {
        let want = db.execute(s).unwrap_err();
        let got = fast(&db, s).unwrap_err();
        assert_eq!(
            (got.code(), got.to_string()),
            (want.code(), want.to_string()),
            "{}",
            s.sql
        );
    }
    // After a failure the same kept statement runs normally.
    let ok = Statement::new("select name from t where id = ?").arg(1);
    let h = db.prepare_kept(&ok.sql).unwrap().unwrap();
    let mut rs = ResultSet::default();
    assert!(db
        .run_prepared(h, &pack(&Statement::new(&ok.sql).arg(1).arg(2)), &mut rs)
        .is_err());
    let mut rs = ResultSet::default();
    db.run_prepared(h, &pack(&ok), &mut rs).unwrap();
    assert_eq!(rs.rows, [[Value::Text("a".into())]]);
    assert!(!db.in_transaction());
    // Prepare errors are the generic path's.
    for sql in ["selec 1", "select * from nope", "select ?1, ?0"] {
        let want = db.execute(&Statement::new(sql)).unwrap_err();
        let got = db.prepare_kept(sql).unwrap_err();
        assert_eq!((got.code(), got.to_string()), (want.code(), want.to_string()), "{sql}");
    }
}

#[test]
fn not_single_statements_use_the_generic_path() {
    let db = db();
    for sql in [
        "",
        "  -- nothing",
        "select 1; select 2",
        "select 1; select 2x",
        "select 1; -- trailing comment",
    ] {
        assert_eq!(db.prepare_kept(sql).unwrap(), None, "{sql:?}");
    }
    assert!(db.prepare_kept("select 1;\n ;").unwrap().is_some());
}

#[test]
fn replaced_statements_are_stale() {
    let db = db();
    let first = db.prepare_kept("select 0").unwrap().unwrap();
    let mut handles = vec![first];
    for i in 1..CAPACITY + 10 {
        handles.push(db.prepare_kept(&format!("select {i}")).unwrap().unwrap());
    }
    let none = pack(&Statement::new(""));
    let mut rs = ResultSet::default();
    assert_eq!(db.run_prepared(first, &none, &mut rs).unwrap(), Run::Stale);
    for (i, h) in handles.iter().enumerate().skip(10) {
        let mut rs = ResultSet::default();
        assert_eq!(db.run_prepared(*h, &none, &mut rs).unwrap(), Run::Done { header: true });
        assert_eq!(rs.rows, [[Value::Integer(i as i64)]]);
    }
    for bogus in [0, 1, u32::MAX] {
        assert_eq!(db.run_prepared(bogus, &none, &mut rs).unwrap(), Run::Stale);
    }
    // Statements still open when the store closes are finalized first (no panic).
    drop(db);
}
