#!/usr/bin/env bash
# Install what the renderer check needs: Debian chromium (apt-get, when missing) and the npm
# packages pinned in package-lock.json (npm ci, when missing or older than the lock file).
# Never downloads a browser of its own (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD). Safe to call often.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "cards-render: installing Debian chromium (apt-get)" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium >/dev/null
fi
stamp=node_modules/.installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  command -v npm >/dev/null || { echo "cards-render: npm not found (Node.js 20 needed)" >&2; exit 1; }
  echo "cards-render: npm ci in $(pwd)" >&2
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi
