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
- ``run_lock``: one run per tenant (:mod:`sync.state.lock`);
- ``schedule_claims``: one scheduled run per due slot across replicas
  (:mod:`sync.state.claims`);
- ``data_format``: the stored data-format version and its upgrade steps
  (:mod:`sync.state.dataformat`).

Every key comes from ``sync.state.keys.Keys``; times come from the injected clock (aware) and
are stored as ISO strings in UTC. ``redis`` must be created with ``decode_responses=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import redis.asyncio as aioredis

from sync.state.admin import Conversations, Credentials, SettingsStore
from sync.state.audit import AuditEntry, AuditLog
from sync.state.choices import AdminChoices
from sync.state.claims import ScheduleClaims
from sync.state.dataformat import DataFormat
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
        self.choices = AdminChoices(redis, keys, clock=clock)
        self.settings = SettingsStore(redis, keys)
        self.tenant_credentials = Credentials(redis, keys, box, clock=clock)
        self.conversations = Conversations(redis, keys)
        self.run_lock = RunLock(redis, keys)
        self.schedule_claims = ScheduleClaims(redis, keys)
        self.data_format = DataFormat(redis, keys)
