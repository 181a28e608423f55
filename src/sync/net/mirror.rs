//! Read-only mirrors: the server's tables that this replica does not replicate, brought
//! down whole by `sync()`, so that code written for libSQL's embedded replicas (which
//! see every table of their primary) keeps working (docs/compatibility.md).
//!
//! A mirror is an ordinary local table with the server's `CREATE TABLE` (and its
//! indexes), refused to local writes by triggers: write to it on the server, or
//! `replicate()` it (which turns it into a replicated table). A table is refreshed when
//! the server's replication index moved since the last refresh (anything changed on
//! the server); the rows are read in one read transaction on the server, so they are
//! one snapshot, and written locally in one transaction, so readers never see half of
//! them. A local table of the same name that is not a mirror is never touched.

use crate::error::{Error, Result, SqlCode};
use crate::remote::hrana::{Batch, Request};
use crate::remote::{HttpStream, HttpTransport, ResultSet, Statement, TransactionMode, Value};
use crate::store::sql_error;
use crate::sync::replica::Replica;

/// Which of the server's tables a replica mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mirror {
    /// Every table the replica does not replicate (the default).
    #[default]
    All,
    /// None.
    Off,
    /// These tables only.
    Only(Vec<String>),
}

/// The bookkeeping of mirrors, created on first use.
const DDL: &str =
    "CREATE TABLE IF NOT EXISTS _es_mirrors (tbl TEXT PRIMARY KEY, create_sql TEXT NOT NULL, indexes TEXT NOT NULL)";

/// Rows per page read from the server (halved while a page is too large for it).
const PAGE_ROWS: usize = 1000;

/// The server's schema objects that can be mirrored: ordinary tables (not virtual,
/// not SQLite's, libSQL's or edgesync's own) and their indexes.
const SERVER_SCHEMA: &str = "SELECT type, name, tbl_name, sql FROM sqlite_master \
     WHERE sql IS NOT NULL AND type IN ('table', 'index') \
     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_es\\_%' ESCAPE '\\' \
     AND name NOT LIKE 'libsql\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name";

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One server table to mirror.
struct ServerTable {
    name: String,
    create_sql: String,
    /// Its indexes' `CREATE INDEX` statements, joined by `;\n`.
    indexes: String,
}

impl<T: HttpTransport> Replica<T> {
    /// Refreshes the mirrors after a sync: returns how many tables were refreshed.
    pub(crate) async fn refresh_mirrors(&self) -> Result<usize> {
        if self.mirror == Mirror::Off {
            return Ok(0);
        }
        let conn = self.store.conn();
        conn.execute_batch(DDL).map_err(sql_error)?;
        let schema = self.remote()?.execute(&Statement::new(SERVER_SCHEMA)).await?;
        let index = schema.replication_index;
        let tables = self.tables_to_mirror(&schema)?;
        let mirrored = self.mirrored()?;
        let unchanged = index.is_some()
            && index == self.mirror_index()?
            && tables.len() == mirrored.len()
            && tables
                .iter()
                .zip(&mirrored)
                .all(|(t, (name, sql, idx))| &t.name == name && &t.create_sql == sql && &t.indexes == idx);
        if unchanged {
            return Ok(0);
        }
        let rows = self.read_server_tables(&tables).await?;
        conn.execute_batch("SAVEPOINT es_mirror").map_err(sql_error)?;
        let res = self.write_mirrors(&tables, &mirrored, rows, index);
        let end = if res.is_ok() {
            "RELEASE es_mirror"
        } else {
            "ROLLBACK TO es_mirror; RELEASE es_mirror"
        };
        conn.execute_batch(end).map_err(sql_error)?;
        res.map(|()| tables.len())
    }

