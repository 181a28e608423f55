//! Write-through writes whose outcome is not known yet, and the ledger that settles them.
//!
//! # The protocol
//!
//! A write-through write (`writeMode: "remote"`) is one atomic push batch. Its answer can
//! be lost after the server committed (connection reset, truncated or garbled answer, a
//! 5xx from a proxy), and a request held on the way can even commit *after* the client
//! gave up (a late commit). The replica must still end up holding exactly what the server
//! holds. Four rules make that so:
//!
//! 1. **Write-ahead intent.** Before the push is sent, the write's records are stored
//!    locally in `_es_intent` under a write number `n` (per site, increasing, kept in
//!    `_es_meta` as `wt_n`), in the same local transaction that takes the number. A crash,
//!    a lost answer or `close()` leaves the intent behind; nothing is forgotten.
//! 2. **A ledger on the server.** The push batch starts by recording `n` in `_es_wt`
//!    (one row per site: `done`, the highest write committed; `fence`, the highest write
//!    settled as *not* committed). The statement fails (`done` would become NULL, a NOT
//!    NULL violation) when `n <= fence`, which rolls the whole batch back: **a fenced
//!    write can never commit**, however late its request arrives. A replayed request
//!    (`n > fence`) merges again harmlessly: every merge rule is idempotent.
//! 3. **Settling asks the ledger, idempotently.** One write transaction raises `fence` to
//!    `n` and reads `done`. Because the server serializes write transactions, either the
//!    push committed first (`done >= n`: committed) or the fence did (`done < n`: it did
//!    not, and now never will). Asking again gives the same answer. `done >= n` proves
//!    `n` committed only because no write after `n` is ever sent while `n` is unsettled
//!    (rule 4) — and an answer is used only for intents that still exist when it arrives
//!    (a write after `n` can only have been sent once `n`'s intent was gone).
//! 4. **Nothing new is computed over a doubt.** A write-through call settles every
//!    intent before it computes its changes (a counter's running total for this site,
//!    text ids), and fails if it cannot. A committed intent is applied locally in the
//!    same local transaction that deletes it, so it is applied exactly once, whoever
//!    settles it: the call itself (answer received, or settled at once after a lost
//!    answer), the next call, or `sync()`.
//!
//! Pulls pass over this replica's own log records without downloading them. That is
//! safe: an own record is either applied already (acknowledged) or still an intent that
//! the ledger will settle; every merge rule commutes (the text CRDT holds an update until
//! the ones it builds on arrive), so applying it after records logged later gives the
//! same state. Custom (compare-and-set) records are the exception to "committed means
//! applied": one that lost its compare-and-set is not in the log, so settling reads the
//! log for them and applies only those that are there.
//!
//! Only write-through writes are sequenced this way; a replica that mixes local writes
//! to counter or text columns with write-through writes of the same rows may fold a
//! local write over an unsettled intent (the JS API does not allow mixing: `writeMode` is
//! per client).

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::params;
use serde_json::Value as Json;

use super::{int, text, Queued};
use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Statement, TransactionMode, Value};
use crate::store::sql_error;
use crate::sync::fold::encode_base;
use crate::sync::policy::check_identifier;
use crate::sync::record::{decode_row, version, Record};
use crate::sync::replica::{finish_savepoint, meta, set_meta, Apply, Replica};
use crate::sync::rows;

/// The ledger: one row per writing site (created by the batches that use it).
pub(super) const LEDGER_DDL: &str = "CREATE TABLE IF NOT EXISTS _es_wt (site TEXT PRIMARY KEY, \
     done INTEGER NOT NULL DEFAULT 0, fence INTEGER NOT NULL DEFAULT 0)";
/// In a push: records write `?2` of site `?1`, or fails (NOT NULL) if it is fenced.
const LEDGER_COMMIT: &str = "INSERT INTO _es_wt (site, done) VALUES (?1, ?2) ON CONFLICT (site) DO UPDATE \
     SET done = CASE WHEN excluded.done > fence THEN max(done, excluded.done) END";
