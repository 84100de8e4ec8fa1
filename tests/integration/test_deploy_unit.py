"""The systemd unit of the recipe (deploy/entra-sync.service): systemd's own verifier reads it
without a complaint (it prints unknown keys and malformed values, and still exits 0, so the
test reads what it prints), and it keeps the hardening the README promises."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "entra-sync.service"
ENTRY = Path(sys.executable).parent / "entra-sync"


def verify(unit: Path) -> str:
    """What ``systemd-analyze verify`` says about ``unit`` (empty: nothing to say)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: `make test` installs it (install-tools.sh)")
    done = subprocess.run(
        [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    return (done.stdout + done.stderr).strip()


def test_systemd_verifies_the_unit_without_a_complaint(tmp_path: Path) -> None:
    # ExecStart must name an executable that exists here: this checkout's entra-sync
    unit = tmp_path / "entra-sync.service"
    unit.write_text(UNIT.read_text().replace("/opt/entra-sync/.venv/bin/entra-sync", str(ENTRY)))
    assert verify(unit) == ""
    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=maybe"))
    assert "Failed to parse boolean value, ignoring: maybe" in verify(broken)


def test_the_unit_runs_the_bot_on_loopback_as_an_unprivileged_sandboxed_user() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert "--host 127.0.0.1" in service["ExecStart"]
    assert service["EnvironmentFile"] == "/etc/entra-sync/env"
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key
