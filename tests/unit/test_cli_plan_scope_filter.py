"""`entra-sync plan` with `[scope] filter`: the tenant file answers the filter as the simulated
Graph does; a filter Graph would refuse exits 2 with Graph's message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.component.test_service import dir_user, entra


def _files(tmp: Path, scope_filter: str) -> list[str]:
    users = [
        entra("e-anna", "Anna", "Lind", "+46701111111", department="Support"),
        entra("e-bo", "Bo", "Ek", "+46702222222", department="Sales"),
    ]
    (tmp / "tenant.json").write_text(json.dumps({"users": users, "groups": []}))
    (tmp / "directory.json").write_text(
        json.dumps({"users": [dir_user("1", "Bo", "Ek", "+46702222222")], "ignored": []})
    )
    (tmp / "config.toml").write_text(f"[scope]\nfilter = {json.dumps(scope_filter)}\n")
    return [
        "plan",
        "--tenant",
        str(tmp / "tenant.json"),
        "--directory",
        str(tmp / "directory.json"),
        "--config",
        str(tmp / "config.toml"),
        "--json",
    ]


def test_plan_proposes_only_the_users_the_filter_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_files(tmp_path, "department eq 'Support'"))
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(p["kind"], p["entra_id"]) for p in out["proposals"]] == [("new", "e-anna")]


def test_plan_with_a_filter_graph_refuses_exits_2_with_graphs_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_files(tmp_path, "faxNumber eq '1'"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "[scope] filter" in err
    assert "Unsupported or invalid query filter clause specified for property 'faxNumber'" in err
