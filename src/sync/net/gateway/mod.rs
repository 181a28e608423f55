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

use rusqlite::params;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::gateway::protocol::{SchemaResponse, TableState, PREFIX, PROTOCOL};
use crate::remote::{HttpTransport, Value};
use crate::store::sql_error;
use crate::sync::record::{decode_value, Record};
use crate::sync::replica::{parse_policies, Apply, CaptureOff, Replica};
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
    ///
    /// As a direct sync, a pull that finds the server's tables or log changed since the
    /// schema step (another epoch: `SERVER_RESET` and a new bootstrap; another
    /// declaration: a column added) sends the sync through that step once more.
    pub(in crate::sync::net) async fn gateway_sync(&self) -> Result<(u64, u64)> {
        self.fold_batch()?;
        let (mut pushed, mut applied) = (0, 0);
        let mut digests = None;
        for attempt in 0..2 {
            if !self.inner.borrow().schema_ready {
                self.gateway_schema().await?;
            }
            self.gateway_bootstrap().await?;
            if attempt == 0 {
                pushed += self.gateway_push_all().await?;
            }
            let (n, d) = self.gateway_pull_all().await?;
            applied += n;
            digests = d;
            if self.inner.borrow().schema_ready {
                break;
            }
            if attempt == 1 {
                return Err(Error::SchemaMismatch(
                    "the server's tables changed during the sync: sync again".into(),
                ));
            }
        }
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
            crate::sort::sort(&mut names);
            for name in names {
                let server = resp.tables.iter().find(|t| &t.name == name).ok_or_else(|| Error::PermissionDenied {
                    message: format!(
                        "table {name} is not synced through this gateway (no SYNC_RULES for it, or the server does not replicate it)"
                    ),
                })?;
                compare_table(&inner.tables[name], &server.columns, &server.policies.to_string())?;
            }
        }
        if let Some(epoch) = &resp.epoch {
            self.check_epoch(epoch)?;
        }
        let mut inner = self.inner.borrow_mut();
        inner.server_fingerprint = Some(fingerprint(&resp.epoch, &resp.version));
        inner.schema_ready = true;
        Ok(())
    }

    /// `migrate()` through the gateway: the columns the server's copies of the synced
    /// tables have and this replica lacks are added here, as a direct replica adds them.
    pub(in crate::sync::net) async fn gateway_migrate(&self) -> Result<Vec<String>> {
        let resp: SchemaResponse = self.gateway_call("schema", &serde_json::json!({})).await?;
        let mut ran = Vec::new();
        for t in self.tables() {
            let Some(server) = resp.tables.iter().find(|s| s.name == t) else {
                continue;
            };
            let defs: Vec<(String, String)> = server.defs.clone().into_iter().collect();
            let pol = server.policies.to_string();
            ran.extend(self.migrate_table(&t, &server.columns, Some(&pol), &defs)?);
        }
        Ok(ran)
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

    /// Merges the server's state of some rows of `spec` into the local state and
    /// rebuilds the rows `keys` names (a subquery `… k` with a column `pk`): shadow
    /// rows (`pk, _pv, _live`, then value and version per row column), counter cells
    /// and set tags (`tbl, pk, col, …` as the server's tables hold them), and the log
    /// records carrying the rows' text updates. Runs inside the caller's savepoint, with
    /// capture off.
    pub(crate) fn load_state(
        &self,
        spec: &TableSpec,
        rows: &[Vec<Value>],
        ctr: &[Vec<Value>],
        set: &[Vec<Value>],
        texts: &[(String, Record)],
        keys: &str,
    ) -> Result<()> {
        let conn = self.store.conn();
        let mut load = conn.prepare_cached(&rows::load_sql(spec)).map_err(sql_error)?;
        for r in rows {
            load.execute(rusqlite::params_from_iter(r.iter())).map_err(sql_error)?;
        }
        let mut c = conn
            .prepare_cached(
                "INSERT INTO _es_ctr (tbl, pk, col, site, p, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT DO UPDATE SET p = max(p, excluded.p), n = max(n, excluded.n)",
            )
            .map_err(sql_error)?;
        for r in ctr {
            c.execute(params![r[0], r[1], r[2], r[3], r[4], r[5]])
                .map_err(sql_error)?;
        }
        let mut st = conn
            .prepare_cached(
                "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT DO UPDATE SET alive = min(alive, excluded.alive)",
            )
            .map_err(sql_error)?;
        for r in set {
            st.execute(params![r[0], r[1], r[2], r[3], r[4], r[5]])
                .map_err(sql_error)?;
        }
        for (site, rec) in texts {
            self.apply_records(&[rec], site, Apply::Remote)?;
        }
        for sql in rows::rebuild_sql(spec, keys) {
            conn.execute(&sql, []).map_err(sql_error)?;
        }
        Ok(())
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

/// Whether the server's copy of a table synced through the gateway (its columns as
/// `(name, TYPE, pk position)`, its policies as stored JSON) is the local one. A
/// gateway replica never changes the server's tables (its user is not trusted to):
/// a column the server has and this replica lacks is for [`Replica::migrate`] to add
/// here; one this replica added is for a trusted process to add on the server first.
fn compare_table(spec: &TableSpec, server: &[(String, String, usize)], pol: &str) -> Result<()> {
    let name = &spec.name;
    let shape = spec.shape();
    if server != shape {
        let missing: Vec<&str> = server
            .iter()
            .filter(|c| !shape.iter().any(|s| s.0 == c.0))
            .map(|c| c.0.as_str())
            .collect();
        let hint = if !missing.is_empty() && shape.iter().all(|s| server.contains(s)) {
            format!(" (the server added {missing:?}: call migrate() to add them here)")
        } else {
            " (a replica syncing through the gateway cannot change the server's tables)".to_string()
        };
        return Err(Error::SchemaMismatch(format!(
            "table {name} differs between this replica {shape:?} and the server {server:?}{hint}"
        )));
    }
    let mut server_pol = parse_policies(pol)?;
    crate::sort::sort_by(&mut server_pol, |a, b| a.0.cmp(&b.0));
    let mut local_pol = parse_policies(&spec.policies_json().to_string())?;
    crate::sort::sort_by(&mut local_pol, |a, b| a.0.cmp(&b.0));
    if server_pol != local_pol {
        return Err(Error::SchemaMismatch(format!(
            "table {name} is replicated with policies {pol} on the server but {} here",
            spec.policies_json()
        )));
    }
    Ok(())
}

/// What a replica syncing through the gateway remembers of the server from its schema
/// step, to compare every pull page with.
pub(super) fn fingerprint(epoch: &Option<String>, version: &Option<String>) -> String {
    format!(
        "{}\u{1f}{}",
        epoch.as_deref().unwrap_or_default(),
        version.as_deref().unwrap_or_default()
    )
}
