"""`make run`: the bot in local mode with the demo tenant over the embedded store, plus the
Agents Playground (a Teams-like client) pointed at it when Node.js is available.

Prints the one URL to open; Ctrl-C stops everything.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "examples" / "demo" / "config.toml"
NODE_DIR = ROOT / "tests" / "e2e"
PLAYGROUND = NODE_DIR / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"
BOT_PORT = 3978
PLAYGROUND_URL = "http://127.0.0.1:56150"
# preloaded into the Playground so that it listens on loopback only (it has no host option)
LOOPBACK_ONLY = Path(__file__).with_name("playground_loopback.cjs")

log = logging.getLogger("entra_sync.demo")


def _wait_http(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def _ensure_playground() -> bool:
    if PLAYGROUND.exists():
        return True
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        print("Node.js is not installed: starting the bot only (no Agents Playground).")
        return False
    print("Installing the Agents Playground (npm ci, once; takes about a minute)...", flush=True)
    r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=False)
    return r.returncode == 0 and PLAYGROUND.exists()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROSOFT_APP_")}
    env.pop("REDIS_URL", None)  # the demo runs on the embedded store
    procs: list[subprocess.Popen[bytes]] = []
    bot = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--config",
            str(DEMO_CONFIG),
            "--host",
            "127.0.0.1",
            "--port",
            str(BOT_PORT),
        ],
        cwd=ROOT,
        env=env,
    )
    procs.append(bot)
    try:
        if not _wait_http(f"http://127.0.0.1:{BOT_PORT}/healthz"):
            print("The bot did not start; see the log above.", file=sys.stderr)
            return 1
        url = f"http://127.0.0.1:{BOT_PORT}/api/messages"
        if _ensure_playground():
            pg_env = {**env, "TEAMSAPPTESTER_BROWSER": "none"}
            procs.append(
                subprocess.Popen(
                    [
                        "node",
                        "--require",
                        str(LOOPBACK_ONLY),
                        str(PLAYGROUND),
                        "start",
                        "-e",
                        url,
                        "-c",
                        "msteams",
                        "--dt",
                    ],
                    cwd=NODE_DIR,
                    env=pg_env,
                )
            )
            if _wait_http(PLAYGROUND_URL, timeout=60):
                url = PLAYGROUND_URL
        print("\n" + "=" * 72)
        print(f"  Entra Sync demo is running. Open: {url}")
        print("  In the Playground: type 'sync now', then 'status'. Ctrl-C stops everything.")
        print("=" * 72 + "\n", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
