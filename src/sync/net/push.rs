//! Push: the outbox, chunk by chunk, each chunk one atomic Hrana batch whose
//! statements are the merge rules; custom-column conflicts resolved from the answer.

use rusqlite::params;
use serde_json::Value as Json;

use super::{int, poll_once, record_head, text, Queued};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Statement, TransactionMode};
use crate::store::sql_error;
use crate::sync::chunk;
use crate::sync::fold::encode_base;
use crate::sync::policy::TableSpec;
use crate::sync::record::{decode_row, decode_value, encode_value, Record};
use crate::sync::replica::{finish_savepoint, Apply, Replica};
use crate::sync::status::{Event, Outcome};

/// The most bytes of records (their JSON) one push chunk carries: sqld refuses a value
/// of 5,000,000 bytes or more, and a chunk travels as one value.
pub(super) const CHUNK_BYTES: usize = 4_000_000;
/// A record whose chunk alone (`[record]`) reaches this can never be pushed.
pub(super) const RECORD_BYTES: usize = 5_000_000;

/// How many of `queued`'s first records fit in `budget` bytes of chunk (at least one).
pub(super) fn fit(queued: &[Queued], budget: usize) -> usize {
    let mut used = 2;
    for (i, q) in queued.iter().enumerate() {
        used += q.json.len() + 1;
        if used > budget {
            return i.max(1);
        }
    }
    queued.len()
}

impl<T: HttpTransport> Replica<T> {
    pub(super) fn read_outbox(&self, limit: usize) -> Result<Vec<Queued>> {
        self.read_outbox_after(0, limit)
    }

    /// The next `limit` outbox rows after id `after`.
    pub(super) fn read_outbox_after(&self, after: i64, limit: usize) -> Result<Vec<Queued>> {
        self.read_queued("_es_outbox", after, limit)
    }

