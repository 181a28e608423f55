//! One owner per database file: `<db>-lock` holds the id of the process that has the
//! database open.
//!
//! The host VFS runs databases in exclusive locking mode and keeps no shared memory,
//! so two connections on one file would each trust their own cache and corrupt it.
//! The lock file prevents that:
//!
//! - taking it is an exclusive create (`O_EXCL`): of two processes, one wins;
//! - a second open in the same process is refused too (the process's held set);
//! - a lock whose process is gone — killed, crashed, or an earlier run that had the
//!   same id — is stale and is taken over;
//! - an empty lock file (its owner is writing it, or died in the microseconds between
//!   creating and writing it) counts as held; the error names the file to delete.
//!
//! Closing the database removes the lock file.
//!
//! A host that keeps files to one owner itself ([`HostFs::exclusive`]: OPFS) writes no
//! lock file; only the second open in this process is refused.

use super::{Host, HostFs, OpenMode};
use crate::error::Error;

/// Takes the lock of database `db`; returns the lock file's path.
pub fn acquire<F: HostFs>(host: &Host<F>, db: &str) -> Result<String, Error> {
    let cannot = |e: super::HostError| Error::InvalidArgument(format!("cannot open the local database {db:?}: {e}"));
    let db = host.fs.resolve(db).map_err(cannot)?;
    let lock = format!("{db}-lock");
    if host.held.borrow().contains(&db) {
        return Err(Error::DatabaseLocked(format!(
            "{db} is already open in this process: close the other client first"
        )));
    }
    if host.fs.exclusive() {
        host.held.borrow_mut().insert(db);
        return Ok(lock);
    }
    let me = host.fs.pid();
    for _ in 0..3 {
        match host.fs.open(&lock, OpenMode::CreateNew) {
            Ok(fd) => {
                let written = host.fs.write(fd, format!("{me}\n").as_bytes(), 0);
                let _ = host.fs.close(fd);
                if let Err(e) = written {
                    let _ = host.fs.remove(&lock);
                    return Err(cannot(e));
                }
                host.held.borrow_mut().insert(db);
                return Ok(lock);
            }
            Err(e) if e.code == "EEXIST" => match owner(host, &lock) {
                Some(pid) if pid != me && host.fs.alive(pid) => {
                    return Err(Error::DatabaseLocked(format!(
                        "{db} is open in process {pid} (lock file {lock}): close it there first"
                    )))
                }
                Some(_) => {
                    // Stale: its process is gone (or was an earlier run with our id).
                    match host.fs.remove(&lock) {
                        Ok(()) => {}
                        Err(e) if e.code == "ENOENT" => {}
                        Err(e) => return Err(cannot(e)),
                    }
                }
                None => {
                    return Err(Error::DatabaseLocked(format!(
                        "{db} is being opened by another process, or its lock file {lock} was left empty by a \
                         crash: delete the lock file if no process has the database open"
                    )))
                }
            },
            Err(e) if e.code == "ENOENT" => {
                return Err(Error::InvalidArgument(format!(
                    "cannot open the local database {db:?}: its directory does not exist"
                )))
            }
            Err(e) => return Err(cannot(e)),
        }
    }
    Err(Error::DatabaseLocked(format!(
        "{db}: other processes keep taking its lock file {lock}"
    )))
}

/// Releases the lock file `lock` (taken by [`acquire`]) if it is still this process's.
pub fn release<F: HostFs>(host: &Host<F>, lock: &str) {
    if let Some(db) = lock.strip_suffix("-lock") {
        host.held.borrow_mut().remove(db);
    }
    if !host.fs.exclusive() && owner(host, lock) == Some(host.fs.pid()) {
        let _ = host.fs.remove(lock);
    }
}

/// The process id a lock file names; `None` when it is missing, empty or unreadable.
fn owner<F: HostFs>(host: &Host<F>, lock: &str) -> Option<u32> {
    let fd = host.fs.open(lock, OpenMode::ReadOnly).ok()?;
    let mut buf = [0u8; 24];
    let n = host.fs.read(fd, &mut buf, 0);
    let _ = host.fs.close(fd);
    std::str::from_utf8(&buf[..n.ok()?]).ok()?.trim().parse().ok()
}
