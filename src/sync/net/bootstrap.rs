//! Bootstrap: the server's state for tables this replica has not loaded yet, page by
//! page.
//!
//! The log's last sequence number is read first; then each table's shadow rows (by
//! key), the counter and set cells, and the text updates logged up to that number are
//! read in pages sized by count (`pullChunk`) and by bytes ([`PAGE_BYTES`]), each page
//! merged into the local state and its rows rebuilt in one local transaction. Pages are
//! read in separate transactions, so a later page may already hold changes logged after
//! that number: the pull that follows applies them again, which changes nothing (every
//! merge rule is idempotent). An interrupted bootstrap leaves merged state behind and
//! starts over at the next sync. A page the server refuses as too large is asked for
//! again at half the bytes, down to one row; one row always fits in an answer (sqld
//! holds no row of 5 MB or more, and answers up to 10 MB).

use rusqlite::params;
use serde_json::Value as Json;

use super::pull::PAGE_BYTES;
use super::{int, text};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Statement, TransactionMode, Value};
use crate::store::sql_error;
use crate::sync::policy::{check_identifier, TableSpec};
use crate::sync::record::Record;
use crate::sync::replica::{finish_savepoint, meta, set_meta, Apply, CaptureOff, Replica};
use crate::sync::rows;

/// What one page of a bootstrap reads.
enum Part<'a> {
    /// A table's shadow rows after a key.
    Rows(&'a TableSpec),
    /// Counter cells after a key.
    Counters,
    /// Set cells after a key.
    Sets,
    /// Text updates logged after a sequence number, up to the bootstrap's top.
    Texts,
}

