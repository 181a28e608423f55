//! Folding and applying: captured writes become change records (`fold.rs` does the
//! per-row work), and records — this replica's own, or pulled from the server — are
//! merged into the local row state and the rows rebuilt, each batch in one local
//! transaction. Split from `replica.rs`, which opens the replica and declares tables.

use base64::Engine;
use rusqlite::{params, OptionalExtension};
use serde_json::Value as Json;

use super::fold::{self, FoldContext};
use super::policy::{Policy, TableSpec};
use super::record::Record;
use super::replica::{chunk_json, finish_savepoint, has_cells, text_site, CaptureOff, Inner, Replica};
use super::{rows, rules};
use crate::error::{Error, Result};
use crate::remote::HttpTransport;
use crate::store::sql_error;

/// Where records being applied locally come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Apply {
    /// Just folded from this replica's own writes: the rows are already written.
    Captured,
    /// Pulled from the server: text updates are merged, rows rebuilt.
    Remote,
    /// This replica's own records that change rows (conflict resolutions, bootstrap).
    Rebuild,
}

impl<T: HttpTransport> Replica<T> {
    /// Turns every pending capture into outbox records, applying each to the local
    /// state in the same transaction. Returns how many records were queued.
    pub fn fold_all(&self) -> Result<usize> {
        let mut total = 0;
        while let Some(n) = self.fold_batch()? {
            total += n;
        }
        Ok(total)
    }

    /// Folds the next 2,000 captures (one local transaction): how many records were
    /// queued, `None` when there was nothing to fold.
    pub(crate) fn fold_batch(&self) -> Result<Option<usize>> {
        let conn = self.store.conn();
        let caps = fold::read_captures(conn, 2_000)?;
        if caps.is_empty() {
            return Ok(None);
        }
        conn.execute_batch("SAVEPOINT es_fold").map_err(sql_error)?;
        let res = self.fold_captures(&caps);
        finish_savepoint(conn, "es_fold", res.is_ok())?;
        res.map(Some)
    }

    fn fold_captures(&self, caps: &[fold::Capture]) -> Result<usize> {
        let conn = self.store.conn();
        let inner = self.inner.borrow();
        let ctx = FoldContext {
            conn,
            tables: &inner.tables,
            site: &self.site,
            text_site: text_site(&self.site),
            rebuild: Default::default(),
        };
        let mut pending: Vec<fold::Outgoing> = Vec::new();
        let mut touched = std::collections::HashSet::new();
        let mut queued = 0;
        for cap in caps {
            // A second write to a row must see the state after the first one.
            let Some(spec) = inner.tables.get(&cap.table) else {
                continue;
            };
            let keys: Vec<(String, String)> = [&cap.old, &cap.new]
                .into_iter()
                .flatten()
                .map(|row| (cap.table.clone(), fold::pk_json(spec, row).to_string()))
                .collect();
            if keys.iter().any(|k| touched.contains(k)) {
                queued += self.apply_own_as(&pending, ctx.rebuild.take())?;
                pending.clear();
                touched.clear();
            }
            touched.extend(keys);
            pending.extend(ctx.fold(cap)?);
        }
        queued += self.apply_own_as(&pending, ctx.rebuild.take())?;
        let last = caps.last().map(|c| c.id).unwrap_or(0);
        conn.execute("DELETE FROM _es_capture WHERE id <= ?1", [last])
            .map_err(sql_error)?;
        Ok(queued)
    }

    /// Applies this replica's own new records locally and queues them.
    pub(crate) fn apply_own(&self, out: &[fold::Outgoing]) -> Result<usize> {
        self.apply_own_as(out, false)
    }

