"""Which items Accept all / Apply all leave out (sync.plan.bulk), and the bulk cards."""

from __future__ import annotations

import pytest

from cards.bulk import bulk_confirm_card, bulk_done_card, bulk_refused_card
from cards.schema import CardSchema
from cards.views import BulkEntry, BulkView, CardRef
from sync.models import Change, DirectoryUser, Kind, Proposal, parse_entra_user
from sync.plan.bulk import is_role_account, needs_individual_look, number_counts

RENAME = {"display_name": Change("Reception", "Gustav Holm")}


def match(changes: dict[str, Change]) -> Proposal:
    return Proposal(Kind.MATCH, "e-g", "9", "r", changes=changes, match_key="email")


def person(number: str) -> dict[str, object]:
    return {"id": number, "accountEnabled": True, "businessPhones": [number]}


@pytest.mark.parametrize(
    ("first", "last", "display"),
    [
        ("Reception", "", "Reception"),
        ("Växel", "Kontoret", "Växeln"),
        ("Anna", "Berg", "Support (Anna Berg)"),
        (None, None, "Meeting room 4"),
    ],
)
def test_a_role_or_shared_account_is_recognised(first: str, last: str, display: str) -> None:
    assert is_role_account(DirectoryUser("9", first, last, display))


def test_a_person_with_first_and_last_name_is_no_role_account() -> None:
    assert not is_role_account(DirectoryUser("1", "Anna", "Berg", "Anna Berg"))


def test_a_rename_of_a_role_account_needs_an_individual_look() -> None:
    d = DirectoryUser("9", "Reception", "", "Reception", phones=("+46855500001",))
    counts = number_counts([], [d], "SE")
    assert "role account" in (needs_individual_look(match(RENAME), d, counts, "SE") or "")
    assert needs_individual_look(match({}), d, counts, "SE") is None  # a link alone is fine


def test_a_directory_entry_whose_number_two_entra_users_have_needs_an_individual_look() -> None:
    d = DirectoryUser("9", "Anna", "Berg", "Anna Berg", phones=("08-555 000 99",))
    users = [parse_entra_user(person("+46855500099")), parse_entra_user(person("08-555 000 99"))]
    why = needs_individual_look(match({}), d, number_counts(users, [d], "SE"), "SE")
    assert why == "Anna Berg has the shared number +46855500099"


def test_a_number_two_directory_entries_hold_needs_an_individual_look() -> None:
    a = DirectoryUser("1", "Anna", "Berg", phones=("+46701000000",))
    b = DirectoryUser("2", "Bo", "Ek", phones=("070-100 00 00",))
    assert needs_individual_look(match({}), a, number_counts([], [a, b], "SE"), "SE")


def test_an_ordinary_match_may_be_part_of_a_bulk_action() -> None:
    d = DirectoryUser("1", "Anna", "Berg", "Anna Berg (old)", phones=("+46701000000",))
    changes = {"display_name": Change("Anna Berg (old)", "Anna Berg")}
    assert needs_individual_look(match(changes), d, number_counts([], [d], "SE"), "SE") is None


VIEW = BulkView(
    Kind.MATCH,
    tuple(BulkEntry(f"User *{i}*") for i in range(40)),
    (BulkEntry("Gustav <b>Holm</b> \u2192 Reception", "has the shared number +46855500099"),),
    ref=CardRef("bulk:match", "abc"),
)


def test_the_bulk_cards_validate_against_the_schema() -> None:
    schema = CardSchema()
    for card in (bulk_confirm_card(VIEW), bulk_done_card(VIEW), bulk_refused_card()):
        assert schema.errors(card) == []


def test_the_bulk_confirmation_lists_a_bounded_number_of_items_with_names_escaped() -> None:
    card = bulk_confirm_card(VIEW)
    texts = [b["text"] for b in card["body"]]
    assert texts[0] == "Accept these 40 matches?"
    assert f"\u2026 and {40 - VIEW.limit} more" in texts
    assert not any("<b>" in t for t in texts)
    yes, cancel = card["actions"]
    assert (yes["verb"], yes["data"], cancel["verb"]) == (
        "bulk_confirm",
        {"pid": "bulk:match", "d": "abc"},
        "bulk_cancel",
    )
