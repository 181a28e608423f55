//! The network half of a replica: schema on first sync, bootstrap from a snapshot,
//! push (one atomic Hrana batch per chunk, merge rules in SQL), pull (log after the
//! cursor), and write-through.
//!
//! Every `await` happens with no local transaction open and no borrow held, so local
//! reads and writes go on while a sync waits on the network.

use rusqlite::params;
use serde_json::Value as Json;

use super::fold::encode_base;
use super::policy::check_identifier;
use super::policy::TableSpec;
use super::record::{decode_row, decode_value, encode_value, Record};
use super::replica::{finish_savepoint, meta, parse_policies, set_meta, Apply, CaptureOff, Replica};
use super::rows;
use super::rules;
use super::status::{backoff_ms, Event, Outcome, Status};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, RemoteClient, ResultSet, Statement, TransactionMode, Value};
use crate::store::sql_error;

/// What one `sync()` did.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SyncReport {
    pub changes_pushed: u64,
    pub changes_applied: u64,
    pub duration_ms: f64,
}

/// An outbox row waiting to be pushed. A push only needs each record's table and
/// operation; the whole record is parsed only where it is needed (conflicts,
/// write-through), which keeps JSON parsing off the push path.
struct Queued {
    id: i64,
    table: String,
    op: char,
    json: String,
    base: Option<Value>,
}

/// The table and operation of a record's JSON (`[hlc, table, key, op, …]`), read
/// without building the rest.
fn record_head(json: &str) -> Result<(String, char)> {
    let bad = |e: String| Error::Protocol(format!("malformed change record: {e}"));
    let parts: Vec<&serde_json::value::RawValue> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let field = |i: usize| -> Result<String> {
        let raw = parts.get(i).ok_or_else(|| bad(format!("{} fields", parts.len())))?;
        serde_json::from_str(raw.get()).map_err(|e| bad(e.to_string()))
    };
    let op = field(3)?.chars().next().ok_or_else(|| bad("no operation".into()))?;
    Ok((field(1)?, op))
}

impl Queued {
    fn record(&self) -> Result<Record> {
        let rec: Json = serde_json::from_str(&self.json).map_err(|e| Error::Protocol(e.to_string()))?;
        Record::from_json(&rec)
    }
}

/// Background sync delay after success, and the backoff bounds after failures.
pub const BACKOFF_BASE_MS: u64 = 500;
pub const BACKOFF_MAX_MS: u64 = 60_000;

impl<T: HttpTransport> Replica<T> {
    fn remote(&self) -> Result<&RemoteClient<T>> {
        self.remote
            .as_ref()
            .ok_or_else(|| Error::InvalidOperation("this replica has no syncUrl to sync with".into()))
    }

