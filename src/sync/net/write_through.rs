//! Write-through (`writeMode: "remote"`): the server first, then the local database;
//! records whose answer was lost are kept as doubts until the server's log settles them.

use serde_json::Value as Json;

use super::{text, Queued};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Statement, TransactionMode, Value};
use crate::store::sql_error;
use crate::sync::record::Record;
use crate::sync::replica::{finish_savepoint, Apply, Replica};
use crate::sync::status::Outcome;

impl<T: HttpTransport> Replica<T> {
    /// Write-through: runs `stmts` locally to compute their changes, undoes them, puts
    /// the changes on the server, and only then applies them locally. When the server
    /// cannot be reached the call fails and the local database is unchanged.
    pub async fn execute_remote(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
        self.remote()?;
        if self.write_through_busy.replace(true) {
            return Err(Error::InvalidOperation(
                "another write-through call on this replica is still running; await it first".into(),
            ));
        }
        let res = self.execute_remote_inner(stmts, mode).await;
        self.write_through_busy.set(false);
        res
    }

    pub(super) async fn execute_remote_inner(
        &self,
        stmts: &[Statement],
        mode: TransactionMode,
    ) -> Result<Vec<ResultSet>> {
        if !self.inner.borrow().schema_ready {
            self.ensure_schema().await?;
        }
        self.resolve_doubts().await?;
        // Earlier changes (rows queued by replicate(), say) go first.
        self.fold_all()?;
        if self.pending_outbox()? > 0 {
            self.push_all().await?;
        }
        let conn = self.store.conn();
        let before: i64 = conn
            .query_row("SELECT coalesce(max(id), 0) FROM _es_outbox", [], |r| r.get(0))
            .map_err(sql_error)?;
        conn.execute_batch("SAVEPOINT es_wt").map_err(sql_error)?;
        let res = (|| {
            let mut out = Vec::new();
            for (i, s) in stmts.iter().enumerate() {
                if mode == TransactionMode::Read {
                    return Err(Error::InvalidArgument("write-through needs a write batch".into()));
                }
                out.push(self.store.execute(s).map_err(|e| e.at_statement(i))?);
            }
            self.fold_all()?;
            let queued: Vec<Queued> = self
                .read_outbox(usize::MAX >> 1)?
                .into_iter()
                .filter(|q| q.id > before)
                .collect();
            Ok((out, queued))
        })();
        // Statements that changed no replicated row (DDL, local-only tables) stay as
        // they are; replicated changes are undone until the server has them.
        let keep = matches!(&res, Ok((_, q)) if q.is_empty());
        finish_savepoint(conn, "es_wt", keep)?;
        let (results, queued) = res?;
        if !queued.is_empty() {
            let conflicts = match self.push_records(&queued).await {
                Ok(c) => c,
                Err(e) => {
                    // Refused outright (auth, SQL): nothing was committed. Otherwise the
                    // answer may have been lost after the server committed: remember the
                    // records, and apply them once the server's log shows them.
                    if e.is_retryable() || matches!(e, Error::Protocol(_)) {
                        let mut stmt = self
                            .store
                            .conn()
                            .prepare_cached("INSERT INTO _es_doubt (rec) VALUES (?1)")
                            .map_err(sql_error)?;
                        for q in &queued {
                            stmt.execute([&q.json]).map_err(sql_error)?;
                        }
                    }
                    return Err(e);
                }
            };
            self.note_push_ok();
            self.fold_all()?;
            let conn = self.store.conn();
            conn.execute_batch("SAVEPOINT es_wt2").map_err(sql_error)?;
            let res = (|| {
                let recs = queued.iter().map(Queued::record).collect::<Result<Vec<Record>>>()?;
                let recs: Vec<&Record> = recs.iter().collect();
                self.apply_records(&recs, &self.site, Apply::Remote)?;
                self.resolve_conflicts(&queued, &conflicts, true)
            })();
            finish_savepoint(conn, "es_wt2", res.is_ok())?;
            res?;
            if !conflicts.rows.is_empty() {
                self.push_all().await?;
            }
        }
        Ok(results)
    }

    /// Settles write-through records whose push failed without an answer: those the
    /// server's log has were committed and are applied locally now; the others never
    /// happened. Runs before anything else is written, so a later write never reuses
    /// what an in-doubt one may have taken (a counter's running total, text ids).
    pub(super) async fn resolve_doubts(&self) -> Result<()> {
        let doubts: Vec<Record> = {
            let mut stmt = self
                .store
                .conn()
                .prepare_cached("SELECT rec FROM _es_doubt ORDER BY id")
                .map_err(sql_error)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql_error)?;
            let mut out = Vec::new();
            for row in rows {
                let json: Json =
                    serde_json::from_str(&row.map_err(sql_error)?).map_err(|e| Error::Protocol(e.to_string()))?;
                out.push(Record::from_json(&json)?);
            }
            out
        };
        if doubts.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = doubts
            .iter()
            .map(|r| {
                let xcol = match (&r.data, r.op) {
                    (Json::Object(d), 'x') => d.keys().next().cloned().unwrap_or_default(),
                    _ => String::new(),
                };
                format!("{}{}{}", crate::sync::record::version(r.hlc, &self.site), r.op, xcol)
            })
            .collect();
        let mut found = std::collections::HashSet::new();
        for chunk in ids.chunks(500) {
            let mut stmt = Statement::new(format!(
                "SELECT id FROM _es_log WHERE id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            ));
            stmt.args = chunk.iter().map(|id| Value::Text(id.clone())).collect();
            for row in self.remote_batch(&[stmt], TransactionMode::Read).await?.remove(0).rows {
                found.insert(text(&row[0]));
            }
        }
        self.fold_all()?;
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_doubt").map_err(sql_error)?;
        let res = (|| {
            let committed: Vec<&Record> = doubts
                .iter()
                .zip(&ids)
                .filter(|(_, id)| found.contains(*id))
                .map(|(r, _)| r)
                .collect();
            if !committed.is_empty() {
                self.apply_records(&committed, &self.site, Apply::Remote)?;
            }
            conn.execute("DELETE FROM _es_doubt", []).map_err(sql_error)?;
            Ok(())
        })();
        finish_savepoint(conn, "es_doubt", res.is_ok())?;
        res
    }

    pub(super) fn note_push_ok(&self) {
        let mut st = self.monitor.status.borrow_mut();
        st.online = true;
        st.last_push = Some(Outcome {
            at_ms: self.now(),
            ok: true,
            error: None,
        });
    }
}
