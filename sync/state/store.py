"""The sync state in Redis, one part per concern, each in its own module:

- ``proposals``: proposals and their state machine (:mod:`sync.state.proposals`);
- ``snapshots``: the last Entra read of each tenant and its delta links
  (:mod:`sync.state.snapshots`);
- ``runs``: last-sync records, per-user sync times, counter bumps (:mod:`sync.state.runlog`);
- ``choices``: ignored users, number owners, the guard confirmation
  (:mod:`sync.state.choices`);
- ``audit``: the audit trail (:mod:`sync.state.audit`);
- ``settings``, ``tenant_credentials``, ``conversations``: what the Teams side keeps
  (:mod:`sync.state.admin`);
- ``run_lock``: one run per tenant (:mod:`sync.state.lock`).

Every key comes from ``sync.state.keys.Keys``; times come from the injected clock (aware) and
are stored as ISO strings in UTC. ``redis`` must be created with ``decode_responses=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.state.admin import Conversations, Credentials, SettingsStore
from sync.state.audit import AuditEntry, AuditLog
from sync.state.choices import AdminChoices
from sync.state.keys import Keys
from sync.state.lock import RunLock
from sync.state.proposals import ProposalStore, RecordResult, StoredProposal
from sync.state.runlog import LastSync, RunLog
from sync.state.secrets import SecretBox
from sync.state.snapshots import SnapshotStore

__all__ = ["AuditEntry", "LastSync", "RecordResult", "StateStore", "StoredProposal"]


class StateStore:
    """The parts of the sync state, built on one client (wiring only)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        clock: Callable[[], datetime],
        box: SecretBox | None = None,
    ) -> None:
        self.proposals = ProposalStore(redis, keys, clock=clock)
        self.snapshots = SnapshotStore(redis, keys)
        self.runs = RunLog(redis, keys)
        self.audit_log = AuditLog(redis, keys, clock=clock)
        self.choices = AdminChoices(redis, keys, self.audit_log, clock=clock)
        self.settings = SettingsStore(redis, keys)
        self.tenant_credentials = Credentials(redis, keys, box, clock=clock)
        self.conversations = Conversations(redis, keys)
        self.run_lock = RunLock(redis, keys)

    # The bot (and its tests) reach these through ``service.store`` until the bot's branch
    # uses ``service.conversations`` and the parts; they go with that change.

    async def save_conversation(self, conv_id: str, ref: dict[str, Any]) -> None:
        await self.conversations.save_conversation(conv_id, ref)

    async def conversation(self, conv_id: str) -> dict[str, Any] | None:
        return await self.conversations.conversation(conv_id)

    async def set_notify_channel(self, conv_id: str) -> None:
        await self.conversations.set_notify_channel(conv_id)

    async def notify_channel(self) -> str | None:
        return await self.conversations.notify_channel()

    async def set_card_ref(self, pid: str, ref: dict[str, Any]) -> None:
        await self.conversations.set_card_ref(pid, ref)

    async def card_ref(self, pid: str) -> dict[str, Any] | None:
        return await self.conversations.card_ref(pid)

    async def pending_counts(self, tenant: str, directory: str) -> dict[str, int]:
        return await self.proposals.pending_counts(tenant, directory)

    async def number_owners(self, tenant: str) -> dict[str, str]:
        return await self.choices.number_owners(tenant)

    async def ignored(self, tenant: str) -> frozenset[str]:
        return await self.choices.ignored(tenant)

    async def get_settings_overrides(self) -> dict[str, Any] | None:
        return await self.settings.get_settings_overrides()

    async def credentials(
        self, tenant: str, box: object = None
    ) -> tuple[str, str, SecretStr] | None:
        return await self.tenant_credentials.credentials(tenant)
