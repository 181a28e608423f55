//! Multi-row inserts: many rows per statement, from a few statements kept prepared.
//!
//! Writing 2,000 outbox rows one `INSERT` at a time costs a statement step each; a
//! dozen rows per statement costs a twelfth of the steps, and only four distinct
//! statement texts (64, 16, 4 and 1 rows) are ever prepared.

use rusqlite::ToSql;

use crate::error::Result;
use crate::store::sql_error;

/// Statement sizes (rows per statement), largest first: few distinct statements to
/// keep prepared, and many rows per statement instead of one each.
const BATCH_SIZES: [usize; 4] = [64, 16, 4, 1];

/// Runs `head VALUES (…), (…) … tail` over `args`, `width` values a row, a batch of
/// rows per statement; returns the rows changed.
pub fn insert_rows(
    conn: &rusqlite::Connection,
    (head, tail): (&str, &str),
    width: usize,
    args: &[&dyn ToSql],
) -> Result<usize> {
    let row = format!("({})", vec!["?"; width].join(", "));
    insert_rows_as(conn, (head, tail), &row, width, args)
}

/// [`insert_rows`] with each row written as `row` (`width` placeholders, e.g.
/// `(json(?), ?)`).
pub fn insert_rows_as(
    conn: &rusqlite::Connection,
    (head, tail): (&str, &str),
    row: &str,
    width: usize,
    args: &[&dyn ToSql],
) -> Result<usize> {
    let mut changed = 0;
    let mut rest = args;
    for size in BATCH_SIZES {
        if rest.len() < size * width {
            continue;
        }
        let sql = format!("{head} {} {tail}", vec![row; size].join(", "));
        let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
        while rest.len() >= size * width {
            let (batch, more) = rest.split_at(size * width);
            changed += stmt.execute(batch).map_err(sql_error)?;
            rest = more;
        }
    }
    Ok(changed)
}
