//! The host VFS on real files (`std::fs`): rsqlite-vfs's conformance suite, SQLite
//! databases that survive a crash of their process, and the one-owner lock.
//!
//! Each test registers its own VFS (a VFS's host is single-threaded, and tests run on
//! several threads) and works in its own temporary directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::sql::{Statement, Value};
use crate::store::Store;

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "edgesync-vfs-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Registers a VFS of its own for the calling test; returns its name.
fn test_vfs() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("edgesync-test-fs-{}", N.fetch_add(1, Ordering::Relaxed));
    // SAFETY: each test uses its VFS from its own thread only.
    unsafe { register(&name, StdFs::default(), DefaultOs) }.unwrap();
    name
}

fn exec(db: &Store, sql: &str) -> crate::sql::ResultSet {
    db.execute(&Statement::new(sql)).unwrap()
}

fn count(db: &Store, table: &str) -> i64 {
    match exec(db, &format!("select count(*) from {table}")).rows[0][0] {
        Value::Integer(n) => n,
        ref v => panic!("count is {v:?}"),
    }
}

/// [`StdFs`] with relative paths under a root: the conformance suite uses fixed
/// relative names.
struct Rooted {
    root: PathBuf,
    fs: StdFs,
}

impl Rooted {
    fn at(&self, path: &str) -> String {
        if Path::new(path).is_absolute() {
            path.to_string()
        } else {
            self.root.join(path).to_string_lossy().into_owned()
        }
    }
}

impl HostFs for Rooted {
    fn open(&self, path: &str, mode: OpenMode) -> Result<Fd, HostError> {
        self.fs.open(&self.at(path), mode)
    }
    fn read(&self, fd: Fd, buf: &mut [u8], offset: u64) -> Result<usize, HostError> {
        self.fs.read(fd, buf, offset)
    }
    fn write(&self, fd: Fd, buf: &[u8], offset: u64) -> Result<(), HostError> {
        self.fs.write(fd, buf, offset)
    }
    fn truncate(&self, fd: Fd, size: u64) -> Result<(), HostError> {
        self.fs.truncate(fd, size)
    }
    fn sync(&self, fd: Fd, data_only: bool) -> Result<(), HostError> {
        self.fs.sync(fd, data_only)
    }
    fn size(&self, fd: Fd) -> Result<u64, HostError> {
        self.fs.size(fd)
    }
    fn close(&self, fd: Fd) -> Result<(), HostError> {
        self.fs.close(fd)
    }
    fn remove(&self, path: &str) -> Result<(), HostError> {
        self.fs.remove(&self.at(path))
    }
    fn exists(&self, path: &str) -> Result<bool, HostError> {
        self.fs.exists(&self.at(path))
    }
    fn resolve(&self, path: &str) -> Result<String, HostError> {
        Ok(self.at(path))
    }
    fn sync_dir(&self, path: &str) -> Result<(), HostError> {
        self.fs.sync_dir(&self.at(path))
    }
    fn pid(&self) -> u32 {
        self.fs.pid()
    }
    fn alive(&self, pid: u32) -> bool {
        self.fs.alive(pid)
    }
}

