"""The stored snapshot: rows ``[id, accountEnabled, attrs]``; users come back as saved (after
deltas too), and a snapshot in the earlier format reads as none (the next sync reads Entra in
full)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import fakeredis
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.models import EntraUser
from sync.state.keys import Keys
from sync.state.snapshots import SnapshotStore

KEYS = Keys(prefix="t:snap:")

TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=5,
)
USERS = st.builds(
    EntraUser,
    id=st.sampled_from(["e1", "e2", "e3", "Örjan", "x" * 40]),
    enabled=st.booleans(),
    attrs=st.dictionaries(st.sampled_from(["displayName", "mobilePhone", "Åsa"]) | TEXT, JSONISH),
)


def by_id(users: Sequence[EntraUser]) -> list[EntraUser]:
    last = {u.id: u for u in users}
    return [last[k] for k in sorted(last)]


def save_update_load(
    saved: Sequence[EntraUser], changed: Sequence[EntraUser], removed: Sequence[str]
) -> list[EntraUser]:
    async def main() -> list[EntraUser]:
        r = fakeredis.FakeAsyncRedis()
        store = SnapshotStore(r, KEYS)
        await store.save("t", saved)
        await store.update("t", changed, removed)
        return await store.load("t")

    return asyncio.run(main())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(USERS, max_size=6),
    st.lists(USERS, max_size=3),
    st.lists(st.sampled_from(["e1", "e2"]), max_size=2),
)
def test_users_come_back_as_saved_with_the_deltas_over_them(
    saved: list[EntraUser], changed: list[EntraUser], removed: list[str]
) -> None:
    want = {u.id: u for u in by_id(saved)}
    want |= {u.id: u for u in changed}
    for uid in removed:
        want.pop(uid, None)
    assert save_update_load(saved, changed, removed) == [want[k] for k in sorted(want)]


def test_a_snapshot_in_the_earlier_format_reads_as_none() -> None:
    async def main() -> list[EntraUser]:
        r = fakeredis.FakeAsyncRedis()
        old = [{"id": "e1", "accountEnabled": True, "displayName": "Ann"}]
        await r.rpush(KEYS.snapshot_parts("t"), json.dumps(old))
        return await SnapshotStore(r, KEYS).load("t")

    assert asyncio.run(main()) == []


def test_not_a_number_is_stored_as_null() -> None:
    u = EntraUser(id="e1", enabled=True, attrs={"x": float("nan")})
    (back,) = save_update_load([u], [], [])
    assert back.attrs == {"x": None}
