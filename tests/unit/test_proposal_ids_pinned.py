"""Proposal ids are stored in Redis and posted on cards: they never change. The ids below were
computed by the code of before the planner rewrite and are written here literally."""

from __future__ import annotations

from sync.config import config_from_dict
from sync.models import (
    Change,
    DirectoryUser,
    EntraSnapshot,
    Kind,
    Proposal,
    StateView,
    parse_entra_user,
)
from sync.plan.planner import plan

PINNED: dict[str, Proposal] = {
    "4dd34ccb158434ff18b5": Proposal(
        Kind.NEW,
        "d9b2eb9c",
        None,
        "new",
        changes={
            "first_name": Change(None, "Åsa"),
            "last_name": Change(None, "Öberg 😀\x7f"),
            "phones": Change(None, ("+46701234567", "+4687654321")),
        },
    ),
    "d756497b6abcb0e7be06": Proposal(
        Kind.CONFLICT, None, None, "shared", entra_ids=("b", "a"), number="+46701234567"
    ),
    "996914e28cdd10acc2b4": Proposal(
        Kind.MATCH, "e1", "u1", "phone matched", match_key="phone", match_value="+46701234567"
    ),
    "e224d57c6806281ba48e": Proposal(
        Kind.MATCH,
        "e-åsa",
        "d-öberg",
        "e-mail",
        match_key="email",
        match_value="åsa@x.se",
        changes={"display_name": Change("Asa Oberg", "Åsa Öberg")},
    ),
    "f58d7fff22fc3e978222": Proposal(
        Kind.NEW,
        "e2",
        None,
        "new",
        changes={
            "first_name": Change(None, "Åsa"),
            "last_name": Change(None, "Öberg"),
            "display_name": Change(None, "Åsa Öberg 😀"),
            "phones": Change(None, ("+46701234567", "+4687654321")),
        },
    ),
    "b74e8697f6c9fb23483f": Proposal(
        Kind.NEW, "e3", None, "new", changes={"tags": Change(None, ("sales", "Stockholm", "ÄÖ"))}
    ),
    "3e92f04a2b6c49e68899": Proposal(
        Kind.NEW,
        "e4",
        None,
        "new",
        changes={"email": Change(None, None), "first_name": Change(None, "Bo")},
    ),
    "2cd8ffc6490dfb518ed0": Proposal(
        Kind.UPDATE,
        "e5",
        "d5",
        "changed",
        changes={"tags": Change(("a", "b"), ["b", "c"]), "last_name": Change("Ek", None)},
    ),
    "6bf72cd1c6867689ada2": Proposal(
        Kind.UPDATE,
        "e6",
        "d6",
        "changed",
        changes={"display_name": Change('Quote " and \\ back', "Tab\tnew\nline\x7f\u2028")},
    ),
    "dbf57e1c159efe82c409": Proposal(Kind.REMOVAL, "e7", "d7", "deleted", removal_cause="deleted"),
    "19e1af82845e21320ff5": Proposal(
        Kind.REMOVAL, "e8", "d8", "disabled", removal_cause="disabled", label="Åsa"
    ),
    "df3d29afde3b3f0275bb": Proposal(Kind.REMOVAL, None, "d9", "out", removal_cause="out_of_scope"),
    "17698c87eed8f27b34d9": Proposal(
        Kind.CONFLICT,
        None,
        "d10",
        "shared",
        entra_ids=("e-b", "e-a", "e-ö"),
        number="+46701234567",
        entra_labels=("B", "A", "Ö"),
    ),
    "90e352e4d92633026244": Proposal(
        Kind.CONFLICT, None, None, "shared", entra_ids=("z", "y"), number="+4687654321"
    ),
    "32ddfe805c58679e81ac": Proposal(
        Kind.UPDATE, "e😀", "d😀", "emoji", changes={"first_name": Change("😀", "🎉 Łukasz")}
    ),
}


def test_proposal_ids_are_the_ones_computed_before_the_rewrite() -> None:
    assert {p.id: p for p in PINNED.values()}.keys() == PINNED.keys()
    for want, p in PINNED.items():
        assert p.id == want, p


def test_reason_labels_and_app_label_are_not_part_of_the_id() -> None:
    p = PINNED["996914e28cdd10acc2b4"]
    other = Proposal(
        p.kind,
        p.entra_id,
        p.app_user_id,
        "another reason",
        match_key="email",
        match_value="x@y.se",
        label="Someone",
        app_label="Else",
    )
    assert other.id == p.id


