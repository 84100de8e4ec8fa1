"""The stored data-format version: one key under the store's prefix (``Keys.data_format``).

- Version 1 is the layout of ``sync.state.keys`` as it is today (one snapshot format: parts of
  rows ``[id, accountEnabled, attrs]``).
- A store without the key was written before versioning (version 0). Its only difference is
  the snapshot: the old per-tenant hash (``snap:<tenant>``), a staging copy left by a crash,
  or parts whose rows are Graph-shaped objects. Step 0 -> 1 drops those snapshots and the
  tenant's delta links, so the next run reads that tenant in full and saves it anew; every
  other key (proposals, decisions, choices, settings, audit) is kept as is.
- An empty store gets the current version at once.
- A version newer than this code knows is refused (``store_too_new``): an older app must not
  write into a layout it does not understand.

``ensure`` runs at every start (``SyncService.start``) and after ``state import``; each step
is idempotent, so two replicas starting at once are harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
import redis.asyncio as aioredis

from sync.errors import StateError
from sync.state.keys import Keys
from sync.state.values import glob_escape, prefix_pattern, text, text_or_none

log = logging.getLogger(__name__)

DATA_FORMAT = 1

TOO_NEW_HINT = (
    "This store was written by a newer Entra Sync; upgrade the app or restore a backup "
    "(entra-sync state import) taken with this version."
)


def too_new(found: int, where: str) -> StateError:
    return StateError(
        f"{where} has data format {found}; this Entra Sync knows formats up to {DATA_FORMAT}",
        code="store_too_new",
        hint=TOO_NEW_HINT,
    )


class DataFormat:
    """Read, check and upgrade the stored data-format version."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys
        self._steps: dict[int, Callable[[], Awaitable[int]]] = {0: self._upgrade_0_to_1}

    async def stored(self) -> int | None:
        """The version in the store; None when the key is missing."""
        raw = text_or_none(await self._r.get(self._k.data_format()))
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise StateError(
                f"the data-format key {self._k.data_format()} holds {raw[:20]!r}, not a number",
                code="store_format_unreadable",
                hint="Restore the store from a backup (entra-sync state import --replace).",
            ) from None

    async def ensure(self) -> int:
        """Bring the store to ``DATA_FORMAT``; returns the version found (0 for a store from
        before versioning, ``DATA_FORMAT`` for a new or current one). Raises StateError
        ``store_too_new`` for a newer store."""
        stored = await self.stored()
        found = stored if stored is not None else (0 if await self._has_data() else DATA_FORMAT)
        if found > DATA_FORMAT:
            raise too_new(found, f"the store (prefix {self._k.prefix!r})")
        for version in range(found, DATA_FORMAT):
            changed = await self._steps[version]()
            log.info(
                "store upgraded from data format %d to %d (%d keys dropped)",
                version,
                version + 1,
                changed,
            )
        if stored != DATA_FORMAT:
            await self._r.set(self._k.data_format(), str(DATA_FORMAT))
        return found

    async def _has_data(self) -> bool:
        async for _ in self._r.scan_iter(match=glob_escape(self._k.prefix) + "*", count=1000):
            return True
        return False

    async def _scan(self, key_with_nul: str) -> list[str]:
        return [text(k) async for k in self._r.scan_iter(match=prefix_pattern(key_with_nul))]

    async def _upgrade_0_to_1(self) -> int:
        """Drop snapshots in the earlier formats (and their tenants' delta links)."""
        k = self._k
        drop = await self._scan(k.snapshot("\0")) + await self._scan(k.snapshot_staging("\0"))
        parts_base = k.snapshot_parts("\0").split("\0")[0]
        for key in await self._scan(k.snapshot_parts("\0")):
            tenant = key[len(parts_base) :]
            if await self._old_rows(tenant):
                drop += [key, k.snapshot_overlay(tenant), k.snapshot_removed(tenant)]
                drop += await self._scan(k.delta_link(tenant, "\0"))
        if drop:
            await self._r.delete(*drop)
        return len(drop)

    async def _old_rows(self, tenant: str) -> bool:
        """Whether the tenant's snapshot has rows that are not ``[id, enabled, attrs]``."""
        first = await self._r.lindex(self._k.snapshot_parts(tenant), 0)  # type: ignore[misc]
        rows = orjson.loads(first) if first else []
        over = await self._r.hvals(self._k.snapshot_overlay(tenant))  # type: ignore[misc]
        rows += [orjson.loads(v) for v in over]
        return any(not isinstance(row, list) for row in rows)
