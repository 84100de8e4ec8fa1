"""The engine's face to the bot and the CLI: one object, built by the app factory, that runs
syncs, answers questions and carries out admin decisions. No Teams, no cards here.

The bot layer calls only this module's ``SyncService`` and the records below.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter
from time import perf_counter
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.exceptions import RedisError

from sync.config import Config, EnvSettings, TenantConfig
from sync.directories.base import Directory, UserPatch
from sync.errors import (
    AuthError,
    ConfigError,
    DeltaExpired,
    GraphDataError,
    GraphPermissionDenied,
    InputError,
    LockBusy,
    ProposalNotPending,
    StoreUnavailable,
    SyncError,
)
from sync.gcpause import cyclic_gc_paused
from sync.models import (
    Blocked,
    DirectoryUser,
    EntraSnapshot,
    EntraUser,
    Kind,
    Plan,
    Proposal,
    ProposalState,
    SnapshotDiff,
    same_objects,
)
from sync.plan.phones import normalize
from sync.plan.planner import PlanCache, auto_applicable
from sync.plan.planner import plan as make_plan
from sync.service.engine import VERBS, apply_proposal, still_valid
from sync.service.runtime import TenantRuntime, open_directory, open_tenant
from sync.service.scheduler import next_run
from sync.service.settings_form import form_to_table, merge_config
from sync.state.keys import Keys
from sync.state.secrets import SecretBox
from sync.state.store import AuditEntry, LastSync, RecordResult, StateStore, StoredProposal

Trigger = Literal["manual", "scheduled", "user"]


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
    (a hash of the Entra data it was built from; the card carries it back)."""

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
    # last_sync, rest): diagnostics for the benchmark and the logs, not business time
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


# Listener the bot registers to hear about items decided elsewhere (to update cards in place)
ItemListener = Callable[[Item], Awaitable[None]]


log = logging.getLogger(__name__)

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

RunListener = Callable[["RunResult"], Awaitable[None]]


