"""Issue 19, the attacks on the HTTP surface, through real HTTP to the running app: a web page
driving local mode (cross-site ``text/plain`` POST, DNS rebinding, browser origins, an
attacker's ``serviceUrl``), bodies that used to give a 500, and slow connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from aiohttp import web

from bot.app import AppParts, Limits, create_app
from sync.config import BotSettings, Config, EnvSettings
from sync.state.keys import Keys
from sync.state.store import StateStore
from tests.component.bot_fake_service import FakeSyncService, now_fixed
from tests.component.fake_connector import FakeConnector
from tests.component.test_bot_flow import CHANNEL, FakeTime, Rig, activity, make_rig, message

pytestmark = pytest.mark.usefixtures("no_tracebacks")


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector.serve() as fc:
        yield fc


async def _stored(rig: Rig) -> dict[Any, Any]:
    return {
        "conversations": await rig.service.conversations.conversation(CHANNEL),
        "notify": await rig.service.conversations.notify_channel(),
    }


async def test_a_cross_site_text_plain_post_is_refused_with_415_and_touches_nothing(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector)
    async with FakeConnector.serve() as attacker:
        body = json.dumps(message(attacker, "pending"))
        resp = await rig.client.post(
            "/api/messages", data=body, headers={"Content-Type": "text/plain"}
        )
        assert resp.status == 415
        assert attacker.posts == []
    assert await _stored(rig) == {"conversations": None, "notify": None}


async def test_a_rebound_host_header_is_refused_with_421(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector)
    resp = await rig.client.post(
        "/api/messages",
        json=message(connector, "pending"),
        headers={"Host": "attacker.example:3978"},
    )
    assert resp.status == 421
    assert connector.posts == []
    assert await _stored(rig) == {"conversations": None, "notify": None}


async def test_a_browser_origin_is_refused_but_the_playgrounds_own_is_served(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector)
    evil = await rig.client.post(
        "/api/messages",
        json=message(connector, "help"),
        headers={"Origin": "https://attacker.example"},
    )
    assert evil.status == 403
    assert connector.posts == []
    ok = await rig.client.post(
        "/api/messages",
        json=message(connector, "help"),
        headers={"Origin": "http://127.0.0.1:56150"},
    )
    assert ok.status == 200
    assert len(connector.posts) == 1


async def test_an_attackers_service_url_in_local_mode_gets_nothing(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector)
    body = message(connector, "pending")
    body["serviceUrl"] = "http://collector.attacker.example/"
    resp = await rig.client.post("/api/messages", json=body)
    assert resp.status == 200
    assert connector.posts == []
    assert await _stored(rig) == {"conversations": None, "notify": None}


async def test_deeply_nested_json_is_a_400_not_a_500(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector)
    deep = "[" * 200_000 + "]" * 200_000
    resp = await rig.client.post(
        "/api/messages", data=deep, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400


async def test_an_integer_of_5000_digits_is_a_400_not_a_500(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector)
    raw = '{"type": "message", "text": "status", "id": ' + "7" * 5000 + "}"
    resp = await rig.client.post(
        "/api/messages", data=raw, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert connector.posts == []


# --- slow connections ---------------------------------------------------------------------------


async def _server(aiohttp_server: Any, limits: Limits) -> Any:
    store = StateStore(fakeredis.FakeAsyncRedis(), Keys(prefix="t:slow:"), clock=now_fixed)
    config = Config(bot=BotSettings(admins=("aad-admin",)))
    service = FakeSyncService(config=config, store=store, clock=now_fixed)
    t = FakeTime()
    app: web.Application = create_app(
        env=EnvSettings(MICROSOFT_APP_ID=None),
        service=service,
        parts=AppParts(clock=now_fixed, sleep=t.sleep, monotonic=t.monotonic, limits=limits),
    )
    return await aiohttp_server(app, **limits.server_settings())


async def test_a_connection_that_never_finishes_its_headers_is_closed(
    aiohttp_server: Any,
) -> None:
    server = await _server(aiohttp_server, Limits(header_timeout=0.5, body_timeout=5))
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line
    await writer.drain()
    started = asyncio.get_running_loop().time()
    data = await asyncio.wait_for(reader.read(), timeout=5)  # EOF: the server closed it
    waited = asyncio.get_running_loop().time() - started
    assert data == b""
    assert waited < 3
    writer.close()


async def test_a_body_that_never_arrives_is_answered_408(aiohttp_server: Any) -> None:
    server = await _server(aiohttp_server, Limits(header_timeout=5, body_timeout=0.5))
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    assert status_line.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_strangers_tenant_installing_in_local_mode_sets_nothing(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector, admins=())
    stranger = "0bad0bad-0000-4000-8000-00000000beef"
    body = activity(
        "installationUpdate",
        connector,
        action="add",
        conversation={"id": CHANNEL, "conversationType": "channel", "tenantId": stranger},
        channelData={"team": {"id": "19:x@thread.tacv2"}, "tenant": {"id": stranger}},
    )
    resp = await rig.client.post("/api/messages", json=body)
    assert resp.status == 200
    assert connector.posts == []
    assert await _stored(rig) == {"conversations": None, "notify": None}
