//! The server's tables: created on the first sync if missing, then checked against
//! the local ones (columns, types, key, policies); the earlier per-cell state layout
//! is migrated.

use super::{int, text};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Statement, TransactionMode};
use crate::sync::policy::TableSpec;
use crate::sync::replica::{parse_policies, Replica};
use crate::sync::{rows, rules};

impl<T: HttpTransport> Replica<T> {
    /// Creates the change log, state tables and replicated tables on the server (if
    /// missing) and checks that the server's tables match the local ones.
    pub(super) async fn ensure_schema(&self) -> Result<()> {
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
    pub(super) fn check_server_tables(&self, results: &[ResultSet], checks: Vec<(String, usize)>) -> Result<()> {
        let inner = self.inner.borrow();
        for (name, idx) in checks {
            let spec = &inner.tables[&name];
            let server: Vec<(String, String, usize)> = results[idx]
                .rows
                .iter()
                .map(|r| (text(&r[0]), text(&r[1]).to_ascii_uppercase(), int(&r[2]) as usize))
                .collect();
            let pol = results[idx + 1].rows.first().map(|r| text(&r[0])).unwrap_or_default();
            compare_table(spec, &server, &pol)?;
        }
        Ok(())
    }

    /// Moves the server's state of this replica's tables out of the earlier per-cell
    /// layout (see [`rows::migrate_sql`]), in one write transaction; drops the old
    /// tables once no table's state is left in them.
    pub(super) async fn migrate_server(&self) -> Result<()> {
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
}

/// Whether the server's copy of a replicated table (its columns as
/// `(name, TYPE, pk position)`, and its policies as stored JSON) is the local one.
pub(super) fn compare_table(spec: &TableSpec, server: &[(String, String, usize)], pol: &str) -> Result<()> {
    let name = &spec.name;
    if server != spec.shape() {
        return Err(Error::SchemaMismatch(format!(
            "table {name} differs between this replica {:?} and the server {:?}",
            spec.shape(),
            server
        )));
    }
    let mut server_pol = parse_policies(pol)?;
    server_pol.sort_by(|a, b| a.0.cmp(&b.0));
    let mut local_pol = parse_policies(&spec.policies_json().to_string())?;
    local_pol.sort_by(|a, b| a.0.cmp(&b.0));
    if server_pol != local_pol {
        return Err(Error::SchemaMismatch(format!(
            "table {name} is replicated with policies {pol} on the server but {} here",
            spec.policies_json()
        )));
    }
    Ok(())
}
