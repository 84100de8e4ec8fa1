"""What the Teams side keeps: settings edited in Teams, the credentials of a tenant connected
from Teams (the secret encrypted), and where to post (conversations, the notify channel, the
posts of each proposal's card)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.errors import StateError
from sync.state.keys import Keys
from sync.state.secrets import SecretBox
from sync.state.values import dumps, iso, prefix_pattern, str_map, text, text_or_none


class SettingsStore:
    """The settings edited in Teams (a table that overrides the file's)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys

    async def get_settings_overrides(self) -> dict[str, Any] | None:
        raw = await self._r.get(self._k.settings())
        return json.loads(raw) if raw else None

    async def set_settings_overrides(self, table: dict[str, Any]) -> None:
        await self._r.set(self._k.settings(), dumps(table))


class Credentials:
    """App credentials of tenants connected from Teams; the secret encrypted with a box
    (without one: a per-process box, made when first needed)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        box: SecretBox | None,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._r = redis
        self._k = keys
        self._given_box = box
        self._clock = clock

    @property
    def _box(self) -> SecretBox:
        if self._given_box is None:
            self._given_box = SecretBox(None)
        return self._given_box

    async def set_credentials(
        self, tenant: str, tenant_id: str, client_id: str, secret: SecretStr
    ) -> None:
        await self._r.hset(  # type: ignore[misc]
            self._k.credentials(tenant),
            mapping={
                "tenant_id": tenant_id,
                "client_id": client_id,
                "secret": self._box.encrypt(secret),
                "at": iso(self._clock()),
            },
        )

    async def credentials(self, tenant: str) -> tuple[str, str, SecretStr] | None:
        """(tenant_id, client_id, secret) or None. Raises StateError code ``secret_unreadable``
        when the key changed since the secret was stored."""
        h = str_map(await self._r.hgetall(self._k.credentials(tenant)))  # type: ignore[misc]
        if "secret" not in h:
            return None
        return (h["tenant_id"], h["client_id"], self._box.decrypt(h["secret"].encode("ascii")))

    async def delete_credentials(self, tenant: str) -> None:
        await self._r.delete(self._k.credentials(tenant))

    async def rotate_secrets(self) -> tuple[list[str], list[str]]:
        """Re-encrypt every stored secret with the current key (``ENTRA_SYNC_SECRET_KEY``);
        each hash is changed only if nobody wrote it meanwhile (WATCH). Returns (tenants
        re-encrypted, tenants whose secret no configured key opens: left as they were)."""
        base = self._k.credentials("\0").split("\0")[0]
        done: list[str] = []
        unreadable: list[str] = []
        async for raw in self._r.scan_iter(match=prefix_pattern(self._k.credentials("\0"))):
            key = text(raw)
            tenant = key[len(base) :]
            async with self._r.pipeline(transaction=True) as tx:
                await tx.watch(key)
                token = await tx.hget(key, "secret")  # type: ignore[misc]
                if token is None:
                    continue
                try:
                    fresh = self._box.rotate(token if isinstance(token, bytes) else token.encode())
                except StateError:
                    unreadable.append(tenant)
                    continue
                tx.multi()  # type: ignore[no-untyped-call]
                tx.hset(key, "secret", fresh)
                await tx.execute()  # a concurrent connect wins (WatchError): retried next time
                done.append(tenant)
        return sorted(done), sorted(unreadable)


class Conversations:
    """Teams conversation references, the channel to notify, and where each card was posted."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._k = keys

    async def save_conversation(self, conv_id: str, ref: dict[str, Any]) -> None:
        await self._r.hset(self._k.conversations(), conv_id, dumps(ref))  # type: ignore[misc]

    async def conversation(self, conv_id: str) -> dict[str, Any] | None:
        raw = await self._r.hget(self._k.conversations(), conv_id)  # type: ignore[misc]
        return json.loads(raw) if raw else None

    async def claim_greeting(self, conv_id: str, at: str) -> bool:
        """True for exactly one caller per conversation (``HSETNX``): the one that greets,
        however many install events arrive at once, on however many replicas."""
        return bool(await self._r.hsetnx(self._k.greeted(), conv_id, at))  # type: ignore[misc]

    async def set_notify_channel(self, conv_id: str) -> None:
        await self._r.set(self._k.notify_channel(), conv_id)

    async def notify_channel(self) -> str | None:
        return text_or_none(await self._r.get(self._k.notify_channel()))

    async def set_card_ref(self, pid: str, ref: dict[str, Any]) -> None:
        await self._r.set(self._k.card_ref(pid), dumps(ref))

    async def card_ref(self, pid: str) -> dict[str, Any] | None:
        raw = await self._r.get(self._k.card_ref(pid))
        return json.loads(raw) if raw else None
