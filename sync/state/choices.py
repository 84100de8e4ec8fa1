"""What admins chose that the planner must respect: ignored Entra users, the owners of shared
numbers, and the one-shot confirmation of the removal guard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from sync.models import StateView
from sync.state.keys import Keys
from sync.state.values import glob_escape, iso, str_map, str_set

GUARD_TTL = timedelta(hours=24)  # an unused guard confirmation expires


class AdminChoices:
    """Ignored users, number owners and guard confirmations, per tenant."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._r = redis
        self._k = keys
        self._clock = clock

    async def ignored(self, tenant: str) -> frozenset[str]:
        return frozenset(str_set(await self._r.smembers(self._k.ignored(tenant))))  # type: ignore[misc]

    async def ignore(self, tenant: str, entra_id: str) -> bool:
        """Ignore an Entra user (kept out of every list). True if it changed. Not audited
        here: the decision that ignores writes the one audit entry."""
        added = int(await self._r.sadd(self._k.ignored(tenant), entra_id))  # type: ignore[misc]
        return added > 0

    async def unignore(self, tenant: str, entra_id: str) -> bool:
        """Stop ignoring an Entra user. True if it changed (audited by the decision)."""
        removed = int(await self._r.srem(self._k.ignored(tenant), entra_id))  # type: ignore[misc]
        return removed > 0

    async def number_owners(self, tenant: str) -> dict[str, str]:
        return str_map(await self._r.hgetall(self._k.number_owners(tenant)))  # type: ignore[misc]

    async def set_number_owner(self, tenant: str, e164: str, entra_id: str) -> None:
        """Record who owns a shared number (audited by the decision that chose it)."""
        await self._r.hset(self._k.number_owners(tenant), e164, entra_id)  # type: ignore[misc]

    async def confirm_guard(self, tenant: str, directory: str) -> None:
        """Let the next run's removals through (one shot; expires after 24 h unused)."""
        await self._r.set(
            self._k.guard_confirmed(tenant, directory),
            iso(self._clock()),
            px=int(GUARD_TTL.total_seconds() * 1000),
        )

    async def consume_guard(self, tenant: str, directory: str) -> bool:
        return await self._r.getdel(self._k.guard_confirmed(tenant, directory)) is not None

    async def state_view(self, tenant: str, directory: str) -> StateView:
        """What the planner reads for one tenant+directory (one round trip)."""
        pipe = self._r.pipeline(transaction=False)
        pipe.smembers(self._k.ignored(tenant))
        pipe.hgetall(self._k.number_owners(tenant))
        pipe.exists(self._k.guard_confirmed(tenant, directory))
        ign, owners, guard = await pipe.execute()
        return StateView(
            ignored=frozenset(str_set(ign)),
            number_owners=str_map(owners),
            removals_confirmed=bool(guard),
        )

    async def forget(self, tenant: str) -> None:
        """Drop the tenant's ignored users, number owners and guard confirmations."""
        pat = glob_escape(self._k.guard_confirmed(tenant, "\0").split("\0")[0]) + "*"
        guards = [k async for k in self._r.scan_iter(match=pat)]
        await self._r.delete(self._k.number_owners(tenant), self._k.ignored(tenant), *guards)
