"""The bot end to end through the real aiohttp route, Teams-shaped activities, and a fake Bot
Connector over HTTP: installation -> sync now -> cards -> Accept -> double click -> non-admin
-> status."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
from aiohttp.test_utils import TestClient

from bot.access import LOCAL_TENANT
from bot.app import AppParts, create_app
from sync.config import BotSettings, Config, EnvSettings
from sync.state.keys import Keys
from sync.state.store import StateStore
from tests.component.bot_fake_service import FakeSyncService, now_fixed
from tests.component.fake_connector import FakeConnector

CHANNEL = "19:admins@thread.tacv2"
TEAM = "19:team@thread.tacv2"
ADMIN = "aad-admin"
OTHER = "aad-other"


@dataclass
class FakeTime:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


_ids = itertools.count(1)


def activity(
    kind: str, fc: FakeConnector, *, aad: str = ADMIN, conv: str = CHANNEL, **kw: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "id": f"in-{next(_ids)}",
        "channelId": "msteams",
        "serviceUrl": fc.url,
        "from": {
            "id": f"29:{aad}",
            "aadObjectId": aad,
            "name": "Ann Admin" if aad == ADMIN else "Olle Other",
        },
        "recipient": {"id": "28:bot", "name": "Entra Sync"},
        "conversation": {"id": conv, "conversationType": "channel", "tenantId": LOCAL_TENANT},
        "channelData": {"team": {"id": TEAM}, "tenant": {"id": LOCAL_TENANT}},
        **kw,
    }


def message(fc: FakeConnector, text: str, **kw: Any) -> dict[str, Any]:
    return activity("message", fc, text=text, **kw)


def invoke(fc: FakeConnector, verb: str, data: Any, **kw: Any) -> dict[str, Any]:
    return activity(
        "invoke",
        fc,
        name="adaptiveCard/action",
        value={"action": {"type": "Action.Execute", "verb": verb, "data": data}},
        **kw,
    )


@dataclass
class Rig:
    client: TestClient
    fc: FakeConnector
    service: FakeSyncService
    time: FakeTime

    async def post(self, body: Any) -> tuple[int, Any]:
        resp = await self.client.post("/api/messages", json=body)
        text = await resp.text()
        import json

        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
        return resp.status, data


@pytest.fixture
async def connector() -> AsyncIterator[FakeConnector]:
    async with FakeConnector.serve() as fc:
        yield fc


async def make_rig(
    aiohttp_client: Any,
    fc: FakeConnector,
    *,
    admins: tuple[str, ...] = (ADMIN,),
    max_cards: int = 5,
) -> Rig:
    redis = fakeredis.FakeAsyncRedis()
    store = StateStore(redis, Keys(prefix="t:bot:"), clock=now_fixed)
    config = Config(bot=BotSettings(admins=admins, max_cards_per_run=max_cards))
    service = FakeSyncService(config=config, store=store, clock=now_fixed)
    t = FakeTime()
    app = create_app(
        env=EnvSettings(MICROSOFT_APP_ID=None),
        service=service,
        parts=AppParts(clock=now_fixed, sleep=t.sleep, monotonic=t.monotonic),
    )
    client = await aiohttp_client(app)
    return Rig(client=client, fc=fc, service=service, time=t)


@pytest.fixture
async def rig(aiohttp_client: Any, connector: FakeConnector) -> Rig:
    return await make_rig(aiohttp_client, connector)


def card_texts(card: dict[str, Any]) -> str:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, val in node.items():
                if k in ("text", "title", "value") and isinstance(val, str):
                    out.append(val)
                else:
                    walk(val)
        elif isinstance(node, list):
            for x in node:
                walk(x)

    walk(card)
    return " ".join(out)


def executes(card: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Execute":
                found.append(node)
            for val in node.values():
                walk(val)
        elif isinstance(node, list):
            for x in node:
                walk(x)

    walk(card)
    return found


async def install(rig: Rig) -> None:
    status, _ = await rig.post(activity("installationUpdate", rig.fc, action="add"))
    assert status == 200


async def test_the_whole_approval_flow_from_installation_to_status(rig: Rig) -> None:
    await install(rig)
    assert await rig.service.conversations.notify_channel() == CHANNEL

    status, _ = await rig.post(message(rig.fc, "<at>Entra Sync</at> Sync   NOW"))
    assert status == 200
    posted = rig.fc.cards("POST")
    accepts = [a for c in posted for a in executes(c) if a["verb"] == "accept"]
    assert len(accepts) == 3  # one match card per new item

    data = accepts[0]["data"]
    status, body = await rig.post(invoke(rig.fc, "accept", data))
    assert status == 200
    assert body["statusCode"] == 200
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "Ann Admin" in card_texts(body["value"]) and "14:02" in card_texts(body["value"])
    assert not [a for a in executes(body["value"]) if a["verb"] != "refresh"]
    assert rig.service.applied == [(data["pid"], "accept", ADMIN)]
    # the posted card was updated in place (listener)
    assert any(r.activity_id for r in rig.fc.puts)

    status, body = await rig.post(invoke(rig.fc, "accept", data))  # double click
    assert status == 200
    assert "Ann Admin" in card_texts(body["value"])
    assert len(rig.service.applied) == 1

    other = accepts[1]["data"]
    status, body = await rig.post(invoke(rig.fc, "accept", other, aad=OTHER))
    assert status == 200
    assert "Only admins" in card_texts(body["value"])
    assert len(rig.service.applied) == 1

    before = len(rig.fc.posts)
    await rig.post(message(rig.fc, "status"))
    status_card = rig.fc.cards("POST")[-1]
    assert len(rig.fc.posts) == before + 1
    assert "1/3 synced" in card_texts(status_card)
    assert "Match 2" in card_texts(status_card)


async def test_non_admin_command_that_changes_state_is_refused(rig: Rig) -> None:
    await install(rig)
    await rig.post(message(rig.fc, "sync now", aad=OTHER))
    assert rig.service.items == {}
    assert "Only admins" in card_texts(rig.fc.cards("POST")[-1])


async def test_unknown_input_is_answered_with_help(rig: Rig) -> None:
    await rig.post(message(rig.fc, "<at>Bot</at> what can you do?"))
    assert "sync now" in card_texts(rig.fc.cards("POST")[-1])


async def test_stale_digest_refreshes_card_and_applies_nothing(rig: Rig) -> None:
    await install(rig)
    await rig.post(message(rig.fc, "sync now"))
    data = executes(rig.fc.cards("POST")[0])[0]["data"]
    status, body = await rig.post(invoke(rig.fc, "accept", {**data, "d": "old-digest"}))
    assert status == 200
    assert rig.service.applied == []
    assert any(a["data"]["d"] != "old-digest" for a in executes(body["value"]))


async def test_forged_pid_gets_a_refusal_not_a_500(rig: Rig) -> None:
    status, body = await rig.post(invoke(rig.fc, "accept", {"pid": "nope", "d": "x"}))
    assert status == 200
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    assert rig.service.applied == []


async def test_many_new_items_post_one_digest_card(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector)
    rig.service.entra_count = 40
    await install(rig)
    before = len(connector.posts)
    await rig.post(message(connector, "sync now"))
    new_posts = connector.posts[before:]
    assert len(new_posts) == 2  # the summary reply and one digest card
    verbs = [a["verb"] for a in executes(connector.cards("POST")[-1]) if a["verb"] != "refresh"]
    assert verbs == ["accept_all", "page"]  # Accept all matches, Next


async def test_accept_all_decides_every_match_and_updates_their_cards(rig: Rig) -> None:
    await install(rig)
    await rig.post(message(rig.fc, "sync now"))
    signed = await rig.service.digest("digest:x")
    status, body = await rig.post(invoke(rig.fc, "accept_all", {"pid": "digest:x", "d": signed}))
    assert status == 200
    assert "3 matches accepted by Ann Admin" in card_texts(body["value"])
    assert len(rig.service.applied) == 3
    assert len(rig.fc.puts) == 3


@pytest.mark.parametrize("verb", ["accept_all", "apply_all"])
async def test_digest_button_whose_data_does_not_verify_is_refused(rig: Rig, verb: str) -> None:
    await install(rig)
    await rig.post(message(rig.fc, "sync now"))
    status, body = await rig.post(invoke(rig.fc, verb, {"pid": "digest:x", "d": "3"}))
    assert status == 200
    assert "not known" in card_texts(body["value"])
    assert rig.service.applied == []


async def test_notify_here_moves_the_notification_channel(rig: Rig) -> None:
    await install(rig)
    await rig.post(message(rig.fc, "notify here", conv="19:other@thread.tacv2"))
    assert await rig.service.conversations.notify_channel() == "19:other@thread.tacv2"


async def test_every_activity_refreshes_the_stored_service_url(rig: Rig) -> None:
    await install(rig)
    moved = message(rig.fc, "help")
    moved["serviceUrl"] = rig.fc.url + "moved/"
    await rig.post(moved)
    ref = await rig.service.conversations.conversation(CHANNEL)
    assert ref is not None and ref["serviceUrl"].endswith("/moved/")


async def test_connect_never_echoes_the_secret(rig: Rig) -> None:
    data = {
        "pid": "connect",
        "d": "",
        "tenant_id": "tid",
        "client_id": "cid",
        "client_secret": "s3cr3t-value",
    }
    status, body = await rig.post(invoke(rig.fc, "connect_save", data))
    assert status == 200
    assert "s3cr3t-value" not in str(body)
    assert rig.service.connected_with == [("tid", "cid", "s3cr3t-value")]


async def test_settings_validation_errors_show_in_the_card(rig: Rig) -> None:
    status, body = await rig.post(
        invoke(rig.fc, "settings_save", {"pid": "settings", "d": "", "mode": "weekly"})
    )
    assert status == 200
    assert "choose manual, daily or interval" in card_texts(body["value"])


async def test_disconnect_asks_before_it_acts(rig: Rig) -> None:
    await rig.post(message(rig.fc, "disconnect"))
    assert rig.service.disconnected == 0
    buttons = executes(rig.fc.cards("POST")[-1])
    assert [a["verb"] for a in buttons] == ["disconnect_confirm", "disconnect_cancel"]
    await rig.post(invoke(rig.fc, "disconnect_confirm", buttons[0]["data"]))
    assert rig.service.disconnected == 1
    await rig.post(invoke(rig.fc, "disconnect_confirm", buttons[0]["data"]))
    assert rig.service.disconnected == 1  # a confirmation works once


async def test_disconnect_confirm_without_an_issued_confirmation_is_refused(rig: Rig) -> None:
    await rig.post(message(rig.fc, "disconnect"))
    status, body = await rig.post(
        invoke(rig.fc, "disconnect_confirm", {"pid": "disconnect", "d": ""})
    )
    assert status == 200
    assert "not known" in card_texts(body["value"])
    assert rig.service.disconnected == 0


async def test_delete_user_asks_for_confirmation(rig: Rig) -> None:
    item = rig.service.add_removal()
    data = {"pid": item.id, "d": item.digest}
    status, body = await rig.post(invoke(rig.fc, "delete_user", data))
    assert status == 200
    assert rig.service.applied == []
    assert "delete_user_confirm" in [a["verb"] for a in executes(body["value"])]
    status, body = await rig.post(invoke(rig.fc, "delete_user_confirm", data))
    assert [pid for pid, verb, _ in rig.service.applied] == [item.id]


async def test_delete_user_confirm_without_the_confirmation_card_deletes_nothing(
    rig: Rig,
) -> None:
    item = rig.service.add_removal()
    data = {"pid": item.id, "d": item.digest}
    status, body = await rig.post(invoke(rig.fc, "delete_user_confirm", data))
    assert status == 200
    assert "not known" in card_texts(body["value"])
    assert rig.service.applied == []


async def test_retries_429_honouring_retry_after(rig: Rig) -> None:
    await install(rig)
    rig.fc.fail_next(2, status=429, retry_after=7)
    await rig.post(message(rig.fc, "help"))
    assert len(rig.fc.rejected) == 2
    assert rig.time.sleeps.count(7.0) == 2
    assert "sync now" in card_texts(rig.fc.cards("POST")[-1])


async def test_healthz_answers(rig: Rig) -> None:
    resp = await rig.client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["ok"] is True


async def test_without_configured_admins_the_installer_is_admin_in_local_mode(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector, admins=())
    await install(rig)
    await rig.post(message(connector, "sync now"))
    assert len(rig.service.items) == 3
    await rig.post(message(connector, "sync now", aad=OTHER))
    assert "Only" in card_texts(connector.cards("POST")[-1])


async def test_without_configured_admins_team_members_are_admins(
    aiohttp_client: Any, connector: FakeConnector
) -> None:
    rig = await make_rig(aiohttp_client, connector, admins=())
    await install(rig)
    connector.add_member(TEAM, OTHER)
    await rig.post(message(connector, "sync now", aad=OTHER))
    assert len(rig.service.items) == 3


async def test_the_team_entra_group_id_is_kept_with_the_channel_for_the_mail_link(rig: Rig) -> None:
    await install(rig)
    hello = message(rig.fc, "help")
    hello["channelData"]["team"]["aadGroupId"] = "6b3f9c2e-1a4d-4e8b-9f0a-2c5d7e8f9a1b"
    await rig.post(hello)
    ref = await rig.service.conversations.conversation(CHANNEL)
    assert ref is not None and ref["aadGroupId"] == "6b3f9c2e-1a4d-4e8b-9f0a-2c5d7e8f9a1b"
