"""The pending-items gauge counts by kind in one script run by Redis
(``Proposals.pending_kinds``): the same counts as reading every pending record, on the real
Redis and on the embedded store (fakeredis with Lua), and a name cannot fake a kind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from sync.models import Kind, ProposalState
from sync.state.keys import Keys
from sync.state.store import StateStore
from tests.component.bot_fake_service import match_proposal


@pytest.fixture(params=["real", "embedded"])
def redis(request: pytest.FixtureRequest) -> aioredis.Redis:
    if request.param == "real":
        request.applymarker(pytest.mark.redis)
        return request.getfixturevalue("real_redis")  # type: ignore[no-any-return]
    return request.getfixturevalue("fake_redis")  # type: ignore[no-any-return]


async def test_pending_kinds_equals_the_counts_of_the_pending_records(
    redis: aioredis.Redis, keys: Keys
) -> None:
    store = StateStore(redis, keys, clock=lambda: datetime(2026, 1, 5, tzinfo=UTC))
    assert await store.proposals.pending_kinds() == {k.value: 0 for k in Kind}
    faker = '"kind":"removal"'  # a name that looks like a kind in the record's JSON
    props = [match_proposal(i, label=faker) for i in range(3)]
    props += [replace(match_proposal(i), kind=Kind.NEW, id=f"new-{i}") for i in range(4)]
    await store.proposals.record_plan("contoso", "main", props[:5])
    await store.proposals.record_plan("fabrikam", "other", props[5:])
    first = props[0].id
    await store.proposals.transition(
        first, ProposalState.IGNORED, actor_id="a", actor_name="A", verb="ignore"
    )

    counts = await store.proposals.pending_kinds()
    assert counts == await store.proposals.pending_counts()
    assert (counts["match"], counts["new"], counts["removal"]) == (2, 4, 0)
