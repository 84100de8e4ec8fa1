"""Who may do what: the one place the bot decides whether a turn is served.

Which activities are served at all (:class:`Admission`, before anything is stored):
- credentialed mode: ``channelId`` is ``msteams`` and every tenant id the activity names
  (``conversation.tenantId``, ``channelData.tenant.id``) is pinned: ``MICROSOFT_APP_TENANT_ID``,
  each ``[[tenants]]`` ``tenant_id`` and ``[bot] tenants``. Nothing pinned: the app refuses to
  start. Local mode (loopback only) also serves the local tenant (the Agents Playground's);
- the activity's ``serviceUrl`` is allowed (``bot.service_urls``).
Anything else touches nothing: no reference stored, no channel set, no admin made.

Who may do what (:class:`Access`), in order:
1. The actor is the activity's ``from.aadObjectId``; none -> not an admin.
2. ``[bot] admins`` in the config is non-empty -> exactly those Entra object ids are admins.
3. Else the admins are the members of the *admin team*: the team (or chat) where the bot was
   installed / the notification channel points. Membership is asked from the Bot Connector
   (``GET /v3/conversations/{team}/members/{aadObjectId}``, 404 = not a member) and cached for
   a few minutes.
4. In local mode (no Bot Framework credentials; loopback only) the user who installed the bot
   (or typed ``notify here``) is an admin too, since the local connector may not list members.
5. No admins configured and no admin team known yet -> nobody: the refusal says to install the
   bot into a team or to set ``[bot].admins``.
6. State-changing commands and every card verb but ``refresh`` need an admin; ``help`` is open
   to everyone served; the read-only commands (pending, preview, audit, status, ignored) and
   ``refresh`` are for admins and the members of the admin team; in a personal chat for admins
   only. A ``refresh`` answers an admin with the card's buttons, anyone else with the same card
   read-only.
7. Per-user views (:meth:`Access.card_audience`): a posted item card names the admins' Teams
   user ids in ``refresh.userIds`` (Teams refreshes at most 60 users automatically: the first
   60 admins in the roster's order); with credentials only (the Agents Playground has no
   user-specific views: in local mode nobody is named and the cards keep their buttons).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from bot.adapter import ConnectorError
from bot.service_urls import ServiceUrlPolicy
from bot.turn import Turn
from sync.config import Config
from sync.errors import ConfigError

log = logging.getLogger(__name__)

MembershipLookup = Callable[[dict[str, Any], str, str], Awaitable[bool]]
# (reference, team id) -> [(Teams user id "29:...", Entra object id)]
RosterLookup = Callable[[dict[str, Any], str], Awaitable[list[tuple[str, str]]]]
MAX_REFRESH_USERS = 60  # Teams refreshes a card automatically for at most 60 userIds
# The tenant of the Agents Playground (tests/e2e/.m365agentsplayground.yml, its default too):
# served in local mode besides the pinned tenants.
LOCAL_TENANT = "00000000-0000-0000-0000-0000000000001"
READ_ONLY_VERBS = frozenset({"refresh", "page"})  # page: a `pending` page
OPEN_COMMANDS = frozenset({"help"})


class Need(Enum):
    ANYONE = "anyone"
    READ = "read"
    ADMIN = "admin"


class RefStore(Protocol):
    async def conversation(self, conv_id: str) -> dict[str, Any] | None: ...

    async def notify_channel(self) -> str | None: ...


def pinned_tenants(config: Config, app_tenant_id: str) -> frozenset[str]:
    """The Teams tenants served: the bot's own, each configured Entra tenant, ``[bot] tenants``
    (lower case)."""
    ids = [app_tenant_id, *(t.tenant_id or "" for t in config.tenants), *config.bot.tenants]
    return frozenset(i.strip().lower() for i in ids if i and i.strip())


@dataclass(frozen=True, slots=True)
class Admission:
    """Is an activity served at all? (tenant, channel, serviceUrl; see the module docstring)"""

    pinned: frozenset[str]
    local_mode: bool
    service_urls: ServiceUrlPolicy

    def __post_init__(self) -> None:
        if not self.local_mode and not self.pinned:
            raise ConfigError(
                "no Teams tenant is pinned: set MICROSOFT_APP_TENANT_ID, a tenant_id in "
                "[[tenants]], or [bot] tenants, so the bot serves your organisation only."
            )

    def refusal(self, turn: Turn) -> str:
        """Why the activity is not served ("" when it is)."""
        if turn.service_url and not self.service_urls.allows(turn.service_url):
            return "serviceUrl not allowed"
        if not self.local_mode and turn.channel_id != "msteams":
            return "channel is not msteams"
        served = self.pinned | {LOCAL_TENANT} if self.local_mode else self.pinned
        if not turn.tenant_ids or not turn.tenant_ids <= served:
            return "tenant not served"
        return ""


def command_need(name: str, changes_state: bool) -> Need:
    if name in OPEN_COMMANDS:
        return Need.ANYONE
    return Need.ADMIN if changes_state else Need.READ


def verb_need(verb: str) -> Need:
    return Need.READ if verb in READ_ONLY_VERBS else Need.ADMIN


@dataclass
class Access:
    admins: Callable[[], Sequence[str]]
    conversations: RefStore
    membership: MembershipLookup
    local_mode: bool
    clock: Callable[[], float]
    cache_seconds: float = 300.0
    roster: RosterLookup | None = None
    _cache: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)
    _audience: tuple[float, tuple[str, ...]] | None = None

    async def allows(self, turn: Turn, need: Need) -> bool:
        """May this turn's actor do something that needs ``need``?"""
        if need is Need.ANYONE:
            return True
        if need is Need.READ:
            return await self.may_read(turn)
        return await self.is_admin(turn.actor_id)

    async def may_read(self, turn: Turn) -> bool:
        """Admins; else, outside personal chats, the members of the admin team."""
        if await self.is_admin(turn.actor_id):
            return True
        return not turn.is_personal and await self.in_admin_team(turn.actor_id)

    async def _admin_team(self) -> tuple[dict[str, Any], str] | None:
        """(reference, team id) of the conversation the notification channel points to."""
        channel = await self.conversations.notify_channel()
        ref = await self.conversations.conversation(channel) if channel else None
        if not ref:
            return None
        team = str(ref.get("teamId") or (ref.get("conversation") or {}).get("id") or "")
        return (ref, team) if team else None

    async def in_admin_team(self, aad_id: str) -> bool:
        """Is ``aad_id`` a member of the admin team (cached)? Local mode: or its installer."""
        found = await self._admin_team()
        if not aad_id or found is None:
            return False
        ref, team = found
        if self.local_mode and aad_id in (ref.get("installedBy"), ref.get("notifySetBy")):
            return True
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

    async def is_admin(self, aad_id: str) -> bool:
        if not aad_id:
            return False
        configured = tuple(self.admins())
        if configured:
            return aad_id in configured
        return await self.in_admin_team(aad_id)

    async def card_audience(self) -> tuple[str, ...]:
        """The Teams user ids for an item card's ``refresh.userIds``: the admins found in the
        admin team's roster (``[bot] admins`` in their order, else every member, in the
        roster's order), at most 60, cached like membership. Empty in local mode, without a
        roster lookup or an admin team, or when the roster cannot be read: the card then
        keeps its buttons for everyone and the server still refuses non-admins."""
        if self.local_mode or self.roster is None:
            return ()
        now = self.clock()
        if self._audience is not None and now - self._audience[0] < self.cache_seconds:
            return self._audience[1]
        found = await self._admin_team()
        if found is None:
            return ()
        try:
            members = await self.roster(*found)
        except ConnectorError as e:
            log.warning("admin team roster lookup failed: %s (status %s)", e.code, e.status)
            return ()
        configured = tuple(self.admins())
        if configured:
            by_aad = {aad: mri for mri, aad in members if aad}
            ids = [by_aad[a] for a in configured if a in by_aad]
        else:
            ids = [mri for mri, _aad in members]
        audience = tuple(dict.fromkeys(ids))[:MAX_REFRESH_USERS]
        self._audience = (now, audience)
        return audience

    def explain(self, need: Need = Need.ADMIN) -> str:
        if need is Need.READ:
            return (
                "Only admins and members of the team where the bot is installed can see this; "
                "in a personal chat, only admins."
            )
        if tuple(self.admins()):
            return "Only the admins named in the bot's settings ([bot].admins) can do this."
        return (
            "Only members of the team where the bot is installed can do this. "
            "Install the bot into your admins' team, or name admins in [bot].admins."
        )
