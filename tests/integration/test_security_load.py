"""Never a drop (issue 19, attack 6): 200 concurrent authenticated messages, 200 answered.

Credentialed mode through real HTTP to the running app: each message carries a Bot Framework
token signed with a local key and checked by the real SDK against the loopback OpenID metadata
(as in ``test_security_auth``); the real SyncService on the real Redis through the product's
bounded, blocking pool; every answer is a card posted to a fake Bot Connector over HTTP. Only
the bot's own sign-in for sending (an Entra token request) is stood in for, offline.

While the burst runs, ``/healthz`` is probed every 10 ms and a slow client opens a connection
whose headers never finish; the p99 of ``/healthz`` and the seconds until the slow connection
is closed are printed for the note (run with ``-s``), not asserted beyond sanity bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from botframework.connector.auth import AppCredentials, ServiceClientCredentialsFactory

from bot.adapter import ChannelSettings, TeamsAdapter
from bot.app import AppParts, Limits, create_app
from bot.service_urls import ServiceUrlPolicy
from sync.service.service import SyncService
from sync.state.keys import Keys
from tests.component.fake_connector import FakeConnector
from tests.component.real_rig import ADMIN, every_kind_world, make_service, write_world
from tests.integration.test_security_auth import (  # noqa: F401  (fixtures)
    APP_ID,
    LOOPBACK,
    TEAMS_TENANT,
    KeyPair,
    _env,
    metadata,
    sign,
    teams_activity,
    trusted,
    webchat_only,
)

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("no_tracebacks")]

BURST = 200


class OfflineCredentials(AppCredentials):  # type: ignore[misc]
    """The bot's Bot Connector credentials with the Entra token request stood in for."""

    def __init__(self) -> None:
        super().__init__(app_id=APP_ID)

    def get_access_token(self, force_refresh: bool = False) -> str:
        return "offline-bot-connector-token"


class OfflineCredentialsFactory(ServiceClientCredentialsFactory):  # type: ignore[misc]
    async def is_valid_app_id(self, app_id: str) -> bool:
        return app_id == APP_ID

    async def is_authentication_disabled(self) -> bool:
        return False

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        return OfflineCredentials()


@pytest.fixture
async def service(
    real_redis: aioredis.Redis, keys: Keys, tmp_path: Path
) -> AsyncIterator[SyncService]:
    tenant, directory = every_kind_world()
    cfg = write_world(
        tmp_path,
        tenant,
        directory,
        bot={"admins": [ADMIN], "tenants": [TEAMS_TENANT], "service_url_allow": [LOOPBACK]},
    )
    svc = make_service(tmp_path, cfg, redis=real_redis, keys=keys, env=_env())
    await svc.start(scheduler=False)
    yield svc
    await svc.stop()


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _slow_client(host: str, port: int) -> float:
    """Seconds until the server closes a connection whose request head never ends."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    await writer.drain()
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), timeout=60)
    writer.close()
    assert data == b""
    return time.monotonic() - started


async def test_200_concurrent_authenticated_messages_are_all_answered(
    aiohttp_server: Any,
    service: SyncService,
    metadata: Any,  # noqa: F811
    trusted: KeyPair,  # noqa: F811
) -> None:
    limits = Limits()
    async with FakeConnector.serve() as fc:
        adapter = TeamsAdapter(
            app_id=APP_ID,
            app_password="bot-password-not-used-offline",
            channel=ChannelSettings(),
            service_urls=ServiceUrlPolicy(local_mode=False, allow=(LOOPBACK,)),
        )
        adapter._credentials.inner = OfflineCredentialsFactory()
        app = create_app(
            env=_env(),
            service=service,
            parts=AppParts(clock=datetime.now, sleep=asyncio.sleep, limits=limits),
            adapter=adapter,
            manage_service=False,
        )
        server = await aiohttp_server(app, **limits.server_settings())
        base = f"http://{server.host}:{server.port}"
        auth = {"Authorization": f"Bearer {sign(trusted, fc.url)}"}
        done = asyncio.Event()
        healthz: list[float] = []

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def probe() -> None:
                while not done.is_set():
                    started = time.monotonic()
                    async with http.get(f"{base}/healthz") as resp:
                        assert resp.status == 200
                    healthz.append(time.monotonic() - started)
                    await asyncio.sleep(0.01)

            async def message(n: int) -> int:
                body = teams_activity("message", fc.url, TEAMS_TENANT, text="status")
                body["id"] = f"burst-{n}"
                # a conversation each: Teams' per-conversation pacing is not what is measured
                body["conversation"]["id"] = f"19:burst-{n}@thread.tacv2"
                async with http.post(f"{base}/api/messages", json=body, headers=auth) as resp:
                    await resp.read()
                    return resp.status

            slow = asyncio.create_task(_slow_client(server.host, server.port))
            prober = asyncio.create_task(probe())
            started = time.monotonic()
            statuses = await asyncio.gather(*(message(n) for n in range(BURST)))
            responded_s = time.monotonic() - started
            deadline = time.monotonic() + 60
            while len(fc.posts) < BURST and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            burst_s = time.monotonic() - started
            done.set()
            await prober
            slow_closed_s = await slow

    assert statuses == [200] * BURST
    answered = sorted(p.conversation for p in fc.posts if p.conversation.startswith("19:burst-"))
    assert answered == sorted(f"19:burst-{n}@thread.tacv2" for n in range(BURST))
    assert slow_closed_s < limits.header_timeout + 5
    print(
        f"\nFIGURES burst={BURST}: HTTP 200 for all in {responded_s:.2f}s, "
        f"{len(answered)} answered in {burst_s:.2f}s; "
        f"/healthz p99={_p99(healthz) * 1000:.0f} ms over {len(healthz)} probes "
        f"(max {max(healthz) * 1000:.0f} ms); "
        f"slow connection closed after {slow_closed_s:.1f}s"
    )
