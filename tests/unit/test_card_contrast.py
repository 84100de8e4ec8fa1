"""Text contrast of every card on Teams' light and dark themes: WCAG 2.x AA, 4.5:1 for every
text block and fact, with the colours of Teams' host configs (tests/fixtures/teams, Microsoft's
published files). A text's colour is its container style's ``foregroundColors[color]``
(``subtle`` when isSubtle; ``#AARRGGBB`` blended over the background) against that container
style's ``backgroundColor``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.card_sets import every_card
from tests.unit.test_cards import ENGLISH_NOW, SWEDISH_NOW

HOST_CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "teams"
THEMES = ("light", "dark")
AA = 4.5
CARDS = {f"en/{k}": v for k, v in every_card(ENGLISH_NOW).items()} | {
    f"sv/{k}": v for k, v in every_card(SWEDISH_NOW).items()
}


def host_config(theme: str) -> dict[str, Any]:
    path = HOST_CONFIGS / f"microsoft-teams-{theme}.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def argb(colour: str) -> tuple[float, tuple[int, int, int]]:
    """``#RRGGBB`` or ``#AARRGGBB`` (Adaptive Cards' order) -> (alpha, rgb)."""
    h = colour.lstrip("#")
    alpha = 1.0
    if len(h) == 8:
        alpha, h = int(h[:2], 16) / 255, h[2:]
    return alpha, (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def luminance(rgb: tuple[float, float, float]) -> float:
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio; an alpha foreground is blended over the (opaque) background."""
    _, bg = argb(background)
    a, fg = argb(foreground)
    blended = tuple(a * f + (1 - a) * b for f, b in zip(fg, bg, strict=True))
    hi, lo = sorted((luminance(blended), luminance((bg[0], bg[1], bg[2]))), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def texts_with_style(node: Any, style: str = "default") -> Iterator[tuple[str, str, bool, str]]:
    """(container style, colour, subtle, text) of every text block and fact."""
    if isinstance(node, list):
        for n in node:
            yield from texts_with_style(n, style)
        return
    if not isinstance(node, dict):
        return
    style = node.get("style", style) if node.get("type") in ("Container", "Column") else style
    kind = node.get("type")
    if kind == "TextBlock":
        yield (
            style,
            str(node.get("color", "default")).lower(),
            bool(node.get("isSubtle")),
            node["text"],
        )
    elif kind == "FactSet":
        for f in node["facts"]:
            yield style, "default", False, f["title"]
            yield style, "default", False, f["value"]
    for key, val in node.items():
        if key not in ("actions", "refresh"):
            yield from texts_with_style(val, style)


def ratio(theme: str, style: str, colour: str, subtle: bool) -> float:
    cs = host_config(theme)["containerStyles"][style]
    fg = cs["foregroundColors"][colour]["subtle" if subtle else "default"]
    return contrast(fg, cs["backgroundColor"])


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("name", sorted(CARDS))
def test_every_text_meets_wcag_aa_on_teams_themes(name: str, theme: str) -> None:
    low = [
        (style, colour, subtle, text[:60], round(r, 2))
        for style, colour, subtle, text in texts_with_style(CARDS[name]["body"])
        if (r := ratio(theme, style, colour, subtle)) < AA
    ]
    assert low == []


def test_good_green_text_on_a_white_card_fails_aa() -> None:
    """What the decided line used to be: Teams' "good" on the light theme, about 2.1:1."""
    assert ratio("light", "default", "good", False) == pytest.approx(2.07, abs=0.01)


def test_attention_text_on_the_dark_theme_fails_aa() -> None:
    assert ratio("dark", "default", "attention", False) < AA


def test_the_contrast_formula_gives_21_for_black_on_white() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ff777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
