"""Hypothesis properties of the normaliser and the planner."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.config import Config, config_from_dict
from sync.models import (
    DirectoryUser,
    EntraSnapshot,
    Kind,
    Plan,
    StateView,
    parse_entra_user,
)
from sync.plan.mapping import clean
from sync.plan.phones import normalize
from sync.plan.planner import auto_applicable, plan

NUMBERS = ["070-123 45 67", "+46701234567", "08-555 000 99", "+46 8 555 000 99", "0731112233", "x"]
NAMES = ["Anna", "Bo", "Cecilia", "<ext> Dan", "", None]
CFG = config_from_dict({"guard": {"max_removals": 10**6, "max_removal_share": 1.0}})

raw_numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.text(alphabet="0123456789 +-()", min_size=0, max_size=20),
)


@given(raw=raw_numbers, region=st.sampled_from(["SE", "NO", "US", "DE", "GB"]))
def test_normalising_a_number_twice_is_stable(raw: str, region: str) -> None:
    once = normalize(raw, region)
    if once is not None:
        assert once.startswith("+")
        assert normalize(once, region) == once
        assert normalize(once, "SE") == once  # E.164 does not depend on the region any more


@st.composite
def worlds(draw: Any) -> tuple[EntraSnapshot, list[DirectoryUser]]:
    n = draw(st.integers(0, 6))
    users = []
    for i in range(n):
        users.append(
            {
                "id": f"e{i}",
                "accountEnabled": draw(st.booleans()),
                "givenName": draw(st.sampled_from(NAMES)),
                "surname": draw(st.sampled_from(NAMES)),
                "displayName": draw(st.sampled_from(NAMES)),
                "mail": draw(st.sampled_from([f"u{i}@c.se", "shared@c.se", None])),
                "mobilePhone": draw(st.one_of(st.none(), st.sampled_from(NUMBERS))),
                "businessPhones": draw(st.lists(st.sampled_from(NUMBERS), max_size=2)),
            }
        )
    m = draw(st.integers(0, 6))
    directory = []
    for j in range(m):
        link = draw(st.one_of(st.none(), st.sampled_from([f"e{i}" for i in range(n + 2)])))
        directory.append(
            DirectoryUser(
                id=f"d{j}",
                first_name=draw(st.sampled_from(NAMES)),
                email=draw(st.sampled_from([f"u{j}@c.se", "shared@c.se", None])),
                phones=tuple(
                    normalize(x, "SE") or "+46700000000"
                    for x in draw(st.lists(st.sampled_from(NUMBERS[:5]), max_size=2))
                ),
                entra_id=link,
                sync_enabled=draw(st.booleans()),
            )
        )
    # one directory user per Entra id (the directory enforces this)
    seen: set[str] = set()
    for k, d in enumerate(directory):
        if d.entra_id in seen:
            directory[k] = replace(d, entra_id=None)
        elif d.entra_id:
            seen.add(d.entra_id)
    complete = draw(st.booleans())
    snapshot = EntraSnapshot(users=[parse_entra_user(u) for u in users], complete=complete)
    return snapshot, directory


def apply_all(
    p: Plan, snapshot: EntraSnapshot, directory: list[DirectoryUser], state: StateView
) -> tuple[list[DirectoryUser], StateView]:
    """What accepting every proposal does (the engine's apply step, without I/O)."""
    by_id = {d.id: d for d in directory}
    owners = dict(state.number_owners)
    for prop in p.proposals:
        fields = {k: c.new for k, c in prop.changes.items()}
        if prop.kind is Kind.MATCH or prop.kind is Kind.UPDATE:
            d = by_id[prop.app_user_id or ""]
            by_id[d.id] = replace(d, entra_id=prop.entra_id, **fields)
        elif prop.kind is Kind.NEW:
            new_id = f"new-{prop.entra_id}"
            by_id[new_id] = DirectoryUser(id=new_id, entra_id=prop.entra_id, **fields)
        elif prop.kind is Kind.REMOVAL:
            d = by_id[prop.app_user_id or ""]
            by_id[d.id] = replace(d, entra_id=None)
        elif prop.kind is Kind.CONFLICT:
            owners[prop.number or ""] = prop.entra_ids[0]
    return list(by_id.values()), replace(state, number_owners=owners)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_applying_every_proposal_and_planning_again_gives_an_empty_plan(
    world: tuple[EntraSnapshot, list[DirectoryUser]],
) -> None:
    snapshot, directory = world
    state = StateView()
    first = plan(snapshot, directory, state, CFG)
    directory2, state2 = apply_all(first, snapshot, directory, state)
    second = plan(snapshot, directory2, state2, CFG)
    if not first.by_kind(Kind.CONFLICT):
        assert second.proposals == ()  # one round settles everything
        return
    # An admin settling a conflict can only lead to more decisions about the users who shared
    # the number (they fall through to e-mail or `new`, or share a second number that a
    # removal just freed); a few rounds settle everything.
    involved = {e for p in first.by_kind(Kind.CONFLICT) for e in p.entra_ids}
    current, d, st_ = second, directory2, state2
    for _round in range(4):
        if not current.proposals:
            break
        for p in current.proposals:
            assert {p.entra_id} <= involved or set(p.entra_ids) <= involved, p
        involved |= {e for p in current.by_kind(Kind.CONFLICT) for e in p.entra_ids}
        d, st_ = apply_all(current, snapshot, d, st_)
        current = plan(snapshot, d, st_, CFG)
    assert current.proposals == ()


@settings(max_examples=300)
@given(world=worlds(), scheduled=st.booleans())
def test_the_plan_never_creates_or_deletes_anything_not_proposed_for_approval(
    world: tuple[EntraSnapshot, list[DirectoryUser]], scheduled: bool
) -> None:
    snapshot, directory = world
    p = plan(snapshot, directory, StateView(), Config())
    auto = auto_applicable(p, scheduled=scheduled)
    assert all(x.kind is Kind.UPDATE for x in auto)
    assert all(x.app_user_id is not None for x in auto)
    linked = {d.entra_id for d in directory if d.entra_id}
    assert all(x.entra_id in linked for x in auto)


@settings(max_examples=300)
@given(world=worlds())
def test_a_read_that_fails_part_way_gives_no_removal(
    world: tuple[EntraSnapshot, list[DirectoryUser]],
) -> None:
    snapshot, directory = world
    partial = replace(
        snapshot, users=list(snapshot.users)[: len(snapshot.users) // 2], complete=False
    )
    p = plan(partial, directory, StateView(), CFG)
    assert p.by_kind(Kind.REMOVAL) == [] and p.blocked == ()


@settings(max_examples=300)
@given(world=worlds())
def test_planning_the_same_data_twice_gives_the_same_plan(
    world: tuple[EntraSnapshot, list[DirectoryUser]],
) -> None:
    snapshot, directory = world
    first = plan(snapshot, directory, StateView(), CFG)
    copied = replace(snapshot, users=[replace(u) for u in snapshot.users])
    assert plan(copied, [replace(d) for d in directory], StateView(), CFG) == first


@given(text=st.text(alphabet=st.sampled_from(" \t\n\u00a0\u2003\x1c<>ab Åx"), max_size=30))
def test_clean_collapses_whitespace_exactly_like_the_regex_rule(text: str) -> None:
    expected = re.sub(r"\s+", " ", re.sub(r"<[^>]*>", "", text)).strip() or None
    assert clean(text) == expected
