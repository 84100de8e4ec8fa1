"""Reading a tenant from Microsoft Graph: a delta round when a delta link and a stored
snapshot exist, else a full read; the snapshot and the link are saved for the next round."""

from __future__ import annotations

import hashlib
import logging
import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from sync.config import Config
from sync.errors import DeltaExpired, SyncError
from sync.graph.attributes import GRAPH_USER_ATTRIBUTES
from sync.models import EntraSnapshot, EntraUser
from sync.plan.planner import read_numbers
from sync.service.runtime import TenantRuntime
from sync.state.snapshots import SnapshotStore, snapshot_part

log = logging.getLogger(__name__)

# Entra keeps a deleted user restorable for 30 days ("deleted items"), then purges it
SOFT_DELETE_KEPT = timedelta(days=30)

# Attributes every read needs besides the mapping: matching, scope, and names for cards.
BASE_SELECT = (
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "mobilePhone",
    "businessPhones",
)


@dataclass(frozen=True, slots=True)
class Reading:
    """One read: the snapshot, how it was read, and (delta rounds) the ids Graph reported."""

    snapshot: EntraSnapshot
    mode: Literal["full", "delta"]
    changed: frozenset[str] | None = None


def select_for(config: Config) -> tuple[str, ...]:
    """Every read's ``$select``: the base, the mapping, and the properties the scope filter
    names (a delta round reports a change only to selected properties)."""
    extra = filter_attributes(config.scope.filter)
    return tuple(dict.fromkeys((*BASE_SELECT, *config.mapping.attributes, *extra)))


_FILTER_WORD = re.compile(r"'(?:[^']|'')*'|([A-Za-z_][A-Za-z0-9_]*)")


def filter_attributes(scope_filter: str) -> tuple[str, ...]:
    """The Graph user properties a filter names, outside its string literals (not a parse:
    the filter stays Graph's to judge)."""
    words = (m.group(1) for m in _FILTER_WORD.finditer(scope_filter) if m.group(1))
    return tuple(
        dict.fromkeys(
            w for w in words if w in GRAPH_USER_ATTRIBUTES or w == "onPremisesExtensionAttributes"
        )
    )


def link_key(select: Sequence[str]) -> str:
    """A delta link tracks the selected properties: a new select needs a new link."""
    return "d" + hashlib.sha256(",".join(sorted(select)).encode()).hexdigest()[:10]


def same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


