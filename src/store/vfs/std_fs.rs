//! [`HostFs`] over `std::fs`, for native programs and the VFS's own tests. (Native
//! replicas normally open their file through SQLite's own unix VFS; this one runs the
//! same single-owner layout the wasm build uses in Node, so it can be tested natively.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

use super::{Fd, HostError, HostFs, OpenMode};

/// The host file system of a native (unix) process.
#[derive(Default)]
pub struct StdFs {
    files: RefCell<HashMap<Fd, File>>,
    next: std::cell::Cell<Fd>,
}

fn host_error(e: io::Error) -> HostError {
    let code = match e.kind() {
        io::ErrorKind::NotFound => "ENOENT",
        io::ErrorKind::AlreadyExists => "EEXIST",
        io::ErrorKind::PermissionDenied => "EACCES",
        io::ErrorKind::StorageFull => "ENOSPC",
        _ => "EIO",
    };
    HostError::new(code, e.to_string())
}

impl StdFs {
    fn with<T>(&self, fd: Fd, f: impl FnOnce(&File) -> io::Result<T>) -> Result<T, HostError> {
        let files = self.files.borrow();
        let file = files
            .get(&fd)
            .ok_or_else(|| HostError::new("EBADF", format!("no open file {fd}")))?;
        f(file).map_err(host_error)
    }
}

impl HostFs for StdFs {
    fn open(&self, path: &str, mode: OpenMode) -> Result<Fd, HostError> {
        let mut o = OpenOptions::new();
        o.read(true);
        match mode {
            OpenMode::ReadOnly => {}
            OpenMode::ReadWrite => {
                o.write(true);
            }
            OpenMode::Create => {
                o.write(true).create(true);
            }
            OpenMode::CreateNew => {
                o.write(true).create_new(true);
            }
        }
        let file = o.open(path).map_err(host_error)?;
        let fd = self.next.get() + 1;
        self.next.set(fd);
        self.files.borrow_mut().insert(fd, file);
        Ok(fd)
    }

    fn read(&self, fd: Fd, buf: &mut [u8], offset: u64) -> Result<usize, HostError> {
        self.with(fd, |f| f.read_at(buf, offset))
    }

    fn write(&self, fd: Fd, buf: &[u8], offset: u64) -> Result<(), HostError> {
        self.with(fd, |f| f.write_all_at(buf, offset))
    }

    fn truncate(&self, fd: Fd, size: u64) -> Result<(), HostError> {
        self.with(fd, |f| f.set_len(size))
    }

    fn sync(&self, fd: Fd, data_only: bool) -> Result<(), HostError> {
        self.with(fd, |f| if data_only { f.sync_data() } else { f.sync_all() })
    }

    fn size(&self, fd: Fd) -> Result<u64, HostError> {
        self.with(fd, |f| f.metadata().map(|m| m.len()))
    }

    fn close(&self, fd: Fd) -> Result<(), HostError> {
        self.files
            .borrow_mut()
            .remove(&fd)
            .map(drop)
            .ok_or_else(|| HostError::new("EBADF", format!("no open file {fd}")))
    }

    fn remove(&self, path: &str) -> Result<(), HostError> {
        std::fs::remove_file(path).map_err(host_error)
    }

    fn exists(&self, path: &str) -> Result<bool, HostError> {
        std::fs::exists(path).map_err(host_error)
    }

    /// Symlinks resolved — of the file if it exists, else of its directory — so every
    /// spelling of one database names the same lock file.
    fn resolve(&self, path: &str) -> Result<String, HostError> {
        let abs = std::path::absolute(path).map_err(host_error)?;
        let real = std::fs::canonicalize(&abs).or_else(|_| match (abs.parent(), abs.file_name()) {
            (Some(dir), Some(name)) => std::fs::canonicalize(dir).map(|d| d.join(name)),
            _ => Ok(abs.clone()),
        });
        Ok(real.unwrap_or(abs).to_string_lossy().into_owned())
    }

    fn sync_dir(&self, path: &str) -> Result<(), HostError> {
        File::open(path).and_then(|d| d.sync_all()).map_err(host_error)
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    /// On Linux, from `/proc`; elsewhere every other process counts as alive, so a
    /// stale lock is never taken over there (delete it by hand).
    fn alive(&self, pid: u32) -> bool {
        if cfg!(target_os = "linux") {
            std::path::Path::new(&format!("/proc/{pid}")).exists()
        } else {
            pid != std::process::id()
        }
    }
}
