//! The server's tables: created on the first sync if missing, checked against the
//! local ones (columns, types, key, policies), evolved when this replica declared
//! added columns, and checked again — cheaply — at every pull.
//!
//! The schema step ([`Replica::ensure_schema`]) reads, in one write transaction, what
//! the server has: each replicated table's columns, policies, row-state columns,
//! added columns' definitions and edgesync triggers, and the change log's identity
//! (its epoch: a random id in the log's row 0, gone if the log is dropped or replaced
//! by an older copy). Then, in a second transaction when anything is to change:
//!
//! - a table the server lacks is created from the local `CREATE TABLE`;
//! - columns this replica declared that the server lacks are added there (`ALTER
//!   TABLE … ADD COLUMN`, with the definition the app wrote); columns the server has
//!   that this replica lacks (another replica added them) are `SCHEMA_MISMATCH` until
//!   this one migrates ([`Replica::migrate`]); any other difference — a type, the key,
//!   a policy — is `SCHEMA_MISMATCH`;
//! - the row state gains the columns it lacks; the capture triggers for other
//!   clients' writes ([`crate::sync::server`]) are made, or remade when they are not
//!   the ones this replica would make, and then every row is adopted once;
//! - a change log whose epoch is not the one this replica synced with means the
//!   server's state was reset: the replica re-reads it (bootstrap) and says so
//!   (`SERVER_RESET`, as a `sync:error` event; the sync goes on).
//!
//! The check at every pull is one more statement in the pull's read batch
//! ([`Replica::server_check`]): the same facts as one string, compared with what the
//! schema step last saw, and the server's time (for the clock check).

use super::{int, text};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Statement, TransactionMode, Value};
use crate::sync::evolve::COLUMNS_DDL;
use crate::sync::policy::TableSpec;
use crate::sync::replica::{meta, parse_policies, set_meta, Replica};
use crate::sync::status::Event;
use crate::sync::{rows, rules, server};

/// What the server has of one replicated table (phase one's reads).
struct ServerTable {
    /// (name, TYPE, pk) in table order; empty when the table does not exist.
    columns: Vec<(String, String, usize)>,
    shadow: Vec<String>,
    policies: Option<String>,
    defs: Vec<(String, String)>,
    triggers: Vec<String>,
}

impl<T: HttpTransport> Replica<T> {
    /// Makes the server's tables what this replica's declarations need (see the module
    /// docs), or fails with `SCHEMA_MISMATCH`; then records the server's fingerprint.
    ///
    /// Two replicas may do it at once (their first syncs, say): every statement is
    /// idempotent but `ALTER TABLE … ADD COLUMN`, so a SQL error in the second step —
    /// the other replica added the column first — reads the server again, once.
    pub(super) async fn ensure_schema(&self) -> Result<()> {
        match self.ensure_schema_once().await {
            Err(Error::Sql { .. }) => self.ensure_schema_once().await,
            other => other,
        }
    }

    async fn ensure_schema_once(&self) -> Result<()> {
        let specs: Vec<TableSpec> = {
            let inner = self.inner.borrow();
            let mut s: Vec<TableSpec> = inner.tables.values().cloned().collect();
            crate::sort::sort_by(&mut s, |a, b| a.name.cmp(&b.name));
            s
        };
        for spec in &specs {
            crate::sync::evolve::live_mismatch(self.store.conn(), spec)?;
        }
        let mut stmts: Vec<Statement> = [
            rules::SERVER_DDL,
            rules::STATE_DDL,
            COLUMNS_DDL,
            server::SERVER_STATE_DDL,
        ]
        .iter()
        .flat_map(|ddl| ddl.split(';'))
        .filter(|s| !s.trim().is_empty())
        .map(Statement::new)
        .chain([Statement::new(rules::EPOCH_INIT)])
        .collect();
        let first_read = stmts.len();
        for spec in &specs {
            stmts.extend(read_table(&spec.name));
        }
        stmts.push(Statement::new(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '_es_cv')",
        ));
        stmts.push(fingerprint_sql(&specs));
        let results = self.remote_batch(&stmts, TransactionMode::Write).await?;
        let tables: Vec<ServerTable> = results[first_read..]
            .chunks(READS)
            .take(specs.len())
            .map(ServerTable::from_results)
            .collect();
        let legacy = results[results.len() - 2].rows.first().is_some_and(|r| int(&r[0]) == 1);
        let mut fingerprint = results.last().map(fingerprint_of);

