"""The Redis client every process uses: REDIS_URL, or the embedded in-process store.

redis-py's asyncio connection packs commands in Python (one ``bytes.join`` per argument; a full
sync of 100,000 users sends ~200,000 arguments), while its synchronous connection packs with
hiredis when it is installed. ``HiredisPackConnection`` does the same for asyncio: arguments are
encoded exactly as redis-py encodes them, then packed by ``hiredis.pack_command``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

try:
    import hiredis

    _pack: Callable[[tuple[Any, ...]], bytes] | None = getattr(hiredis, "pack_command", None)
except ImportError:  # pragma: no cover - hiredis is a pinned dependency
    _pack = None


_TEXT = frozenset({str, bytes})
STREAM_BYTES = 1 << 20  # a packed command list is written in pieces of about this size
_UTF8 = frozenset({"utf-8", "utf8", "UTF-8"})


class HiredisPackConnection(aioredis.Connection):
    """A TCP connection whose commands are packed by hiredis (same bytes as redis-py's)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if _pack is None:
            return super().pack_command(*args)
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        enc = self.encoder
        if (
            set(map(type, args)) <= _TEXT
            and enc.encoding in _UTF8  # type: ignore[attr-defined]
            and enc.encoding_errors == "strict"  # type: ignore[attr-defined]
            and max(map(len, args)) <= self._buffer_cutoff // 4
        ):
            # str and bytes only (the usual command), no value near the cutoff even as
            # UTF-8: hiredis encodes str as UTF-8 (strict) itself, as redis-py's encoder does
            return [_pack(args)]
        encode = enc.encode
        packed = tuple(a if type(a) is bytes else encode(a) for a in args)  # type: ignore[no-untyped-call]
        if max(map(len, packed)) > self._buffer_cutoff:
            # large values (snapshot parts): redis-py's packer sends them without a copy
            return super().pack_command(*args)
        return [_pack(packed)]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """redis-py hands a packed command list to ``StreamWriter.writelines``, which on
        Python 3.11 joins it into one bytes object (a copy of a whole snapshot or plan) and then
        buffers what the socket did not take at once (a second copy). Lists of more than
        ``STREAM_BYTES`` go out in pieces of about that size instead, each sent (and drained)
        by redis-py's own method, with its timeout and its disconnect on any error."""
        if type(command) is not list or len(command) < 2:
            await super().send_packed_command(command, check_health)
            return
        piece: list[bytes] = []
        size = 0
        for part in command:
            piece.append(part)
            size += len(part)
            if size >= STREAM_BYTES:
                await super().send_packed_command(piece, check_health)
                check_health = False
                piece, size = [], 0
        if piece:
            await super().send_packed_command(piece, check_health)


def redis_from_url(url: str, **kwargs: Any) -> aioredis.Redis:
    """A client for ``url``; plain ``redis://`` URLs get ``HiredisPackConnection`` (TLS and
    unix-socket URLs keep redis-py's own connection classes)."""
    cls = kwargs.pop("connection_class", None)
    if cls is None and url.startswith("redis://"):
        cls = HiredisPackConnection
    if cls is not None:
        kwargs["connection_class"] = cls
    return aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(url, **kwargs))


def make_redis(url: str | None) -> aioredis.Redis:
    """``url``, or the embedded in-process store (fakeredis) so `make run` needs no server."""
    if url:
        return redis_from_url(url)
    import fakeredis

    log.info("REDIS_URL is not set: using the embedded in-process store (data is not kept)")
    return fakeredis.FakeAsyncRedis()
