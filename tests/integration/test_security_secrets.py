"""Secrets (issue 6): client secrets are encrypted at rest in Redis (Fernet, key from
ENTRA_SYNC_SECRET_KEY), never logged, never shown in a card, never in the audit trail.

One whole flow with known secrets, logging at DEBUG for every logger (MSAL, httpx, httpcore,
aiohttp, the Bot Framework SDK, ours): install, ``connect`` with a wrong then the right client
secret (typed into the connect card), a configured tenant whose secret comes from its
environment variable, ``sync now``, decisions, status/audit/pending/settings, a restart that
reads the stored secret back, and ``audit export`` in both formats. Then every log line
(with tracebacks), every activity the fake Teams connector received, every invoke answer,
every Redis key and value, and both exports are scanned for every secret, in the forms it
could take on the way (plain, URL-encoded, JSON-escaped, base64).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import EnvSettings
from sync.devtools.simulator import TenantSim
from sync.errors import StateError
from sync.models import Kind
from sync.service.runner import export_audit
from sync.service.service import SyncService
from sync.state.keys import Keys
from sync.state.secrets import SecretBox
from tests.component.real_rig import (
    ADMIN,
    ENTRA_SECRET,
    Rig,
    claim_redis_db,
    dir_user,
    entra_user,
    every_kind_world,
    make_service,
    real_bot,
    redis_values,
    serve_entra,
    simulated_entra,
    write_world,
)
from tests.component.test_bot_flow import activity, card_texts, executes, invoke, message

pytestmark = pytest.mark.redis

CONNECT_SECRET = "Zx8~Q.connect-secret_VALUE+/=with&odd?chars"
WRONG_SECRET = "Wr0ng~secret-ID_not-the-value+/="
CONNECT_CLIENT = "7d1a2b3c-0000-4000-8000-00000000c0de"
FERNET_KEY = "ka5dX4mh1pQq0rYbqO8nmD0i3yR6uGzE2d9X7cV1bN8="


def forms(secret: str) -> list[bytes]:
    """The shapes a secret could take on its way to a log line, a body or a store."""
    raw = secret.encode()
    return [
        raw,
        quote(secret, safe="").encode(),
        quote_plus(secret).encode(),
        json.dumps(secret)[1:-1].encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


SECRETS = {
    "connect secret": CONNECT_SECRET,
    "wrong connect secret": WRONG_SECRET,
    "configured tenant's secret": ENTRA_SECRET,
    "encryption key": FERNET_KEY,
}


def leaks(blob: bytes) -> list[str]:
    return [name for name, s in SECRETS.items() if any(f in blob for f in forms(s))]


@dataclass
class Capture:
    """Everything the flow produced that a person or another system could see."""

    replies: list[Any] = field(default_factory=list)  # invoke answers

    def add(self, body: Any) -> Any:
        self.replies.append(body)
        return body


@pytest.fixture
def db() -> Iterator[int]:
    with claim_redis_db() as n:
        yield n


def _env(db: int) -> EnvSettings:
    return EnvSettings(
        MICROSOFT_APP_ID=None,
        REDIS_URL=f"redis://127.0.0.1:6379/{db}",
        ENTRA_SYNC_SECRET_KEY=SecretStr(FERNET_KEY),
    )


@pytest.fixture
async def flow(
    aiohttp_client: Any,
    tmp_path: Path,
    db: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[tuple[Rig, SyncService, Capture, aioredis.Redis]]:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    monkeypatch.setenv("CONTOSO_SECRET", ENTRA_SECRET)
    tenant, directory = every_kind_world()
    # the tenant an admin connects from Teams (directory "main"); its token endpoint checks
    # CONNECT_CLIENT / CONNECT_SECRET
    connected = TenantSim(tenant, client_id=CONNECT_CLIENT, client_secret=CONNECT_SECRET)
    redis = aioredis.Redis.from_url(f"redis://127.0.0.1:6379/{db}")
    async with serve_entra([entra_user("olga", "Olga", "Ohm", "+46701239900")]) as configured:
        cfg = write_world(tmp_path, tenant, directory)
        # a configured tenant (secret from $CONTOSO_SECRET) feeding a second directory
        (tmp_path / "other.json").write_text(
            json.dumps({"users": [dir_user("9", "Olga", "Ohm", "+46701239900")], "ignored": []})
        )
        cfg["tenants"] = [{**configured.tenant_config(), "directory": "other"}]
        cfg["directories"].append({"name": "other", "kind": "builtin", "seed_file": "other.json"})
        svc = make_service(tmp_path, cfg, redis=redis, keys=Keys(), env=_env(db))
        await svc.start(scheduler=False)
        try:
            async with (
                simulated_entra(monkeypatch, connected),
                real_bot(aiohttp_client, svc, env=_env(db)) as rig,
            ):
                yield rig, svc, Capture(), redis
        finally:
            await svc.stop()
            await redis.aclose()


async def _run_the_whole_flow(
    rig: Rig, svc: SyncService, cap: Capture, tmp_path: Path, db: int
) -> list[str]:
    """Returns both audit exports."""
    fc = rig.fc
    assert (await rig.post(activity("installationUpdate", fc, action="add")))[0] == 200
    await rig.post(message(fc, "connect"))
    connect_card = fc.cards("POST")[-1]
    assert "client_secret" in json.dumps(connect_card)

    data = {"pid": "connect", "d": "", "tenant_id": "contoso.onmicrosoft.com"}
    _, body = await rig.post(
        invoke(
            fc, "connect_save", {**data, "client_id": CONNECT_CLIENT, "client_secret": WRONG_SECRET}
        )
    )
    cap.add(body)
    assert "7000215" in card_texts(body["value"])  # the wrong secret was refused, and said so

    _, body = await rig.post(
        invoke(
            fc,
            "connect_save",
            {**data, "client_id": CONNECT_CLIENT, "client_secret": CONNECT_SECRET},
        )
    )
    cap.add(body)
    assert "Connected" in card_texts(body["value"])

    await rig.post(message(fc, "sync now"))
    items = await svc.pending()
    assert {i.tenant for i in items} == {"entra", "contoso"}
    for kind, verb, inputs in (
        (Kind.MATCH, "accept", {}),
        (Kind.NEW, "create", {}),
        (Kind.UPDATE, "ignore", {}),
        (Kind.CONFLICT, "pick_owner", {"owner": "e-eve"}),
    ):
        item = next(i for i in items if i.kind is kind and i.tenant == "entra")
        _, body = await rig.post(invoke(fc, verb, {"pid": item.id, "d": item.digest, **inputs}))
        cap.add(body)
        assert "no longer pending" not in card_texts(body["value"])
    for text in ("status", "audit", "pending", "settings", "ignored", "preview", "help"):
        assert (await rig.post(message(fc, text)))[0] == 200
    accept_all = {"pid": "pending", "d": ""}
    cap.add((await rig.post(invoke(fc, "accept_all", accept_all)))[1])

    # a restart: the stored secret is read back with the key from the environment
    again = SyncService(
        config=svc.live.file,
        env=_env(db),
        redis=svc.redis,
        keys=Keys(),
        clock=svc.clock,
        sleep=svc.sleep,
    )
    await again.start(scheduler=False)
    try:
        assert "entra" in again.tenants
        results = await again.run_sync("entra")
        assert [r.status for r in results] == ["ok"]
    finally:
        await again.stop()

    env = _env(db)
    return [await export_audit(None, "json", env=env), await export_audit(None, "csv", env=env)]


async def test_no_secret_reaches_a_log_line_a_card_the_store_or_the_audit_export(
    flow: tuple[Rig, SyncService, Capture, aioredis.Redis],
    tmp_path: Path,
    db: int,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rig, svc, cap, redis = flow
    exports = await _run_the_whole_flow(rig, svc, cap, tmp_path, db)

    fmt = logging.Formatter("%(levelname)s %(name)s %(message)s")
    lines = [fmt.format(r) for r in caplog.records]
    assert len(lines) > 50  # DEBUG from MSAL, httpx, the SDK and ours: the scan saw real logs
    assert any(r.name.startswith(("msal", "httpcore", "httpx")) for r in caplog.records)
    log_leaks = {name for line in lines for name in leaks(line.encode())}
    assert log_leaks == set()

    out, err = capsys.readouterr()
    assert leaks((out + err).encode()) == []

    activities = [json.dumps(r.body).encode() for r in (*rig.fc.recorded, *rig.fc.rejected)]
    assert len(activities) > 10
    assert [n for a in activities for n in leaks(a)] == []
    assert [n for b in cap.replies for n in leaks(json.dumps(b).encode())] == []

    values = await redis_values(redis, "es:")
    assert len(values) > 20
    assert [n for v in values for n in leaks(v)] == []

    for export in exports:
        assert "connect" in export  # the connection is audited...
        assert leaks(export.encode()) == []  # ...without its secret


async def test_the_client_secret_is_stored_encrypted_with_the_key_from_the_environment(
    flow: tuple[Rig, SyncService, Capture, aioredis.Redis],
) -> None:
    rig, _svc, _cap, redis = flow
    await rig.post(
        invoke(
            rig.fc,
            "connect_save",
            {
                "pid": "connect",
                "d": "",
                "tenant_id": "contoso.onmicrosoft.com",
                "client_id": CONNECT_CLIENT,
                "client_secret": CONNECT_SECRET,
            },
        )
    )
    stored: dict[bytes, bytes] = await redis.hgetall(Keys().credentials("entra"))  # type: ignore[misc,assignment]
    token = stored[b"secret"]
    assert token.startswith(b"gAAAAA")  # a Fernet token
    assert SecretBox(SecretStr(FERNET_KEY)).decrypt(token).get_secret_value() == CONNECT_SECRET
    other_key = SecretBox(SecretBox.generate_key())
    with pytest.raises(StateError) as info:
        other_key.decrypt(token)
    assert info.value.code == "secret_unreadable"
    assert stored[b"client_id"] == CONNECT_CLIENT.encode()  # ids are not secrets


async def test_the_connect_card_never_echoes_the_secret_back(
    flow: tuple[Rig, SyncService, Capture, aioredis.Redis],
) -> None:
    rig, _svc, _cap, _redis = flow
    _, body = await rig.post(
        invoke(
            rig.fc,
            "connect_save",
            {
                "pid": "connect",
                "d": "",
                "tenant_id": "t",
                "client_id": "",
                "client_secret": CONNECT_SECRET,
            },
        )
    )
    card = json.dumps(body)
    assert "client id is required" in card.lower()
    assert leaks(card.encode()) == []
    assert [a for a in executes(body["value"]) if a.get("verb") == "connect_save"]


async def test_no_admin_id_or_name_is_mistaken_for_a_secret(
    flow: tuple[Rig, SyncService, Capture, aioredis.Redis],
) -> None:
    """The scanner is not vacuous: a planted value is found in every form."""
    for f in forms(CONNECT_SECRET):
        assert leaks(b"xx" + f + b"yy") == ["connect secret"]
    assert leaks(ADMIN.encode()) == []
