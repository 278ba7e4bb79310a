#!/bin/sh
# Re-vendor the dashboard's browser libraries from npm (pinned versions, licences kept).
set -eu
dest="$(cd "$(dirname "$0")/.." && pwd)/webui/static/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent htmx.org@2.0.11 uplot@1.6.32 >/dev/null
mkdir htmx uplot
tar xzf htmx.org-2.0.11.tgz -C htmx
tar xzf uplot-1.6.32.tgz -C uplot
cp htmx/package/dist/htmx.min.js htmx/package/LICENSE "$dest/htmx-2.0.11/"
cp uplot/package/dist/uPlot.iife.min.js uplot/package/dist/uPlot.min.css uplot/package/LICENSE \
   "$dest/uplot-1.6.32/"
echo "vendored into $dest"
