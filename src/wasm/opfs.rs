//! The browser's Origin Private File System as the host file system of `file:`
//! replicas. The calls are `js/browser/opfs.ts`'s: before a database is opened, the
//! worker that owns it (chosen with a Web Lock) takes OPFS sync access handles on its
//! files — `<name>`, `<name>-wal`, `<name>-journal` in the `edgesync/` directory — and
//! SQLite then reads and writes them synchronously through [`crate::wasm::hostfs`].
//! The browser lets one handle at a time write a file, so the host is exclusive: no
//! lock file is written.

use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::wasm::error::to_js;
use crate::wasm::hostfs::{self, FsHost};

/// The name the VFS is registered under.
const VFS_NAME: &str = "edgesync-opfs";

/// Gives the module the OPFS host (`js/browser/opfs.ts`), so replicas can open `file:`
/// URLs in this worker. A second call is a no-op.
#[wasm_bindgen(js_name = useOpfs)]
pub fn use_opfs(host: FsHost) -> Result<(), JsValue> {
    hostfs::register(VFS_NAME, host)
}

/// The OPFS path (inside `edgesync/`) of a `file:` URL: its components joined by `/`,
/// without empty or `.` components. `..` and a URL naming no file are refused
/// (`INVALID_ARGUMENT`); `:memory:` gives `undefined`.
#[wasm_bindgen(js_name = opfsPath)]
pub fn opfs_path(url: &str) -> Result<Option<String>, JsValue> {
    let Some(path) = crate::store::file_path(url).map_err(to_js)? else {
        return Ok(None);
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let bad = |why: &str| to_js(Error::InvalidArgument(format!("local database URL {url:?}: {why}")));
    if parts.contains(&"..") {
        return Err(bad("`..` is not allowed in a browser database name"));
    }
    if parts.is_empty() {
        return Err(bad("it names no database"));
    }
    Ok(Some(parts.join("/")))
}

/// This module's compiled `WebAssembly.Module`: a page passes it to the worker it
/// starts, which then instantiates it without fetching or compiling it again.
#[wasm_bindgen(js_name = compiledModule)]
pub fn wasm_module() -> JsValue {
    wasm_bindgen::module()
}
