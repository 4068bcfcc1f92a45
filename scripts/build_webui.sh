#!/usr/bin/env bash
# The chat page's libraries (server/webui/package.json, exact versions in package-lock.json):
# `npm ci` from the npm registry, then their browser builds copied into server/webui/static/vendor/
# (git-ignored), which the gateway serves under /webui/vendor/. No bundler: the page loads the
# libraries' own UMD builds. Run by `make webui` and by the Docker images' build stage.
#
#   scripts/build_webui.sh            # needs node >= 18 and npm
set -euo pipefail
cd "$(dirname "$0")/../server/webui"

npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
modules=node_modules
tmp=static/vendor.tmp
rm -rf "$tmp"
mkdir -p "$tmp/katex/fonts" "$tmp/licenses"
cp "$modules/marked/lib/marked.umd.js" "$tmp/marked.umd.js"
cp "$modules/dompurify/dist/purify.min.js" "$tmp/purify.min.js"
cp "$modules/katex/dist/katex.min.js" "$modules/katex/dist/katex.min.css" "$tmp/katex/"
# woff2 only: every browser the page supports reads it; the CSS's woff/ttf fallbacks go unused.
cp "$modules"/katex/dist/fonts/*.woff2 "$tmp/katex/fonts/"
for pkg in marked dompurify katex; do
  cp "$modules/$pkg/LICENSE" "$tmp/licenses/$pkg.txt"
done
# Swap in the finished folder: an interrupted run never leaves a half-copied vendor/ in place.
rm -rf static/vendor
mv "$tmp" static/vendor
echo "webui: $(find static/vendor -type f | wc -l) files in server/webui/static/vendor"
