//! Write-through (`writeMode: "remote"`): the server first, then the local database.
//! A write whose answer is lost stays an intent until the ledger settles it: see
//! `doubts.rs` for the protocol.

use super::doubts::Outcome as Settled;
use super::push::RECORD_BYTES;
use super::Queued;
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Statement, TransactionMode, Value};
use crate::store::sql_error;
use crate::sync::record::Record;
use crate::sync::replica::{finish_savepoint, meta, Replica};
use crate::sync::status::Outcome;

impl<T: HttpTransport> Replica<T> {
    /// Write-through: runs `stmts` locally to compute their changes, undoes them, puts
    /// the changes on the server, and only then applies them locally.
    ///
    /// On `Ok` the write is on the server and applied here. On an error it is not
    /// applied here; it did not commit unless the error is retryable or a protocol
    /// error (the answer was lost) and the write could not be settled at once — then it
    /// may have, and the replica settles it and converges as soon as it can reach the
    /// server again (see `doubts.rs`).
    pub async fn execute_remote(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
        self.execute_remote_once(stmts, mode, None).await
    }

    /// [`execute_remote`](Self::execute_remote) for a call that may be made again under
    /// the same `request` key (a browser tab sends a call again to the next owner of the
    /// store when the one running it died): if an earlier attempt committed, this returns
    /// that attempt's answer instead of writing again (`requests.rs`).
    pub async fn execute_remote_once(
        &self,
        stmts: &[Statement],
        mode: TransactionMode,
        request: Option<&str>,
    ) -> Result<Vec<ResultSet>> {
        self.remote()?;
        if self.write_through_busy.replace(true) {
            return Err(Error::InvalidOperation(
                "another write-through call on this replica is still running; await it first".into(),
            ));
        }
        let res = self.execute_remote_inner(stmts, mode, request).await;
        self.write_through_busy.set(false);
        res
    }

    /// The write that a running write-through call owns (its own settling or its push in
    /// flight): `sync()` leaves it to that call.
    pub(super) fn write_in_flight(&self) -> Result<Option<i64>> {
        if !self.write_through_busy.get() {
            return Ok(None);
        }
        Ok(match meta(&self.store, "wt_n")? {
            Some(Value::Integer(n)) => Some(n),
            _ => None,
        })
    }

    pub(super) async fn execute_remote_inner(
        &self,
        stmts: &[Statement],
        mode: TransactionMode,
        request: Option<&str>,
    ) -> Result<Vec<ResultSet>> {
        if mode == TransactionMode::Read {
            return Err(Error::InvalidArgument("write-through needs a write batch".into()));
        }
        if !self.inner.borrow().schema_ready {
            self.ensure_schema().await?;
        }
        // Rule 4: nothing is computed over an unsettled write.
        self.settle_writes(None).await?;
        if let Some(answer) = request.map(|k| self.answered(k)).transpose()?.flatten() {
            return Ok(answer);
        }
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
                out.push(self.store.execute(s).map_err(|e| e.at_statement(i))?);
            }
            self.fold_all()?;
            let queued: Vec<Queued> = self
                .read_outbox(usize::MAX >> 1)?
                .into_iter()
                .filter(|q| q.id > before)
                .collect();
            if let (Some(key), true) = (request, queued.is_empty()) {
                // Done here and now: a second arrival gets this answer.
                self.note_request(key, None, &out)?;
            }
            Ok((out, queued))
        })();
        // Statements that changed no replicated row (DDL, local-only tables) stay as
        // they are; replicated changes are undone until the server has them.
        let keep = matches!(&res, Ok((_, q)) if q.is_empty());
        finish_savepoint(conn, "es_wt", keep)?;
        let (results, queued) = res?;
        if queued.is_empty() {
            return Ok(results);
        }
        // One atomic batch, so one chunk: it must fit in a value the server accepts.
        let bytes = queued.iter().map(|q| q.json.len() + 1).sum::<usize>() + 1;
        if bytes >= RECORD_BYTES {
            return Err(too_large(&queued, &format!("its changes are {bytes} bytes")));
        }
        let records = queued.iter().map(Queued::record).collect::<Result<Vec<Record>>>()?;
        let wid = self.record_intent(&queued, &records, request.map(|k| (k, results.as_slice())))?;
        let conflicts = match self.push_records(&queued, &self.ledger_steps(wid)).await {
            Ok(c) => c,
            Err(e) if super::is_too_large(&e) => {
                self.drop_intent(wid)?;
                return Err(too_large(&queued, &format!("the server refused it ({e})")));
            }
            Err(e) if !Self::answer_lost(&e) => {
                // Refused outright (auth, SQL, too large): nothing was committed.
                self.drop_intent(wid)?;
                return Err(e);
            }
            Err(e) => {
                // The answer was lost (or this was a replay the ledger refused): the
                // server may or may not have committed. Ask it now; if it cannot be
                // asked, the intent stays and is settled later.
                return match self.settle_writes(None).await {
                    Ok(settled) if settled.get(&wid) == Some(&Settled::Committed) => {
                        self.note_push_ok();
                        Ok(results)
                    }
                    _ => Err(e),
                };
            }
        };
        self.note_push_ok();
        // Applied, and the custom values that lost resolved, in one local transaction.
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_wt2").map_err(sql_error)?;
        let res = self
            .settle_committed(wid, None, None)
            .and_then(|_| self.resolve_conflicts(&queued, &conflicts, true));
        finish_savepoint(conn, "es_wt2", res.is_ok())?;
        res?;
        if !conflicts.rows.is_empty() {
            self.push_all().await?;
        }
        Ok(results)
    }

    /// Whether a failed push may still have committed: its answer was lost (no answer,
    /// a 5xx, a garbled one), the client was closed while it was in flight, or the
    /// ledger refused a replay of it. Anything else is a refusal: nothing committed.
    fn answer_lost(e: &Error) -> bool {
        e.is_retryable() || matches!(e, Error::Protocol(_) | Error::ClientClosed) || Self::is_fenced(e)
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

/// `ROW_TOO_LARGE` for a write-through write, naming its first row.
fn too_large(queued: &[Queued], why: &str) -> Error {
    let row = queued
        .first()
        .and_then(|q| q.record().ok().map(|r| format!("{}{}", q.table, r.pk)))
        .unwrap_or_default();
    Error::RowTooLarge(format!(
        "a write-through write (to {row}) is larger than the server accepts: {why}; nothing was changed"
    ))
}
