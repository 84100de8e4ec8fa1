"""The last Entra read of each tenant, kept for delta rounds, and its delta links.

A snapshot is a Redis list of parts, each the JSON array of up to 1,000 rows
``[id, accountEnabled, attrs]``, plus an overlay of delta rounds (a hash of changed users and a
set of removed ids) that the next full save folds away.

One format. Snapshots written before this format (rows shaped like Graph's objects) are not
read: ``load`` returns no users for them, so the first sync after the upgrade does a full read
(and saves the snapshot in this format).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
import redis.asyncio as aioredis

from sync.models import EntraUser
from sync.state.keys import Keys
from sync.state.values import BATCH, chunks, prefix_pattern, str_set, text_or_none


def _json(rows: Any) -> bytes:
    return orjson.dumps(rows, default=_plain)


def _plain(o: Any) -> Any:
    if isinstance(o, Mapping):
        return dict(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _row(u: EntraUser) -> tuple[str, bool, Mapping[str, Any]]:
    return (u.id, u.enabled, u.attrs)


def _user(row: Any) -> EntraUser:
    uid, enabled, attrs = row
    return EntraUser(id=str(uid), enabled=bool(enabled), attrs=attrs)


def snapshot_part(users: Iterable[EntraUser]) -> bytes:
    """One part of a saved snapshot: a JSON array of rows (a page of a full read is one)."""
    return _json([_row(u) for u in users])


def _parts(users: Iterable[EntraUser]) -> tuple[list[bytes], int]:
    """The snapshot's parts (JSON arrays of up to BATCH rows) and the number of users."""
    parts: list[bytes] = []
    n = 0
    it = iter(users)
    while chunk := list(islice(it, BATCH)):
        parts.append(snapshot_part(chunk))
        n += len(chunk)
    return parts, n


class SnapshotStore:
    """Snapshots (save, merge a delta, load) and delta links, per tenant."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys

    async def get_delta_link(self, tenant: str, link_key: str) -> str | None:
        return text_or_none(await self._r.get(self._k.delta_link(tenant, link_key)))

    async def set_delta_link(self, tenant: str, link_key: str, link: str) -> None:
        await self._r.set(self._k.delta_link(tenant, link_key), link)

    async def clear_delta_link(self, tenant: str, link_key: str) -> None:
        await self._r.delete(self._k.delta_link(tenant, link_key))

    async def save(self, tenant: str, users: Iterable[EntraUser]) -> int:
        """Replace the tenant's snapshot with ``users`` (and drop the overlay) in one MULTI:
        readers never see half a snapshot. Returns the number of users saved."""
        # serialised in a thread: the event loop answers Teams meanwhile (a full read makes
        # its parts page by page instead and calls ``save_parts``)
        parts, n = await asyncio.to_thread(_parts, users)
        await self.save_parts(tenant, parts)
        return n

    async def save_parts(self, tenant: str, parts: Sequence[bytes]) -> None:
        """``save`` of users already serialised (``snapshot_part``): a full read makes each
        page's part while the next page is on its way."""
        k = self._k
        async with self._r.pipeline(transaction=True) as tx:
            tx.delete(
                k.snapshot_parts(tenant), k.snapshot_overlay(tenant), k.snapshot_removed(tenant)
            )
            if parts:
                tx.rpush(k.snapshot_parts(tenant), *parts)
            await tx.execute()

    async def update(
        self, tenant: str, changed: Iterable[EntraUser], removed_ids: Iterable[str]
    ) -> None:
        """Merge a delta round: upsert ``changed``, drop ``removed_ids`` (a user both changed
        and removed in one round is removed). One MULTI."""
        over = self._k.snapshot_overlay(tenant)
        gone = self._k.snapshot_removed(tenant)
        removed = list(dict.fromkeys(removed_ids))
        batch = {u.id: _json(_row(u)) for u in changed if u.id not in set(removed)}
        if not batch and not removed:
            return
        async with self._r.pipeline(transaction=True) as tx:
            for ids in chunks(list(batch)):
                tx.hset(over, mapping={uid: batch[uid] for uid in ids})
                tx.srem(gone, *ids)
            for ids in chunks(removed):
                tx.hdel(over, *ids)
                tx.sadd(gone, *ids)
            await tx.execute()

    async def mark_soft_deleted(
        self, tenant: str, until: Mapping[str, datetime], back: Iterable[str]
    ) -> None:
        """Remember until when soft-deleted users can be restored (``until``); forget those
        restored or purged (``back``). Kept across full reads, which cannot tell them apart."""
        key = self._k.snapshot_soft_deleted(tenant)
        back = list(back)
        async with self._r.pipeline(transaction=True) as tx:
            if back:
                tx.hdel(key, *back)
            if until:
                tx.hset(key, mapping={uid: t.isoformat() for uid, t in until.items()})
            await tx.execute()

    async def soft_deleted(self, tenant: str, now: datetime) -> dict[str, datetime]:
        """The soft-deleted users that can still be restored at ``now``, and until when."""
        raw = await self._r.hgetall(self._k.snapshot_soft_deleted(tenant))
        out = {}
        for uid, at in (raw or {}).items():
            until = datetime.fromisoformat(at.decode() if isinstance(at, bytes) else at)
            if until > now:
                out[uid.decode() if isinstance(uid, bytes) else uid] = until
        return out

    async def load(self, tenant: str) -> list[EntraUser]:
        """All users of the snapshot (the saved parts, then the overlay), sorted by id; none
        for a snapshot in an earlier format (see the module notes). One round trip."""
        k = self._k
        pipe = self._r.pipeline(transaction=True)
        pipe.lrange(k.snapshot_parts(tenant), 0, -1)
        pipe.hgetall(k.snapshot_overlay(tenant))
        pipe.smembers(k.snapshot_removed(tenant))
        parts, over, gone = await pipe.execute()
        rows = [row for part in parts for row in orjson.loads(part)]
        rows += [orjson.loads(v) for v in (over or {}).values()]
        if not all(isinstance(row, list) for row in rows):
            return []  # written in the earlier format: the next sync reads Entra in full
        users = {u.id: u for u in map(_user, rows)}
        for uid in str_set(gone):
            users.pop(uid, None)
        return [users[uid] for uid in sorted(users)]

    async def forget(self, tenant: str) -> None:
        """Drop the tenant's snapshot and every delta link (disconnect)."""
        k = self._k
        links = [
            key async for key in self._r.scan_iter(match=prefix_pattern(k.delta_link(tenant, "\0")))
        ]
        keys = [k.snapshot(tenant), k.snapshot_staging(tenant), k.snapshot_parts(tenant)]
        keys += [k.snapshot_overlay(tenant), k.snapshot_removed(tenant), *links]
        keys.append(k.snapshot_soft_deleted(tenant))
        await self._r.delete(*keys)
