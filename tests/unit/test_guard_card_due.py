"""When a run's guard card is posted: watch mode must not repeat it every minute, an admin's
`sync now` must always show it."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.announce import guard_card_due, held_back
from sync.models import Blocked, Kind, Proposal
from sync.service.records import RunResult, Trigger

AT = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def _removal(eid: str) -> Proposal:
    return Proposal(kind=Kind.REMOVAL, entra_id=eid, app_user_id=f"d-{eid}", reason="gone")


def _run(trigger: Trigger, *eids: str) -> RunResult:
    blocked = (Blocked("too many", len(eids), tuple(_removal(e) for e in eids)),) if eids else ()
    return RunResult("contoso", "main", "ok", trigger, AT, AT, blocked=blocked)


def test_a_scheduled_run_holding_back_the_same_removals_posts_no_second_guard_card() -> None:
    first = _run("scheduled", "e-1", "e-2")
    assert guard_card_due(first, None)
    assert not guard_card_due(_run("scheduled", "e-1", "e-2"), held_back(first))


def test_a_scheduled_run_holding_back_other_removals_posts_a_new_guard_card() -> None:
    last = held_back(_run("scheduled", "e-1", "e-2"))
    assert guard_card_due(_run("scheduled", "e-1", "e-2", "e-3"), last)


def test_sync_now_always_posts_the_guard_card_even_for_the_same_removals() -> None:
    last = held_back(_run("scheduled", "e-1", "e-2"))
    assert guard_card_due(_run("manual", "e-1", "e-2"), last)


def test_a_run_that_holds_nothing_back_posts_no_guard_card() -> None:
    assert not guard_card_due(_run("manual"), None)
    assert not guard_card_due(_run("scheduled"), frozenset({"x"}))
