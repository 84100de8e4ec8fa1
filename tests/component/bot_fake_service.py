"""A small stateful stand-in for ``sync.service.service.SyncService`` (same methods, records),
so the bot's component tests run before/without the engine. The conversation store is the real
``sync.state.store.StateStore`` on fakeredis."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from sync.config import Config
from sync.metrics import Metrics
from sync.models import Change, DirectoryUser, Kind, Plan, Proposal, ProposalState
from sync.service.decisions import BulkSet
from sync.service.health import Check, Readiness
from sync.service.service import (
    Actor,
    Decision,
    Item,
    ItemListener,
    RunListener,
    RunResult,
    TenantStatus,
)
from sync.service.settings_editor import SettingsOutcome
from sync.state.admin import Conversations
from sync.state.store import StateStore

DONE_STATE = {
    "accept": ProposalState.APPLIED,
    "apply": ProposalState.APPLIED,
    "link": ProposalState.APPLIED,
    "create": ProposalState.APPLIED,
    "remove_sync": ProposalState.APPLIED,
    "delete_user_confirm": ProposalState.APPLIED,
    "pick_owner": ProposalState.APPLIED,
    "ignore": ProposalState.IGNORED,
}


def match_proposal(n: int, label: str | None = None) -> Proposal:
    return Proposal(
        kind=Kind.MATCH,
        entra_id=f"e{n}",
        app_user_id=f"u{n}",
        reason=f"phone +46700000{n:03d}",
        match_key="phone",
        match_value=f"+46700000{n:03d}",
        label=label or f"User {n}",
        changes={"display_name": Change(f"old {n}", f"User {n}")},
    )


@dataclass
class FakeSyncService:
    config: Config
    store: StateStore
    clock: Any
    entra_count: int = 3
    items: dict[str, Item] = field(default_factory=dict)
    applied: list[tuple[str, str, str]] = field(default_factory=list)  # (pid, verb, actor)
    listeners: list[ItemListener] = field(default_factory=list)
    run_listeners: list[RunListener] = field(default_factory=list)
    reminder_listeners: list[Any] = field(default_factory=list)
    settings: dict[str, Any] = field(
        default_factory=lambda: {"schedule": {"mode": "manual", "at": "02:00", "every_hours": 12}}
    )
    ignored_users: list[tuple[str, str, str]] = field(default_factory=list)
    synced: int = 0
    started: bool = False
    connected_with: list[tuple[str, str, str]] = field(default_factory=list)
    disconnected: int = 0
    last_form: dict[str, str] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)

    async def readiness(self) -> Readiness:
        return Readiness(checks=(Check("redis", ok=True, critical=True),))

    async def refresh_pending(self) -> None:
        self.metrics.set_pending({"match": len(self.items)})

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    @property
    def conversations(self) -> Conversations:
        return self.store.conversations

    def add_listener(self, listener: ItemListener) -> None:
        self.listeners.append(listener)

    def add_run_listener(self, listener: RunListener) -> None:
        self.run_listeners.append(listener)

    async def digest(self, pid: str) -> str:
        return hmac.new(b"fake-service-key", pid.encode(), hashlib.sha256).hexdigest()[:24]

    def _item(self, p: Proposal) -> Item:
        return Item(
            proposal=p,
            state=ProposalState.PENDING,
            tenant="contoso",
            directory="main",
            digest=hashlib.sha256(p.id.encode()).hexdigest()[:12],
        )

    async def run_sync(
        self, tenant: str | None = None, *, actor: Actor, trigger: Any = "manual"
    ) -> list[RunResult]:
        new = []
        for n in range(self.entra_count):
            p = match_proposal(n)
            if p.id not in self.items:
                self.items[p.id] = self._item(p)
                new.append(self.items[p.id])
        now = self.clock()
        result = RunResult(
            tenant="contoso",
            directory="main",
            status="ok",
            trigger=trigger,
            started_at=now,
            finished_at=now,
            new_items=new,
        )
        for listener in self.run_listeners:
            await listener(result)
        return [result]

    async def sync_user(self, query: str, *, actor: Actor) -> tuple[list[RunResult], list[Item]]:
        found = [i for i in self.items.values() if query.lower() in i.proposal.label.lower()]
        return [], found

    async def preview(self) -> list[tuple[str, str, Plan]]:
        return [("contoso", "main", Plan(proposals=(match_proposal(0),)))]

    async def pending(self, kind: Kind | None = None) -> list[Item]:
        return [
            i
            for i in self.items.values()
            if i.state is ProposalState.PENDING and (kind is None or i.kind is kind)
        ]

    async def item(self, pid: str) -> Item | None:
        return self.items.get(pid)

    async def decide(
        self, pid: str, verb: str, *, actor: Actor, digest: str, inputs: Mapping[str, str]
    ) -> Decision:
        item = self.items.get(pid)
        if item is None:
            return Decision("not_found", None, "not found")
        if item.state is not ProposalState.PENDING:
            return Decision("already", item, "already")
        if digest != item.digest:
            return Decision("stale", item, "changed")
        if verb == "delete_user":
            return Decision("confirm", item, "confirm")
        if verb not in DONE_STATE:
            return Decision("refused", item, f"{verb} does not apply to a {item.kind}")
        decided = replace(
            item, state=DONE_STATE[verb], decided_by=actor.name, decided_at=self.clock(), verb=verb
        )
        self.items[pid] = decided
        self.applied.append((pid, verb, actor.id))
        self.synced += 1
        for listener in self.listeners:
            await listener(decided)
        return Decision("done", decided, "done")

    async def bulk_set(self, kind: Kind) -> BulkSet:
        included = tuple(await self.pending(kind))
        ids = ",".join(sorted(i.id for i in included))
        digest = hashlib.sha256(f"bulk:{kind.value}:{ids}".encode()).hexdigest()[:24]
        return BulkSet(kind, included, (), digest)

    async def decide_bulk(self, kind: Kind, digest: str, *, actor: Actor) -> list[Decision] | None:
        bulk = await self.bulk_set(kind)
        if not hmac.compare_digest(digest.encode(), bulk.digest.encode()):
            return None
        return [
            await self.decide(i.id, "accept", actor=actor, digest=i.digest, inputs={})
            for i in bulk.included
        ]

    def add_reminder_listener(self, listener: Any) -> None:
        self.reminder_listeners.append(listener)

    async def guard_id(self, tenant: str, directory: str) -> tuple[str, str]:
        return f"guard:{tenant}:{directory}", "g-digest"

    async def unignore_digest(self, entra_id: str) -> str:
        return f"u-{entra_id}"

    async def ignored(self) -> list[tuple[str, str, str]]:
        return list(self.ignored_users)

    async def mail_status(self) -> None:
        return None

    async def status(self) -> list[TenantStatus]:
        counts: dict[str, int] = {}
        for i in await self.pending():
            counts[i.kind.value] = counts.get(i.kind.value, 0) + 1
        return [
            TenantStatus(
                tenant="contoso",
                directory="main",
                connected=True,
                error=None,
                last_sync_at=self.clock(),
                last_status="ok",
                next_sync_at=None,
                synced=self.synced,
                syncable=self.entra_count,
                pending=counts,
            )
        ]

    async def audit(self, limit: int = 20) -> Sequence[Any]:
        return []

    async def settings_table(self) -> dict[str, Any]:
        return dict(self.settings)

    async def update_settings(self, form: Mapping[str, str], *, actor: Actor) -> dict[str, str]:
        if form.get("schedule.mode") not in (None, "manual", "daily", "interval"):
            return {"schedule.mode": "choose manual, daily or interval"}
        self.settings.update(form)
        self.last_form = dict(form)
        return {}

    async def save_settings(
        self, form: Mapping[str, str], *, actor: Actor, confirm: str = ""
    ) -> SettingsOutcome:
        errors = await self.update_settings(form, actor=actor)
        return SettingsOutcome(saved=not errors, errors=errors)

    async def connect(
        self, tenant_id: str, client_id: str, secret: SecretStr, *, actor: Actor
    ) -> TenantStatus:
        self.connected_with.append((tenant_id, client_id, secret.get_secret_value()))
        return (await self.status())[0]

    def connect_certificate_thumbprint(self) -> str | None:
        return None

    def consent_url(self, tenant_id: str, client_id: str) -> str:
        return f"https://login.microsoftonline.com/{tenant_id}/adminconsent?client_id={client_id}"

    async def disconnect(self, tenant: str | None, *, actor: Actor) -> None:
        self.disconnected += 1

    async def directory_choices(self, directory: str, limit: int = 100) -> list[DirectoryUser]:
        return [DirectoryUser(id=f"u{n}", display_name=f"Dir {n}") for n in range(3)]

    async def directory_user(self, directory: str, user_id: str | None) -> DirectoryUser | None:
        return next((u for u in await self.directory_choices(directory) if u.id == user_id), None)

    def add_removal(self) -> Item:
        p = Proposal(
            kind=Kind.REMOVAL,
            entra_id="gone",
            app_user_id="u9",
            reason="deleted in Entra",
            removal_cause="deleted",
            label="Gone User",
        )
        self.items[p.id] = self._item(p)
        return self.items[p.id]

    def add_pending(self, count: int) -> list[Item]:
        out = []
        for n in range(count):
            p = match_proposal(1000 + n)
            self.items[p.id] = self._item(p)
            out.append(self.items[p.id])
        return out


def now_fixed() -> datetime:
    from datetime import UTC

    return datetime(2026, 1, 5, 14, 2, tzinfo=UTC)
