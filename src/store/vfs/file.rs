//! One open file of the host VFS: a host file descriptor, or memory for SQLite's
//! anonymous temporary files.

use rsqlite_vfs::{LockLevel, MemChunksFile, SyncOptions, VfsError, VfsErrorCode, VfsFile, VfsResult};

use super::{io_error, lock, Fd, HostData, HostFs};

/// A file the VFS opened.
pub enum HostFile<F: HostFs> {
    Disk(Disk<F>),
    Memory(MemChunksFile),
}

/// A file on the host. Locks between connections are not taken here: a database has
/// one owner ([`lock`]) and runs in exclusive locking mode, so the level is only
/// tracked, for `xCheckReservedLock`.
pub struct Disk<F: HostFs> {
    host: HostData<F>,
    fd: Fd,
    read_only: bool,
    /// The lock file this (main database) file holds, released on close.
    lock: Option<String>,
    level: LockLevel,
}

impl<F: HostFs> Disk<F> {
    pub(super) fn new(host: HostData<F>, fd: Fd, read_only: bool, lock: Option<String>) -> Self {
        Disk {
            host,
            fd,
            read_only,
            lock,
            level: LockLevel::None,
        }
    }

    /// Closes the descriptor and releases the lock file.
    pub(super) fn close(self) -> VfsResult<()> {
        let res = self
            .host
            .fs
            .close(self.fd)
            .map_err(|e| io_error(VfsErrorCode::IoClose, "close", e));
        if let Some(l) = &self.lock {
            lock::release(&self.host, l);
        }
        res
    }

    fn writable(&self) -> VfsResult<()> {
        if self.read_only {
            return Err(VfsError::new(
                VfsErrorCode::ReadOnly,
                "the file is open read-only".into(),
            ));
        }
        Ok(())
    }
}

impl<F: HostFs> VfsFile for Disk<F> {
    fn read(&mut self, buf: &mut [u8], offset: u64) -> VfsResult<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .host
                .fs
                .read(self.fd, &mut buf[done..], offset + done as u64)
                .map_err(|e| io_error(VfsErrorCode::IoRead, "read", e))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    fn write(&mut self, buf: &[u8], offset: u64) -> VfsResult<()> {
        self.writable()?;
        self.host
            .fs
            .write(self.fd, buf, offset)
            .map_err(|e| io_error(VfsErrorCode::IoWrite, "write", e))
    }

    fn truncate(&mut self, size: u64) -> VfsResult<()> {
        self.writable()?;
        self.host
            .fs
            .truncate(self.fd, size)
            .map_err(|e| io_error(VfsErrorCode::IoTruncate, "truncate", e))
    }

    fn sync(&mut self, options: SyncOptions) -> VfsResult<()> {
        self.host
            .fs
            .sync(self.fd, options.data_only)
            .map_err(|e| io_error(VfsErrorCode::IoSync, "sync", e))
    }

    fn size(&self) -> VfsResult<u64> {
        self.host
            .fs
            .size(self.fd)
            .map_err(|e| io_error(VfsErrorCode::IoStat, "stat", e))
    }

    fn lock(&mut self, level: LockLevel) -> VfsResult<()> {
        self.level = self.level.max(level);
        Ok(())
    }

    fn unlock(&mut self, level: LockLevel) -> VfsResult<()> {
        self.level = self.level.min(level);
        Ok(())
    }

    fn check_reserved_lock(&self) -> VfsResult<bool> {
        Ok(self.level >= LockLevel::Reserved)
    }
}

impl<F: HostFs> HostFile<F> {
    fn get(&self) -> &dyn VfsFile {
        match self {
            HostFile::Disk(d) => d,
            HostFile::Memory(m) => m,
        }
    }

    fn get_mut(&mut self) -> &mut dyn VfsFile {
        match self {
            HostFile::Disk(d) => d,
            HostFile::Memory(m) => m,
        }
    }
}

impl<F: HostFs> VfsFile for HostFile<F> {
    fn read(&mut self, buf: &mut [u8], offset: u64) -> VfsResult<usize> {
        self.get_mut().read(buf, offset)
    }

    fn write(&mut self, buf: &[u8], offset: u64) -> VfsResult<()> {
        self.get_mut().write(buf, offset)
    }

    fn truncate(&mut self, size: u64) -> VfsResult<()> {
        self.get_mut().truncate(size)
    }

    fn sync(&mut self, options: SyncOptions) -> VfsResult<()> {
        self.get_mut().sync(options)
    }

    fn size(&self) -> VfsResult<u64> {
        self.get().size()
    }

    fn lock(&mut self, level: LockLevel) -> VfsResult<()> {
        self.get_mut().lock(level)
    }

    fn unlock(&mut self, level: LockLevel) -> VfsResult<()> {
        self.get_mut().unlock(level)
    }

    fn check_reserved_lock(&self) -> VfsResult<bool> {
        self.get().check_reserved_lock()
    }
}
