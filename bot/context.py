"""What the command and verb handlers are given: the sync service (the part the bot calls),
the way to reply, the installation handling, server-side confirmations and the clock."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import SecretStr

from bot.installation import Installations
from bot.turn import Conversations, Replies, Turn
from cards.catalogue import Texts, for_locale
from sync.config import Config
from sync.mail.notifier import MailResult
from sync.metrics import Metrics
from sync.models import DirectoryUser, Kind, Plan
from sync.service.decisions import BulkSet
from sync.service.health import Readiness
from sync.service.listeners import ReminderListener
from sync.service.service import Actor, Decision, Item, ItemListener, RunListener, RunResult
from sync.service.service import TenantStatus as ServiceTenantStatus
from sync.service.settings_editor import SettingsOutcome


class BotService(Protocol):
    """The part of ``sync.service.service.SyncService`` the bot calls (exactly these)."""

    config: Config
    metrics: Metrics  # the app's metrics (one registry per app)

    @property
    def conversations(self) -> Conversations: ...

    async def readiness(self) -> Readiness: ...

    async def refresh_pending(self) -> None: ...

    async def run_sync(
        self, tenant: str | None = None, *, actor: Actor, trigger: Any = "manual"
    ) -> list[RunResult]: ...

    async def sync_user(
        self, query: str, *, actor: Actor
    ) -> tuple[list[RunResult], list[Item]]: ...

    async def preview(self) -> list[tuple[str, str, Plan]]: ...

    async def pending(self, kind: Kind | None = None) -> list[Item]: ...

    async def item(self, pid: str) -> Item | None: ...

    async def decide(
        self, pid: str, verb: str, *, actor: Actor, digest: str, inputs: Mapping[str, str]
    ) -> Decision: ...

    async def bulk_set(self, kind: Kind) -> BulkSet: ...

    async def decide_bulk(
        self, kind: Kind, digest: str, *, actor: Actor
    ) -> list[Decision] | None: ...

    async def ignored(self) -> list[tuple[str, str, str]]: ...

    async def status(self) -> list[ServiceTenantStatus]: ...

    async def mail_status(self) -> MailResult | None: ...

    async def audit(self, limit: int = 20) -> Sequence[Any]: ...

    async def settings_table(self) -> dict[str, Any]: ...

    async def update_settings(self, form: Mapping[str, str], *, actor: Actor) -> dict[str, str]: ...

    async def save_settings(
        self, form: Mapping[str, str], *, actor: Actor, confirm: str = ""
    ) -> SettingsOutcome: ...

    async def connect(
        self, tenant_id: str, client_id: str, secret: SecretStr, *, actor: Actor
    ) -> ServiceTenantStatus: ...

    def consent_url(self, tenant_id: str, client_id: str) -> str: ...

    def connect_certificate_thumbprint(self) -> str | None: ...

    async def disconnect(self, tenant: str | None, *, actor: Actor) -> Any: ...

    async def directory_choices(self, directory: str, limit: int = 100) -> list[DirectoryUser]: ...

    async def directory_user(self, directory: str, user_id: str | None) -> DirectoryUser | None: ...

    def add_listener(self, listener: ItemListener) -> None: ...

    def add_run_listener(self, listener: RunListener) -> None: ...

    def add_reminder_listener(self, listener: ReminderListener) -> None: ...

    async def guard_id(self, tenant: str, directory: str) -> tuple[str, str]: ...

    async def unignore_digest(self, entra_id: str) -> str: ...

    async def digest(self, pid: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Confirmations:
    """Server-side confirmation of destructive verbs: a confirm verb only works for an id whose
    confirmation card was issued here, with the token that card carries, and only once."""

    conversations: Conversations
    new_token: Callable[[], str] = field(default=lambda: secrets.token_urlsafe(18))

    @staticmethod
    def _key(pid: str) -> str:
        return f"confirm:{pid}"

    async def issue(self, pid: str, token: str | None = None) -> str:
        """Record that ``pid``'s confirmation card was issued; returns the card's token."""
        token = token or self.new_token()
        await self.conversations.set_card_ref(self._key(pid), {"token": token})
        return token

    async def redeem(self, pid: str, token: str) -> bool:
        """True once for the token issued for ``pid``; False for anything else."""
        stored = await self.conversations.card_ref(self._key(pid)) or {}
        issued = stored.get("token")
        if (
            not isinstance(issued, str)
            or not issued
            or not hmac.compare_digest(issued.encode(), token.encode())
        ):
            return False
        await self.conversations.set_card_ref(self._key(pid), {})
        return True


Audience = Callable[[], Awaitable[tuple[str, ...]]]


async def nobody() -> tuple[str, ...]:
    """No per-user view: every card keeps its buttons (local mode, tests)."""
    return ()


@dataclass(frozen=True, slots=True)
class BotContext:
    service: BotService
    replies: Replies
    installations: Installations
    confirmations: Confirmations
    clock: Callable[[], datetime]
    # the Teams user ids an item card names in refresh.userIds (bot.access.Access.card_audience)
    audience: Audience = nobody

    @property
    def config(self) -> Config:
        return self.service.config

    @property
    def conversations(self) -> Conversations:
        return self.service.conversations

    def texts(self, turn: Turn) -> Texts:
        """The catalogue in the language of the activity's locale (``sv*`` -> Swedish, else
        English), with the clock's reading for "today" in card times."""
        return for_locale(locale_of(turn.activity), now=self.clock())


def locale_of(activity: Mapping[str, Any]) -> str:
    """The activity's ``locale`` (e.g. "sv-SE"); else the ``clientInfo`` entity's, which Teams
    also sends; "" when neither is there."""
    locale = activity.get("locale")
    if isinstance(locale, str) and locale:
        return locale[:32]
    entities = activity.get("entities")
    for e in entities if isinstance(entities, list) else ():
        if isinstance(e, dict) and e.get("type") == "clientInfo":
            loc = e.get("locale")
            if isinstance(loc, str) and loc:
                return loc[:32]
    return ""
