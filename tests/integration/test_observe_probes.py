"""``/healthz`` and ``/readyz`` (issue 16) over loopback HTTP, on the real SyncService.

``/healthz``: the process answers (no I/O, so it answers while Redis is down). ``/readyz``:
Redis answers a PING; each tenant's last run and Graph token state come from what the
service holds: a probe never signs in or calls Graph (the Entra simulator counts requests).
A failing tenant makes the report ``degraded`` (200: the bot still serves Teams, where an
admin can fix the tenant), ``?strict=1`` makes it 503.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from sync.service.service import SyncService
from sync.state.connection import redis_from_url
from sync.state.keys import Keys
from tests.component.bot_fake_service import now_fixed
from tests.component.real_rig import (
    ENTRA_SECRET,
    Rig,
    entra_user,
    every_kind_world,
    make_service,
    real_bot,
    serve_entra,
    write_world,
)
from tests.component.test_bot_flow import activity, message

pytestmark = pytest.mark.redis


async def get_json(rig: Rig, path: str) -> tuple[int, dict[str, Any]]:
    resp = await rig.client.get(path)
    assert resp.content_type == "application/json"
    return resp.status, await resp.json()


def dead_port() -> int:
    with socket.socket() as s:  # free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_without_redis_healthz_is_alive_and_readyz_is_503_naming_redis(
    aiohttp_client: Any, tmp_path: Path, keys: Keys
) -> None:
    dead = redis_from_url(f"redis://127.0.0.1:{dead_port()}/0")
    tenant, directory = every_kind_world()
    service = make_service(
        tmp_path, write_world(tmp_path, tenant, directory), redis=dead, keys=keys
    )
    try:
        async with real_bot(aiohttp_client, service) as rig:
            status, body = await get_json(rig, "/healthz")
            assert (status, body["status"]) == (200, "alive")

            status, body = await get_json(rig, "/readyz")
            assert status == 503
            assert body["status"] == "not_ready"
            assert body["failed"] == ["redis"]
            redis = body["checks"]["redis"]
            assert redis["ok"] is False and redis["code"] == "store_unavailable"
            assert "REDIS_URL" in redis["hint"]
    finally:
        await dead.aclose()


@pytest.fixture
async def entra(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    async with serve_entra([entra_user("anna", "Anna", "Berg", "+46701234567")]) as e:
        yield e


async def started(
    tmp_path: Path, cfg: dict[str, Any], real_redis: aioredis.Redis, keys: Keys
) -> SyncService:
    service = make_service(tmp_path, cfg, redis=real_redis, keys=keys)
    await service.start(scheduler=False)
    return service


async def test_readyz_reports_the_tenants_last_run_and_token_without_calling_entra(
    aiohttp_client: Any,
    tmp_path: Path,
    real_redis: aioredis.Redis,
    keys: Keys,
    entra: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTOSO_SECRET", ENTRA_SECRET)
    cfg = write_world(tmp_path, [], [], tenants=[entra.tenant_config()])
    service = await started(tmp_path, cfg, real_redis, keys)
    try:
        async with real_bot(aiohttp_client, service) as rig:
            status, body = await get_json(rig, "/readyz")
            assert (status, body["status"], body["failed"]) == (200, "ready", [])
            assert body["checks"]["tenant:contoso"]["token"] == {"state": "not_requested"}

            await rig.post(activity("installationUpdate", rig.fc, action="add"))
            await rig.post(message(rig.fc, "sync now"))
            asked = dict(entra.sim.requests)

            for _ in range(3):
                status, body = await get_json(rig, "/readyz?strict=1")
            assert (status, body["status"]) == (200, "ready")
            tenant = body["checks"]["tenant:contoso"]
            assert tenant["ok"] is True
            assert tenant["token"]["state"] == "ok"
            assert tenant["last_run"]["status"] == "ok"
            assert tenant["last_run"]["at"] == now_fixed().isoformat()
            assert dict(entra.sim.requests) == asked  # no sign-in, no Graph call
    finally:
        await service.stop()


async def test_a_refused_secret_makes_readyz_degraded_with_the_aadsts_code_and_hint(
    aiohttp_client: Any,
    tmp_path: Path,
    real_redis: aioredis.Redis,
    keys: Keys,
    entra: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTOSO_SECRET", "the-secret-id-not-its-value")
    cfg = write_world(tmp_path, [], [], tenants=[entra.tenant_config()])
    service = await started(tmp_path, cfg, real_redis, keys)
    try:
        async with real_bot(aiohttp_client, service) as rig:
            await rig.post(activity("installationUpdate", rig.fc, action="add"))
            await rig.post(message(rig.fc, "sync now"))

            status, body = await get_json(rig, "/readyz")
            assert (status, body["status"], body["failed"]) == (200, "degraded", ["tenant:contoso"])
            tenant = body["checks"]["tenant:contoso"]
            assert tenant["token"]["state"] == "refused"
            assert tenant["code"] == "AADSTS7000215"
            assert "Value" in tenant["hint"]
            assert "the-secret-id-not-its-value" not in str(body)

            status, body = await get_json(rig, "/readyz?strict=1")
            assert (status, body["status"]) == (503, "not_ready")
    finally:
        await service.stop()


async def test_a_tenant_whose_secret_is_missing_is_named_with_the_variable_to_set(
    aiohttp_client: Any,
    tmp_path: Path,
    real_redis: aioredis.Redis,
    keys: Keys,
    entra: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONTOSO_SECRET", raising=False)
    cfg = write_world(tmp_path, [], [], tenants=[entra.tenant_config()])
    service = await started(tmp_path, cfg, real_redis, keys)
    try:
        async with real_bot(aiohttp_client, service) as rig:
            status, body = await get_json(rig, "/readyz")
            assert (status, body["status"]) == (200, "degraded")
            tenant = body["checks"]["tenant:contoso"]
            assert tenant["token"] == {"state": "no_credentials"}
            assert tenant["code"] == "bad_config"
    finally:
        await service.stop()
