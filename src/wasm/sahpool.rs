//! The `sqlite-wasm-vfs` crate's OPFS SAH-pool VFS, in the measurement build only
//! (feature `opfs-sahpool`): `bench/browser/vfs.mjs` opens the same databases through it
//! and through edgesync's own OPFS host (`opfs.rs`) to choose between them
//! (docs/decisions.md). The package never ships it.

use wasm_bindgen::prelude::*;

use sqlite_wasm_vfs::sahpool::{install, OpfsSAHPoolCfgBuilder};

const VFS_NAME: &str = "edgesync-sahpool";

/// Installs the pool for database `path` (an `opfsPath`) in the OPFS directory
/// `edgesync-sahpool/<path>` and makes it the VFS of `file:` URLs in this worker.
#[wasm_bindgen(js_name = installSahpool)]
pub async fn install_sahpool(path: String) -> Result<(), JsValue> {
    let cfg = OpfsSAHPoolCfgBuilder::new()
        .vfs_name(VFS_NAME)
        .directory(&format!("edgesync-sahpool/{path}"))
        .build();
    install::<sqlite_wasm_rs::WasmOsCallback>(&cfg, false)
        .await
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    crate::wasm::hostfs::set_files_vfs(VFS_NAME);
    Ok(())
}
