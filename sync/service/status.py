"""What the bot shows: items, each tenant's status, the audit trail, ignored users, and the
directory users an admin may link to."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sync.errors import AuthError, GraphPermissionDenied
from sync.models import DirectoryUser, Kind
from sync.service import listing
from sync.service.credentials import CredentialExpiry, check_expiry
from sync.service.records import Item, TenantStatus
from sync.service.runtime import TenantRuntime
from sync.service.scheduler import Scheduler
from sync.service.shared import Shared
from sync.state.audit import AuditEntry

EXPIRY_RECHECK = timedelta(hours=6)
EXPIRY_RECHECK_UNKNOWN = timedelta(minutes=10)
EXPIRY_CHECK_TIMEOUT_S = 15.0


class StatusReport:
    def __init__(self, shared: Shared, scheduler: Scheduler) -> None:
        self._store, self._tenants = shared.store, shared.tenants
        self._reader, self._digests = shared.reader, shared.digests
        self._scheduler = scheduler
        self._live, self._clock = shared.live, shared.clock
        self._expiry: dict[str, tuple[TenantRuntime, datetime, CredentialExpiry]] = {}

    async def pending(self, kind: Kind | None = None) -> list[Item]:
        """Every pending item, in the one display order (``sync.service.listing``)."""
        items = [
            await self._digests.item(sp) for sp in await self._store.proposals.pending(kind=kind)
        ]
        return listing.in_display_order(items, lambda i: i.proposal)

    async def item(self, pid: str) -> Item | None:
        sp = await self._store.proposals.get(pid)
        return await self._digests.item(sp) if sp is not None else None

    async def status(self) -> list[TenantStatus]:
        """One line per tenant and directory: connected?, the last run, the next, counters
        (the last run's plus decisions since) and pending items by kind."""
        out: list[TenantStatus] = []
        for name in self._tenants.names():
            last = await self._store.runs.last_sync(name)
            err = self._tenants.errors.get(name)
            error = err.to_dict() if err else (last.error if last else None)
            counters = await self._store.runs.counters(name)
            expiry = await self.credential_expiry(name)
            for d in self._tenants.directories_of(name):
                out.append(
                    TenantStatus(
                        tenant=name,
                        directory=d,
                        connected=error is None or not is_connection_error(error),
                        error=error,
                        last_sync_at=last.at if last else None,
                        last_status=last.status if last else None,
                        next_sync_at=await self._scheduler.next_sync(name),
                        synced=counters.get("synced", 0),
                        syncable=counters.get("syncable", 0),
                        pending=await self._store.proposals.pending_counts(name, d),
                        credential=expiry,
                    )
                )
        return out

    async def credential_expiry(self, name: str) -> CredentialExpiry | None:
        """When the tenant's secret or certificate expires (None: simulated or not opened).
        Read from Graph at most every few hours per tenant (an unknown answer: minutes)."""
        runtime = self._tenants.runtimes.get(name)
        if runtime is None or runtime.credential is None or not runtime.config.client_id:
            return None
        now = self._clock()
        cached = self._expiry.get(name)
        if cached is not None and cached[0] is runtime and now < cached[1]:
            return cached[2]
        try:
            async with asyncio.timeout(EXPIRY_CHECK_TIMEOUT_S):
                expiry = await check_expiry(
                    runtime.graph,
                    runtime.config.client_id,
                    runtime.credential,
                    now=now,
                    warn_days=self._live.current.credentials.warn_days,
                )
        except TimeoutError:
            expiry = CredentialExpiry(
                "unchecked", "secret", None, None, "Expiry not checked: Graph did not answer."
            )
        recheck_soon = expiry.state in ("unknown", "unchecked")
        ttl = EXPIRY_RECHECK_UNKNOWN if recheck_soon else EXPIRY_RECHECK
        self._expiry[name] = (runtime, now + ttl, expiry)
        return expiry

    async def audit(self, limit: int = 20) -> list[AuditEntry]:
        return await self._store.audit_log.recent_audit(limit)

    async def ignored(self) -> list[tuple[str, str, str]]:
        """(tenant, Entra id, name) of every ignored user."""
        out = []
        for tenant in self._tenants.runtimes:
            users = await self._reader.stored_users(tenant)
            for eid in sorted(await self._store.choices.ignored(tenant)):
                u = users.get(eid)
                out.append((tenant, eid, u.label if u else eid))
        return out

    async def directory_choices(self, directory: str, limit: int = 100) -> list[DirectoryUser]:
        """Active directory users not linked to Entra (the targets of `link`)."""
        d = self._tenants.directories.get(directory)
        if d is None:
            return []
        return [u for u in await d.list_users() if u.entra_id is None and u.active][:limit]


def is_connection_error(error: Mapping[str, Any]) -> bool:
    code = str(error.get("code", ""))
    return code.startswith("AADSTS") or code in {
        AuthError.code,
        GraphPermissionDenied.code,
        "auth_unavailable",
        "bad_config",
    }
