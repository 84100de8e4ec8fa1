"""The Redis client every process uses: REDIS_URL, or the embedded in-process store.

The pool is bounded and blocking: at most ``MAX_CONNECTIONS`` connections, and a request
that finds them all busy waits up to ``POOL_TIMEOUT_S`` for one (then fails) instead of
failing at once, so a burst of Teams requests queues rather than erroring.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 50
POOL_TIMEOUT_S = 5.0


def redis_from_url(url: str, **kwargs: Any) -> aioredis.Redis:
    """A client for ``url`` on a bounded, blocking connection pool."""
    kwargs.setdefault("max_connections", MAX_CONNECTIONS)
    kwargs.setdefault("timeout", POOL_TIMEOUT_S)
    pool = aioredis.BlockingConnectionPool.from_url(url, **kwargs)
    return aioredis.Redis(connection_pool=pool)


def make_redis(url: str | None) -> aioredis.Redis:
    """``url``, or the embedded in-process store (fakeredis) so `make run` needs no server."""
    if url:
        return redis_from_url(url)
    import fakeredis

    log.info("REDIS_URL is not set: using the embedded in-process store (data is not kept)")
    return fakeredis.FakeAsyncRedis()
