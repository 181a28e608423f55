//! A SQLite VFS over the host's file system, for runtimes where SQLite itself has
//! none: SQLite compiled to wasm (`sqlite-wasm-rs`) only knows memory, so a replica
//! opened as `file:app.db` in Node would silently live in memory and lose its queued
//! writes on restart. This VFS gives it real files through a small trait, [`HostFs`],
//! which the wasm binding implements with Node's `fs` (`src/wasm/nodefs.rs`) and the
//! tests implement with `std::fs`.
//!
//! How a database is kept on it (set by [`crate::store::Store::open_on`]):
//! - **WAL, `synchronous = NORMAL`**: a commit appends its pages to `<db>-wal` with one
//!   write and no fsync, so it survives a crash of the process (the bytes are in the
//!   OS) and only an OS crash can lose the last commits — the same trade as the native
//!   build's file replicas. Checkpoints fsync.
//! - **Exclusive locking mode**: the host has no shared memory between processes (no
//!   `xShm*` here), which SQLite allows for WAL only when one connection owns the file.
//! - **One owner, enforced**: opening a database writes `<db>-lock` with this process's
//!   id ([`lock`]). A second open — in this process or another — fails with
//!   `DATABASE_LOCKED` instead of corrupting the file; a lock left by a process that
//!   died is taken over.
//!
//! Anonymous files (SQLite's temporary tables and statement journals) stay in memory.
//!
//! ```
//! # #[cfg(unix)] {
//! use edgesync::store::{vfs, Store};
//! // SAFETY: the VFS is used from this thread only.
//! unsafe { vfs::register("doc-example-fs", vfs::StdFs::default(), vfs::DefaultOs) }.unwrap();
//! let dir = std::env::temp_dir().join(format!("edgesync-vfs-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("app.db").to_string_lossy().into_owned();
//! let db = Store::open_on(&path, Some("doc-example-fs")).unwrap();
//! db.execute(&edgesync::Statement::new("create table t (x)")).unwrap();
//! // A second owner is refused while the first is open.
//! let err = Store::open_on(&path, Some("doc-example-fs")).err().unwrap();
//! assert_eq!(err.code(), "DATABASE_LOCKED");
//! drop(db);
//! assert!(Store::open_on(&path, Some("doc-example-fs")).is_ok());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # }
//! ```

mod file;
pub mod lock;
#[cfg(all(unix, not(target_arch = "wasm32")))]
mod std_fs;
#[cfg(all(test, unix))]
mod tests;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use rsqlite_vfs::{
    AccessMode, FileKind, MemChunksFile, OpenAccess, OpenOptions, OpenRequest, OpenedFile, OsCallback, SQLiteIoMethods,
    SQLiteVfs, VfsError, VfsErrorCode, VfsResult, VfsStore,
};

use crate::error::Error;
pub use file::HostFile;
#[cfg(all(unix, not(target_arch = "wasm32")))]
pub use std_fs::StdFs;

/// A file descriptor of the host.
pub type Fd = i64;

/// How [`HostFs::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    ReadOnly,
    /// Read-write; the file must exist.
    ReadWrite,
    /// Read-write; created if missing.
    Create,
    /// Read-write; must not exist yet (`O_EXCL`).
    CreateNew,
}

/// A failed host call: the OS error name where there is one (`ENOENT`, `EEXIST`,
/// `ENOSPC`, …) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub code: String,
    pub message: String,
}

impl HostError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        HostError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The synchronous file calls the VFS needs from its host. Offsets are byte offsets;
/// `read` may return fewer bytes than asked only at the end of the file.
pub trait HostFs: 'static {
    fn open(&self, path: &str, mode: OpenMode) -> Result<Fd, HostError>;
    fn read(&self, fd: Fd, buf: &mut [u8], offset: u64) -> Result<usize, HostError>;
    /// Writes all of `buf`.
    fn write(&self, fd: Fd, buf: &[u8], offset: u64) -> Result<(), HostError>;
    fn truncate(&self, fd: Fd, size: u64) -> Result<(), HostError>;
    fn sync(&self, fd: Fd, data_only: bool) -> Result<(), HostError>;
    fn size(&self, fd: Fd) -> Result<u64, HostError>;
    fn close(&self, fd: Fd) -> Result<(), HostError>;
    fn remove(&self, path: &str) -> Result<(), HostError>;
    fn exists(&self, path: &str) -> Result<bool, HostError>;
    /// The absolute, normalized form of `path`, symlinks resolved: the one name of the
    /// file, which its lock file is named after.
    fn resolve(&self, path: &str) -> Result<String, HostError>;
    /// Makes a directory's entries durable (after a file in it was created or removed).
    fn sync_dir(&self, path: &str) -> Result<(), HostError>;
    /// This process's id.
    fn pid(&self) -> u32;
    /// Whether a process with this id is running.
    fn alive(&self, pid: u32) -> bool;
    /// Whether the host itself keeps every database to one owner, so no `<db>-lock`
    /// file is needed ([`lock`]): OPFS, whose files the browser lets one worker open
    /// (src/wasm/opfs.rs). A second open in this process is still refused.
    fn exclusive(&self) -> bool {
        false
    }
}

