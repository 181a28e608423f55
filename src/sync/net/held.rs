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
use serde_json::Value as Json;

use super::Queued;
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Value};
use crate::store::sql_error;
use crate::sync::fold::encode_base;
use crate::sync::record::{decode_value, encode_value};
use crate::sync::replica::{finish_savepoint, Replica};

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
    /// version `remote_ver`, to be resolved once the column's resolver is registered:
    /// the record as queued (`rec`, `base`) and `[column, server value, version]`.
    pub(super) fn hold_conflict(&self, q: &Queued, col: &str, remote: &Value, remote_ver: &str) -> Result<()> {
        let conflict = Json::Array(vec![col.into(), encode_value(remote), remote_ver.into()]);
        self.store
            .conn()
            .prepare_cached("INSERT INTO _es_held (rec, base, conflict) VALUES (?1, ?2, ?3)")
            .map_err(sql_error)?
            .execute(params![q.json, encode_base(&q.base), conflict.to_string()])
            .map_err(sql_error)?;
        Ok(())
    }

    /// Resolves the held conflicts that need not wait any more (their resolver is
    /// registered, or their table was declared without one), in one local transaction:
    /// each result is applied and queued (as a conflict found by a push is). Returns
    /// how many were resolved.
    pub(crate) fn resolve_held(&self) -> Result<u64> {
        let held = self.read_queued("_es_held", 0, usize::MAX >> 1)?;
        if held.is_empty() {
            return Ok(0);
        }
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_held").map_err(sql_error)?;
        let res = (|| {
            let mut resolved = 0;
            for q in &held {
                let text: String = conn
                    .query_row("SELECT conflict FROM _es_held WHERE id = ?1", [q.id], |r| r.get(0))
                    .map_err(sql_error)?;
                let c: Json = serde_json::from_str(&text).map_err(|e| Error::Protocol(e.to_string()))?;
                let (Some(col), Some(rver)) = (c[0].as_str(), c[2].as_str()) else {
                    return Err(Error::Protocol(format!("a held conflict is malformed: {text}")));
                };
                // Still no resolver: wait. Declared in this session without one: the
                // server's value is kept (resolve_conflicts does that), as documented.
                if self.must_hold(&q.table, col) {
                    continue;
                }
                let record = q.record()?;
                let mut conflict = ResultSet::default();
                conflict.rows.push(vec![
                    Value::Integer(record.hlc),
                    Value::Text(q.table.clone()),
                    Value::Text(record.pk.to_string()),
                    Value::Text(col.to_string()),
                    decode_value(&c[1]),
                    Value::Text(rver.to_string()),
                ]);
                self.resolve_conflicts(std::slice::from_ref(q), &conflict, true)?;
                conn.execute("DELETE FROM _es_held WHERE id = ?1", [q.id])
                    .map_err(sql_error)?;
                resolved += 1;
            }
            Ok(resolved)
        })();
        finish_savepoint(conn, "es_held", res.is_ok())?;
        res
    }
}