/// Settling: no write of site `?1` up to `?2` can commit after this.
const LEDGER_FENCE: &str = "INSERT INTO _es_wt (site, fence) VALUES (?1, ?2) ON CONFLICT (site) DO UPDATE \
     SET fence = max(fence, excluded.fence)";
const LEDGER_DONE: &str = "SELECT done FROM _es_wt WHERE site = ?1";
/// Index of [`LEDGER_COMMIT`] in a write-through push (after [`LEDGER_DDL`]).
const LEDGER_STEP: usize = 1;

/// One record of a write whose outcome is unknown.
struct Intent {
    /// Its id in the server's log (custom records are logged only if they won).
    lid: String,
    record: Record,
    /// As queued: the JSON, and the base value of a custom edit (the resolver's third
    /// argument when its compare-and-set lost).
    queued: Queued,
}

/// How a write was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Committed,
    NotCommitted,
}

impl<T: HttpTransport> Replica<T> {
    /// The first statements of a write-through push of write `wid` (see rule 2).
    pub(super) fn ledger_steps(&self, wid: i64) -> [Statement; 2] {
        [
            Statement::new(LEDGER_DDL),
            Statement::new(LEDGER_COMMIT).arg(self.site.as_str()).arg(wid),
        ]
    }

    /// Whether a push error is the ledger refusing a fenced write (the write may still
    /// have committed earlier, by a first copy of the same request).
    pub(super) fn is_fenced(e: &Error) -> bool {
        matches!(
            e,
            Error::Sql {
                code,
                statement_index: Some(LEDGER_STEP),
                ..
            } if code.is_constraint()
        )
    }

