//! Custom-column conflicts found while the column's resolver is not registered yet.
//!
//! A custom column's resolver is the application's function: it exists only once this
//! session's `replicate()` has passed it in, while the column's policy is known from the
//! file from the moment the replica opens. Between the two, a sync (`syncOnOpen`, a
//! background retry, a `sync()` called first) or a write-through call settling a write
//! whose answer was lost can meet a lost compare-and-set for that column. Resolving it
//! then as "the server's value wins" would silently drop the local write (found by the
//! soak: a reopened replica's first call settled an earlier write and kept the server's
//! 945 over its own 946 under a `max` resolver). So the conflict is *held*: the lost
//! record, its base and the server's value and version are kept in `_es_held`, counted
//! in `pendingChanges`, and resolved by the resolver as soon as `replicate()` registers
//! it (or at the next sync, if it already is) — exactly as it would have been at push
//! time, the result queued and pushed with the server's version as its base (a change
//! on the server meanwhile is one more conflict, resolved the same way).

use rusqlite::params;

use super::Queued;
use crate::error::Result;
use crate::remote::{HttpTransport, ResultSet, Value};
use crate::store::sql_error;
use crate::sync::fold::encode_base;
use crate::sync::record::decode_row;
use crate::sync::replica::{finish_savepoint, Replica};

/// One `_es_held` row: id, table, column, record, base, server value, server version.
type HeldRow = (i64, String, String, String, Option<Vec<u8>>, Option<Vec<u8>>, String);

impl<T: HttpTransport> Replica<T> {
    /// Whether a conflict of `table.col` must wait: no resolver is registered for it
    /// and `replicate()` has not declared the table in this session (once it has, a
    /// custom column declared without a resolver keeps the server's value, as
    /// documented).
    pub(super) fn must_hold(&self, table: &str, col: &str) -> bool {
        !self.has_resolver(table, col) && !self.inner.borrow().declared.contains(table)
    }

    /// Whether `table.col` has a resolver registered in this session.
    pub(super) fn has_resolver(&self, table: &str, col: &str) -> bool {
        self.inner
            .borrow()
            .resolvers
            .contains_key(&(table.to_string(), col.to_string()))
    }

    /// Keeps a conflict of `q` (a custom record) with the server's `remote` value at
    /// version `remote_ver`, to be resolved once the column's resolver is registered.
    pub(super) fn hold_conflict(&self, q: &Queued, col: &str, remote: &Value, remote_ver: &str) -> Result<()> {
        self.store
            .conn()
            .prepare_cached("INSERT INTO _es_held (tbl, col, rec, base, remote, rver) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .map_err(sql_error)?
            .execute(params![
                q.table,
                col,
                q.json,
                encode_base(&q.base),
                encode_base(&Some(remote.clone())),
                remote_ver
            ])
            .map_err(sql_error)?;
        Ok(())
    }

    /// Resolves the held conflicts whose resolver is registered now, in one local
    /// transaction: each result is applied and queued (as a conflict found by a push
    /// is). Returns how many were resolved.
    pub(crate) fn resolve_held(&self) -> Result<u64> {
        let held: Vec<HeldRow> = {
            let mut stmt = self
                .store
                .conn()
                .prepare_cached("SELECT id, tbl, col, rec, base, remote, rver FROM _es_held ORDER BY id")
                .map_err(sql_error)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<_>>().map_err(sql_error)?
        };
        let ready: Vec<_> = held.into_iter().filter(|h| self.has_resolver(&h.1, &h.2)).collect();
        if ready.is_empty() {
            return Ok(0);
        }
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_held").map_err(sql_error)?;
        let res = (|| {
            for (id, table, col, json, base, remote, rver) in &ready {
                let q = Queued {
                    id: 0,
                    table: table.clone(),
                    op: 'x',
                    json: json.clone(),
                    base: decode_one(base)?,
                };
                let record = q.record()?;
                let remote = decode_one(remote)?.unwrap_or(Value::Null);
                let mut conflict = ResultSet::default();
                conflict.rows.push(vec![
                    Value::Integer(record.hlc),
                    Value::Text(table.clone()),
                    Value::Text(record.pk.to_string()),
                    Value::Text(col.clone()),
                    remote,
                    Value::Text(rver.clone()),
                ]);
                self.resolve_conflicts(std::slice::from_ref(&q), &conflict, true)?;
                conn.execute("DELETE FROM _es_held WHERE id = ?1", [id])
                    .map_err(sql_error)?;
            }
            Ok(ready.len() as u64)
        })();
        finish_savepoint(conn, "es_held", res.is_ok())?;
        res
    }
}

fn decode_one(b: &Option<Vec<u8>>) -> Result<Option<Value>> {
    match b {
        Some(b) => Ok(decode_row(b)?.into_iter().next()),
        None => Ok(None),
    }
}
