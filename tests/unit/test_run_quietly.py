"""tools/run_quietly.py (the Makefile's installer wrapper): quiet, never silent, and a failure
shows what the command said."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "run_quietly.py"


def run(*cmd: str, every: str = "0.2") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--every", every, "--what", "installing", "--", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_long_command_gets_progress_lines_and_its_own_output_is_kept_quiet() -> None:
    done = run(sys.executable, "-c", "import time; print('pip noise'); time.sleep(1.5)")
    assert done.returncode == 0
    assert "still installing" in done.stdout
    assert "pip noise" not in done.stdout + done.stderr


def test_a_failing_command_shows_its_output_and_its_exit_code() -> None:
    done = run(sys.executable, "-c", "import sys; print('no matching distribution'); sys.exit(3)")
    assert done.returncode == 3
    assert "no matching distribution" in done.stderr
    assert "failed (exit 3)" in done.stderr


def test_the_makefile_says_what_the_first_run_is_doing() -> None:
    makefile = (TOOL.parents[1] / "Makefile").read_text()
    assert "Creating the virtual environment" in makefile
    assert "Installing dependencies (first run takes" in makefile
    assert "tools/run_quietly.py" in makefile
