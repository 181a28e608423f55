//! Reading through the gateway: bootstrap pages, the readable log, and the scope
//! check that drops rows which left the user's reach and fetches rows which entered it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::gateway::digest::digest;
use crate::gateway::protocol::{
    BootstrapRequest, BootstrapResponse, PullRequest, PullResponse, ScopeRequest, ScopeResponse,
};
use crate::remote::{HttpTransport, ResultSet, Value};
use crate::store::sql_error;
use crate::sync::replica::{finish_savepoint, meta, set_meta, CaptureOff, Replica};
use crate::sync::rows;
use crate::sync::status::Outcome;

impl<T: HttpTransport> Replica<T> {
    /// Loads the readable rows of tables not bootstrapped yet, page by page, merged
    /// into the local state (local changes made before the first sync are kept). The
    /// first page read sets the pull cursor if there is none.
    pub(super) async fn gateway_bootstrap(&self) -> Result<()> {
        for table in self.tables() {
            if meta(&self.store, &format!("boot:{table}"))?.is_some() {
                continue;
            }
            let Some(spec) = self.spec_of(&table) else { continue };
            let mut after: Option<String> = None;
            loop {
                let size = self.pull_size.get();
                let req = BootstrapRequest {
                    table: table.clone(),
                    after: after.clone(),
                    limit: Some(size),
                };
                // A timeout makes the next pages smaller (net/pace.rs).
                let page: BootstrapResponse = match self.gateway_call("bootstrap", &req).await {
                    Ok(p) => p,
                    Err(e) => return Err(self.pull_size.failed(size, e)),
                };
                self.pull_size.answered();
                self.fold_all()?;
                let conn = self.store.conn();
                conn.execute_batch("SAVEPOINT es_boot").map_err(sql_error)?;
                let res = (|| {
                    if let Some(ts) = page.state.tables.get(&table) {
                        self.load_gateway_state(&spec, ts)?;
                    }
                    if meta(&self.store, "cursor")?.is_none() {
                        set_meta(&self.store, "cursor", &Value::Integer(page.cursor))?;
                    }
                    if page.after.is_none() {
                        set_meta(&self.store, &format!("boot:{table}"), &Value::Integer(1))?;
                    }
                    Ok(())
                })();
                finish_savepoint(conn, "es_boot", res.is_ok())?;
                res?;
                match page.after {
                    Some(a) if Some(&a) != after.as_ref() => after = Some(a),
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Pulls the readable log after the cursor and applies it as a direct pull does.
    pub(super) async fn gateway_pull_all(&self) -> Result<(u64, Option<BTreeMap<String, String>>)> {
        let mut applied = 0;
        let mut digests: Option<BTreeMap<String, String>>;
        loop {
            let cursor = match meta(&self.store, "cursor")? {
                Some(Value::Integer(c)) => c,
                _ => 0,
            };
            let size = self.pull_size.get();
            let req = PullRequest {
                site: self.site.clone(),
                cursor,
                limit: Some(size),
                tables: Some(self.tables()),
                digests: true,
            };
            let page: PullResponse = match self.gateway_call("pull", &req).await {
                Ok(p) => p,
                Err(e) => return Err(self.pull_size.failed(size, e)),
            };
            self.pull_size.answered();
            digests = page.digests.clone();
            // The server as the schema step saw it? If not, the page is not applied:
            // the sync goes through that step again (see `gateway_sync`).
            let seen = super::fingerprint(&page.epoch, &page.version);
            if self.inner.borrow().server_fingerprint.as_deref() != Some(seen.as_str()) {
                self.inner.borrow_mut().schema_ready = false;
                digests = None;
                break;
            }
            if page.records.is_empty() && page.cursor == cursor {
                break;
            }
            let rs = ResultSet {
                columns: ["seq", "site", "rec"].map(String::from).to_vec(),
                rows: page
                    .records
                    .iter()
                    .map(|(seq, site, rec)| {
                        vec![
                            Value::Integer(*seq),
                            Value::Text(site.clone()),
                            Value::Text(rec.to_string()),
                        ]
                    })
                    .collect(),
                ..Default::default()
            };
            applied += self.apply_pulled(&rs, page.cursor.max(cursor))?;
            if !page.more {
                break;
            }
        }
        let mut st = self.monitor.status.borrow_mut();
        st.last_pull = Some(Outcome {
            at_ms: self.now(),
            ok: true,
            error: None,
        });
        Ok((applied, digests))
    }

    /// The keys of the live rows of `table` this replica holds, without those it has
    /// changes of still to push (the server cannot know them yet).
    fn held_keys(&self, table: &str) -> Result<BTreeSet<String>> {
        let conn = self.store.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT pk FROM {} WHERE _live = 1 EXCEPT SELECT json(rec -> 2) FROM _es_outbox WHERE rec ->> 1 = ?1",
                rows::shadow(table)
            ))
            .map_err(sql_error)?;
        // Inserted one by one: `collect()` would compile a sort of its own (src/sort.rs).
        let mut keys = BTreeSet::new();
        for row in stmt.query_map([table], |r| r.get::<_, String>(0)).map_err(sql_error)? {
            keys.insert(row.map_err(sql_error)?);
        }
        Ok(keys)
    }

    /// Asks whether this replica holds exactly the rows the user may read; where not,
    /// drops the rows beyond them and fetches the missing ones. `server`: the digests
    /// the last pull page carried — when they are this replica's, nothing is asked.
    pub(super) async fn gateway_scope(&self, server: Option<BTreeMap<String, String>>) -> Result<()> {
        self.fold_all()?;
        let cursor = match meta(&self.store, "cursor")? {
            Some(Value::Integer(c)) => c,
            _ => 0,
        };
        let mut held = BTreeMap::new();
        let mut digests = BTreeMap::new();
        for t in self.tables() {
            let keys = self.held_keys(&t)?;
            digests.insert(t.clone(), digest(keys.iter().map(String::as_str)));
            held.insert(t, keys);
        }
        if digests.is_empty() || server.as_ref() == Some(&digests) {
            return Ok(());
        }
        let req = ScopeRequest {
            site: self.site.clone(),
            cursor,
            digests,
        };
        let resp: ScopeResponse = self.gateway_call("scope", &req).await?;
        if resp.stale {
            return Ok(()); // the log moved on: the next sync pulls, then checks again
        }
        for (table, readable) in resp.tables {
            let Some(spec) = self.spec_of(&table) else { continue };
            // Held keys are re-read now: writes made while the request was out must
            // not be dropped.
            self.fold_all()?;
            let now_held = self.held_keys(&table)?;
            let was_held = held.remove(&table).unwrap_or_default();
            // Inserted one by one: `collect()` would compile a sort of its own (src/sort.rs).
            let mut readable_set = BTreeSet::new();
            for k in readable {
                readable_set.insert(k);
            }
            let readable = readable_set;
            let gone: Vec<String> = now_held
                .iter()
                .filter(|k| was_held.contains(*k) && !readable.contains(*k))
                .cloned()
                .collect();
            if !gone.is_empty() {
                let conn = self.store.conn();
                conn.execute_batch("SAVEPOINT es_scope").map_err(sql_error)?;
                let res = {
                    let _off = CaptureOff::new(&self.capture);
                    self.evict(&spec, &gone)
                };
                finish_savepoint(conn, "es_scope", res.is_ok())?;
                res?;
            }
            let missing: Vec<Json> = readable
                .iter()
                .filter(|k| !now_held.contains(*k))
                .map(|k| serde_json::from_str(k).map_err(|e| Error::Protocol(e.to_string())))
                .collect::<Result<_>>()?;
            for part in missing.chunks(self.pull_size.get()) {
                let state = self.gateway_rows(&table, part).await?;
                self.fold_all()?;
                if let Some(ts) = state.tables.get(&table) {
                    let conn = self.store.conn();
                    conn.execute_batch("SAVEPOINT es_scope").map_err(sql_error)?;
                    let res = self.load_gateway_state(&spec, ts);
                    finish_savepoint(conn, "es_scope", res.is_ok())?;
                    res?;
                }
            }
        }
        Ok(())
    }
}
