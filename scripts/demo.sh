#!/usr/bin/env bash
# Builds everything, starts a local sqld (libSQL server) on a free loopback port, and
# runs the TypeScript demo (examples/demo.ts) against it through edgesync.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO"

bash scripts/build.sh
ensure_sqld
node_modules/.bin/tsc -p examples/tsconfig.json

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
data=$(mktemp -d)
"$SQLD_BIN" --no-welcome --db-path "$data/demo.sqld" --http-listen-addr "127.0.0.1:$port" >"$data/sqld.log" 2>&1 &
sqld_pid=$!
trap 'kill "$sqld_pid" 2>/dev/null; wait "$sqld_pid" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 "$sqld_pid" 2>/dev/null || { cat "$data/sqld.log"; die "sqld exited"; }
  sleep 0.1
done
log "$("$SQLD_BIN" --version) on http://127.0.0.1:$port (pid $sqld_pid)"

EDGESYNC_URL="http://127.0.0.1:$port" node target/examples/demo.js
