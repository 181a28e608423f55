//! Pushing through the gateway: the outbox chunk by chunk, as records; refused
//! records dropped and their rows put back to the server's version.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::super::push::{fit, CHUNK_BYTES};
use super::super::{poll_once, Queued};
use crate::error::{Error, Result};
use crate::gateway::protocol::{server_time, PushResponse, Refusal, RowsRequest, State};
use crate::remote::{HttpTransport, ResultSet};
use crate::store::sql_error;
use crate::sync::record::{decode_value, Record};
use crate::sync::replica::{finish_savepoint, Apply, CaptureOff, Replica};
use crate::sync::status::{Event, Outcome};

/// A push request on its way.
type PushCall<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<PushResponse>> + 'a>>;
/// A chunk and its push request.
type InFlight<'a> = (Vec<Queued>, PushCall<'a>);

impl<T: HttpTransport> Replica<T> {
    /// Pushes the whole outbox. A chunk the gateway finds too large is halved; one
    /// record it can never take is refused like a rule refusal (it would block the
    /// outbox forever otherwise).
    pub(super) async fn gateway_push_all(&self) -> Result<u64> {
        let mut pushed = 0;
        // The pace's size (net/pace.rs: smaller after timeouts), halved while the
        // gateway finds chunks too large.
        let mut chunk = self.push_size.get();
        // Two chunks are in flight at once: the Worker checks the next one while the
        // primary merges this one. Answers are handled in order, so "the outbox up to
        // this chunk's last id" stays exact; after a failure the chunk in flight is
        // dropped (it may still commit: its records stay queued and are pushed again,
        // which changes nothing).
        let mut next: Option<InFlight<'_>> = None;
        for _round in 0..100_000 {
            let (queued, mut call) = match next.take() {
                Some(f) => f,
                None => {
                    let mut queued = self.read_outbox(chunk)?;
                    // Sized by bytes as a direct push's chunks are: the gateway stores
                    // the accepted records as one value on the server.
                    queued.truncate(fit(&queued, CHUNK_BYTES));
                    if queued.is_empty() {
                        if self.fold_batch()?.is_none() {
                            break;
                        }
                        continue;
                    }
                    let call = self.start_push(&queued);
                    (queued, call)
                }
            };
            let last = queued.last().map(|q| q.id).unwrap_or(0);
            let mut started = poll_once(&mut call).await;
            // As for a direct push: the next captures are folded while the chunk is at
            // the Worker (a fold failure is reported after the answer is handled) —
            // before the next chunk is read, so that it can be one of them.
            let folded = if started.is_none() {
                self.remote()?.transport().idle().await;
                self.fold_batch()
            } else {
                Ok(None)
            };
            if started.is_none() && folded.is_ok() {
                let mut following = self.read_outbox_after(last, chunk)?;
                following.truncate(fit(&following, CHUNK_BYTES));
                if !following.is_empty() {
                    let mut call2 = self.start_push(&following);
                    if let Some(done) = poll_once(&mut call2).await {
                        call2 = Box::pin(std::future::ready(done));
                    }
                    next = Some((following, call2));
                }
            }
            let answer = match started.take() {
                Some(a) => a,
                None => call.await,
            };
            let resp: PushResponse = match answer {
                Ok(r) => r,
                // This device's clock runs ahead of the Worker's: nothing is dropped
                // (the records stay queued and are pushed again at a later sync); new
                // writes take the server's time from now on, as after a direct sync.
                Err(Error::Server { status: 409, message }) if message.starts_with("CLOCK_DRIFT") => {
                    let Some(ms) = server_time(&message) else {
                        return Err(Error::Server { status: 409, message });
                    };
                    let changed = self.correct_clock(ms)?;
                    let max_drift_ms = self
                        .capture
                        .clock
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .max_drift_ms();
                    return Err(changed.unwrap_or(Error::LocalClockSkew {
                        skew_ms: self.now() as i64 - ms as i64,
                        max_drift_ms,
                    }));
                }
                Err(Error::Server { status: 413, .. }) if queued.len() > 1 => {
                    next = None;
                    chunk = (queued.len() / 2).max(1);
                    continue;
                }
                Err(Error::Server { status: 413, message }) => {
                    next = None;
                    let q = &queued[0];
                    let rec = q.record()?;
                    let restore = self.gateway_rows(&rec.table, std::slice::from_ref(&rec.pk)).await?;
                    PushResponse {
                        accepted: 0,
                        refused: vec![Refusal {
                            index: 0,
                            table: rec.table,
                            pk: rec.pk,
                            op: rec.op.to_string(),
                            code: "BODY_TOO_LARGE".into(),
                            reason: message,
                        }],
                        conflicts: Vec::new(),
                        restore,
                        changed: Vec::new(),
                    }
                }
                // A timeout makes the next chunks smaller (net/pace.rs).
                Err(e) => return Err(self.push_size.failed(queued.len(), e)),
            };
            self.push_size.answered();
            pushed += resp.accepted as u64;
            self.gateway_pushed(&queued, resp)?;
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

    /// The push request of `queued` (a `PushRequest` with the outbox's record texts
    /// spliced in as they are), not sent until polled.
    fn start_push(&self, queued: &[Queued]) -> PushCall<'_> {
        let mut body = format!("{{\"site\":{},\"records\":[", Json::from(self.site.as_str()));
        for (i, q) in queued.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&q.json);
        }
        body.push_str("]}");
        Box::pin(self.gateway_call_raw::<PushResponse>("push", body.into_bytes()))
    }

    /// The state of some rows the user may read, from the gateway.
    pub(super) async fn gateway_rows(&self, table: &str, pks: &[Json]) -> Result<State> {
        let mut tables = BTreeMap::new();
        tables.insert(table.to_string(), pks.to_vec());
        self.gateway_call("rows", &RowsRequest { tables }).await
    }

    /// After a chunk's answer: the chunk leaves the outbox; custom conflicts are
    /// resolved as for a direct push; refused rows are restored to the server's state
    /// and then given back this replica's later, still queued records; `sync:refused`.
    fn gateway_pushed(&self, queued: &[Queued], resp: PushResponse) -> Result<()> {
        // Writes not folded yet are in the table but not in the state: fold them
        // first, or restoring a row from the state would overwrite them (and, as for
        // a direct push, before conflicts are resolved). Only then: folding the whole
        // outbox after every chunk held the next chunk back for as long.
        if !resp.refused.is_empty() || !resp.conflicts.is_empty() {
            self.fold_all()?;
        }
        let conflicts = ResultSet {
            columns: ["hlc", "tbl", "pk", "col", "val", "ver"].map(String::from).to_vec(),
            rows: resp
                .conflicts
                .iter()
                .map(|c| {
                    c.as_array()
                        .map(|a| a.iter().map(decode_value).collect())
                        .unwrap_or_default()
                })
                .collect(),
            ..Default::default()
        };
        let last = queued.last().map(|q| q.id).unwrap_or(0);
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_push").map_err(sql_error)?;
        let res = (|| {
            conn.execute("DELETE FROM _es_outbox WHERE id <= ?1", [last])
                .map_err(sql_error)?;
            self.resolve_conflicts(queued, &conflicts, true)?;
            self.restore_refused(&resp)
        })();
        finish_savepoint(conn, "es_push", res.is_ok())?;
        res?;
        for r in &resp.refused {
            self.emit(Event::Refused {
                table: r.table.clone(),
                pk: r.pk.to_string(),
                op: r.op.clone(),
                code: r.code.clone(),
                reason: r.reason.clone(),
            });
        }
        Ok(())
    }

    /// Puts the refused rows back to the server's version (dropping those the user
    /// may not read), then re-applies this replica's queued records of those rows.
    fn restore_refused(&self, resp: &PushResponse) -> Result<()> {
        let mut by_table: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in &resp.refused {
            if r.pk.is_array() {
                by_table.entry(r.table.as_str()).or_default().push(r.pk.to_string());
            }
        }
        for (table, mut pks) in by_table {
            let Some(spec) = self.spec_of(table) else { continue };
            crate::sort::sort(&mut pks);
            pks.dedup();
            {
                let _off = CaptureOff::new(&self.capture);
                self.evict(&spec, &pks)?;
            }
            if let Some(ts) = resp.restore.tables.get(table) {
                self.load_gateway_state(&spec, ts)?;
            }
            // Later records of these rows are still queued: the row shows them again.
            let list = serde_json::to_string(&pks).map_err(|e| Error::Protocol(e.to_string()))?;
            let later: Vec<Record> = {
                let conn = self.store.conn();
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT rec FROM _es_outbox WHERE rec ->> 1 = ?1 AND json(rec -> 2) IN (SELECT value FROM json_each(?2)) ORDER BY id",
                    )
                    .map_err(sql_error)?;
                let rows = stmt
                    .query_map(rusqlite::params![table, list], |r| r.get::<_, String>(0))
                    .map_err(sql_error)?;
                let mut out = Vec::new();
                for row in rows {
                    let j: Json =
                        serde_json::from_str(&row.map_err(sql_error)?).map_err(|e| Error::Protocol(e.to_string()))?;
                    out.push(Record::from_json(&j)?);
                }
                out
            };
            if !later.is_empty() {
                let refs: Vec<&Record> = later.iter().collect();
                self.apply_records(&refs, &self.site, Apply::Rebuild)?;
            }
        }
        Ok(())
    }
}
