"""The snapshot's stored rows ([id, accountEnabled, attrs], orjson) against the format before
(Graph's shape without nulls, stdlib json): the same users come back, and snapshots written
in the format before are still read."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from types import MappingProxyType
from typing import Any, TypeVar

import fakeredis
import orjson
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.models import EntraUser
from sync.state.keys import Keys
from sync.state.store import StateStore, user_from_json, user_to_json

_R = TypeVar("_R")
KEYS = Keys(prefix="t:snap:")


def clock() -> Any:
    raise AssertionError("snapshots need no clock")


def run(body: Callable[[StateStore, aioredis.Redis], Awaitable[_R]]) -> _R:
    async def main() -> _R:
        r = fakeredis.FakeAsyncRedis(decode_responses=False)
        try:
            return await body(StateStore(r, KEYS, clock=clock), r)
        finally:
            await r.aclose()

    return asyncio.run(main())


# --- the format before, as it was written and read ----------------------------------------


def old_row(u: EntraUser) -> dict[str, Any]:
    d: dict[str, Any] = {k: v for k, v in u.attrs.items() if v is not None}
    d["id"] = u.id
    d["accountEnabled"] = u.enabled
    return d


def old_read(d: dict[str, Any]) -> EntraUser:
    uid = str(d.pop("id"))
    return EntraUser(id=uid, enabled=bool(d.get("accountEnabled", True)), attrs=d)


def old_json(v: Any) -> bytes:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def reference(
    saved: Sequence[EntraUser], changed: Sequence[EntraUser] = (), removed: Sequence[str] = ()
) -> list[EntraUser]:
    """What load_snapshot gave before for save(saved), then update(changed, removed)."""
    users: dict[str, EntraUser] = {}
    for u in saved:
        users[u.id] = old_read(json.loads(old_json(old_row(u))))
    gone = set(removed)
    overlay = {u.id: old_json(old_row(u)) for u in changed if u.id not in gone}
    for raw in overlay.values():
        v = old_read(json.loads(raw))
        users[v.id] = v
    for uid in gone:
        users.pop(uid, None)
    return [users[k] for k in sorted(users)]


# --- generated users -----------------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond 64 bits: the stdlib writes it
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=5,
)
ATTR_KEYS = st.sampled_from(
    ["displayName", "mobilePhone", "businessPhones", "accountEnabled", "id", "mail", "Åsa", ""]
)
USERS = st.builds(
    EntraUser,
    id=st.sampled_from(["e1", "e2", "e3", "Örjan", "x" * 40]),
    enabled=st.booleans(),
    attrs=st.dictionaries(ATTR_KEYS | TEXT, JSONISH, max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(users=st.lists(USERS, max_size=8))
def test_a_saved_snapshot_loads_as_the_format_before_loaded(users: list[EntraUser]) -> None:
    async def body(s: StateStore, r: aioredis.Redis) -> list[EntraUser]:
        assert await s.save_snapshot("contoso", users) == len(users)
        return await s.load_snapshot("contoso")

    assert run(body) == reference(users)


@settings(max_examples=200, deadline=None)
@given(
    saved=st.lists(USERS, max_size=6),
    changed=st.lists(USERS, max_size=4),
    removed=st.lists(st.sampled_from(["e1", "e2", "e3", "gone"]), max_size=3),
)
def test_a_snapshot_with_deltas_loads_as_the_format_before_loaded(
    saved: list[EntraUser], changed: list[EntraUser], removed: list[str]
) -> None:
    async def body(s: StateStore, r: aioredis.Redis) -> list[EntraUser]:
        await s.save_snapshot("contoso", saved)
        await s.update_snapshot("contoso", changed, removed)
        return await s.load_snapshot("contoso")

    assert run(body) == reference(saved, changed, removed)


@settings(max_examples=200, deadline=None)
@given(users=st.lists(USERS, min_size=1, max_size=6))
def test_graph_shaped_users_come_back_equal(users: list[EntraUser]) -> None:
    """Users as the Graph client makes them (accountEnabled among the attributes, no nulls,
    no "id") round-trip exactly."""
    graph_like = [
        EntraUser(
            u.id,
            u.enabled,
            {
                **{k: v for k, v in u.attrs.items() if v is not None and k != "id"},
                "accountEnabled": u.enabled,
            },
        )
        for u in users
    ]

    async def body(s: StateStore, r: aioredis.Redis) -> list[EntraUser]:
        await s.save_snapshot("contoso", graph_like)
        return await s.load_snapshot("contoso")

    last = {u.id: u for u in graph_like}
    assert run(body) == [last[k] for k in sorted(last)]


def test_a_snapshot_written_in_the_format_before_is_read() -> None:
    saved = [
        EntraUser("b", True, {"displayName": "Björn", "businessPhones": ["+46 8 123"]}),
        EntraUser("a", False, {"displayName": "Anna", "mobilePhone": None, "accountEnabled": 1}),
        EntraUser("c", True, {"n": 2**70, "x": {"1": [None]}}),
    ]
    changed = [EntraUser("d", True, {"displayName": "Dora"})]

    async def body(s: StateStore, r: aioredis.Redis) -> list[EntraUser]:
        # by hand, as save_snapshot and update_snapshot wrote them before
        await r.rpush(KEYS.snapshot_parts("contoso"), old_json([old_row(u) for u in saved[:2]]))
        await r.rpush(KEYS.snapshot_parts("contoso"), old_json([old_row(saved[2])]))
        await r.hset(KEYS.snapshot_overlay("contoso"), "d", old_json(old_row(changed[0])))
        await r.sadd(KEYS.snapshot_removed("contoso"), "b")
        return await s.load_snapshot("contoso")

    loaded = run(body)
    assert loaded == reference(saved, changed, ["b"])
    assert [(u.id, u.enabled) for u in loaded] == [("a", False), ("c", True), ("d", True)]
    assert loaded[0].attrs == {"displayName": "Anna", "accountEnabled": False}


def test_deltas_in_the_new_format_over_a_snapshot_in_the_format_before() -> None:
    saved = [EntraUser("a", True, {"displayName": "A"}), EntraUser("b", True, {})]

    async def body(s: StateStore, r: aioredis.Redis) -> list[EntraUser]:
        await r.rpush(KEYS.snapshot_parts("contoso"), old_json([old_row(u) for u in saved]))
        await s.update_snapshot("contoso", [EntraUser("a", False, {"displayName": "A2"})], ["b"])
        return await s.load_snapshot("contoso")

    assert run(body) == [EntraUser("a", False, {"displayName": "A2", "accountEnabled": False})]


def test_rows_are_plain_json_arrays_of_id_state_and_attributes() -> None:
    users = [EntraUser("e1", True, {"displayName": "Åsa Öberg", "mobilePhone": None})]

    async def body(s: StateStore, r: aioredis.Redis) -> list[bytes]:
        await s.save_snapshot("contoso", users)
        parts = await r.lrange(KEYS.snapshot_parts("contoso"), 0, -1)
        return [b for b in parts if isinstance(b, bytes)]

    (part,) = run(body)
    assert "Åsa Öberg".encode() in part  # not compressed: scans of stored values see it
    assert orjson.loads(part) == [["e1", True, {"displayName": "Åsa Öberg", "mobilePhone": None}]]


def test_one_row_round_trips_through_user_to_json() -> None:
    u = EntraUser("e1", False, MappingProxyType({"displayName": "A", "n": 2**70, "z": None}))
    raw = user_to_json(u)
    assert json.loads(raw) == ["e1", False, {"displayName": "A", "n": 2**70, "z": None}]
    assert user_from_json(raw) == EntraUser(
        "e1", False, {"displayName": "A", "n": 2**70, "accountEnabled": False}
    )
    assert user_from_json(old_json(old_row(u))) == user_from_json(raw)


def test_not_a_number_is_stored_as_null() -> None:
    raw = user_to_json(EntraUser("e1", True, {"x": math.nan, "y": 1.5}))
    assert user_from_json(raw).attrs == {"y": 1.5, "accountEnabled": True}
