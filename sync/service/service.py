"""The engine's face to the bot and the CLI: ``SyncService``, built by the app factory, holds
the parts (each one job, each in its module) and hands the bot's calls to them. No Teams, no
cards here, and no logic beyond the wiring.

- ``tenants`` (:mod:`sync.service.tenants`): the config in force, tenants and directories;
- ``reader`` (:mod:`sync.service.reading`): reading Entra (full or delta);
- ``runs`` (:mod:`sync.service.runs`): read, plan, record;
- ``applier`` (:mod:`sync.service.applying`) and ``decisions``
  (:mod:`sync.service.decisions`): what admins decide on items;
- ``report`` (:mod:`sync.service.status`), ``settings`` (:mod:`sync.service.settings_editor`),
  ``connection`` (:mod:`sync.service.connection`), ``scheduler`` (:mod:`sync.service.scheduler`);
- ``store`` (:mod:`sync.state.store`) and ``conversations``: the state in Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import Config, EnvSettings
from sync.directories.base import Directory
from sync.models import DirectoryUser, Kind, Plan
from sync.service.applying import Applier
from sync.service.connection import TenantConnection, consent_url
from sync.service.decisions import Decisions
from sync.service.digests import CardDigests
from sync.service.listeners import Listeners
from sync.service.reading import EntraReader
from sync.service.records import (
    CONNECTED,
    Actor,
    Decision,
    Item,
    ItemListener,
    RunListener,
    RunResult,
    TenantStatus,
    Trigger,
)
from sync.service.runs import Runs
from sync.service.runtime import TenantRuntime
from sync.service.scheduler import Scheduler
from sync.service.settings_editor import SettingsEditor
from sync.service.status import StatusReport
from sync.service.tenants import LiveConfig, Tenants
from sync.state.audit import AuditEntry
from sync.state.keys import Keys
from sync.state.secrets import SecretBox
from sync.state.store import StateStore

__all__ = [
    "CONNECTED",
    "Actor",
    "Decision",
    "Item",
    "ItemListener",
    "RunListener",
    "RunResult",
    "SyncService",
    "TenantStatus",
    "Trigger",
]


class SyncService:
    """The composition root: builds the parts and delegates the bot's calls to them."""

    def __init__(
        self,
        *,
        config: Config,
        env: EnvSettings,
        redis: aioredis.Redis,
        keys: Keys,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        scheduler_tick_s: float = 30.0,
    ) -> None:
        self.env = env
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self.box = SecretBox(env.ENTRA_SYNC_SECRET_KEY)
        self.live = LiveConfig(file=config, current=config)
        self.store = StateStore(redis, keys, clock=clock, box=self.box)
        self.conversations = self.store.conversations
        self.listeners = Listeners()
        self.digests = CardDigests(redis, keys)
        self.tenant_set = Tenants(self.live, self.store, redis=redis, keys=keys, sleep=sleep)
        self.reader = EntraReader(self.store.snapshots)
        parts = (self.live, self.store, self.tenant_set, self.reader)
        self.applier = Applier(*parts, self.digests, self.listeners)
        self.runs = Runs(*parts, self.applier, self.digests, self.listeners, clock=clock)
        self.decisions = Decisions(*parts, self.runs, self.applier, self.digests, self.listeners)
        self.scheduler = Scheduler(
            self.live,
            self.store.runs,
            self.tenant_set,
            self.runs.run_sync,
            clock=clock,
            sleep=sleep,
            tick_s=scheduler_tick_s,
        )
        self.report = StatusReport(
            self.store, self.tenant_set, self.reader, self.digests, self.scheduler
        )
        self.settings = SettingsEditor(self.live, self.store)
        self.connection = TenantConnection(
            self.store,
            self.tenant_set,
            self.reader,
            run_sync=self.runs.run_sync,
            status=self.report.status,
        )

    # --- wiring the bot, the CLI and the tests read --------------------------------------

    @property
    def config(self) -> Config:
        """The config in force (the file's, with the settings saved in Teams over it)."""
        return self.live.current

    @config.setter
    def config(self, config: Config) -> None:
        self.live.current = config

    @property
    def tenants(self) -> dict[str, TenantRuntime]:
        return self.tenant_set.runtimes

    @property
    def directories(self) -> dict[str, Directory]:
        return self.tenant_set.directories

    async def start(self, *, scheduler: bool = True) -> None:
        await self.tenant_set.open()
        await self.applier.recover_intents()
        if scheduler:
            self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.tenant_set.close()

    def add_listener(self, listener: ItemListener) -> None:
        self.listeners.add_item_listener(listener)

    def add_run_listener(self, listener: RunListener) -> None:
        self.listeners.add_run_listener(listener)

    # --- delegations (the bot's calls, unchanged) ------------------------------------------

    async def run_sync(
        self, tenant: str | None = None, *, actor: Actor | None = None, trigger: Trigger = "manual"
    ) -> list[RunResult]:
        return await self.runs.run_sync(tenant, actor=actor, trigger=trigger)

    async def run_due(self) -> list[RunResult]:
        return await self.scheduler.run_due()

    async def sync_user(self, query: str, *, actor: Actor) -> tuple[list[RunResult], list[Item]]:
        """`sync <name | e-mail | number>`: a sync run, then the pending items of that user."""
        results = await self.runs.run_sync(actor=actor)
        found = self.runs.find_users(query)
        items = [
            i
            for i in await self.report.pending()
            if i.proposal.entra_id in found or set(i.proposal.entra_ids) & found
        ]
        return results, items

    async def preview(self) -> list[tuple[str, str, Plan]]:
        return await self.runs.preview()

    async def recover_intents(self) -> int:
        return await self.applier.recover_intents()

    async def pending(self, kind: Kind | None = None) -> list[Item]:
        return await self.report.pending(kind)

    async def item(self, pid: str) -> Item | None:
        return await self.report.item(pid)

    async def decide(
        self, pid: str, verb: str, *, actor: Actor, digest: str, inputs: Mapping[str, str]
    ) -> Decision:
        return await self.decisions.decide(pid, verb, actor=actor, digest=digest, inputs=inputs)

    async def decide_all(self, kind: Kind, *, actor: Actor) -> list[Decision]:
        pending = await self.report.pending(kind)
        return await self.decisions.decide_all(kind, actor=actor, pending=pending)

    async def digest(self, pid: str) -> str:
        return await self.digests.digest(pid)

    async def guard_id(self, tenant: str, directory: str) -> tuple[str, str]:
        return await self.decisions.guard_id(tenant, directory)

    async def unignore_digest(self, entra_id: str) -> str:
        return await self.decisions.unignore_digest(entra_id)

    async def ignored(self) -> list[tuple[str, str, str]]:
        return await self.report.ignored()

    async def status(self) -> list[TenantStatus]:
        return await self.report.status()

    async def audit(self, limit: int = 20) -> list[AuditEntry]:
        return await self.report.audit(limit)

    async def directory_choices(self, directory: str, limit: int = 100) -> list[DirectoryUser]:
        return await self.report.directory_choices(directory, limit)

    async def settings_table(self) -> dict[str, Any]:
        return await self.settings.settings_table()

    async def update_settings(self, form: Mapping[str, str], *, actor: Actor) -> dict[str, str]:
        return await self.settings.update_settings(form, actor=actor)

    def consent_url(self, tenant_id: str, client_id: str) -> str:
        return consent_url(tenant_id, client_id)

    async def connect(
        self, tenant_id: str, client_id: str, secret: SecretStr, *, actor: Actor
    ) -> TenantStatus:
        return await self.connection.connect(tenant_id, client_id, secret, actor=actor)

    async def disconnect(self, tenant: str | None, *, actor: Actor) -> int:
        return await self.connection.disconnect(tenant, actor=actor)
