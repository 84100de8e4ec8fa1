#!/usr/bin/env bash
# End-to-end test (`make e2e`): the bot with the demo tenant, two Agents Playgrounds (a Teams-like
# web client; the admin's and a non-admin's) pointed at it, and tests/e2e/e2e.mjs driving them in
# headless Chromium.
# Installs Debian chromium and the npm tools when they are missing. Screenshots go to
# tests/e2e/artifacts/. On failure it prints the Playground's and the bot's logs. See docs/e2e.md.
#
# Environment: E2E_BOT_PORT (3978), E2E_PLAYGROUND_PORT (29150; `make run` keeps 56150),
# E2E_PLAYGROUND2_PORT (29152, the second user's Playground), E2E_CONFIG (tests/e2e/config.toml:
# the demo with Alex Wilber as the one admin), CHROMIUM (/usr/bin/chromium).
set -euo pipefail

started=$(date +%s)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BOT_PORT="${E2E_BOT_PORT:-3978}"
PG_PORT="${E2E_PLAYGROUND_PORT:-29150}"
PG2_PORT="${E2E_PLAYGROUND2_PORT:-29152}"
CONFIG="${E2E_CONFIG:-$HERE/config.toml}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
RUN="$HERE/.run"
ARTIFACTS="$HERE/artifacts"
PG_LOG="$HERE/devTools/m365agentsplayground.log"
PG2_LOG="$HERE/second-user/devTools/m365agentsplayground.log"

say() { echo "[e2e] $*"; }
elapsed() { echo $(($(date +%s) - started)); }

# --- tools -----------------------------------------------------------------------------------
EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf # the cards' status icons
if [ ! -x "$CHROMIUM" ] || [ ! -f "$EMOJI_FONT" ]; then
  say "installing Debian chromium and fonts-noto-color-emoji (apt-get)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
