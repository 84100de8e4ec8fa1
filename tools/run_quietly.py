"""Run a slow command quietly but never silently: ``python3 tools/run_quietly.py CMD...``.

Its output goes to a log file; a line every ``--every`` seconds says it is still working; when
it fails, the log's last lines are shown and its exit code returned. Standard library only (it
runs before the virtual environment exists).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="run_quietly", description=__doc__)
    p.add_argument("--every", type=float, default=20.0, help="seconds between progress lines")
    p.add_argument("--what", default="working", help="what the progress line says is going on")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no command given")
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("w+", prefix="run_quietly.", suffix=".log") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while True:
            try:
                rc = proc.wait(timeout=args.every)
                break
            except subprocess.TimeoutExpired:
                print(f"  ... still {args.what} ({time.monotonic() - started:.0f} s)", flush=True)
        if rc != 0:
            log.seek(0)
            tail = log.read().splitlines()[-40:]
            print("\n".join(tail), file=sys.stderr)
            print(f"failed (exit {rc}): {' '.join(cmd)}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
