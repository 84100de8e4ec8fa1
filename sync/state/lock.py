"""One run per tenant at a time, across processes: redis-py's ``Lock`` (a random token, SET NX
PX, released only by its owner)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from sync.errors import LockBusy
from sync.state.keys import Keys

log = logging.getLogger(__name__)


class RunLock:
    """``async with run_lock.hold(tenant)``: raises LockBusy when another run holds it. The TTL
    is the safety net for a crashed holder; pick it above the longest run."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys

    @asynccontextmanager
    async def hold(self, tenant: str, ttl_s: float = 600) -> AsyncIterator[None]:
        lock = Lock(self._r, self._k.lock(tenant), timeout=ttl_s, blocking=False)
        if not await lock.acquire():
            raise LockBusy(f"a sync for tenant {tenant} is already running")
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockError:  # expired, and maybe taken by another run since: not ours
                log.warning("lock of tenant %s was lost before release (expired?)", tenant)
