//! The fast path of a local `execute` (js/local.ts): statements kept by handle
//! (`Store::prepare_kept`), arguments that JS writes straight into a buffer in wasm
//! memory, and results that JS reads straight out of one — a call passes and returns
//! only numbers, and neither side allocates per call once warm.
//!
//! Why: a point read in SQLite takes ~2 µs in wasm; the generic path spent as much
//! again on copying the SQL string in, hashing it, re-reading the column header and
//! building JS values across the boundary.

use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::store::Run;
use crate::wasm::error::to_js;
use crate::wasm::replica::JsReplica;
use crate::wasm::result::ResultWriter;

/// `run`'s answer when the statement failed: `takeError()` has the error.
const FAILED: u32 = 0;
/// `run`'s answer when the handle's statement was replaced: prepare again.
const STALE: u32 = 1;

/// The fast path's buffers.
#[derive(Default)]
pub(crate) struct Buffers {
    /// Arguments as `encodeArgs` (js/args.ts) packs them, written by JS. Always fully
    /// initialized (`len == capacity` in use), so JS writes only into live bytes.
    args: Vec<u8>,
    /// The last result, in the layout of `wasm/result.rs`, read in place by
    /// `readResult` (js/result.ts) through js/local.ts.
    out: ResultWriter,
    error: Option<Error>,
}

/// The module's `WebAssembly.Memory`, for JS views over the argument and result
/// buffers (re-created when the memory grows).
#[wasm_bindgen(js_name = wasmMemory)]
pub fn wasm_memory() -> JsValue {
    wasm_bindgen::memory()
}

#[wasm_bindgen(js_class = Replica)]
impl JsReplica {
    /// Keeps `sql` prepared; returns its handle, or 0 when it must run through
    /// `executePacked` (not a single statement). Throws the statement's error.
    #[wasm_bindgen(js_name = prepareKept)]
    pub fn prepare_kept(&self, sql: &str) -> Result<u32, JsValue> {
        Ok(self.inner.store().prepare_kept(sql).map_err(to_js)?.unwrap_or(0))
    }

    /// Makes the argument buffer at least `len` bytes (keeping its contents) and
    /// returns its address in wasm memory.
    #[wasm_bindgen(js_name = argsReserve)]
    pub fn args_reserve(&mut self, len: u32) -> u32 {
        let args = &mut self.fast.args;
        if args.len() < len as usize {
            args.resize(len as usize, 0);
        }
        args.as_ptr() as u32
    }

    /// Runs a kept statement with the first `len` bytes of the argument buffer.
    /// Returns the address of the result (see `wasm/result.rs`), 0 when it failed (the
    /// error is in `takeError()`), 1 when the handle is stale.
    pub fn run(&mut self, handle: u32, len: u32) -> u32 {
        let Buffers { args, out, error } = &mut self.fast;
        out.start_kept();
        let res = match args.get(..len as usize) {
            Some(a) => self.inner.store().run_prepared(handle, a, out),
            None => Err(Error::InvalidArgument("malformed packed arguments".into())),
        };
        match res {
            Ok(Run::Stale) => STALE,
            Ok(Run::Done { header }) => {
                out.set_header_included(header);
                out.address()
            }
            Err(e) => {
                *error = Some(e);
                FAILED
            }
        }
    }

    /// The error of the last failed `run`, as the `Error` to throw.
    #[wasm_bindgen(js_name = takeError)]
    pub fn take_error(&mut self) -> JsValue {
        let e = self.fast.error.take();
        to_js(e.unwrap_or_else(|| Error::InvalidOperation("takeError() without a failed run".into())))
    }
}
