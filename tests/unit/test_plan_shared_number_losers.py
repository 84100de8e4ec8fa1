"""A shared number's losers (DECISIONS "Conflicts"): once an admin chose the owner, no
proposal for another user carries that number."""

from __future__ import annotations

from typing import Any

from sync.config import config_from_dict
from sync.models import DirectoryUser, EntraSnapshot, Kind, StateView, parse_entra_user
from sync.plan.planner import plan

SHARED = "+46855500099"


def entra(uid: str, **attrs: Any) -> dict[str, Any]:
    return {
        "id": uid,
        "accountEnabled": True,
        "displayName": f"{uid.title()} Test",
        "mail": f"{uid}@contoso.se",
        "userPrincipalName": f"{uid}@contoso.se",
        "mobilePhone": None,
        "businessPhones": [],
    } | attrs


def snap(*users: dict[str, Any]) -> EntraSnapshot:
    return EntraSnapshot(users=[parse_entra_user(u) for u in users])


def test_the_loser_of_a_shared_number_is_offered_as_new_without_that_number() -> None:
    s = snap(
        entra("anna", mobilePhone="070-111 11 11", businessPhones=["08-555 000 99"]),
        entra("bo", businessPhones=["08-555 000 99"]),
    )
    owned = StateView(number_owners={SHARED: "bo"})
    p = plan(s, [DirectoryUser(id="1", phones=(SHARED,))], owned, config_from_dict({}))
    (new,) = [x for x in p.proposals if x.kind is Kind.NEW]
    assert new.entra_id == "anna"
    assert new.changes["phones"].new == ("+46701111111",)


def test_a_loser_whose_only_number_was_lost_is_offered_without_numbers() -> None:
    s = snap(entra("anna", businessPhones=["08-555 000 99"]), entra("bo", mobilePhone=SHARED))
    owned = StateView(number_owners={SHARED: "bo"})
    p = plan(s, [DirectoryUser(id="1", phones=(SHARED,))], owned, config_from_dict({}))
    (new,) = [x for x in p.proposals if x.kind is Kind.NEW]
    assert new.entra_id == "anna" and "phones" not in new.changes


def test_the_loser_stays_without_the_number_after_the_owner_was_linked() -> None:
    s = snap(entra("anna", businessPhones=["08-555 000 99"]), entra("bo", mobilePhone=SHARED))
    d = [DirectoryUser(id="1", phones=(SHARED,), entra_id="bo", display_name="Bo Test")]
    owned = StateView(number_owners={SHARED: "bo"})
    p = plan(s, d, owned, config_from_dict({}))
    offered = [x for x in p.proposals if x.entra_id == "anna"]
    assert [x.kind for x in offered] == [Kind.NEW]
    assert all(SHARED not in (x.changes.get("phones") or (None, ()))[1] for x in offered)


def test_the_owner_of_a_shared_number_keeps_it_when_offered_as_new() -> None:
    s = snap(entra("anna", mobilePhone=SHARED), entra("bo", mobilePhone=SHARED))
    d = [DirectoryUser(id="1", phones=(SHARED,)), DirectoryUser(id="2", phones=(SHARED,))]
    p = plan(s, d, StateView(number_owners={SHARED: "anna"}), config_from_dict({}))
    by_user = {x.entra_id: x for x in p.proposals}
    assert by_user["anna"].changes["phones"].new == (SHARED,)
    assert "phones" not in by_user["bo"].changes
