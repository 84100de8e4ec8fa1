"""A sync run: read the tenant, plan against each directory it feeds (off the event loop),
record the plan, apply what the schedule allows, and keep the counters for the status."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from time import perf_counter

from redis.exceptions import RedisError

from sync.config import Config
from sync.errors import ConfigError, GraphDataError, LockBusy, StoreUnavailable, SyncError
from sync.models import (
    DirectoryUser,
    EntraSnapshot,
    Kind,
    Plan,
    Proposal,
    ProposalState,
    StateView,
)
from sync.plan.phones import normalize
from sync.plan.planner import auto_applicable
from sync.plan.planner import plan as make_plan
from sync.service import listing
from sync.service.applying import Applier
from sync.service.reading import Reading, scope_members, select_for
from sync.service.records import Actor, Item, RunResult, Trigger
from sync.service.runtime import TenantRuntime
from sync.service.shared import Shared
from sync.state.proposals import RecordResult, StoredProposal

log = logging.getLogger(__name__)

# How long what runs froze for the collector stays frozen (see Runs._frozen_for_the_run)
UNFREEZE_EVERY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class _Run:
    """What one plan-and-record step works on."""

    tenant: str
    directory: str
    reading: Reading
    actor: Actor
    trigger: Trigger
    started: datetime


class Runs:
    def __init__(self, shared: Shared, applier: Applier) -> None:
        self._live, self._store, self._tenants = shared.live, shared.store, shared.tenants
        self._reader, self._digests, self._listeners = (
            shared.reader,
            shared.digests,
            shared.listeners,
        )
        self._clock = shared.clock
        self._applier = applier
        self._unfrozen_at = self._clock()  # see _frozen_for_the_run

    async def run_sync(
        self, tenant: str | None = None, *, actor: Actor | None = None, trigger: Trigger = "manual"
    ) -> list[RunResult]:
        """Run one tenant, or every tenant; the run listeners hear every result."""
        actor = actor or Actor.system()
        names = [tenant] if tenant else self._tenants.names()
        results: list[RunResult] = []
        for name in dict.fromkeys(names):
            results += await self._run_tenant(name, actor, trigger)
        await self._listeners.runs_done(results)
        return results

    @contextlib.asynccontextmanager
    async def _frozen_for_the_run(self) -> AsyncIterator[None]:
        """What ``_freeze_long_lived`` froze goes back to the collector at the end of the
        first run a day (``UNFREEZE_EVERY``) and when the service stops (``release_frozen``),
        not after every run: the full collection that follows an unfreeze walks every
        object of the tenant, 0.2-0.35 s of a stopped event loop at 100,000 users, which
        watch mode paid every minute. Frozen objects are still freed by reference counting;
        only garbage in reference cycles waits for the unfreeze: 0-250 objects a run
        (measured over 8 runs of a 10,000-user tenant, full and delta)."""
        try:
            yield
        finally:
            now = self._clock()
            if now - self._unfrozen_at >= UNFREEZE_EVERY:
                self.release_frozen()
                self._unfrozen_at = now

    def release_frozen(self) -> None:
        """Everything frozen goes back to the collector (at the service's stop)."""
        gc.unfreeze()

    async def _run_tenant(self, name: str, actor: Actor, trigger: Trigger) -> list[RunResult]:
        started = self._clock()
        rt = self._tenants.runtimes.get(name)
        if rt is None:
            err = self._tenants.errors.get(name) or ConfigError(f"no tenant named '{name}'")
            return [
                self._failed(name, d, trigger, started, err)
                for d in self._tenants.directories_of(name)
            ]
        dirs = rt.config.directory_names
        try:
            async with self._store.run_lock.hold(name), self._frozen_for_the_run():
                await self._applier.recover_intents()
                return await self._read_and_plan(rt, actor, trigger, started)
        except LockBusy as e:
            return [
                RunResult(name, d, "skipped", trigger, started, self._clock(), error=e)
                for d in dirs
            ]
        except RedisError as e:
            err = StoreUnavailable(f"Redis failed during the sync: {type(e).__name__}")
            return [self._failed(name, d, trigger, started, err) for d in dirs]
        except SyncError as e:
            await self._record_failure(name, e)
            return [self._failed(name, d, trigger, started, e) for d in dirs]

    async def _read_and_plan(
        self, rt: TenantRuntime, actor: Actor, trigger: Trigger, started: datetime
    ) -> list[RunResult]:
        """Read Graph while the directories are listed (their round trips overlap), then plan
        and record each directory."""
        dirs = rt.config.directory_names
        lap = perf_counter()
        try:
            async with asyncio.TaskGroup() as tg:
                listings = {d: tg.create_task(self._list_users(d)) for d in dirs}
                reading = await self._reader.read(rt, self._live.current)
                read_s = perf_counter() - lap
        except ExceptionGroup as group:  # the first failure, as the callers handle it
            raise group.exceptions[0] from None
        # "listing": how long the listings took after the read was done
        phases = {"read": read_s, "listing": perf_counter() - lap - read_s}
        _freeze_long_lived()
        out = []
        for d in dirs:
            run = _Run(rt.name, d, reading, actor, trigger, started)
            out.append(await self.plan_and_record(run, listings[d].result(), dict(phases)))
        return out

    async def _list_users(self, directory: str) -> list[DirectoryUser]:
        """The directory's users, frozen for the collector once listed (see
        ``_freeze_long_lived``): the Graph read that goes on meanwhile allocates a lot."""
        users = list(await self._tenants.directories[directory].list_users())
        _freeze_long_lived()
        return users

    async def _record_failure(self, tenant: str, e: SyncError) -> None:
        """The status shows the failure; the counters of the last good run stay."""
        try:
            last = await self._store.runs.last_sync(tenant)
            await self._store.runs.set_last_sync(
                tenant,
                status="failed",
                error=e.to_dict(),
                counters=dict(last.counters) if last else {},
                at=self._clock(),
            )
        except RedisError:
            pass

    def _failed(
        self, tenant: str, directory: str, trigger: Trigger, started: datetime, err: SyncError
    ) -> RunResult:
        return RunResult(tenant, directory, "failed", trigger, started, self._clock(), error=err)

    async def plan_and_record(
        self, run: _Run, dir_users: list[DirectoryUser], phases: dict[str, float]
    ) -> RunResult:
        """Plan (in a thread: Teams is answered meanwhile), record, apply what the schedule
        allows, and write the counters and the per-user sync times."""
        lap = perf_counter()
        p, proposals = await self._plan(run, dir_users)
        phases["plan"], lap = perf_counter() - lap, perf_counter()
        rec, proposals = await self._record(run, p, proposals)
        phases["record"], lap = perf_counter() - lap, perf_counter()
        await self._notify_superseded(rec.superseded)
        new_items, auto = await self._post_or_apply(rec, replace(p, proposals=tuple(proposals)))
        counters = {
            "synced": p.synced + len(auto),
            "syncable": p.syncable,
            **pending_counts(proposals, rec, auto),
        }
        now = self._clock()
        warning = unreadable_warning(run.reading.snapshot)
        await self._store.runs.set_last_sync(
            run.tenant,
            status="ok",
            error=warning.to_dict() if warning is not None else None,
            counters=counters,
            at=now,
        )
        phases["rest"], lap = perf_counter() - lap, perf_counter()
        linked = await asyncio.to_thread(linked_ids, dir_users, run.reading.changed)
        await self._store.runs.set_user_last_sync(run.tenant, linked, now)
        phases["last_sync"] = perf_counter() - lap
        return RunResult(
            tenant=run.tenant,
            directory=run.directory,
            status="ok",
            trigger=run.trigger,
            started_at=run.started,
            finished_at=now,
            new_items=new_items,
            superseded=rec.superseded,
            auto_applied=auto,
            blocked=list(p.blocked),
            counters=counters,
            mode=run.reading.mode,
            phases={k: round(v, 4) for k, v in phases.items()},
        )

    async def _plan(self, run: _Run, dir_users: list[DirectoryUser]) -> tuple[Plan, list[Proposal]]:
        """The plan, and its proposals with ids scoped to this tenant and directory."""
        state = await self._store.choices.state_view(run.tenant, run.directory)
        snap, config = run.reading.snapshot, self._live.current
        # in a thread, ids scoped there too (~20,000 proposals): the event loop answers Teams
        p, proposals = await asyncio.to_thread(
            _plan_scoped, snap, dir_users, state, config, (run.tenant, run.directory)
        )
        if state.removals_confirmed and any(x.kind is Kind.REMOVAL for x in p.proposals):
            await self._store.choices.consume_guard(run.tenant, run.directory)
        return p, proposals

    async def _record(
        self, run: _Run, p: Plan, proposals: list[Proposal]
    ) -> tuple[RecordResult, list[Proposal]]:
        if not run.reading.snapshot.complete:
            # a read with unreadable records proposes no removal, and withdraws none either
            held = await self._store.proposals.pending(run.tenant, run.directory, Kind.REMOVAL)
            proposals = proposals + [sp.proposal for sp in held]
        rec = await self._store.proposals.record_plan(run.tenant, run.directory, proposals)
        if rec.already_decided:
            return await self._reopen(run, proposals, rec)
        return rec, proposals

    async def _notify_superseded(self, ids: Sequence[str]) -> None:
        """Superseded cards are updated in place (their states read in one batch)."""
        for sp in (await self._store.proposals.get_many(ids)).values():
            await self._listeners.item_changed(await self._digests.item(sp))

    async def _post_or_apply(self, rec: RecordResult, p: Plan) -> tuple[list[Item], list[Item]]:
        """New proposals become items to post, except those the schedule applies by itself
        (scheduled mode: updates of linked users, also those kept pending from a manual run).
        Returns (new items, applied items)."""
        scheduled = self._live.current.schedule.mode != "manual"
        auto_ids = {x.id for x in auto_applicable(p, scheduled=scheduled)}
        stored = dict(rec.written)
        missing = [x.id for x in rec.new if x.id not in stored]
        stored |= await self._store.proposals.get_many(missing)
        new_items: list[Item] = []
        to_apply: list[tuple[StoredProposal, bool]] = []
        for x in rec.new:
            sp = stored.get(x.id)
            if sp is not None and x.id in auto_ids:
                to_apply.append((sp, False))
            elif sp is not None:
                new_items.append(await self._digests.item(sp))
        kept = await self._store.proposals.get_many([i for i in rec.kept if i in auto_ids])
        to_apply += [(sp, True) for sp in kept.values()]
        auto: list[Item] = []
        for sp, notify in to_apply:
            done = await self._applier.accept_and_apply(
                sp, "apply", {}, Actor.system(), notify=notify
            )
            if done.item is not None:
                auto.append(done.item)
        return new_items, auto

    async def _reopen(
        self, run: _Run, proposals: list[Proposal], rec: RecordResult
    ) -> tuple[RecordResult, list[Proposal]]:
        """A proposal id is a content hash. When the same change is needed again after it was
        applied (someone reverted it in the phone system) or superseded (Entra changed and
        changed back), it gets a new generation of its id so it is proposed again. An ignored
        update, conflict or removal stays ignored: the admin said no to exactly these values;
        an ignored match or new user is proposed again (the user was un-ignored)."""
        by_id = {x.id: x for x in proposals}
        swaps: dict[str, Proposal] = {}
        decided = await self._store.proposals.get_many(rec.already_decided)
        for pid, sp in decided.items():
            if reopenable(sp):
                gid = await self._free_generation(pid)
                if gid is not None:
                    swaps[pid] = replace(by_id[pid], id=gid)
        if not swaps:
            return rec, proposals
        again = [swaps.get(x.id, x) for x in proposals]
        second = await self._store.proposals.record_plan(run.tenant, run.directory, again)
        first_new = {x.id for x in rec.new}
        merged = RecordResult(
            new=[*rec.new, *second.new],
            kept=[k for k in second.kept if k not in first_new],
            superseded=[*rec.superseded, *second.superseded],
            already_decided=second.already_decided,
            elsewhere=[*rec.elsewhere, *second.elsewhere],
            written={**rec.written, **second.written},
        )
        return merged, again

    async def _free_generation(self, pid: str) -> str | None:
        """The first generation id of ``pid`` that is unused or pending; None when one is
        ignored (or being applied): then the change stays as decided."""
        for generation in range(1, 1000):
            gid = hashlib.sha256(f"{pid}~{generation}".encode()).hexdigest()[:20]
            other = await self._store.proposals.get(gid)
            if other is None or other.state is ProposalState.PENDING:
                return gid
            if not reopenable(other):
                return None
        return None

    async def replan(self, tenant: str, directory: str, actor: Actor) -> RunResult | None:
        """Plan again from the snapshot we hold (no Graph read): after an owner was chosen,
        a user un-ignored or the guard confirmed."""
        rt = self._tenants.runtimes.get(tenant)
        snap = await self._reader.snapshot(tenant)
        if rt is None or snap is None:
            return None
        result = await self.plan_reading(rt, directory, Reading(snap, "full"), actor)
        await self._listeners.runs_done([result])
        return result

    async def plan_reading(
        self, rt: TenantRuntime, directory: str, reading: Reading, actor: Actor
    ) -> RunResult:
        """Plan and record one directory from a reading already made."""
        users = list(await self._tenants.directories[directory].list_users())
        run = _Run(rt.name, directory, reading, actor, "manual", self._clock())
        return await self.plan_and_record(run, users, {"read": 0.0, "listing": 0.0})

    async def preview(self) -> list[tuple[str, str, Plan]]:
        """A dry run: read (or take the held snapshot) and plan, record nothing."""
        out: list[tuple[str, str, Plan]] = []
        config = self._live.current
        for name, rt in self._tenants.runtimes.items():
            snap = self._reader.latest.get(name)
            if snap is None:
                snap = await rt.graph.read_users(select_for(config), groups=config.scope.groups)
                if config.scope.filter:
                    snap = replace(snap, group_members=await scope_members(rt, config))
            for d in rt.config.directory_names:
                users = list(await self._tenants.directories[d].list_users())
                state = await self._store.choices.state_view(name, d)
                out.append(
                    (name, d, await asyncio.to_thread(make_plan, snap, users, state, config))
                )
        return out

    async def sync_user(self, query: str, *, actor: Actor) -> tuple[list[RunResult], list[Item]]:
        """`sync <name | e-mail | number>`: a sync run, then the pending items of that user."""
        results = await self.run_sync(actor=actor)
        found = self.find_users(query)
        region = self._live.current.matching.default_region
        items = []
        for sp in await self._store.proposals.pending():
            p = sp.proposal
            reached = listing.reaches(p, query, found, None, region) or (
                p.kind is Kind.REMOVAL  # the user is gone from Graph: ask the directory
                and listing.reaches(
                    p, query, found, await self.directory_user(sp.directory, p.app_user_id), region
                )
            )
            if reached:
                items.append(await self._digests.item(sp))
        return results, listing.in_display_order(items, lambda i: i.proposal)

    async def directory_user(self, directory: str, user_id: str | None) -> DirectoryUser | None:
        """The directory user a proposal concerns (None: none, or the directory is gone)."""
        d = self._tenants.directories.get(directory)
        if d is None or not user_id:
            return None
        try:
            return await d.get(user_id)
        except SyncError:
            return None

    def find_users(self, query: str) -> set[str]:
        """Entra ids of held users whose e-mail, name, id or number is ``query`` (or whose
        name contains it)."""
        q = query.strip().lower()
        if not q:
            return set()
        region = self._live.current.matching.default_region
        e164 = normalize(query, region)
        found: set[str] = set()
        for snap in self._reader.latest.values():
            for u in snap.users:
                label = u.label.lower()
                exact = q in {x.lower() for x in u.emails} or label == q or u.id == query
                by_number = bool(e164) and any(
                    normalize(raw, region) == e164 for _, raw in u.raw_phones
                )
                if exact or by_number or q in label:
                    found.add(u.id)
        return found


def _freeze_long_lived() -> None:
    """The snapshot and the listings just read live until the next run replaces them:
    several objects per user. ``gc.freeze()`` moves every object alive now out of the
    cyclic collector's generations, so the full collections that the read, the plan and the
    record trigger do not walk all of them again (each walk ~0.15-0.3 s at 100,000 users,
    stalling the event loop; measured: the full sync's collections took 0.8 s instead of
    3.1 s). Frozen objects are still freed by reference counting when the next run drops
    them (users and records hold no reference cycles); cyclic garbage waits for the next
    unfreeze (``Runs._frozen_for_the_run``). The collector is never switched off."""
    gc.freeze()


def _plan_scoped(
    snap: EntraSnapshot,
    dir_users: list[DirectoryUser],
    state: StateView,
    config: Config,
    where: tuple[str, str],
) -> tuple[Plan, list[Proposal]]:
    """The plan, and its proposals with ids scoped to ``where`` (tenant, directory)."""
    p = make_plan(snap, dir_users, state, config)
    return p, [scoped(x, *where) for x in p.proposals]


def scoped(p: Proposal, tenant: str, directory: str) -> Proposal:
    """Proposal ids are global in Redis: one tenant feeding two directories gives two ids.
    ``p`` comes from the planner, so its id is its content id."""
    pid = hashlib.sha256(f"{tenant}\x00{directory}\x00{p.id}".encode()).hexdigest()[:20]
    return replace(p, id=pid)


def reopenable(sp: StoredProposal) -> bool:
    """Applied and superseded proposals can be proposed again; ignoring a match or a new user
    ignores the *user*, so when the planner proposes them again they were un-ignored."""
    return sp.state in (ProposalState.APPLIED, ProposalState.SUPERSEDED) or (
        sp.state is ProposalState.IGNORED and sp.proposal.kind in (Kind.MATCH, Kind.NEW)
    )


def linked_ids(dir_users: Sequence[DirectoryUser], changed: frozenset[str] | None) -> list[str]:
    """The Entra ids whose "last synced" time a run sets: every linked user with sync on after
    a full read; after a delta round only those Graph reported (the tenant's last-sync time
    covers everybody else)."""
    linked = dict.fromkeys(d.entra_id for d in dir_users if d.entra_id and d.sync_enabled)
    return [e for e in linked if changed is None or e in changed]


def pending_counts(
    proposals: Sequence[Proposal], rec: RecordResult, auto: Sequence[Item]
) -> dict[str, int]:
    """What is pending for this tenant+directory right after recording a plan, by kind: the
    plan's kept and new proposals, minus those applied automatically (taken from the plan,
    not read back from Redis)."""
    kinds = {x.id: x.kind for x in proposals}
    applied = {i.id for i in auto if i.state is not ProposalState.PENDING}
    pending = (set(rec.kept) | {x.id for x in rec.new}) - applied
    counts = Counter(kinds[pid] for pid in pending if pid in kinds)
    return {k.value: counts[k] for k in Kind}


def unreadable_warning(snap: EntraSnapshot) -> GraphDataError | None:
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
