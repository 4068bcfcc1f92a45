#!/usr/bin/env bash
# What the tests need beyond Python on a fresh Debian machine, installed only when missing:
# Debian's `chromium` (Playwright drives that binary; no test tool downloads a browser), node +
# npm for `make webui`, tcmalloc (`socratic train` runs under it: half the peak host memory,
# trainer/memory.py), and `buildah` + `debootstrap` for the CPU image's smoke (`make
# image-cpu-smoke`, scripts/build_images.sh). Then the page's libraries (`make webui`). Quick when
# all is there.
#
#   scripts/ci_setup.sh      # as root, or with sudo available; .ci/run calls it
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
compgen -G "/usr/lib/*/libtcmalloc_minimal.so.4" >/dev/null || need+=(libtcmalloc-minimal4)
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "browser tests: $(command -v chromium), node $(node --version), npm $(npm --version)"
echo "allocator: $(compgen -G "/usr/lib/*/libtcmalloc_minimal.so.4")"
echo "images: $(buildah --version), debootstrap $(dpkg-query -W -f '${Version}' debootstrap)"
make webui
