"""``connect`` proves new credentials before it replaces a working tenant's (issue 19, attack 8).

The real SyncService on the real Redis, the real bot route over HTTP, and the tenant an admin
connects from Teams signing in through the real MSAL client at the simulator's token endpoint
(which checks the client id and secret). A connect whose sign-in Entra refuses stores nothing:
the tenant in force keeps its credentials and keeps syncing, and the admin is told why (the
AADSTS code and its fix).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import EnvSettings
from sync.devtools.simulator import TenantSim
from sync.errors import AADSTS_HINTS, AuthError
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

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("no_tracebacks")]

TENANT_ID = "contoso.onmicrosoft.com"
CLIENT = "7d1a2b3c-0000-4000-8000-00000000c0de"
SECRET = "right-secret-value~1"
ANN = Actor(ADMIN, "Ann Admin")
FERNET_KEY = "ka5dX4mh1pQq0rYbqO8nmD0i3yR6uGzE2d9X7cV1bN8="


@dataclass
class World:
    service: SyncService
    rig: Rig
    entra: TenantSim

    async def stored(self) -> tuple[str, str, str] | None:
        creds = await self.service.store.tenant_credentials.credentials(CONNECTED)
        return None if creds is None else (creds[0], creds[1], creds[2].get_secret_value())


@pytest.fixture
async def world(
    aiohttp_client: Any,
    tmp_path: Path,
    real_redis: aioredis.Redis,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    tenant, directory = every_kind_world()
    env = EnvSettings(MICROSOFT_APP_ID=None, ENTRA_SYNC_SECRET_KEY=SecretStr(FERNET_KEY))
    cfg = write_world(tmp_path, tenant, directory)
    cfg["tenants"] = []  # only the tenant connected from Teams
    svc = make_service(tmp_path, cfg, redis=real_redis, keys=keys, env=env)
    entra = TenantSim(tenant, client_id=CLIENT, client_secret=SECRET)
    async with simulated_entra(monkeypatch, entra):
        await svc.start(scheduler=False)
        try:
            async with real_bot(aiohttp_client, svc, env=env) as rig:
                assert (await rig.post(activity("installationUpdate", rig.fc, action="add")))[0]
                await svc.connect(TENANT_ID, CLIENT, SecretStr(SECRET), actor=ANN)
                yield World(svc, rig, entra)
        finally:
            await svc.stop()


async def _still_working(world: World) -> None:
    assert await world.stored() == (TENANT_ID, CLIENT, SECRET)
    (run,) = await world.service.run_sync(CONNECTED, actor=ANN)
    assert run.status == "ok", run.error
    (status,) = [s for s in await world.service.status() if s.tenant == CONNECTED]
    assert status.connected


@pytest.mark.parametrize(
    ("client", "secret", "code"),
    [
        (CLIENT, "wrong-secret-value", 7000215),
        ("00000000-0000-4000-8000-0000000bad01", SECRET, 700016),
    ],
    ids=["wrong_secret", "unknown_client"],
)
async def test_a_failed_connect_keeps_the_working_credentials_and_says_why(
    world: World, client: str, secret: str, code: int
) -> None:
    with pytest.raises(AuthError) as refused:
        await world.service.connect(TENANT_ID, client, SecretStr(secret), actor=ANN)
    assert refused.value.aadsts == code
    assert refused.value.hint == AADSTS_HINTS[code]
    await _still_working(world)
    assert not [e for e in await world.service.audit(50) if e.after == {"client_id": client}]


async def test_a_failed_connect_from_the_card_shows_the_fix_and_changes_nothing(
    world: World,
) -> None:
    data = {"pid": "connect", "d": "", "tenant_id": TENANT_ID, "client_id": CLIENT}
    connects = len([e for e in await world.service.audit(50) if e.action == "connect"])
    status, body = await world.rig.post(
        invoke(world.rig.fc, "connect_save", {**data, "client_secret": "Wr0ng~secret"})
    )
    assert status == 200
    text = card_texts(body["value"]).replace("\\", "")  # as shown: Markdown escapes gone
    assert "AADSTS7000215" in text and AADSTS_HINTS[7000215] in text
    assert "Wr0ng~secret" not in json.dumps(body)
    assert len([e for e in await world.service.audit(50) if e.action == "connect"]) == connects
    await _still_working(world)


async def test_proven_credentials_replace_the_old_ones(world: World) -> None:
    # the app's secret is rotated in Entra: the stored one no longer signs in, the new one does
    world.entra.client_secret = "rotated-secret~2"
    with pytest.raises(AuthError):
        await world.service.connect(TENANT_ID, CLIENT, SecretStr(SECRET), actor=ANN)
    status = await world.service.connect(
        TENANT_ID, CLIENT, SecretStr("rotated-secret~2"), actor=ANN
    )
    assert status.connected
    assert await world.stored() == (TENANT_ID, CLIENT, "rotated-secret~2")
    connects = [e for e in await world.service.audit(50) if e.action == "connect"]
    assert len(connects) == 2  # the first connect and the rotation, not the refused one
