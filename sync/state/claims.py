"""One scheduled run per due slot across replicas: the first replica to ``SET NX`` the slot's
key (``Keys.schedule_claim``, with an expiry) runs it, the others skip it.

The slot is named by its due time, which the schedule computes from the last run alone (a
pure function), so every replica names the same slot. A tenant that never ran is due "now"
on every replica's clock: its slot is named ``first``. The claim expires after ``ttl``: a
replica that died before recording its run hands the slot on instead of blocking it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import redis.asyncio as aioredis

from sync.state.keys import Keys
from sync.state.values import iso

FIRST_RUN = "first"


class ScheduleClaims:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys

    async def claim(self, tenant: str, due: datetime | None, owner: str, *, ttl: timedelta) -> bool:
        """True for the one replica that claimed this slot (``due`` None: the first run)."""
        slot = FIRST_RUN if due is None else iso(due)
        ok = await self._r.set(
            self._k.schedule_claim(tenant, slot),
            owner,
            nx=True,
            px=int(ttl.total_seconds() * 1000),
        )
        return bool(ok)