        let mut changes = Vec::new();
        for (spec, server) in specs.iter().zip(&tables) {
            changes.extend(self.plan_table(spec, server)?);
        }
        if !changes.is_empty() {
            changes.push(fingerprint_sql(&specs));
            let results = self.remote_batch(&changes, TransactionMode::Write).await?;
            fingerprint = results.last().map(fingerprint_of);
        }
        if legacy {
            self.migrate_server().await?;
        }
        if let Some((facts, _)) = &fingerprint {
            self.check_epoch(epoch_of(facts))?;
        }
        let mut inner = self.inner.borrow_mut();
        inner.server_fingerprint = fingerprint.map(|f| f.0);
        inner.schema_ready = true;
        Ok(())
    }

    /// The statements that bring the server's copy of `spec` in line (see the module
    /// docs), or `SCHEMA_MISMATCH`.
    fn plan_table(&self, spec: &TableSpec, server: &ServerTable) -> Result<Vec<Statement>> {
        let t = &spec.name;
        let mut out = Vec::new();
        let (triggers, names) = server::triggers(spec);
        if server.columns.is_empty() {
            let create = spec
                .create_sql
                .strip_prefix("CREATE TABLE ")
                .map(|rest| format!("CREATE TABLE IF NOT EXISTS {rest}"))
                .unwrap_or_else(|| spec.create_sql.clone());
            out.push(Statement::new(create));
            out.push(Statement::new(rows::ddl(spec)));
            out.push(register(spec));
            self.push_defs(
                spec,
                &spec.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                &mut out,
            )?;
            out.extend(triggers.into_iter().map(Statement::new));
            return Ok(out);
        }
        let server_pol: Vec<(String, crate::sync::policy::Policy)> = match &server.policies {
            Some(p) => parse_policies(p)?,
            None => Vec::new(),
        };
        let shape = spec.shape();
        let mut added = Vec::new();
        for (name, ty, pk) in &shape {
            match server.columns.iter().find(|c| &c.0 == name) {
                Some((_, sty, spk)) if sty == ty && spk == pk => {}
                Some(other) => {
                    return Err(Error::SchemaMismatch(format!(
                        "{t}.{name} is {ty:?} (key position {pk}) here but {:?} (key position {}) on the server",
                        other.1, other.2
                    )))
                }
                None if *pk > 0 => {
                    return Err(Error::SchemaMismatch(format!(
                        "{t}'s primary key differs between this replica {shape:?} and the server {:?}",
                        server.columns
                    )))
                }
                None => added.push(name.clone()),
            }
        }
        let missing: Vec<&(String, String, usize)> = server
            .columns
            .iter()
            .filter(|c| !shape.iter().any(|s| s.0 == c.0))
            .collect();
        if !missing.is_empty() {
            let alters: Vec<String> = missing
                .iter()
                .map(|c| {
                    let def = server.defs.iter().find(|d| d.0 == c.0).map(|d| d.1.clone());
                    format!(
                        "ALTER TABLE {t} ADD COLUMN {}",
                        def.unwrap_or_else(|| format!("\"{}\" {}", c.0, c.1))
                    )
                })
                .collect();
            return Err(Error::SchemaMismatch(format!(
                "the server's {t} has columns {:?} that this replica lacks (another replica added them): call \
                 migrate() to add them here, or run {} and call replicate(\"{t}\", …) again",
                missing.iter().map(|c| &c.0).collect::<Vec<_>>(),
                alters.join("; ")
            )));
        }
        if server.policies.is_some() {
            for (col, pol) in parse_policies(&spec.policies_json().to_string())? {
                if added.contains(&col) {
                    continue;
                }
                let theirs = server_pol.iter().find(|p| p.0 == col).map(|p| p.1);
                if theirs != Some(pol) {
                    return Err(Error::SchemaMismatch(format!(
                        "{t} is replicated with policies {} on the server but {} here",
                        server.policies.as_deref().unwrap_or_default(),
                        spec.policies_json()
                    )));
                }
            }
        }
        for col in &added {
            // Only a column declared as added (`replicate()` after `ALTER TABLE … ADD
            // COLUMN`) changes the server; a table merely created differently here
            // is a mismatch.
            let Some(def) = self.local_def(spec, col)? else {
                return Err(Error::SchemaMismatch(format!(
                    "{t}.{col} exists here but not on the server ({t} differs between this replica {shape:?} and the \
                     server {:?}); to add a column to a replicated table, run ALTER TABLE … ADD COLUMN and call \
                     replicate() again: the next sync adds it on the server",
                    server.columns
                )));
            };
            out.push(Statement::new(format!("ALTER TABLE \"{t}\" ADD COLUMN {def}")));
        }
        self.push_defs(spec, &added, &mut out)?;
        if server.policies.is_none() {
            out.push(register(spec));
        } else if !added.is_empty() {
            out.push(
                Statement::new("UPDATE _es_tables SET pol = ?2, create_sql = ?3 WHERE tbl = ?1")
                    .arg(t.as_str())
                    .arg(spec.policies_json().to_string())
                    .arg(spec.create_sql.as_str()),
            );
        }
        let adopt = server.shadow.is_empty();
        if adopt {
            out.push(Statement::new(rows::ddl(spec)));
        } else {
            out.extend(
                rows::add_columns_sql(spec, &server.shadow)
                    .into_iter()
                    .map(Statement::new),
            );
        }
        let mut have = server.triggers.clone();
        crate::sort::sort(&mut have);
        let mut want = names;
        crate::sort::sort(&mut want);
        if have != want || !added.is_empty() {
            out.extend(
                have.iter()
                    .map(|n| Statement::new(format!("DROP TRIGGER IF EXISTS \"{n}\""))),
            );
            out.extend(triggers.into_iter().map(Statement::new));
            // Rows the old triggers (or none) did not capture: adopted now.
            out.push(Statement::new(server::adopt_sql(spec)));
        }
        Ok(out)
    }

    /// The `ADD COLUMN` definition this replica keeps for `col`: a column it declared
    /// as added (see `evolve`).
    fn local_def(&self, spec: &TableSpec, col: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        self.store
            .conn()
            .query_row(
                "SELECT def FROM _es_columns WHERE tbl = ?1 AND col = ?2",
                [&spec.name, col],
                |r| r.get(0),
            )
            .optional()
            .map_err(crate::store::sql_error)
    }

    /// Statements that store this replica's definitions of `cols` on the server.
    fn push_defs(&self, spec: &TableSpec, cols: &[String], out: &mut Vec<Statement>) -> Result<()> {
        for col in cols {
            if let Some(def) = self.local_def(spec, col)? {
                out.push(
                    Statement::new("INSERT INTO _es_columns (tbl, col, def) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                        .arg(spec.name.as_str())
                        .arg(col.as_str())
                        .arg(def),
                );
            }
        }
        Ok(())
    }

    /// Compares the change log's epoch with the one this replica synced with: another
    /// means the server's state was reset (its log dropped, or restored from an older
    /// copy), so the replica re-reads it (the next bootstrap), and says so.
    pub(super) fn check_epoch(&self, epoch: &str) -> Result<()> {
        let mine = match meta(&self.store, "epoch")? {
            Some(Value::Text(e)) => Some(e),
            _ => None,
        };
        let synced = meta(&self.store, "cursor")?.is_some();
        if mine.as_deref() == Some(epoch) {
            return Ok(());
        }
        if synced && mine.is_some() {
            self.store
                .conn()
                .execute("DELETE FROM _es_meta WHERE key = 'cursor' OR key LIKE 'boot:%'", [])
                .map_err(crate::store::sql_error)?;
            let e = Error::ServerReset(format!(
                "the server's change log is not the one this replica synced with (epoch {} now, {} before): it \
                 was dropped or restored from an older copy; this replica re-reads the server's state, and changes \
                 the server lost are kept here only",
                epoch,
                mine.as_deref().unwrap_or("-")
            ));
            self.emit(Event::Error {
                code: e.code().into(),
                message: e.to_string(),
                retryable: false,
            });
        }
        set_meta(&self.store, "epoch", &Value::Text(epoch.to_string()))
    }

    /// The statement a pull adds to its read batch: the server's fingerprint and time.
    pub(super) fn server_check(&self) -> Statement {
        let inner = self.inner.borrow();
        let mut specs: Vec<&TableSpec> = inner.tables.values().collect();
        crate::sort::sort_by(&mut specs, |a, b| a.name.cmp(&b.name));
        fingerprint_sql_of(&specs)
    }

    /// Reads [`Self::server_check`]'s answer: `Ok(true)` when the server is as the
    /// schema step left it, `Ok(false)` when it changed (run the schema step again).
    /// Also compares the server's time with this machine's clock.
    pub(super) fn server_unchanged(&self, rs: &ResultSet) -> Result<bool> {
        {
            let inner = self.inner.borrow();
            for spec in inner.tables.values() {
                crate::sync::evolve::live_mismatch(self.store.conn(), spec)?;
            }
        }
        let Some((facts, server_ms)) = (!rs.rows.is_empty()).then(|| fingerprint_of(rs)) else {
            return Err(Error::Protocol("the server's schema check returned no row".into()));
        };
        if server_ms > 0 {
            if let Some(e) = self.correct_clock(server_ms as u64)? {
                self.emit(Event::Error {
                    code: e.code().into(),
                    message: e.to_string(),
                    retryable: false,
                });
            }
        }
        Ok(self.inner.borrow().server_fingerprint.as_deref() == Some(facts.as_str()))
    }
}

