"""Large packed commands go to the real Redis in pieces (no copy of the whole payload) and
arrive whole, inside one transaction."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from sync.state.connection import STREAM_BYTES
from sync.state.keys import Keys


async def test_a_large_transaction_goes_out_in_pieces_and_arrives_whole(
    real_redis: aioredis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []
    send = aioredis.Connection.send_packed_command

    async def spy(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(len(command) if isinstance(command, bytes) else sum(map(len, command)))
        await send(self, command, check_health)

    monkeypatch.setattr(aioredis.Connection, "send_packed_command", spy)
    parts = [bytes([65 + i % 26]) * 300_000 for i in range(20)]  # 6 MB, like snapshot parts
    key = f"{keys.prefix}big"
    await real_redis.rpush(key, b"old")
    async with real_redis.pipeline(transaction=True) as tx:
        tx.delete(key)
        tx.rpush(key, *parts)
        tx.llen(key)
        replies = await tx.execute()
    assert replies[-1] == 20
    assert await real_redis.lrange(key, 0, -1) == parts
    pieces = [n for n in sent if n > 10_000]
    assert sum(pieces) > 6_000_000  # all of it went out ...
    assert len(pieces) >= 5 and max(pieces) <= STREAM_BYTES + 300_100  # ... in pieces
