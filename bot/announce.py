"""Announcing runs and decisions: the service's run listener posts what a run produced (item
cards, or one digest when many; guard cards; the auto-applied digest) to the notification
channel, and its item listener updates every posted copy of a decided item's card.

A scheduled run posts a guard card only when it holds back other removals than the last guard
card of that tenant and directory showed (watch mode runs every minute: the same held-back set
is not posted again each minute); a run an admin started (`sync now`) always posts it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot import to_views
from bot.commands import digest_page_card, page_pid
from bot.context import Audience, BotService, nobody
from bot.posting import Poster
from cards import build
from cards import views as v
from cards.reminder import reminder_card
from sync.errors import SyncError
from sync.models import ProposalState
from sync.service.reminders import Reminder
from sync.service.service import Item, RunResult

log = logging.getLogger(__name__)

Card = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Announcer:
    service: BotService
    poster: Poster
    clock: Callable[[], datetime]
    audience: Audience = nobody  # the admins' Teams user ids for refresh.userIds
    # (tenant, directory) -> ids of the removals whose guard card was posted last
    _guarded: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)

    def listen(self) -> None:
        """Subscribe to the service's run and item events."""
        self.service.add_run_listener(self.on_run)
        self.service.add_listener(self.on_item_decided)
        self.service.add_reminder_listener(self.on_reminder)

    def _guard_is_new(self, r: RunResult) -> bool:
        """Whether this run's guard card is to be posted (``guard_card_due``); remembers it."""
        key = (r.tenant, r.directory)
        held = held_back(r)
        due = guard_card_due(r, self._guarded.get(key))
        self._guarded[key] = held
        return due

    async def _guard_cards(self, r: RunResult) -> list[Card]:
        out: list[Card] = []
        if r.status != "ok" or not self._guard_is_new(r):
            return out
        for blocked in r.blocked:
            pid, digest = await self.service.guard_id(r.tenant, r.directory)
            linked = int(r.counters.get("linked", r.counters.get("syncable", 0)))
            view = v.GuardView(
                ref=v.CardRef(pid=pid, digest=digest),
                removals=blocked.count,
                linked=linked,
                tenant=r.tenant,
            )
            out.append(build.guard_card(view))
        return out

    @staticmethod
    def _auto_applied_card(r: RunResult) -> Card:
        items = tuple(
            v.DigestItem(kind=i.kind, name=i.proposal.label or i.id) for i in r.auto_applied
        )
        view = v.AutoAppliedView(applied=len(r.auto_applied), items=items, at=r.finished_at)
        return build.auto_applied_card(view)

    async def cards(self, results: Sequence[RunResult]) -> list[tuple[str | None, Card]]:
        """(pid or None, card) for what the runs produced, in posting order."""
        new = [i for r in results for i in r.new_items]
        out: list[tuple[str | None, Card]] = []
        if len(new) > self.service.config.bot.max_cards_per_run:
            # one digest: page 1 of everything that waits, in the one order, with Next
            pid = f"digest:{self.clock().strftime('%Y%m%d%H%M%S')}"
            out.append((None, await digest_page_card(self.service, pid)))
        else:
            cards = await to_views.proposal_cards(
                new, self.service.directory_choices, await self.audience()
            )
            out += [(pid, card) for card, pid in cards]
        for r in results:
            out += [(None, card) for card in await self._guard_cards(r)]
            if r.auto_applied:
                out.append((None, self._auto_applied_card(r)))
        return out

    async def announce(self, results: Sequence[RunResult]) -> int:
        """Post what the runs produced to the notification channel (and admins' 1:1 chats when
        ``[bot] notify_admins_personally``). Returns how many messages were posted."""
        cards = await self.cards(results)
        if not cards:
            return 0
        bot = self.service.config.bot
        personal = bot.admins if bot.notify_admins_personally else ()
        return await self.poster.post_cards(cards, personal=personal)

    async def on_run(self, result: RunResult) -> None:
        """The service's run listener: announce one run's results (any trigger)."""
        try:
            await self.announce([result])
        except SyncError as e:
            log.error("announcing a run failed: %s", e.code)

    async def on_reminder(self, reminder: Reminder) -> None:
        """The daily reminder (``sync.service.reminders``): one card where runs are announced,
        with a button to the first page of `pending`."""
        show = page_pid(1, "")
        view = to_views.reminder_view(
            reminder, show=v.CardRef(pid=show, digest=await self.service.digest(show))
        )
        bot = self.service.config.bot
        personal = bot.admins if bot.notify_admins_personally else ()
        try:
            await self.poster.post_cards([(None, reminder_card(view))], personal=personal)
        except SyncError as e:
            log.error("posting the reminder failed: %s", e.code)

    async def on_item_decided(self, item: Item) -> None:
        """The service decided an item somewhere: update its posted card(s) in place."""
        if item.state is ProposalState.PENDING:
            audience = await self.audience()
            card = to_views.item_card(to_views.proposal_view(item, admin_ids=audience))
        else:
            card = build.decided_card(to_views.decided_view(item))
        try:
            await self.poster.update_card(item.id, card)
        except SyncError as e:
            log.error("card update for %s failed: %s", item.id, e.code)


def held_back(r: RunResult) -> frozenset[str]:
    """The ids of the removals the guard held back in this run."""
    return frozenset(p.id for b in r.blocked for p in b.proposals)


def guard_card_due(r: RunResult, last_posted: frozenset[str] | None) -> bool:
    """A run that held removals back posts its guard card when an admin started it, or when
    it holds back other removals than the last guard card showed (a scheduled run)."""
    held = held_back(r)
    if not held:
        return False
    return r.trigger != "scheduled" or held != last_posted
