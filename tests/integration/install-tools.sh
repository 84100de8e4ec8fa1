#!/usr/bin/env bash
# Debian packages the integration tests run for real: caddy (TLS in front of the bot,
# tests/integration/test_https_caddy.py) and systemd-analyze (deploy/entra-sync.service).
# Installed with apt-get when missing (as root, or through sudo). Safe to call often: does
# nothing once they are there.
set -euo pipefail
command -v caddy >/dev/null && command -v systemd-analyze >/dev/null && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
command -v caddy >/dev/null || {
  echo "install-tools: installing Debian caddy (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq caddy >/dev/null
}
command -v systemd-analyze >/dev/null || {
  echo "install-tools: installing Debian systemd (systemd-analyze verifies deploy/)" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
}
