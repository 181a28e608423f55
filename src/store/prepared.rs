//! Prepared statements kept across calls and addressed by small integer handles: the
//! fast path of the embedded replica's `execute` (wasm `Replica.prepare` / `run`).
//!
//! `Store::execute_into` goes through rusqlite's `prepare_cached`, which per call
//! hashes the SQL text, moves the statement out of its LRU and back, and re-reads the
//! column names and declared types (with UTF-8 checks and allocations). For a point
//! read that is a large share of the time. Here a call is an index into a slot array
//! and the raw `sqlite3_*` calls, arguments are bound straight from the packed bytes
//! (text and blobs without a copy), and the column header is reported only when it
//! changes: on the first run and after SQLite re-prepared the statement (a schema
//! change can change what `select *` returns).
//!
//! Only a single statement is kept; SQL with a second statement after it, an empty
//! statement, or SQL that fails to prepare is left to the generic path, whose
//! behaviour (and error) stays the reference.

use std::ffi::{c_char, c_int, CStr};
use std::ptr;

use rusqlite::ffi;
use rusqlite::types::ValueRef;

use crate::sql::ValueRef as Arg;

use super::packed::{ArgsKind, Packed};
use super::{is_insert, sql_error, summary, RowSink};
use crate::error::{Error, Result};

/// Statements kept per store. A new one past this replaces the oldest (FIFO); its
/// handle then reports [`Run::Stale`] and the caller prepares again.
pub const CAPACITY: usize = 256;

/// Handles are `sequence << 8 | slot`, the sequence counting preparations (wrapping
/// within 24 bits, never 0): a handle names one preparation, so a slot reused for
/// another statement never answers to an old handle, and a handle is never 0 or 1.
const SLOT_BITS: u32 = 8;
const _: () = assert!(CAPACITY <= 1 << SLOT_BITS);

/// The outcome of [`super::Store::run_prepared`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// The handle's statement was replaced (or never existed): prepare it again.
    Stale,
    /// The statement ran. `header`: the sink got the column header (`column` calls
    /// before the rows) because it is new or changed since the last successful run.
    Done { header: bool },
}

struct Slot {
    handle: u32,
    stmt: *mut ffi::sqlite3_stmt,
    params: usize,
    insert: bool,
    /// SQLite's re-prepare counter when the header was last reported (None: never).
    shown: Option<c_int>,
}

/// The statements of one connection. Owned by [`super::Store`], declared before the
/// connection so they are finalized before it closes.
pub(crate) struct Prepared {
    slots: Vec<Slot>,
    oldest: usize,
    seq: u32,
    /// Scratch for `:name` lookups (a NUL-terminated name).
    name: Vec<u8>,
}

// SAFETY: the statement pointers are only used through the `Store` that owns both
// them and their connection, never concurrently (the `RefCell` in `Store` is not
// `Sync`); a rusqlite `Connection` is `Send` on the same terms.
unsafe impl Send for Prepared {}

impl Drop for Prepared {
    fn drop(&mut self) {
        for s in self.slots.drain(..) {
            // SAFETY: each statement was prepared on the still-open connection and is
            // finalized exactly once, here or when its slot is reused.
            unsafe { ffi::sqlite3_finalize(s.stmt) };
        }
    }
}

/// A rusqlite error for a failed `sqlite3_*` call, built as rusqlite builds its own
/// (so `sql_error` classifies it and words it exactly like the generic path's).
fn failure(db: *mut ffi::sqlite3, rc: c_int) -> Error {
    // SAFETY: `db` is the open connection; the returned strings are NUL-terminated
    // and copied before any other SQLite call.
    let msg = unsafe {
        let p = if ffi::sqlite3_errcode(db) == rc {
            ffi::sqlite3_errmsg(db)
        } else {
            ffi::sqlite3_errstr(rc)
        };
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    sql_error(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg))
}

/// The bytes of a column's text or blob (SQLite gives NULL for an empty one).
///
/// SAFETY: `stmt` has a current row and `p` is that column's text or blob pointer, read
/// just before this call; the slice lives until the next step or reset.
unsafe fn column_bytes<'a>(stmt: *mut ffi::sqlite3_stmt, i: c_int, p: *const u8) -> &'a [u8] {
    let n = unsafe { ffi::sqlite3_column_bytes(stmt, i) };
    if p.is_null() || n <= 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(p, n as usize) }
    }
}

fn cstr_lossy<'a>(p: *const c_char) -> std::borrow::Cow<'a, str> {
    if p.is_null() {
        return "".into();
    }
    // SAFETY: SQLite returns NUL-terminated strings that live until the statement is
    // re-prepared or finalized; the caller uses them before either.
    unsafe { CStr::from_ptr(p) }.to_string_lossy()
}

impl Prepared {
    pub(crate) fn new() -> Self {
        Prepared {
            slots: Vec::new(),
            oldest: 0,
            seq: 0,
            name: Vec::new(),
        }
    }

    /// Prepares one statement and keeps it. `Ok(None)`: SQLite accepted the text but
    /// it is not a single statement (empty, or more after it): run it the generic way.
    /// `Err(None)`: SQLite rejected it; the caller reports the generic path's error.
    pub(crate) fn prepare(&mut self, db: *mut ffi::sqlite3, sql: &str) -> std::result::Result<Option<u32>, ()> {
        let Ok(len) = c_int::try_from(sql.len()) else {
            return Ok(None);
        };
        let mut stmt = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        // SAFETY: `sql` is valid for `len` bytes (no NUL terminator needed with an
        // explicit length); `stmt` and `tail` are out-pointers.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut stmt,
                &mut tail,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(());
        }
        if stmt.is_null() {
            return Ok(None);
        }
        let used = if tail.is_null() {
            sql.len()
        } else {
            (tail as usize).saturating_sub(sql.as_ptr() as usize)
        };
        let rest = sql.get(used..).unwrap_or("");
        if !rest.bytes().all(|b| b.is_ascii_whitespace() || b == b';') {
            // SAFETY: just prepared, not kept anywhere.
            unsafe { ffi::sqlite3_finalize(stmt) };
            return Ok(None);
        }
        self.seq = (self.seq + 1) & ((1 << (32 - SLOT_BITS)) - 1);
        if self.seq == 0 {
            self.seq = 1;
        }
        // SAFETY: `stmt` is a valid prepared statement.
        let params = unsafe { ffi::sqlite3_bind_parameter_count(stmt) };
        let index = if self.slots.len() < CAPACITY {
            self.slots.len()
        } else {
            let i = self.oldest;
            self.oldest = (i + 1) % CAPACITY;
            i
        };
        let slot = Slot {
            handle: (self.seq << SLOT_BITS) | index as u32,
            stmt,
            params: params.max(0) as usize,
            insert: is_insert(sql),
            shown: None,
        };
        let handle = slot.handle;
        if index == self.slots.len() {
            self.slots.push(slot);
        } else {
            let old = std::mem::replace(&mut self.slots[index], slot);
            // SAFETY: the replaced statement is not referenced any more.
            unsafe { ffi::sqlite3_finalize(old.stmt) };
        }
        Ok(Some(handle))
    }

    /// Runs a kept statement with packed arguments (see [`super::packed`]).
    pub(crate) fn run(
        &mut self,
        db: *mut ffi::sqlite3,
        handle: u32,
        args: &[u8],
        sink: &mut impl RowSink,
    ) -> Result<Run> {
        let Prepared { slots, name, .. } = self;
        let Some(slot) = slots
            .get_mut((handle & ((1 << SLOT_BITS) - 1)) as usize)
            .filter(|s| s.handle == handle)
        else {
            return Ok(Run::Stale);
        };
        let stmt = slot.stmt;
        let res = bind(db, stmt, slot.params, args, name).and_then(|()| step_all(db, slot, sink));
        // SAFETY: `stmt` is valid. Resetting ends the statement (and any read
        // transaction it holds); clearing the bindings drops SQLite's pointers into
        // `args`, which were bound without a copy.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        res
    }
}

