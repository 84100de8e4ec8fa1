"""Logs an operator can use (issue 16): one line per run and per decision with their fields,
errors with their code and hint, no e-mail address or phone number at INFO (checked against
every address and number of the demo tenant and directory), and no secret anywhere.

The caplog tests drive the real service on the real Redis through the bot; the subprocess
test runs a real ``entra-sync serve`` with ``LOG_FORMAT=json`` and reads its stderr as JSON
lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from sync.config import EnvSettings, load_config
from sync.plan.phones import normalize
from sync.service.service import SyncService
from sync.state.keys import Keys
from tests.component.bot_fake_service import now_fixed
from tests.component.fake_connector import FakeConnector
from tests.component.real_rig import (
    ADMIN,
    ENTRA_SECRET,
    FakeTime,
    Rig,
    claim_redis_db,
    real_bot,
    serve_entra,
)
from tests.component.test_bot_flow import activity, executes, invoke, message

pytestmark = pytest.mark.redis

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"
ENTRY = Path(sys.executable).parent / "entra-sync"
STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def demo_personal_data() -> set[str]:
    """Every e-mail address and phone number of the demo tenant and directory: as written,
    in E.164 and in E.164 without the plus."""
    tenant = json.loads((DEMO / "tenant.json").read_text())["users"]
    directory = json.loads((DEMO / "directory.json").read_text())["users"]
    found: set[str] = set()
    phones: list[str] = []
    for u in tenant:
        found |= {u[k] for k in ("mail", "userPrincipalName") if u.get(k)}
        found |= set(u.get("otherMails") or [])
        phones += [u["mobilePhone"]] if u.get("mobilePhone") else []
        phones += list(u.get("businessPhones") or [])
    for d in directory:
        found |= {d["email"]} if d.get("email") else set()
        phones += list(d.get("phones") or [])
    for raw in phones:
        found.add(raw)
        e164 = normalize(raw, "SE")
        if e164:
            found |= {e164, e164.lstrip("+")}
    assert len(found) > 50  # the demo has 51 users: the check below means something
    return found


def extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in STANDARD}


def leaks(lines: Iterable[str], needles: Iterable[str]) -> list[str]:
    return sorted({n for line in lines for n in needles if n in line})


@pytest.fixture
async def demo(
    aiohttp_client: Any, real_redis: aioredis.Redis, keys: Keys
) -> AsyncIterator[tuple[Rig, SyncService]]:
    t = FakeTime()
    service = SyncService(
        config=load_config(str(DEMO / "config.toml")),
        env=EnvSettings(MICROSOFT_APP_ID=None),
        redis=real_redis,
        keys=keys,
        clock=now_fixed,
        sleep=t.sleep,
    )
    service.config = service.config.model_copy(
        update={"bot": service.config.bot.model_copy(update={"admins": [ADMIN]})}
    )
    await service.start(scheduler=False)
    try:
        async with real_bot(aiohttp_client, service, time=t) as rig:
            await rig.post(activity("installationUpdate", rig.fc, action="add"))
            yield rig, service
    finally:
        await service.stop()


async def card_data(service: SyncService, kind: str) -> dict[str, str]:
    """What an item card's buttons carry for the first pending item of ``kind`` (a run of
    more than five items posts one digest card; each item's card comes from it)."""
    item = next(i for i in await service.pending() if i.kind.value == kind)
    return {"pid": item.id, "d": item.digest}


async def test_a_demo_session_logs_a_run_line_and_decision_lines_with_their_fields(
    demo: tuple[Rig, SyncService], caplog: pytest.LogCaptureFixture
) -> None:
    rig, service = demo
    caplog.set_level(logging.INFO)
    await rig.post(message(rig.fc, "sync now"))
    pending_after_run = len(await service.pending())
    accept = await card_data(service, "match")
    await rig.post(invoke(rig.fc, "accept", accept))

    runs = [r for r in caplog.records if getattr(r, "event", None) == "run"]
    assert len(runs) == 1
    run = extras(runs[0])
    assert runs[0].levelno == logging.INFO
    assert (run["tenant"], run["directory"], run["mode"], run["outcome"]) == (
        "contoso",
        "main",
        "full",
        "ok",
    )
    assert run["trigger"] == "manual" and isinstance(run["duration_s"], float)
    assert run["counts"]["new_items"] > 0 and run["counts"]["syncable"] > 0
    assert run["pending"]["match"] > 0
    assert sum(run["pending"].values()) == pending_after_run
    assert "tenant=contoso" in runs[0].getMessage() and "outcome=ok" in runs[0].getMessage()

    decisions = [extras(r) for r in caplog.records if getattr(r, "event", None) == "decision"]
    assert decisions == [
        {
            "event": "decision",
            "actor": ADMIN,
            "verb": "accept",
            "outcome": "done",
            "kind": "match",
            "proposal_id": accept["pid"],
            "entra_id": decisions[0]["entra_id"],
            "app_user_id": decisions[0]["app_user_id"],
            "tenant": "contoso",
            "directory": "main",
        }
    ]
    item = await service.item(accept["pid"])
    assert item is not None
    assert decisions[0]["entra_id"] == item.proposal.entra_id
    assert decisions[0]["app_user_id"] == item.proposal.app_user_id


