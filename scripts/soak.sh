#!/usr/bin/env bash
# The long random fault soak (issue 13 §8): `bash scripts/soak.sh [minutes=10] [first seed]
# [operations per run=500]`. Runs soak seeds back to back for as long as asked (see
# tests/support/soak.mjs for what one run does and checks), prints every seed it tried
# and the process's memory at start and end; exits 1 if any run failed. Builds first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO"

bash scripts/build.sh
ensure_sqld
exec node tests/support/soak-cli.mjs "${1:-10}" "${2:-$RANDOM}" "${3:-500}"
