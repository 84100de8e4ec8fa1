#!/usr/bin/env bash
# Install the npm tools of tests/e2e (versions pinned in package.json and package-lock.json) into
# tests/e2e/node_modules when they are missing or older than the lock file. Safe to call often.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
stamp=node_modules/.installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  command -v npm >/dev/null || { echo "install-tools: npm not found (Node.js 20 needed)" >&2; exit 1; }
  echo "install-tools: npm ci in $(pwd)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi
