"""Proposals in Redis and their state machine (``sync.models.TRANSITIONS``).

Proposal hash fields (``Keys.proposal``):
    state       ProposalState value; ABSENT means pending (creation is one HSETNX of "rec")
    rec         JSON {"p": Proposal.to_dict(), "t": tenant, "d": directory, "c": created_at}
    by, by_id   who decided (display name, id); "system" for superseded
    at          when decided (ISO)
    verb        the card verb that decided it (accept, ignore, link, create, ...)
    applied_at  when ACCEPTED became APPLIED (ISO)
    result      JSON of what the apply step reported

Each tenant+directory has a set of its pending ids (``Keys.pending``): an id is in it exactly
while the proposal is PENDING. Every change that reads before it writes is an optimistic
transaction (WATCH/MULTI/EXEC, retried on ``WatchError``): the embedded store (fakeredis) has
no Lua, so both run the same code. Bulk work is pipelined in batches of ``BATCH``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from sync.errors import ProposalNotFound, ProposalNotPending, StateError
from sync.models import TRANSITIONS, Kind, Proposal, ProposalState
from sync.state.keys import Keys
from sync.state.values import (
    MAX_WATCH_RETRIES,
    chunks,
    dumps,
    glob_escape,
    iso,
    str_map,
    str_set,
    text,
    time_or_none,
)

# KEYS: pending sets; ARGV[1]: the proposal key prefix. The record is compact JSON whose
# proposal starts {"id":...,"kind":"..."}: the first "kind" is the proposal's (a quote inside
# a string value is escaped, so no value can fake one).
PENDING_KINDS_LUA = """
local counts, out = {}, {}
for _, set in ipairs(KEYS) do
  for _, pid in ipairs(redis.call('SMEMBERS', set)) do
    local rec = redis.call('HGET', ARGV[1] .. pid, 'rec')
    local kind = rec and string.match(rec, '"kind":"(%w+)"')
    if kind then counts[kind] = (counts[kind] or 0) + 1 end
  end