    /// The next `limit` rows after id `after` of a table of queued records (`id`, `rec`,
    /// `base`: the outbox, or the held conflicts of `held.rs`).
    pub(super) fn read_queued(&self, table: &str, after: i64, limit: usize) -> Result<Vec<Queued>> {
        let mut stmt = self
            .store
            .conn()
            .prepare_cached(&format!(
                "SELECT id, rec, base FROM {table} WHERE id > ?2 ORDER BY id LIMIT ?1"
            ))
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([limit as i64, after], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            })
            .map_err(sql_error)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json, base) = row.map_err(sql_error)?;
            let (table, op) = record_head(&json)?;
            let base = match base {
                Some(b) => decode_row(&b)?.into_iter().next(),
                None => None,
            };
            out.push(Queued {
                id,
                table,
                op,
                json,
                base,
            });
        }
        Ok(out)
    }

    /// Pushes the whole outbox, chunk by chunk. Each chunk is one atomic batch; a chunk
    /// is removed from the outbox only after the server confirmed it, and a retried
    /// chunk is harmless (record ids are unique in the log, every rule idempotent).
    ///
    /// Chunks are sized by bytes as well as by count ([`CHUNK_BYTES`]), and one the
    /// server still refuses as too large is split in halves until it fits. A single
    /// change the server cannot take is set aside with `ROW_TOO_LARGE` (see
    /// [`Self::reject`]); the rest of the outbox goes on.
    pub(super) async fn push_all(&self) -> Result<u64> {
        let mut pushed = 0;
        // Records per chunk: the pace's size (net/pace.rs: smaller after timeouts),
        // halved further while the server refuses chunks as too large, grown back after
        // each success.
        let mut cap = self.push_size.get();
        for _round in 0..100_000 {
            let mut queued = self.read_outbox(cap.min(self.push_size.get()))?;
            if queued.is_empty() {
                if self.fold_batch()?.is_none() {
                    break;
                }
                continue;
            }
            queued.truncate(fit(&queued, CHUNK_BYTES));
            if queued.len() == 1 && queued[0].json.len() + 2 > RECORD_BYTES {
                self.reject(
                    &queued[0],
                    "its change record is larger than a value the server accepts",
                )?;
                continue;
            }
            // The request is started, then the next captures are folded while the
            // server merges this chunk (a fold failure is reported after the chunk's
            // answer is handled: the chunk may well have been committed).
            let (conflicts, folded) = {
                let mut push = std::pin::pin!(self.push_records(&queued, &[]));
                match poll_once(&mut push).await {
                    Some(res) => (res, Ok(None)),
                    None => {
                        self.remote()?.transport().idle().await;
                        let folded = self.fold_batch();
                        (push.await, folded)
                    }
                }
            };
            let conflicts = match conflicts {
                Err(e) if super::is_too_large(&e) => {
                    // Refused whole (nothing committed): smaller chunks, or the one
                    // change that cannot go.
                    folded?;
                    if queued.len() > 1 {
                        cap = queued.len() / 2;
                    } else {
                        self.reject(&queued[0], &format!("the server refused it as too large ({e})"))?;
                    }
                    continue;
                }
                Err(e) => {
                    // A timeout makes the next chunks smaller (the chunk may still have
                    // committed: pushing its records again changes nothing).
                    return Err(self.push_size.failed(queued.len(), e));
                }
                Ok(c) => c,
            };
            self.push_size.answered();
            cap = (cap.saturating_mul(2)).min(self.push_size.get());
            if !conflicts.rows.is_empty() {
                self.fold_all()?;
            }
            let last = queued.last().map(|q| q.id).unwrap_or(0);
            pushed += queued.len() as u64;
            let conn = self.store.conn();
            conn.execute_batch("SAVEPOINT es_push").map_err(sql_error)?;
            let res = (|| {
                conn.execute("DELETE FROM _es_outbox WHERE id <= ?1", [last])
                    .map_err(sql_error)?;
                self.resolve_conflicts(&queued, &conflicts, true)
            })();
            finish_savepoint(conn, "es_push", res.is_ok())?;
            res?;
            folded?;
        }
        let mut st = self.monitor.status.borrow_mut();
        st.last_push = Some(Outcome {
            at_ms: self.now(),
            ok: true,
            error: None,
        });
        Ok(pushed)
    }

    /// Sets aside a change the server can never take: out of the outbox, into
    /// `_es_rejected` (kept for the application to see), in one local transaction. The
    /// sync that does it reports `ROW_TOO_LARGE` once everything else is done.
    fn reject(&self, q: &Queued, why: &str) -> Result<()> {
        let rec = q.record()?;
        let err = Error::RowTooLarge(format!(
            "the change to {}{} ({} bytes) cannot be pushed: {why}; it is set aside (_es_rejected), write a smaller value",
            q.table,
            rec.pk,
            q.json.len()
        ));
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_reject").map_err(sql_error)?;
        let res = (|| {
            conn.execute("DELETE FROM _es_outbox WHERE id = ?1", [q.id])
                .map_err(sql_error)?;
            conn.execute(
                "INSERT INTO _es_rejected (at, code, message, rec) VALUES (?1, ?2, ?3, ?4)",
                params![self.now() as i64, err.code(), err.to_string(), q.json],
            )
            .map_err(sql_error)?;
            Ok(())
        })();
        finish_savepoint(conn, "es_reject", res.is_ok())?;
        res?;
        self.monitor.rejected.borrow_mut().push(err);
        Ok(())
    }

    /// Sends one chunk; returns the custom-column conflicts the server reported.
    /// `first`: statements that go before the chunk in the same transaction (the
    /// write-through ledger).
    /// The batch is the chunk's server merge ([`chunk::server_merge`]).
    pub(super) async fn push_records(&self, queued: &[Queued], first: &[Statement]) -> Result<ResultSet> {
        let (stmts, conflict_steps) = {
            let inner = self.inner.borrow();
            let json = crate::sync::replica::chunk_json(queued.iter().map(|q| q.json.as_str()));
            let mut names: Vec<&str> = queued.iter().map(|q| q.table.as_str()).collect();
            crate::sort::sort(&mut names);
            names.dedup();
            let specs: Vec<&TableSpec> = names.iter().filter_map(|n| inner.tables.get(*n)).collect();
            let deletes = |t: &str| queued.iter().any(|q| q.op == 'd' && q.table == t);
            let m = chunk::server_merge(&specs, json, self.site.as_str(), &deletes);
            let mut stmts = first.to_vec();
            let base = stmts.len() + 1;
            stmts.push(m.store);
            stmts.extend(m.merge);
            (
                stmts,
                m.conflict_steps.into_iter().map(|i| i + base).collect::<Vec<_>>(),
            )
        };
        let mut results = self.remote_batch(&stmts, TransactionMode::Write).await?;
        let mut conflicts = ResultSet::default();
        for i in conflict_steps {
            let rs = std::mem::take(&mut results[i]);
            if conflicts.columns.is_empty() {
                conflicts.columns = rs.columns;
            }
            conflicts.rows.extend(rs.rows);
        }
        Ok(conflicts)
    }

    /// For each custom value that lost its compare-and-set: ask the resolver (or take
    /// the server's value when there is none), write the result locally and queue it
    /// against the server's version.
    pub(super) fn resolve_conflicts(&self, queued: &[Queued], conflicts: &ResultSet, queue: bool) -> Result<()> {
        if conflicts.rows.is_empty() {
            return Ok(());
        }
        // Only custom records can conflict: parse just those.
        let custom = queued
            .iter()
            .filter(|q| q.op == 'x')
            .map(|q| Ok((q, q.record()?)))
            .collect::<Result<Vec<(&Queued, Record)>>>()?;
        for row in &conflicts.rows {
            let (hlc, table, pk, col) = (int(&row[0]), text(&row[1]), text(&row[2]), text(&row[3]));
            let (remote, remote_ver) = (row[4].clone(), text(&row[5]));
            let Some((q, record)) = custom
                .iter()
                .find(|(_, r)| r.hlc == hlc && r.table == table && r.data.get(&col).is_some())
            else {
                continue;
            };
            if self.must_hold(&table, &col) {
                // Its resolver is not registered yet: resolved once it is (net/held.rs).
                self.hold_conflict(q, &col, &remote, &remote_ver)?;
                continue;
            }
            let local = decode_value(&record.data[&col]);
            // The resolver is the application's code: it may call back into this
            // replica (replicate(), status()), so no borrow is held while it runs.
            let resolver = self
                .inner
                .borrow()
                .resolvers
                .get(&(table.clone(), col.clone()))
                .cloned();
            let resolved = match resolver {
                Some(f) => f(&local, &remote, q.base.as_ref())?,
                None => remote.clone(),
            };
            if let Ok(h) = i64::from_str_radix(remote_ver.get(..16).unwrap_or("0"), 16) {
                let _ = self.observe(h);
            }
            let mut data = serde_json::Map::new();
            data.insert(col.clone(), encode_value(&resolved));
            let rec = Record {
                hlc: self.tick(),
                table: table.clone(),
                pk: record.pk.clone(),
                op: 'x',
                data: Json::Object(data),
                base: Some(remote_ver),
            };
            self.apply_records(&[&rec], &self.site, Apply::Rebuild)?;
            if queue {
                self.store
                    .conn()
                    .prepare_cached("INSERT INTO _es_outbox (hlc, rec, base) VALUES (?1, ?2, ?3)")
                    .map_err(sql_error)?
                    .execute(params![
                        rec.hlc,
                        rec.to_json().to_string(),
                        encode_base(&Some(remote.clone()))
                    ])
                    .map_err(sql_error)?;
            }
            self.monitor.metrics.borrow_mut().conflicts += 1;
            self.emit(Event::Conflict {
                table,
                pk,
                column: col,
                local,
                remote,
                base: q.base.clone(),
                resolved,
            });
        }
        Ok(())
    }
}
