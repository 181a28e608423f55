//! Pull: the server's log after the cursor, applied with the same merge rules.

use serde_json::Value as Json;

use super::{int, text};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Statement, TransactionMode, Value};
use crate::store::sql_error;
use crate::sync::record::Record;
use crate::sync::replica::{finish_savepoint, meta, set_meta, Apply, Replica};
use crate::sync::status::{Event, Outcome};

/// About how many bytes of records one pull page asks for (sqld refuses a result over
/// 10 MB).
pub(crate) const PAGE_BYTES: i64 = 4_000_000;

/// One page of other writers' records after the cursor `?1`: at most `?2` records, cut
/// where the bytes before a record pass `?4` (the first one always comes). Columns:
/// seq, site, rec, and how many records the count alone would have given.
const PAGE_SQL: &str = "SELECT seq, site, rec, asked FROM \
     (SELECT seq, site, rec, count(*) OVER () AS asked, \
     sum(octet_length(rec)) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) - octet_length(rec) AS before \
     FROM (SELECT seq, site, rec FROM _es_log WHERE seq > ?1 AND site <> ?3 ORDER BY seq LIMIT ?2)) \
     WHERE before <= ?4 ORDER BY seq";

impl<T: HttpTransport> Replica<T> {
    /// Pulls the server's log after this replica's cursor and applies it, page by page.
    ///
    /// A page holds at most `pullChunk` records and about [`PAGE_BYTES`] of them (at
    /// least one record); a page the server still refuses as too large is asked for
    /// again at half the bytes, down to one record, which always fits (sqld holds no
    /// value of 5 MB or more, and answers up to 10 MB).
    pub(super) async fn pull_all(&self) -> Result<u64> {
        let mut applied = 0;
        let mut budget = PAGE_BYTES;
        loop {
            let cursor = match meta(&self.store, "cursor")? {
                Some(Value::Integer(c)) => c,
                _ => 0,
            };
            // Only other writers' records cross the network; the log's last sequence
            // number, read in the same transaction, lets the cursor pass this
            // replica's own records without downloading them.
            let size = self.pull_size.get();
            let page = Statement::new(PAGE_SQL)
                .arg(cursor)
                .arg(size as i64)
                .arg(self.site.as_str())
                .arg(budget);
            let top = Statement::new("SELECT coalesce(max(seq), 0) FROM _es_log");
            let mut res = match self
                .remote_batch(&[page, top, self.server_check()], TransactionMode::Read)
                .await
            {
                Err(e) if super::is_too_large(&e) && budget > 0 => {
                    budget /= 2;
                    continue;
                }
                // A timeout makes the next pages smaller (net/pace.rs).
                Err(e) => return Err(self.pull_size.failed(size, e)),
                Ok(res) => res,
            };
            self.pull_size.answered();
            // The server's schema and log as the schema step left them? If not, the
            // page is not applied: the sync goes through that step again (which says
            // SCHEMA_MISMATCH, or re-reads the server after a reset) and pulls again.
            if !self.server_unchanged(&res.pop().unwrap_or_default())? {
                self.inner.borrow_mut().schema_ready = false;
                break;
            }
            let top = res.pop().and_then(|t| t.rows.first().map(|r| int(&r[0]))).unwrap_or(0);
            let rs = res.pop().unwrap_or_default();
            // Cut by bytes, or as many records as asked for: more may follow, and the
            // cursor stops at the page's last record.
            let asked = rs.rows.first().map(|r| int(&r[3]) as usize).unwrap_or(0);
            let more = rs.rows.len() < asked || asked >= size;
            let to = match rs.rows.last() {
                Some(row) if more => int(&row[0]),
                _ => top.max(cursor),
            };
            if rs.rows.is_empty() && to == cursor {
                break;
            }
            applied += self.apply_pulled(&rs, to)?;
            budget = (budget.saturating_mul(2)).min(PAGE_BYTES);
            if !more {
                break;
            }
        }
        let mut st = self.monitor.status.borrow_mut();
        st.last_pull = Some(Outcome {
            at_ms: self.now(),
            ok: true,
            error: None,
        });
        Ok(applied)
    }

    /// Applies one page of the log in one local transaction, moving the cursor to `to`
    /// with it. Records from this replica are skipped (they are already applied).
    pub(super) fn apply_pulled(&self, rs: &ResultSet, to: i64) -> Result<u64> {
        // Writes made while the page was on its way are folded first: applying rebuilds
        // rows, and must never overwrite a write that is not yet in the state tables.
        self.fold_all()?;
        // Runs of consecutive records by the same writer, in log order: the log order is
        // causal (a writer only pushes what it saw after pulling it), and text updates
        // must be merged after the updates they build on.
        let mut groups: Vec<(String, Vec<Record>)> = Vec::new();
        let last = rs.rows.iter().map(|row| int(&row[0])).fold(to, i64::max);
        let mut drift = None;
        for row in &rs.rows {
            let site = text(&row[1]);
            if site == self.site {
                continue;
            }
            let rec: Json = serde_json::from_str(&text(&row[2])).map_err(|e| Error::Protocol(e.to_string()))?;
            let rec = Record::from_json(&rec)?;
            if let Err(e) = self.observe(rec.hlc) {
                drift.get_or_insert(e);
            }
            match groups.last_mut() {
                Some((s, recs)) if *s == site => recs.push(rec),
                _ => groups.push((site, vec![rec])),
            }
        }
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_pull").map_err(sql_error)?;
        let mut count = 0;
        let res = (|| {
            for (site, recs) in &groups {
                let refs: Vec<&Record> = recs.iter().collect();
                self.apply_records(&refs, site, Apply::Remote)?;
                count += recs.len() as u64;
            }
            self.render_back()?;
            set_meta(&self.store, "cursor", &Value::Integer(last))
        })();
        finish_savepoint(conn, "es_pull", res.is_ok())?;
        res?;
        if let Some(e) = drift {
            // Applied (every replica must converge), but the clock did not jump.
            self.emit(Event::Error {
                code: e.code().into(),
                message: e.to_string(),
                retryable: false,
            });
        }
        Ok(count)
    }

    /// For each text cell merged from the server whose merged text differs from the
    /// rendering the server's column holds, queues this replica's rendering (a text
    /// record with no CRDT update) so the server's plain column converges as well.
    pub(crate) fn render_back(&self) -> Result<()> {
        let cells = std::mem::take(&mut *self.text_touched.borrow_mut());
        let conn = self.store.conn();
        let mut out = Vec::new();
        for (t, pk, col) in cells {
            let cell = (t.as_str(), pk.as_str(), col.as_str());
            let doc = crate::sync::fold::load_text(conn, cell, 0)?.text();
            let render = crate::sync::fold::render_of(conn, cell)?;
            // A NULL written over the text deleted it: an empty document renders as
            // that NULL (re-rendering it as "" would undo the write, with a record).
            if render.as_deref() == Some(doc.as_str()) || (render.is_none() && doc.is_empty()) {
                continue;
            }
            let hlc = self.tick();
            crate::sync::fold::set_render(conn, cell, &crate::sync::record::version(hlc, &self.site), &doc)?;
            let mut data = serde_json::Map::new();
            data.insert(col.clone(), serde_json::json!({ "t": doc, "u": "" }));
            out.push(crate::sync::fold::Outgoing {
                record: Record {
                    hlc,
                    table: t.clone(),
                    pk: serde_json::from_str(&pk).unwrap_or(Json::Null),
                    op: 'u',
                    data: Json::Object(data),
                    base: None,
                },
                base_value: None,
            });
        }
        self.apply_own(&out)?;
        Ok(())
    }
}
