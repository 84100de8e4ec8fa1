"""Shared fixtures: a real Redis (integration) and fakeredis (unit), each test its own prefix."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import fakeredis
import pytest
import redis.asyncio as aioredis
from hypothesis import settings

from sync.state.connection import redis_from_url
from sync.state.keys import Keys

REAL_REDIS_URL = "redis://127.0.0.1:6379/0"

# Tests never assert on wall time: Hypothesis' per-example deadline (200 ms) failed a
# normaliser test once when its first example paid phonenumbers' metadata loading (450 ms).
settings.register_profile("entra-sync", deadline=None)
settings.load_profile("entra-sync")


@pytest.fixture
def keys() -> Keys:
    return Keys(prefix=f"t:{uuid.uuid4().hex[:12]}:")


@pytest.fixture
async def fake_redis() -> AsyncIterator[aioredis.Redis]:
    r = fakeredis.FakeAsyncRedis(decode_responses=False)
    yield r
    await r.aclose()


@pytest.fixture
async def real_redis(keys: Keys) -> AsyncIterator[aioredis.Redis]:
    """The real Redis on 127.0.0.1:6379 through the product's own client (hiredis packing);
    the test's keys (its prefix) are deleted afterwards."""
    r = redis_from_url(REAL_REDIS_URL)
    try:
        await r.ping()
    except Exception as e:  # pragma: no cover - the platform promises a Redis
        pytest.fail(f"real Redis not reachable on 127.0.0.1:6379: {e}")
    yield r
    async for k in r.scan_iter(match=f"{keys.prefix}*", count=1000):
        await r.delete(k)
    await r.aclose()


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test when anything logged a traceback: bad input is refused with a short
    line, never a traceback per request (issue 19)."""
    caplog.set_level(logging.WARNING)
    yield
    tracebacks = [f"{r.name}: {r.getMessage()}" for r in caplog.get_records("call") if r.exc_info]
    assert tracebacks == [], tracebacks
