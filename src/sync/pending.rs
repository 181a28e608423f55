//! Which rows still carry local changes the server has not confirmed: what a UI shows
//! as "pending" next to a row, and "synced" once its key is gone from here.

use super::replica::Replica;
use crate::error::Result;
use crate::remote::HttpTransport;
use crate::store::sql_error;

impl<T: HttpTransport> Replica<T> {
    /// The primary keys of the rows of `table` with local changes not yet on the server
    /// — captured, queued in the outbox (a push whose answer was lost stays there), or a
    /// write-through write not settled yet (an intent, `net/doubts.rs`; or a doubt from
    /// before the ledger, adopted as an intent at the next settle) — each as the JSON
    /// array that conflict events use (`["tx-1"]`, `[7]`), sorted.
    ///
    /// Pending captures are folded into change records first (as a sync does), so every
    /// key is read from a record; that is safe while a sync is on the wire.
    pub fn pending_keys(&self, table: &str) -> Result<Vec<String>> {
        self.fold_all()?;
        let conn = self.store.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT DISTINCT json_extract(rec, '$[2]') AS k \
                 FROM (SELECT rec FROM _es_outbox UNION ALL SELECT rec FROM _es_intent \
                       UNION ALL SELECT rec FROM _es_doubt) \
                 WHERE json_extract(rec, '$[1]') = ?1 ORDER BY k",
            )
            .map_err(sql_error)?;
        let keys = stmt
            .query_map([table], |r| r.get::<_, String>(0))
            .map_err(sql_error)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_error)?;
        Ok(keys)
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use crate::remote::UreqTransport;
    use crate::sync::{Env, Policy, Replica, ReplicaConfig};
    use crate::Statement;

    fn replica() -> Replica<UreqTransport> {
        let config = ReplicaConfig {
            path: ":memory:".into(),
            ..Default::default()
        };
        let r = Replica::open(config, UreqTransport::default(), Env::default()).unwrap();
        r.execute(&Statement::new(
            "create table tx (id text primary key, amount integer not null default 0, tags text)",
        ))
        .unwrap();
        r.execute(&Statement::new("create table other (id integer primary key, v text)"))
            .unwrap();
        r.replicate("tx", &[("tags".into(), Policy::Set)], vec![]).unwrap();
        r.replicate("other", &[], vec![]).unwrap();
        r
    }

    #[test]
    fn keys_of_captured_and_queued_rows_of_one_table() {
        let r = replica();
        assert!(r.pending_keys("tx").unwrap().is_empty());
        r.execute(&Statement::new("insert into tx (id, amount) values ('b', 1), ('a', 2)"))
            .unwrap();
        r.execute(&Statement::new("insert into other values (7, 'x')")).unwrap();
        // Captured, not folded yet: folded by the call.
        assert_eq!(r.pending_keys("tx").unwrap(), vec![r#"["a"]"#, r#"["b"]"#]);
        // Queued already, plus a new capture of the same row: one key each.
        r.execute(&Statement::new(
            "update tx set amount = 5, tags = '[\"q\"]' where id = 'a'",
        ))
        .unwrap();
        assert_eq!(r.pending_keys("tx").unwrap(), vec![r#"["a"]"#, r#"["b"]"#]);
        assert_eq!(r.pending_keys("other").unwrap(), vec!["[7]"]);
        assert!(r.pending_keys("missing").unwrap().is_empty());
        // A delete is a pending change too.
        r.execute(&Statement::new("delete from other where id = 7")).unwrap();
        assert_eq!(r.pending_keys("other").unwrap(), vec!["[7]"]);
        // A record held as a write-through intent (its outcome unknown) is pending too.
        let conn = r.store.conn();
        conn.execute_batch(
            "INSERT INTO _es_intent (lid, wid, rec) \
               SELECT 'l' || id, 1, rec FROM _es_outbox WHERE json_extract(rec, '$[1]') = 'tx'; \
             DELETE FROM _es_outbox WHERE json_extract(rec, '$[1]') = 'tx';",
        )
        .unwrap();
        assert_eq!(r.pending_keys("tx").unwrap(), vec![r#"["a"]"#, r#"["b"]"#]);
        conn.execute_batch("DELETE FROM _es_intent").unwrap();
        assert!(r.pending_keys("tx").unwrap().is_empty());
    }
}
