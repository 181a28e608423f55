#!/usr/bin/env bash
# Runs the whole test suite: lints, native Rust tests (unit, property, real sqld),
# TypeScript type checks, and the JS tests against pkg/ in Node, workerd (wrangler)
# and headless Chromium — all against real servers on loopback. Installs what it needs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO"

bash scripts/build.sh
ensure_sqld
ensure_chromium
ensure_prom_parser
wrangler_env

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (native, all targets)"
cargo clippy --quiet --all-targets -- -D warnings

ensure_wasm_toolchain
# Each wasm flavour's features (scripts/build.sh): every one must be clean on its own.
for features in js-all js-client js-crdt js-replica; do
  log "cargo clippy (wasm32, features $features)"
  "${WASM_CARGO[@]}" clippy --quiet --lib --target wasm32-unknown-unknown --no-default-features --features "$features" \
    --target-dir "$WASM_TARGET_DIR" "${WASM_BUILD_STD[@]}" -- -D warnings
done

log "tsc --noEmit (package API, example, worker)"
node_modules/.bin/tsc --noEmit -p js/tsconfig.json
node_modules/.bin/tsc --noEmit -p examples/tsconfig.json
node_modules/.bin/tsc --noEmit -p www/worker/tsconfig.json

log "cargo test (unit, property, doc, integration against real sqld)"
cargo test --quiet 2>&1 | tee "$REPO/.tools/cargo-test.log"

log "node --test (pkg/ in Node, workerd and Chromium; cross-client; size budget)"
node --test --test-concurrency=1 tests/js/*.test.mjs
