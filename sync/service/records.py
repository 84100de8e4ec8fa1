"""The records the bot receives from the service, and the listener types it registers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sync.errors import SyncError
from sync.models import Blocked, Kind, Proposal, ProposalState
from sync.service.credentials import CredentialExpiry

Trigger = Literal["manual", "scheduled", "user"]

CONNECTED = "entra"  # the tenant connected from Teams with `connect`


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: the Entra object id (from Teams ``from.aadObjectId``) and a display name.
    The system itself acts as ``Actor.system()``."""

    id: str
    name: str

    @classmethod
    def system(cls) -> Actor:
        return cls(id="system", name="Entra Sync")


@dataclass(frozen=True, slots=True)
class Item:
    """A proposal as the bot sees it: the proposal, its state, who decided, and its digest
    (an HMAC of the id the server issued; the card carries it back)."""

    proposal: Proposal
    state: ProposalState
    tenant: str
    directory: str
    digest: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    verb: str | None = None

    @property
    def id(self) -> str:
        return self.proposal.id

    @property
    def kind(self) -> Kind:
        return self.proposal.kind


@dataclass(frozen=True, slots=True)
class RunResult:
    tenant: str
    directory: str
    status: Literal["ok", "failed", "skipped"]
    trigger: Trigger
    started_at: datetime
    finished_at: datetime
    error: SyncError | None = None
    new_items: Sequence[Item] = ()
    superseded: Sequence[str] = ()
    auto_applied: Sequence[Item] = ()
    blocked: Sequence[Blocked] = ()
    counters: Mapping[str, int] = field(default_factory=dict)
    mode: Literal["full", "delta"] = "full"
    # where the run's time went (seconds of wall time per step: read, listing, plan, record,
    # rest, last_sync): diagnostics for the benchmark and the logs, not business time
    phases: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an admin action on one item."""

    outcome: Literal["done", "refused", "already", "stale", "not_found", "confirm", "failed"]
    item: Item | None
    message: str
    error: SyncError | None = None


@dataclass(frozen=True, slots=True)
class TenantStatus:
    tenant: str
    directory: str
    connected: bool
    error: dict[str, Any] | None
    last_sync_at: datetime | None
    last_status: str | None
    next_sync_at: datetime | None
    synced: int
    syncable: int
    pending: Mapping[str, int]
    credential: CredentialExpiry | None = None  # the app secret's / certificate's expiry


# Listeners the bot registers: an item decided elsewhere (to update its card in place), a run
ItemListener = Callable[[Item], Awaitable[None]]
RunListener = Callable[[RunResult], Awaitable[None]]