    /// Takes the next write number and stores the write's records as intents, in one
    /// local transaction (rule 1), with `request`'s key and answer if the call may be
    /// sent again (`requests.rs`). Returns the write number.
    pub(super) fn record_intent(
        &self,
        queued: &[Queued],
        records: &[Record],
        request: Option<(&str, &[ResultSet])>,
    ) -> Result<i64> {
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_intent").map_err(sql_error)?;
        let res = (|| {
            let wid = match meta(&self.store, "wt_n")? {
                Some(Value::Integer(n)) => n + 1,
                _ => 1,
            };
            set_meta(&self.store, "wt_n", &Value::Integer(wid))?;
            let mut stmt = conn
                .prepare_cached("INSERT OR REPLACE INTO _es_intent (lid, wid, rec, base) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql_error)?;
            for (q, r) in queued.iter().zip(records) {
                stmt.execute(params![log_id(r, &self.site), wid, q.json, encode_base(&q.base)])
                    .map_err(sql_error)?;
            }
            if let Some((key, answer)) = request {
                self.note_request(key, Some(wid), answer)?;
            }
            Ok(wid)
        })();
        finish_savepoint(conn, "es_intent", res.is_ok())?;
        res
    }

    /// Forgets write `wid` (it was not committed, and cannot be any more). Returns
    /// whether its intent was still there.
    pub(super) fn drop_intent(&self, wid: i64) -> Result<bool> {
        self.request_dropped(wid)?;
        let n = self
            .store
            .conn()
            .execute("DELETE FROM _es_intent WHERE wid = ?1", [wid])
            .map_err(sql_error)?;
        Ok(n > 0)
    }

    /// Applies write `wid` locally if its intent is still there (whoever gets here first
    /// applies it; rule 4), and removes the intent. `logged`: the custom records' log ids
    /// that are in the server's log (`None`: all of the write's records are applied, as
    /// after an acknowledged push); `held`: for custom records that are not, the
    /// server's value and version of their cell (rows as `rows::conflicts_sql` gives
    /// them), resolved as after an acknowledged push. Returns whether this call applied
    /// it.
    pub(super) fn settle_committed(
        &self,
        wid: i64,
        logged: Option<&HashSet<String>>,
        held: Option<&ResultSet>,
    ) -> Result<bool> {
        // Captures made meanwhile are folded first: applying rebuilds rows.
        self.fold_all()?;
        let conn = self.store.conn();
        conn.execute_batch("SAVEPOINT es_settle").map_err(sql_error)?;
        let res = (|| {
            let intents = self.read_intents(Some(wid))?.remove(&wid).unwrap_or_default();
            if intents.is_empty() {
                return Ok(false);
            }
            conn.execute("DELETE FROM _es_intent WHERE wid = ?1", [wid])
                .map_err(sql_error)?;
            self.request_committed(wid)?;
            let won = |i: &Intent| i.record.op != 'x' || logged.is_none_or(|l| l.contains(&i.lid));
            let recs: Vec<&Record> = intents.iter().filter(|i| won(i)).map(|i| &i.record).collect();
            if !recs.is_empty() {
                self.apply_records(&recs, &self.site, Apply::Remote)?;
            }
            if let Some(held) = held {
                // The custom values that lost their compare-and-set, against what the
                // server holds for those cells now.
                let lost: Vec<&Intent> = intents.iter().filter(|i| !won(i)).collect();
                let mut conflicts = ResultSet::default();
                for row in &held.rows {
                    if lost
                        .iter()
                        .any(|i| i.record.hlc == int(&row[0]) && i.record.table == text(&row[1]))
                    {
                        conflicts.rows.push(row.clone());
                    }
                }
                let queued: Vec<Queued> = lost.into_iter().map(|i| i.queued.clone()).collect();
                self.resolve_conflicts(&queued, &conflicts, true)?;
            }
            Ok(true)
        })();
        finish_savepoint(conn, "es_settle", res.is_ok())?;
        res
    }

    /// How many write-through writes are unsettled.
    pub(crate) fn writes_in_doubt(&self) -> Result<u64> {
        self.store
            .conn()
            .query_row("SELECT count(DISTINCT wid) FROM _es_intent", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(sql_error)
    }

    /// Settles every unsettled write (rule 3) except `skip` (a write whose push is still
    /// waiting for its answer: its own call settles it). Returns the outcome of each
    /// write this call settled (one settled meanwhile by another call is left out).
    /// Fails only if the server could not be asked; the intents then stay.
    pub(super) async fn settle_writes(&self, skip: Option<i64>) -> Result<HashMap<i64, Outcome>> {
        self.adopt_legacy_doubts()?;
        let mut by_wid = self.read_intents(None)?;
        if let Some(s) = skip {
            by_wid.remove(&s);
        }
        if by_wid.is_empty() {
            return Ok(HashMap::new());
        }
        let top = by_wid.keys().copied().max().unwrap_or(0);
        let mut stmts = vec![
            Statement::new(LEDGER_DDL),
            Statement::new(LEDGER_FENCE).arg(self.site.as_str()).arg(top),
            Statement::new(LEDGER_DONE).arg(self.site.as_str()),
        ];
        // The log answers for custom records (logged only if they won their
        // compare-and-set) and for legacy doubts (number 0, from before the ledger).
        let ask: Vec<&str> = by_wid
            .iter()
            .flat_map(|(&wid, intents)| intents.iter().filter(move |i| wid == 0 || i.record.op == 'x'))
            .map(|i| i.lid.as_str())
            .collect();
        for chunk in ask.chunks(500) {
            let mut stmt = Statement::new(format!(
                "SELECT id FROM _es_log WHERE id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            ));
            stmt.args = chunk.iter().map(|id| Value::Text(id.to_string())).collect();
            stmts.push(stmt);
        }
        let asked = stmts.len();
        // What the server holds now for each custom record's cell (for those that lost).
        {
            let inner = self.inner.borrow();
            for i in by_wid.values().flatten().filter(|i| i.record.op == 'x') {
                let (Some(_), Json::Object(d)) = (inner.tables.get(&i.record.table), &i.record.data) else {
                    continue;
                };
                let Some(col) = d.keys().next() else { continue };
                check_identifier("column", col)?;
                stmts.push(
                    Statement::new(format!(
                        "SELECT ?1, ?2, pk, ?3, c_{col}, v_{col} FROM {} WHERE pk = json(?4)",
                        rows::shadow(&i.record.table)
                    ))
                    .arg(i.record.hlc)
                    .arg(i.record.table.as_str())
                    .arg(col.as_str())
                    .arg(i.record.pk.to_string()),
                );
            }
        }
        let rs = self.remote_batch(&stmts, TransactionMode::Write).await?;
        let done = rs[2].rows.first().map(|r| int(&r[0])).unwrap_or(0);
        let logged: HashSet<String> = rs[3..asked]
            .iter()
            .flat_map(|r| r.rows.iter().map(|row| text(&row[0])))
            .collect();
        let mut held = ResultSet::default();
        for r in &rs[asked..] {
            held.rows.extend(r.rows.iter().cloned());
        }
        let mut out = HashMap::new();
        for (wid, intents) in &by_wid {
            let committed = if *wid == 0 {
                intents.iter().any(|i| logged.contains(&i.lid))
            } else {
                done >= *wid
            };
            if committed {
                if self.settle_committed(*wid, Some(&logged), Some(&held))? {
                    out.insert(*wid, Outcome::Committed);
                }
            } else if self.drop_intent(*wid)? {
                out.insert(*wid, Outcome::NotCommitted);
            }
        }
        Ok(out)
    }

    /// The intents, by write number (one write's only, if `wid` is given).
    fn read_intents(&self, wid: Option<i64>) -> Result<BTreeMap<i64, Vec<Intent>>> {
        let mut stmt = self
            .store
            .conn()
            .prepare_cached(
                "SELECT wid, lid, rec, base FROM _es_intent WHERE ?1 IS NULL OR wid = ?1 ORDER BY wid, rowid",
            )
            .map_err(sql_error)?;
        let rows = stmt
            .query_map([wid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                ))
            })
            .map_err(sql_error)?;
        let mut out: BTreeMap<i64, Vec<Intent>> = BTreeMap::new();
        for row in rows {
            let (wid, lid, rec, base) = row.map_err(sql_error)?;
            let json: Json = serde_json::from_str(&rec).map_err(|e| Error::Protocol(e.to_string()))?;
            let record = Record::from_json(&json)?;
            let base = match base {
                Some(b) => decode_row(&b)?.into_iter().next(),
                None => None,
            };
            let queued = Queued {
                id: 0,
                table: record.table.clone(),
                op: record.op,
                json: rec,
                base,
            };
            out.entry(wid).or_default().push(Intent { lid, record, queued });
        }
        Ok(out)
    }

    /// Doubts recorded before the ledger existed (`_es_doubt`, after a lost answer)
    /// become intents of write 0, settled by looking for them in the log.
    fn adopt_legacy_doubts(&self) -> Result<()> {
        let conn = self.store.conn();
        let legacy: Vec<String> = {
            let mut stmt = conn
                .prepare_cached("SELECT rec FROM _es_doubt ORDER BY id")
                .map_err(sql_error)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(sql_error)?;
            rows.collect::<rusqlite::Result<_>>().map_err(sql_error)?
        };
        if legacy.is_empty() {
            return Ok(());
        }
        let mut records = Vec::new();
        for rec in &legacy {
            let json: Json = serde_json::from_str(rec).map_err(|e| Error::Protocol(e.to_string()))?;
            records.push(Record::from_json(&json)?);
        }
        conn.execute_batch("SAVEPOINT es_legacy").map_err(sql_error)?;
        let res = (|| -> Result<()> {
            let mut stmt = conn
                .prepare_cached("INSERT OR REPLACE INTO _es_intent (lid, wid, rec) VALUES (?1, 0, ?2)")
                .map_err(sql_error)?;
            for (r, json) in records.iter().zip(&legacy) {
                stmt.execute(params![log_id(r, &self.site), json]).map_err(sql_error)?;
            }
            conn.execute("DELETE FROM _es_doubt", []).map_err(sql_error)?;
            Ok(())
        })();
        finish_savepoint(conn, "es_legacy", res.is_ok())?;
        res
    }
}

/// A record's id in the server's log: its version and operation (and column, for a
/// custom record), as `rows::log_sql` and `rows::custom_sql` write it.
fn log_id(r: &Record, site: &str) -> String {
    let xcol = match (&r.data, r.op) {
        (Json::Object(d), 'x') => d.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    format!("{}{}{}", version(r.hlc, site), r.op, xcol)
}
