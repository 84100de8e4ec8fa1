"""The one display order, the pages of the pending list, which items `sync <query>` reaches,
and which items the daily reminder names (sync/service/listing.py, sync/service/reminders.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.models import DirectoryUser, Kind, Proposal, ProposalState
from sync.service import listing
from sync.service.records import Item
from sync.service.reminders import overdue
from sync.state.proposals import StoredProposal

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def proposal(kind: Kind, name: str, n: int = 0, app_label: str = "") -> Proposal:
    return Proposal(
        kind=kind,
        entra_id=f"e-{name}-{n}",
        app_user_id=f"u{n}" if kind is Kind.REMOVAL else None,
        reason="",
        label=name,
        app_label=app_label,
    )


def item(p: Proposal) -> Item:
    return Item(proposal=p, state=ProposalState.PENDING, tenant="t", directory="d", digest="x")


def test_items_are_ordered_by_kind_in_seed_order_then_by_name_ignoring_case() -> None:
    ps = [
        proposal(Kind.CONFLICT, "aaron"),
        proposal(Kind.REMOVAL, "Zed"),
        proposal(Kind.NEW, "bertil"),
        proposal(Kind.NEW, "Anna"),
        proposal(Kind.MATCH, "Örjan"),
        proposal(Kind.MATCH, "carl"),
        proposal(Kind.UPDATE, "Dora"),
    ]
    ordered = listing.in_display_order(ps, lambda p: p)
    assert [(p.kind, p.label) for p in ordered] == [
        (Kind.MATCH, "carl"),
        (Kind.MATCH, "Örjan"),
        (Kind.NEW, "Anna"),
        (Kind.NEW, "bertil"),
        (Kind.UPDATE, "Dora"),
        (Kind.REMOVAL, "Zed"),
        (Kind.CONFLICT, "aaron"),
    ]


def test_a_removal_without_an_entra_name_is_listed_by_the_directory_name() -> None:
    gone = proposal(Kind.REMOVAL, "", app_label="Gus Gone")
    assert listing.display_name(gone) == "Gus Gone"


def test_pages_cover_every_item_once_and_count_what_comes_after() -> None:
    items = [item(proposal(Kind.NEW, f"user {n:02d}", n)) for n in range(23)]
    pages = [listing.page_of(items, n, size=10) for n in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [10, 10, 3]
    assert [p.after for p in pages] == [13, 3, 0]
    assert [p.first for p in pages] == [1, 11, 21]
    listed = [i.id for p in pages for i in p.items]
    assert sorted(listed) == sorted(i.id for i in items) and len(set(listed)) == 23


def test_a_page_beyond_the_end_is_the_last_page_and_before_the_start_the_first() -> None:
    items = [item(proposal(Kind.MATCH, f"m{n}", n)) for n in range(12)]
    assert listing.page_of(items, 9, size=10).page == 2
    assert listing.page_of(items, 0, size=10).page == 1


def test_a_page_of_another_list_is_marked_changed() -> None:
    items = [item(proposal(Kind.MATCH, f"m{n}", n)) for n in range(12)]
    first = listing.page_of(items, 1, size=10)
    assert not listing.page_of(items, 2, size=10, expected_set=first.set_digest).changed
    fewer = listing.page_of(items[1:], 2, size=10, expected_set=first.set_digest)
    assert fewer.changed


def test_a_query_reaches_a_removal_by_the_former_users_email_or_number() -> None:
    gone = proposal(Kind.REMOVAL, "", app_label="Gus Gone")
    former = DirectoryUser(id="u0", email="gus@contoso.se", phones=("+46701299999",))
    for query in ("gus@contoso.se", "0701-29 99 99", "Gus", "u0"):
        assert listing.reaches(gone, query, set(), former, "SE"), query
    assert not listing.reaches(gone, "anna@contoso.se", set(), former, "SE")


def stored(p: Proposal, created: datetime) -> StoredProposal:
    return StoredProposal(
        proposal=p, state=ProposalState.PENDING, tenant="t", directory="d", created_at=created
    )


def test_only_items_older_than_the_limit_are_overdue_and_none_when_off() -> None:
    old = stored(proposal(Kind.MATCH, "old"), NOW - timedelta(days=3, minutes=1))
    young = stored(proposal(Kind.MATCH, "young"), NOW - timedelta(days=2, hours=23))
    assert [o.stored.id for o in overdue([young, old], NOW, 3)] == [old.id]
    assert overdue([young, old], NOW, 0) == []