impl<T: HttpTransport> Replica<T> {
    /// Loads the server's state for tables this replica has not bootstrapped yet and
    /// merges it into the local state (so local changes made before the first sync are
    /// kept). The first bootstrap also sets the pull cursor.
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
        let top = self
            .remote_batch(
                &[Statement::new("SELECT coalesce(max(seq), 0) FROM _es_log")],
                TransactionMode::Read,
            )
            .await?
            .remove(0)
            .rows
            .first()
            .map(|r| int(&r[0]))
            .unwrap_or(0);
        let mut parts: Vec<Part> = specs.iter().map(Part::Rows).collect();
        parts.extend([Part::Counters, Part::Sets, Part::Texts]);
        for part in &parts {
            // The key (or sequence number) the next page starts after.
            let mut after: Vec<Value> = match part {
                Part::Rows(_) => vec![Value::Text(String::new())],
                Part::Counters => vec![Value::Text(String::new()); 4],
                Part::Sets => vec![Value::Text(String::new()); 5],
                Part::Texts => vec![Value::Integer(0)],
            };
            let mut budget = PAGE_BYTES;
            loop {
                let size = self.pull_size.get();
                let page = self.page_sql(part, &list, &after, budget, top, size);
                let mut rs = match self.remote_batch(&[page], TransactionMode::Read).await {
                    Err(e) if super::is_too_large(&e) && budget > 0 => {
                        budget /= 2;
                        continue;
                    }
                    // A timeout makes the next pages smaller (net/pace.rs).
                    Err(e) => return Err(self.pull_size.failed(size, e)),
                    Ok(mut res) => res.remove(0),
                };
                self.pull_size.answered();
                let Some(last) = rs.rows.last() else { break };
                // Each row ends with the number of rows the count alone would have
                // given (fewer rows: the bytes cut the page) and the bytes before it.
                let width = last.len() - 2;
                let asked = int(&last[width]) as usize;
                let more = rs.rows.len() < asked || asked >= size;
                after = match part {
                    Part::Rows(_) => vec![last[0].clone()],
                    Part::Counters => last[..4].to_vec(),
                    Part::Sets => last[..5].to_vec(),
                    Part::Texts => vec![last[0].clone()],
                };
                for row in rs.rows.iter_mut() {
                    row.truncate(width);
                }
                self.load_page(part, &rs)?;
                budget = (budget.saturating_mul(2)).min(PAGE_BYTES);
                if !more {
                    break;
                }
            }
        }
        if meta(&self.store, "cursor")?.is_none() {
            set_meta(&self.store, "cursor", &Value::Integer(top))?;
        }
        for t in &todo {
            set_meta(&self.store, &format!("boot:{t}"), &Value::Integer(1))?;
        }
        Ok(())
    }

    /// The statement for one page of `part` after `after`: at most `size` rows,
    /// cut where the bytes before a row pass `budget` (the first row always comes).
    /// Each row ends with two extra columns: how many rows the count alone would have
    /// given, and the bytes before it.
    fn page_sql(&self, part: &Part, list: &str, after: &[Value], budget: i64, top: i64, size: usize) -> Statement {
        let (sql, bytes, order) = match part {
            Part::Rows(spec) => {
                let mut bytes = "octet_length(s.pk)".to_string();
                for c in rows::row_columns(spec) {
                    bytes.push_str(&format!(" + coalesce(octet_length(s.c_{c}), 0)"));
                }
                (
                    format!(
                        "SELECT * FROM ({}) WHERE pk > ?1 ORDER BY pk LIMIT ?2",
                        rows::dump_sql(spec)
                    ),
                    // The dump's cell columns have no names to add up: the shadow's.
                    format!("(SELECT {bytes} FROM {} s WHERE s.pk = d.pk)", rows::shadow(&spec.name)),
                    "pk",
                )
            }
            Part::Counters => (
                format!(
                    "SELECT tbl, pk, col, site, p, n FROM _es_ctr WHERE tbl IN ({list}) \
                     AND (tbl, pk, col, site) > (?1, ?3, ?4, ?5) ORDER BY tbl, pk, col, site LIMIT ?2"
                ),
                "0".to_string(),
                "tbl, pk, col, site",
            ),
            Part::Sets => (
                format!(
                    "SELECT tbl, pk, col, elem, tag, alive FROM _es_set WHERE tbl IN ({list}) \
                     AND (tbl, pk, col, elem, tag) > (?1, ?3, ?4, ?5, ?6) ORDER BY tbl, pk, col, elem, tag LIMIT ?2"
                ),
                "(octet_length(d.elem) + octet_length(d.pk))".to_string(),
                "tbl, pk, col, elem, tag",
            ),
            Part::Texts => (
                format!(
                    "SELECT seq, site, rec FROM _es_log WHERE seq > ?1 AND seq <= ?3 \
                     AND rec ->> 1 IN ({list}) AND rec LIKE '%\"u\":%' ORDER BY seq LIMIT ?2"
                ),
                "octet_length(d.rec)".to_string(),
                "seq",
            ),
        };
        let sql = format!(
            "SELECT * FROM (SELECT d.*, count(*) OVER () AS _asked, \
             sum({bytes}) OVER (ORDER BY {order} ROWS UNBOUNDED PRECEDING) - {bytes} AS _before \
             FROM ({sql}) d) WHERE _before <= {budget} ORDER BY {order}"
        );
        let mut stmt = Statement::new(sql).arg(after[0].clone()).arg(size as i64);
        match part {
            Part::Texts => stmt = stmt.arg(top),
            _ => {
                for v in &after[1..] {
                    stmt = stmt.arg(v.clone());
                }
            }
        }
        stmt
    }

    /// Merges one page into the local state and rebuilds the rows it touched, in one
    /// local transaction (writes made meanwhile are folded first: rebuilding must never
    /// overwrite a write that is not in the state yet).
    fn load_page(&self, part: &Part, rs: &ResultSet) -> Result<()> {
        self.fold_all()?;
        let conn = self.store.conn();
        let _off = CaptureOff::new(&self.capture);
        conn.execute_batch("SAVEPOINT es_boot").map_err(sql_error)?;
        let res = (|| {
            // Keys touched, by table.
            let mut touched: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            match part {
                Part::Rows(spec) => {
                    let mut load = conn.prepare(&rows::load_sql(spec)).map_err(sql_error)?;
                    for r in &rs.rows {
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
                        touched.entry(spec.name.clone()).or_default().push(text(&r[0]));
                    }
                }
                Part::Counters => {
                    let mut ctr = conn
                        .prepare_cached(
                            "INSERT INTO _es_ctr (tbl, pk, col, site, p, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                             ON CONFLICT DO UPDATE SET p = max(p, excluded.p), n = max(n, excluded.n)",
                        )
                        .map_err(sql_error)?;
                    for r in &rs.rows {
                        ctr.execute(params![r[0], r[1], r[2], r[3], r[4], r[5]])
                            .map_err(sql_error)?;
                        touched.entry(text(&r[0])).or_default().push(text(&r[1]));
                    }
                }
                Part::Sets => {
                    let mut set = conn
                        .prepare_cached(
                            "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                             ON CONFLICT DO UPDATE SET alive = min(alive, excluded.alive)",
                        )
                        .map_err(sql_error)?;
                    for r in &rs.rows {
                        set.execute(params![r[0], r[1], r[2], r[3], r[4], r[5]])
                            .map_err(sql_error)?;
                        touched.entry(text(&r[0])).or_default().push(text(&r[1]));
                    }
                }
                Part::Texts => {
                    // Text documents are rebuilt from their updates in the log.
                    for r in &rs.rows {
                        let rec: Json =
                            serde_json::from_str(&text(&r[2])).map_err(|e| Error::Protocol(e.to_string()))?;
                        let rec = Record::from_json(&rec)?;
                        self.apply_records(&[&rec], &text(&r[1]), Apply::Remote)?;
                        touched.entry(rec.table.clone()).or_default().push(rec.pk.to_string());
                    }
                }
            }
            let inner = self.inner.borrow();
            for (table, pks) in touched {
                let Some(spec) = inner.tables.get(&table) else { continue };
                let keys = Json::Array(pks.into_iter().map(Json::String).collect()).to_string();
                for sql in rows::rebuild_sql(spec, "(SELECT value AS pk FROM json_each(?1)) k") {
                    conn.execute(&sql, [&keys]).map_err(sql_error)?;
                }
            }
            Ok(())
        })();
        finish_savepoint(conn, "es_boot", res.is_ok())?;
        res
    }
}
