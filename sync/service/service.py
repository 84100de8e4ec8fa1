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
- ``store`` (:mod:`sync.state.store`) and ``conversations``: the state in Redis;
- ``mailer`` (:mod:`sync.mail.notifier`): the digest mail of each run;
- ``metrics`` (:mod:`sync.metrics`), ``observer`` (:mod:`sync.service.observe`: a log line
  and the counts per run and decision), ``health`` (:mod:`sync.service.health`: readiness).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from sync.config import Config, EnvSettings
from sync.directories.base import Directory
from sync.graph.client import GraphClient
from sync.mail.notifier import MailNotifier
from sync.metrics import Metrics
from sync.models import Kind
from sync.service.applying import Applier
from sync.service.connection import TenantConnection, connect_certificate, consent_url
from sync.service.decisions import BULK_VERBS, Decisions
from sync.service.digests import CardDigests
from sync.service.health import Health
from sync.service.listeners import Listeners
from sync.service.observe import Observer
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

GIL_SWITCH_INTERVAL_S = 0.001

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
        metrics: Metrics | None = None,
    ) -> None:
        self.env, self.redis, self.keys, self.clock, self.sleep = env, redis, keys, clock, sleep
        self.metrics = metrics if metrics is not None else Metrics()
        self.box = SecretBox(env.ENTRA_SYNC_SECRET_KEY, env.ENTRA_SYNC_SECRET_KEYS_OLD)
        self.live = LiveConfig(file=config, current=config)
        self.store = StateStore(redis, keys, clock=clock, box=self.box)
        self.conversations = self.store.conversations
        self.tenant_set = Tenants(
            self.live,
            self.store,
            redis=redis,
            keys=keys,
            sleep=sleep,
            certificate=connect_certificate(env),
            metrics=self.metrics,
        )
        self.reader = EntraReader(self.store.snapshots, clock)
        self.listeners = Listeners()
        self.observer = Observer(self.metrics)  # the first run listener: logs and counts
        self.listeners.add_run_listener(self.observer.run_done)
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
        self.health = Health(shared, redis, self.metrics)
        # the bot's calls, as the parts' own methods
        self.run_sync = self.runs.run_sync
        self.sync_user = self.runs.sync_user
        self.preview = self.runs.preview
        self.run_due = self.scheduler.run_due
        self.recover_intents = self.applier.recover_intents
        self.readiness = self.health.readiness
        self.refresh_pending = self.health.refresh_pending
        self.bulk_set = self.decisions.bulk_set
        self.guard_id = self.decisions.guard_id
        self.unignore_digest = self.decisions.unignore_digest
        self.digest = self.digests.digest
        self.pending = self.report.pending
        self.item = self.report.item
        self.ignored = self.report.ignored
        self.status = self.report.status
        self.audit = self.report.audit
        self.directory_choices = self.report.directory_choices
        self.directory_user = self.runs.directory_user
        self.settings_table = self.settings.settings_table
        self.update_settings = self.settings.update_settings
        self.save_settings = self.settings.save_settings
        self.connect = self.connection.connect
        self.disconnect = self.connection.disconnect
        self.add_listener = self.listeners.add_item_listener
        self.add_run_listener = self.listeners.add_run_listener
        # e-mail: one digest mail per run to [notify] email (sync.mail)
        self.mailer = MailNotifier(
            settings=lambda: self.live.current.notify,
            graph_for=self._graph_for,
            channel_ref=self._notify_channel_ref,
            redis=redis,
            keys=keys,
            clock=clock,
            environ=os.environ,
        )
        self.listeners.add_whole_run_listener(self.mailer.on_runs)
        self.mail_status = self.mailer.last_result
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

    def _graph_for(self, tenant: str) -> GraphClient | None:
        """The Graph client that sends mail: the named tenant's (empty: the first tenant's);
        None when that tenant is not open."""
        name = tenant or next(iter(self.tenant_set.names()), "")
        rt = self.tenant_set.runtimes.get(name)
        return rt.graph if rt is not None else None

    async def _notify_channel_ref(self) -> dict[str, Any] | None:
        channel = await self.conversations.notify_channel()
        return await self.conversations.conversation(channel) if channel else None

    @staticmethod
    def consent_url(tenant_id: str, client_id: str) -> str:
        return consent_url(tenant_id, client_id)

    async def decide(
        self, pid: str, verb: str, *, actor: Actor, digest: str, inputs: Mapping[str, str]
    ) -> Decision:
        """One card press (``Decisions.decide``), logged and counted."""
        decision = await self.decisions.decide(pid, verb, actor=actor, digest=digest, inputs=inputs)
        self.observer.decided(verb, actor, decision)
        return decision

    async def decide_bulk(self, kind: Kind, digest: str, *, actor: Actor) -> list[Decision] | None:
        """Every item of the confirmed bulk set decided (``Decisions.decide_bulk``), each
        decision logged and counted; None when the set changed since it was shown."""
        decisions = await self.decisions.decide_bulk(kind, digest, actor=actor)
        verb = BULK_VERBS[kind]
        for d in decisions or ():
            self.observer.decided(verb, actor, d)
        return decisions

    def connect_certificate_thumbprint(self) -> str | None:
        """The SHA-1 thumbprint of the certificate `connect` may use (None: secrets only)."""
        cert = self.tenant_set.certificate
        return cert.sha1_thumbprint if cert is not None else None

    async def start(self, *, scheduler: bool = True) -> None:
        """Open the tenants and directories, finish interrupted decisions, start the
        scheduler. A store in an older data format is upgraded first; a newer one is
        refused (StateError ``store_too_new``)."""
        await self.store.data_format.ensure()
        # A plan runs in a thread while the event loop answers Teams. CPython passes the GIL
        # to a waiting thread every 5 ms by default, and answering a card refresh needs the
        # loop to get it back after each of its awaits: at 5 ms a refresh waited 0.4 s during
        # a 100,000-user plan, at 1 ms 0.26 s (p99, `bot.bench_cards`). Process-wide.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        await self.tenant_set.open()
        await self.applier.recover_intents()
        if scheduler:
            self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.mailer.aclose()  # the mails in flight may still need a tenant's Graph
        await self.tenant_set.close()
        self.runs.release_frozen()
