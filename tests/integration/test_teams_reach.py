"""Every item reachable (issue 17 part B), over the real service, the bot's real route and the
real Redis on 127.0.0.1:6379 (each test its own key prefix): `pending` pages through all items
with Next/Previous, digests say how many more there are, `sync <name>` reaches a pending
removal, one order everywhere, the greeting is posted once whatever the race, and the daily
reminder is posted once a day however many replicas tick."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.installation import GREETING, Installations
from bot.turn import Turn
from sync.service.reminders import Reminder
from sync.service.service import SyncService
from sync.state.admin import Conversations
from sync.state.keys import Keys
from tests.component.bot_fake_service import now_fixed
from tests.component.real_rig import (
    Rig,
    dir_user,
    entra_user,
    every_kind_world,
    make_service,
    real_bot,
    write_world,
)
from tests.component.test_bot_flow import activity, card_texts, executes, invoke, message

NEW_USERS = 27  # 10 on a page: pages of 10, 10 and 7


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def many_new_world() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """27 Entra users nobody in the directory matches (27 new-user items), named so that the
    order by name differs from the order of their ids, plus one pending removal."""
    names = [f"{chr(ord('A') + (i * 7) % 26)}{'a' * (1 + i % 3)} User{i:02d}" for i in range(27)]
    tenant = [
        entra_user(f"n{i:02d}", n.split()[0], n.split()[1], f"+467012{i:05d}")
        for i, n in enumerate(names)
    ]
    directory = [
        dir_user("9", "Gus", "Gone", "+46701299999", email="gus@contoso.se", entra_id="e-gone")
    ]
    return tenant, directory


@pytest.fixture
async def service(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> AsyncIterator[SyncService]:
    tenant, directory = many_new_world()
    cfg = write_world(tmp_path, tenant, directory)
    svc = make_service(tmp_path, cfg, redis=real_redis, keys=keys)
    await svc.start(scheduler=False)
    yield svc
    await svc.stop()


@pytest.fixture
async def rig(aiohttp_client: Any, service: SyncService) -> AsyncIterator[Rig]:
    async with real_bot(aiohttp_client, service) as r:
        await r.post(activity("installationUpdate", r.fc, action="add"))
        yield r


def bullets(card: dict[str, Any]) -> list[str]:
    """The names of a digest card's item lines ("• **New** · Name"), in order."""
    out = []
    for block in card.get("body", []):
        m = re.match(r"^\u2022 \*\*\w+\*\* \u00b7 (.+)$", str(block.get("text", "")))
        if m:
            out.append(m.group(1).replace("\\", ""))
    return out


def button(card: dict[str, Any], title: str) -> dict[str, Any]:
    found = [a for a in executes(card) if a.get("title") == title]
    assert found, f"no {title} button on the card: {card_texts(card)}"
    return found[0]


async def press(rig: Rig, action: dict[str, Any]) -> dict[str, Any]:
    status, body = await rig.post(invoke(rig.fc, action["verb"], action["data"]))
    assert status == 200
    card: dict[str, Any] = body["value"]
    return card


async def pending_digest(rig: Rig) -> dict[str, Any]:
    before = len(rig.fc.cards("POST"))
    await rig.post(message(rig.fc, "pending"))
    posted = rig.fc.cards("POST")[before:]
    assert len(posted) == 1, "pending with many items answers with one digest card"
    return posted[0]


async def test_pending_pages_through_every_item_with_next(rig: Rig, service: SyncService) -> None:
    await service.run_sync()
    expected = [i.proposal.label or i.proposal.app_label for i in await service.pending()]
    assert len(expected) == NEW_USERS + 1
    card = await pending_digest(rig)
    seen = bullets(card)
    assert "\u2026 and 18 more \u2014 type 'pending' or press Next" in card_texts(card)
    while any(a.get("title") == "Next" for a in executes(card)):
        card = await press(rig, button(card, "Next"))
        seen += bullets(card)
    assert seen == expected  # every item, once, in the one order


async def test_previous_goes_back_one_page(rig: Rig, service: SyncService) -> None:
    await service.run_sync()
    first = await pending_digest(rig)
    second = await press(rig, button(first, "Next"))
    assert "Page 2 of 3 (items 11\u201320)" in card_texts(second)
    back = await press(rig, button(second, "Previous"))
    assert bullets(back) == bullets(first)


