#!/usr/bin/env bash
# Runs the test suite against real servers it starts on free loopback ports (sqld,
# workerd via wrangler, headless Chromium) and installs what it needs.
#
#   bash scripts/test.sh                 everything: lint, rust, js (as CI runs it)
#   bash scripts/test.sh lint            cargo fmt --check, clippy (native and wasm32),
#                                        tsc --noEmit, the docs' TypeScript snippets
#   bash scripts/test.sh rust            cargo test (unit, property, doc, real sqld)
#   bash scripts/test.sh js [files…]     node --test: the given files, or every tests/js/*.test.mjs
#   bash scripts/test.sh worker          the JS tests that run the Worker in workerd
#   bash scripts/test.sh browser         the JS tests in headless Chromium
#
# EDGESYNC_SQLD and EDGESYNC_CHROMIUM override the sqld binary and the Chromium
# executable (docs/testing.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO"

WORKER_TESTS=(tests/js/worker.test.mjs tests/js/edge.test.mjs tests/js/auth.test.mjs tests/js/hub.test.mjs)
BROWSER_TESTS=(tests/js/browser.test.mjs tests/js/browser-opfs.test.mjs tests/js/browser-opfs-api.test.mjs
  tests/js/browser-reliability.test.mjs tests/js/browser-sync-control.test.mjs tests/js/browser-transactions.test.mjs)

lint() {
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

  log "tsc --noEmit (TypeScript snippets of README.md, docs/, the package README)"
  node scripts/check-doc-snippets.mjs
}

rust() {
  ensure_sqld
  log "cargo test (unit, property, doc, integration against real sqld)"
  mkdir -p "$REPO/.tools"
  cargo test --quiet 2>&1 | tee "$REPO/.tools/cargo-test.log"
}

# node --test over the given files, with every server the JS tests may start.
js() {
  ensure_sqld
  ensure_chromium
  ensure_prom_parser
  wrangler_env
  case " $* " in *consumers.test.mjs*) ensure_consumer_tools ;; esac
  log "node --test (pkg/ in Node, workerd and Chromium; cross-client; size budget): $# file(s)"
  node --test --test-concurrency=1 "$@"
}

part="${1:-all}"
[ $# -gt 0 ] && shift
case "$part" in
  all)
    [ $# -eq 0 ] || die "scripts/test.sh takes files only after 'js'"
    bash scripts/build.sh
    lint
    rust
    js tests/js/*.test.mjs
    ;;
  lint)
    bash scripts/build.sh
    lint
    ;;
  rust)
    rust
    ;;
  js)
    bash scripts/build.sh
    if [ $# -eq 0 ]; then js tests/js/*.test.mjs; else js "$@"; fi
    ;;
  worker)
    bash scripts/build.sh
    js "${WORKER_TESTS[@]}"
    ;;
  browser)
    bash scripts/build.sh
    js "${BROWSER_TESTS[@]}"
    ;;
  -h | --help | help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    die "unknown part '$part' (lint, rust, js [files…], worker, browser; none = everything)"
    ;;
esac