end
for kind, n in pairs(counts) do out[#out + 1] = kind; out[#out + 1] = n end
return out
"""

SYSTEM_ID = "system"
SYSTEM_NAME = "system"
_PENDING = ProposalState.PENDING.value.encode()


@dataclass(frozen=True, slots=True)
class StoredProposal:
    proposal: Proposal
    state: ProposalState
    tenant: str
    directory: str
    created_at: datetime
    decided_by: str | None = None
    decided_by_id: str | None = None
    decided_at: datetime | None = None
    verb: str | None = None
    result: dict[str, Any] | None = None
    applied_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.proposal.id


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What ``record_plan`` did. ``new``: proposals to post cards for. ``kept``: ids already
    pending for this tenant+directory. ``superseded``: ids that were pending here, are not in
    this plan, and were moved to SUPERSEDED. ``already_decided``: ids in the plan that were
    decided before and are not re-opened. ``elsewhere``: ids in the plan already pending for
    another tenant/directory (proposal ids are global). ``written``: the proposals of ``new``
    this call created, by id, as ``get`` returns them (callers need not read them back)."""

    new: list[Proposal] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    already_decided: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    written: dict[str, StoredProposal] = field(default_factory=dict)


def parse_stored(raw: Any) -> StoredProposal | None:
    """A proposal hash as read from Redis; None when it does not exist."""
    h = str_map(raw)
    if "rec" not in h:
        return None
    rec = orjson.loads(h["rec"])
    result = h.get("result")
    return StoredProposal(
        proposal=Proposal.from_dict(rec["p"]),
        state=ProposalState(h.get("state", ProposalState.PENDING.value)),
        tenant=rec["t"],
        directory=rec["d"],
        created_at=datetime.fromisoformat(rec["c"]),
        decided_by=h.get("by"),
        decided_by_id=h.get("by_id"),
        decided_at=time_or_none(h.get("at")),
        verb=h.get("verb"),
        result=json.loads(result) if result else None,
        applied_at=time_or_none(h.get("applied_at")),
    )


class ProposalStore:
    """Recording plans, reading proposals, and moving them through the state machine."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, clock: Callable[[], datetime]):
        self._r = redis
        self._k = keys
        self._clock = clock

    def _now(self) -> str:
        return iso(self._clock())

    # --- recording a plan ------------------------------------------------------------------

    async def record_plan(
        self, tenant: str, directory: str, proposals: Sequence[Proposal]
    ) -> RecordResult:
        """Record a plan's proposals as pending, idempotently by proposal id; supersede the
        ids pending here that the plan no longer has.

        Round trips: 1 (the pending set) + ~1 per 1,000 new proposals (+1 to add them to the
        pending set) + a few per 1,000 superseded ones; a repeat of the same plan costs one.
        """
        now = self._now()
        pkey = self._k.pending(tenant, directory)
        pending_now = await self._members(pkey)
        unique: dict[str, Proposal] = {}
        for p in proposals:
            unique.setdefault(p.id, p)
        kept = [pid for pid in unique if pid in pending_now]
        candidates = [p for pid, p in unique.items() if pid not in pending_now]
        written, existing = await self._create(candidates, tenant, directory, now)
        already, elsewhere, repaired = await self._classify(existing, tenant, directory)
        new = [unique[pid] for pid in written] + repaired
        pipe = self._r.pipeline(transaction=False)
        for ids in chunks([p.id for p in new]):
            pipe.sadd(pkey, *ids)
        await pipe.execute()
        superseded = await self._supersede(
            pkey, sorted(pending_now - unique.keys()), verb="superseded"
        )
        return RecordResult(new, kept, superseded, already, elsewhere, written)

    async def _create(
        self, proposals: Sequence[Proposal], tenant: str, directory: str, now: str
    ) -> tuple[dict[str, StoredProposal], list[Proposal]]:
        """One ``HSETNX rec`` per proposal creates it atomically (a hash without "state" is
        pending) and tells whether the id existed. Returns (the created ones as ``get`` reads
        them, by id; the existing ones)."""
        created: dict[str, StoredProposal] = {}
        existing: list[Proposal] = []
        for chunk in chunks(proposals):
            recs = [
                orjson.dumps(
                    {"p": p.to_dict(), "t": tenant, "d": directory, "c": now},
                    option=orjson.OPT_SORT_KEYS,
                )
                for p in chunk
            ]
            pipe = self._r.pipeline(transaction=False)
            for p, rec in zip(chunk, recs, strict=True):
                pipe.hsetnx(self._k.proposal(p.id), "rec", rec)
            replies = await pipe.execute()
            for p, rec, was_created in zip(chunk, recs, replies, strict=True):
                sp = parse_stored({"rec": rec}) if was_created else None
                if sp is not None:
                    created[p.id] = sp
                else:
                    existing.append(p)
        return created, existing

    async def _classify(
        self, existing: Sequence[Proposal], tenant: str, directory: str
    ) -> tuple[list[str], list[str], list[Proposal]]:
        """Existing ids of a plan: (decided before, pending elsewhere, pending here but
        missing from the pending set after an earlier crash)."""
        already: list[str] = []
        elsewhere: list[str] = []
        repaired: list[Proposal] = []
        for chunk in chunks(existing):
            pipe = self._r.pipeline(transaction=False)
            for p in chunk:
                pipe.hmget(self._k.proposal(p.id), "state", "rec")
            for p, (state, rec) in zip(chunk, await pipe.execute(), strict=True):
                r = json.loads(rec) if rec else {}
                if state not in (None, _PENDING):
                    already.append(p.id)
                elif r.get("t") == tenant and r.get("d") == directory:
                    repaired.append(p)
                else:
                    elsewhere.append(p.id)
        return already, elsewhere, repaired

    async def _supersede(self, pkey: str, ids: Sequence[str], *, verb: str) -> list[str]:
        """Move ids of the pending set ``pkey`` from PENDING (absent or explicit) to
        SUPERSEDED atomically, in batches (WATCH the batch, read the states, MULTI/EXEC;
        retried on conflict). Every id leaves ``pkey``; ids no longer pending keep their
        state. Returns the ids that were moved."""
        done: list[str] = []
        for chunk in chunks(ids):
            done += await self._supersede_batch(pkey, chunk, verb)
        return done

    async def _supersede_batch(self, pkey: str, ids: Sequence[str], verb: str) -> list[str]:
        keys = [self._k.proposal(pid) for pid in ids]
        for _attempt in range(MAX_WATCH_RETRIES):
            async with self._r.pipeline(transaction=True) as tx:
                try:
                    await tx.watch(*keys)
                    # reads after WATCH (another connection): a change after the WATCH makes
                    # EXEC fail, so what we read is what we change
                    rd = self._r.pipeline(transaction=False)
                    for k in keys:
                        rd.hmget(k, "state", "rec")
                    states = await rd.execute()
                    tx.multi()  # type: ignore[no-untyped-call]
                    moved: list[str] = []
                    fields = {
                        "state": ProposalState.SUPERSEDED.value,
                        "by": SYSTEM_NAME,
                        "by_id": SYSTEM_ID,
                        "at": self._now(),
                        "verb": verb,
                    }
                    for pid, k, (state, rec) in zip(ids, keys, states, strict=True):
                        if rec is not None and state in (None, _PENDING):
                            tx.hset(k, mapping=fields)  # type: ignore[arg-type]
                            moved.append(pid)
                    tx.srem(pkey, *ids)
                    await tx.execute()
                    return moved
                except WatchError:
                    continue
        raise StateError(
            "too much contention while superseding proposals",
            code="state_contention",
            hint="Many changes happened at once. Run 'sync now' again.",
        )

    async def supersede_tenant(self, tenant: str, *, verb: str) -> tuple[list[str], list[str]]:
        """Supersede every pending proposal of a tenant (disconnect). Returns (superseded ids,
        directories that had pending sets)."""
        prefix = self._k.pending(tenant, "\0").split("\0")[0]  # "<prefix>pending:<tenant>:"
        dirs: list[str] = []
        superseded: list[str] = []
        sets = [text(k) async for k in self._r.scan_iter(match=glob_escape(prefix) + "*")]
        for key in sets:
            dirs.append(key[len(prefix) :])
            superseded += await self._supersede(key, sorted(await self._members(key)), verb=verb)
        return superseded, dirs

    # --- reading -----------------------------------------------------------------------------

    async def _members(self, key: str) -> set[str]:
        return str_set(await self._r.smembers(key))  # type: ignore[misc]

    async def get(self, proposal_id: str) -> StoredProposal | None:
        return parse_stored(await self._r.hgetall(self._k.proposal(proposal_id)))  # type: ignore[misc]

    async def get_many(self, ids: Sequence[str]) -> dict[str, StoredProposal]:
        """The stored proposals of ``ids`` that exist, by id (~1 round trip per 1,000)."""
        out: dict[str, StoredProposal] = {}
        for chunk in chunks(ids):
            pipe = self._r.pipeline(transaction=False)
            for pid in chunk:
                pipe.hgetall(self._k.proposal(pid))
            for h in await pipe.execute():
                sp = parse_stored(h)
                if sp is not None:
                    out[sp.id] = sp
        return out

    async def _pending_sets(self, tenant: str | None, directory: str | None) -> list[str]:
        if tenant is not None and directory is not None:
            return [self._k.pending(tenant, directory)]
        base = self._k.pending("\0", "\0").split("\0")[0]  # "<prefix>pending:"
        pat = glob_escape(base) + (glob_escape(tenant) + ":" if tenant is not None else "") + "*"
        found = [text(k) async for k in self._r.scan_iter(match=pat, count=1000)]
        return [k for k in found if directory is None or k.endswith(":" + directory)]

    async def pending(
        self, tenant: str | None = None, directory: str | None = None, kind: Kind | None = None
    ) -> list[StoredProposal]:
        """Pending proposals, oldest first (then by id)."""
        ids: set[str] = set()
        for key in await self._pending_sets(tenant, directory):
            ids |= await self._members(key)
        out = [
            sp
            for sp in (await self.get_many(sorted(ids))).values()
            if sp.state is ProposalState.PENDING
            and (kind is None or sp.proposal.kind is kind)
            and (tenant is None or sp.tenant == tenant)
            and (directory is None or sp.directory == directory)
        ]
        out.sort(key=lambda sp: (sp.created_at, sp.id))
        return out

    async def pending_counts(
        self, tenant: str | None = None, directory: str | None = None, kind: Kind | None = None
    ) -> dict[str, int]:
        """Pending proposals counted by kind; every kind is present (0 when none)."""
        counts = {k.value: 0 for k in Kind}
        for sp in await self.pending(tenant, directory, kind):
            counts[sp.proposal.kind.value] += 1
        return counts

    async def pending_kinds(self) -> dict[str, int]:
        """Pending proposals of every tenant and directory counted by kind, in one script run
        by Redis (one round trip; no record leaves Redis: cheap enough for every metrics
        scrape, ~20,000 pending in a few ms of Redis time)."""
        counts = {k.value: 0 for k in Kind}
        sets = await self._pending_sets(None, None)
        if not sets:
            return counts
        pairs = await self._r.eval(  # type: ignore[misc]
            PENDING_KINDS_LUA, len(sets), *sets, self._k.proposal("")
        )
        for kind, n in zip(pairs[::2], pairs[1::2], strict=True):
            if text(kind) in counts:
                counts[text(kind)] = int(n)
        return counts

    async def intents(self) -> list[StoredProposal]:
        """Accepted but not yet applied proposals (to finish after a crash), oldest first."""
        ids = sorted(await self._members(self._k.intents()))
        items = [
            sp for sp in (await self.get_many(ids)).values() if sp.state is ProposalState.ACCEPTED
        ]
        items.sort(key=lambda sp: (sp.decided_at or sp.created_at, sp.id))
        return items

    # --- the state machine -------------------------------------------------------------------

    async def transition(
        self,
        proposal_id: str,
        to: ProposalState,
        *,
        actor_id: str,
        actor_name: str,
        verb: str,
        expect: ProposalState = ProposalState.PENDING,
        result: dict[str, Any] | None = None,
    ) -> StoredProposal:
        """Move one proposal from ``expect`` to ``to``, atomically (WATCH/MULTI/EXEC).

        Raises ProposalNotFound, or ProposalNotPending (carrying the current state, who decided
        and when) when the state is not ``expect`` or the move is not in TRANSITIONS.
        The pending set holds the id exactly while the state is PENDING (leaving PENDING
        removes it, coming back puts it back). Entering ACCEPTED adds the id to the intents
        set; leaving ACCEPTED removes it. ACCEPTED -> APPLIED keeps who decided (the admin)
        and records ``applied_at``.
        """
        key = self._k.proposal(proposal_id)
        for _attempt in range(MAX_WATCH_RETRIES):
            async with self._r.pipeline(transaction=True) as tx:
                try:
                    await tx.watch(key)
                    sp = parse_stored(await tx.hgetall(key))  # type: ignore[misc]
                    _check_move(proposal_id, sp, expect, to)
                    assert sp is not None
                    tx.multi()  # type: ignore[no-untyped-call]
                    self._write_move(tx, sp, to, actor_id, actor_name, verb, result)
                    await tx.execute()
                except WatchError:
                    continue
            got = await self.get(proposal_id)
            if got is None:  # pragma: no cover - deleted right after the write
                raise ProposalNotFound(f"proposal {proposal_id} is not known")
            return got
        raise StateError(
            f"too much contention on proposal {proposal_id}",
            code="state_contention",
            hint="Many people acted at once. Try again.",
        )

    def _write_move(
        self,
        tx: Any,
        sp: StoredProposal,
        to: ProposalState,
        actor_id: str,
        actor_name: str,
        verb: str,
        result: dict[str, Any] | None,
    ) -> None:
        now = self._now()
        fields: dict[str, str] = {"state": to.value}
        if sp.state is ProposalState.PENDING or sp.decided_by is None:
            fields |= {"by": actor_name, "by_id": actor_id, "at": now, "verb": verb}
        if to is ProposalState.APPLIED:
            fields["applied_at"] = now
        if result is not None:
            fields["result"] = dumps(result)
        pending_set = self._k.pending(sp.tenant, sp.directory)
        tx.hset(self._k.proposal(sp.id), mapping=fields)
        if sp.state is ProposalState.PENDING:
            tx.srem(pending_set, sp.id)
        if to is ProposalState.PENDING:
            tx.sadd(pending_set, sp.id)
        if to is ProposalState.ACCEPTED:
            tx.sadd(self._k.intents(), sp.id)
        if sp.state is ProposalState.ACCEPTED:
            tx.srem(self._k.intents(), sp.id)


def _check_move(
    proposal_id: str, sp: StoredProposal | None, expect: ProposalState, to: ProposalState
) -> None:
    """Raise unless ``sp`` exists, is in state ``expect``, and ``to`` is a legal next state."""
    if sp is None:
        raise ProposalNotFound(f"proposal {proposal_id} is not known")
    if sp.state is not expect or to not in TRANSITIONS[sp.state]:
        at = sp.decided_at.isoformat() if sp.decided_at else None
        who = f" by {sp.decided_by}" if sp.decided_by else ""
        raise ProposalNotPending(
            f"proposal {proposal_id} is already {sp.state.value}{who}"
            + (f" at {at}" if at else ""),
            state=sp.state.value,
            actor=sp.decided_by,
            at=at,
        )
