"""The approval flow against the REAL SyncService (fakeredis, an in-process simulated tenant,
the built-in directory), through the real route and the fake Bot Connector."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from bot.app import AppParts, create_app
from sync.config import EnvSettings, config_from_dict
from sync.service.service import SyncService
from sync.state.keys import Keys
from tests.component.bot_fake_service import now_fixed
from tests.component.fake_connector import FakeConnector
from tests.component.test_bot_flow import (
    ADMIN,
    OTHER,
    FakeTime,
    Rig,
    activity,
    card_texts,
    executes,
    invoke,
    message,
)

PEOPLE = [("anna", "Anna", "Berg", "+46701234567"), ("bo", "Bo", "Ek", "+46701234568")]


def write_files(tmp: Path) -> dict[str, Any]:
    tenant = {
        "users": [
            {
                "id": f"e-{k}",
                "accountEnabled": True,
                "givenName": g,
                "surname": s,
                "displayName": f"{g} {s}",
                "mail": f"{k}@contoso.se",
                "userPrincipalName": f"{k}@contoso.se",
                "mobilePhone": p,
                "businessPhones": [],
            }
            for k, g, s, p in PEOPLE
        ],
        "groups": [],
    }
    directory = {
        "users": [
            {
                "id": str(i + 1),
                "first_name": g,
                "last_name": s,
                "display_name": f"{g} {s}",
                "email": f"{k}@contoso.se",
                "phones": [p],
                "tags": [],
                "sync_enabled": True,
            }
            for i, (k, g, s, p) in enumerate(PEOPLE)
        ],
        "ignored": [],
    }
    (tmp / "tenant.json").write_text(json.dumps(tenant))
    (tmp / "directory.json").write_text(json.dumps(directory))
    return {
        "bot": {"admins": [ADMIN]},
        "tenants": [{"name": "contoso", "simulate": "tenant.json", "directory": "main"}],
        "directories": [{"name": "main", "kind": "builtin", "seed_file": "directory.json"}],
    }


@pytest.fixture
async def real(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[tuple[Rig, SyncService]]:
    config = config_from_dict(write_files(tmp_path), base_dir=tmp_path)
    env = EnvSettings(MICROSOFT_APP_ID=None)
    t = FakeTime()
    service = SyncService(
        config=config,
        env=env,
        redis=fakeredis.FakeAsyncRedis(),
        keys=Keys(prefix="t:real:"),
        clock=now_fixed,
        sleep=t.sleep,
    )
    await service.start(scheduler=False)
    async with FakeConnector.serve() as fc:
        app = create_app(
            env=env,
            service=service,
            parts=AppParts(clock=now_fixed, sleep=t.sleep, monotonic=t.monotonic),
            manage_service=False,
        )
        client = await aiohttp_client(app)
        yield Rig(client=client, fc=fc, service=service, time=t), service  # type: ignore[arg-type]
    await service.stop()


async def test_real_service_accept_flow_applies_once_and_updates_status(
    real: tuple[Rig, SyncService],
) -> None:
    rig, service = real
    status, _ = await rig.post(activity("installationUpdate", rig.fc, action="add"))
    assert status == 200

    await rig.post(message(rig.fc, "<at>Entra Sync</at> sync now"))
    accepts = [a for c in rig.fc.cards("POST") for a in executes(c) if a["verb"] == "accept"]
    assert len(accepts) == 2, card_texts(rig.fc.cards("POST")[-1])

    data = accepts[0]["data"]
    status, body = await rig.post(invoke(rig.fc, "accept", data))
    assert status == 200
    texts = card_texts(body["value"])
    assert "Ann Admin" in texts and "14:02" in texts
    item = await service.item(data["pid"])
    assert item is not None and item.state.value in ("accepted", "applied")

    status, body = await rig.post(invoke(rig.fc, "accept", data))  # double click
    assert status == 200
    assert "no longer pending" in card_texts(body["value"])
    audit = [e.to_dict()["action"] for e in await service.audit(50)]
    assert sum(1 for a in audit if a in ("accept", "accepted", "applied")) <= 2

    status, body = await rig.post(invoke(rig.fc, "accept", accepts[1]["data"], aad=OTHER))
    assert status == 200
    assert "Only admins" in card_texts(body["value"])
    other = await service.item(accepts[1]["data"]["pid"])
    assert other is not None and other.state.value == "pending"

    await rig.post(message(rig.fc, "status"))
    status_text = card_texts(rig.fc.cards("POST")[-1])
    assert "Match 1" in status_text


async def test_real_service_forged_digest_is_refused(real: tuple[Rig, SyncService]) -> None:
    rig, service = real
    await rig.post(activity("installationUpdate", rig.fc, action="add"))
    await rig.post(message(rig.fc, "sync now"))
    data = next(a for c in rig.fc.cards("POST") for a in executes(c) if a["verb"] == "accept")[
        "data"
    ]
    status, body = await rig.post(invoke(rig.fc, "accept", {**data, "d": "forged"}))
    assert status == 200
    assert "not known" in card_texts(body["value"])
    item = await service.item(data["pid"])
    assert item is not None and item.state.value == "pending"
