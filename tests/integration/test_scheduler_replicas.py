"""Several `entra-sync serve` replicas on one Redis: each runs the scheduler, and each due
slot is run once across them (a Redis-held claim per tenant and due time). Two real
SyncServices on the real Redis (the test's prefix), one injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sync.service.records import RunResult
from sync.service.service import Actor, SyncService
from sync.state.keys import Keys
from tests.component.real_rig import every_kind_world, make_service, write_world

ADA = Actor("admin-ada", "Ada")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def replicas(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> AsyncIterator[tuple[Clock, SyncService, SyncService]]:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory, schedule={"mode": "interval", "every_hours": 1})
    clock = Clock()
    a = make_service(tmp_path, cfg, redis=real_redis, keys=keys, clock=clock)
    b = make_service(tmp_path, cfg, redis=real_redis, keys=keys, clock=clock)
    await a.start(scheduler=False)
    await b.start(scheduler=False)
    yield clock, a, b
    await a.stop()
    await b.stop()


async def both_run_due(a: SyncService, b: SyncService) -> list[RunResult]:
    ra, rb = await asyncio.gather(a.run_due(), b.run_due())
    return ra + rb


async def test_two_replicas_run_each_interval_once(
    replicas: tuple[Clock, SyncService, SyncService],
) -> None:
    clock, a, b = replicas
    runs = await both_run_due(a, b)  # never ran: due now
    assert [(r.tenant, r.status) for r in runs] == [("contoso", "ok")]
    assert await both_run_due(a, b) == []  # not due again within the hour
    for _hour in range(3):
        clock.now += timedelta(hours=1)
        runs = await both_run_due(a, b)
        assert [(r.tenant, r.status) for r in runs] == [("contoso", "ok")]
    last = await a.store.runs.last_sync("contoso")
    assert last is not None and last.at == clock.now


async def test_a_replica_that_read_the_old_last_run_does_not_run_the_slot_again(
    replicas: tuple[Clock, SyncService, SyncService],
) -> None:
    """B decides "due" from the last run it read, A runs that slot and records it; B's run of
    the same slot is refused by the claim (without it B would run a second time)."""
    clock, a, b = replicas
    assert len(await a.run_due()) == 1
    clock.now += timedelta(hours=1)
    gate = asyncio.Event()
    read_by_b = asyncio.Event()
    runs_of_b: list[RunResult] = []
    real_last_sync = b.store.runs.last_sync

    async def b_reads_then_waits(tenant: str):  # type: ignore[no-untyped-def]
        got = await real_last_sync(tenant)
        read_by_b.set()
        await gate.wait()  # A runs the slot meanwhile
        return got

    b.store.runs.last_sync = b_reads_then_waits  # type: ignore[method-assign]
    b_task = asyncio.create_task(b.run_due())
    await read_by_b.wait()
    runs_of_a = await a.run_due()
    gate.set()
    runs_of_b = await b_task
    assert [r.status for r in runs_of_a] == ["ok"]
    assert runs_of_b == []


async def test_a_schedule_changed_in_teams_on_one_replica_holds_on_the_other(
    replicas: tuple[Clock, SyncService, SyncService],
) -> None:
    clock, a, b = replicas
    assert len(await both_run_due(a, b)) == 1
    errors = await a.update_settings({"schedule.mode": "manual"}, actor=ADA)
    assert errors == {}
    clock.now += timedelta(hours=5)
    assert await b.run_due() == []  # B follows the saved settings: manual, nothing runs
    assert b.config.schedule.mode == "manual"
