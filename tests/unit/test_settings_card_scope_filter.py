"""The settings card's scope filter: the input, the impact before confirming, the schema."""

from __future__ import annotations

from typing import Any

from cards import build
from cards.schema import CardSchema
from cards.views import CardRef, ScopeImpactView, SettingsView

IMPACT = ScopeImpactView("contoso", "main", 6, 3, 3, True)


def _view(**kw: Any) -> SettingsView:
    return SettingsView(
        ref=CardRef(pid="settings", digest="abc"), scope_filter="city eq 'Lund'", **kw
    )


def test_the_filter_input_carries_the_filter_in_force() -> None:
    card = build.settings_card(_view())
    (inp,) = [b for b in card["body"] if b.get("id") == "scope_filter"]
    assert inp["value"] == "city eq 'Lund'" and inp["type"] == "Input.Text"


def test_the_impact_card_validates_against_the_1_5_schema() -> None:
    card = build.settings_card(_view(filter_impacts=(IMPACT,), filter_confirm="t0ken"))
    assert CardSchema("1.5").errors(card) == []


def test_confirm_and_save_replaces_save_and_carries_the_token() -> None:
    card = build.settings_card(_view(filter_impacts=(IMPACT,), filter_confirm="t0ken"))
    titles = [a["title"] for a in card["actions"]]
    assert titles == ["Confirm and save", "Cancel"]
    assert card["actions"][0]["data"]["d"] == "t0ken"


def test_a_tenant_name_in_the_impact_is_markdown_inert() -> None:
    impact = ScopeImpactView("**evil**", "main", 1, 1, 0, False)
    card = build.settings_card(_view(filter_impacts=(impact,), filter_confirm="t"))
    texts = [b.get("text", "") for b in card["body"]]
    assert any("\\*\\*evil\\*\\*" in t for t in texts)