async def test_a_page_of_a_list_that_changed_says_so_and_shows_the_current_list(
    rig: Rig, service: SyncService
) -> None:
    await service.run_sync()
    first = await pending_digest(rig)
    gone = (await service.pending())[0]
    await service.decide(gone.id, "ignore", actor=service_actor(), digest=gone.digest, inputs={})
    second = await press(rig, button(first, "Next"))
    assert "The list changed since that page was shown" in card_texts(second)
    now = [i.proposal.label or i.proposal.app_label for i in await service.pending()]
    assert bullets(second) == now[10:20]


async def test_a_page_cursor_whose_hmac_does_not_verify_is_refused(
    rig: Rig, service: SyncService
) -> None:
    await service.run_sync()
    first = await pending_digest(rig)
    nxt = button(first, "Next")
    forged = {**nxt, "data": {"pid": "pending:3:" + nxt["data"]["pid"].split(":")[2], "d": "x"}}
    card = await press(rig, forged)
    assert bullets(card) == []
    assert "not known" in card_texts(card)


async def test_the_run_digest_says_how_many_more_and_offers_next(
    rig: Rig, service: SyncService
) -> None:
    before = len(rig.fc.cards("POST"))
    await rig.post(message(rig.fc, "sync now"))
    digests = [c for c in rig.fc.cards("POST")[before:] if "wait for a decision" in card_texts(c)]
    assert len(digests) == 1
    assert "\u2026 and 18 more \u2014 type 'pending' or press Next" in card_texts(digests[0])
    assert button(digests[0], "Next")["verb"] == "page"


async def test_digest_pending_and_preview_list_items_in_one_order(
    rig: Rig, service: SyncService
) -> None:
    before = len(rig.fc.cards("POST"))
    await rig.post(message(rig.fc, "sync now"))
    run_digest = next(
        c for c in rig.fc.cards("POST")[before:] if "wait for a decision" in card_texts(c)
    )
    pending = await pending_digest(rig)
    await rig.post(message(rig.fc, "preview"))
    preview = card_texts(rig.fc.cards("POST")[-1])
    names = bullets(pending)
    assert bullets(run_digest) == names
    positions = [preview.find(n) for n in names]
    assert -1 not in positions and positions == sorted(positions)
    assert names == sorted(names, key=str.casefold)  # one kind here: by name, any case


@pytest.mark.parametrize("query", ["Gus Gone", "gus gone", "gus@contoso.se", "070-129 99 99"])
async def test_sync_by_name_email_or_number_reaches_a_pending_removal(
    rig: Rig, service: SyncService, query: str
) -> None:
    before = len(rig.fc.cards("POST"))
    await rig.post(message(rig.fc, f"sync {query}"))
    # the run first posts its digest (first run: 28 new items); then the user's own card(s)
    cards = [c for c in rig.fc.cards("POST")[before:] if "wait for a decision" not in card_texts(c)]
    assert len(cards) == 1, [card_texts(c) for c in cards]
    assert "Gus Gone" in card_texts(cards[0])
    assert {a["verb"] for a in executes(cards[0])} >= {"remove_sync", "delete_user"}


async def test_sync_by_a_name_nobody_has_still_answers_nothing_to_decide(rig: Rig) -> None:
    await rig.post(message(rig.fc, "sync Nobody Anywhere"))
    texts = [r.body.get("text", "") for r in rig.fc.posts]
    assert any("Nothing to decide for 'Nobody Anywhere'" in t for t in texts)


# --- greeting once ------------------------------------------------------------------------------


async def test_two_install_events_at_the_same_moment_greet_once(
    aiohttp_client: Any, tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    tenant, directory = every_kind_world()
    svc = make_service(
        tmp_path, write_world(tmp_path, tenant, directory), redis=real_redis, keys=keys
    )
    await svc.start(scheduler=False)
    try:
        async with real_bot(aiohttp_client, svc) as r:
            installation = activity("installationUpdate", r.fc, action="add")
            added = activity("conversationUpdate", r.fc, membersAdded=[{"id": "28:bot"}])
            await asyncio.gather(r.post(installation), r.post(added), r.post(installation))
            greetings = [p for p in r.fc.posts if "Hello!" in str(p.body.get("text", ""))]
            assert len(greetings) == 1
    finally:
        await svc.stop()


@dataclass
class RecordingReplies:
    """Stands in for ``bot.turn.Replies``: records what would be sent."""

    sent: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, turn: Turn, out: dict[str, Any], *, reply: bool = True) -> str:
        self.sent.append(out)
        return f"a{len(self.sent)}"


