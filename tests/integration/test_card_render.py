"""Every card (golden and notice cards, English and Swedish) through the official Adaptive
Cards JavaScript renderer (npm ``adaptivecards``, pinned in tests/cards-render/package.json) in
headless Debian Chromium, with Teams' light and dark host configs: no parse or validation
warning, no render error, every element parsed, DATE/TIME templates expanded.
tests/cards-render/install.sh installs chromium (apt-get) and the npm packages (npm ci)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cards.schema import CardSchema
from tests.unit.card_sets import every_card
from tests.unit.test_cards import ENGLISH_NOW, SWEDISH_NOW, walk

TOOLS = Path(__file__).resolve().parents[1] / "cards-render"
CARDS = {f"en/{k}": v for k, v in every_card(ENGLISH_NOW).items()} | {
    f"sv/{k}": v for k, v in every_card(SWEDISH_NOW).items()
}
BROKEN = {
    # an element type that does not exist, and a size the schema does not know
    "broken/unknown_type": {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "TextBlok", "text": "x"}, {"type": "TextBlock", "text": "y"}],
    },
    "broken/bad_value": {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [{"type": "TextBlock", "text": "y", "size": "Huge"}],
    },
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The renderer's report for every card (one Chromium run)."""
    subprocess.run([str(TOOLS / "install.sh")], check=True, timeout=900)
    path = tmp_path_factory.mktemp("cards") / "cards.json"
    path.write_text(json.dumps(CARDS | BROKEN), encoding="utf-8")
    done = subprocess.run(
        ["node", str(TOOLS / "render.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def element_types(card: dict[str, Any]) -> list[str]:
    """Every element and action type of the card (body, actions, refresh action)."""
    return sorted(
        kind
        for n in walk(card)
        if isinstance(kind := n.get("type"), str) and kind != "AdaptiveCard"
    )


def test_the_renderer_is_the_pinned_official_one(rendered: dict[str, Any]) -> None:
    package = json.loads((TOOLS / "package.json").read_text(encoding="utf-8"))
    assert rendered["renderer"] == package["dependencies"]["adaptivecards"]


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_renders_without_warnings_with_teams_host_config(
    rendered: dict[str, Any], name: str, theme: str
) -> None:
    report = rendered["cards"][name][theme]
    assert report["warnings"] == []
    assert report["errors"] == []
    assert report["text"].strip()
    assert sorted(report["parsed"]) == element_types(CARDS[name])  # nothing was dropped


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_validates_against_the_1_5_schema(name: str) -> None:
    assert CardSchema("1.5").errors(CARDS[name]) == []


def test_times_are_rendered_by_the_client_not_left_as_templates(rendered: dict[str, Any]) -> None:
    text = rendered["cards"]["en/decided_linked"]["light"]["text"]
    assert "{{" not in text and "2026" in text  # another day: the date shows


@pytest.mark.parametrize("name", ["broken/unknown_type", "broken/bad_value"])
def test_the_check_reports_what_the_renderer_warns_about(
    rendered: dict[str, Any], name: str
) -> None:
    assert rendered["cards"][name]["light"]["warnings"]
