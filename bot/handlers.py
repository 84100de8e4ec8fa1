"""The turn: one incoming activity routed to its handler. Messages go to the command table's
handler (``bot.commands``), card actions to their verb's handler (``bot.verbs``), installation
and conversation updates to ``bot.installation``. ``bot.access`` decides first whether the turn
is served at all and whether its actor may do what it asks.

Never trusts card data beyond ``pid``, ``d`` and the named inputs of each verb; every failure
becomes a card or a message (HTTP 200), never an exception out of a turn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.access import Access, Admission, Need, command_need, verb_need
from bot.adapter import InvokeReply
from bot.command_table import parse_command
from bot.commands import HANDLERS, help_card
from bot.context import BotContext
from bot.turn import Turn
from bot.verbs import VERBS, CardAction, not_found_card
from cards import build, notices
from cards import views as v
from sync.errors import SyncError

log = logging.getLogger(__name__)

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_PID = 200
CARD_ACTION = "adaptiveCard/action"


def card_reply(card: dict[str, Any]) -> InvokeReply:
    return InvokeReply(200, {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": card})


def read_action(activity: dict[str, Any]) -> CardAction | None:
    """The pressed button of an ``adaptiveCard/action`` invoke; None when unreadable."""
    value = activity.get("value")
    action = value.get("action") if isinstance(value, dict) else None
    if not isinstance(action, dict):
        return None
    verb, data = action.get("verb"), action.get("data")
    data = data if isinstance(data, dict) else {}
    pid, digest = data.get("pid"), data.get("d")
    if not isinstance(verb, str) or not isinstance(pid, str) or not 0 < len(pid) <= MAX_PID:
        return CardAction(verb="", pid="", digest="", data={})
    digest = digest if isinstance(digest, str) and len(digest) <= MAX_PID else ""
    return CardAction(verb=verb, pid=pid, digest=digest, data=data)


@dataclass(frozen=True, slots=True)
class Bot:
    ctx: BotContext
    admission: Admission
    access: Access

    async def on_activity(self, activity: dict[str, Any]) -> InvokeReply | None:
        turn = Turn(activity)
        refused = self.admission.refusal(turn)
        if refused:
            log.warning("activity of type %r not served: %s", turn.kind, refused)
            if turn.kind == "invoke":
                return card_reply(notices.not_served_card())
            return None
        try:
            await self.ctx.installations.remember(turn)
        except SyncError as e:
            log.error("could not store the conversation reference: %s", e.code)
        if turn.kind == "message":
            await self._on_message(turn)
            return None
        if turn.kind == "invoke":
            return await self._on_invoke(turn)
        if turn.kind in ("installationUpdate", "conversationUpdate"):
            await self.ctx.installations.on_update(turn)
            return None
        log.debug("ignored activity type %r", turn.kind)
        return None

    def _refusal(self, need: Need) -> dict[str, Any]:
        if need is Need.ADMIN:
            return notices.not_allowed_card("Only admins can do this", self.access.explain())
        return notices.not_allowed_card(
            "Only admins and the bot's team can see this", self.access.explain(need)
        )

    async def _on_message(self, turn: Turn) -> None:
        text = turn.activity.get("text")
        spec, arg = parse_command(text if isinstance(text, str) else "")
        if spec is None:
            await self.ctx.replies.card(turn, help_card())
            return
        need = command_need(spec.name, spec.changes_state)
        if not await self.access.allows(turn, need):
            await self.ctx.replies.card(turn, self._refusal(need))
            return
        try:
            await HANDLERS[spec.name](self.ctx, turn, arg)
        except SyncError as e:
            log.warning("command %r failed: %s (%s)", spec.name, e.code, e.hint)
            await self.ctx.replies.card(turn, notices.failed_card((e.message, e.hint)))
        except Exception:
            log.exception("command %r crashed", spec.name)
            await self.ctx.replies.card(turn, notices.crashed_card())

    async def _on_invoke(self, turn: Turn) -> InvokeReply:
        if turn.activity.get("name") != CARD_ACTION:
            return InvokeReply(200, {})
        action = read_action(turn.activity)
        if action is None:
            return card_reply(notices.unreadable_action_card())
        handler = VERBS.get(action.verb)
        if handler is None:
            return card_reply(not_found_card())
        need = verb_need(action.verb)
        if not await self.access.allows(turn, need):
            refusal = v.RefusalView(reason=v.RefusalReason.NOT_ADMIN)
            return card_reply(build.refusal_card(refusal))
        try:
            return card_reply(await handler(self.ctx, turn, action))
        except SyncError as e:
            log.warning("action %s failed: %s (%s)", action.verb, e.code, e.hint)
            retry = v.CardRef(action.pid, action.digest)
            return card_reply(notices.failed_card((e.message, e.hint), retry))
        except Exception:
            log.exception("action %s crashed", action.verb)
            retry = v.CardRef(action.pid, action.digest)
            lines = ("Something went wrong; the error was logged.",)
            return card_reply(notices.failed_card(lines, retry))