class SyncService:
    """The engine as one object: tenants, directories, state, scheduler and decisions."""

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
        self.file_config = config
        self.config = config
        self.env = env
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self.sleep = sleep
        self.store = StateStore(redis, keys, clock=clock)
        self.box = SecretBox(env.ENTRA_SYNC_SECRET_KEY)
        self.tenants: dict[str, TenantRuntime] = {}
        self.directories: dict[str, Directory] = {}
        self._snapshots: dict[str, dict[str, EntraUser]] = {}
        self._tokens: dict[str, object] = {}  # the token of the last snapshot read
        # memos between runs, per (tenant, directory): derived per-user values for the planner
        # and the scoped ids of its proposals (both only memoise; see PlanCache)
        self._plan_caches: dict[tuple[str, str], PlanCache] = {}
        self._scoped_memo: dict[tuple[str, str], dict[str, tuple[Proposal, Proposal]]] = {}
        self._linked_memo: dict[tuple[str, str], tuple[list[DirectoryUser], dict[str, None]]] = {}
        self._group_members: dict[str, frozenset[str] | None] = {}
        self._complete: dict[str, bool] = {}
        self._delta_changed: dict[str, set[str]] = {}  # tenant -> ids of the last delta round
        self._item_listeners: list[ItemListener] = []
        self._run_listeners: list[RunListener] = []
        self._stack = AsyncExitStack()
        self._http: httpx.AsyncClient | None = None
        self._tick = scheduler_tick_s
        self._scheduler: asyncio.Task[None] | None = None
        self._card_key: bytes | None = None
        self._tenant_errors: dict[str, SyncError] = {}

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, *, scheduler: bool = True) -> None:
        self._http = await self._stack.enter_async_context(
            httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        )
        overrides = await self.store.get_settings_overrides()
        if overrides:
            try:
                self.config = merge_config(self.file_config, overrides)
            except InputError as e:
                log.warning("settings saved in Teams are invalid (%s); using the file", e.code)
        for d in self.config.directories:
            self.directories[d.name] = await open_directory(
                d, self.config, redis=self.redis, keys=self.keys, http=self._http, sleep=self.sleep
            )
        for t in self.config.tenants:
            await self._open_tenant(t)
        await self._open_connected_tenant()
        await self.recover_intents()
        if scheduler:
            self._scheduler = asyncio.create_task(
                self._schedule_loop(), name="entra-sync-scheduler"
            )

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            try:
                await self._scheduler
            except asyncio.CancelledError:
                pass
            self._scheduler = None
        await self._stack.aclose()
        self._stack = AsyncExitStack()

    async def _open_tenant(self, t: TenantConfig, secret: SecretStr | None = None) -> None:
        assert self._http is not None
        try:
            self.tenants[t.name] = await open_tenant(
                t, self.config, self._stack, http=self._http, sleep=self.sleep, secret=secret
            )
            self._tenant_errors.pop(t.name, None)
        except SyncError as e:
            log.warning("tenant %s cannot be opened: %s", t.name, e.code)
            self._tenant_errors[t.name] = e

    async def _open_connected_tenant(self) -> None:
        """A tenant connected from Teams (`connect`): credentials live encrypted in Redis."""
        creds = await self.store.credentials(CONNECTED, self.box)
        if creds is None or CONNECTED in self.tenants:
            return
        tenant_id, client_id, secret = creds
        directory = self.config.directories[0].name
        cfg = TenantConfig(
            name=CONNECTED, tenant_id=tenant_id, client_id=client_id, directory=directory
        )
        await self._open_tenant(cfg, secret)

    @property
    def conversations(self) -> StateStore:
        """Conversation references, the notification channel and posted cards (the bot's)."""
        return self.store

    def add_listener(self, listener: ItemListener) -> None:
        self._item_listeners.append(listener)

    def add_run_listener(self, listener: RunListener) -> None:
        self._run_listeners.append(listener)

    async def _notify(self, item: Item) -> None:
        for listener in self._item_listeners:
            try:
                await listener(item)
            except Exception:  # a card update must never break a decision
                log.exception("item listener failed for %s", item.id)

    # --- digests: the card carries pid + an HMAC the server issued --------------------------

    async def _key(self) -> bytes:
        if self._card_key is None:
            k = self.keys.prefix + "cardkey"
            await self.redis.set(k, os.urandom(32).hex(), nx=True)
            raw = await self.redis.get(k)
            self._card_key = bytes.fromhex(raw.decode() if isinstance(raw, bytes) else str(raw))
        return self._card_key

    async def digest(self, pid: str) -> str:
        return _digest(await self._key(), pid)

    async def _item(self, sp: StoredProposal) -> Item:
        return _make_item(sp, await self._key())

    # --- reading Entra ----------------------------------------------------------------------

    def select(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*BASE_SELECT, *self.config.mapping.attributes)))

    async def _read(
        self, rt: TenantRuntime, *, force_full: bool = False
    ) -> tuple[EntraSnapshot, str]:
        """Read a tenant: a delta round when we have a delta link and a snapshot, else a full
        read. A failure raises (never a partial snapshot). Returns (snapshot, "full"|"delta")."""
        name = rt.name
        select = self.select()
        link_key = _link_key(select)
        stored = await self.store.get_delta_link(name, link_key)
        if stored and not _same_origin(stored, rt.graph.base_url):
            # a link from another Graph endpoint (the endpoint changed, or a simulated tenant
            # restarted on a new port): the client would refuse it forever; start again
            log.info("tenant %s: the stored delta link is for another endpoint; full read", name)
            await self.store.clear_delta_link(name, link_key)
            stored = None
        groups = self.config.scope.groups
        if stored and not force_full:
            users = self._snapshots.get(name)
            if users is None:
                loaded = await self.store.load_snapshot(name)
                users = {u.id: u for u in loaded} if loaded else None
            if users is not None:
                try:
                    delta = await rt.graph.read_delta(select, stored)
                except DeltaExpired:
                    log.info("tenant %s: delta link expired; full resync", name)
                    await self.store.clear_delta_link(name, link_key)
                else:
                    self._delta_changed[name] = {u.id for u in delta.changed}
                    records: dict[str, EntraUser | None] = {}
                    for u in delta.changed:
                        users[u.id] = records[u.id] = u
                    removed = [uid for uid, _ in delta.removed]
                    for uid in removed:
                        if users.pop(uid, None) is not None:
                            records[uid] = None
                    members = await self._members(rt, groups)
                    self._snapshots[name] = users
                    await self.store.update_snapshot(name, delta.changed, removed)
                    await self.store.set_delta_link(name, link_key, delta.delta_link)
                    complete = delta.complete and self._complete.get(name, True)
                    # the planner re-plans only these users (SnapshotDiff)
                    since = SnapshotDiff(self._tokens.get(name), records)
                    snap = EntraSnapshot(
                        list(users.values()),
                        complete,
                        members,
                        tuple(delta.invalid),
                        token=self._new_token(name),
                        since=since,
                    )
                    return snap, "delta"
        self._delta_changed.pop(name, None)
        link = await _latest_delta_link(rt, select)
        # a full read in a running bot (the delta link expired): the records that did not
        # change stay the very objects, so the planner (which compares records by identity
        # when no SnapshotDiff comes along) re-plans only the others
        known = self._snapshots.get(name)
        snap = await rt.graph.read_users(select, groups=groups, known=known)
        self._snapshots[name] = {u.id: u for u in snap.users}
        snap = replace(snap, token=self._new_token(name))
        self._complete[name] = snap.complete
        self._group_members[name] = snap.group_members
        await self.store.save_snapshot(name, snap.users)
        if link is not None:
            await self.store.set_delta_link(name, link_key, link)
        return snap, "full"

    def _new_token(self, tenant: str) -> object:
        """A token for the snapshot about to be planned (``SnapshotDiff.base`` of the next)."""
        token = self._tokens[tenant] = object()
        return token

    async def _members(self, rt: TenantRuntime, groups: Sequence[str]) -> frozenset[str] | None:
        if not groups:
            return None
        ids: set[str] = set()
        for g in groups:
            ids |= await rt.graph.group_member_ids(g)
        self._group_members[rt.name] = frozenset(ids)
        return frozenset(ids)

    def _cached_snapshot(self, tenant: str) -> EntraSnapshot | None:
        users = self._snapshots.get(tenant)
        if users is None:
            return None
        return EntraSnapshot(
            list(users.values()), self._complete.get(tenant, True), self._group_members.get(tenant)
        )

    # --- running a sync -------------------------------------------------------------------

    async def run_sync(
        self, tenant: str | None = None, *, actor: Actor | None = None, trigger: Trigger = "manual"
    ) -> list[RunResult]:
        actor = actor or Actor.system()
        names = [tenant] if tenant else list(self.tenants) + list(self._tenant_errors)
        results: list[RunResult] = []
        for name in dict.fromkeys(names):
            # no cyclic GC during a run: a run of 100,000 users allocates millions of acyclic
            # records, and the collector would walk all of them several times (~1-2 s); it
            # runs when the run is over (the benchmark shows that pass apart)
            with cyclic_gc_paused():
                results.extend(await self._run_tenant(name, actor, trigger))
        for r in results:
            for listener in self._run_listeners:
                try:
                    await listener(r)
                except Exception:
                    log.exception("run listener failed")
        return results

    async def _run_tenant(self, name: str, actor: Actor, trigger: Trigger) -> list[RunResult]:
        started = self.clock()
        rt = self.tenants.get(name)
        if rt is None:
            err = self._tenant_errors.get(name) or ConfigError(f"no tenant named '{name}'")
            cfg_dirs = self._tenant_dirs(name)
            return [self._failed(name, d, trigger, started, err) for d in cfg_dirs]
        dirs = rt.config.directory_names
        try:
            async with self.store.lock(name):
                await self.recover_intents()
                # the directories are listed while Graph is read (their round trips overlap)
                listings = {
                    d: asyncio.ensure_future(self.directories[d].list_users()) for d in dirs
                }
                try:
                    lap = perf_counter()
                    snap, mode = await self._read(rt)
                    read_s = perf_counter() - lap
                    out = []
                    for d in dirs:
                        lap = perf_counter()
                        listed = list(await listings[d])
                        phases = {"read": read_s, "listing": perf_counter() - lap}
                        out.append(
                            await self._plan_and_record(
                                rt, d, snap, actor, trigger, started, mode, listed, phases
                            )
                        )
                    return out
                finally:
                    for task in listings.values():
                        if not task.done():
                            task.cancel()
                    # a listing that failed after the read failed must not go unretrieved
                    await asyncio.gather(*listings.values(), return_exceptions=True)
        except LockBusy as e:
            return [
                RunResult(name, d, "skipped", trigger, started, self.clock(), error=e) for d in dirs
            ]
        except RedisError as e:
            err = StoreUnavailable(f"Redis failed during the sync: {type(e).__name__}")
            return [self._failed(name, d, trigger, started, err) for d in dirs]
        except SyncError as e:
            try:  # the status shows the failure; the counters of the last good run stay
                last = await self.store.last_sync(name)
                await self.store.set_last_sync(
                    name,
                    status="failed",
                    error=e.to_dict(),
                    counters=dict(last.counters) if last else {},
                    at=self.clock(),
                )
            except RedisError:
                pass
            return [self._failed(name, d, trigger, started, e) for d in dirs]

    def _tenant_dirs(self, name: str) -> tuple[str, ...]:
        for t in self.config.tenants:
            if t.name == name:
                return t.directory_names
        return (self.config.directories[0].name,)

    def _failed(
        self,
        tenant: str,
        directory: str,
        trigger: Trigger,
        started: datetime,
        err: SyncError,
    ) -> RunResult:
        log.warning("sync %s/%s failed: %s %s", tenant, directory, err.code, err.message)
        return RunResult(tenant, directory, "failed", trigger, started, self.clock(), error=err)

    async def _plan_and_record(
        self,
        rt: TenantRuntime,
        directory_name: str,
        snap: EntraSnapshot,
        actor: Actor,
        trigger: Trigger,
        started: datetime,
        mode: str,
        dir_users: list[DirectoryUser] | None = None,
        phases: dict[str, float] | None = None,
    ) -> RunResult:
        tenant = rt.name
        phases = {} if phases is None else phases
        lap = perf_counter()
        if dir_users is None:
            dir_users = list(await self.directories[directory_name].list_users())
        state = await self.store.state_view(tenant, directory_name)
        memo_key = (tenant, directory_name)
        cache = self._plan_caches.setdefault(memo_key, PlanCache())
        with cyclic_gc_paused():  # the planner allocates no cycles (also runs outside run_sync)
            p = make_plan(snap, dir_users, state, self.config, cache)
            proposals = self._scope_all(p.proposals, tenant, directory_name)
        phases["plan"], lap = perf_counter() - lap, perf_counter()
        if state.removals_confirmed and any(x.kind is Kind.REMOVAL for x in p.proposals):
            await self.store.consume_guard(tenant, directory_name)
        if not snap.complete:
            # a read with unreadable records proposes no removal, and withdraws none either
            held = await self.store.pending(tenant, directory_name, Kind.REMOVAL)
            proposals += [sp.proposal for sp in held]
        rec = await self.store.record_plan(tenant, directory_name, proposals)
        phases["record"], lap = perf_counter() - lap, perf_counter()
        if rec.already_decided:
            proposals, rec = await self._reopen(tenant, directory_name, proposals, rec)
        # superseded cards are updated in place: their stored state read in one batch
        gone = await self.store.get_many(rec.superseded) if rec.superseded else {}
        for pid in rec.superseded:
            sp = gone.get(pid)
            if sp is not None:
                await self._notify(await self._item(sp))
        auto: list[Item] = []
        scheduled = self.config.schedule.mode != "manual"
        auto_ids = {
            x.id
            for x in auto_applicable(replace(p, proposals=tuple(proposals)), scheduled=scheduled)
        }
        new_items: list[Item] = []
        key = await self._key()
        # what record_plan created it returns parsed; the rest (re-added to the pending set)
        # is read back, one round trip per 1,000
        stored = dict(rec.written)
        stored.update(await self.store.get_many([x.id for x in rec.new if x.id not in stored]))
        for prop in rec.new:
            sp = stored.get(prop.id)
            if sp is None:
                continue
            if prop.id in auto_ids:
                done = await self._accept_and_apply(sp, "apply", {}, Actor.system(), notify=False)
                if done.item is not None:
                    auto.append(done.item)
                continue
            new_items.append(_make_item(sp, key))
        # updates kept pending from an earlier manual run are applied too in scheduled mode
        for pid in rec.kept:
            if pid in auto_ids:
                sp = await self.store.get(pid)
                if sp is not None:
                    done = await self._accept_and_apply(sp, "apply", {}, Actor.system())
                    if done.item is not None:
                        auto.append(done.item)
        pending = _pending_counts(proposals, rec, auto)
        counters = {"synced": p.synced + len(auto), "syncable": p.syncable, **pending}
        now = self.clock()
        warning = _unreadable_warning(snap)
        await self.store.set_last_sync(
            tenant,
            status="ok",
            error=warning.to_dict() if warning is not None else None,
            counters=counters,
            at=now,
        )
        await self.redis.delete(self.keys.counter_bumps(tenant))
        # per-user "last synced": every linked user after a full read; after a delta round only
        # the users Graph reported (the tenant's last-sync time covers everybody else)
        changed = self._delta_changed.get(tenant) if mode == "delta" else None
        rest = perf_counter() - lap
        lap = perf_counter()
        linked = self._linked_ids(tenant, directory_name, dir_users)
        linked_in_scope = list(linked) if changed is None else [e for e in changed if e in linked]
        await self.store.set_user_last_sync(tenant, linked_in_scope, now)
        phases["last_sync"] = perf_counter() - lap
        phases["rest"] = rest
        blocked = list(p.blocked)
        return RunResult(
            tenant=tenant,
            directory=directory_name,
            status="ok",
            trigger=trigger,
            started_at=started,
            finished_at=now,
            new_items=new_items,
            superseded=rec.superseded,
            auto_applied=auto,
            blocked=blocked,
            counters=counters,
            mode="delta" if mode == "delta" else "full",
            phases={k: round(v, 4) for k, v in phases.items()},
        )

    def _linked_ids(
        self, tenant: str, directory: str, dir_users: list[DirectoryUser]
    ) -> dict[str, None]:
        """The Entra ids that directory users with sync on are linked to, in directory order;
        memoised while the listing is the very same directory user objects."""
        last = self._linked_memo.get((tenant, directory))
        if last is not None and same_objects(last[0], dir_users):
            return last[1]
        linked = dict.fromkeys(d.entra_id for d in dir_users if d.entra_id and d.sync_enabled)
        self._linked_memo[(tenant, directory)] = (dir_users, linked)
        return linked

    def _scope_all(
        self, proposals: Sequence[Proposal], tenant: str, directory: str
    ) -> list[Proposal]:
        """``_scoped`` for a plan's proposals, memoised for proposals the planner gave back
        unchanged (the very same objects) since the last run."""
        old = self._scoped_memo.get((tenant, directory), {})
        ids = list(map(attrgetter("id"), proposals))
        hits = list(map(old.get, ids))
        pairs: list[tuple[Proposal, Proposal]] = [
            hit if hit is not None and hit[0] is x else (x, _scoped(x, tenant, directory))
            for x, hit in zip(proposals, hits, strict=True)
        ]
        self._scoped_memo[(tenant, directory)] = dict(zip(ids, pairs, strict=True))
        return list(map(itemgetter(1), pairs))

    async def _reopen(
        self, tenant: str, directory: str, proposals: list[Proposal], rec: RecordResult
    ) -> tuple[list[Proposal], RecordResult]:
        """A proposal id is a content hash. When the same change is needed again after it was
        applied (someone reverted it in the phone system) or superseded (Entra changed and
        changed back), it gets a new generation of its id so it is proposed again. An ignored
        proposal stays ignored: the admin said no to exactly these values."""
        by_id = {x.id: x for x in proposals}
        swaps: dict[str, Proposal] = {}

        def reopenable(sp: StoredProposal) -> bool:
            # ignoring a match or a new user ignores the *user*: when the planner proposes
            # them again, they were un-ignored
            return sp.state in (ProposalState.APPLIED, ProposalState.SUPERSEDED) or (
                sp.state is ProposalState.IGNORED and sp.proposal.kind in (Kind.MATCH, Kind.NEW)
            )

        for pid in rec.already_decided:
            sp = await self.store.get(pid)
            if sp is None or not reopenable(sp):
                continue
            for generation in range(1, 1000):
                gid = hashlib.sha256(f"{pid}~{generation}".encode()).hexdigest()[:20]
                other = await self.store.get(gid)
                if other is None or other.state is ProposalState.PENDING:
                    swaps[pid] = replace(by_id[pid], id=gid)
                    break
                if not reopenable(other):
                    break  # ignored (or being applied) at this generation: leave it
        if not swaps:
            return proposals, rec
        again = [swaps.get(x.id, x) for x in proposals]
        second = await self.store.record_plan(tenant, directory, again)
        merged = RecordResult(
            new=[*rec.new, *second.new],
            kept=[k for k in second.kept if k not in {x.id for x in rec.new}],
            superseded=[*rec.superseded, *second.superseded],
            already_decided=second.already_decided,
            elsewhere=[*rec.elsewhere, *second.elsewhere],
            written={**rec.written, **second.written},
        )
        return again, merged

    async def _replan(self, tenant: str, directory_name: str, actor: Actor) -> RunResult | None:
        """Plan again from the snapshot we hold (no Graph read): after an owner was chosen,
        a user un-ignored or the guard confirmed."""
        rt = self.tenants.get(tenant)
        snap = self._cached_snapshot(tenant)
        if rt is None:
            return None
        if snap is None:
            loaded = await self.store.load_snapshot(tenant)
            if not loaded:
                return None
            self._snapshots[tenant] = {u.id: u for u in loaded}
            self._tokens.pop(tenant, None)  # not the users a token names
            snap = self._cached_snapshot(tenant)
            assert snap is not None
        started = self.clock()
        result = await self._plan_and_record(
            rt, directory_name, snap, actor, "manual", started, "full"
        )
        for listener in self._run_listeners:
            try:
                await listener(result)
            except Exception:
                log.exception("run listener failed")
        return result

    async def sync_user(self, query: str, *, actor: Actor) -> tuple[list[RunResult], list[Item]]:
        """`sync <name | e-mail | number>`: a sync run, then the items about that user."""
        results = await self.run_sync(actor=actor)
        matches = self.find_users(query)
        items = [
            i
            for i in await self.pending()
            if i.proposal.entra_id in matches or set(i.proposal.entra_ids) & matches
        ]
        return results, items

    def find_users(self, query: str) -> set[str]:
        q = query.strip().lower()
        if not q:
            return set()
        e164 = normalize(query, self.config.matching.default_region)
        found: set[str] = set()
        for users in self._snapshots.values():
            for u in users.values():
                if q in {x.lower() for x in u.emails} or u.label.lower() == q or u.id == query:
                    found.add(u.id)
                elif e164 and any(
                    normalize(r, self.config.matching.default_region) == e164
                    for _, r in u.raw_phones
                ):
                    found.add(u.id)
                elif q in u.label.lower():
                    found.add(u.id)
        return found

    async def preview(self) -> list[tuple[str, str, Plan]]:
        """A dry run: read and plan, record nothing."""
        out: list[tuple[str, str, Plan]] = []
        for name, rt in self.tenants.items():
            snap = self._cached_snapshot(name)
            if snap is None:
                snap = await rt.graph.read_users(self.select(), groups=self.config.scope.groups)
            for d in rt.config.directory_names:
                users = list(await self.directories[d].list_users())
                state = await self.store.state_view(name, d)
                out.append((name, d, make_plan(snap, users, state, self.config)))
        return out

    # --- items and decisions ----------------------------------------------------------------

    async def pending(self, kind: Kind | None = None) -> list[Item]:
        return [await self._item(sp) for sp in await self.store.pending(kind=kind)]

    async def item(self, pid: str) -> Item | None:
        sp = await self.store.get(pid)
        return await self._item(sp) if sp is not None else None

    async def decide(
        self, pid: str, verb: str, *, actor: Actor, digest: str, inputs: Mapping[str, str]
    ) -> Decision:
        if pid.startswith("guard:"):
            return await self._decide_guard(pid, verb, actor=actor, digest=digest)
        if verb == "unignore":
            return await self._unignore(pid, actor=actor, digest=digest)
        sp = await self.store.get(pid)
        if sp is None or not hmac.compare_digest(digest, await self.digest(pid)):
            return Decision(
                "not_found", None, "This item is not known to the bot (or the card was altered)."
            )
        item = await self._item(sp)
        if verb == "refresh":
            return Decision("done", item, "current state")
        if sp.state is not ProposalState.PENDING:
            who = sp.decided_by or "someone"
            return Decision("already", item, f"Already handled by {who}.")
        if verb not in VERBS or sp.proposal.kind not in VERBS[verb]:
            return Decision(
                "refused", item, f"'{verb}' does not apply to this {sp.proposal.kind.value} item."
            )
        if verb == "delete_user":
            return Decision(
                "confirm", item, "Delete the user in the phone system? This cannot be undone."
            )
        if verb == "link" and not inputs.get("target"):
            return Decision("refused", item, "Choose the directory user to link first.")
        if verb == "pick_owner" and inputs.get("owner") not in sp.proposal.entra_ids:
            return Decision("refused", item, "Choose one of the Entra users of this conflict.")
        fresh = await self._check_fresh(sp)
        if fresh is not None:
            return fresh
        if verb == "ignore":
            return await self._ignore(sp, actor)
        if verb == "pick_owner":
            return await self._pick_owner(sp, inputs["owner"], actor)
        return await self._accept_and_apply(sp, verb, inputs, actor)

    async def _check_fresh(self, sp: StoredProposal) -> Decision | None:
        """Refresh the tenant's view with a delta round; if the proposal no longer describes
        Entra, supersede it, plan again and return the 'stale' decision."""
        rt = self.tenants.get(sp.tenant)
        if rt is None:
            return None
        try:
            async with self.store.lock(sp.tenant, ttl_s=60):
                snap, _mode = await self._read(rt)
        except LockBusy:
            return None  # a sync is running right now; it will supersede stale items itself
        except SyncError as e:
            log.info("freshness check of %s skipped: %s", sp.id, e.code)
            return None
        p = sp.proposal
        ids = p.entra_ids if p.entra_ids else ((p.entra_id,) if p.entra_id else ())
        users = {u.id: u for u in snap.users if u.id in ids}
        current: dict[str, EntraUser | None] = {i: users.get(i) for i in ids}
        dir_user = None
        if p.app_user_id:
            dir_user = await self.directories[sp.directory].get(p.app_user_id)
        if still_valid(p, current, snap, dir_user, self.config):
            return None
        now = await self.store.get(sp.id)
        if now is not None and now.state is not ProposalState.PENDING:
            # decided by someone else while we looked (their write is what changed the data)
            return Decision(
                "already",
                await self._item(now),
                f"Already handled by {now.decided_by or 'someone'}.",
            )
        result = await self._plan_and_record(
            rt, sp.directory, snap, Actor.system(), "manual", self.clock(), "delta"
        )
        replacement = None
        for it in result.new_items:
            if (it.proposal.entra_id and it.proposal.entra_id == p.entra_id) or set(
                it.proposal.entra_ids
            ) & set(ids):
                replacement = it
        old = await self.store.get(sp.id)
        item = replacement or (await self._item(old) if old else None)
        return Decision(
            "stale",
            item,
            "The data in Entra changed since this card was posted; nothing was applied. "
            "Review the current values.",
        )

    async def _already(self, pid: str, lost: ProposalNotPending) -> Decision:
        """Someone else decided first (or a double click): say who."""
        return Decision(
            "already", await self.item(pid), f"Already handled by {lost.actor or 'someone'}."
        )

    async def _ignore(self, sp: StoredProposal, actor: Actor) -> Decision:
        try:
            done = await self.store.transition(
                sp.id,
                ProposalState.IGNORED,
                actor_id=actor.id,
                actor_name=actor.name,
                verb="ignore",
            )
        except ProposalNotPending as e:
            return await self._already(sp.id, e)
        p = sp.proposal
        if p.kind in (Kind.MATCH, Kind.NEW) and p.entra_id:
            await self.store.ignore(sp.tenant, p.entra_id, actor_id=actor.id, actor_name=actor.name)
        await self.store.audit(
            actor.id,
            actor.name,
            f"ignore {p.kind.value}",
            tenant=sp.tenant,
            proposal_id=sp.id,
            entra_id=p.entra_id,
            app_user_id=p.app_user_id,
            before={"state": ProposalState.PENDING.value},
            after={"state": ProposalState.IGNORED.value, "reason": p.reason},
        )
        item = await self._item(done)
        await self._notify(item)
        return Decision("done", item, f"Ignored by {actor.name}.")

    async def _pick_owner(self, sp: StoredProposal, owner: str, actor: Actor) -> Decision:
        try:
            done = await self.store.transition(
                sp.id,
                ProposalState.ACCEPTED,
                actor_id=actor.id,
                actor_name=actor.name,
                verb="pick_owner",
                result={"owner": owner},
            )
            await self.store.set_number_owner(sp.tenant, sp.proposal.number or "", owner)
            done = await self.store.transition(
                sp.id,
                ProposalState.APPLIED,
                actor_id=actor.id,
                actor_name=actor.name,
                verb="pick_owner",
                expect=ProposalState.ACCEPTED,
                result={"owner": owner},
            )
        except ProposalNotPending as e:
            return await self._already(sp.id, e)
        await self.store.audit(
            actor.id,
            actor.name,
            "pick owner",
            tenant=sp.tenant,
            proposal_id=sp.id,
            entra_id=owner,
            before={"number": sp.proposal.number, "candidates": list(sp.proposal.entra_ids)},
            after={"owner": owner},
        )
        item = await self._item(done)
        await self._notify(item)
        await self._replan(sp.tenant, sp.directory, actor)
        return Decision("done", item, f"{actor.name} chose the owner of {sp.proposal.number}.")

    async def _accept_and_apply(
        self,
        sp: StoredProposal,
        verb: str,
        inputs: Mapping[str, str],
        actor: Actor,
        *,
        notify: bool = True,
    ) -> Decision:
        """Record the intent (ACCEPTED, atomically: one winner), write the directory, then mark
        APPLIED. A crash in between is finished by ``recover_intents`` on the next start."""
        try:
            await self.store.transition(
                sp.id,
                ProposalState.ACCEPTED,
                actor_id=actor.id,
                actor_name=actor.name,
                verb=verb,
                result={"verb": verb, "inputs": dict(inputs)},
            )
        except ProposalNotPending as e:
            return await self._already(sp.id, e)
        return await self._finish(sp, verb, inputs, actor, notify=notify)

    async def _finish(
        self,
        sp: StoredProposal,
        verb: str,
        inputs: Mapping[str, str],
        actor: Actor,
        *,
        notify: bool = True,
    ) -> Decision:
        directory = self.directories.get(sp.directory)
        entra_user = self._snapshots.get(sp.tenant, {}).get(sp.proposal.entra_id or "")
        try:
            if directory is None:
                raise ConfigError(f"directory '{sp.directory}' is not configured any more")
            change = await apply_proposal(
                sp.proposal, verb, inputs, directory, entra_user, self.config
            )
        except SyncError as e:
            if e.retryable:
                log.warning("apply of %s deferred: %s", sp.id, e.code)
                return Decision(
                    "failed", await self.item(sp.id), f"Not applied yet: {e.hint or e.message}", e
                )
            await self.store.transition(
                sp.id,
                ProposalState.PENDING,
                actor_id=actor.id,
                actor_name=actor.name,
                verb="failed",
                expect=ProposalState.ACCEPTED,
                result={"error": e.to_dict()},
            )
            await self.store.audit(
                actor.id,
                actor.name,
                f"failed {verb}",
                tenant=sp.tenant,
                proposal_id=sp.id,
                entra_id=sp.proposal.entra_id,
                app_user_id=sp.proposal.app_user_id,
                before=None,
                after={"error": e.code},
            )
            return Decision(
                "failed", await self.item(sp.id), f"Could not apply: {e.hint or e.message}", e
            )
        done = await self.store.transition(
            sp.id,
            ProposalState.APPLIED,
            actor_id=actor.id,
            actor_name=actor.name,
            verb=verb,
            expect=ProposalState.ACCEPTED,
            result={"verb": verb, "inputs": dict(inputs)},
        )
        after = change.get("after")
        await self.store.audit(
            actor.id,
            actor.name,
            f"{verb} {sp.proposal.kind.value}",
            tenant=sp.tenant,
            proposal_id=sp.id,
            entra_id=sp.proposal.entra_id,
            app_user_id=(after or {}).get("id")
            if isinstance(after, dict)
            else sp.proposal.app_user_id,
            before=change.get("before"),
            after=after,
        )
        await self._bump_counters(sp.tenant, verb)
        item = await self._item(done)
        if notify:
            await self._notify(item)
        return Decision("done", item, f"{_PAST.get(verb, 'Done')} by {actor.name}.")

    async def _bump_counters(self, tenant: str, verb: str) -> None:
        """Keep "70/70 synced" live between runs: an accepted match or applied update makes
        one more user synced; a linked or created user is one more that could be."""
        key = self.keys.counter_bumps(tenant)
        if verb in ("accept", "apply", "link", "create"):
            await self.redis.hincrby(key, "synced", 1)  # type: ignore[misc]
        if verb in ("link", "create"):
            await self.redis.hincrby(key, "syncable", 1)  # type: ignore[misc]

    async def recover_intents(self) -> int:
        """Finish decisions whose intent was recorded but whose directory write did not
        complete (a crash or an outage in between). Returns how many were finished."""
        n = 0
        intents = await self.store.intents()
        for tenant in {sp.tenant for sp in intents} - set(self._snapshots):
            # after a restart the Entra data is only in the stored snapshot; `link` copies the
            # mapped fields from it, as it would have before the crash
            loaded = await self.store.load_snapshot(tenant)
            if loaded:
                self._snapshots[tenant] = {u.id: u for u in loaded}
                self._tokens.pop(tenant, None)  # not the users a token names
        for sp in intents:
            res = sp.result or {}
            verb = str(res.get("verb") or sp.verb or "")
            if verb == "pick_owner":
                owner = str((res.get("owner")) or "")
                await self.store.set_number_owner(sp.tenant, sp.proposal.number or "", owner)
                await self.store.transition(
                    sp.id,
                    ProposalState.APPLIED,
                    actor_id=sp.decided_by_id or "system",
                    actor_name=sp.decided_by or "system",
                    verb=verb,
                    expect=ProposalState.ACCEPTED,
                )
                n += 1
                continue
            actor = Actor(sp.decided_by_id or "system", sp.decided_by or "Entra Sync")
            d = await self._finish(sp, verb, dict(res.get("inputs") or {}), actor)
            n += d.outcome == "done"
        return n

    async def decide_all(self, kind: Kind, *, actor: Actor) -> list[Decision]:
        verb = {Kind.MATCH: "accept", Kind.UPDATE: "apply"}.get(kind)
        if verb is None:
            raise InputError(f"there is no 'all' action for {kind.value} items")
        out = []
        for it in await self.pending(kind):
            out.append(await self.decide(it.id, verb, actor=actor, digest=it.digest, inputs={}))
        return out

    async def _decide_guard(self, pid: str, verb: str, *, actor: Actor, digest: str) -> Decision:
        if not hmac.compare_digest(digest, await self.digest(pid)):
            return Decision("not_found", None, "This card was not issued by this bot.")
        _, tenant, directory = [*pid.split(":", 2), "", ""][:3]
        if verb == "guard_dismiss":
            await self.store.audit(
                actor.id,
                actor.name,
                "guard dismissed",
                tenant=tenant,
                before={"removals": "held back", "directory": directory},
                after={"removals": "dismissed", "directory": directory},
            )
            return Decision("done", None, f"Dismissed by {actor.name}; nothing was removed.")
        if verb != "guard_confirm":
            return Decision("refused", None, f"'{verb}' does not apply to the removal guard.")
        await self.store.confirm_guard(tenant, directory)
        await self.store.audit(
            actor.id,
            actor.name,
            "guard confirmed",
            tenant=tenant,
            before={"removals": "held back", "directory": directory},
            after={"removals": "proposed one by one", "directory": directory},
        )
        await self._replan(tenant, directory, actor)
        return Decision(
            "done", None, f"Confirmed by {actor.name}: the removals are proposed one by one."
        )

    async def guard_id(self, tenant: str, directory: str) -> tuple[str, str]:
        pid = f"guard:{tenant}:{directory}"
        return pid, await self.digest(pid)

    async def _unignore(self, entra_id: str, *, actor: Actor, digest: str) -> Decision:
        pid = f"unignore:{entra_id}"
        if not hmac.compare_digest(digest, await self.digest(pid)):
            return Decision("not_found", None, "This card was not issued by this bot.")
        for tenant in list(self.tenants) or [CONNECTED]:
            if await self.store.unignore(
                tenant, entra_id, actor_id=actor.id, actor_name=actor.name
            ):
                await self.store.audit(
                    actor.id,
                    actor.name,
                    "unignore",
                    tenant=tenant,
                    entra_id=entra_id,
                    before={"ignored": True},
                    after={"ignored": False},
                )
                for d in self._tenant_dirs(tenant):
                    await self._replan(tenant, d, actor)
                return Decision("done", None, f"Un-ignored by {actor.name}.")
        return Decision("not_found", None, "This user is not ignored.")

    async def unignore_digest(self, entra_id: str) -> str:
        return await self.digest(f"unignore:{entra_id}")

    async def ignored(self) -> list[tuple[str, str, str]]:
        out = []
        for tenant in self.tenants:
            users = self._snapshots.get(tenant, {})
            for eid in sorted(await self.store.ignored(tenant)):
                u = users.get(eid)
                out.append((tenant, eid, u.label if u else eid))
        return out

    # --- status, audit, settings, connection --------------------------------------------------

    async def status(self) -> list[TenantStatus]:
        out: list[TenantStatus] = []
        now = self.clock()
        names = list(dict.fromkeys([*self.tenants, *self._tenant_errors]))
        for name in names:
            last = await self.store.last_sync(name)
            err = self._tenant_errors.get(name)
            error = err.to_dict() if err else (last.error if last else None)
            connected = error is None or not _is_connection_error(error)
            counters = dict(last.counters) if last else {}
            bumps = await self.redis.hgetall(self.keys.counter_bumps(name))  # type: ignore[misc]
            for k, v in bumps.items():
                field = k.decode() if isinstance(k, bytes) else str(k)
                counters[field] = int(counters.get(field, 0)) + int(v)
            for d in self._tenant_dirs(name):
                pending = await self.store.pending_counts(name, d)
                out.append(
                    TenantStatus(
                        tenant=name,
                        directory=d,
                        connected=connected,
                        error=error,
                        last_sync_at=last.at if last else None,
                        last_status=last.status if last else None,
                        next_sync_at=self._next_sync(now, last),
                        synced=int(counters.get("synced", 0)),
                        syncable=int(counters.get("syncable", 0)),
                        pending=pending,
                    )
                )
        return out

    async def audit(self, limit: int = 20) -> list[AuditEntry]:
        return await self.store.recent_audit(limit)

    async def directory_choices(self, directory: str, limit: int = 100) -> list[DirectoryUser]:
        d = self.directories.get(directory)
        if d is None:
            return []
        users = [u for u in await d.list_users() if u.entra_id is None and u.active]
        return users[:limit]

    async def settings_table(self) -> dict[str, Any]:
        c = self.config
        return {
            "scope": c.scope.model_dump(mode="json"),
            "mapping": c.mapping.to_table(),
            "matching": c.matching.model_dump(mode="json"),
            "schedule": c.schedule.model_dump(mode="json"),
            "guard": c.guard.model_dump(mode="json"),
            "bot": {
                "notify_admins_personally": c.bot.notify_admins_personally,
                "max_cards_per_run": c.bot.max_cards_per_run,
            },
        }

    async def update_settings(self, form: Mapping[str, str], *, actor: Actor) -> dict[str, str]:
        """Validate a settings form (field names like ``schedule.mode``); save and apply when
        valid. Returns field -> error (empty: saved)."""
        table, errors = form_to_table(form)
        if errors:
            return errors
        try:
            new = merge_config(self.file_config, table)
        except InputError as e:
            field = e.message.split(":", 2)[1].strip() if e.message.count(":") >= 2 else "settings"
            return {field: e.message.split(": ", 2)[-1]}
        before = await self.settings_table()
        self.config = new
        await self.store.set_settings_overrides(table)
        await self.store.audit(
            actor.id, actor.name, "settings", tenant="*", before=before, after=table
        )
        return {}

    def consent_url(self, tenant_id: str, client_id: str) -> str:
        from urllib.parse import quote

        return (
            f"https://login.microsoftonline.com/{quote(tenant_id or 'organizations', safe='')}"
            f"/adminconsent?client_id={quote(client_id, safe='')}"
        )

    async def connect(
        self, tenant_id: str, client_id: str, secret: SecretStr, *, actor: Actor
    ) -> TenantStatus:
        tenant_id, client_id = tenant_id.strip(), client_id.strip()
        if not tenant_id or not client_id or not secret.get_secret_value().strip():
            raise InputError("tenant id, client id and client secret are all needed")
        await self.store.set_credentials(CONNECTED, tenant_id, client_id, secret, self.box)
        self.tenants.pop(CONNECTED, None)
        await self._open_connected_tenant()
        await self.store.audit(
            actor.id,
            actor.name,
            "connect",
            tenant=CONNECTED,
            after={"tenant_id": tenant_id, "client_id": client_id},  # never the secret
        )
        results = await self.run_sync(CONNECTED, actor=actor)
        st = [s for s in await self.status() if s.tenant == CONNECTED]
        del results
        return st[0]

    async def disconnect(self, tenant: str | None, *, actor: Actor) -> int:
        """Remove the sync: links and settings go; every directory user and its data stay.
        Returns how many directory users were unlinked."""
        name = tenant or CONNECTED
        tenant_users = set(self._snapshots.get(name, {}))
        if not tenant_users:
            tenant_users = {u.id for u in await self.store.load_snapshot(name)}
        only_tenant = len(self.tenants) <= 1
        unlinked = 0
        for d in self._tenant_dirs(name):
            directory = self.directories.get(d)
            if directory is not None:
                for u in await directory.list_users():
                    if u.entra_id and (only_tenant or u.entra_id in tenant_users):
                        await directory.update(u.id, UserPatch({"entra_id": None}))
                        unlinked += 1
        await self.store.disconnect(name, actor_id=actor.id, actor_name=actor.name)
        self.tenants.pop(name, None)
        self._snapshots.pop(name, None)
        self._tokens.pop(name, None)
        return unlinked

    # --- scheduler ------------------------------------------------------------------------

    async def run_due(self) -> list[RunResult]:
        """Run every tenant whose schedule is due now (the scheduler loop calls this)."""
        if self.config.schedule.mode == "manual":
            return []
        now = self.clock()
        out: list[RunResult] = []
        for name in list(self.tenants):
            last = await self.store.last_sync(name)
            nxt = self._next_sync(now, last)
            if nxt is not None and nxt <= now:
                out.extend(await self.run_sync(name, trigger="scheduled"))
        return out

    def _next_sync(self, now: datetime, last: LastSync | None) -> datetime | None:
        """The schedule's next run; after a failed run, a retry within the hour."""
        nxt = next_run(now, last.at if last else None, self.config.schedule)
        if nxt is not None and last is not None and last.status == "failed":
            return min(nxt, last.at + RETRY_AFTER_FAILURE)
        return nxt

    async def _schedule_loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduled sync failed")
            await self.sleep(self._tick)


