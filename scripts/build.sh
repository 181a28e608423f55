#!/usr/bin/env bash
# Builds everything into pkg/: the Rust core for wasm32, the wasm-bindgen glue, the
# TypeScript API, and the npm package manifest. Installs what it needs (toolchain
# parts, wasm-bindgen CLI, npm packages) and is incremental.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO"

ensure_node_modules
ensure_wasm_toolchain
ensure_wasm_bindgen

log "cargo build (wasm32, release, $WASM_MODE)"
"${WASM_CARGO[@]}" build --quiet --lib --release --target wasm32-unknown-unknown \
  --no-default-features --features wasm --target-dir "$WASM_TARGET_DIR" "${WASM_BUILD_STD[@]}"
WASM="$WASM_TARGET_DIR/wasm32-unknown-unknown/release/edgesync.wasm"

stage="$REPO/target/pkg-stage"
rm -rf "$stage" && mkdir -p "$stage/wasm"
# Release builds ship without the name section (142 KB of function names) and the
# producers section; `EDGESYNC_WASM_NAMES=1` keeps names for profiling.
strip_flags=(--remove-producers-section)
[ "${EDGESYNC_WASM_NAMES:-0}" = 1 ] || strip_flags+=(--remove-name-section)
wasm-bindgen --target web "${strip_flags[@]}" --out-dir "$stage/wasm" --out-name edgesync "$WASM"

log "compiling the TypeScript API"
mkdir -p pkg
rm -rf pkg/wasm && mv "$stage/wasm" pkg/wasm
node_modules/.bin/tsc -p js/tsconfig.json
cp js/package.json pkg/package.json
# The package's own README (usage only), not the repo's.
cp js/README.md pkg/README.md

# The dashboard's chart library (uPlot, from npm) next to the page: no CDN.
node www/dashboard/build.mjs

# Tests, examples and the worker import the package by name, as users do.
mkdir -p node_modules
ln -sfn ../pkg node_modules/edgesync

raw=$(stat -c %s pkg/wasm/edgesync_bg.wasm)
gz=$(gzip -9 -c pkg/wasm/edgesync_bg.wasm | wc -c)
log "pkg/ ready: edgesync_bg.wasm $raw bytes raw, $gz bytes gzip"
