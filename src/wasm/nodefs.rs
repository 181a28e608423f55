//! The host file system of Node.js for wasm replicas opened as `file:…`: Node's `fs`
//! behind the JS host interface of [`crate::wasm::hostfs`], registered as the SQLite
//! VFS [`VFS_NAME`] by `useNodeFs`, which the package's Node entry (`js/node.ts`) calls
//! once at load. The calls themselves are in `nodefs.js`.

use wasm_bindgen::prelude::*;

use crate::wasm::hostfs::{self, FsHost};

/// The name the VFS is registered under.
const VFS_NAME: &str = "edgesync-node-fs";

#[wasm_bindgen(module = "/src/wasm/nodefs.js")]
extern "C" {
    #[wasm_bindgen(js_name = nodeHost)]
    fn node_host(raw: JsValue) -> FsHost;
}

/// Gives the module Node's file system (`{ fs, resolve, pid, alive }`), so replicas can
/// open `file:` URLs. Called by the package's Node entry; a second call is a no-op.
#[wasm_bindgen(js_name = useNodeFs)]
pub fn use_node_fs(raw: JsValue) -> Result<(), JsValue> {
    hostfs::register(VFS_NAME, node_host(raw))
}