CONNECTED = "entra"  # the tenant connected from Teams with `connect`
RETRY_AFTER_FAILURE = timedelta(hours=1)

_PAST = {
    "accept": "Accepted",
    "apply": "Applied",
    "link": "Linked",
    "create": "Created",
    "remove_sync": "Sync removed",
    "delete_user_confirm": "Deleted",
}


def _scoped(p: Proposal, tenant: str, directory: str) -> Proposal:
    """Proposal ids are global in Redis: one tenant feeding two directories gives two ids.
    ``p`` comes from the planner, so its id is its content id (``compute_id``)."""
    base = p.id
    pid = hashlib.sha256(f"{tenant}\x00{directory}\x00{base}".encode()).hexdigest()[:20]
    return p.with_id(pid)


def _unreadable_warning(snap: EntraSnapshot) -> GraphDataError | None:
    """A read with unreadable user records still proposes what it could read, but never
    removals (the planner holds them back); the status says why, so an admin can act."""
    if snap.complete and not snap.invalid:
        return None
    what = (
        f"{len(snap.invalid)} user record(s) from Microsoft Graph could not be read "
        f"(first: {snap.invalid[0][:200]})"
        if snap.invalid
        else "a user record of the last full read from Microsoft Graph could not be read"
    )
    return GraphDataError(
        f"{what}; removals are held back until every record can be read",
        hint=(
            "Some Entra users have data the bot cannot read (see the message). Check those "
            "users in Entra; other changes are proposed as usual, but no user is removed "
            "while any record is unreadable."
        ),
    )


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


