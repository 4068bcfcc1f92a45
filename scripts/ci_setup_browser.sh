#!/usr/bin/env bash
# What the chat page's browser tests need on a fresh Debian machine, installed only when missing:
# Debian's `chromium` (Playwright drives that binary; no test tool downloads a browser) and node +
# npm for `make webui`. Then the page's libraries (`make webui`). Quick when all is there.
#
#   scripts/ci_setup_browser.sh      # as root, or with sudo available; .ci/run calls it
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "browser tests: $(command -v chromium), node $(node --version), npm $(npm --version)"
make webui
