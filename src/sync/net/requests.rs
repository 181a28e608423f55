//! Write-through calls that may arrive twice, under one request key.
//!
//! In a browser, one tab's worker owns the store and runs the other tabs' calls. When it
//! dies with a write-through call in flight, the tab that made the call sends it again to
//! the next owner. The first attempt may have committed on the server (its answer lost
//! with the dead worker), or may still commit (a request held on the way) unless the
//! ledger fences it. Running the call again would apply it twice: a second row, a
//! counter incremented twice.
//!
//! So a call that can be sent again carries a key (the sending worker and its call
//! number), stored in `_es_wt_req` with the write number and the call's answer in the
//! same local transaction as the write's intent (`doubts.rs`, rule 1). The row follows
//! the intent: settled as committed, it is marked `ok`; settled as not committed, it is
//! deleted (that write can never commit, so running the call again is right). A call that
//! arrives again with its key first settles every intent (rule 4), then finds its answer
//! if its first attempt committed, and otherwise runs as a new write. A call that changed
//! no replicated row (DDL, a local table) is done once its local transaction commits: its
//! row, with no write number, is stored `ok` in that transaction.

use rusqlite::{params, OptionalExtension};

use crate::error::{Error, Result};
use crate::remote::{HttpTransport, ResultSet, Value};
use crate::store::sql_error;
use crate::sync::record::{decode_row, encode_row};
use crate::sync::replica::Replica;

/// Keys are kept this long (a call is sent again within seconds of its first attempt).
const KEEP_MS: u64 = 24 * 3600 * 1000;

impl<T: HttpTransport> Replica<T> {
    /// The answer of the call with this key, if its write committed. Call only with
    /// every intent settled; a row left for a write that did not commit is dropped.
    pub(super) fn answered(&self, key: &str) -> Result<Option<Vec<ResultSet>>> {
        let conn = self.store.conn();
        let row: Option<(bool, Vec<u8>)> = conn
            .query_row("SELECT ok, answer FROM _es_wt_req WHERE key = ?1", [key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(sql_error)?;
        match row {
            Some((true, answer)) => Ok(Some(decode_answer(&answer)?)),
            Some((false, _)) => {
                conn.execute("DELETE FROM _es_wt_req WHERE key = ?1", [key])
                    .map_err(sql_error)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Stores the key and answer of write `wid` (inside the intent's transaction), or of
    /// a call that changed no replicated row (`None`: done, inside its local
    /// transaction), and forgets keys older than a day.
    pub(super) fn note_request(&self, key: &str, wid: Option<i64>, answer: &[ResultSet]) -> Result<()> {
        let conn = self.store.conn();
        let now = self.now();
        conn.execute(
            "DELETE FROM _es_wt_req WHERE at < ?1",
            [now.saturating_sub(KEEP_MS) as i64],
        )
        .map_err(sql_error)?;
        conn.execute(
            "INSERT OR REPLACE INTO _es_wt_req (key, wid, ok, answer, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, wid, wid.is_none(), encode_answer(answer), now as i64],
        )
        .map_err(sql_error)?;
        Ok(())
    }

    /// Write `wid` committed (called in the transaction that applies it).
    pub(super) fn request_committed(&self, wid: i64) -> Result<()> {
        self.store
            .conn()
            .execute("UPDATE _es_wt_req SET ok = 1 WHERE wid = ?1", [wid])
            .map_err(sql_error)?;
        Ok(())
    }

    /// Write `wid` did not commit, and never will: its call may run again.
    pub(super) fn request_dropped(&self, wid: i64) -> Result<()> {
        self.store
            .conn()
            .execute("DELETE FROM _es_wt_req WHERE wid = ?1", [wid])
            .map_err(sql_error)?;
        Ok(())
    }
}

/// The answer as one row image: the number of result sets, then per result set its
/// sizes, `rows_affected`, `last_insert_rowid`, column names and types, and rows.
fn encode_answer(sets: &[ResultSet]) -> Vec<u8> {
    let mut v = vec![Value::Integer(sets.len() as i64)];
    for rs in sets {
        v.push(Value::Integer(rs.columns.len() as i64));
        v.push(Value::Integer(rs.rows.len() as i64));
        v.push(Value::Integer(rs.rows_affected as i64));
        v.push(rs.last_insert_rowid.map_or(Value::Null, Value::Integer));
        v.extend(rs.columns.iter().map(|c| Value::Text(c.clone())));
        v.extend(rs.column_types.iter().map(|c| Value::Text(c.clone())));
        for row in &rs.rows {
            v.extend(row.iter().cloned());
        }
    }
    encode_row(&v)
}

fn decode_answer(buf: &[u8]) -> Result<Vec<ResultSet>> {
    let damaged = || Error::Protocol("a stored write-through answer is damaged".into());
    let v = decode_row(buf)?;
    let mut it = v.into_iter();
    let n = match it.next() {
        Some(Value::Integer(n)) if n >= 0 => n as usize,
        _ => return Err(damaged()),
    };
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let mut next = || it.next().ok_or_else(damaged);
        let count = |x: Value| match x {
            Value::Integer(n) if n >= 0 => Ok(n as usize),
            _ => Err(damaged()),
        };
        let ncols = count(next()?)?;
        let nrows = count(next()?)?;
        let rows_affected = count(next()?)? as u64;
        let last_insert_rowid = match next()? {
            Value::Integer(i) => Some(i),
            _ => None,
        };
        let text = |x: Value| match x {
            Value::Text(s) => Ok(s),
            _ => Err(damaged()),
        };
        let columns = (0..ncols).map(|_| text(next()?)).collect::<Result<Vec<_>>>()?;
        let column_types = (0..ncols).map(|_| text(next()?)).collect::<Result<Vec<_>>>()?;
        let rows = (0..nrows)
            .map(|_| (0..ncols).map(|_| next()).collect::<Result<Vec<_>>>())
            .collect::<Result<Vec<_>>>()?;
        out.push(ResultSet {
            columns,
            column_types,
            rows,
            rows_affected,
            last_insert_rowid,
            replication_index: None,
        });
    }
    if it.next().is_some() {
        return Err(damaged());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_back_as_stored() {
        let sets = vec![
            ResultSet {
                columns: vec!["id".into(), "v".into()],
                column_types: vec!["INTEGER".into(), "".into()],
                rows: vec![
                    vec![Value::Integer(1), Value::Text("a".into())],
                    vec![Value::Integer(2), Value::Blob(vec![0, 1])],
                ],
                rows_affected: 2,
                last_insert_rowid: Some(2),
                replication_index: None,
            },
            ResultSet {
                rows_affected: 1,
                ..ResultSet::default()
            },
        ];
        assert_eq!(decode_answer(&encode_answer(&sets)).unwrap(), sets);
        let mut cut = encode_answer(&sets);
        cut.truncate(cut.len() - 3);
        assert!(decode_answer(&cut).is_err());
    }
}