def _pending_counts(
    proposals: Sequence[Proposal], rec: RecordResult, auto: Sequence[Item]
) -> dict[str, int]:
    """What is pending for this tenant+directory right after recording a plan, by kind: the
    plan's kept and new proposals, minus those applied automatically (no Redis read: loading
    every pending proposal cost a round trip per 1,000 and a JSON parse per proposal)."""
    kinds = {x.id: x.kind for x in proposals}  # (a later duplicate id wins, as it always did)
    pending = set(rec.kept)
    pending.update(x.id for x in rec.new)
    counts = Counter(map(kinds.__getitem__, pending & kinds.keys()))
    applied = {i.id for i in auto if i.state is not ProposalState.PENDING}
    for pid in applied & pending & kinds.keys():
        counts[kinds[pid]] -= 1
    return {k.value: counts[k] for k in Kind}


def _link_key(select: Sequence[str]) -> str:
    """A delta link tracks the selected properties: a new select needs a new link."""
    return "d" + hashlib.sha256(",".join(sorted(select)).encode()).hexdigest()[:10]


async def _latest_delta_link(rt: TenantRuntime, select: Sequence[str]) -> str | None:
    latest = getattr(rt.graph, "latest_delta_link", None)
    if latest is None:
        return None
    try:
        link: str = await latest(select)
        return link
    except SyncError as e:
        log.info("tenant %s: no delta link (%s); next sync is a full read", rt.name, e.code)
        return None


def _is_connection_error(error: Mapping[str, Any]) -> bool:
    code = str(error.get("code", ""))
    return code.startswith("AADSTS") or code in {
        AuthError.code,
        GraphPermissionDenied.code,
        "auth_unavailable",
        "bad_config",
    }


def _make_item(sp: StoredProposal, key: bytes) -> Item:
    """The view of a stored proposal, with the digest its card carries (HMAC of the id)."""
    return Item(
        proposal=sp.proposal,
        state=sp.state,
        tenant=sp.tenant,
        directory=sp.directory,
        digest=_digest(key, sp.id),
        decided_by=sp.decided_by,
        decided_at=sp.decided_at,
        verb=sp.verb,
    )


def _digest(key: bytes, pid: str) -> str:
    return hmac.new(key, pid.encode(), hashlib.sha256).hexdigest()[:24]