def _entra(uid: str, given: str, surname: str | None, display: str, **kw: object) -> object:
    return {
        "id": uid,
        "accountEnabled": True,
        "givenName": given,
        "surname": surname,
        "displayName": display,
        "mail": f"{uid[2:]}@contoso.se",
        "mobilePhone": None,
        "businessPhones": [],
        **kw,
    }


def test_a_plan_of_every_kind_gives_the_pinned_ids_reasons_and_order() -> None:
    users = [
        _entra("e-asa", "Åsa", "Öberg", "Åsa Öberg 😀", mobilePhone="070-123 45 67"),
        _entra("e-bo", "Bo", "Ek", "Bo Ek", businessPhones=["08-555 000 99"]),
        _entra("e-cia", "Cia", "Lund", "Cia Lund", businessPhones=["+46 8 555 000 99"]),
        _entra("e-dan", "Dan", "<ext> Berg", "Dan Berg", mobilePhone="0731112233"),
        _entra("e-eva", "Eva", "Sund", "Eva Sund", mobilePhone="0731112244", accountEnabled=False),
        _entra(
            "e-fia",
            "Fia",
            None,
            "Fia",
            mail=None,
            userPrincipalName="fia@contoso.se",
            mobilePhone="0731112255",
        ),
        _entra("e-hal", "Hal", "Nyberg", "Hal Nyberg", mobilePhone="0731112266"),
        _entra(
            "e-ida",
            "Ida",
            "Ås",
            "Ida Ås",
            mobilePhone="0731112277",
            businessPhones=["0731112277", "08-123 456 78"],
        ),
    ]
    directory = [
        DirectoryUser("d-hal", "Hal", "Berg", "Hal Berg", "hal@contoso.se", entra_id="e-hal"),
        DirectoryUser("d-asa", phones=("+46701234567",)),
        DirectoryUser("d-shared", display_name="Reception", phones=("+46855500099",)),
        DirectoryUser("d-dan", "Dan", "Berg", "Dan Berg", "dan@contoso.se", entra_id="e-dan"),
        DirectoryUser("d-eva", "Eva", "Sund", "Eva Sund", "eva@contoso.se", entra_id="e-eva"),
        DirectoryUser("d-gone", display_name="Gustav Gone", entra_id="e-gone"),
        DirectoryUser("d-fia", email="FIA@contoso.se"),
    ]
    snapshot = EntraSnapshot(users=[parse_entra_user(u) for u in users])
    config = config_from_dict({"guard": {"max_removals": 10, "max_removal_share": 1.0}})
    p = plan(snapshot, directory, StateView(), config)
    got = [(x.kind.value, x.id, x.entra_id, x.app_user_id, x.label, x.reason) for x in p.proposals]
    assert got == [
        (
            "conflict",
            "be2013b2a689080af616",
            None,
            "d-shared",
            "+46855500099",
            "2 Entra users have the number +46855500099: Bo Ek, Cia Lund; choose the owner",
        ),
        (
            "match",
            "eb6df5d885ac16d3cc35",
            "e-fia",
            "d-fia",
            "Fia",
            "Fia matches FIA@contoso.se by e-mail fia@contoso.se",
        ),
        (
            "match",
            "e43ad5fc6e2fb6142986",
            "e-asa",
            "d-asa",
            "Åsa Öberg 😀",
            "Åsa Öberg 😀 matches d-asa by phone +46701234567 (mobilePhone)",
        ),
        (
            "update",
            "ab32e1ae1a82ff069f3b",
            "e-hal",
            "d-hal",
            "Hal Nyberg",
            "Hal Nyberg: display_name, last_name changed in Entra",
        ),
        (
            "removal",
            "b9cf891f656c34499e4f",
            "e-eva",
            "d-eva",
            "Eva Sund",
            "Eva Sund: the account is disabled in Entra",
        ),
        (
            "removal",
            "89e7c05df429113fa3f2",
            "e-gone",
            "d-gone",
            "Gustav Gone",
            "Gustav Gone: deleted in Entra (or no longer readable)",
        ),
        (
            "new",
            "b48039ac8bbf41f98fa0",
            "e-ida",
            None,
            "Ida Ås",
            "Ida Ås has no matching directory user (no shared number or e-mail)",
        ),
    ]
    assert (p.synced, p.syncable, p.blocked) == (1, 4, ())
