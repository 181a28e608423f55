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

# One wasm module per export of the package, each with only the Rust features it needs
# (Cargo.toml): `edgesync` (everything), `edgesync/client` (the remote client alone),
# `edgesync/crdt` (the CRDTs alone), `edgesync/replica` (embedded replicas without the
# edge subsystems and the CRDT classes, and SQLite without FTS5 and R*Tree, to stay
# within its size budget: docs/compatibility.md). Directory under pkg/wasm/ : features.
FLAVORS=(".:js-all" "client:js-client" "crdt:js-crdt" "replica:js-replica")
# SQLite features a flavour leaves out.
flavor_sqlite_flags() {
  case $1 in
    replica) echo "-USQLITE_ENABLE_FTS5 -USQLITE_ENABLE_RTREE -USQLITE_ENABLE_COLUMN_METADATA -USQLITE_ENABLE_OFFSET_SQL_FUNC -DSQLITE_OMIT_PROGRESS_CALLBACK -DSQLITE_OMIT_GET_TABLE -DSQLITE_OMIT_COMPLETE -DSQLITE_OMIT_TRACE -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_OMIT_DEPRECATED" ;;
    *) echo "" ;;
  esac
}
# The flavours a page downloads for one job are optimized for size (opt-level "z":
# edgesync/replica 699 → 627 KB gzip, measured); `edgesync` and `edgesync/crdt` keep the
# profile's "s" (the benchmarks' figures are theirs).
flavor_opt_level() {
  case $1 in
    client | replica) echo z ;;
    *) echo s ;;
  esac
}
# `edgesync/replica` is also built with `-C panic=immediate-abort` (std built from source
# only: WASM_MODE build-std) and passed through binaryen's wasm-opt (npm `binaryen`,
# pinned in package.json) at -O2 without inlining functions that have one caller, toward
# its 700 KB goal: 747 → 707 KB gzip, measured in docs/decisions.md ("Size of
# edgesync/replica"). A panic is a bug and already aborted (panic = "abort"); on wasm32
# its message went nowhere, so nothing observable is lost. wasm-opt's inlining of
# functions with one caller makes the module smaller raw but larger gzip (measured),
# hence -ocimfs=0.
flavor_rustflags() {
  case $1 in
    replica) [ "$WASM_MODE" = build-std ] && echo "-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none" ;;
  esac
  return 0
}
flavor_wasm_opt() {
  case $1 in
    replica) echo "-O2 -ocimfs=0" ;;
  esac
}
# The features rustc 1.96 emits for wasm32-unknown-unknown, for wasm-opt.
WASM_OPT_FEATURES=(--enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
stage="$REPO/target/pkg-stage"
rm -rf "$stage" && mkdir -p "$stage/wasm"
# Release builds ship without the name section (142 KB of function names) and the
# producers section; `EDGESYNC_WASM_NAMES=1` keeps names for profiling.
strip_flags=(--remove-producers-section)
[ "${EDGESYNC_WASM_NAMES:-0}" = 1 ] || strip_flags+=(--remove-name-section)
for flavor in "${FLAVORS[@]}"; do
  dir=${flavor%%:*} features=${flavor#*:}
  SQLITE_FLAVOR_FLAGS=$(flavor_sqlite_flags "$dir")
  ensure_wasm_toolchain
  opt=$(flavor_opt_level "$dir")
  # Each flavour its own target dir: flavours differ in opt-level, rustflags and SQLite
  # flags, and sharing one made every build recompile the crate (and std) for each in turn.
  target_dir=$WASM_TARGET_DIR
  [ "$dir" = . ] || target_dir+="-$dir"
  rustflags=$(flavor_rustflags "$dir")
  log "cargo build (wasm32, release, $WASM_MODE, features $features, opt-level $opt${rustflags:+, $rustflags})"
  env ${rustflags:+"RUSTFLAGS=$rustflags"} "${WASM_CARGO[@]}" build --quiet --lib --release --target wasm32-unknown-unknown \
    --config "profile.release.opt-level=\"$opt\"" \
    --no-default-features --features "$features" --target-dir "$target_dir" "${WASM_BUILD_STD[@]}"
  wasm-bindgen --target web "${strip_flags[@]}" --out-dir "$stage/wasm/$dir" --out-name edgesync \
    "$target_dir/wasm32-unknown-unknown/release/edgesync.wasm"
  wopt=$(flavor_wasm_opt "$dir")
  if [ -n "$wopt" ]; then
    log "wasm-opt $wopt ($dir)"
    keep_names=()
    [ "${EDGESYNC_WASM_NAMES:-0}" = 1 ] && keep_names=(-g)
    # shellcheck disable=SC2086 # $wopt is a list of flags
    node_modules/.bin/wasm-opt $wopt "${WASM_OPT_FEATURES[@]}" "${keep_names[@]}" \
      "$stage/wasm/$dir/edgesync_bg.wasm" -o "$stage/wasm/$dir/edgesync_bg.wasm"
  fi
  node scripts/lib/fix-glue.mjs "$stage/wasm/$dir"
done

log "compiling the TypeScript API"
rm -rf pkg && mkdir -p pkg
mv "$stage/wasm" pkg/wasm
node_modules/.bin/tsc -p js/tsconfig.json
# The database worker a page starts (js/browser/worker.ts) as one file: a module worker
# fetches its imports level by level (22 modules, 4 levels), which took 130–300 ms
# before its first line ran (bench/browser, part 5); bundled, it is one request.
# The inline copy of the wasm stays a file of its own, imported only where the .wasm is missing.
node_modules/.bin/esbuild pkg/browser/worker.js --bundle --format=esm --platform=browser --target=es2022 \
  --external:../wasm/replica/inline.js \
  --log-level=warning --log-override:duplicate-object-key=silent --allow-overwrite --outfile=pkg/browser/worker.js
# The browser replica's entry (`edgesync/replica`, pkg/entries/replica.web.js)
# pre-bundled into one file too, for the same reason: served as it is (no bundler), its
# 22 modules in 6 levels took 100–300 ms before createClient could run (bench/browser,
# part 5; docs/decisions.md, "Browser replicas on OPFS"). It stays where it was, so the
# `new URL("…", import.meta.url)` literals in it name the same files (browser/client.ts
# names its worker "../browser/worker.js" for this); its lazy part (browser/host.js)
# and the error classes stay shared (scripts/lib/bundle-entry.mjs). `edgesync`
# (pkg/web.js), the other subpaths and the Node and workerd entries stay unbundled.
node scripts/lib/bundle-entry.mjs pkg/entries/replica.web.js
cp js/package.json pkg/package.json
# The package's own README (usage only), not the repo's.
cp js/README.md pkg/README.md

# The dashboard's chart library (uPlot, from npm) next to the page: no CDN.
node www/dashboard/build.mjs

# Tests, examples and the worker import the package by name, as users do.
mkdir -p node_modules
ln -sfn ../pkg node_modules/edgesync

for flavor in "${FLAVORS[@]}"; do
  f="pkg/wasm/${flavor%%:*}/edgesync_bg.wasm"
  log "pkg/ ready: $f $(stat -c %s "$f") bytes raw, $(gzip -9 -c "$f" | wc -c) bytes gzip"
done