    /// The server's tables this replica mirrors: not replicated here, not a local table
    /// of the app's own, and chosen by the `mirror` option.
    fn tables_to_mirror(&self, schema: &ResultSet) -> Result<Vec<ServerTable>> {
        let conn = self.store.conn();
        let replicated = self.tables();
        let text = |v: &Value| match v {
            Value::Text(s) => s.clone(),
            _ => String::new(),
        };
        let mut out: Vec<ServerTable> = Vec::new();
        for row in schema
            .rows
            .iter()
            .filter(|r| r.first() == Some(&Value::Text("table".into())))
        {
            let name = text(&row[1]);
            let wanted = match &self.mirror {
                Mirror::Only(list) => list.contains(&name),
                _ => true,
            };
            if !wanted || replicated.contains(&name) {
                continue;
            }
            let local: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)
                     AND NOT EXISTS (SELECT 1 FROM _es_mirrors WHERE tbl = ?1)",
                    [&name],
                    |r| r.get(0),
                )
                .map_err(sql_error)?;
            if local {
                continue;
            }
            let indexes: Vec<String> = schema
                .rows
                .iter()
                .filter(|r| r.first() == Some(&Value::Text("index".into())) && text(&r[2]) == name)
                .map(|r| text(&r[3]))
                .collect();
            out.push(ServerTable {
                name,
                create_sql: text(&row[3]),
                indexes: indexes.join(";\n"),
            });
        }
        Ok(out)
    }

    /// `(table, create_sql, indexes)` of the current mirrors, by name.
    fn mirrored(&self) -> Result<Vec<(String, String, String)>> {
        let conn = self.store.conn();
        let mut stmt = conn
            .prepare("SELECT tbl, create_sql, indexes FROM _es_mirrors ORDER BY tbl")
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sql_error)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql_error)
    }

    fn mirror_index(&self) -> Result<Option<u64>> {
        self.store
            .conn()
            .query_row("SELECT value FROM _es_meta WHERE key = 'mirror_index'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| Some(v as u64))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(sql_error(e)),
            })
    }

    /// Every row of `tables`, read in one read transaction on the server.
    async fn read_server_tables(&self, tables: &[ServerTable]) -> Result<Vec<Vec<ResultSet>>> {
        let remote = self.remote()?;
        let mut stream = HttpStream::default();
        let mut begun = false;
        let mut out = Vec::with_capacity(tables.len());
        let result = async {
            for t in tables {
                let mut pages = Vec::new();
                let mut offset = 0usize;
                let mut limit = PAGE_ROWS;
                loop {
                    let stmt = Statement::new(format!("SELECT * FROM {} LIMIT ? OFFSET ?", quote(&t.name)))
                        .arg(limit as i64)
                        .arg(offset as i64);
                    let stmts = [stmt];
                    let batch = Batch::in_transaction(&stmts, (!begun).then_some(TransactionMode::Read))?;
                    let plan = batch.plan().clone();
                    let reqs = [Request::Batch {
                        stream_id: None,
                        batch: &batch,
                    }];
                    let res = remote.on_stream(&mut stream, &reqs).await?.swap_remove(0);
                    match res.and_then(|r| r.into_batch(&plan)) {
                        Ok(mut rs) => {
                            begun = true;
                            let page = rs.swap_remove(0);
                            let n = page.rows.len();
                            pages.push(page);
                            offset += n;
                            if n < limit {
                                break;
                            }
                        }
                        // A page larger than the server answers: smaller pages.
                        Err(Error::Sql {
                            code: SqlCode::ResponseTooLarge,
                            ..
                        }) if limit > 1 => limit /= 2,
                        Err(e) => return Err(e),
                    }
                }
                out.push(pages);
            }
            Ok(())
        }
        .await;
        if !stream.is_closed() && stream.is_open_on_server() {
            let _ = remote
                .on_stream(&mut stream, &[Request::run(None, "ROLLBACK"), Request::Close])
                .await;
        }
        result.map(|()| out)
    }

    /// Replaces the mirrors' contents (inside the caller's savepoint).
    fn write_mirrors(
        &self,
        tables: &[ServerTable],
        before: &[(String, String, String)],
        rows: Vec<Vec<ResultSet>>,
        index: Option<u64>,
    ) -> Result<()> {
        let conn = self.store.conn();
        // Tables no longer mirrored (dropped on the server, or replicated now).
        for (name, _, _) in before.iter().filter(|(n, _, _)| !tables.iter().any(|t| &t.name == n)) {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(name)))
                .map_err(sql_error)?;
            conn.execute("DELETE FROM _es_mirrors WHERE tbl = ?1", [name])
                .map_err(sql_error)?;
        }
        for (t, pages) in tables.iter().zip(rows) {
            let same = before
                .iter()
                .any(|(n, sql, idx)| n == &t.name && sql == &t.create_sql && idx == &t.indexes);
            let q = quote(&t.name);
            if same {
                drop_guards(conn, &t.name)?;
                conn.execute_batch(&format!("DELETE FROM {q}")).map_err(sql_error)?;
            } else {
                conn.execute_batch(&format!("DROP TABLE IF EXISTS {q}"))
                    .map_err(sql_error)?;
                conn.execute_batch(&t.create_sql).map_err(sql_error)?;
                if !t.indexes.is_empty() {
                    conn.execute_batch(&t.indexes).map_err(sql_error)?;
                }
            }
            for page in pages {
                if page.rows.is_empty() {
                    continue;
                }
                let cols: Vec<String> = page.columns.iter().map(|c| quote(c)).collect();
                let marks = vec!["?"; cols.len()].join(", ");
                let mut ins = conn
                    .prepare(&format!("INSERT INTO {q} ({}) VALUES ({marks})", cols.join(", ")))
                    .map_err(sql_error)?;
                for row in &page.rows {
                    ins.execute(rusqlite::params_from_iter(row.iter())).map_err(sql_error)?;
                }
            }
            add_guards(conn, &t.name)?;
            conn.execute(
                "INSERT OR REPLACE INTO _es_mirrors (tbl, create_sql, indexes) VALUES (?1, ?2, ?3)",
                [&t.name, &t.create_sql, &t.indexes],
            )
            .map_err(sql_error)?;
        }
        if let Some(i) = index {
            conn.execute(
                "INSERT OR REPLACE INTO _es_meta (key, value) VALUES ('mirror_index', ?1)",
                [i as i64],
            )
            .map_err(sql_error)?;
        }
        Ok(())
    }

    /// Before `replicate(table)`: a mirror stops being one — its rows go (the sync
    /// brings them back as the replicated table's), and local writes are allowed again.
    pub(crate) fn unmirror(&self, table: &str) -> Result<()> {
        let conn = self.store.conn();
        conn.execute_batch(DDL).map_err(sql_error)?;
        let n = conn
            .execute("DELETE FROM _es_mirrors WHERE tbl = ?1", [table])
            .map_err(sql_error)?;
        if n > 0 {
            drop_guards(conn, table)?;
            conn.execute_batch(&format!("DELETE FROM {}", quote(table)))
                .map_err(sql_error)?;
        }
        Ok(())
    }
}

/// Triggers that refuse local writes to a mirror.
fn add_guards(conn: &rusqlite::Connection, table: &str) -> Result<()> {
    let q = quote(table);
    let message =
        format!("{table} is a read-only mirror of the server's table: write it on the server, or replicate() it")
            .replace('\'', "''");
    for (suffix, op) in [("i", "INSERT"), ("u", "UPDATE"), ("d", "DELETE")] {
        let trigger = quote(&format!("_es_ro_{table}_{suffix}"));
        conn.execute_batch(&format!(
            "CREATE TRIGGER IF NOT EXISTS {trigger} BEFORE {op} ON {q} BEGIN SELECT RAISE(ABORT, '{message}'); END"
        ))
        .map_err(sql_error)?;
    }
    Ok(())
}

fn drop_guards(conn: &rusqlite::Connection, table: &str) -> Result<()> {
    for suffix in ["i", "u", "d"] {
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {}",
            quote(&format!("_es_ro_{table}_{suffix}"))
        ))
        .map_err(sql_error)?;
    }
    Ok(())
}
