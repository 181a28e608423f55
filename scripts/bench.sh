#!/usr/bin/env bash
# Benchmark: edgesync vs @libsql/client against one local sqld (see bench/remote.mjs).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO"
bash scripts/build.sh
ensure_sqld
node bench/remote.mjs
node bench/overhead.mjs
