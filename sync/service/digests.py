"""Card digests: a card carries a proposal id and an HMAC of it that this server issued, so a
card press names only items the bot posted. The key is made once and shared through Redis."""

from __future__ import annotations

import hashlib
import hmac
import os

import redis.asyncio as aioredis

from sync.service.records import Item
from sync.state.keys import Keys
from sync.state.proposals import StoredProposal


class CardDigests:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._r = redis
        self._key_name = keys.prefix + "cardkey"
        self._key: bytes | None = None

    async def _secret(self) -> bytes:
        if self._key is None:
            await self._r.set(self._key_name, os.urandom(32).hex(), nx=True)
            raw = await self._r.get(self._key_name)
            self._key = bytes.fromhex(raw.decode() if isinstance(raw, bytes) else str(raw))
        return self._key

    async def digest(self, pid: str) -> str:
        """The HMAC-SHA256 of ``pid`` (24 hex digits)."""
        return hmac.new(await self._secret(), pid.encode(), hashlib.sha256).hexdigest()[:24]

    async def valid(self, pid: str, digest: str) -> bool:
        """Does ``digest`` (whatever the client sent) equal ``pid``'s? Compared as bytes:
        ``compare_digest`` raises on non-ASCII strings."""
        return hmac.compare_digest(digest.encode(), (await self.digest(pid)).encode())

    async def item(self, sp: StoredProposal) -> Item:
        """The bot's view of a stored proposal, with the digest its card carries."""
        return Item(
            proposal=sp.proposal,
            state=sp.state,
            tenant=sp.tenant,
            directory=sp.directory,
            digest=await self.digest(sp.id),
            decided_by=sp.decided_by,
            decided_at=sp.decided_at,
            verb=sp.verb,
        )