#[test]
fn conformance_suite() {
    let dir = TempDir::new();
    let host = Rc::new(Host {
        fs: Rooted {
            root: dir.0.clone(),
            fs: StdFs::default(),
        },
        os: Box::new(DefaultOs),
        held: Default::default(),
    });
    rsqlite_vfs::test_suite::test_vfs_store::<HostStore<Rooted>>(rsqlite_vfs::VfsAppData::new(host)).unwrap();
    // Nothing is left behind: no data files, no lock files.
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_database_persists_in_wal_mode_and_releases_its_lock() {
    let (dir, vfs) = (TempDir::new(), test_vfs());
    let path = dir.path("app.db");
    {
        let db = Store::open_on(&path, Some(&vfs)).unwrap();
        assert_eq!(exec(&db, "pragma journal_mode").rows[0][0], Value::Text("wal".into()));
        assert_eq!(
            exec(&db, "pragma locking_mode").rows[0][0],
            Value::Text("exclusive".into())
        );
        exec(&db, "create table t (id integer primary key, body text)");
        exec(&db, "begin");
        for i in 0..2_000 {
            db.execute(&Statement::new("insert into t (body) values (?)").arg(format!("row {i} {}", "x".repeat(100))))
                .unwrap();
        }
        exec(&db, "commit");
        // Temporary tables and sorts use anonymous files (kept in memory).
        exec(&db, "create temp table s as select * from t order by body desc");
        assert_eq!(count(&db, "s"), 2_000);
        assert!(Path::new(&format!("{path}-lock")).exists());
    }
    assert!(
        !Path::new(&format!("{path}-lock")).exists(),
        "closing removes the lock file"
    );
    let db = Store::open_on(&path, Some(&vfs)).unwrap();
    assert_eq!(count(&db, "t"), 2_000);
    assert_eq!(exec(&db, "pragma integrity_check").rows[0][0], Value::Text("ok".into()));
}

/// What a crash leaves is what is in the files at that moment: every commit is in the
/// database or its WAL, with no fsync and no close.
#[test]
fn every_commit_is_in_the_files_without_a_close() {
    let (dir, vfs) = (TempDir::new(), test_vfs());
    let path = dir.path("app.db");
    let db = Store::open_on(&path, Some(&vfs)).unwrap();
    exec(&db, "create table t (id integer primary key, n integer)");
    for i in 0..3_000 {
        // Single-row commits, enough to pass a checkpoint (1,000 WAL pages).
        db.execute(&Statement::new("insert into t (n) values (?)").arg(i64::from(i)))
            .unwrap();
    }
    // "Crash": copy the files as they are while the database is still open.
    let copy = dir.path("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    if Path::new(&format!("{path}-wal")).exists() {
        std::fs::copy(format!("{path}-wal"), format!("{copy}-wal")).unwrap();
    }
    let recovered = Store::open_on(&copy, Some(&vfs)).unwrap();
    assert_eq!(count(&recovered, "t"), 3_000);
    assert_eq!(
        exec(&recovered, "select sum(n) from t").rows[0][0],
        Value::Integer((0..3_000).sum())
    );
    drop(db);
}

#[test]
fn a_second_owner_is_refused_until_the_first_closes() {
    let (dir, vfs) = (TempDir::new(), test_vfs());
    let path = dir.path("app.db");
    let first = Store::open_on(&path, Some(&vfs)).unwrap();
    exec(&first, "create table t (x)");
    let err = Store::open_on(&path, Some(&vfs))
        .err()
        .expect("a second open must fail");
    assert_eq!(err.code(), "DATABASE_LOCKED");
    assert!(err.to_string().contains("already open in this process"), "{err}");
    // The same file under another spelling is the same database: `.`, a symlink to
    // its directory, a symlink to the file.
    std::os::unix::fs::symlink(&dir.0, dir.path("dir-link")).unwrap();
    std::os::unix::fs::symlink(&path, dir.path("file-link.db")).unwrap();
    for other in [
        format!("{}/./app.db", dir.0.display()),
        format!("{}/app.db", dir.path("dir-link")),
        dir.path("file-link.db"),
    ] {
        let err = Store::open_on(&other, Some(&vfs)).err().expect(&other);
        assert_eq!(err.code(), "DATABASE_LOCKED", "{other}");
    }
    drop(first);
    let again = Store::open_on(&path, Some(&vfs)).unwrap();
    assert_eq!(count(&again, "t"), 0);
}

#[test]
fn a_lock_held_by_a_live_process_is_respected_and_a_dead_ones_is_taken_over() {
    let (dir, vfs) = (TempDir::new(), test_vfs());
    let path = dir.path("app.db");
    let lock = format!("{path}-lock");
    let mut live = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(&lock, format!("{}\n", live.id())).unwrap();
    let err = Store::open_on(&path, Some(&vfs))
        .err()
        .expect("the lock of a live process holds");
    assert_eq!(err.code(), "DATABASE_LOCKED");
    assert!(err.to_string().contains(&format!("process {}", live.id())), "{err}");
    live.kill().unwrap();
    live.wait().unwrap();
    // Its process is gone: the lock is stale.
    let db = Store::open_on(&path, Some(&vfs)).unwrap();
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        std::process::id().to_string()
    );
    drop(db);
    // An empty lock file (an owner between creating and writing it) is held.
    std::fs::write(&lock, "").unwrap();
    let err = Store::open_on(&path, Some(&vfs)).err().unwrap();
    assert_eq!(err.code(), "DATABASE_LOCKED");
    assert!(err.to_string().contains("delete the lock file"), "{err}");
}

#[test]
fn unusable_paths_are_clear_errors() {
    let vfs = test_vfs();
    let err = Store::open_on("/nonexistent-edgesync-dir/sub/app.db", Some(&vfs))
        .err()
        .unwrap();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert!(
        err.to_string().contains("/nonexistent-edgesync-dir/sub/app.db"),
        "{err}"
    );
    assert!(err.to_string().contains("its directory does not exist"), "{err}");
    let dir = TempDir::new();
    // A directory is not a database.
    assert!(Store::open_on(&dir.0.to_string_lossy(), Some(&vfs)).is_err());
    // A file that is not a database is refused at open, not on first use.
    let junk = dir.path("junk.db");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let err = Store::open_on(&junk, Some(&vfs)).err().unwrap();
    assert_eq!(err.code(), "SQLITE_NOTADB", "{err}");
    assert!(
        !Path::new(&format!("{junk}-lock")).exists(),
        "a failed open releases its lock"
    );
}