impl<T: HttpTransport> Replica<T> {
    /// Compares the server's time with this machine's clock; when they differ by more
    /// than the allowed drift, new writes use the server's time from now on (the
    /// offset is kept in `_es_meta`). Returns the error to report when that changed.
    pub(in crate::sync::net) fn correct_clock(&self, server_ms: u64) -> Result<Option<Error>> {
        let (e, after, before) = {
            let mut clock = self.capture.clock.lock().unwrap_or_else(|e| e.into_inner());
            let before = clock.offset_ms();
            let e = clock.correct(server_ms, self.now());
            (e, clock.offset_ms(), before)
        };
        if after != before {
            set_meta(&self.store, "clock_offset", &Value::Integer(after))?;
        }
        Ok(e)
    }
}

/// How many read statements [`read_table`] makes per table.
const READS: usize = 5;

/// Phase one's reads for `table`: columns, row-state columns, policies, added
/// columns' definitions, edgesync's triggers.
fn read_table(table: &str) -> Vec<Statement> {
    vec![
        Statement::new("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid").arg(table),
        Statement::new(rows::shadow_info_sql(table)),
        Statement::new("SELECT pol FROM _es_tables WHERE tbl = ?").arg(table),
        Statement::new("SELECT col, def FROM _es_columns WHERE tbl = ?").arg(table),
        Statement::new(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND name LIKE ? ESCAPE '\\'",
        )
        .arg(table)
        .arg(server::trigger_pattern(table)),
    ]
}

