//! The sync loop: `sync()` folds, checks the schema, bootstraps, settles doubts,
//! pushes and pulls, and records the outcome in the status and the events.

use crate::error::Result;
use crate::remote::HttpTransport;
use crate::store::sql_error;
use crate::sync::replica::Replica;
use crate::sync::status::{Event, Outcome};

use super::SyncReport;

impl<T: HttpTransport> Replica<T> {
    /// Pushes local changes, then pulls and applies everyone else's. Safe to call at
    /// any time; on failure nothing is lost (the outbox keeps the changes) and the
    /// status shows when the next attempt is due.
    pub async fn sync(&self) -> Result<SyncReport> {
        let start = self.now();
        let res = self.sync_inner().await;
        if let Err(crate::error::Error::Sql { .. }) = &res {
            // The server's tables may have changed under this replica (an internal
            // table dropped, say): the next sync goes through the schema step again.
            self.inner.borrow_mut().schema_ready = false;
        }
        if res.is_err() {
            // Offline or failed: the captures still become outbox records now (their
            // error, if folding is what failed, is already in `res`).
            let _ = self.fold_all();
        }
        let end = self.now();
        let duration_ms = end.saturating_sub(start) as f64;
        self.monitor.record_sync(res.is_ok(), duration_ms);
        let _ = self.save_clock();
        {
            let mut st = self.monitor.status.borrow_mut();
            match &res {
                Ok(_) => {
                    st.retries = 0;
                    st.online = true;
                    st.last_push = Some(Outcome {
                        at_ms: end,
                        ok: true,
                        error: None,
                    });
                    st.last_pull = Some(Outcome {
                        at_ms: end,
                        ok: true,
                        error: None,
                    });
                }
                Err(e) => {
                    st.retries = st.retries.saturating_add(1);
                    st.online = !e.is_retryable();
                    let o = Some(Outcome {
                        at_ms: end,
                        ok: false,
                        error: Some(e.code().to_string()),
                    });
                    if st.last_push.as_ref().is_none_or(|p| p.at_ms < start) {
                        st.last_push = o.clone();
                    }
                    st.last_pull = o;
                }
            }
        }
        match res {
            Ok((pushed, applied)) => {
                let report = SyncReport {
                    changes_pushed: pushed,
                    changes_applied: applied,
                    duration_ms,
                };
                let mut m = self.monitor.metrics.borrow_mut();
                m.changes_pushed += pushed;
                m.changes_applied += applied;
                drop(m);
                self.emit(Event::Completed {
                    changes_pushed: pushed,
                    changes_applied: applied,
                    duration_ms,
                });
                Ok(report)
            }
            Err(e) => {
                self.emit(Event::Error {
                    code: e.code().into(),
                    message: e.to_string(),
                    retryable: e.is_retryable(),
                });
                Err(e)
            }
        }
    }

    pub(super) async fn sync_inner(&self) -> Result<(u64, u64)> {
        self.remote()?;
        if self.via_gateway() {
            return self.gateway_sync().await;
        }
        // One batch now; the rest is folded while the first chunks are on the wire.
        self.fold_batch()?;
        // Conflicts held for a resolver registered since (normally done by replicate()).
        self.resolve_held()?;
        let (mut pushed, mut applied) = (0, 0);
        // A pull that finds the server's tables changed since the schema step (see
        // net/schema.rs) sends the sync through it once more.
        for attempt in 0..2 {
            if !self.inner.borrow().schema_ready {
                match self.ensure_schema().await {
                    // The syncUrl is an edgesync Worker: sync through its gateway.
                    Err(_) if self.via_gateway() => return self.gateway_sync().await,
                    r => r?,
                }
            }
            self.bootstrap().await?;
            if attempt == 0 {
                // Writes in doubt are settled (the one a running write-through call
                // owns is left to it); those that cannot be settled now stay for the
                // next sync.
                self.settle_writes(self.write_in_flight()?).await?;
                pushed += self.push_all().await?;
            }
            applied += self.pull_all().await?;
            if self.inner.borrow().schema_ready {
                break;
            }
            if attempt == 1 {
                return Err(crate::error::Error::SchemaMismatch(
                    "the server's tables changed during the sync: sync again".into(),
                ));
            }
        }
        // Conflict resolutions found while pushing are queued again: push them now.
        if self.fold_all()? > 0 || self.pending_outbox()? > 0 {
            pushed += self.push_all().await?;
        }
        self.refresh_mirrors().await?;
        // Changes set aside as too large (by this sync, or by a write-through call's
        // push of earlier changes) are reported now that everything else is done.
        let rejected = std::mem::take(&mut *self.monitor.rejected.borrow_mut());
        if let Some(e) = rejected.into_iter().next() {
            return Err(e);
        }
        Ok((pushed, applied))
    }

    pub(super) fn pending_outbox(&self) -> Result<u64> {
        self.store
            .conn()
            .query_row("SELECT count(*) FROM _es_outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(sql_error)
    }
}
