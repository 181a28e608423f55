#!/usr/bin/env bash
# The main job of edgesync in one command: builds, starts a local sqld and the edge
# Worker's real-time hub (wrangler dev), serves the dashboard, and runs a short headless
# tour in Chromium — two browser devices, one goes offline, both keep editing (a
# counter, a set, a text, the never-oversell inventory rule), it comes back, and both
# converge. Prints what happened and where the screenshots are; exits.
#
#   bash scripts/demo.sh            # the tour (under a minute after the build)
#   bash scripts/demo.sh --serve    # the tour, then keeps everything running for you:
#                                   # open the printed URL (Ctrl+C stops it all)
#   bash scripts/demo.sh --serve --no-tour
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO"

bash scripts/build.sh
ensure_sqld
ensure_chromium
apt_ensure fonts-noto-color-emoji # the chat's reactions in the screenshots
wrangler_env

exec node scripts/demo/tour.mjs "$@"
