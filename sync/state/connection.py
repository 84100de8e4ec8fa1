"""The Redis client every process uses: REDIS_URL, or the embedded in-process store.

The pool is bounded and blocking: at most ``MAX_CONNECTIONS`` connections, and a request
that finds them all busy waits up to ``POOL_TIMEOUT_S`` for one (then fails) instead of
failing at once, so a burst of Teams requests queues rather than erroring.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 50
POOL_TIMEOUT_S = 5.0


def _no_count() -> None:
    return None


class ObservedPipeline(Pipeline):
    """A pipeline whose failed commands are counted like the client's (``on_error``)."""

    on_error: Callable[[], None] = staticmethod(_no_count)

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except WatchError:
            raise
        except RedisError:
            self.on_error()
            raise

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except WatchError:  # an optimistic transaction lost a race; it is retried: no failure
            raise
        except RedisError:
            self.on_error()
            raise


class ObservedRedis(aioredis.Redis):
    """A client that calls ``on_error`` for each command (or pipeline) that fails with a
    Redis error (the metrics count them)."""

    on_error: Callable[[], None] = staticmethod(_no_count)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except RedisError:
            self.on_error()
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = ObservedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.on_error = self.on_error
        return pipe


def redis_from_url(
    url: str, *, on_error: Callable[[], None] | None = None, **kwargs: Any
) -> aioredis.Redis:
    """A client for ``url`` on a bounded, blocking connection pool; ``on_error`` hears of
    every failed command."""
    kwargs.setdefault("max_connections", MAX_CONNECTIONS)
    kwargs.setdefault("timeout", POOL_TIMEOUT_S)
    pool = aioredis.BlockingConnectionPool.from_url(url, **kwargs)
    client = ObservedRedis(connection_pool=pool)
    if on_error is not None:
        client.on_error = on_error
    return client


def make_redis(url: str | None, *, on_error: Callable[[], None] | None = None) -> aioredis.Redis:
    """``url``, or the embedded in-process store (fakeredis) so `make run` needs no server."""
    if url:
        return redis_from_url(url, on_error=on_error)
    import fakeredis

    log.info("REDIS_URL is not set: using the embedded in-process store (data is not kept)")
    return fakeredis.FakeAsyncRedis()
