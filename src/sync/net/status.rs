//! Status and metrics accessors.

use super::{BACKOFF_BASE_MS, BACKOFF_MAX_MS};
use crate::error::Result;
use crate::remote::{HttpTransport, Value};
use crate::store::sql_error;
use crate::sync::replica::{meta, Replica};
use crate::sync::status::{backoff_ms, Metrics, Status};

impl<T: HttpTransport> Replica<T> {
    /// The replica's sync status.
    pub fn status(&self) -> Result<Status> {
        let (pending, oldest): (i64, Option<i64>) = self
            .store
            .conn()
            .query_row(
                "SELECT (SELECT count(*) FROM _es_outbox) + (SELECT count(*) FROM _es_capture)
                        + (SELECT count(*) FROM _es_held),
                        min(coalesce((SELECT min(hlc) FROM _es_outbox), (SELECT min(hlc) FROM _es_capture)),
                            coalesce((SELECT min(hlc) FROM _es_capture), (SELECT min(hlc) FROM _es_outbox)))",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql_error)?;
        let mut st = self.monitor.status.borrow().clone();
        st.pending = pending as u64;
        st.in_doubt = self.writes_in_doubt()?;
        st.rejected = self
            .store
            .conn()
            .query_row("SELECT count(*) FROM _es_rejected", [], |r| r.get::<_, i64>(0))
            .map_err(sql_error)? as u64;
        let now = self.now();
        st.lag_ms = oldest.map(|h| now.saturating_sub((h >> 16) as u64)).unwrap_or(0);
        st.cursor = match meta(&self.store, "cursor")? {
            Some(Value::Integer(c)) => c,
            _ => 0,
        };
        st.next_sync_in_ms = if st.retries == 0 { 0 } else { self.retry_delay_ms() };
        Ok(st)
    }

    /// The back-off before the next background attempt after a failed sync: read from
    /// memory only, so a database that keeps erroring (where `status()` fails) still
    /// gets the normal back-off, never a zero delay that would retry in a tight loop.
    /// With no failure recorded it is the first step's (a retry always waits).
    pub fn retry_delay_ms(&self) -> u64 {
        let retries = self.monitor.status.borrow().retries;
        backoff_ms(
            retries.saturating_sub(1),
            BACKOFF_BASE_MS,
            BACKOFF_MAX_MS,
            ((self.env.random)() % 1000) as f64 / 1000.0,
        )
    }

    /// Metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> Result<String> {
        let st = self.status()?;
        Ok(self.metrics().prometheus(&st))
    }

    pub fn metrics(&self) -> Metrics {
        let mut m = self.monitor.metrics.borrow().clone();
        if let Some(r) = &self.remote {
            (m.http_requests, m.bytes_sent) = r.traffic();
        }
        m
    }
}
