"""Every card the product draws, in a language: the golden proposal/list cards of
test_cards.py plus the notice cards. Shared by the catalogue, contrast and renderer tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cards import notices
from cards.catalogue import Texts
from cards.views import CardRef
from tests.unit.test_cards import NOW, SAMPLES, render

Card = dict[str, Any]

NOTICE_SAMPLES: dict[str, Callable[[Texts], Card]] = {
    "failed": lambda t: notices.failed_card(("It broke", "Try again"), CardRef("p1", "d1"), t),
    "crashed": notices.crashed_card,
    "unreadable": notices.unreadable_action_card,
    "not_served": notices.not_served_card,
    "nothing_pending": notices.nothing_pending_card,
    "disconnect_confirm": lambda t: notices.disconnect_confirm_card("tok", t),
    "disconnected": lambda t: notices.disconnected_card("Ann Admin", NOW, t),
    "disconnect_cancelled": lambda t: notices.disconnect_cancelled_card(NOW, t),
    "guard_held": lambda t: notices.guard_held_card(CardRef("guard:contoso:main", "g"), t),
    "guard_decided": lambda t: notices.guard_decided_card("", "Ann Admin", NOW, t),
    "settings_saved": lambda t: notices.settings_saved_card(
        "Ann Admin", NOW - timedelta(days=3), t
    ),
    "unignore_failed": lambda t: notices.unignore_failed_card("Not ignored.", t),
}


def every_card(texts: Texts) -> dict[str, Card]:
    """name -> card, for every golden sample and every notice, drawn with ``texts``."""
    out = {name: render(name, texts) for name in SAMPLES}
    out.update({f"notice_{name}": make(texts) for name, make in NOTICE_SAMPLES.items()})
    return out
