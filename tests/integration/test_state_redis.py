"""StateStore against the real Redis: atomic transitions under contention, the lock across
clients, the WATCH paths, the bounded pool, and the cost of recording a 100,000-proposal
plan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from sync.errors import LockBusy, ProposalNotPending
from sync.models import Change, EntraUser, Kind, Proposal, ProposalState
from sync.state.connection import make_redis
from sync.state.keys import Keys
from sync.state.store import StateStore

pytestmark = pytest.mark.redis

URL = "redis://127.0.0.1:6379/0"
T0 = datetime(2026, 3, 1, 14, 2, tzinfo=UTC)
log = logging.getLogger(__name__)


def clock() -> datetime:
    return T0


def match(i: int) -> Proposal:
    return Proposal(kind=Kind.MATCH, entra_id=f"e{i}", app_user_id=f"u{i}", reason="phone matched")


class CountingConnection(Connection):
    """Counts round trips: one per packed send (a single command or a whole pipeline)."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sends += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def clients() -> AsyncIterator[list[aioredis.Redis]]:
    """Twenty separate clients (own connection pools) on the real Redis."""
    cs = [aioredis.Redis.from_url(URL) for _ in range(20)]
    yield cs
    for c in cs:
        await c.aclose()


async def test_twenty_concurrent_accepts_have_exactly_one_winner(
    real_redis: aioredis.Redis, keys: Keys, clients: list[aioredis.Redis]
) -> None:
    p = match(1)
    await StateStore(real_redis, keys, clock=clock).proposals.record_plan("contoso", "main", [p])
    stores = [StateStore(c, keys, clock=clock) for c in clients]

    results = await asyncio.gather(
        *(
            s.proposals.transition(
                p.id,
                ProposalState.ACCEPTED,
                actor_id=f"a{i}",
                actor_name=f"Admin {i}",
                verb="accept",
            )
            for i, s in enumerate(stores)
        ),
        return_exceptions=True,
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert all(isinstance(e, ProposalNotPending) for e in losers)
    winner = winners[0].decided_by
    assert all(e.actor == winner and e.state == "accepted" for e in losers)  # type: ignore[union-attr]
    assert await real_redis.smembers(keys.intents()) == {p.id.encode()}
    assert await real_redis.smembers(keys.pending("contoso", "main")) == set()


async def test_concurrent_accept_and_ignore_leave_one_consistent_state(
    real_redis: aioredis.Redis, keys: Keys, clients: list[aioredis.Redis]
) -> None:
    ps = [match(i) for i in range(50)]
    await StateStore(real_redis, keys, clock=clock).proposals.record_plan("contoso", "main", ps)
    a = StateStore(clients[0], keys, clock=clock)
    b = StateStore(clients[1], keys, clock=clock)

    await asyncio.gather(
        *(
            s.proposals.transition(p.id, to, actor_id="x", actor_name="X", verb=to.value)
            for p in ps
            for s, to in ((a, ProposalState.ACCEPTED), (b, ProposalState.IGNORED))
        ),
        return_exceptions=True,
    )

    states = [(await a.proposals.get(p.id)).state for p in ps]  # type: ignore[union-attr]
    accepted = {p.id for p, st in zip(ps, states, strict=True) if st is ProposalState.ACCEPTED}
    assert all(st in (ProposalState.ACCEPTED, ProposalState.IGNORED) for st in states)
    assert {m.decode() for m in await real_redis.smembers(keys.intents())} == accepted


async def test_record_plan_supersede_races_with_an_accept_without_losing_it(
    real_redis: aioredis.Redis, keys: Keys, clients: list[aioredis.Redis]
) -> None:
    ps = [match(i) for i in range(400)]
    engine = StateStore(clients[0], keys, clock=clock)
    admin = StateStore(clients[1], keys, clock=clock)
    await engine.proposals.record_plan("contoso", "main", ps)

    accepts = [
        admin.proposals.transition(
            p.id, ProposalState.ACCEPTED, actor_id="a", actor_name="Ann", verb="ok"
        )
        for p in ps[::7]
    ]
    outcome = await asyncio.gather(
        engine.proposals.record_plan("contoso", "main", []), *accepts, return_exceptions=True
    )

    rec = outcome[0]
    assert not isinstance(rec, BaseException)
    accepted = {
        p.id for p, r in zip(ps[::7], outcome[1:], strict=True) if not isinstance(r, BaseException)
    }
    assert set(rec.superseded).isdisjoint(accepted)
    assert set(rec.superseded) | accepted == {p.id for p in ps}
    for p in ps:
        sp = await engine.proposals.get(p.id)
        assert sp is not None
        assert sp.state is (
            ProposalState.ACCEPTED if p.id in accepted else ProposalState.SUPERSEDED
        )


async def test_lock_held_by_one_client_is_busy_for_another(
    real_redis: aioredis.Redis, keys: Keys, clients: list[aioredis.Redis]
) -> None:
    a = StateStore(clients[0], keys, clock=clock)
    b = StateStore(clients[1], keys, clock=clock)
    async with a.run_lock.hold("contoso", ttl_s=30):
        with pytest.raises(LockBusy):
            async with b.run_lock.hold("contoso"):
                pass
        ttl = await real_redis.pttl(keys.lock("contoso"))
        assert 0 < ttl <= 30_000
    async with b.run_lock.hold("contoso"):
        assert await real_redis.exists(keys.lock("contoso")) == 1
    assert await real_redis.exists(keys.lock("contoso")) == 0


async def test_only_one_of_many_concurrent_lockers_gets_the_lock(
    keys: Keys, clients: list[aioredis.Redis], real_redis: aioredis.Redis
) -> None:
    release = asyncio.Event()

    async def run(c: aioredis.Redis) -> str:
        try:
            async with StateStore(c, keys, clock=clock).run_lock.hold("contoso"):
                await release.wait()
                return "ran"
        except LockBusy:
            return "busy"

    tasks = [asyncio.create_task(run(c)) for c in clients]
    while sum(t.done() for t in tasks) < len(tasks) - 1:
        await asyncio.sleep(0)
    release.set()
    assert sorted(await asyncio.gather(*tasks)) == ["busy"] * 19 + ["ran"]


async def test_expired_lock_taken_by_another_is_not_released_by_the_first(
    real_redis: aioredis.Redis, keys: Keys, clients: list[aioredis.Redis]
) -> None:
    a = StateStore(clients[0], keys, clock=clock)
    async with a.run_lock.hold("contoso"):
        await real_redis.set(keys.lock("contoso"), b"other-run-token")  # as after expiry
    assert await real_redis.get(keys.lock("contoso")) == b"other-run-token"


async def test_audit_stream_is_capped_and_ordered_on_real_redis(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    s = StateStore(real_redis, keys, clock=clock)
    ids = [
        await s.audit_log.audit("a", "Ann", "accept", tenant="t", proposal_id=str(i))
        for i in range(5)
    ]
    assert [e.id for e in await s.audit_log.export_audit()] == ids
    assert [e.id for e in await s.audit_log.recent_audit(limit=2)] == ids[:-3:-1]


async def test_record_plan_written_equals_get_on_the_real_redis(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    s = StateStore(real_redis, keys, clock=clock)
    ps = [match(i) for i in range(2500)] + [
        Proposal(
            kind=Kind.NEW,
            entra_id=f"n{i}",
            app_user_id=None,
            reason="new user",
            changes={
                "last_name": Change(None, f"Öberg {i} \x7f\n😀"),
                "first_name": Change(None, "Åsa"),
                "phones": Change(None, [f"+4670{i:07d}"]),  # a list: stored as a tuple
            },
            label="Åsa Öberg",
        )
        for i in range(2500)
    ]
    res = await s.proposals.record_plan("contoso", "main", ps)
    assert len(res.written) == 5000
    got = await s.proposals.get_many(list(res.written))
    for pid, sp in res.written.items():
        assert sp == got[pid] == await s.proposals.get(pid)
        assert list(sp.proposal.changes) == list(got[pid].proposal.changes)


async def test_record_plan_with_an_error_reply_raises_and_leaves_the_client_usable(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    s = StateStore(real_redis, keys, clock=clock)
    ps = [match(i) for i in range(5)]
    await real_redis.set(keys.proposal(ps[2].id), "not a hash")

    with pytest.raises(ResponseError):
        await s.proposals.record_plan("contoso", "main", ps)

    # the connection left with unread replies is not reused: every answer is the right one
    assert await real_redis.get(keys.proposal(ps[2].id)) == b"not a hash"
    others = [ps[i] for i in (0, 1, 3, 4)]
    assert [await s.proposals.get(p.id) is not None for p in others] == [True] * 4
    res = await s.proposals.record_plan("contoso", "main", [match(10)])
    assert [p.id for p in res.new] == [match(10).id]


@pytest.mark.slow
async def test_record_plan_of_100000_proposals_takes_few_round_trips(keys: Keys) -> None:
    pool = aioredis.ConnectionPool.from_url(URL, connection_class=CountingConnection)
    r = aioredis.Redis(connection_pool=pool)
    try:
        s = StateStore(r, keys, clock=clock)
        ps = [match(i) for i in range(100_000)]

        CountingConnection.sends = 0
        t = time.perf_counter()
        first = await s.proposals.record_plan("contoso", "main", ps)
        first_s, first_rt = time.perf_counter() - t, CountingConnection.sends

        CountingConnection.sends = 0
        t = time.perf_counter()
        again = await s.proposals.record_plan("contoso", "main", ps)
        again_s, again_rt = time.perf_counter() - t, CountingConnection.sends

        CountingConnection.sends = 0
        t = time.perf_counter()
        gone = await s.proposals.record_plan("contoso", "main", [])
        gone_s, gone_rt = time.perf_counter() - t, CountingConnection.sends

        log.warning(
            "record_plan 100k: new %d rt %.2fs | again %d rt %.2fs | supersede all %d rt %.2fs",
            first_rt,
            first_s,
            again_rt,
            again_s,
            gone_rt,
            gone_s,
        )
        assert len(first.new) == 100_000
        assert again.new == [] and len(again.kept) == 100_000
        assert len(gone.superseded) == 100_000
        assert first_rt <= 1_000 and again_rt <= 1_000 and gone_rt <= 1_000
        assert await r.scard(keys.pending("contoso", "main")) == 0
    finally:
        async for k in r.scan_iter(match=f"{keys.prefix}*", count=5000):
            await r.delete(k)
        await r.aclose()
        await pool.aclose()


async def test_snapshot_of_20000_users_saves_merges_and_loads_in_one_round_trip_each(
    keys: Keys,
) -> None:
    pool = aioredis.ConnectionPool.from_url(URL, connection_class=CountingConnection)
    r = aioredis.Redis(connection_pool=pool)
    try:
        s = StateStore(r, keys, clock=clock)
        users = [
            EntraUser(f"u{i:05d}", True, {"displayName": f"Åsa {i}", "businessPhones": []})
            for i in range(20_000)
        ]
        trips = []
        await r.ping()  # the connection's handshake is not the snapshot's
        CountingConnection.sends = 0
        assert await s.snapshots.save("contoso", users) == 20_000
        trips.append(CountingConnection.sends)
        CountingConnection.sends = 0
        changed = [EntraUser("u00001", False, {"displayName": "Bo"}), EntraUser("new", True, {})]
        await s.snapshots.update("contoso", changed, ["u00002", "u19999"])
        trips.append(CountingConnection.sends)
        CountingConnection.sends = 0
        loaded = await s.snapshots.load("contoso")
        trips.append(CountingConnection.sends)
        assert trips == [1, 1, 1]
        assert len(loaded) == 20_000 - 2 + 1
        by_id = {u.id: u for u in loaded}
        assert (
            by_id["u00001"].attrs["displayName"] == "Bo"
            and "u00002" not in by_id
            and "new" in by_id
        )
        assert by_id["u00003"] == users[3]
    finally:
        async for k in r.scan_iter(match=f"{keys.prefix}*", count=5000):
            await r.delete(k)
        await r.aclose()
        await pool.aclose()


async def test_two_hundred_concurrent_requests_wait_for_a_connection_instead_of_failing(
    keys: Keys,
) -> None:
    """The pool is bounded (50) and blocking: a burst of 200 requests queues."""
    r = make_redis(URL)
    try:
        release = asyncio.Event()

        async def request(i: int) -> bytes | None:
            await release.wait()
            async with r.pipeline(transaction=True) as tx:
                tx.set(f"{keys.prefix}burst:{i}", i)
                tx.get(f"{keys.prefix}burst:{i}")
                _, got = await tx.execute()
            return got  # type: ignore[no-any-return]

        tasks = [asyncio.create_task(request(i)) for i in range(200)]
        release.set()
        assert await asyncio.gather(*tasks) == [str(i).encode() for i in range(200)]
        assert r.connection_pool.max_connections == 50
    finally:
        async for k in r.scan_iter(match=f"{keys.prefix}*"):
            await r.delete(k)
        await r.aclose()


async def test_per_user_last_sync_of_76000_users_in_one_round_trip(keys: Keys) -> None:
    """The ids of a full read go as one JSON argument to a script that sets them in 1,000s
    (the boundaries and the last partial batch included), on the real Redis."""
    pool = aioredis.ConnectionPool.from_url(URL, connection_class=CountingConnection)
    r = aioredis.Redis(connection_pool=pool)
    try:
        s = StateStore(r, keys, clock=clock)
        ids = [f"e{i:05d}" for i in range(76_001)] + ["e00000"]  # a repeat is set once
        at = clock()
        await r.ping()
        CountingConnection.sends = 0
        await s.runs.set_user_last_sync("contoso", ids, at)
        assert CountingConnection.sends == 1
        assert await r.hlen(keys.user_last_sync("contoso")) == 76_001
        for uid in ("e00000", "e00999", "e01000", "e76000"):
            assert await s.runs.user_last_sync("contoso", uid) == at
        assert await s.runs.user_last_sync("contoso", "e76001") is None
    finally:
        async for k in r.scan_iter(match=f"{keys.prefix}*", count=5000):
            await r.delete(k)
        await r.aclose()
        await pool.aclose()
