"""`connect` in Teams with the bot's certificate (ENTRA_SYNC_CLIENT_CERTIFICATE): the form says
the secret may stay empty and which certificate (thumbprint) Entra must know; the tenant signs
in with a signed client assertion that the simulated token endpoint verifies; its expiry shows
in `status` even without Graph's permission to read the app registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import EnvSettings
from sync.devtools.simulator import TenantSim
from sync.service.records import CONNECTED
from sync.service.service import Actor, SyncService
from sync.state.keys import Keys
from tests.component.real_rig import (
    ADMIN,
    Rig,
    every_kind_world,
    make_service,
    real_bot,
    simulated_entra,
    write_world,
)
from tests.component.test_bot_flow import activity, card_texts, invoke
from tests.integration.test_certificate_credentials import Cert, make_cert

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("no_tracebacks")]

TENANT_ID = "contoso.onmicrosoft.com"
CLIENT = "7d1a2b3c-0000-4000-8000-00000000c0de"
FERNET_KEY = "ka5dX4mh1pQq0rYbqO8nmD0i3yR6uGzE2d9X7cV1bN8="


@dataclass
class World:
    service: SyncService
    rig: Rig
    entra: TenantSim
    cert: Cert


@pytest.fixture
async def world(
    aiohttp_client: Any,
    tmp_path: Path,
    real_redis: aioredis.Redis,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    tenant, directory = every_kind_world()
    cert = make_cert(days=400)
    env = EnvSettings(
        MICROSOFT_APP_ID=None,
        ENTRA_SYNC_SECRET_KEY=SecretStr(FERNET_KEY),
        ENTRA_SYNC_CLIENT_CERTIFICATE=str(cert.pem_file(tmp_path / "app.pem")),
    )
    cfg = write_world(tmp_path, tenant, directory)
    cfg["tenants"] = []
    svc = make_service(tmp_path, cfg, redis=real_redis, keys=keys, env=env)
    # Entra knows only the certificate: a secret would be refused
    entra = TenantSim(
        tenant, client_id=CLIENT, client_secret="not-used~0", client_certificate=cert.cert_pem
    )
    entra.faults.applications_forbidden = True
    async with simulated_entra(monkeypatch, entra):
        await svc.start(scheduler=False)
        try:
            async with real_bot(aiohttp_client, svc, env=env) as rig:
                assert (await rig.post(activity("installationUpdate", rig.fc, action="add")))[0]
                yield World(svc, rig, entra, cert)
        finally:
            await svc.stop()


async def test_the_connect_form_names_the_certificate_and_makes_the_secret_optional(
    world: World,
) -> None:
    thumbprint = world.service.connect_certificate_thumbprint()
    assert thumbprint is not None and len(thumbprint) == 40
    n = len(world.rig.fc.posts)
    await world.rig.post(activity("message", world.rig.fc, text="connect"))
    [card] = [a["content"] for r in world.rig.fc.posts[n:] for a in r.body.get("attachments", [])]
    assert thumbprint in card_texts(card)
    [secret_input] = [e for e in card["body"] if e.get("id") == "client_secret"]
    assert secret_input["isRequired"] is False


async def test_connect_with_an_empty_secret_signs_in_with_the_certificate(world: World) -> None:
    data = {"pid": "connect", "d": "", "tenant_id": TENANT_ID, "client_id": CLIENT}
    status, body = await world.rig.post(
        invoke(world.rig.fc, "connect_save", {**data, "client_secret": ""})
    )
    assert status == 200
    assert "AADSTS" not in card_texts(body["value"])
    creds = await world.service.store.tenant_credentials.credentials(CONNECTED)
    assert creds is not None and creds[2].get_secret_value() == ""  # no secret stored
    (run,) = await world.service.run_sync(CONNECTED, actor=_actor())
    assert run.status == "ok", run.error
    assert world.entra.requests["token"] >= 2  # the proof and the tenant in force


async def test_the_certificate_expiry_shows_even_without_graph_permission(world: World) -> None:
    await world.service.connect(TENANT_ID, CLIENT, SecretStr(""), actor=_actor())
    (status,) = [s for s in await world.service.status() if s.tenant == CONNECTED]
    assert status.credential is not None
    assert status.credential.kind == "certificate"
    assert status.credential.ends_at == world.cert.cert.not_valid_after_utc


def _actor() -> Actor:
    return Actor(ADMIN, "Ann Admin")