class EntraReader:
    """Reads tenants; ``latest`` holds each tenant's last snapshot (for finding users by name
    and for planning again without reading Graph)."""

    def __init__(
        self, snapshots: SnapshotStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._snapshots = snapshots
        self._clock = clock
        self.latest: dict[str, EntraSnapshot] = {}
        # tenant -> (the scope filter, the ids Graph returned for it at the last read)
        self._filtered: dict[str, tuple[str, frozenset[str]]] = {}

    async def read(self, rt: TenantRuntime, config: Config) -> Reading:
        """A delta round when there is a delta link (for this endpoint and select) and a
        snapshot; else (or when the link expired) a full read. A failure raises: never a
        partial snapshot."""
        select = select_for(config)
        key = link_key(select)
        link = await self._snapshots.get_delta_link(rt.name, key)
        if link and not same_origin(link, rt.graph.base_url):
            # a link from another Graph endpoint would be refused forever: start again
            log.info("tenant %s: the stored delta link is for another endpoint", rt.name)
            link = None
        users = await self.stored_users(rt.name) if link else None
        if link and users:
            try:
                reading = await self._read_delta(rt, config, select, link, users)
                return await self._with_soft_deleted(rt.name, reading)
            except DeltaExpired as e:
                log.info("tenant %s: delta link expired; full resync", rt.name)
                # the traceback's frames hold the stored users in a reference cycle (through
                # the retry library's futures): cleared here, the old snapshot is freed when
                # the full read drops it, not by a full collection later (a 0.3 s stop of
                # the event loop at 100,000 users)
                traceback.clear_frames(e.__traceback__)
        del users  # a full read replaces the snapshot: never hold two (peak memory)
        await self._snapshots.clear_delta_link(rt.name, key)
        return await self._with_soft_deleted(rt.name, await self._read_full(rt, config, select))

    async def _with_soft_deleted(self, tenant: str, reading: Reading) -> Reading:
        """The reading's snapshot with the users that are soft-deleted (restorable) now."""
        soft = await self._snapshots.soft_deleted(tenant, self._clock())
        snap = replace(reading.snapshot, soft_deleted=soft)
        self.latest[tenant] = snap
        return replace(reading, snapshot=snap)

    async def stored_users(self, tenant: str) -> dict[str, EntraUser]:
        """The users of the tenant's last snapshot (held, else loaded from Redis)."""
        held = self.latest.get(tenant)
        users = held.users if held is not None else await self._snapshots.load(tenant)
        return {u.id: u for u in users}

    async def snapshot(self, tenant: str) -> EntraSnapshot | None:
        """The tenant's last snapshot (held, else loaded from Redis); None if never read."""
        if tenant not in self.latest:
            users = await self._snapshots.load(tenant)
            if not users:
                return None
            self.latest[tenant] = EntraSnapshot(users)
        return self.latest[tenant]

    async def _read_full(
        self, rt: TenantRuntime, config: Config, select: tuple[str, ...]
    ) -> Reading:
        # a filter Graph refuses fails the read before every user is read
        ids = await self._filtered_ids(rt, config.scope.filter, fresh=True)
        link = await _latest_delta_link(rt, select)
        # the held snapshot is dropped first, so a tenant's users are in memory once, not
        # twice, during a full read (``snapshot`` loads it from Redis if asked meanwhile)
        self.latest.pop(rt.name, None)
        region = config.matching.default_region
        parts: list[bytes] = []

        def each_page(page: Sequence[EntraUser]) -> None:
            """While Graph prepares the next page: this page's numbers parsed for the plan,
            its part of the saved snapshot serialised."""
            read_numbers(page, region)
            parts.append(snapshot_part(page))

        snap = await rt.graph.read_users(select, groups=config.scope.groups, each_page=each_page)
        if ids is not None:
            snap = replace(snap, group_members=in_scope(snap.group_members, ids))
        self.latest[rt.name] = snap
        await self._snapshots.save_parts(rt.name, parts)
        if link is not None:
            await self._snapshots.set_delta_link(rt.name, link_key(select), link)
        return Reading(snap, "full")

    async def _read_delta(
        self,
        rt: TenantRuntime,
        config: Config,
        select: tuple[str, ...],
        link: str,
        users: dict[str, EntraUser],
    ) -> Reading:
        # each delta object is merged over the user held (Graph sends only what changed)
        delta = await rt.graph.read_delta(select, link, users)
        removed = [uid for uid, _ in delta.removed]
        until = self._clock() + SOFT_DELETE_KEPT
        await self._snapshots.mark_soft_deleted(
            rt.name,
            {uid: until for uid, reason in delta.removed if reason == "changed"},
            [u.id for u in delta.changed]
            + [uid for uid, reason in delta.removed if reason != "changed"],
        )
        users.update((u.id, u) for u in delta.changed)
        for uid in removed:
            users.pop(uid, None)
        members = await _group_members(rt, config.scope.groups)
        # delta takes no $filter but on id: the round (over every user) only tells that
        # something changed; then Graph is asked again which users the scope filter takes
        news = bool(delta.changed or delta.removed)
        ids = await self._filtered_ids(rt, config.scope.filter, fresh=news)
        if ids is not None:
            members = in_scope(members, ids)
        before = self.latest.get(rt.name)
        complete = delta.complete and (before is None or before.complete)
        snap = EntraSnapshot(list(users.values()), complete, members, tuple(delta.invalid))
        self.latest[rt.name] = snap
        await self._snapshots.update(rt.name, delta.changed, removed)
        await self._snapshots.set_delta_link(rt.name, link_key(select), delta.delta_link)
        return Reading(snap, "delta", frozenset(u.id for u in delta.changed))

    async def _filtered_ids(
        self, rt: TenantRuntime, scope_filter: str, *, fresh: bool
    ) -> frozenset[str] | None:
        """The ids Graph returns for the scope filter (None: no filter): asked again when
        ``fresh`` or when the filter is not the one last asked; else the answer held from the
        last read."""
        if not scope_filter:
            self._filtered.pop(rt.name, None)
            return None
        held = self._filtered.get(rt.name)
        if fresh or held is None or held[0] != scope_filter:
            self._filtered.pop(rt.name, None)
            ids = await rt.graph.filtered_user_ids(scope_filter)
            self._filtered[rt.name] = (scope_filter, ids)
            return ids
        return held[1]

    def forget(self, tenant: str) -> None:
        self.latest.pop(tenant, None)
        self._filtered.pop(tenant, None)


def in_scope(group_members: frozenset[str] | None, filtered: frozenset[str]) -> frozenset[str]:
    """The scope's ids when a filter is set: the users it takes, and (with groups) only those
    who are in the groups as well."""
    return filtered if group_members is None else group_members & filtered


async def scope_members(rt: TenantRuntime, config: Config) -> frozenset[str] | None:
    """The in-scope ids under ``config`` asked from Graph now (groups, filter), None for all
    users. Raises ScopeFilterRejected for a filter Graph refuses."""
    members = await _group_members(rt, config.scope.groups)
    if config.scope.filter:
        members = in_scope(members, await rt.graph.filtered_user_ids(config.scope.filter))
    return members


async def _group_members(rt: TenantRuntime, groups: Sequence[str]) -> frozenset[str] | None:
    if not groups:
        return None
    ids: set[str] = set()
    for g in groups:
        ids |= await rt.graph.group_member_ids(g)
    return frozenset(ids)


async def _latest_delta_link(rt: TenantRuntime, select: Sequence[str]) -> str | None:
    try:
        return await rt.graph.latest_delta_link(select)
    except SyncError as e:
        log.info("tenant %s: no delta link (%s); next sync is a full read", rt.name, e.code)
        return None