fi
"$HERE/install-tools.sh"
ENTRA_SYNC="$ROOT/.venv/bin/entra-sync"
[ -x "$ENTRA_SYNC" ] || { say "no $ENTRA_SYNC: run 'make venv' first (make e2e does)"; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$BOT_PORT" "$PG_PORT" "$PG2_PORT"; do
  port_free "$p" || { say "port $p is in use (is 'make run' running?); set E2E_BOT_PORT / E2E_PLAYGROUND_PORT / E2E_PLAYGROUND2_PORT"; exit 1; }
done

wait_http() { # url seconds
  local deadline=$(($(date +%s) + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

# --- processes -------------------------------------------------------------------------------
rm -rf "$RUN" "$ARTIFACTS" "$HERE/devTools" "$HERE/second-user/devTools"
mkdir -p "$RUN" "$ARTIFACTS"
BOT_PID="" PG_PID="" PG2_PID=""
cleanup() {
  for pid in $PG2_PID $PG_PID $BOT_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $PG2_PID $PG_PID $BOT_PID; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

show_logs() {
  say "---- Agents Playground log ($PG_LOG) ----"
  if [ -f "$PG_LOG" ]; then tail -n 200 "$PG_LOG"; else echo "(none)"; fi
  say "---- second user's Playground log ($PG2_LOG) ----"
  if [ -f "$PG2_LOG" ]; then tail -n 60 "$PG2_LOG"; else echo "(none)"; fi
  say "---- Playground stdout ----"
  tail -n 50 "$RUN/playground.out" 2>/dev/null || true
  say "---- bot log ($RUN/bot.log) ----"
  tail -n 120 "$RUN/bot.log" 2>/dev/null || true
}

summary() { # the driver's "e2e: N passed, M failed", repeated as the very last line
  grep -E '^e2e: [0-9]+ passed, [0-9]+ failed$' "$RUN/driver.out" 2>/dev/null | tail -n 1 ||
    echo "e2e: 0 passed, 1 failed"
}

fail() {
  say "FAILED: $*"
  show_logs
  say "elapsed: $(elapsed) s"
  summary
  exit 1
}

say "starting the bot on 127.0.0.1:$BOT_PORT with $CONFIG"
(
  cd "$ROOT"
  exec env -u MICROSOFT_APP_ID -u MICROSOFT_APP_PASSWORD -u MICROSOFT_APP_TENANT_ID -u REDIS_URL \
    "$ENTRA_SYNC" serve --config "$CONFIG" --host 127.0.0.1 --port "$BOT_PORT"
) >"$RUN/bot.log" 2>&1 &
BOT_PID=$!
wait_http "http://127.0.0.1:$BOT_PORT/healthz" 60 || fail "the bot did not answer /healthz within 60 s"

start_playground() { # working directory, port, output file; sets PG_STARTED
  (
    # The Playground reads .m365agentsplayground.yml and writes devTools/ in its working directory.
    cd "$1"
    # playground_locale.cjs: the driver may write a locale ("sv-SE") into $RUN/locale to have
    # the Playground send it instead of its fixed "en-US" (see the file)
    exec env TEAMSAPPTESTER_BROWSER=none PLAYGROUND_LOCALE_FILE="$RUN/locale" \
      node --require "$HERE/playground_locale.cjs" "$HERE/node_modules/@microsoft/m365agentsplayground/cli.js" \
      start -e "http://127.0.0.1:$BOT_PORT/api/messages" -c msteams --dt -p "$2"
  ) >"$3" 2>&1 &
  PG_STARTED=$!
}
# The defaults lie below Linux's ephemeral port range (32768-60999): 56150, the Playground's
# own default, lies in it, and a client socket of the bot (or of anything on the machine) can
# hold it for a moment, and the Playground then moves to another port. Try again a few times
# rather than fail on that coincidence (a port set in the environment may lie there too).
launch_playground() { # working directory, port, output file, who; sets PG_STARTED
  for attempt in 1 2 3; do
    say "starting the Agents Playground ($4) on 127.0.0.1:$2 (attempt $attempt)"
    start_playground "$1" "$2" "$3"
    if wait_http "http://127.0.0.1:$2/" 30; then return 0; fi
    grep -h "already in use" "$3" "$1/devTools/m365agentsplayground.log" 2>/dev/null | tail -n 1 || true
    kill "$PG_STARTED" 2>/dev/null || true
    wait "$PG_STARTED" 2>/dev/null || true
    [ "$attempt" -lt 3 ] || fail "the Playground ($4) did not answer on port $2 (3 attempts of 30 s)"
    sleep 2
  done
}
PG_STARTED=""
launch_playground "$HERE" "$PG_PORT" "$RUN/playground.out" "Alex Wilber, the admin"
PG_PID=$PG_STARTED
# The second user (second-user/.m365agentsplayground.yml): Megan Bowen, in the team, no admin.
launch_playground "$HERE/second-user" "$PG2_PORT" "$RUN/playground2.out" "Megan Bowen, not an admin"
PG2_PID=$PG_STARTED

say "driving the Playground in headless Chromium ($("$CHROMIUM" --version 2>/dev/null | head -1))"
set +e
: >"$RUN/locale"
(cd "$HERE" && PLAYGROUND_URL="http://127.0.0.1:$PG_PORT/" PLAYGROUND2_URL="http://127.0.0.1:$PG2_PORT/" \
  BOT_URL="http://127.0.0.1:$BOT_PORT/api/messages" E2E_ARTIFACTS="$ARTIFACTS" E2E_LOCALE_FILE="$RUN/locale" \
  timeout 240 node e2e.mjs) 2>&1 | tee "$RUN/driver.out"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" -eq 0 ] || fail "the browser flow (exit $rc); screenshots in $ARTIFACTS"
say "screenshots: $(ls "$ARTIFACTS" | tr '\n' ' ')"
say "passed; elapsed: $(elapsed) s"
summary
