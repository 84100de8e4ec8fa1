"""``GET /metrics`` (issue 16): the real app over the real SyncService on the real Redis,
scraped over loopback HTTP and parsed with prometheus-client's own parser (the text format
Prometheus reads: https://prometheus.io/docs/instrumenting/exposition_formats/).

Also who may read it: a direct loopback client without a token; with
``ENTRA_SYNC_METRICS_TOKEN``, only a request carrying it; never a request that came through a
reverse proxy (it carries X-Forwarded-For) unless it has the token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import WatchError

from bot.app import AppParts, create_app
from sync.config import EnvSettings
from sync.errors import ConfigError
from sync.metrics import Metrics
from sync.service.service import SyncService
from sync.state.connection import redis_from_url
from sync.state.keys import Keys
from tests.component.real_rig import Rig, every_kind_world, make_service, real_bot, write_world
from tests.component.test_bot_flow import activity, executes, invoke, message

pytestmark = pytest.mark.redis

TOKEN = "0123456789abcdef0123456789abcdef"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(
    scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


async def scrape(rig: Rig, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = await rig.client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    return samples(await resp.text())


@pytest.fixture
async def service(
    real_redis: aioredis.Redis, keys: Keys, tmp_path: Path
) -> AsyncIterator[SyncService]:
    tenant, directory = every_kind_world()
    svc = make_service(
        tmp_path, write_world(tmp_path, tenant, directory), redis=real_redis, keys=keys
    )
    await svc.start(scheduler=False)
    yield svc
    await svc.stop()


@pytest.fixture
async def rig(aiohttp_client: Any, service: SyncService) -> AsyncIterator[Rig]:
    async with real_bot(aiohttp_client, service) as r:
        status, _ = await r.post(activity("installationUpdate", r.fc, action="add"))
        assert status == 200
        yield r


async def test_a_sync_and_a_decision_move_the_scraped_metrics(
    rig: Rig, service: SyncService
) -> None:
    before = await scrape(rig)
    assert value(before, "entra_sync_runs_total", outcome="ok", mode="full") == 0

    await rig.post(message(rig.fc, "sync now"))
    accept = next(a for c in rig.fc.cards("POST") for a in executes(c) if a["verb"] == "accept")
    status, _ = await rig.post(invoke(rig.fc, "accept", accept["data"]))
    assert status == 200

    after = await scrape(rig)
    assert value(after, "entra_sync_runs_total", outcome="ok", mode="full") == 1
    assert value(after, "entra_sync_run_duration_seconds_count", outcome="ok") == 1
    assert value(after, "entra_sync_decisions_total", verb="accept", outcome="done") == 1
    graph = service.tenants["contoso"].graph
    assert value(after, "entra_sync_graph_requests_total", tenant="contoso") == graph.graph_requests
    assert graph.graph_requests > 0
    # every card posted into Teams went through the Bot Connector once
    assert value(after, "entra_sync_teams_posts_total", op="send") == len(rig.fc.posts)
    assert len(rig.fc.posts) > 0
    # the pending gauge is what the store holds now (the accepted match is gone)
    pending = Counter(i.kind.value for i in await service.pending())
    for kind in ("match", "update", "new", "conflict", "removal"):
        assert value(after, "entra_sync_pending_items", kind=kind) == pending[kind], kind
    assert pending["match"] == 0 and pending["update"] == 1


async def test_graph_and_teams_429s_are_counted(rig: Rig, service: SyncService) -> None:
    sim = service.tenants["contoso"].sim
    assert sim is not None
    sim.faults.throttle_every = 2  # every second Graph request is throttled, then retried
    rig.fc.fail_next(1, status=429, retry_after=0.5, method="POST")

    await rig.post(message(rig.fc, "sync now"))

    after = await scrape(rig)
    assert value(after, "entra_sync_runs_total", outcome="ok", mode="full") == 1
    requests = value(after, "entra_sync_graph_requests_total", tenant="contoso")
    assert requests >= 2
    assert value(after, "entra_sync_graph_throttled_total", tenant="contoso") == requests // 2
    assert value(after, "entra_sync_teams_throttled_total", op="send") == 1
    assert [r.status for r in rig.fc.rejected] == [429]


async def test_a_failed_run_is_counted_by_outcome(rig: Rig, service: SyncService) -> None:
    sim = service.tenants["contoso"].sim
    assert sim is not None
    sim.faults.forbidden = True  # Graph answers 403: the app lacks User.Read.All

    await rig.post(message(rig.fc, "sync now"))

    after = await scrape(rig)
    assert value(after, "entra_sync_runs_total", outcome="failed", mode="full") == 1
    assert value(after, "entra_sync_runs_total", outcome="ok", mode="full") == 0


async def test_redis_errors_are_counted_and_a_lost_optimistic_race_is_not(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    metrics = Metrics()
    live = redis_from_url("redis://127.0.0.1:6379/0", on_error=metrics.redis_error)
    key = keys.prefix + "watched"
    try:
        async with live.pipeline(transaction=True) as tx:
            await tx.watch(key)
            await real_redis.set(key, "changed meanwhile")
            tx.multi()
            tx.set(key, "mine")
            with pytest.raises(WatchError):
                await tx.execute()
        assert metrics.redis_errors._value.get() == 0
    finally:
        await live.aclose()

    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = redis_from_url(f"redis://127.0.0.1:{dead_port}/0", on_error=metrics.redis_error)
    try:
        with pytest.raises(RedisConnectionError):
            await dead.get("x")
        with pytest.raises(RedisConnectionError):
            await dead.pipeline(transaction=False).get("x").get("y").execute()
    finally:
        await dead.aclose()
    scraped = samples(metrics.render().decode())
    assert value(scraped, "entra_sync_redis_errors_total") == 2


# --- who may read /metrics -------------------------------------------------------------------


async def test_metrics_through_a_reverse_proxy_are_refused_without_a_token(rig: Rig) -> None:
    resp = await rig.client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 403
    assert "ENTRA_SYNC_METRICS_TOKEN" in (await resp.json())["message"]


@pytest.fixture
async def token_rig(aiohttp_client: Any, service: SyncService) -> AsyncIterator[Rig]:
    env = EnvSettings(MICROSOFT_APP_ID=None, ENTRA_SYNC_METRICS_TOKEN=SecretStr(TOKEN))
    async with real_bot(aiohttp_client, service, env=env) as r:
        yield r


async def test_with_a_metrics_token_only_a_request_carrying_it_is_served(token_rig: Rig) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token-wrong"}):
        resp = await token_rig.client.get("/metrics", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in await resp.text()
    proxied = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "203.0.113.9"}
    scraped = await scrape(token_rig, **proxied)
    assert ("entra_sync_redis_errors_total", frozenset()) in scraped


async def test_a_metrics_token_too_short_to_be_a_secret_is_refused_at_start(
    service: SyncService,
) -> None:
    env = EnvSettings(MICROSOFT_APP_ID=None, ENTRA_SYNC_METRICS_TOKEN=SecretStr("short"))
    with pytest.raises(ConfigError, match="openssl rand -hex 32"):
        create_app(env=env, service=service, parts=AppParts(clock=None, sleep=None))  # type: ignore[arg-type]


async def test_two_apps_keep_their_own_registries(
    tmp_path: Path, keys: Keys, real_redis: aioredis.Redis
) -> None:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory)
    one = make_service(tmp_path, cfg, redis=real_redis, keys=keys)
    two = make_service(tmp_path, cfg, redis=real_redis, keys=keys)
    one.metrics.decisions.labels(verb="accept", outcome="done").inc()
    assert (
        value(
            samples(two.metrics.render().decode()),
            "entra_sync_decisions_total",
            verb="accept",
            outcome="done",
        )
        == 0
    )
    assert one.metrics.registry is not two.metrics.registry


async def test_bulk_decisions_are_counted_one_by_one_under_their_verb(
    rig: Rig, service: SyncService
) -> None:
    from sync.models import Kind
    from sync.service.service import Actor

    await service.run_sync()
    updates = [i for i in await service.pending() if i.kind is Kind.UPDATE]
    decisions = await service.decide_all(Kind.UPDATE, actor=Actor("aad-admin", "Ann Admin"))
    assert len(decisions) == len(updates) > 0
    after = await scrape(rig)
    done = sum(1 for d in decisions if d.outcome == "done")
    assert value(after, "entra_sync_decisions_total", verb="apply", outcome="done") == done > 0