impl ServerTable {
    fn from_results(rs: &[ResultSet]) -> ServerTable {
        ServerTable {
            columns: rs[0]
                .rows
                .iter()
                .map(|r| (text(&r[0]), text(&r[1]).to_ascii_uppercase(), int(&r[2]) as usize))
                .collect(),
            shadow: rs[1].rows.iter().map(|r| text(&r[0])).collect(),
            policies: rs[2].rows.first().map(|r| text(&r[0])),
            defs: rs[3].rows.iter().map(|r| (text(&r[0]), text(&r[1]))).collect(),
            triggers: rs[4].rows.iter().map(|r| text(&r[0])).collect(),
        }
    }
}

/// `INSERT` of `spec`'s declaration into the server's `_es_tables`.
fn register(spec: &TableSpec) -> Statement {
    Statement::new("INSERT INTO _es_tables (tbl, pol, create_sql) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        .arg(spec.name.as_str())
        .arg(spec.policies_json().to_string())
        .arg(spec.create_sql.as_str())
}

fn fingerprint_sql(specs: &[TableSpec]) -> Statement {
    fingerprint_sql_of(&specs.iter().collect::<Vec<_>>())
}

/// One row: the log's epoch, then per table its columns, policies, row-state columns
/// and edgesync triggers; and last the server's time (ms).
fn fingerprint_sql_of(specs: &[&TableSpec]) -> Statement {
    let mut parts = vec!["(SELECT id FROM _es_log WHERE seq = 0)".to_string()];
    for spec in specs {
        let t = &spec.name;
        parts.push(format!(
            "(SELECT group_concat(name || ' ' || type || ' ' || pk, ',') FROM pragma_table_info('{t}'))"
        ));
        parts.push(format!("(SELECT pol FROM _es_tables WHERE tbl = '{t}')"));
        parts.push(format!(
            "(SELECT group_concat(name, ',') FROM pragma_table_info('_es_row_{t}'))"
        ));
        parts.push(format!(
            "(SELECT group_concat(name, ',') FROM sqlite_master WHERE type = 'trigger' AND tbl_name = '{t}')"
        ));
    }
    parts.push(server::NOW_MS.to_string());
    Statement::new(format!("SELECT {}", parts.join(", ")))
}

/// The facts of a fingerprint row (joined) and the server's time.
fn fingerprint_of(rs: &ResultSet) -> (String, i64) {
    let Some(row) = rs.rows.first() else {
        return (String::new(), 0);
    };
    let n = row.len().saturating_sub(1);
    let facts = row[..n].iter().map(text).collect::<Vec<_>>().join("\u{1f}");
    (facts, row.get(n).map(int).unwrap_or(0))
}

/// The epoch in a fingerprint's facts (its first field).
fn epoch_of(facts: &str) -> &str {
    facts.split('\u{1f}').next().unwrap_or_default()
}

impl<T: HttpTransport> Replica<T> {
    /// Adds here the columns another replica added to replicated tables on the server
    /// (`ALTER TABLE … ADD COLUMN` with the definition it wrote, then `replicate()`
    /// with the server's policies), so this replica syncs again after the
    /// `SCHEMA_MISMATCH` that told it. Returns the statements it ran (none when
    /// nothing was missing). Local columns the server lacks are left to `sync()`.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        let names = self.tables();
        let mut stmts = Vec::new();
        for t in &names {
            stmts.extend(read_table(t));
        }
        let results = match self.remote_batch(&stmts, TransactionMode::Read).await {
            // The syncUrl is an edgesync Worker: its schema step says what to add.
            Err(_) if self.via_gateway() => return self.gateway_migrate().await,
            r => r?,
        };
        let mut ran = Vec::new();
        for (t, rs) in names.iter().zip(results.chunks(READS)) {
            let server = ServerTable::from_results(rs);
            ran.extend(self.migrate_table(t, &server.columns, server.policies.as_deref(), &server.defs)?);
        }
        Ok(ran)
    }

    /// [`Self::migrate`] for one table, from what the server has of it: its columns
    /// (`name, TYPE, pk`), policies (stored JSON) and added columns' definitions.
    pub(super) fn migrate_table(
        &self,
        t: &str,
        columns: &[(String, String, usize)],
        policies: Option<&str>,
        defs: &[(String, String)],
    ) -> Result<Vec<String>> {
        let mut ran = Vec::new();
        let spec = self.inner.borrow().tables.get(t).cloned();
        let Some(spec) = spec else { return Ok(ran) };
        let missing: Vec<&(String, String, usize)> = columns
            .iter()
            .filter(|c| !spec.columns.iter().any(|l| l.name == c.0))
            .collect();
        if missing.is_empty() {
            return Ok(ran);
        }
        let mut local = parse_policies(&spec.policies_json().to_string())?;
        for (col, pol) in parse_policies(policies.unwrap_or("{}"))? {
            if missing.iter().any(|m| m.0 == col) {
                local.push((col, pol));
            }
        }
        let conn = self.store.conn();
        for c in &missing {
            let def = defs
                .iter()
                .find(|d| d.0 == c.0)
                .map(|d| d.1.clone())
                .unwrap_or_else(|| format!("\"{}\" {}", c.0, c.1));
            let sql = format!("ALTER TABLE \"{t}\" ADD COLUMN {def}");
            conn.execute_batch(&sql).map_err(crate::store::sql_error)?;
            crate::sync::evolve::store_def(conn, t, &c.0, &def)?;
            ran.push(sql);
        }
        self.replicate(t, &local, Vec::new())?;
        Ok(ran)
    }

    /// Moves the server's state of this replica's tables out of the earlier per-cell
    /// layout (see [`rows::migrate_sql`]), in one write transaction; drops the old
    /// tables once no table's state is left in them.
    pub(super) async fn migrate_server(&self) -> Result<()> {
        let stmts: Vec<Statement> = {
            let inner = self.inner.borrow();
            let mut names: Vec<&String> = inner.tables.keys().collect();
            crate::sort::sort(&mut names);
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
}