class ReadTogether:
    """The real conversation store, except that each handler's read of the conversation waits
    until every handler has read it: two install events in the same millisecond, made
    certain (otherwise the interleaving depends on the Redis connection pool)."""

    def __init__(self, inner: Conversations, handlers: int) -> None:
        self._inner = inner
        self._barrier = asyncio.Barrier(handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def conversation(self, conv_id: str) -> dict[str, Any] | None:
        ref = await self._inner.conversation(conv_id)
        await self._barrier.wait()
        return ref


async def test_install_events_handled_concurrently_greet_once(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    """All handlers read "not greeted" before any writes: the greeting is claimed in Redis
    (HSETNX), so exactly one of them greets."""
    replies = RecordingReplies()
    installations = Installations(
        conversations=ReadTogether(Conversations(real_redis, keys), 3),  # type: ignore[arg-type]
        replies=replies,  # type: ignore[arg-type]
        clock=now_fixed,
    )
    where = SimpleNamespace(url="https://smba.trafficmanager.net/emea/")
    turns = [
        Turn(activity("installationUpdate", where, action="add")),  # type: ignore[arg-type]
        Turn(activity("conversationUpdate", where, membersAdded=[{"id": "28:bot"}])),  # type: ignore[arg-type]
        Turn(activity("installationUpdate", where, action="add")),  # type: ignore[arg-type]
    ]
    await asyncio.gather(*(installations.on_update(t) for t in turns))
    assert [o.get("text") for o in replies.sent] == [GREETING]


# --- the daily reminder -------------------------------------------------------------------------


def reminder_service(
    tmp_path: Path, redis: aioredis.Redis, keys: Keys, clock: Clock, days: int
) -> SyncService:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory, notify={"remind_after_days": days})
    return make_service(tmp_path, cfg, redis=redis, keys=keys, clock=clock)


async def replicas_tick(
    tmp_path: Path, redis: aioredis.Redis, keys: Keys, *, days: int, ticks_after: list[timedelta]
) -> list[list[Reminder]]:
    """Two replicas over one Redis: a sync run, then both tick together after each delay
    (measured from the run); what each replica's reminder listener heard per tick."""
    clock = Clock(now_fixed())
    a = reminder_service(tmp_path, redis, keys, clock, days)
    b = reminder_service(tmp_path, redis, keys, clock, days)
    heard: list[Reminder] = []

    async def listener(r: Reminder) -> None:
        heard.append(r)

    out: list[list[Reminder]] = []
    await a.start(scheduler=False)
    await b.start(scheduler=False)
    try:
        a.add_reminder_listener(listener)
        b.add_reminder_listener(listener)
        await a.run_sync()
        start = clock.now
        for delay in ticks_after:
            clock.now = start + delay
            heard.clear()
            await asyncio.gather(a.reminders.tick(), b.reminders.tick(), a.reminders.tick())
            out.append(list(heard))
    finally:
        await a.stop()
        await b.stop()
    return out


async def test_items_waiting_longer_than_the_limit_are_reminded_once_a_day_across_replicas(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    ticks = [timedelta(days=1), timedelta(days=3, hours=1), timedelta(days=3, hours=5)]
    ticks.append(timedelta(days=4, hours=1))
    heard = await replicas_tick(tmp_path, real_redis, keys, days=3, ticks_after=ticks)
    assert [len(h) for h in heard] == [0, 1, 0, 1]  # not yet; once; not again today; next day
    assert len(heard[1][0].items) == 5  # every kind of item waits more than 3 days


async def test_reminders_are_off_with_zero_days(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    heard = await replicas_tick(
        tmp_path, real_redis, keys, days=0, ticks_after=[timedelta(days=30)]
    )
    assert heard == [[]]


async def test_the_reminder_card_is_posted_to_the_notification_channel(
    aiohttp_client: Any, tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    clock = Clock(now_fixed())
    svc = reminder_service(tmp_path, real_redis, keys, clock, 3)
    await svc.start(scheduler=False)
    try:
        async with real_bot(aiohttp_client, svc) as r:
            await r.post(activity("installationUpdate", r.fc, action="add"))
            await svc.run_sync()
            clock.now += timedelta(days=4)
            before = len(r.fc.cards("POST"))
            await svc.reminders.tick()
            cards = r.fc.cards("POST")[before:]
            assert len(cards) == 1
            assert "5 items have waited more than 3 days" in card_texts(cards[0])
            shown = await press(r, button(cards[0], "Show the list"))
            assert "5 items wait for a decision" in card_texts(shown)
    finally:
        await svc.stop()


def service_actor() -> Any:
    from sync.service.records import Actor

    return Actor(id="aad-admin", name="Ann Admin")
