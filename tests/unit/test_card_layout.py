"""Layout fixes of issue 17 and the decided card's content, drawn from the bot's records
(bot.to_views) to the card."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot import to_views
from cards import build
from cards.views import (
    INPUT_TARGET,
    CardRef,
    ConflictView,
    EntraPerson,
    Outcome,
    SettingsView,
)
from sync.models import Change, Kind, Proposal, ProposalState
from sync.service.service import Item
from tests.unit.test_cards import ENGLISH_NOW, REF, render, texts_of, walk

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def by_id(card: dict[str, Any], id_: str) -> dict[str, Any]:
    return next(n for n in walk(card) if n.get("id") == id_)


def folded(card: dict[str, Any]) -> set[str]:
    box = by_id(card, build.SCHEDULE_MORE_ID)
    return {n["id"] for n in walk(box["items"]) if "id" in n} if not box["isVisible"] else set()


def settings(mode: str, errors: dict[str, str] | None = None) -> dict[str, Any]:
    view = SettingsView(ref=CardRef("settings", "s"), mode=mode, errors=errors or {})
    return build.settings_card(view, ENGLISH_NOW)


# --- settings ------------------------------------------------------------------------------


def test_manual_mode_folds_away_every_schedule_time() -> None:
    assert folded(settings("manual")) == {"at", "every_hours", "every_seconds"}


def test_daily_mode_shows_its_time_and_folds_the_others() -> None:
    card = settings("daily")
    assert folded(card) == {"every_hours", "every_seconds"}
    assert by_id(card, "at")["value"] == "02:00"


def test_the_folded_fields_open_with_a_toggle_and_are_still_sent() -> None:
    card = settings("manual")
    toggle = next(n for n in walk(card) if n.get("type") == "Action.ToggleVisibility")
    assert toggle["targetElements"] == [build.SCHEDULE_MORE_ID]
    assert by_id(card, "every_hours")["value"] == 12  # saved value kept on Save


def test_an_error_in_a_folded_schedule_field_unfolds_it() -> None:
    assert folded(settings("manual", {"every_hours": "Use 1 to 168."})) == set()


# --- new, conflict, preview ----------------------------------------------------------------


def test_the_link_picker_of_a_new_card_is_optional() -> None:
    picker = by_id(render("new"), INPUT_TARGET)
    assert "isRequired" not in picker
    assert "optional" in picker["label"]


def test_a_conflict_claimant_shows_the_upn_not_the_object_id() -> None:
    facts = texts_of(render("conflict"))
    assert "Anna Svensson (anna@contoso\\.com)" in facts
    assert not any("e\\-anna" in f for f in facts)


def test_a_conflict_claimant_without_a_upn_shows_the_object_id() -> None:
    view = ConflictView(REF, "+46701234567", (EntraPerson("e-x", "X"), EntraPerson("e-y", "Y")))
    assert "X, id e\\-x" in texts_of(build.conflict_card(view))


def test_each_preview_person_sits_with_their_fields_under_a_separator() -> None:
    body = render("preview")["body"]
    blocks = [el for el in body if el["type"] == "Container"]
    assert len(blocks) == 2
    for block, name in zip(blocks, ("Anna", "Bo Ek"), strict=True):
        assert block["separator"] is True and block["spacing"] == "Medium"
        assert name in block["items"][0]["text"]
        assert block["items"][1]["type"] == "FactSet"


# --- decided cards -------------------------------------------------------------------------


def item(proposal: Proposal, verb: str, state: ProposalState = ProposalState.APPLIED) -> Item:
    return Item(
        proposal=proposal,
        state=state,
        tenant="contoso",
        directory="main",
        digest="d",
        decided_by="Maria Admin",
        decided_at=AT,
        verb=verb,
    )


def test_a_decided_link_names_the_directory_user_it_was_linked_to() -> None:
    new = Proposal(kind=Kind.NEW, entra_id="e-bo", app_user_id=None, reason="new", label="Bo Ek")
    view = to_views.decided_view(
        item(new, "link"), inputs={INPUT_TARGET: "u-1"}, names={"u-1": "Bo Eklund"}
    )
    assert view.outcome is Outcome.LINKED and view.at == AT
    text = texts_of(build.decided_card(view, ENGLISH_NOW))
    assert "Linked to the directory user Bo Eklund (id u\\-1)." in text


def test_a_decided_conflict_names_the_owner_who_keeps_the_number() -> None:
    conflict = Proposal(
        kind=Kind.CONFLICT,
        entra_id=None,
        app_user_id=None,
        reason="shared",
        entra_ids=("e-anna", "e-carl"),
        entra_labels=("Anna Svensson", "Carl Lind"),
        number="+46701234567",
    )
    view = to_views.decided_view(item(conflict, "pick_owner"), inputs={"owner": "e-carl"})
    text = texts_of(build.decided_card(view, ENGLISH_NOW))
    assert "Carl Lind keeps the number \\+46701234567." in text


def test_a_decided_update_lists_the_fields_it_wrote() -> None:
    update = Proposal(
        kind=Kind.UPDATE,
        entra_id="e-anna",
        app_user_id="u-17",
        reason="changed",
        changes={"last_name": Change("Svensson", "Berg")},
        label="Anna Svensson",
        app_label="Anna Svensson",
    )
    card = build.decided_card(to_views.decided_view(item(update, "apply")), ENGLISH_NOW)
    text = texts_of(card)
    assert "Last name" in text and "Svensson \u2192 Berg" in text
    assert text[1].startswith("\u2705 **Applied** by Maria Admin, {{TIME(2026-12-03T09:30:00Z)}}")


def test_the_decided_line_is_default_coloured_text() -> None:
    line = render("decided")["body"][1]
    assert "color" not in line
