#!/usr/bin/env bash
# Renders kvchaos HTML reports to PNG screenshots with headless Chromium, to look at them.
#
#   scripts/render-html.sh REPORT_DIR_OR_HTML [OUT.png] [WIDTH,HEIGHT]
#
# A report folder means its report.html. The screenshot goes next to the page by default.
# Chromium runs offline: no network features, a throw-away profile, and --no-sandbox only when
# run as root (Chromium refuses to start as root otherwise). Needs `apt-get install chromium`.
# To look at the writer's own fixture page (every chart, hand-made data):
#   KVCHAOS_FIXTURE_HTML=/tmp/fixture.html cargo test --lib fixture_page_parses
#   scripts/render-html.sh /tmp/fixture.html
set -euo pipefail

if [ $# -lt 1 ]; then
  sed -n '2,11p' "$0" >&2
  exit 2
fi
page=$1
[ -d "$page" ] && page=$page/report.html
if [ ! -f "$page" ]; then
  echo "error: $page: no such file: pass a report folder or an HTML file" >&2
  exit 2
fi
out=${2:-${page%.html}.png}
size=${3:-1400,3000}

chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chromium" ]; then
  echo "error: chromium not found: apt-get install -y chromium" >&2
  exit 3
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
args=(--headless --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile"
  --screenshot="$(realpath -m "$out")" --window-size="$size")
[ "$(id -u)" = 0 ] && args+=(--no-sandbox)
"$chromium" "${args[@]}" "file://$(realpath "$page")" >/dev/null 2>&1
echo "$out"
