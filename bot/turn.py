"""One incoming activity as the bot reads it (``Turn``), and the way back into its conversation
(``Replies``). Every reply goes through the poster, so the rate limit and retries hold."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.adapter import reference_of
from bot.posting import Poster, card_activity, text_activity
from sync.errors import SyncError
from sync.service.service import Actor

log = logging.getLogger(__name__)

MAX_ID = 512


class Conversations(Protocol):
    """``service.conversations``: conversation references, the notification channel, and where
    each item's card was posted."""

    async def save_conversation(self, conv_id: str, ref: dict[str, Any]) -> None: ...

    async def conversation(self, conv_id: str) -> dict[str, Any] | None: ...

    async def claim_greeting(self, conv_id: str, at: str) -> bool: ...

    async def set_notify_channel(self, conv_id: str) -> None: ...

    async def notify_channel(self) -> str | None: ...

    async def set_card_ref(self, pid: str, ref: dict[str, Any]) -> None: ...

    async def card_ref(self, pid: str) -> dict[str, Any] | None: ...


def _str(value: Any, limit: int = MAX_ID) -> str:
    return value if isinstance(value, str) and 0 < len(value) <= limit else ""


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Turn:
    """An incoming activity (the JSON as received) and what the bot reads from it. Every field
    is checked for type and length; a missing one is ""."""

    activity: dict[str, Any]

    @property
    def conv_id(self) -> str:
        return _str(_dict(self.activity.get("conversation")).get("id"))

    @property
    def conversation_type(self) -> str:
        return _str(_dict(self.activity.get("conversation")).get("conversationType"), 32)

    @property
    def is_personal(self) -> bool:
        return self.conversation_type == "personal"

    @property
    def actor_id(self) -> str:
        """The user's Entra object id (``from.aadObjectId``)."""
        return _str(_dict(self.activity.get("from")).get("aadObjectId"), 128)

    @property
    def actor_name(self) -> str:
        name = _dict(self.activity.get("from")).get("name")
        if isinstance(name, str) and name.strip():
            return name.strip()[:100]
        return self.actor_id or "someone"

    @property
    def actor(self) -> Actor:
        return Actor(id=self.actor_id, name=self.actor_name)

    @property
    def tenant_ids(self) -> frozenset[str]:
        """Every tenant id the activity names (``conversation.tenantId`` and
        ``channelData.tenant.id``); a pinned-tenant check needs all of them pinned."""
        conv = _str(_dict(self.activity.get("conversation")).get("tenantId"), 128)
        data = _str(_dict(_dict(self.activity.get("channelData")).get("tenant")).get("id"), 128)
        return frozenset(t.lower() for t in (conv, data) if t)

    @property
    def team_id(self) -> str:
        return _str(_dict(_dict(self.activity.get("channelData")).get("team")).get("id"))

    @property
    def service_url(self) -> str:
        return _str(self.activity.get("serviceUrl"), 2048)

    @property
    def channel_id(self) -> str:
        return _str(self.activity.get("channelId"), 64)

    @property
    def kind(self) -> str:
        return _str(self.activity.get("type"), 64)


@dataclass(frozen=True, slots=True)
class Replies:
    """Sends into the conversation of a turn, with its stored reference (or the activity's)."""

    poster: Poster
    conversations: Conversations

    async def send(self, turn: Turn, out: dict[str, Any], *, reply: bool = True) -> str:
        """Post ``out``; the new activity id, or "" when sending failed (logged)."""
        ref = await self.conversations.conversation(turn.conv_id) or reference_of(turn.activity)
        reply_to = _str(turn.activity.get("id")) if reply else ""
        try:
            return await self.poster.send(ref, out, reply_to=reply_to or None)
        except SyncError as e:
            log.error("reply failed: %s", e.code)
            return ""

    async def card(self, turn: Turn, card: Mapping[str, Any], *, reply: bool = True) -> str:
        return await self.send(turn, card_activity(card), reply=reply)

    async def text(self, turn: Turn, text: str) -> None:
        await self.send(turn, text_activity(text))

    async def item_card(self, turn: Turn, pid: str, card: Mapping[str, Any]) -> None:
        """Post an item's card here and remember where, so it can be updated in place."""
        activity_id = await self.card(turn, card)
        await remember_card(self.conversations, pid, turn.conv_id, activity_id)


async def remember_card(
    conversations: Conversations, pid: str, conv: str, activity_id: str
) -> None:
    """Add (conversation, activity id) to the places ``pid``'s card was posted (last 5 kept)."""
    if not activity_id or not conv:
        return
    old = await conversations.card_ref(pid) or {}
    posts = [p for p in old.get("posts") or () if isinstance(p, dict)]
    posts.append({"conv": conv, "activityId": activity_id})
    await conversations.set_card_ref(pid, {"posts": posts[-5:]})
