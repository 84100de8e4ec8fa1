"""`entra-sync plan` as the contract in DESIGN.md §5: JSON shape, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_plan_json_lists_proposals_summary_and_blocked() -> None:
    r = run(
        "plan",
        "--tenant",
        str(EX / "tenant.json"),
        "--directory",
        str(EX / "directory.json"),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"proposals", "summary", "blocked"}
    for p in out["proposals"]:
        assert set(p) >= {"kind", "entra_id", "app_user_id", "reason", "changes"}
    assert out["summary"]["match"] == len([p for p in out["proposals"] if p["kind"] == "match"])
    conflict = next(p for p in out["proposals"] if p["kind"] == "conflict")
    assert conflict["entra_ids"] == ["e-frida", "e-gustav"]


def test_plan_with_example_config_shows_every_kind() -> None:
    r = run(
        "plan",
        "--tenant",
        str(EX / "tenant.json"),
        "--directory",
        str(EX / "directory.json"),
        "--config",
        str(EX / "config.toml"),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    kinds = {p["kind"] for p in json.loads(r.stdout)["proposals"]}
    assert kinds == {"match", "new", "update", "removal", "conflict"}


@pytest.mark.parametrize(
    ("tenant", "content", "expected"),
    [
        ("missing.json", None, "missing.json: cannot read the tenant file"),
        ("bad.json", "{not json", "bad.json: the tenant file is not valid JSON"),
        (
            "noid.json",
            '{"users": [{"displayName": "x"}]}',
            "noid.json: users[0]: a user entry has no valid 'id'",
        ),
        (
            "types.json",
            '{"users": [{"id": "a", "mobilePhone": 5}]}',
            "types.json: users[0]: user a: mobilePhone is not a string",
        ),
    ],
)
def test_plan_bad_tenant_file_exits_2_with_one_line_naming_the_file(
    tmp_path: Path,
    tenant: str,
    content: str | None,
    expected: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / tenant
    if content is not None:
        path.write_text(content)
    code = main(
        ["plan", "--tenant", str(path), "--directory", str(EX / "directory.json"), "--json"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err and "\n" not in err and "Traceback" not in err


def test_plan_bad_config_exits_2_naming_the_attribute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mapping]\nfirst_name = "givenname"\n')
    code = main(
        [
            "plan",
            "--tenant",
            str(EX / "tenant.json"),
            "--directory",
            str(EX / "directory.json"),
            "--config",
            str(cfg),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "c.toml: mapping.first_name" in err and "givenName" in err


def test_plan_changes_nothing(tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in EX.rglob("*") if p.is_file()}
    r = run(
        "plan",
        "--tenant",
        str(EX / "tenant.json"),
        "--directory",
        str(EX / "directory.json"),
        "--json",
    )
    assert r.returncode == 0
    assert {p: p.read_bytes() for p in EX.rglob("*") if p.is_file()} == before