/// What every open file of one registered VFS shares.
pub struct Host<F: HostFs> {
    pub(crate) fs: F,
    os: Box<dyn OsCallback>,
    /// Lock files this process holds (resolved database paths).
    pub(crate) held: RefCell<HashSet<String>>,
}

/// The `AppData` of the VFS: the host, shared with every open file.
pub type HostData<F> = Rc<Host<F>>;

thread_local! {
    /// Why the last open through a host VFS failed, for [`take_open_error`]: SQLite
    /// itself only reports "unable to open database file".
    static OPEN_ERROR: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// The reason the last failed open through a host VFS on this thread gave, if any.
pub fn take_open_error() -> Option<Error> {
    OPEN_ERROR.with(|e| e.borrow_mut().take())
}

fn open_failed(err: Error) -> VfsError {
    let v = VfsError::new(VfsErrorCode::CantOpen, err.to_string().into());
    OPEN_ERROR.with(|e| *e.borrow_mut() = Some(err));
    v
}

/// Maps a host error to the SQLite error of the operation that failed.
pub(crate) fn io_error(code: VfsErrorCode, what: &str, e: HostError) -> VfsError {
    let code = match e.code.as_str() {
        "ENOSPC" | "EDQUOT" | "EFBIG" => VfsErrorCode::Full,
        "EACCES" | "EPERM" | "EROFS" => VfsErrorCode::Permission,
        _ => code,
    };
    VfsError::new(code, format!("{what}: {e}").into())
}

/// The [`VfsStore`] of a host file system `F`.
pub struct HostStore<F>(std::marker::PhantomData<F>);

impl<F: HostFs> VfsStore for HostStore<F> {
    type File = HostFile<F>;
    type AppData = HostData<F>;

    fn open_file(host: &HostData<F>, request: OpenRequest<'_>) -> VfsResult<OpenedFile<HostFile<F>>> {
        let options = request.options;
        let Some(name) = request.filename.map(|f| f.path()) else {
            // SQLite's anonymous temporary files.
            return Ok(OpenedFile {
                file: HostFile::Memory(MemChunksFile::default()),
                access: options.access(),
            });
        };
        let read_only = options.access() == OpenAccess::ReadOnly;
        let mode = match (read_only, options.create(), options.exclusive()) {
            (true, _, _) => OpenMode::ReadOnly,
            (false, false, _) => OpenMode::ReadWrite,
            (false, true, false) => OpenMode::Create,
            (false, true, true) => OpenMode::CreateNew,
        };
        // The main database is owned by one connection of one process at a time.
        let lock = if options.kind() == Some(FileKind::MainDb) && !read_only {
            Some(lock::acquire(host, name).map_err(open_failed)?)
        } else {
            None
        };
        let fd = match host.fs.open(name, mode) {
            Ok(fd) => fd,
            Err(e) => {
                if let Some(l) = &lock {
                    lock::release(host, l);
                }
                return Err(open_failed(Error::InvalidArgument(format!(
                    "cannot open the local database file {name:?}: {e}"
                ))));
            }
        };
        if options.create() && options.kind() == Some(FileKind::MainDb) {
            let _ = host.fs.sync_dir(&parent(name));
        }
        Ok(OpenedFile {
            file: HostFile::Disk(file::Disk::new(host.clone(), fd, read_only, lock)),
            access: options.access(),
        })
    }

    fn close_file(host: &HostData<F>, name: Option<&str>, file: HostFile<F>, options: OpenOptions) -> VfsResult<()> {
        let HostFile::Disk(disk) = file else {
            return Ok(());
        };
        let res = disk.close();
        if let (true, Some(name)) = (options.delete_on_close(), name) {
            host.fs
                .remove(name)
                .map_err(|e| io_error(VfsErrorCode::IoDelete, name, e))?;
        }
        res
    }

    fn access(host: &HostData<F>, name: &str, _mode: AccessMode) -> VfsResult<bool> {
        host.fs
            .exists(name)
            .map_err(|e| io_error(VfsErrorCode::IoAccess, name, e))
    }

    fn full_pathname(host: &HostData<F>, name: &str) -> VfsResult<String> {
        host.fs
            .resolve(name)
            .map_err(|e| io_error(VfsErrorCode::CantOpen, name, e))
    }

    fn delete_file(host: &HostData<F>, name: &str, sync_dir: bool) -> VfsResult<()> {
        match host.fs.remove(name) {
            Ok(()) => {}
            Err(e) if e.code == "ENOENT" => {
                return Err(VfsError::new(VfsErrorCode::IoDeleteNoEntry, name.to_string().into()))
            }
            Err(e) => return Err(io_error(VfsErrorCode::IoDelete, name, e)),
        }
        if sync_dir {
            host.fs
                .sync_dir(&parent(name))
                .map_err(|e| io_error(VfsErrorCode::IoDirectorySync, name, e))?;
        }
        Ok(())
    }
}

/// The directory part of a path (`.` for a bare name).
fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => path[..i].into(),
        None => ".".into(),
    }
}

