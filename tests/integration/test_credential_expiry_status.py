"""`status` warns before the Entra app's secret expires, reading the app's own registration
from (simulated) Graph over loopback, says what to grant when it may not, and a secret that has
expired (AADSTS7000222) is a red status with the fix. The real SyncService on the real Redis,
the real bot route, MSAL at the simulator's token endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
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
    now_fixed,
    real_bot,
    simulated_entra,
    write_world,
)
from tests.component.test_bot_flow import activity, card_texts

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("no_tracebacks")]

TENANT_ID = "contoso.onmicrosoft.com"
CLIENT = "7d1a2b3c-0000-4000-8000-00000000c0de"
SECRET = "rig-secret-value~1"
ANN = Actor(ADMIN, "Ann Admin")
FERNET_KEY = "ka5dX4mh1pQq0rYbqO8nmD0i3yR6uGzE2d9X7cV1bN8="
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "graph"


def registration(secret_ends_in_days: float) -> dict[str, Any]:
    """The documented application object, its secret (hint: our first three characters)
    ending ``secret_ends_in_days`` after the service's clock."""
    data = json.loads((FIXTURE / "application-credentials-response.json").read_text())
    body: dict[str, Any] = dict(data["responses"][0])
    ends = now_fixed() + timedelta(days=secret_ends_in_days)
    mine = {**body["passwordCredentials"][0], "hint": SECRET[:3]}
    mine["endDateTime"] = ends.isoformat().replace("+00:00", "Z")
    return {**body, "appId": CLIENT, "passwordCredentials": [mine]}


@dataclass
class World:
    service: SyncService
    rig: Rig
    entra: TenantSim

    async def say(self, text: str) -> str:
        n = len(self.rig.fc.posts)
        status, _ = await self.rig.post(activity("message", self.rig.fc, text=text))
        assert status == 200
        out = []
        for r in self.rig.fc.posts[n:]:
            for a in r.body.get("attachments") or []:
                out.append(card_texts(a["content"]))
        return " ".join(out).replace("\\", "")


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
    cfg = write_world(tmp_path, tenant, directory, credentials={"warn_days": 21})
    cfg["tenants"] = []
    svc = make_service(tmp_path, cfg, redis=real_redis, keys=keys, env=env)
    entra = TenantSim(tenant, client_id=CLIENT, client_secret=SECRET)
    async with simulated_entra(monkeypatch, entra):
        await svc.start(scheduler=False)
        try:
            async with real_bot(aiohttp_client, svc, env=env) as rig:
                assert (await rig.post(activity("installationUpdate", rig.fc, action="add")))[0]
                yield World(svc, rig, entra)
        finally:
            await svc.stop()


async def connected_status(world: World) -> Any:
    await world.service.connect(TENANT_ID, CLIENT, SecretStr(SECRET), actor=ANN)
    (status,) = [s for s in await world.service.status() if s.tenant == CONNECTED]
    return status


async def test_status_warns_within_the_configured_days_before_the_secret_expires(
    world: World,
) -> None:
    world.entra.applications[CLIENT] = registration(secret_ends_in_days=12.5)
    status = await connected_status(world)
    assert status.connected and status.error is None
    assert status.credential is not None
    assert (status.credential.state, status.credential.days_left) == ("expiring", 12)
    text = await world.say("status")
    assert "An app credential expires soon" in text
    assert "expires in 12 days" in text and "Certificates & secrets" in text


async def test_status_is_quiet_when_the_secret_is_far_from_expiry(world: World) -> None:
    world.entra.applications[CLIENT] = registration(secret_ends_in_days=200)
    status = await connected_status(world)
    assert status.credential is not None and status.credential.state == "ok"
    assert "App credential" not in await world.say("status")


async def test_without_application_read_all_the_expiry_is_unknown_and_says_what_to_grant(
    world: World,
) -> None:
    world.entra.applications[CLIENT] = registration(secret_ends_in_days=5)
    world.entra.faults.applications_forbidden = True  # Graph answers 403 for the registration
    status = await connected_status(world)
    assert status.connected and status.error is None  # never an error
    assert status.credential is not None and status.credential.state == "unknown"
    text = await world.say("status")
    assert "Expiry unknown: grant" in text and "Application.Read.All" in text
    assert "That did not work" not in text


async def test_a_registration_graph_cannot_find_is_not_checked_and_shows_no_card(
    world: World,
) -> None:
    # no registration in this tenant (a multi-tenant app lives in its home tenant): Graph 404
    status = await connected_status(world)
    assert status.credential is not None and status.credential.state == "unchecked"
    assert "graph_not_found" in status.credential.message
    assert "App credential" not in await world.say("status")


async def test_an_expired_secret_is_a_red_status_saying_to_create_a_new_one(world: World) -> None:
    await world.service.connect(TENANT_ID, CLIENT, SecretStr(SECRET), actor=ANN)
    world.entra.faults.token_error_code = 7000222  # Entra: the secret has expired
    world.entra.revoke_tokens()  # Graph refuses the cached token: MSAL asks Entra again
    (run,) = await world.service.run_sync(CONNECTED, actor=ANN)
    assert run.status != "ok"
    (status,) = [s for s in await world.service.status() if s.tenant == CONNECTED]
    assert not status.connected
    assert status.error is not None and status.error["code"] == "AADSTS7000222"
    assert "client secret expired" in str(status.error["hint"])
    text = await world.say("status")
    assert "AADSTS7000222" in text and "Certificates & secrets" in text


async def test_the_simulator_answers_the_app_registration_in_the_documented_shape() -> None:
    import httpx

    from sync.devtools.simulator import serve_simulator

    documented = json.loads((FIXTURE / "application-credentials-response.json").read_text())
    [expected] = documented["responses"]
    sim = TenantSim([], client_id=CLIENT)
    sim.applications[CLIENT] = {**expected, "appId": CLIENT}
    sim.applications[CLIENT]["passwordCredentials"][0]["secretText"] = "never shown"
    async with serve_simulator(sim) as url, httpx.AsyncClient() as http:
        headers = {"Authorization": f"Bearer {sim.issue_token()}"}
        query = "$select=passwordCredentials,keyCredentials"
        ok = await http.get(f"{url}/v1.0/applications(appId='{CLIENT}')?{query}", headers=headers)
        missing = await http.get(f"{url}/v1.0/applications(appId='nope')", headers=headers)
        sim.faults.applications_forbidden = True
        denied = await http.get(f"{url}/v1.0/applications(appId='{CLIENT}')", headers=headers)
    body = ok.json()
    assert ok.status_code == 200
    for kind in ("passwordCredentials", "keyCredentials"):
        assert [sorted(c) for c in body[kind]] == [sorted(c) for c in expected[kind]]
    assert body["passwordCredentials"][0]["secretText"] is None
    assert body["@odata.context"].endswith("/$entity")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
