"""The engine's face to the bot and the CLI: ``SyncService``, built by the app factory, builds
the parts (each one job, each in its module) and exposes the calls the bot makes as the parts'
own methods. No Teams, no cards, and no logic here beyond the wiring:

- ``tenant_set`` (:mod:`sync.service.tenants`): the config in force, tenants, directories;
- ``reader`` (:mod:`sync.service.reading`): reading Entra (full or delta);
- ``runs`` (:mod:`sync.service.runs`): read, plan, record;
- ``applier`` (:mod:`sync.service.applying`), ``decisions`` (:mod:`sync.service.decisions`):
  what admins decide on items;
- ``report`` (:mod:`sync.service.status`), ``settings`` (:mod:`sync.service.settings_editor`),
  ``connection`` (:mod:`sync.service.connection`), ``scheduler`` (:mod:`sync.service.scheduler`);
- ``store`` (:mod:`sync.state.store`) and ``conversations``: the state in Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import redis.asyncio as aioredis

from sync.config import Config, EnvSettings
from sync.directories.base import Directory
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
from sync.service.reminders import Reminders
from sync.service.runs import Runs
from sync.service.runtime import TenantRuntime
from sync.service.scheduler import Scheduler
from sync.service.settings_editor import SettingsEditor
from sync.service.shared import Shared
from sync.service.status import StatusReport
from sync.service.tenants import LiveConfig, Tenants
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
    """The composition root: the parts, and the bot's calls bound to them."""

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
        self.env, self.redis, self.keys, self.clock, self.sleep = env, redis, keys, clock, sleep
        self.box = SecretBox(env.ENTRA_SYNC_SECRET_KEY)
        self.live = LiveConfig(file=config, current=config)
        self.store = StateStore(redis, keys, clock=clock, box=self.box)
        self.conversations = self.store.conversations
        self.tenant_set = Tenants(self.live, self.store, redis=redis, keys=keys, sleep=sleep)
        self.reader = EntraReader(self.store.snapshots, clock)
        self.listeners = Listeners()
        self.digests = CardDigests(redis, keys)
        shared = Shared(
            self.live, self.store, self.tenant_set, self.reader, self.digests, self.listeners, clock
        )
        self.applier = Applier(shared)
        self.runs = Runs(shared, self.applier)
        self.decisions = Decisions(shared, self.runs, self.applier)
        self.reminders = Reminders(shared, redis, keys)
        self.scheduler = Scheduler(
            shared,
            self.runs.run_sync,
            sleep=sleep,
            tick_s=scheduler_tick_s,
            on_tick=self.reminders.tick,
        )
        self.report = StatusReport(shared, self.scheduler)
        self.settings = SettingsEditor(shared)
        self.connection = TenantConnection(
            shared, run_sync=self.runs.run_sync, status=self.report.status
        )
        # the bot's calls, as the parts' own methods
        self.run_sync = self.runs.run_sync
        self.sync_user = self.runs.sync_user
        self.preview = self.runs.preview
        self.run_due = self.scheduler.run_due
        self.recover_intents = self.applier.recover_intents
        self.decide = self.decisions.decide
        self.decide_all = self.decisions.decide_all
        self.guard_id = self.decisions.guard_id
        self.unignore_digest = self.decisions.unignore_digest
        self.digest = self.digests.digest
        self.pending = self.report.pending
        self.item = self.report.item
        self.ignored = self.report.ignored
        self.status = self.report.status
        self.audit = self.report.audit
        self.directory_choices = self.report.directory_choices
        self.settings_table = self.settings.settings_table
        self.update_settings = self.settings.update_settings
        self.connect = self.connection.connect
        self.disconnect = self.connection.disconnect
        self.add_listener = self.listeners.add_item_listener
        self.add_run_listener = self.listeners.add_run_listener
        self.add_reminder_listener = self.listeners.add_reminder_listener

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

    @staticmethod
    def consent_url(tenant_id: str, client_id: str) -> str:
        return consent_url(tenant_id, client_id)

    async def start(self, *, scheduler: bool = True) -> None:
        """Open the tenants and directories, finish interrupted decisions, start the
        scheduler."""
        await self.tenant_set.open()
        await self.applier.recover_intents()
        if scheduler:
            self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.tenant_set.close()
