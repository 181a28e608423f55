//! The host file system of Node.js for wasm replicas opened as `file:…`: Node's `fs`
//! behind [`HostFs`], registered as the SQLite VFS [`VFS_NAME`] by `useNodeFs`, which
//! the package's Node entry (`js/node.ts`) calls once at load. Other runtimes never
//! call it, so there a `file:` URL is refused with a clear error.
//!
//! The calls themselves are in `nodefs.js` (one boundary crossing each); buffers cross
//! as views of wasm memory, without copies.

use std::cell::Cell;

use wasm_bindgen::prelude::*;

use crate::store::vfs::{self, Fd, HostError, HostFs, OpenMode};

/// The name the VFS is registered under.
pub(crate) const VFS_NAME: &str = "edgesync-node-fs";

thread_local! {
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Whether `useNodeFs` has given this module a file system.
pub(crate) fn available() -> bool {
    REGISTERED.with(Cell::get)
}

#[wasm_bindgen(module = "/src/wasm/nodefs.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = fsOpen)]
    fn fs_open(host: &JsValue, path: &str, mode: u32) -> Result<f64, JsValue>;
    #[wasm_bindgen(catch, js_name = fsRead)]
    fn fs_read(host: &JsValue, fd: f64, buf: &mut [u8], pos: f64) -> Result<f64, JsValue>;
    #[wasm_bindgen(catch, js_name = fsWrite)]
    fn fs_write(host: &JsValue, fd: f64, buf: &[u8], pos: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(catch, js_name = fsTruncate)]
    fn fs_truncate(host: &JsValue, fd: f64, size: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(catch, js_name = fsSync)]
    fn fs_sync(host: &JsValue, fd: f64, data_only: bool) -> Result<(), JsValue>;
    #[wasm_bindgen(catch, js_name = fsSize)]
    fn fs_size(host: &JsValue, fd: f64) -> Result<f64, JsValue>;
    #[wasm_bindgen(catch, js_name = fsClose)]
    fn fs_close(host: &JsValue, fd: f64) -> Result<(), JsValue>;
    #[wasm_bindgen(catch, js_name = fsRemove)]
    fn fs_remove(host: &JsValue, path: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(catch, js_name = fsExists)]
    fn fs_exists(host: &JsValue, path: &str) -> Result<bool, JsValue>;
    #[wasm_bindgen(catch, js_name = fsResolve)]
    fn fs_resolve(host: &JsValue, path: &str) -> Result<String, JsValue>;
    #[wasm_bindgen(catch, js_name = fsSyncDir)]
    fn fs_sync_dir(host: &JsValue, path: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = procId)]
    fn proc_id(host: &JsValue) -> u32;
    #[wasm_bindgen(js_name = procAlive)]
    fn proc_alive(host: &JsValue, pid: u32) -> bool;
}

/// Node's `fs`, as `{ fs, resolve, pid, alive }` from `js/node.ts`.
struct NodeFs {
    host: JsValue,
}

/// A thrown Node error as a [`HostError`]: its `code` and `message`.
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

impl HostFs for NodeFs {
    fn open(&self, path: &str, mode: OpenMode) -> Result<Fd, HostError> {
        let m = match mode {
            OpenMode::ReadOnly => 0,
            OpenMode::ReadWrite => 1,
            OpenMode::Create => 2,
            OpenMode::CreateNew => 3,
        };
        fs_open(&self.host, path, m).map(|fd| fd as Fd).map_err(host_error)
    }

    fn read(&self, fd: Fd, buf: &mut [u8], offset: u64) -> Result<usize, HostError> {
        fs_read(&self.host, fd as f64, buf, offset as f64)
            .map(|n| n as usize)
            .map_err(host_error)
    }

    fn write(&self, fd: Fd, buf: &[u8], offset: u64) -> Result<(), HostError> {
        fs_write(&self.host, fd as f64, buf, offset as f64).map_err(host_error)
    }

    fn truncate(&self, fd: Fd, size: u64) -> Result<(), HostError> {
        fs_truncate(&self.host, fd as f64, size as f64).map_err(host_error)
    }

    fn sync(&self, fd: Fd, data_only: bool) -> Result<(), HostError> {
        fs_sync(&self.host, fd as f64, data_only).map_err(host_error)
    }

    fn size(&self, fd: Fd) -> Result<u64, HostError> {
        fs_size(&self.host, fd as f64).map(|n| n as u64).map_err(host_error)
    }

    fn close(&self, fd: Fd) -> Result<(), HostError> {
        fs_close(&self.host, fd as f64).map_err(host_error)
    }

    fn remove(&self, path: &str) -> Result<(), HostError> {
        fs_remove(&self.host, path).map_err(host_error)
    }

    fn exists(&self, path: &str) -> Result<bool, HostError> {
        fs_exists(&self.host, path).map_err(host_error)
    }

    fn resolve(&self, path: &str) -> Result<String, HostError> {
        fs_resolve(&self.host, path).map_err(host_error)
    }

    fn sync_dir(&self, path: &str) -> Result<(), HostError> {
        fs_sync_dir(&self.host, path).map_err(host_error)
    }

    fn pid(&self) -> u32 {
        proc_id(&self.host)
    }

    fn alive(&self, pid: u32) -> bool {
        proc_alive(&self.host, pid)
    }
}

/// Gives the module Node's file system (`{ fs, resolve, pid, alive }`), so replicas can
/// open `file:` URLs. Called by the package's Node entry; a second call is a no-op.
#[wasm_bindgen(js_name = useNodeFs)]
pub fn use_node_fs(host: JsValue) -> Result<(), JsValue> {
    if available() {
        return Ok(());
    }
    // SAFETY: wasm has one thread.
    unsafe { vfs::register(VFS_NAME, NodeFs { host }, sqlite_wasm_rs::WasmOsCallback) }
        .map_err(crate::wasm::error::to_js)?;
    REGISTERED.with(|r| r.set(true));
    Ok(())
}