async def test_no_email_or_phone_number_of_the_demo_appears_at_info(
    demo: tuple[Rig, SyncService], caplog: pytest.LogCaptureFixture
) -> None:
    rig, service = demo
    caplog.set_level(logging.INFO)
    await rig.post(message(rig.fc, "sync now"))
    for verb, kind in (("accept", "match"), ("ignore", "new"), ("apply", "update")):
        await rig.post(invoke(rig.fc, verb, await card_data(service, kind)))
    for text in ("pending", "status", "audit", "sync anna.andersson@contoso.example"):
        await rig.post(message(rig.fc, text))

    info = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert any(getattr(r, "event", None) == "decision" for r in info)
    lines = [f"{r.getMessage()} {json.dumps(extras(r), default=str)}" for r in info]
    assert leaks(lines, demo_personal_data()) == []


async def test_a_failed_run_logs_a_warning_with_its_code_and_hint(
    demo: tuple[Rig, SyncService], caplog: pytest.LogCaptureFixture
) -> None:
    rig, service = demo
    sim = service.tenants["contoso"].sim
    assert sim is not None
    sim.faults.forbidden = True
    caplog.set_level(logging.INFO)
    await rig.post(message(rig.fc, "sync now"))

    runs = [r for r in caplog.records if getattr(r, "event", None) == "run"]
    assert [r.levelno for r in runs] == [logging.WARNING]
    run = extras(runs[0])
    assert run["outcome"] == "failed"
    assert run["error_code"] == "graph_permission_denied"
    assert "User.Read.All" in run["hint"]
    assert "error_code=graph_permission_denied" in runs[0].getMessage()


# --- a real `entra-sync serve`, LOG_FORMAT=json ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_up(
    http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    for _ in range(600):  # ~2 s to import and start; allow 30
        assert proc.poll() is None, f"serve exited: {log.read_text()[-2000:]}"
        try:
            async with http.get(url + "/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    pytest.fail("serve did not start")


async def test_serve_with_log_format_json_writes_json_lines_without_secrets_or_personal_data(
    tmp_path: Path,
) -> None:
    metrics_token = "metrics-token-0123456789abcdef-not-logged"
    fernet = "o0GfJ0kV2mX0jz3e5m3wqgQp3dY6P1a1r8x1m2bYk3Q="
    demo_users = json.loads((DEMO / "tenant.json").read_text())["users"]
    async with serve_entra(demo_users) as entra, FakeConnector.serve() as fc:
        tenant = {**entra.tenant_config(), "name": "contoso"}
        config = tmp_path / "config.toml"
        config.write_text(
            '[matching]\ndefault_region = "SE"\n'
            f'[bot]\nadmins = ["{ADMIN}"]\nmax_cards_per_run = 50\n'
            "[[tenants]]\n"
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in tenant.items())
            + '[[directories]]\nname = "main"\nkind = "builtin"\n'
            + f"seed_file = {json.dumps(str(DEMO / 'directory.json'))}\n"
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with claim_redis_db() as db:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MICROSOFT_", "LOG_"))}
            env.update(
                REDIS_URL=f"redis://127.0.0.1:6379/{db}",
                CONTOSO_SECRET=ENTRA_SECRET,
                ENTRA_SYNC_SECRET_KEY=fernet,
                ENTRA_SYNC_METRICS_TOKEN=metrics_token,
                LOG_FORMAT="json",
                LOG_LEVEL="INFO",
            )
            stderr = tmp_path / "serve.log"
            proc = subprocess.Popen(
                [str(ENTRY), "serve", "--config", str(config), "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr.open("wb"),
            )
            try:
                async with aiohttp.ClientSession() as http:
                    await wait_up(http, url, proc, stderr)
                    rig_fc = fc

                    async def post(body: dict[str, Any]) -> None:
                        async with http.post(url + "/api/messages", json=body) as resp:
                            assert resp.status == 200

                    await post(activity("installationUpdate", rig_fc, action="add"))
                    await post(message(rig_fc, "sync now"))
                    accept = next(
                        a["data"]
                        for c in rig_fc.cards("POST")
                        for a in executes(c)
                        if a["verb"] == "accept"
                    )
                    await post(invoke(rig_fc, "accept", accept))
                    auth = {"Authorization": f"Bearer {metrics_token}"}
                    async with http.get(url + "/metrics", headers=auth) as resp:
                        assert resp.status == 200
            finally:
                proc.terminate()
                proc.wait(timeout=15)

    raw = stderr.read_text()
    records = [json.loads(line) for line in raw.splitlines() if line.strip()]  # all JSON
    assert all({"level", "name", "message", "timestamp"} <= r.keys() for r in records)
    run = next(r for r in records if r.get("event") == "run")
    assert (run["tenant"], run["mode"], run["outcome"], run["level"]) == (
        "contoso",
        "full",
        "ok",
        "INFO",
    )
    assert run["counts"]["new_items"] > 0 and run["pending"]["match"] > 0
    assert isinstance(run["duration_s"], float)
    decision = next(r for r in records if r.get("event") == "decision")
    assert (decision["actor"], decision["verb"], decision["kind"]) == (ADMIN, "accept", "match")
    assert decision["proposal_id"] == accept["pid"]
    # secrets nowhere (any level); personal data not at INFO
    assert leaks([raw], [metrics_token, fernet, ENTRA_SECRET]) == []
    info = [json.dumps(r) for r in records if r["level"] in ("INFO", "WARNING", "ERROR")]
    assert leaks(info, demo_personal_data()) == []