    /// Pushes local changes, then pulls and applies everyone else's. Safe to call at
    /// any time; on failure nothing is lost (the outbox keeps the changes) and the
    /// status shows when the next attempt is due.
    pub async fn sync(&self) -> Result<SyncReport> {
        let start = self.now();
        let res = self.sync_inner().await;
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

    async fn sync_inner(&self) -> Result<(u64, u64)> {
        self.remote()?;
        // One batch now; the rest is folded while the first chunks are on the wire.
        self.fold_batch()?;
        if !self.inner.borrow().schema_ready {
            self.ensure_schema().await?;
        }
        self.bootstrap().await?;
        self.resolve_doubts().await?;
        let mut pushed = self.push_all().await?;
        let applied = self.pull_all().await?;
        // Conflict resolutions found while pushing are queued again: push them now.
        if self.fold_all()? > 0 || self.pending_outbox()? > 0 {
            pushed += self.push_all().await?;
        }
        Ok((pushed, applied))
    }

    fn pending_outbox(&self) -> Result<u64> {
        self.store
            .conn()
            .query_row("SELECT count(*) FROM _es_outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(sql_error)
    }

    /// Creates the change log, state tables and replicated tables on the server (if
    /// missing) and checks that the server's tables match the local ones.
    async fn ensure_schema(&self) -> Result<()> {
        let (stmts, checks) = {
            let inner = self.inner.borrow();
            let mut stmts: Vec<Statement> = rules::SERVER_DDL
                .split(';')
                .chain(rules::STATE_DDL.split(';'))
                .filter(|s| !s.trim().is_empty())
                .map(Statement::new)
                .collect();
            let mut checks = Vec::new();
            let mut names: Vec<&String> = inner.tables.keys().collect();
            names.sort();
            for name in names {
                let spec = &inner.tables[name];
                let create = spec
                    .create_sql
                    .strip_prefix("CREATE TABLE ")
                    .map(|rest| format!("CREATE TABLE IF NOT EXISTS {rest}"))
                    .unwrap_or_else(|| spec.create_sql.clone());
                stmts.push(Statement::new(create));
                stmts.push(Statement::new(rows::ddl(spec)));
                stmts.push(
                    Statement::new(
                        "INSERT INTO _es_tables (tbl, pol, create_sql) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    )
                    .arg(name.as_str())
                    .arg(spec.policies_json().to_string())
                    .arg(spec.create_sql.as_str()),
                );
                checks.push((name.clone(), stmts.len()));
                stmts.push(
                    Statement::new("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid").arg(name.as_str()),
                );
                stmts.push(Statement::new("SELECT pol FROM _es_tables WHERE tbl = ?").arg(name.as_str()));
            }
            stmts.push(Statement::new(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_es_cv')",
            ));
            (stmts, checks)
        };
        let results = self.remote_batch(&stmts, TransactionMode::Write).await?;
        let legacy = results
            .last()
            .and_then(|r| r.rows.first())
            .is_some_and(|r| int(&r[0]) == 1);
        self.check_server_tables(&results, checks)?;
        if legacy {
            self.migrate_server().await?;
        }
        self.inner.borrow_mut().schema_ready = true;
        Ok(())
    }

    /// Compares the server's copy of each replicated table (columns, types, key and
    /// policies: the results at `checks`) with the local one.
    fn check_server_tables(&self, results: &[ResultSet], checks: Vec<(String, usize)>) -> Result<()> {
        let inner = self.inner.borrow();
        for (name, idx) in checks {
            let spec = &inner.tables[&name];
            let server: Vec<(String, String, usize)> = results[idx]
                .rows
                .iter()
                .map(|r| (text(&r[0]), text(&r[1]).to_ascii_uppercase(), int(&r[2]) as usize))
                .collect();
            if server != spec.shape() {
                return Err(Error::SchemaMismatch(format!(
                    "table {name} differs between this replica {:?} and the server {:?}",
                    spec.shape(),
                    server
                )));
            }
            let pol = results[idx + 1].rows.first().map(|r| text(&r[0])).unwrap_or_default();
            let mut server_pol = parse_policies(&pol)?;
            server_pol.sort_by(|a, b| a.0.cmp(&b.0));
            let mut local_pol = parse_policies(&spec.policies_json().to_string())?;
            local_pol.sort_by(|a, b| a.0.cmp(&b.0));
            if server_pol != local_pol {
                return Err(Error::SchemaMismatch(format!(
                    "table {name} is replicated with policies {pol} on the server but {} here",
                    spec.policies_json()
                )));
            }
        }
        Ok(())
    }

    /// Moves the server's state of this replica's tables out of the earlier per-cell
    /// layout (see [`rows::migrate_sql`]), in one write transaction; drops the old
    /// tables once no table's state is left in them.
    async fn migrate_server(&self) -> Result<()> {
        let stmts: Vec<Statement> = {
            let inner = self.inner.borrow();
            let mut names: Vec<&String> = inner.tables.keys().collect();
            names.sort();
            names
                .into_iter()
                .flat_map(|n| rows::migrate_sql(&inner.tables[n]))
                .map(Statement::new)
                .chain([Statement::new("SELECT EXISTS (SELECT 1 FROM _es_cv)")])
                .collect()
        };
        let results = self.remote_batch(&stmts, TransactionMode::Write).await?;
        let left = results
            .last()
            .and_then(|r| r.rows.first())
            .is_some_and(|r| int(&r[0]) == 1);
        if !left {
            let drop = [
                Statement::new("DROP TABLE IF EXISTS _es_cv"),
                Statement::new("DROP TABLE IF EXISTS _es_stage"),
            ];
            self.remote_batch(&drop, TransactionMode::Write).await?;
        }
        Ok(())
    }

    /// Loads the server's state for tables this replica has not bootstrapped yet, in
    /// one read transaction, and merges it into the local state (so local changes made
    /// before the first sync are kept). The first bootstrap also sets the pull cursor.
    async fn bootstrap(&self) -> Result<()> {
        let todo: Vec<String> = {
            let mut t = Vec::new();
            for name in self.tables() {
                if meta(&self.store, &format!("boot:{name}"))?.is_none() {
                    t.push(name);
                }
            }
            t
        };
        if todo.is_empty() {
            return Ok(());
        }
        for t in &todo {
            check_identifier("table", t)?;
        }
        let list = todo.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let specs: Vec<TableSpec> = {
            let inner = self.inner.borrow();
            todo.iter().filter_map(|t| inner.tables.get(t).cloned()).collect()
        };
        let mut stmts = vec![
            Statement::new("SELECT coalesce(max(seq), 0) FROM _es_log"),
            Statement::new(format!(
                "SELECT tbl, pk, col, site, p, n FROM _es_ctr WHERE tbl IN ({list})"
            )),
            Statement::new(format!(
                "SELECT tbl, pk, col, elem, tag, alive FROM _es_set WHERE tbl IN ({list})"
            )),
            Statement::new(format!(
                "SELECT site, rec FROM _es_log WHERE rec ->> 1 IN ({list}) AND rec LIKE '%\"u\":%' ORDER BY seq"
            )),
        ];
        stmts.extend(specs.iter().map(|s| Statement::new(rows::dump_sql(s))));
        let rs = self.remote_batch(&stmts, TransactionMode::Read).await?;
        self.fold_all()?;
        let conn = self.store.conn();
        let _off = CaptureOff::new(&self.capture);
        conn.execute_batch("SAVEPOINT es_boot").map_err(sql_error)?;
        let res = (|| {
            for (spec, dump) in specs.iter().zip(&rs[4..]) {
                let mut load = conn.prepare(&rows::load_sql(spec)).map_err(sql_error)?;
                for r in &dump.rows {
                    let mut args: Vec<Value> = r[..3].to_vec();
                    for cell in r[3..].chunks(3) {
                        // Hrana's JSON has no infinities: they arrive as null, flagged.
                        args.push(match int(&cell[2]) {
                            1 => Value::Real(f64::INFINITY),
                            -1 => Value::Real(f64::NEG_INFINITY),
                            _ => cell[0].clone(),
                        });
                        args.push(cell[1].clone());
                    }
                    load.execute(rusqlite::params_from_iter(args.iter()))
                        .map_err(sql_error)?;
                }
            }
            let mut ctr = conn
                .prepare_cached(
                    "INSERT INTO _es_ctr (tbl, pk, col, site, p, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT DO UPDATE SET p = max(p, excluded.p), n = max(n, excluded.n)",
                )
                .map_err(sql_error)?;
            for r in &rs[1].rows {
                ctr.execute(params![r[0], r[1], r[2], r[3], r[4], r[5]])
                    .map_err(sql_error)?;
            }
            let mut set = conn
                .prepare_cached(
                    "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT DO UPDATE SET alive = min(alive, excluded.alive)",
                )
                .map_err(sql_error)?;
            for r in &rs[2].rows {
                set.execute(params![r[0], r[1], r[2], r[3], r[4], r[5]])
                    .map_err(sql_error)?;
            }
            // Text documents are rebuilt from their updates in the log.
            let mut by_site: Vec<(String, Record)> = Vec::new();
            for r in &rs[3].rows {
                let rec: Json = serde_json::from_str(&text(&r[1])).map_err(|e| Error::Protocol(e.to_string()))?;
                by_site.push((text(&r[0]), Record::from_json(&rec)?));
            }
            for (site, rec) in &by_site {
                self.apply_records(&[rec], site, Apply::Remote)?;
            }
            // Rebuild every row of the bootstrapped tables from the merged state.
            for spec in &specs {
                let keys = format!("(SELECT pk FROM {}) k", rows::shadow(&spec.name));
                for sql in rows::rebuild_sql(spec, &keys) {
                    conn.execute(&sql, []).map_err(sql_error)?;
                }
            }
            if meta(&self.store, "cursor")?.is_none() {
                set_meta(&self.store, "cursor", &Value::Integer(int(&rs[0].rows[0][0])))?;
            }
            for t in &todo {
                set_meta(&self.store, &format!("boot:{t}"), &Value::Integer(1))?;
            }
            Ok(())
        })();
        finish_savepoint(conn, "es_boot", res.is_ok())?;
        res
    }

    fn read_outbox(&self, limit: usize) -> Result<Vec<Queued>> {
        let mut stmt = self
            .store
            .conn()
            .prepare_cached("SELECT id, rec, base FROM _es_outbox ORDER BY id LIMIT ?1")
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
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
    async fn push_all(&self) -> Result<u64> {
        let mut pushed = 0;
        for _round in 0..10_000 {
            let queued = self.read_outbox(self.push_chunk)?;
            if queued.is_empty() {
                if self.fold_batch()?.is_none() {
                    break;
                }
                continue;
            }
            // The request is started, then the next captures are folded while the
            // server merges this chunk (a fold failure is reported after the chunk's
            // answer is handled: the chunk may well have been committed).
            let (conflicts, folded) = {
                let mut push = std::pin::pin!(self.push_records(&queued));
                match poll_once(&mut push).await {
                    Some(res) => (res, Ok(None)),
                    None => {
                        self.remote()?.transport().idle().await;
                        let folded = self.fold_batch();
                        (push.await, folded)
                    }
                }
            };
            let conflicts = conflicts?;
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

    /// Sends one chunk; returns the custom-column conflicts the server reported.
    ///
    /// The batch: the chunk is stored once in `_es_chunk`; counter and set cells are
    /// staged and merged ([`rules`]); custom values go through compare-and-set; every
    /// record is logged once; the row state of each table is merged and its touched
    /// rows rebuilt ([`rows`]); the custom values that lost are read back.
    async fn push_records(&self, queued: &[Queued]) -> Result<ResultSet> {
        let (stmts, conflict_steps) = {
            let inner = self.inner.borrow();
            let json = super::replica::chunk_json(queued.iter().map(|q| q.json.as_str()));
            let mut names: Vec<&str> = queued.iter().map(|q| q.table.as_str()).collect();
            names.sort();
            names.dedup();
            let specs: Vec<&TableSpec> = names.iter().filter_map(|n| inner.tables.get(*n)).collect();
            let mut stmts = vec![Statement::new(rows::STORE_CHUNK).arg(json).arg(self.site.as_str())];
            let staged = specs.iter().any(|s| super::replica::has_cells(s));
            if staged {
                let pol = Json::Object(specs.iter().map(|s| (s.name.clone(), s.policies_json())).collect());
                stmts.push(Statement::new(rules::STAGE).arg(pol.to_string()));
                stmts.extend(rules::merge_sql().into_iter().map(Statement::new));
            }
            for spec in &specs {
                stmts.extend(rows::custom_sql(spec).into_iter().map(Statement::new));
            }
            stmts.push(Statement::new(rows::log_sql()));
            for spec in &specs {
                stmts.push(Statement::new(rows::upsert_sql(spec, rows::SERVER, true)));
            }
            for spec in &specs {
                let [upsert, delete] = rows::materialize_sql(spec, rows::SERVER);
                stmts.push(Statement::new(upsert));
                // Only a delete record can remove a row (an insert older than a
                // tombstone is simply not inserted).
                if queued.iter().any(|q| q.op == 'd' && q.table == spec.name) {
                    stmts.push(Statement::new(delete));
                }
            }
            let mut conflict_steps = Vec::new();
            for spec in &specs {
                if let Some(sql) = rows::conflicts_sql(spec) {
                    conflict_steps.push(stmts.len());
                    stmts.push(Statement::new(sql));
                }
            }
            if staged {
                stmts.push(Statement::new(rules::UNSTAGE));
            }
            stmts.push(Statement::new(rows::DROP_CHUNK));
            (stmts, conflict_steps)
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
    fn resolve_conflicts(&self, queued: &[Queued], conflicts: &ResultSet, queue: bool) -> Result<()> {
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
            let local = decode_value(&record.data[&col]);
            let resolved = {
                let inner = self.inner.borrow();
                match inner.resolvers.get(&(table.clone(), col.clone())) {
                    Some(f) => f(&local, &remote, q.base.as_ref())?,
                    None => remote.clone(),
                }
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

    /// Pulls the server's log after this replica's cursor and applies it.
    async fn pull_all(&self) -> Result<u64> {
        let mut applied = 0;
        loop {
            let cursor = match meta(&self.store, "cursor")? {
                Some(Value::Integer(c)) => c,
                _ => 0,
            };
            // Only other writers' records cross the network; the log's last sequence
            // number, read in the same transaction, lets the cursor pass this
            // replica's own records without downloading them.
            let page = Statement::new(
                "SELECT seq, site, rec FROM _es_log WHERE seq > ?1 AND site <> ?3 ORDER BY seq LIMIT ?2",
            )
            .arg(cursor)
            .arg(self.pull_chunk as i64)
            .arg(self.site.as_str());
            let top = Statement::new("SELECT coalesce(max(seq), 0) FROM _es_log");
            let mut res = self.remote_batch(&[page, top], TransactionMode::Read).await?;
            let top = res.pop().and_then(|t| t.rows.first().map(|r| int(&r[0]))).unwrap_or(0);
            let rs = res.pop().unwrap_or_default();
            let full = rs.rows.len() >= self.pull_chunk;
            // A full page may be followed by more: the cursor stops at its last record.
            let to = match rs.rows.last() {
                Some(row) if full => int(&row[0]),
                _ => top.max(cursor),
            };
            if rs.rows.is_empty() && to == cursor {
                break;
            }
            applied += self.apply_pulled(&rs, to)?;
            if !full {
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
    fn apply_pulled(&self, rs: &ResultSet, to: i64) -> Result<u64> {
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
            let doc = super::fold::load_text(conn, cell, 0)?.text();
            if super::fold::render_of(conn, cell)?.as_deref() == Some(doc.as_str()) {
                continue;
            }
            let hlc = self.tick();
            super::fold::set_render(conn, cell, &super::record::version(hlc, &self.site), &doc)?;
            let mut data = serde_json::Map::new();
            data.insert(col.clone(), serde_json::json!({ "t": doc, "u": "" }));
            out.push(super::fold::Outgoing {
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

    async fn execute_remote_inner(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
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
                out.push(self.store.execute(s).map_err(|e| crate::store::with_step(e, i))?);
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
    async fn resolve_doubts(&self) -> Result<()> {
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
                format!("{}{}{}", super::record::version(r.hlc, &self.site), r.op, xcol)
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

    fn note_push_ok(&self) {
        let mut st = self.monitor.status.borrow_mut();
        st.online = true;
        st.last_push = Some(Outcome {
            at_ms: self.now(),
            ok: true,
            error: None,
        });
    }

    /// The replica's sync status.
    pub fn status(&self) -> Result<Status> {
        let (pending, oldest): (i64, Option<i64>) = self
            .store
            .conn()
            .query_row(
                "SELECT (SELECT count(*) FROM _es_outbox) + (SELECT count(*) FROM _es_capture),
                        min(coalesce((SELECT min(hlc) FROM _es_outbox), (SELECT min(hlc) FROM _es_capture)),
                            coalesce((SELECT min(hlc) FROM _es_capture), (SELECT min(hlc) FROM _es_outbox)))",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sql_error)?;
        let mut st = self.monitor.status.borrow().clone();
        st.pending = pending as u64;
        let now = self.now();
        st.lag_ms = oldest.map(|h| now.saturating_sub((h >> 16) as u64)).unwrap_or(0);
        st.cursor = match meta(&self.store, "cursor")? {
            Some(Value::Integer(c)) => c,
            _ => 0,
        };
        st.next_sync_in_ms = if st.retries == 0 {
            0
        } else {
            backoff_ms(
                st.retries - 1,
                BACKOFF_BASE_MS,
                BACKOFF_MAX_MS,
                ((self.env.random)() % 1000) as f64 / 1000.0,
            )
        };
        Ok(st)
    }

    /// Metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> Result<String> {
        let st = self.status()?;
        Ok(self.metrics().prometheus(&st))
    }

    pub fn metrics(&self) -> super::status::Metrics {
        let mut m = self.monitor.metrics.borrow().clone();
        if let Some(r) = &self.remote {
            (m.http_requests, m.bytes_sent) = r.traffic();
        }
        m
    }

    async fn remote_batch(&self, stmts: &[Statement], mode: TransactionMode) -> Result<Vec<ResultSet>> {
        self.remote()?.batch(stmts, mode).await
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Null => String::new(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Integer(i) => *i,
        Value::Real(f) => *f as i64,
        Value::Text(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Polls `f` once: its output if it is ready at once, else `None` (it has started, and
/// the task will be woken when it can go on).
async fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}
