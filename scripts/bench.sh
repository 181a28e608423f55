#!/usr/bin/env bash
# Benchmark: edgesync vs @libsql/client against one local sqld (see bench/remote.mjs,
# bench/ws.mjs), the entry points (bench/entries.mjs), then the sync engine
# (bench/sync.mjs, benches/sync.rs), the edge Worker, and browser replicas
# (bench/browser/). `bash scripts/bench.sh sync|edge|ws|entries|browser|gateway` runs one part.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO"
bash scripts/build.sh
ensure_sqld
# The sync engine (issue 4): bench/sync.mjs (wasm in Node) and benches/sync.rs (native).
# `bash scripts/bench.sh sync` runs only these.
sync_benches() { node bench/sync.mjs && cargo bench --bench sync; }
if [ "${1:-}" = sync ]; then sync_benches; exit; fi
# The edge Worker (issue 5): bench/edge.mjs (wasm router and sessions in Node, the
# Worker in workerd) and benches/router.rs (native). `bash scripts/bench.sh edge`.
edge_benches() { wrangler_env; node --expose-gc bench/edge.mjs && cargo bench --bench router; }
if [ "${1:-}" = edge ]; then edge_benches; exit; fi
# The remote client over WebSocket vs @libsql/client over WebSocket, and the size and
# load time of each entry point in Chromium (issue 18): `bash scripts/bench.sh ws`,
# `bash scripts/bench.sh entries`.
ws_bench() { node bench/ws.mjs; }
entries_bench() { ensure_chromium; node bench/entries.mjs; }
if [ "${1:-}" = ws ]; then ws_bench; exit; fi
if [ "${1:-}" = entries ]; then entries_bench; exit; fi
# Browser replicas in OPFS (issue 16): bench/browser/run.mjs in headless Chromium, with
# @sqlite.org/sqlite-wasm's opfs-sahpool alongside. It first builds the measurement
# module (features js-all + opfs-sahpool: edgesync's OPFS host and the sqlite-wasm-vfs crate's SAH
# pool in one build, never shipped) into target/bench-browser/; the next build.sh
# relinks the package's own. `bash scripts/bench.sh browser`.
browser_benches() {
  ensure_chromium
  ensure_wasm_toolchain
  ensure_wasm_bindgen
  log "measurement build for the storage-layer comparison (feature opfs-sahpool)"
  "${WASM_CARGO[@]}" build --quiet --lib --release --target wasm32-unknown-unknown --no-default-features \
    --features js-all,opfs-sahpool --target-dir "$WASM_TARGET_DIR" "${WASM_BUILD_STD[@]}"
  rm -rf target/bench-browser
  wasm-bindgen --target web --remove-producers-section --remove-name-section --out-dir target/bench-browser/wasm \
    --out-name edgesync "$WASM_TARGET_DIR/wasm32-unknown-unknown/release/edgesync.wasm"
  node bench/browser/run.mjs
}
if [ "${1:-}" = browser ]; then browser_benches; exit; fi
# The edge sync gateway and edge replicas (issue 17): bench/gateway.mjs (push and pull
# through the Worker vs straight to sqld) and bench/edge.mjs part `replica` (reads from
# the edge replica vs the cache vs forwarding). `bash scripts/bench.sh gateway`.
gateway_benches() { wrangler_env; node bench/gateway.mjs && node --expose-gc bench/edge.mjs replica session-home; }
if [ "${1:-}" = gateway ]; then gateway_benches; exit; fi
node bench/remote.mjs
ws_bench
entries_bench
node bench/overhead.mjs
sync_benches
edge_benches
browser_benches
gateway_benches
