//! A host file system given by JavaScript, behind [`HostFs`]: one object with one
//! method per file call. Two hosts implement it:
//!
//! - Node's `fs` (`nodefs.js`, registered by `useNodeFs` from the package's Node entry);
//! - the browser's Origin Private File System (`js/browser/opfs.ts`, registered by
//!   `useOpfs` in the worker that owns the database).
//!
//! Every call is synchronous (SQLite's VFS is) and crosses the boundary once; buffers
//! cross as views of wasm memory, without copies. A method that fails throws an object
//! whose `code` is an OS error name (`ENOENT`, `EEXIST`, `ENOSPC`…) — the browser host
//! turns `QuotaExceededError` into `ENOSPC`, which SQLite reports as `SQLITE_FULL`
//! (`STORAGE_FULL`).

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::store::vfs::{self, Fd, HostError, HostFs, OpenMode};

#[wasm_bindgen]
extern "C" {
    /// The JS object with the file calls (see the module docs).
    pub type FsHost;

    #[wasm_bindgen(method, catch)]
    fn open(this: &FsHost, path: &str, mode: u32) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn read(this: &FsHost, fd: f64, buf: &mut [u8], pos: f64) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn write(this: &FsHost, fd: f64, buf: &[u8], pos: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn truncate(this: &FsHost, fd: f64, size: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn sync(this: &FsHost, fd: f64, data_only: bool) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn size(this: &FsHost, fd: f64) -> Result<f64, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &FsHost, fd: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn remove(this: &FsHost, path: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    fn exists(this: &FsHost, path: &str) -> Result<bool, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn resolve(this: &FsHost, path: &str) -> Result<String, JsValue>;
    #[wasm_bindgen(method, catch, js_name = syncDir)]
    fn sync_dir(this: &FsHost, path: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(method)]
    fn pid(this: &FsHost) -> u32;
    #[wasm_bindgen(method)]
    fn alive(this: &FsHost, pid: u32) -> bool;
    #[wasm_bindgen(method)]
    fn exclusive(this: &FsHost) -> bool;
}

thread_local! {
    /// The VFS `file:` URLs open through, once a host was registered.
    static FILES_VFS: RefCell<Option<&'static str>> = const { RefCell::new(None) };
}

/// The SQLite VFS for `file:` URLs in this runtime, if it has a file system.
pub(crate) fn files_vfs() -> Option<&'static str> {
    FILES_VFS.with(|v| *v.borrow())
}

/// Makes the registered VFS `name` the one `file:` URLs open through.
#[cfg(feature = "opfs-sahpool")]
pub(crate) fn set_files_vfs(name: &'static str) {
    FILES_VFS.with(|v| *v.borrow_mut() = Some(name));
}

/// Registers `host` as the SQLite VFS `name` and makes it the one `file:` URLs use.
/// A second registration of the same name is a no-op.
pub(crate) fn register(name: &'static str, host: FsHost) -> Result<(), JsValue> {
    if files_vfs() == Some(name) {
        return Ok(());
    }
    // SAFETY: wasm has one thread.
    unsafe { vfs::register(name, JsFs { host }, sqlite_wasm_rs::WasmOsCallback) }.map_err(crate::wasm::error::to_js)?;
    FILES_VFS.with(|v| *v.borrow_mut() = Some(name));
    Ok(())
}

struct JsFs {
    host: FsHost,
}

/// A thrown error as a [`HostError`]: its `code` and `message`.
fn host_error(e: JsValue) -> HostError {
    let get = |k: &str| {
        js_sys::Reflect::get(&e, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_string())
    };
    HostError::new(
        get("code").unwrap_or_else(|| "EIO".into()),
        get("message").unwrap_or_else(|| format!("{e:?}")),
    )
}

impl HostFs for JsFs {
    fn open(&self, path: &str, mode: OpenMode) -> Result<Fd, HostError> {
        let m = match mode {
            OpenMode::ReadOnly => 0,
            OpenMode::ReadWrite => 1,
            OpenMode::Create => 2,
            OpenMode::CreateNew => 3,
        };
        self.host.open(path, m).map(|fd| fd as Fd).map_err(host_error)
    }

    fn read(&self, fd: Fd, buf: &mut [u8], offset: u64) -> Result<usize, HostError> {
        self.host
            .read(fd as f64, buf, offset as f64)
            .map(|n| n as usize)
            .map_err(host_error)
    }

    fn write(&self, fd: Fd, buf: &[u8], offset: u64) -> Result<(), HostError> {
        self.host.write(fd as f64, buf, offset as f64).map_err(host_error)
    }

    fn truncate(&self, fd: Fd, size: u64) -> Result<(), HostError> {
        self.host.truncate(fd as f64, size as f64).map_err(host_error)
    }

    fn sync(&self, fd: Fd, data_only: bool) -> Result<(), HostError> {
        self.host.sync(fd as f64, data_only).map_err(host_error)
    }

    fn size(&self, fd: Fd) -> Result<u64, HostError> {
        self.host.size(fd as f64).map(|n| n as u64).map_err(host_error)
    }

    fn close(&self, fd: Fd) -> Result<(), HostError> {
        self.host.close(fd as f64).map_err(host_error)
    }

    fn remove(&self, path: &str) -> Result<(), HostError> {
        self.host.remove(path).map_err(host_error)
    }

    fn exists(&self, path: &str) -> Result<bool, HostError> {
        self.host.exists(path).map_err(host_error)
    }

    fn resolve(&self, path: &str) -> Result<String, HostError> {
        self.host.resolve(path).map_err(host_error)
    }

    fn sync_dir(&self, path: &str) -> Result<(), HostError> {
        self.host.sync_dir(path).map_err(host_error)
    }

    fn pid(&self) -> u32 {
        self.host.pid()
    }

    fn alive(&self, pid: u32) -> bool {
        self.host.alive(pid)
    }

    fn exclusive(&self) -> bool {
        self.host.exclusive()
    }
}
