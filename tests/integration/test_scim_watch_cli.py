"""`entra-sync sync --once` (the CLI entry point) in scheduled mode against a SCIM directory,
after a delta round of partial objects from the simulated Graph (served over loopback HTTP,
outside the command, so the delta link of the first run is good for the second): the changed
names are written, phone numbers and e-mail stay as they are."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from bot import cli
from sync.devtools.simulator import TenantSim, serve_simulator
from sync.directories.base import NewDirectoryUser
from sync.directories.scim import ScimDirectory
from sync.state.keys import Keys
from tests.conftest import REAL_REDIS_URL
from tests.integration import scim_server as scim_fixtures
from tests.integration.scim_server import ScimServer

pytestmark = pytest.mark.redis
scim_server = scim_fixtures.scim_server

CLIENT, SECRET = "0b9d6f2e-0000-4000-8000-00000000c11d", "watch-secret"


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
        "businessPhones": ["+46 8 123 456 78"],
    }


def _config(tmp: Path, graph: str, scim: ScimServer) -> Path:
    path = tmp / "config.toml"
    path.write_text(
        f"""
[schedule]
mode = "watch"

[[tenants]]
name = "contoso"
tenant_id = "contoso.onmicrosoft.com"
client_id = "{CLIENT}"
client_secret_env = "CONTOSO_SECRET"
authority_host = "{graph}"
graph_url = "{graph}/v1.0"
directory = "pbx"

[[directories]]
name = "pbx"
kind = "scim"
url = "{scim.base_url}"
token_env = "PBX_SCIM_TOKEN"
"""
    )
    return path


async def _sync_once(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["sync", "--once", "--config", str(config), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    result: dict[str, Any] = json.loads(out)
    return result


async def test_sync_once_after_a_delta_round_of_partial_objects_writes_names_only(
    tmp_path: Path,
    scim_server: ScimServer,
    keys: Keys,
    real_redis: aioredis.Redis,  # deletes the test's keys afterwards
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PBX_SCIM_TOKEN", scim_server.token)
    monkeypatch.setenv("CONTOSO_SECRET", SECRET)
    monkeypatch.setenv("REDIS_URL", REAL_REDIS_URL)
    monkeypatch.setenv("ENTRA_SYNC_REDIS_PREFIX", keys.prefix)
    sim = TenantSim(
        [
            entra("e-anna", "Anna", "Lind", "+46701111111"),
            entra("e-bo", "Bo", "Ek", "+46702222222"),
        ],
        client_id=CLIENT,
        client_secret=SECRET,
    )
    async with httpx.AsyncClient() as http:
        scim = ScimDirectory(scim_server.base_url, SecretStr(scim_server.token), http=http)
        for first, last, phone, uid in (
            ("Anna", "Lind", "+46701111111", "e-anna"),
            ("Bo", "Ek", "+46702222222", "e-bo"),
        ):
            await scim.create(
                NewDirectoryUser(
                    first_name=first,
                    last_name=last,
                    display_name=f"{first} {last}",
                    email=f"{first.lower()}@contoso.example",
                    phones=(phone, "+46812345678"),
                    entra_id=uid,
                )
            )
        async with serve_simulator(sim) as graph:
            config = _config(tmp_path, graph, scim_server)
            first = await _sync_once(config, capsys)
            assert first["runs"][0]["status"] == "ok", first
            assert first["runs"][0]["auto_applied"] == 0  # in step

            sim.update_user("e-anna", surname="Lind-Holm", displayName="Anna Lind-Holm")
            sim.update_user("e-bo", givenName="Bosse", displayName="Bosse Ek")
            before = sim.requests["users"]
            assert before >= 1
            rounds = sim.requests["delta"]
            second = await _sync_once(config, capsys)
            (run,) = second["runs"]
            assert run["status"] == "ok", second
            assert sim.requests["users"] == before  # a delta round, not a full read
            assert sim.requests["delta"] > rounds
            assert run["auto_applied"] == 2 and run["new"] == {}, second

        users = {u.entra_id: u for u in await scim.list_users()}
    anna, bo = users["e-anna"], users["e-bo"]
    assert (anna.first_name, anna.last_name, anna.display_name) == (
        "Anna",
        "Lind-Holm",
        "Anna Lind-Holm",
    )
    assert (bo.first_name, bo.last_name, bo.display_name) == ("Bosse", "Ek", "Bosse Ek")
    assert set(anna.phones) == {"+46701111111", "+46812345678"}
    assert set(bo.phones) == {"+46702222222", "+46812345678"}
    assert (anna.email, bo.email) == ("anna@contoso.example", "bo@contoso.example")
