"""Installation and conversation handling: the stored reference of every conversation the bot
hears from (Teams may move a conversation's ``serviceUrl``), the greeting on installation, and
the notification channel set by the first installation into a team.

Only turns that passed the tenant check (``bot.access``) get here: a foreign tenant's
installation stores nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.adapter import reference_of
from bot.posting import text_activity
from bot.turn import Conversations, Replies, Turn

log = logging.getLogger(__name__)

GREETING = (
    "Hello! I keep the phone system's directory in step with Entra ID. "
    "Type 'help' to see what I can do."
)


@dataclass(frozen=True, slots=True)
class Installations:
    conversations: Conversations
    replies: Replies
    clock: Callable[[], datetime]

    async def remember(self, turn: Turn) -> None:
        """Store/refresh the turn's conversation reference (and, for a personal chat, under
        ``user:<aad id>`` for personal notifications)."""
        if not turn.conv_id or not turn.service_url:
            return
        old = await self.conversations.conversation(turn.conv_id) or {}
        merged = {**old, **reference_of(turn.activity)}
        if turn.team_id:
            merged["teamId"] = turn.team_id
        group = ((turn.activity.get("channelData") or {}).get("team") or {}).get("aadGroupId")
        if isinstance(group, str) and 0 < len(group) <= 64:
            merged["aadGroupId"] = group  # the team's Entra group: the mail's channel link
        if merged != old:
            await self.conversations.save_conversation(turn.conv_id, merged)
        if turn.is_personal and turn.actor_id:
            await self.conversations.save_conversation(f"user:{turn.actor_id}", merged)

    async def on_update(self, turn: Turn) -> None:
        """``installationUpdate`` (add) or ``conversationUpdate`` adding the bot: installed."""
        if turn.kind == "installationUpdate":
            action = turn.activity.get("action")
            if isinstance(action, str) and action.startswith("add"):
                await self.installed(turn)
            return
        bot_id = (turn.activity.get("recipient") or {}).get("id")
        added = turn.activity.get("membersAdded") or []
        if bot_id and any(isinstance(m, dict) and m.get("id") == bot_id for m in added):
            await self.installed(turn)

    async def installed(self, turn: Turn) -> None:
        """Remember who installed; the first team installation becomes the notification
        channel; greet once: Teams sends both installationUpdate and conversationUpdate, often
        in the same millisecond, and ``claim_greeting`` lets exactly one of them greet."""
        if not turn.conv_id:
            return
        ref = await self.conversations.conversation(turn.conv_id) or reference_of(turn.activity)
        if turn.actor_id:
            ref["installedBy"] = turn.actor_id
        # a reference stored before the greeting was claimed in Redis says so itself
        greet = not ref.get("greeted") and await self.conversations.claim_greeting(
            turn.conv_id, self.clock().isoformat()
        )
        ref["greeted"] = True
        await self.conversations.save_conversation(turn.conv_id, ref)
        if not turn.is_personal and not await self.conversations.notify_channel():
            await self.conversations.set_notify_channel(turn.conv_id)
            log.info("notification channel set on installation")
        if greet:
            await self.replies.send(turn, text_activity(GREETING), reply=False)

    async def notify_here(self, turn: Turn) -> None:
        """``notify here``: this conversation becomes the notification channel."""
        ref = await self.conversations.conversation(turn.conv_id) or reference_of(turn.activity)
        ref["notifySetBy"] = turn.actor_id
        await self.conversations.save_conversation(turn.conv_id, ref)
        await self.conversations.set_notify_channel(turn.conv_id)