    /// [`Self::apply_own`]; `rebuild`: the rows must be rebuilt from the merged state
    /// (see [`fold::FoldContext::rebuild`]) instead of left as written.
    fn apply_own_as(&self, out: &[fold::Outgoing], rebuild: bool) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let records: Vec<&Record> = out.iter().map(|o| &o.record).collect();
        let rows: Vec<(String, Option<Vec<u8>>)> = out
            .iter()
            .map(|o| (o.record.to_json().to_string(), fold::encode_base(&o.base_value)))
            .collect();
        self.apply_chunk(
            &records,
            &chunk_json(rows.iter().map(|r| r.0.as_str())),
            &self.site,
            if rebuild { Apply::Rebuild } else { Apply::Captured },
        )?;
        let args: Vec<&dyn rusqlite::ToSql> = out
            .iter()
            .zip(&rows)
            .flat_map(|(o, (rec, base))| [&o.record.hlc as &dyn rusqlite::ToSql, rec, base])
            .collect();
        super::multirow::insert_rows(
            self.store.conn(),
            ("INSERT INTO _es_outbox (hlc, rec, base) VALUES", ""),
            3,
            &args,
        )?;
        Ok(out.len())
    }

    /// Applies records written by `site` to the local state, then rebuilds the touched
    /// rows (with capture off, so applying is never captured again).
    pub(crate) fn apply_records(&self, records: &[&Record], site: &str, mode: Apply) -> Result<()> {
        let json: Vec<String> = records.iter().map(|r| r.to_json().to_string()).collect();
        self.apply_chunk(records, &chunk_json(json.iter().map(String::as_str)), site, mode)
    }

    /// [`Self::apply_records`] with the records also as one JSON array (`chunk`), which
    /// the row-state statements read ([`rows`]).
    fn apply_chunk(&self, records: &[&Record], chunk: &str, site: &str, mode: Apply) -> Result<()> {
        let conn = self.store.conn();
        let inner = self.inner.borrow();
        let _off = CaptureOff::new(&self.capture);
        let mut names: Vec<&str> = records.iter().map(|r| r.table.as_str()).collect();
        crate::sort::sort(&mut names);
        names.dedup();
        let specs: Vec<&TableSpec> = names.iter().filter_map(|n| inner.tables.get(*n)).collect();
        let run = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<()> {
            conn.prepare_cached(sql)
                .map_err(sql_error)?
                .execute(args)
                .map_err(sql_error)?;
            Ok(())
        };
        let staged = specs.iter().any(|s| has_cells(s)) && self.stage(records, site, &inner)?;
        if staged {
            for sql in rules::merge_sql() {
                run(sql, &[])?;
            }
        }
        // This replica's own writes almost always win whole: then their rows are
        // already as the rules would leave them.
        let taken = mode == Apply::Captured
            && super::own::eligible(&inner.tables, records)
            && super::own::apply(conn, &inner.tables, records, site)?;
        if taken {
            if staged {
                run(rules::UNSTAGE, &[])?;
            }
            return Ok(());
        }
        // Read before the rows move: which rows a seeded text re-inserts.
        let dead = if mode == Apply::Remote {
            self.deleted_rows_seeded(records, &inner)?
        } else {
            Vec::new()
        };
        for spec in &specs {
            run(&rows::upsert_sql(spec, rows::LOCAL, false), &[&chunk, &site])?;
        }
        if mode == Apply::Remote {
            self.merge_text(records, site, &inner, dead)?;
        }
        for spec in &specs {
            // A local write already left its row as the rules would — unless a set
            // column needs normalizing (sorted, distinct), or the write lost to a newer
            // version already merged (a clock running behind another replica's).
            let lost = mode == Apply::Captured
                && conn
                    .prepare_cached(&rows::lost_sql(spec))
                    .map_err(sql_error)?
                    .query_row(params![chunk, site], |r| r.get::<_, bool>(0))
                    .map_err(sql_error)?;
            let sets = spec.columns.iter().any(|c| c.policy == Policy::Set);
            if mode == Apply::Captured && !lost && !sets {
                continue;
            }
            let [upsert, delete] = rows::materialize_sql(spec, rows::LOCAL);
            run(&upsert, &[&chunk])?;
            if lost || records.iter().any(|r| r.op == 'd' && r.table == spec.name) {
                run(&delete, &[&chunk])?;
            }
        }
        if staged {
            run(rules::UNSTAGE, &[])?;
        }
        Ok(())
    }

    /// Stages the counter and set cells of `records` for the merge rules: the same rows
    /// the server's `rules::STAGE` statement makes from JSON, written directly. Whether
    /// there was any.
    fn stage(&self, records: &[&Record], site: &str, inner: &Inner) -> Result<bool> {
        let conn = self.store.conn();
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO _es_cells (tbl, pk, col, pol, jv, ver, site) VALUES (?1, json(?2), ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(sql_error)?;
        let mut any = false;
        for r in records.iter().filter(|r| matches!(r.op, 'i' | 'u')) {
            let Some(spec) = inner.tables.get(&r.table) else {
                continue;
            };
            let (pk, ver) = (r.pk.to_string(), super::record::version(r.hlc, site));
            for (col, v) in r.data.as_object().into_iter().flatten() {
                let pol = spec.columns.iter().find(|c| &c.name == col).map(|c| c.policy);
                let pol = match (pol, v) {
                    (Some(Policy::Counter), Json::Array(_)) => "counter",
                    (Some(Policy::Set), Json::Object(_)) => "set",
                    _ => continue,
                };
                stmt.execute(params![r.table, pk, col, pol, v.to_string(), ver, site])
                    .map_err(sql_error)?;
                any = true;
            }
        }
        Ok(any)
    }

    /// The rows (table, key) of `records`' seeded texts that are deleted here before
    /// the chunk applies: a seed is a plain-SQL `INSERT` on the server, so for such a row
    /// it starts a new row whose text has nothing to do with the deleted one's.
    fn deleted_rows_seeded(&self, records: &[&Record], inner: &Inner) -> Result<Vec<(String, String)>> {
        let conn = self.store.conn();
        let mut out = Vec::new();
        for r in records.iter().filter(|r| r.op == 'i') {
            let (Some(spec), Json::Object(data)) = (inner.tables.get(&r.table), &r.data) else {
                continue;
            };
            let seeded = data.iter().any(|(col, v)| {
                v.get("seed").and_then(Json::as_bool) == Some(true)
                    && spec.columns.iter().any(|c| &c.name == col && c.policy == Policy::Text)
            });
            if !seeded {
                continue;
            }
            let pk = r.pk.to_string();
            let live: Option<i64> = conn
                .prepare_cached(&format!(
                    "SELECT _live FROM {} WHERE pk = json(?1)",
                    rows::shadow(&r.table)
                ))
                .map_err(sql_error)?
                .query_row(params![pk], |row| row.get(0))
                .optional()
                .map_err(sql_error)?;
            if live == Some(0) {
                out.push((r.table.clone(), pk));
            }
        }
        Ok(out)
    }

    /// Merges pulled text updates into the local documents; the merged text replaces
    /// whatever rendering the record carried. `dead`: rows deleted here before the chunk
    /// (see [`Self::deleted_rows_seeded`]); a delete in the chunk adds its row. A seeded
    /// text for a deleted row starts from an empty document — on every replica alike,
    /// since each applies the same log in order — instead of being merged with the
    /// deleted row's (which showed the text twice: a proptest seed, kept).
    fn merge_text(
        &self,
        records: &[&Record],
        site: &str,
        inner: &Inner,
        mut dead: Vec<(String, String)>,
    ) -> Result<()> {
        let conn = self.store.conn();
        for r in records {
            if r.op == 'd' {
                dead.push((r.table.clone(), r.pk.to_string()));
                continue;
            }
            let (Some(spec), Json::Object(data)) = (inner.tables.get(&r.table), &r.data) else {
                continue;
            };
            let row = (r.table.clone(), r.pk.to_string());
            let was_dead = dead.contains(&row);
            if was_dead && r.op == 'i' {
                // Only an insert makes the row live again (an update of a deleted row
                // does not: `rows`' presence is kept by inserts and deletes).
                dead.retain(|d| d != &row);
            }
            for (col, v) in data {
                if spec.columns.iter().any(|c| &c.name == col && c.policy == Policy::Text) {
                    let pk = r.pk.to_string();
                    let cell = (r.table.as_str(), pk.as_str(), col.as_str());
                    let mut doc = fold::load_text(conn, cell, text_site(&self.site))?;
                    if let Some(u) = v.get("u").and_then(Json::as_str).filter(|u| !u.is_empty()) {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(u)
                            .map_err(|e| Error::Protocol(format!("bad text update in {}: {e}", r.table)))?;
                        doc.apply_update(&bytes)?;
                        fold::save_text(conn, cell, &doc)?;
                    } else if let (Some(true), Some(t)) =
                        (v.get("seed").and_then(Json::as_bool), v.get("t").and_then(Json::as_str))
                    {
                        // A text inserted on the server by plain SQL: every replica
                        // makes the same characters of it (see `server::seed_update`),
                        // in a new document if it re-inserts a deleted row.
                        if was_dead {
                            doc = crate::crdt::text::Text::new(text_site(&self.site));
                        }
                        doc.apply_update(&super::server::seed_update(&super::record::version(r.hlc, site), t)?)?;
                        fold::save_text(conn, cell, &doc)?;
                    }
                    let render = v.get("t").and_then(Json::as_str);
                    fold::set_render_or_null(conn, cell, &super::record::version(r.hlc, site), render)?;
                    // The merged text is the cell's value — unless the newest write to
                    // the cell was a NULL (the shadow already holds it: `c_` NULL with
                    // a version), which stays NULL until a newer edit.
                    let nulled = conn
                        .prepare_cached(&format!(
                            "UPDATE {} SET c_{col} = ?2 WHERE pk = json(?1) AND c_{col} IS NOT NULL",
                            rows::shadow(&r.table)
                        ))
                        .map_err(sql_error)?
                        .execute(params![cell.1, doc.text()])
                        .map_err(sql_error)?
                        == 0;
                    let key = (cell.0.to_string(), pk.clone(), col.clone());
                    if nulled {
                        self.text_touched.borrow_mut().remove(&key);
                    } else {
                        self.text_touched.borrow_mut().insert(key);
                    }
                }
            }
        }
        Ok(())
    }
}
