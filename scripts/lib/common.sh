# Shared helpers for the build, demo and test scripts. Source it; do not run it.
# Every ensure_* function is idempotent and returns at once when its part is there.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO
STAMPS="$REPO/.tools/stamps"
mkdir -p "$STAMPS"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# apt-get install the named Debian packages that are not installed yet.
apt_ensure() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  log "installing Debian packages: ${missing[*]}"
  if [ ! -f "$STAMPS/apt-updated" ] || [ -n "$(find "$STAMPS/apt-updated" -mmin +1440 2>/dev/null)" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    touch "$STAMPS/apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The wasm32 toolchain. On a machine where rustup has the wasm32 target (a normal
# laptop) that is used as is. Otherwise (machines where rustup cannot download
# targets) Debian's rustc-web builds std from source (-Zbuild-std); see
# docs/decisions.md, "Building for wasm32". Sets WASM_CARGO: a command prefix
# (environment and cargo binary) for wasm builds only, so native builds keep rustup's toolchain.
ensure_wasm_toolchain() {
  # SQLite in wasm without the extensions edgesync never uses (the session extension
  # and the introspection virtual tables): measured in docs/decisions.md, "Release profile".
  # SQLITE_FLAVOR_FLAGS: what one wasm flavour leaves out besides (scripts/build.sh).
  SQLITE_WASM_FLAGS="-DSQLITE_DEFAULT_MEMSTATUS=0 -USQLITE_ENABLE_SESSION -USQLITE_ENABLE_DBPAGE_VTAB -USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_ENABLE_BYTECODE_VTAB -USQLITE_ENABLE_STMTVTAB${SQLITE_FLAVOR_FLAGS:+ $SQLITE_FLAVOR_FLAGS}"
  export SQLITE_WASM_RS_FLAGS="$SQLITE_WASM_FLAGS"
  if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    WASM_MODE=rustup
    WASM_CARGO=(cargo)
    WASM_BUILD_STD=()
    WASM_TARGET_DIR="$REPO/target"
  else
    WASM_MODE=build-std
    apt_ensure rustc-web cargo-web rust-web-src rust-web-clippy lld-22 clang-22 llvm-22
    # /usr/bin first so `cargo clippy` finds Debian's clippy, not rustup's proxy.
    WASM_CARGO=(env "PATH=/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 "SQLITE_WASM_RS_FLAGS=$SQLITE_WASM_FLAGS"
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld
      CC_wasm32_unknown_unknown=clang-22 AR_wasm32_unknown_unknown=llvm-ar-22 /usr/bin/cargo)
    WASM_BUILD_STD=(-Zbuild-std=std,panic_abort)
    # Debian's compiler gets its own target dir so it never invalidates rustup's.
    WASM_TARGET_DIR="$REPO/target/debian-rustc"
  fi
}

# The wasm-bindgen CLI at exactly the version Cargo.toml pins.
ensure_wasm_bindgen() {
  local want
  want=$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' "$REPO/Cargo.toml")
  [ -n "$want" ] || die "cannot read the pinned wasm-bindgen version from Cargo.toml"
  export PATH="$HOME/.cargo/bin:$PATH"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want" ]; then
    log "installing wasm-bindgen-cli $want (a few minutes, once)"
    cargo install -q wasm-bindgen-cli --version "$want" --force >&2
  fi
}

# node_modules from package-lock.json, reinstalled only when the lock file changed.
ensure_node_modules() {
  command -v node >/dev/null || apt_ensure nodejs npm
  local sum
  sum=$(sha256sum "$REPO/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$STAMPS/npm-lock" 2>/dev/null)" != "$sum" ] || [ ! -d "$REPO/node_modules" ]; then
    log "installing npm packages (npm ci)"
    (cd "$REPO" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$sum" > "$STAMPS/npm-lock"
  fi
}

ensure_sqld() {
  SQLD_BIN=$(bash "$REPO/scripts/lib/ensure-sqld.sh" | tail -n 1)
  export SQLD_BIN
}

# Headless Chromium for the browser tests: Debian's, unless EDGESYNC_CHROMIUM names
# another executable (docs/testing.md).
ensure_chromium() {
  if [ -n "${EDGESYNC_CHROMIUM:-}" ]; then
    [ -x "$EDGESYNC_CHROMIUM" ] || die "EDGESYNC_CHROMIUM=$EDGESYNC_CHROMIUM is not executable"
    return 0
  fi
  apt_ensure chromium fonts-liberation
}

# Quiet, offline wrangler/workerd: no metrics, error reports or cf fetches, logs and
# config under .tools (see docs/testing.md).
wrangler_env() {
  export CI=true WRANGLER_SEND_METRICS=false WRANGLER_SEND_ERROR_REPORTS=false \
    WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false
  export WRANGLER_LOG_PATH="$REPO/.tools/wrangler-logs" XDG_CONFIG_HOME="$REPO/.tools/xdg"
  mkdir -p "$WRANGLER_LOG_PATH" "$XDG_CONFIG_HOME"
}

# The bundlers the consumer tests (tests/js/consumers.test.mjs) build fresh projects
# with, pinned in tests/consumers/tools.json: each set in its own directory under
# .tools/consumers/ (two Vite versions side by side), installed once per pinned list.
# TypeScript, @types/node, the Workers types and wrangler are the repo's own devDependencies.
ensure_consumer_tools() {
  local list="$REPO/tests/consumers/tools.json" root="$REPO/.tools/consumers" name specs
  mkdir -p "$root"
  for name in $(node -e 'console.log(Object.keys(require(process.argv[1])).join(" "))' "$list"); do
    specs=$(node -e 'console.log(require(process.argv[1])[process.argv[2]].join(" "))' "$list" "$name")
    if [ "$(cat "$STAMPS/consumers-$name" 2>/dev/null)" = "$specs" ] && [ -d "$root/$name/node_modules" ]; then continue; fi
    log "installing $specs for the consumer tests (once)"
    rm -rf "${root:?}/$name" && mkdir -p "$root/$name"
    echo '{"private":true}' > "$root/$name/package.json"
    # shellcheck disable=SC2086
    (cd "$root/$name" && npm install --no-audit --no-fund --loglevel=error $specs >&2)
    echo "$specs" > "$STAMPS/consumers-$name"
  done
}

# The Prometheus text-format parser the worker tests validate /metrics with: the
# official Python client's parser (prometheus-client from PyPI) in a venv under .tools.
ensure_prom_parser() {
  local venv="$REPO/.tools/pyprom" want="0.21.1"
  if [ "$(cat "$STAMPS/pyprom" 2>/dev/null)" = "$want" ] && [ -x "$venv/bin/python" ]; then return 0; fi
  command -v python3 >/dev/null || apt_ensure python3 python3-venv
  python3 -m venv "$venv" 2>/dev/null || { apt_ensure python3-venv; rm -rf "$venv"; python3 -m venv "$venv"; }
  log "installing prometheus-client $want (Prometheus text parser for the worker tests)"
  "$venv/bin/pip" install -q --disable-pip-version-check "prometheus-client==$want" >&2
  echo "$want" > "$STAMPS/pyprom"
}