/// Binds packed arguments with the generic path's rules (`convert::bind`): names with
/// or without their `:`/`@`/`$` prefix, every placeholder bound unless names are used.
fn bind(
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    expected: usize,
    args: &[u8],
    name: &mut Vec<u8>,
) -> Result<()> {
    let mut p = Packed::new(args)?;
    let named = p.kind() == ArgsKind::Named && p.count() > 0;
    if !named && p.count() > expected {
        return Err(Error::InvalidArgument(format!(
            "the statement has {expected} placeholders but {} arguments were given",
            p.count()
        )));
    }
    let mut i = 0;
    while let Some((arg_name, v)) = p.next()? {
        i += 1;
        let idx = match arg_name {
            None => i as c_int,
            Some(n) => named_index(stmt, n, name)
                .ok_or_else(|| Error::InvalidArgument(format!("the statement has no parameter named {n:?}")))?,
        };
        // SAFETY: `stmt` is valid and reset; text and blobs are bound without a copy
        // (no destructor): `args` outlives the run, which clears the bindings at its end.
        let rc = unsafe {
            match v {
                Arg::Null => ffi::sqlite3_bind_null(stmt, idx),
                Arg::Integer(n) => ffi::sqlite3_bind_int64(stmt, idx, n),
                Arg::Real(f) => ffi::sqlite3_bind_double(stmt, idx, f),
                Arg::Text(t) => match c_int::try_from(t.len()) {
                    Ok(n) => ffi::sqlite3_bind_text(stmt, idx, t.as_ptr().cast(), n, None),
                    Err(_) => ffi::SQLITE_TOOBIG,
                },
                Arg::Blob(b) => match c_int::try_from(b.len()) {
                    Ok(n) => ffi::sqlite3_bind_blob(stmt, idx, b.as_ptr().cast(), n, None),
                    Err(_) => ffi::SQLITE_TOOBIG,
                },
            }
        };
        if rc != ffi::SQLITE_OK {
            return Err(failure(db, rc));
        }
    }
    if !named && i < expected {
        return Err(Error::InvalidArgument(format!(
            "the statement has {expected} placeholders but {i} arguments were given"
        )));
    }
    Ok(())
}

/// The index of `:bare`, `@bare` or `$bare` (first found, in that order), `bare` being
/// the name without its prefix.
fn named_index(stmt: *mut ffi::sqlite3_stmt, name: &str, buf: &mut Vec<u8>) -> Option<c_int> {
    let bare = name.trim_start_matches([':', '@', '$']);
    if bare.as_bytes().contains(&0) {
        return None;
    }
    [b':', b'@', b'$'].into_iter().find_map(|prefix| {
        buf.clear();
        buf.push(prefix);
        buf.extend_from_slice(bare.as_bytes());
        buf.push(0);
        // SAFETY: `buf` is NUL-terminated with no NUL inside.
        let i = unsafe { ffi::sqlite3_bind_parameter_index(stmt, buf.as_ptr().cast()) };
        (i > 0).then_some(i)
    })
}

/// Steps to the end, handing the header (when due) and the rows to `sink`.
fn step_all(db: *mut ffi::sqlite3, slot: &mut Slot, sink: &mut impl RowSink) -> Result<Run> {
    let stmt = slot.stmt;
    // SAFETY (this whole function): `stmt` is a valid statement with its arguments
    // bound; column accessors are used only while a row is current.
    let before = unsafe { ffi::sqlite3_total_changes64(db) };
    let mut rc = unsafe { ffi::sqlite3_step(stmt) };
    // A re-prepare (schema change) happens inside the first step: only now is the
    // column list the one this run's rows have.
    let reprepared = unsafe { ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0) };
    let header = slot.shown != Some(reprepared);
    let width = unsafe { ffi::sqlite3_column_count(stmt) }.max(0);
    if header {
        for i in 0..width {
            let name = cstr_lossy(unsafe { ffi::sqlite3_column_name(stmt, i) });
            let decl = cstr_lossy(unsafe { ffi::sqlite3_column_decltype(stmt, i) });
            sink.column(&name, &decl);
        }
    }
    while rc == ffi::SQLITE_ROW {
        sink.begin_row(width as usize);
        for i in 0..width {
            let v = unsafe {
                match ffi::sqlite3_column_type(stmt, i) {
                    ffi::SQLITE_INTEGER => ValueRef::Integer(ffi::sqlite3_column_int64(stmt, i)),
                    ffi::SQLITE_FLOAT => ValueRef::Real(ffi::sqlite3_column_double(stmt, i)),
                    ffi::SQLITE_TEXT => ValueRef::Text(column_bytes(stmt, i, ffi::sqlite3_column_text(stmt, i))),
                    ffi::SQLITE_BLOB => ValueRef::Blob(column_bytes(stmt, i, ffi::sqlite3_column_blob(stmt, i).cast())),
                    _ => ValueRef::Null,
                }
            };
            sink.value(v);
        }
        rc = unsafe { ffi::sqlite3_step(stmt) };
    }
    if rc != ffi::SQLITE_DONE {
        return Err(failure(db, rc));
    }
    // SAFETY: `db` is the open connection.
    let (rows_affected, rowid) = unsafe {
        summary(
            ffi::sqlite3_total_changes64(db) != before,
            ffi::sqlite3_changes64(db).max(0) as u64,
            ffi::sqlite3_last_insert_rowid(db),
            width as usize,
            slot.insert,
        )
    };
    sink.finish(rows_affected, rowid);
    slot.shown = Some(reprepared);
    Ok(Run::Done { header })
}

#[cfg(test)]
#[path = "prepared_tests.rs"]
mod tests;
