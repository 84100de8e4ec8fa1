"""Per-user views (Universal Actions ``refresh.userIds``): the admins see an item card's
buttons, anyone else in the channel the same card read-only. Through the real route and the
fake Bot Connector, with the invoke shape Microsoft documents for user-specific views."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from bot import to_views
from bot.access import Access
from bot.adapter import TeamsAdapter
from sync.models import Kind
from sync.service.service import SyncService
from sync.state.keys import Keys
from tests.component.fake_connector import FakeConnector
from tests.component.real_rig import every_kind_world, make_service, real_bot, write_world
from tests.component.test_bot_flow import ADMIN, OTHER, TEAM, Rig, activity, executes

FIXTURE = (
    Path(__file__).parents[1] / "fixtures" / "teams" / "user-specific-views-refresh-invoke.json"
)
BUTTONS = {
    "accept",
    "ignore",
    "apply",
    "link",
    "create",
    "remove_sync",
    "delete_user",
    "pick_owner",
}


def refresh_invoke(fc: FakeConnector, pid: str, digest: str, *, aad: str) -> dict[str, Any]:
    """Microsoft's documented refresh invoke, in an activity envelope from ``aad``."""
    doc = json.loads(FIXTURE.read_text())
    doc.pop("_source")
    doc["value"]["action"]["data"] = {"pid": pid, "d": digest}
    return activity("invoke", fc, aad=aad, name=doc["name"], value=doc["value"])


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[SyncService]:
    tenant, directory = every_kind_world()
    s = make_service(
        tmp_path,
        write_world(tmp_path, tenant, directory),
        redis=fakeredis.FakeAsyncRedis(),
        keys=Keys("t:views:"),
    )
    await s.start(scheduler=False)
    await s.run_sync()
    yield s
    await s.stop()


async def verbs_after_refresh(rig: Rig, service: SyncService, aad: str) -> set[str]:
    item = next(i for i in await service.pending() if i.kind is Kind.MATCH)
    status, body = await rig.post(refresh_invoke(rig.fc, item.id, item.digest, aad=aad))
    assert status == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    return {
        a["verb"]
        for a in executes(body["value"])
        if a is not body["value"].get("refresh", {}).get("action")
    }


async def test_a_refresh_from_a_team_member_who_is_no_admin_returns_the_card_read_only(
    aiohttp_client: Any, service: SyncService
) -> None:
    async with real_bot(aiohttp_client, service) as rig:
        await rig.post(activity("installationUpdate", rig.fc, action="add"))
        rig.fc.add_member(TEAM, OTHER, "Olle Other")
        verbs = await verbs_after_refresh(rig, service, OTHER)
    assert not verbs & BUTTONS


async def test_a_refresh_from_an_admin_returns_the_card_with_its_buttons(
    aiohttp_client: Any, service: SyncService
) -> None:
    async with real_bot(aiohttp_client, service) as rig:
        await rig.post(activity("installationUpdate", rig.fc, action="add"))
        verbs = await verbs_after_refresh(rig, service, ADMIN)
    assert {"accept", "ignore"} <= verbs


async def test_the_audience_is_the_admins_teams_ids_from_the_roster_at_most_60() -> None:
    async with FakeConnector.serve() as fc:
        for n in range(70):
            fc.add_member(TEAM, f"aad-{n:02d}", f"Member {n}")
        ref = {"serviceUrl": fc.url, "conversation": {"id": TEAM}, "teamId": TEAM}

        class Refs:
            async def notify_channel(self) -> str:
                return TEAM

            async def conversation(self, conv_id: str) -> dict[str, Any]:
                return ref

        async def never(*_: Any) -> bool:
            return False

        def access(admins: tuple[str, ...]) -> Access:
            return Access(
                admins=lambda: admins,
                conversations=Refs(),
                membership=never,
                local_mode=False,
                clock=lambda: 0.0,
                roster=TeamsAdapter().members,
            )

        everyone = await access(()).card_audience()
        named = await access(("aad-07", "aad-nobody", "aad-03")).card_audience()
    assert everyone == tuple(f"29:aad-{n:02d}" for n in range(60))
    assert named == ("29:aad-07", "29:aad-03")


async def test_with_an_audience_the_posted_card_is_read_only_and_names_it_in_user_ids(
    service: SyncService,
) -> None:
    items = await service.pending()
    audience = tuple(f"29:aad-{n}" for n in range(70))
    cards = await to_views.proposal_cards(items, service.directory_choices, audience)
    for card, _pid in cards:
        assert card["refresh"]["userIds"] == list(audience[:60])
        assert card["refresh"]["action"]["verb"] == "refresh"
        assert [a["verb"] for a in card.get("actions", [])] == ["refresh"]  # "Show my actions"
    plain = await to_views.proposal_cards(items, service.directory_choices)
    assert all("userIds" not in c["refresh"] and c["actions"] for c, _ in plain)


async def test_in_local_mode_nobody_is_named_and_the_cards_keep_their_buttons() -> None:
    async def never(*_: Any) -> bool:
        return False

    class Refs:
        async def notify_channel(self) -> None:
            return None

        async def conversation(self, conv_id: str) -> None:
            return None

    local = Access(
        admins=lambda: (ADMIN,),
        conversations=Refs(),
        membership=never,
        local_mode=True,
        clock=lambda: 0.0,
        roster=TeamsAdapter().members,
    )
    assert await local.card_audience() == ()
