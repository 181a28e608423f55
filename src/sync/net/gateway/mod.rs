//! The replica's side of the edge sync gateway ([`crate::gateway`]).
//!
//! A replica whose `syncUrl` is an edgesync Worker (it answers Hrana with
//! [`crate::gateway::protocol::USE_GATEWAY`]) syncs through the Worker's records
//! protocol with the user's token; nothing else in its configuration changes. The
//! steps are the direct sync's, on the same local state:
//!
//! - `schema.rs`-like check: the tables the gateway syncs must match the local ones;
//! - bootstrap page by page (`pull.rs`), merged as the direct bootstrap merges;
//! - push chunk by chunk (`push.rs`): refused records leave the outbox, their rows go
//!   back to the server's version, and `sync:refused` is emitted;
//! - pull the readable log, then a scope check: rows that left the user's reach are
//!   dropped, rows that entered it are fetched (`pull.rs`).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::gateway::protocol::{SchemaResponse, TableState, PREFIX, PROTOCOL};
use crate::remote::{HttpTransport, Value};
use crate::store::sql_error;
use crate::sync::record::{decode_value, Record};
use crate::sync::replica::{CaptureOff, Replica};
use crate::sync::rows;
use crate::sync::TableSpec;

mod pull;
mod push;

impl<T: HttpTransport> Replica<T> {
    /// Whether this replica syncs through an edge gateway.
    pub(crate) fn via_gateway(&self) -> bool {
        self.remote.as_ref().is_some_and(|r| r.is_gateway())
    }

    /// One step of the records protocol.
    async fn gateway_call<Q: Serialize, A: DeserializeOwned>(&self, step: &str, req: &Q) -> Result<A> {
        let body = serde_json::to_vec(req).map_err(|e| Error::Protocol(e.to_string()))?;
        self.gateway_call_raw(step, body).await
    }

    /// [`Self::gateway_call`] with the request already encoded.
    async fn gateway_call_raw<A: DeserializeOwned>(&self, step: &str, body: Vec<u8>) -> Result<A> {
        let out = self.remote()?.post_json(&format!("{PREFIX}/{step}"), body).await?;
        serde_json::from_slice(&out).map_err(|e| Error::Protocol(format!("bad answer to {step}: {e}")))
    }

    /// `sync()` through the gateway.
    pub(in crate::sync::net) async fn gateway_sync(&self) -> Result<(u64, u64)> {
        self.fold_batch()?;
        if !self.inner.borrow().schema_ready {
            self.gateway_schema().await?;
        }
        self.gateway_bootstrap().await?;
        let mut pushed = self.gateway_push_all().await?;
        let (applied, digests) = self.gateway_pull_all().await?;
        self.gateway_scope(digests).await?;
        // Conflict resolutions found while pushing are queued again: push them now.
        if self.fold_all()? > 0 || self.pending_outbox()? > 0 {
            pushed += self.gateway_push_all().await?;
        }
        Ok((pushed, applied))
    }

    /// Every replicated table must be one the gateway syncs, as the server has it.
    async fn gateway_schema(&self) -> Result<()> {
        let resp: SchemaResponse = self.gateway_call("schema", &serde_json::json!({})).await?;
        if resp.protocol != PROTOCOL {
            return Err(Error::Protocol(format!(
                "the gateway speaks protocol {}, this replica {PROTOCOL}",
                resp.protocol
            )));
        }
        {
            let inner = self.inner.borrow();
            let mut names: Vec<&String> = inner.tables.keys().collect();
            names.sort();
            for name in names {
                let server = resp.tables.iter().find(|t| &t.name == name).ok_or_else(|| Error::PermissionDenied {
                    message: format!(
                        "table {name} is not synced through this gateway (no SYNC_RULES for it, or the server does not replicate it)"
                    ),
                })?;
                super::schema::compare_table(&inner.tables[name], &server.columns, &server.policies.to_string())?;
            }
        }
        self.inner.borrow_mut().schema_ready = true;
        Ok(())
    }

    /// Drops rows (their local state too) without recording a change: rows the user
    /// can no longer read, or refused rows about to be restored. `pks` are canonical
    /// key texts. Runs inside the caller's savepoint, with capture off.
    pub(in crate::sync::net) fn evict(&self, spec: &TableSpec, pks: &[String]) -> Result<()> {
        if pks.is_empty() {
            return Ok(());
        }
        let conn = self.store.conn();
        let list = serde_json::to_string(pks).map_err(|e| Error::Protocol(e.to_string()))?;
        for sql in [
            "DELETE FROM _es_ctr WHERE tbl = ?1 AND pk IN (SELECT value FROM json_each(?2))",
            "DELETE FROM _es_set WHERE tbl = ?1 AND pk IN (SELECT value FROM json_each(?2))",
            "DELETE FROM _es_text WHERE tbl = ?1 AND pk IN (SELECT value FROM json_each(?2))",
        ] {
            conn.execute(sql, rusqlite::params![spec.name, list])
                .map_err(sql_error)?;
        }
        conn.execute(
            &format!(
                "DELETE FROM {} WHERE pk IN (SELECT value FROM json_each(?1))",
                rows::shadow(&spec.name)
            ),
            [&list],
        )
        .map_err(sql_error)?;
        for sql in rows::rebuild_sql(spec, &keys_of(pks)) {
            conn.execute(&sql, []).map_err(sql_error)?;
        }
        Ok(())
    }

    /// Merges a table's state from the gateway (its rows' keys are rebuilt).
    pub(in crate::sync::net) fn load_gateway_state(&self, spec: &TableSpec, ts: &TableState) -> Result<()> {
        let t = Value::Text(spec.name.clone());
        let rows: Vec<Vec<Value>> = ts.rows.iter().map(|r| r.iter().map(decode_value).collect()).collect();
        let with_table = |cells: &[Vec<serde_json::Value>]| -> Vec<Vec<Value>> {
            cells
                .iter()
                .map(|r| std::iter::once(t.clone()).chain(r.iter().map(decode_value)).collect())
                .collect()
        };
        let mut texts = Vec::with_capacity(ts.text.len());
        for (site, rec) in &ts.text {
            texts.push((site.clone(), Record::from_json(rec)?));
        }
        let pks: Vec<String> = rows
            .iter()
            .filter_map(|r| match r.first() {
                Some(Value::Text(k)) => Some(k.clone()),
                _ => None,
            })
            .collect();
        let _off = CaptureOff::new(&self.capture);
        self.load_state(
            spec,
            &rows,
            &with_table(&ts.counters),
            &with_table(&ts.sets),
            &texts,
            &keys_of(&pks),
        )
    }

    /// The local spec of `table`, if replicated.
    pub(in crate::sync::net) fn spec_of(&self, table: &str) -> Option<TableSpec> {
        self.inner.borrow().tables.get(table).cloned()
    }
}

/// `(SELECT value AS pk FROM json_each('[…]')) k`: canonical key texts as the keys
/// subquery [`rows::rebuild_sql`] takes.
fn keys_of(pks: &[String]) -> String {
    let list = serde_json::to_string(pks).unwrap_or_else(|_| "[]".into());
    format!("(SELECT value AS pk FROM json_each('{}')) k", list.replace('\'', "''"))
}
