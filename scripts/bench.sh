#!/usr/bin/env bash
# Benchmark: edgesync vs @libsql/client against one local sqld (see bench/remote.mjs,
# bench/ws.mjs), the entry points (bench/entries.mjs), then the sync engine
# (bench/sync.mjs, benches/sync.rs).
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
node bench/remote.mjs
ws_bench
entries_bench
node bench/overhead.mjs
sync_benches
edge_benches
