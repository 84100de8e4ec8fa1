"""Who may change state: the admin check the bot makes before every state-changing command or
card action (the sync service does not check rights).

Rules, in order (decision recorded in the report and the bot note):
1. The actor is the activity's ``from.aadObjectId``; none -> not an admin.
2. ``[bot].admins`` in the config is non-empty -> exactly those Entra object ids.
3. Else the admins are the members of the *admin team*: the team (or chat) where the bot was
   installed / the notification channel points. Membership is asked from the Bot Connector
   (``GET /v3/conversations/{team}/members/{aadObjectId}``, 404 = not a member) and cached for
   a few minutes.
4. In local mode (no Bot Framework credentials; loopback only) the user who installed the bot
   (or typed ``notify here``) is an admin too, since the local connector may not list members.
5. No admins configured and no admin team known yet -> nobody: the refusal says to install the
   bot into a team or to set ``[bot].admins``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.adapter import ConnectorError

log = logging.getLogger(__name__)

MembershipLookup = Callable[[dict[str, Any], str, str], Awaitable[bool]]


class RefStore(Protocol):
    async def conversation(self, conv_id: str) -> dict[str, Any] | None: ...

    async def notify_channel(self) -> str | None: ...


def actor_id(activity: dict[str, Any]) -> str:
    frm = activity.get("from")
    if not isinstance(frm, dict):
        return ""
    aad = frm.get("aadObjectId")
    return aad if isinstance(aad, str) and 0 < len(aad) <= 128 else ""


def actor_name(activity: dict[str, Any]) -> str:
    frm = activity.get("from")
    if isinstance(frm, dict) and isinstance(frm.get("name"), str) and frm["name"].strip():
        return str(frm["name"]).strip()[:100]
    return actor_id(activity) or "someone"


@dataclass
class AdminCheck:
    admins: Callable[[], Sequence[str]]
    store: RefStore
    membership: MembershipLookup
    local_mode: bool
    clock: Callable[[], float]
    cache_seconds: float = 300.0
    _cache: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)

    async def is_admin(self, aad_id: str) -> bool:
        if not aad_id:
            return False
        configured = tuple(self.admins())
        if configured:
            return aad_id in configured
        channel = await self.store.notify_channel()
        ref = await self.store.conversation(channel) if channel else None
        if not ref:
            return False
        if self.local_mode and aad_id in (ref.get("installedBy"), ref.get("notifySetBy")):
            return True
        team = str(ref.get("teamId") or (ref.get("conversation") or {}).get("id") or "")
        if not team:
            return False
        key = (team, aad_id)
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[1]
        try:
            member = await self.membership(ref, team, aad_id)
        except ConnectorError as e:
            log.warning("admin team membership lookup failed: %s (status %s)", e.code, e.status)
            return False
        self._cache[key] = (now, member)
        return member

    def explain(self) -> str:
        if tuple(self.admins()):
            return "Only the admins named in the bot's settings ([bot].admins) can do this."
        return (
            "Only members of the team where the bot is installed can do this. "
            "Install the bot into your admins' team, or name admins in [bot].admins."
        )
