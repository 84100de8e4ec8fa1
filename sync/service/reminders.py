"""The daily reminder: items pending longer than ``[notify] remind_after_days`` (0: off) are
mentioned once a day in one digest ("3 items have waited more than 3 days").

Once a day means once per UTC day for the whole deployment: the first replica whose scheduler
tick finds overdue items claims the day's Redis key (``SET NX`` with an expiry) and tells the
reminder listeners; every other tick that day, on any replica, finds the key taken. The
clock is injected; ``overdue`` is a pure function of the pending items and "now"."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from sync.service import listing
from sync.service.shared import Shared
from sync.state.keys import Keys
from sync.state.proposals import StoredProposal

log = logging.getLogger(__name__)

CLAIM_TTL_S = 2 * 24 * 3600  # the day's key outlives the day (clock skew between replicas)


@dataclass(frozen=True, slots=True)
class OverdueItem:
    """A pending item and since when it waits."""

    stored: StoredProposal
    since: datetime


@dataclass(frozen=True, slots=True)
class Reminder:
    """The day's reminder: the overdue items in the one display order."""

    day: str  # YYYY-MM-DD, UTC
    after_days: int
    items: tuple[OverdueItem, ...]


def overdue(pending: Sequence[StoredProposal], now: datetime, after_days: int) -> list[OverdueItem]:
    """The items created more than ``after_days`` days before ``now``, in display order;
    none when reminders are off (0)."""
    if after_days <= 0:
        return []
    limit = now - timedelta(days=after_days)
    old = [OverdueItem(sp, sp.created_at) for sp in pending if sp.created_at < limit]
    return listing.in_display_order(old, lambda o: o.stored.proposal)


class Reminders:
    def __init__(self, shared: Shared, redis: aioredis.Redis, keys: Keys) -> None:
        self._live, self._store, self._clock = shared.live, shared.store, shared.clock
        self._listeners = shared.listeners
        self._redis, self._keys = redis, keys

    async def due(self) -> Reminder | None:
        """Today's reminder when items are overdue and no replica has claimed today yet (this
        call claims it); else None."""
        after = self._live.current.notify.remind_after_days
        if after <= 0:
            return None
        now = self._clock()
        day = now.date().isoformat()
        if await self._redis.exists(self._keys.reminded(day)):
            return None  # sent today already: no need to read every pending item
        items = overdue(await self._store.proposals.pending(), now, after)
        if not items:
            return None
        claimed = await self._redis.set(
            self._keys.reminded(day), now.isoformat(), nx=True, ex=CLAIM_TTL_S
        )
        if not claimed:
            return None
        return Reminder(day=day, after_days=after, items=tuple(items))

    async def tick(self) -> None:
        """The scheduler's tick: post today's reminder when it is due."""
        reminder = await self.due()
        if reminder is not None:
            log.info("reminder: %d items overdue", len(reminder.items))
            await self._listeners.remind(reminder)
