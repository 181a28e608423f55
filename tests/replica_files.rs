//! A native replica on host files through the host-file VFS (`store::vfs` over
//! `std::fs`, the same VFS wasm replicas use on Node's fs): its queued changes, site and
//! clock survive a restart, so offline writes are never lost. No server: the sync URL is
//! never reachable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use edgesync::remote::UreqTransport;
use edgesync::store::vfs::{register, DefaultOs, StdFs};
use edgesync::sync::{Env, Policy, Replica, ReplicaConfig};
use edgesync::{Statement, Value};

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("edgesync-replica-files-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Registers a host-file VFS of its own for the calling test; returns its name.
fn test_vfs() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("edgesync-replica-files-{}", N.fetch_add(1, Ordering::Relaxed));
    // SAFETY: the VFS is used from this test's thread only.
    unsafe { register(&name, StdFs::default(), DefaultOs) }.unwrap();
    name
}

#[test]
fn a_replica_keeps_its_outbox_across_restarts() {
    let (dir, vfs) = (TempDir::new(), test_vfs());
    let config = || ReplicaConfig {
        path: format!("file:{}", dir.0.join("replica.db").display()),
        vfs: Some(vfs.clone()),
        // Never reached: the writes stay queued.
        sync_url: Some("http://127.0.0.1:9".into()),
        ..Default::default()
    };
    let site = {
        let r = Replica::open(config(), UreqTransport::default(), Env::default()).unwrap();
        r.execute(&Statement::new(
            "create table inv (sku text primary key, stock integer)",
        ))
        .unwrap();
        r.replicate("inv", &[("stock".into(), Policy::Counter)], vec![])
            .unwrap();
        for i in 0..50 {
            r.execute(&Statement::new("insert into inv values (?, 10)").arg(format!("sku-{i}")))
                .unwrap();
        }
        r.execute(&Statement::new("update inv set stock = stock - 3")).unwrap();
        assert!(pollster::block_on(r.sync()).is_err(), "the server is unreachable");
        assert_eq!(r.status().unwrap().pending, 100);
        r.site().to_string()
    };
    let r = Replica::open(config(), UreqTransport::default(), Env::default()).unwrap();
    assert_eq!(r.site(), site);
    assert_eq!(r.status().unwrap().pending, 100, "every queued change is still there");
    let rs = r
        .execute(&Statement::new("select count(*), sum(stock) from inv"))
        .unwrap();
    assert_eq!(rs.rows[0], vec![Value::Integer(50), Value::Integer(350)]);
}
