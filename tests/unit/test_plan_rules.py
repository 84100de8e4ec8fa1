"""One test per rule of DESIGN.md §2 (Scope, Matching, Field mapping, Changes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.config import Config, config_from_dict
from sync.errors import MappingError
from sync.files import load_tenant_snapshot
from sync.models import DirectoryUser, EntraSnapshot, Kind, StateView, parse_entra_user
from sync.plan.planner import auto_applicable, plan


def entra(uid: str, **attrs: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": uid,
        "accountEnabled": True,
        "givenName": uid.title(),
        "surname": "Test",
        "displayName": f"{uid.title()} Test",
        "mail": f"{uid}@contoso.se",
        "userPrincipalName": f"{uid}@contoso.se",
        "mobilePhone": None,
        "businessPhones": [],
    }
    base.update(attrs)
    return base


def snap(
    *users: dict[str, Any], members: set[str] | None = None, complete: bool = True
) -> EntraSnapshot:
    return EntraSnapshot(
        users=[parse_entra_user(u) for u in users],
        complete=complete,
        group_members=frozenset(members) if members is not None else None,
    )


def du(uid: str, **kw: Any) -> DirectoryUser:
    return DirectoryUser(id=uid, **kw)


def linked(uid: str, entra_id: str, **kw: Any) -> DirectoryUser:
    defaults: dict[str, Any] = {
        "first_name": entra_id.title(),
        "last_name": "Test",
        "display_name": f"{entra_id.title()} Test",
        "email": f"{entra_id}@contoso.se",
    }
    defaults.update(kw)
    return DirectoryUser(id=uid, entra_id=entra_id, **defaults)


def cfg(**sections: Any) -> Config:
    return config_from_dict(sections)


def kinds(p: Any) -> list[str]:
    return [x.kind.value for x in p.proposals]


# --- Scope -----------------------------------------------------------------------------------


def test_scope_all_users_when_no_groups_selected() -> None:
    s = snap(entra("anna", mobilePhone="0701234567"), entra("bo", mobilePhone="0701234568"))
    p = plan(s, [], StateView(), cfg())
    assert sorted(x.entra_id for x in p.proposals) == ["anna", "bo"]


def test_scope_only_members_of_selected_groups_nested_included(tmp_path: Path) -> None:
    tenant = {
        "users": [
            entra("anna", mobilePhone="0701234567"),
            entra("bo", mobilePhone="0701234568"),
            entra("cia", mobilePhone="0701234569"),
        ],
        "groups": [
            {"id": "g-tel", "displayName": "telephony", "members": ["anna", "g-nested"]},
            {"id": "g-nested", "displayName": "sales", "members": ["cia", "g-tel"]},  # a cycle
        ],
    }
    (tmp_path / "t.json").write_text(json.dumps(tenant))
    s = load_tenant_snapshot(tmp_path / "t.json", ["g-tel"])
    p = plan(s, [], StateView(), cfg(scope={"groups": ["g-tel"]}))
    assert sorted(x.entra_id for x in p.proposals) == ["anna", "cia"]  # bo is in no group


def test_scope_only_enabled_accounts() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", accountEnabled=False))
    assert plan(s, [], StateView(), cfg()).proposals == ()
    p = plan(s, [], StateView(), cfg(scope={"enabled_only": False}))
    assert kinds(p) == ["new"]


def test_scope_by_default_only_users_with_a_phone_number_configurable() -> None:
    s = snap(entra("anna"), entra("bo", businessPhones=["08-123 456 78"]))
    assert [x.entra_id for x in plan(s, [], StateView(), cfg()).proposals] == ["bo"]
    p = plan(s, [], StateView(), cfg(scope={"require_phone": False}))
    assert sorted(x.entra_id for x in p.proposals) == ["anna", "bo"]


# --- Matching ----------------------------------------------------------------------------


def test_matching_by_phone_normalised_to_e164_with_default_region() -> None:
    s = snap(entra("anna", mobilePhone="070-123 45 67"))
    p = plan(s, [du("1", phones=("+46701234567",))], StateView(), cfg())
    (m,) = p.proposals
    assert (m.kind, m.app_user_id, m.match_key, m.match_value) == (
        Kind.MATCH,
        "1",
        "phone",
        "+46701234567",
    )
    # in another default region the same digits are another number: no match
    p2 = plan(
        s, [du("1", phones=("+46701234567",))], StateView(), cfg(matching={"default_region": "NO"})
    )
    assert "match" not in kinds(p2)


def test_matching_uses_mobile_phone_and_every_business_phones_entry() -> None:
    s = snap(entra("anna", businessPhones=["+46 8 111 111 11", "+46 8 222 222 22"]))
    p = plan(s, [du("9", phones=("+46822222222",))], StateView(), cfg())
    assert p.proposals[0].app_user_id == "9"
    assert "businessPhones" in p.proposals[0].reason


def test_matching_then_by_email_or_upn_case_insensitive() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", mail="Anna.B@Contoso.se"))
    p = plan(s, [du("1", email="anna.b@contoso.SE", phones=("+46709999999",))], StateView(), cfg())
    (m,) = p.proposals
    assert (m.kind, m.match_key) == (Kind.MATCH, "email")
    upn = snap(entra("bo", mobilePhone="0701234567", mail=None, userPrincipalName="BO@x.se"))
    assert plan(upn, [du("2", email="bo@X.SE")], StateView(), cfg()).proposals[0].kind is Kind.MATCH


def test_matching_phone_comes_before_email_in_the_configured_order() -> None:
    s = snap(entra("anna", mobilePhone="0701234567"))
    d = [du("phone-user", phones=("+46701234567",)), du("mail-user", email="anna@contoso.se")]
    assert plan(s, d, StateView(), cfg()).proposals[0].app_user_id == "phone-user"
    p = plan(s, d, StateView(), cfg(matching={"keys": ["email", "phone"]}))
    assert p.proposals[0].app_user_id == "mail-user"


def test_matching_each_match_says_why() -> None:
    s = snap(entra("anna", mobilePhone="0701234567"))
    (m,) = plan(s, [du("1", phones=("+46701234567",))], StateView(), cfg()).proposals
    assert "phone +46701234567 (mobilePhone)" in m.reason
    assert m.to_dict()["match"] == {"key": "phone", "value": "+46701234567"}


def test_matching_auto_matches_wait_for_accept() -> None:
    s = snap(entra("anna", mobilePhone="0701234567"))
    p = plan(s, [du("1", phones=("+46701234567",))], StateView(), cfg())
    assert kinds(p) == ["match"]
    assert auto_applicable(p, scheduled=True) == []


def test_matching_never_creates_users_by_itself() -> None:
    s = snap(entra("anna", mobilePhone="0701234567"))
    p = plan(s, [], StateView(), cfg())
    assert kinds(p) == ["new"]
    assert p.proposals[0].app_user_id is None
    assert auto_applicable(p, scheduled=True) == []


def test_matching_unmatched_users_are_available_with_the_fields_they_would_get() -> None:
    s = snap(entra("anna", mobilePhone="0701234567"))
    (n,) = plan(s, [du("1", phones=("+46709999999",))], StateView(), cfg()).proposals
    assert n.kind is Kind.NEW
    assert n.changes["first_name"].new == "Anna"
    assert n.changes["phones"].new == ("+46701234567",)


def test_matching_ignored_users_stay_out_of_every_list() -> None:
    s = snap(entra("anna", mobilePhone="0701234567"), entra("bo", mobilePhone="0701234568"))
    p = plan(s, [du("1", phones=("+46701234567",))], StateView(ignored=frozenset({"anna"})), cfg())
    assert [x.entra_id for x in p.proposals] == ["bo"]


def test_matching_same_number_on_two_entra_users_is_a_conflict_never_a_silent_pick() -> None:
    s = snap(
        entra("anna", businessPhones=["08-555 000 99"]),
        entra("bo", businessPhones=["+4685550009 9"]),
    )
    p = plan(s, [du("1", phones=("+46855500099",))], StateView(), cfg())
    assert kinds(p) == ["conflict"]
    c = p.proposals[0]
    assert c.entra_ids == ("anna", "bo") and c.number == "+46855500099" and c.app_user_id == "1"
    assert c.to_dict()["entra_ids"] == ["anna", "bo"]


def test_matching_conflict_resolved_by_choosing_the_owner() -> None:
    s = snap(
        entra("anna", businessPhones=["08-555 000 99"]),
        entra("bo", businessPhones=["08-555 000 99"]),
    )
    state = StateView(number_owners={"+46855500099": "bo"})
    p = plan(s, [du("1", phones=("+46855500099",))], state, cfg())
    assert {(x.kind.value, x.entra_id) for x in p.proposals} == {("match", "bo"), ("new", "anna")}


def test_matching_sync_switched_off_for_one_user_keeps_the_link_and_updates_nothing() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", surname="New"))
    d = [linked("1", "anna", sync_enabled=False)]
    assert plan(s, d, StateView(), cfg()).proposals == ()
    gone = plan(snap(), d, StateView(), cfg())
    assert gone.proposals == () and gone.blocked == ()


# --- Field mapping -------------------------------------------------------------------------


def test_mapping_defaults_given_surname_display_name_mail() -> None:
    c = Config()
    assert c.mapping.fields == {
        "first_name": "givenName",
        "last_name": "surname",
        "display_name": "displayName",
        "email": "mail",
    }
    assert c.mapping.tags is None


def test_mapping_tags_from_any_graph_attribute() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", department="Sales", city="Lund"))
    c = cfg(mapping={"first_name": "givenName", "tags": ["department", "city"]})
    (p,) = plan(s, [linked("1", "anna", tags=("old",))], StateView(), c).proposals
    assert p.changes["tags"].new == ("Sales", "Lund")


def test_mapping_attribute_names_are_case_sensitive() -> None:
    with pytest.raises(MappingError, match="did you mean 'givenName'"):
        cfg(mapping={"first_name": "givenname"})


def test_mapping_each_attribute_may_be_mapped_once() -> None:
    with pytest.raises(MappingError, match="mapped once"):
        cfg(mapping={"first_name": "givenName", "display_name": "givenName"})


def test_mapping_anything_between_angle_brackets_is_excluded() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", displayName="Anna <Consultant> Berg"))
    (p,) = plan(s, [linked("1", "anna")], StateView(), cfg()).proposals
    assert p.changes["display_name"].new == "Anna Berg"


def test_mapping_a_mapped_field_overwrites_the_directory_value() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", surname="Lind"))
    (p,) = plan(s, [linked("1", "anna", last_name="Berg")], StateView(), cfg()).proposals
    assert (p.kind, p.changes["last_name"].old, p.changes["last_name"].new) == (
        Kind.UPDATE,
        "Berg",
        "Lind",
    )


def test_mapping_an_empty_entra_value_clears_the_field() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", mail=None))
    (p,) = plan(s, [linked("1", "anna")], StateView(), cfg()).proposals
    assert p.changes["email"].new is None and p.changes["email"].old == "anna@contoso.se"


def test_mapping_a_field_that_is_not_mapped_is_never_touched() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", surname="Other", department="X"))
    c = cfg(mapping={"first_name": "givenName"})
    d = [linked("1", "anna", last_name="Keep", tags=("vip",))]
    assert plan(s, d, StateView(), c).proposals == ()


# --- Changes, deletions, guard ---------------------------------------------------------------


def test_changes_of_linked_users_are_proposals_not_applied() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", givenName="Annie"))
    p = plan(s, [linked("1", "anna")], StateView(), cfg())
    assert kinds(p) == ["update"]
    assert auto_applicable(p, scheduled=False) == []


def test_changes_in_scheduled_mode_only_updates_of_linked_users_apply_automatically() -> None:
    s = snap(
        entra("anna", mobilePhone="0701234567", givenName="Annie"),
        entra("bo", mobilePhone="0701234568"),
        entra("cia", mobilePhone="0701234569"),
    )
    d = [linked("1", "anna"), du("2", phones=("+46701234568",)), linked("3", "gone")]
    p = plan(s, d, StateView(), cfg())
    assert sorted(kinds(p)) == ["match", "new", "removal", "update"]
    assert [x.kind for x in auto_applicable(p, scheduled=True)] == [Kind.UPDATE]


@pytest.mark.parametrize(
    ("attrs", "cause"),
    [
        (None, "deleted"),
        ({"accountEnabled": False}, "disabled"),
        ({"mobilePhone": None}, "no_phone"),
    ],
)
def test_changes_deleted_disabled_or_out_of_scope_linked_user_becomes_removal(
    attrs: dict[str, Any] | None, cause: str
) -> None:
    users = [] if attrs is None else [entra("anna", **{"mobilePhone": "0701234567", **attrs})]
    others = [entra(f"u{i}", mobilePhone=f"07012300{i:02d}") for i in range(10)]
    d = [linked("1", "anna")] + [linked(str(10 + i), f"u{i}") for i in range(10)]
    p = plan(snap(*users, *others), d, StateView(), cfg())
    (r,) = p.by_kind(Kind.REMOVAL)
    assert (r.app_user_id, r.removal_cause) == ("1", cause)


def test_changes_out_of_selected_groups_becomes_removal() -> None:
    users = [entra(f"u{i}", mobilePhone=f"07012300{i:02d}") for i in range(10)]
    d = [linked(str(i), f"u{i}") for i in range(10)]
    p = plan(snap(*users, members={f"u{i}" for i in range(1, 10)}), d, StateView(), cfg())
    assert [(r.entra_id, r.removal_cause) for r in p.by_kind(Kind.REMOVAL)] == [
        ("u0", "out_of_scope")
    ]


def test_changes_a_partial_read_never_gives_a_removal() -> None:
    p = plan(snap(complete=False), [linked("1", "anna")], StateView(), cfg())
    assert p.proposals == () and p.blocked == ()


def test_changes_guard_holds_back_mass_removals_as_one_blocked_entry() -> None:
    users = [entra(f"u{i}", mobilePhone=f"07012300{i:02d}") for i in range(20)]
    d = [linked(str(i), f"u{i}") for i in range(100)]  # 80 linked users are gone from Entra
    p = plan(snap(*users), d, StateView(), cfg())
    assert p.by_kind(Kind.REMOVAL) == []
    (b,) = p.blocked
    assert b.count == 80 and "80 of 100" in b.reason
    confirmed = plan(snap(*users), d, StateView(removals_confirmed=True), cfg())
    assert len(confirmed.by_kind(Kind.REMOVAL)) == 80 and confirmed.blocked == ()


def test_changes_guard_share_rule() -> None:
    users = [entra(f"u{i}", mobilePhone=f"07012300{i:02d}") for i in range(7)]
    d = [linked(str(i), f"u{i}") for i in range(10)]  # 3 of 10 removed: 30% > 20%
    p = plan(snap(*users), d, StateView(), cfg())
    assert p.blocked and p.blocked[0].count == 3
    relaxed = plan(snap(*users), d, StateView(), cfg(guard={"max_removal_share": 0.5}))
    assert len(relaxed.by_kind(Kind.REMOVAL)) == 3


def test_status_counters_synced_out_of_syncable() -> None:
    users = [entra(f"u{i}", mobilePhone=f"07012300{i:02d}") for i in range(3)]
    d = [linked("0", "u0"), linked("1", "u1", last_name="Old"), du("x", email="nobody@x.se")]
    p = plan(snap(*users), d, StateView(), cfg())
    # u0 in step, u1 waits for an update; u2 is new (no directory user): 1 of 2 synced
    assert (p.synced, p.syncable) == (1, 2)


def test_proposal_ids_are_stable_and_change_with_entra_data() -> None:
    s = snap(entra("anna", mobilePhone="0701234567", givenName="Annie"))
    d = [linked("1", "anna")]
    a = plan(s, d, StateView(), cfg()).proposals[0].id
    assert a == plan(s, d, StateView(), cfg()).proposals[0].id
    s2 = snap(entra("anna", mobilePhone="0701234567", givenName="Ann"))
    assert plan(s2, d, StateView(), cfg()).proposals[0].id != a


def test_changes_guard_lets_exactly_max_removals_through_and_blocks_one_more() -> None:
    guard = {"max_removals": 3, "max_removal_share": 1.0}
    d = [linked(str(i), f"u{i}") for i in range(10)]
    three_gone = [entra(f"u{i}", mobilePhone=f"07012300{i:02d}") for i in range(3, 10)]
    p = plan(snap(*three_gone), d, StateView(), cfg(guard=guard))
    assert len(p.by_kind(Kind.REMOVAL)) == 3 and p.blocked == ()
    four_gone = three_gone[1:]
    p = plan(snap(*four_gone), d, StateView(), cfg(guard=guard))
    assert p.by_kind(Kind.REMOVAL) == []
    (b,) = p.blocked
    assert b.count == 4 and len(b.proposals) == 4


def test_changes_guard_share_lets_exactly_the_share_through() -> None:
    guard = {"max_removals": 100, "max_removal_share": 0.3}
    d = [linked(str(i), f"u{i}") for i in range(10)]
    users = [entra(f"u{i}", mobilePhone=f"07012300{i:02d}") for i in range(10)]
    assert len(plan(snap(*users[3:]), d, StateView(), cfg(guard=guard)).by_kind(Kind.REMOVAL)) == 3
    assert plan(snap(*users[4:]), d, StateView(), cfg(guard=guard)).blocked[0].count == 4


def test_matching_a_number_held_by_two_directory_users_is_no_match_the_user_is_new() -> None:
    s = snap(entra("anna", mobilePhone="070-123 45 67", mail=None, userPrincipalName=None))
    d = [du("1", phones=("+46701234567",)), du("2", phones=("+46701234567",))]
    p = plan(s, d, StateView(), cfg())
    (new,) = p.proposals
    assert (new.kind, new.entra_id, new.app_user_id) == (Kind.NEW, "anna", None)
    assert p.syncable == 0


def test_matching_a_number_held_by_two_directory_users_falls_through_to_email() -> None:
    s = snap(entra("anna", mobilePhone="070-123 45 67"))
    d = [
        du("1", phones=("+46701234567",)),
        du("2", phones=("+46701234567",), email="Anna@contoso.se"),
    ]
    (m,) = plan(s, d, StateView(), cfg()).proposals
    assert (m.kind, m.app_user_id, m.match_key) == (Kind.MATCH, "2", "email")


def test_matching_a_shared_number_held_by_two_directory_users_is_a_conflict_naming_neither() -> (
    None
):
    s = snap(entra("anna", mobilePhone="070-123 45 67"), entra("bo", mobilePhone="0701234567"))
    d = [du("1", phones=("+46701234567",)), du("2", phones=("+46701234567",))]
    (c,) = plan(s, d, StateView(), cfg()).proposals
    assert (c.kind, c.entra_ids, c.app_user_id, c.app_label) == (
        Kind.CONFLICT,
        ("anna", "bo"),
        None,
        "",
    )
    # the chosen owner still has no single directory user to match: both are new
    owned = plan(s, d, StateView(number_owners={"+46701234567": "anna"}), cfg())
    assert [(x.kind, x.entra_id) for x in owned.proposals] == [
        (Kind.NEW, "anna"),
        (Kind.NEW, "bo"),
    ]
