//! Bootstrap: the server's state for tables this replica has not loaded yet.

use rusqlite::params;
use serde_json::Value as Json;

use super::{int, text};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, Statement, TransactionMode, Value};
use crate::store::sql_error;
use crate::sync::policy::{check_identifier, TableSpec};
use crate::sync::record::Record;
use crate::sync::replica::{finish_savepoint, meta, set_meta, Apply, CaptureOff, Replica};
use crate::sync::rows;

impl<T: HttpTransport> Replica<T> {
    /// Loads the server's state for tables this replica has not bootstrapped yet, in
    /// one read transaction, and merges it into the local state (so local changes made
    /// before the first sync are kept). The first bootstrap also sets the pull cursor.
    pub(super) async fn bootstrap(&self) -> Result<()> {
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
            // Text documents are rebuilt from their updates in the log.
            let mut by_site: Vec<(String, Record)> = Vec::new();
            for r in &rs[3].rows {
                let rec: Json = serde_json::from_str(&text(&r[1])).map_err(|e| Error::Protocol(e.to_string()))?;
                by_site.push((text(&r[0]), Record::from_json(&rec)?));
            }
            for (spec, dump) in specs.iter().zip(&rs[4..]) {
                let rows: Vec<Vec<Value>> = dump
                    .rows
                    .iter()
                    .map(|r| {
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
                        args
                    })
                    .collect();
                let mine = |rows: &[Vec<Value>]| -> Vec<Vec<Value>> {
                    rows.iter().filter(|r| text(&r[0]) == spec.name).cloned().collect()
                };
                let texts: Vec<(String, Record)> =
                    by_site.iter().filter(|(_, r)| r.table == spec.name).cloned().collect();
                // Rebuild every row of the bootstrapped tables from the merged state.
                let keys = format!("(SELECT pk FROM {}) k", rows::shadow(&spec.name));
                self.load_state(spec, &rows, &mine(&rs[1].rows), &mine(&rs[2].rows), &texts, &keys)?;
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
}
