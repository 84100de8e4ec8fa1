"""End to end without Teams: tenant simulator -> `sync --once` in scheduled mode -> the SCIM
server (scim2-server over HTTP). Linked users' changes appear; new users only after an
accepted proposal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import EnvSettings, load_config
from sync.directories.base import NewDirectoryUser
from sync.directories.scim import ScimDirectory
from sync.models import Kind
from sync.service.runner import sync_once
from sync.service.service import Actor, SyncService
from sync.state.keys import Keys
from tests.conftest import REAL_REDIS_URL
from tests.integration import scim_server as scim_fixtures
from tests.integration.scim_server import ScimServer

pytestmark = pytest.mark.redis
scim_server = scim_fixtures.scim_server


def entra(uid: str, first: str, last: str, phone: str) -> dict[str, Any]:
    mail = f"{first.lower()}@contoso.example"
    return {
        "id": uid,
        "accountEnabled": True,
        "givenName": first,
        "surname": last,
        "displayName": f"{first} {last}",
        "mail": mail,
        "userPrincipalName": mail,
        "mobilePhone": phone,
        "businessPhones": [],
    }


@pytest.fixture
def world(tmp_path: Path, scim_server: ScimServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    tenant = {
        "users": [
            entra("e-anna", "Anna", "Lind", "070-111 11 11"),  # linked in SCIM; surname changed
            entra("e-bo", "Bo", "Ek", "070-222 22 22"),  # only in Entra: a new user
        ]
    }
    (tmp_path / "tenant.json").write_text(json.dumps(tenant))
    (tmp_path / "config.toml").write_text(
        f"""
[schedule]
mode = "interval"
every_hours = 12

[[tenants]]
name = "contoso"
simulate = "tenant.json"
directory = "pbx"

[[directories]]
name = "pbx"
kind = "scim"
url = "{scim_server.base_url}"
token_env = "PBX_SCIM_TOKEN"
"""
    )
    monkeypatch.setenv("PBX_SCIM_TOKEN", scim_server.token)
    return tmp_path


async def scim_users(server: ScimServer) -> list[Any]:
    async with httpx.AsyncClient() as http:
        d = ScimDirectory(server.base_url, SecretStr(server.token), http=http)
        return list(await d.list_users())


async def test_sync_once_applies_linked_changes_to_scim_and_creates_nobody(
    world: Path, scim_server: ScimServer, keys: Keys, real_redis: aioredis.Redis
) -> None:
    async with httpx.AsyncClient() as http:
        d = ScimDirectory(scim_server.base_url, SecretStr(scim_server.token), http=http)
        await d.create(
            NewDirectoryUser(
                first_name="Anna",
                last_name="Berg",
                display_name="Anna Berg",
                email="anna@contoso.example",
                phones=("+46701111111",),
                entra_id="e-anna",
            )
        )
    env = EnvSettings(REDIS_URL=REAL_REDIS_URL)
    summary = await sync_once(str(world / "config.toml"), env=env, keys=keys)
    (run,) = summary["runs"]
    assert run["status"] == "ok", run
    assert run["auto_applied"] == 1 and run["new"] == {"new": 1}, json.dumps(summary)
    users = await scim_users(scim_server)
    assert [(u.last_name, u.display_name, u.entra_id) for u in users] == [
        ("Lind", "Anna Lind", "e-anna")
    ]  # the linked user follows Entra; Bo was not created

    # an admin accepts the `new` proposal: now Bo appears in the phone system
    service = SyncService(
        config=load_config(world / "config.toml"),
        env=env,
        redis=real_redis,
        keys=keys,
        clock=lambda: datetime.now(UTC),
    )
    await service.start(scheduler=False)
    try:
        (item,) = await service.pending(Kind.NEW)
        d = await service.decide(
            item.id, "create", actor=Actor("admin-1", "Ada"), digest=item.digest, inputs={}
        )
        assert d.outcome == "done", d.message
    finally:
        await service.stop()
    users = await scim_users(scim_server)
    bo = next(u for u in users if u.entra_id == "e-bo")
    assert (bo.first_name, bo.phones) == ("Bo", ("+46702222222",))
    # and a second scheduled run has nothing left to do
    again = await sync_once(str(world / "config.toml"), env=env, keys=keys)
    assert again["runs"][0]["new"] == {} and again["runs"][0]["auto_applied"] == 0
