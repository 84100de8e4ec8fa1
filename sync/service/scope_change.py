"""A new scope filter from the settings card: tried against Graph before it is saved.

Graph alone judges the filter (a refused one comes back with Graph's own message). A filter
Graph takes is planned against each tenant's users as held, without recording anything: the
impact (users in scope before and after, the removals the next sync would propose, whether
the mass-removal guard would hold them back) is shown, and the admin confirms. The confirm
button carries an HMAC of the filter (and groups) that this server issued, so a save that did
not come through the preview of that very filter is refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from sync.config import Config
from sync.errors import ScopeFilterRejected
from sync.models import EntraSnapshot, Kind
from sync.plan.planner import plan as make_plan
from sync.plan.planner import scope_cause
from sync.service.reading import scope_members, select_for
from sync.service.shared import Shared


@dataclass(frozen=True, slots=True)
class ScopeImpact:
    """What a new scope would do to one tenant and directory."""

    tenant: str
    directory: str
    in_scope_before: int  # Entra users in scope under the settings in force
    in_scope_after: int  # ... under the new settings
    removals: int  # linked users the next sync would propose to remove
    held_back: bool  # the mass-removal guard would hold those removals back


@dataclass(frozen=True, slots=True)
class ScopeCheck:
    """The result of trying a new scope: Graph's refusal, or the impact and the token that
    confirms exactly this scope."""

    error: str = ""  # Graph's message when it refused the filter
    impacts: tuple[ScopeImpact, ...] = ()
    token: str = ""


def scope_changed(before: Config, after: Config) -> bool:
    """Does saving ``after`` change the filter (or the groups a filter is combined with)?"""
    a, b = before.scope, after.scope
    return bool(a.filter or b.filter) and (a.filter, a.groups) != (b.filter, b.groups)


class ScopeChanges:
    def __init__(self, shared: Shared) -> None:
        self._shared = shared

    async def token(self, config: Config) -> str:
        """The HMAC the confirm button carries for ``config``'s scope."""
        scope = config.scope
        key = "scope-filter\x00" + scope.filter + "\x00" + ",".join(scope.groups)
        return await self._shared.digests.digest(key)

    async def confirmed(self, config: Config, token: str) -> bool:
        return bool(token) and await self._shared.digests.valid(
            "scope-filter\x00" + config.scope.filter + "\x00" + ",".join(config.scope.groups),
            token,
        )

    async def check(self, new: Config) -> ScopeCheck:
        """Ask Graph for the users ``new``'s scope takes (per tenant) and plan with them.
        Returns Graph's message when it refuses the filter; other failures raise."""
        current = self._shared.live.current
        impacts: list[ScopeImpact] = []
        tenants = self._shared.tenants
        for name, rt in tenants.runtimes.items():
            try:
                members = await scope_members(rt, new)
            except ScopeFilterRejected as e:
                return ScopeCheck(error=e.graph_message or e.message)
            snap = await self._shared.reader.snapshot(name)
            if snap is None:
                snap = await rt.graph.read_users(select_for(current), groups=())
            now = replace(snap, group_members=await self._members_now(name, snap, current))
            after = replace(snap, group_members=members)
            for d in rt.config.directory_names:
                users = list(await tenants.directories[d].list_users())
                state = await self._shared.store.choices.state_view(name, d)
                p = await asyncio.to_thread(make_plan, after, users, state, new)
                removals = len(p.by_kind(Kind.REMOVAL)) + sum(b.count for b in p.blocked)
                impacts.append(
                    ScopeImpact(
                        name,
                        d,
                        _in_scope(now, current),
                        _in_scope(after, new),
                        removals,
                        bool(p.blocked),
                    )
                )
        return ScopeCheck(impacts=tuple(impacts), token=await self.token(new))

    async def _members_now(
        self, tenant: str, snap: EntraSnapshot, current: Config
    ) -> frozenset[str] | None:
        """The scope in force: the held snapshot's, else asked from Graph."""
        if snap.group_members is not None or not (current.scope.groups or current.scope.filter):
            return snap.group_members
        return await scope_members(self._shared.tenants.runtimes[tenant], current)


def _in_scope(snap: EntraSnapshot, config: Config) -> int:
    return sum(1 for u in snap.users if scope_cause(u, snap, config) is None)
