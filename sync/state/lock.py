"""One run per tenant at a time, across processes: redis-py's ``Lock`` (a random token, SET NX
PX, released only by its owner)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from sync.errors import LockBusy
from sync.state.keys import Keys

log = logging.getLogger(__name__)


class RunLock:
    """``async with run_lock.hold(tenant)``: raises LockBusy when another run holds it. The TTL
    is the safety net for a crashed holder; pick it above the longest run."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys
        # locks this process took but could not release (Redis failed at that moment): released
        # before this process takes the same lock again, instead of waiting for the TTL
        self._unreleased: dict[str, Lock] = {}

    @asynccontextmanager
    async def hold(self, tenant: str, ttl_s: float = 600) -> AsyncIterator[None]:
        await self._release_stale(tenant)
        lock = Lock(self._r, self._k.lock(tenant), timeout=ttl_s, blocking=False)
        if not await lock.acquire():
            raise LockBusy(f"a sync for tenant {tenant} is already running")
        try:
            yield
        finally:
            await self._release(tenant, lock)

    async def _release(self, tenant: str, lock: Lock) -> None:
        try:
            await lock.release()
        except LockError:  # expired, and maybe taken by another run since: not ours
            log.warning("lock of tenant %s was lost before release (expired?)", tenant)
        except RedisError:
            self._unreleased[tenant] = lock
            raise

    async def _release_stale(self, tenant: str) -> None:
        stale = self._unreleased.pop(tenant, None)
        if stale is not None:
            await self._release(tenant, stale)