struct HostIo<F>(std::marker::PhantomData<F>);

impl<F: HostFs> SQLiteIoMethods for HostIo<F> {
    type Store = HostStore<F>;
}

struct HostVfs<F>(std::marker::PhantomData<F>);

impl<F: HostFs> SQLiteVfs<HostIo<F>> for HostVfs<F> {
    type Os = dyn OsCallback;

    fn os(host: &HostData<F>) -> &Self::Os {
        &*host.os
    }
}

/// Registers `fs` as the SQLite VFS `name` (not the default one). Registering a name
/// that is already registered is a no-op, so a binding may call this at every start.
///
/// # Safety
///
/// The host is not thread-safe (`Rc`, `RefCell`): every connection opened on this VFS
/// must be used from the thread that registered it. (wasm has one thread; native tests
/// register one VFS per test.)
pub unsafe fn register<F: HostFs>(name: &str, fs: F, os: impl OsCallback + 'static) -> crate::Result<()> {
    let host = Rc::new(Host {
        fs,
        os: Box::new(os),
        held: RefCell::new(HashSet::new()),
    });
    // SAFETY: HostVfs and HostIo use rsqlite-vfs's default file layout and callbacks
    // for the store HostStore<F>; the caller keeps the VFS on one thread, and the
    // registration is kept for the life of the process.
    match unsafe { rsqlite_vfs::register_vfs::<HostIo<F>, HostVfs<F>>(name, host, false) } {
        // Dropping the registration leaves the VFS registered for the life of the
        // process (SQLite holds pointers into it); only `unregister` would free it.
        Ok(_registration) => Ok(()),
        Err(rsqlite_vfs::RegisterVfsError::NameConflict(_)) => Ok(()),
        Err(e) => Err(Error::InvalidOperation(format!(
            "cannot register the file system {name:?}: {e}"
        ))),
    }
}

/// An [`OsCallback`] from the standard library, for native builds: the system clock,
/// and randomness from the process's hasher keys (SQLite uses it for WAL salts and
/// temporary names, never for secrets).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultOs;

#[cfg(not(target_arch = "wasm32"))]
impl OsCallback for DefaultOs {
    fn sleep(&self, dur: std::time::Duration) {
        std::thread::sleep(dur);
    }

    fn random(&self, buf: &mut [u8]) -> usize {
        use std::hash::{BuildHasher, Hasher};
        let state = std::collections::hash_map::RandomState::new();
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let mut h = state.build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
        buf.len()
    }

    fn epoch_timestamp_in_ms(&self) -> VfsResult<i64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| VfsError::new(VfsErrorCode::Error, e.to_string().into()))?;
        Ok(now.as_millis() as i64)
    }
}
