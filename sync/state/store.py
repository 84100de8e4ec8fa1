"""The sync state in Redis: proposals and their state machine, ignored users, number owners,
delta links, snapshots, last-sync records, the per-tenant run lock, the audit stream, card and
conversation references, credentials (encrypted) and settings overrides.

Every key comes from ``sync.state.keys.Keys``. Times come from the injected clock (aware UTC)
and are stored as ISO strings. Values are compact JSON.

Atomicity: every state change that reads before it writes runs as an optimistic transaction
(``WATCH`` / ``MULTI`` / ``EXEC``, retried on ``WatchError``). We use WATCH rather than Lua
because the embedded store (fakeredis, when ``REDIS_URL`` is unset) has no Lua engine; the same
code path then runs on both, and the integration tests exercise it on the real server.

Bulk operations (``record_plan``, snapshots, per-user times) are pipelined in batches of at most
``BATCH`` commands, so 100,000 proposals cost a few hundred round trips, not 100,000.

Proposal hash fields (``Keys.proposal``):
    state       ProposalState value; ABSENT means pending (creation is one HSETNX of "rec")
    rec         JSON {"p": Proposal.to_dict(), "t": tenant, "d": directory, "c": created_at}
    by, by_id   who decided (display name, id); "system" for superseded
    at          when decided (ISO)
    verb        the card verb that decided it (accept, ignore, link, create, ...)
    applied_at  when ACCEPTED became APPLIED (ISO)
    result      JSON of what the apply step reported
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, islice, repeat
from typing import Any, Literal, TypeVar

import orjson
import redis.asyncio as aioredis
from pydantic import SecretStr
from redis.exceptions import RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sync.errors import LockBusy, ProposalNotFound, ProposalNotPending, StateError
from sync.models import (
    TRANSITIONS,
    Change,
    EntraUser,
    Kind,
    Proposal,
    ProposalState,
    StateView,
    make_entra_user,
    proposal_of,
    slot_setters,
)
from sync.state.keys import Keys
from sync.state.secrets import SecretBox

log = logging.getLogger(__name__)

BATCH = 1000  # commands per pipeline
MAX_WATCH_RETRIES = 100
AUDIT_MAXLEN = 100_000
GUARD_TTL = timedelta(hours=24)  # an unused guard confirmation expires
SYSTEM_ID = "system"
SYSTEM_NAME = "system"

_T = TypeVar("_T")

# value types a proposal record writes with orjson (see StateStore._new_record)
_STR_OR_NONE = frozenset({str, type(None)})
_REC_SCALARS = frozenset({str, type(None), bool, int})


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What ``record_plan`` did. ``new``: proposals to post cards for. ``kept``: ids already
    pending for this tenant+directory. ``superseded``: ids that were pending here, are not in
    this plan, and were moved to SUPERSEDED. ``already_decided``: ids in the plan that were
    decided before (applied/ignored/superseded/accepted) and are not re-opened.
    ``elsewhere``: ids in the plan already pending for another tenant/directory (proposal ids
    are global; see the module notes). ``written``: the proposals of ``new`` this call
    created, by id, exactly as ``get`` returns them right after (parsed from what was written,
    so callers need not read them back)."""

    new: list[Proposal] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    already_decided: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    written: dict[str, StoredProposal] = field(default_factory=dict)


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


# record_plan's ``written`` (~19,000 at 100,000 users) builds these by their slot setters
_STORED_SETTERS = slot_setters(StoredProposal)


_NOT_PLAIN = object()


def _rec_side(v: Any) -> Any:
    """One side of a change as ``Proposal.from_dict`` gives it back from a record: a scalar as
    is, a list or tuple of strings as a tuple; ``_NOT_PLAIN`` for anything else."""
    if type(v) in _REC_SCALARS:
        return v
    if type(v) is list:
        v = tuple(v)
    elif type(v) is not tuple:
        return _NOT_PLAIN
    return v if all(type(x) is str for x in v) else _NOT_PLAIN


def _pending_stored(
    p: Proposal, tenant: str, directory: str, created_at: datetime
) -> StoredProposal:
    """``StoredProposal(p, ProposalState.PENDING, tenant, directory, created_at)``."""
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 = _STORED_SETTERS
    sp: StoredProposal = object.__new__(StoredProposal)
    s0(sp, p)
    s1(sp, ProposalState.PENDING)
    s2(sp, tenant)
    s3(sp, directory)
    s4(sp, created_at)
    s5(sp, None)
    s6(sp, None)
    s7(sp, None)
    s8(sp, None)
    s9(sp, None)
    s10(sp, None)
    return sp


@dataclass(frozen=True, slots=True)
class LastSync:
    at: datetime
    status: Literal["ok", "failed"]
    error: dict[str, Any] | None
    counters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit trail. ``id`` is the Redis stream id (time-ordered)."""

    id: str
    at: datetime
    actor_id: str
    actor_name: str
    action: str
    tenant: str
    proposal_id: str | None = None
    entra_id: str | None = None
    app_user_id: str | None = None
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "action": self.action,
            "tenant": self.tenant,
            "proposal_id": self.proposal_id,
            "entra_id": self.entra_id,
            "app_user_id": self.app_user_id,
            "before": self.before,
            "after": self.after,
        }


# --- helpers ---------------------------------------------------------------------------------


def _dumps(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _s(v: bytes | str | None) -> str | None:
    if v is None:
        return None
    return v.decode("utf-8") if isinstance(v, bytes) else v


def _chunks(items: Sequence[_T], n: int) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _glob_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch in "*?[]\\":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def _str(v: bytes | str) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else v


def _smap(h: Any) -> dict[str, str]:
    """A Redis hash reply (bytes or str keys/values) as str -> str."""
    return {_str(k): _str(v) for k, v in (h or {}).items()}


def _sset(m: Any) -> set[str]:
    if not m:
        return set()
    try:
        return set(map(bytes.decode, m))  # the usual reply: bytes (UTF-8)
    except TypeError:  # a client that decodes replies itself (str)
        return {_str(x) for x in m}


def _dt(v: bytes | str | None) -> datetime | None:
    s = _s(v)
    return datetime.fromisoformat(s) if s else None


# A snapshot row is the JSON array ``[id, accountEnabled, attrs]``, attrs as held (nulls
# included): a whole snapshot is written by orjson with no per-user work. Rows written before
# were Graph's shape, ``{"id", "accountEnabled", ...attrs}`` without the nulls; both are read,
# and both read as the same user: attrs without null values and without "id", with
# "accountEnabled" set to the account state. (Not-a-number floats, which Graph's JSON cannot
# carry, are stored as null.)


def _snapshot_json(v: Any) -> bytes:
    """Compact JSON of snapshot rows: orjson; the stdlib for what orjson refuses (integers
    beyond 64 bits, keys that are not strings, mappings that are not dicts), with a leading
    space so that it is read back by the stdlib too (orjson reads big integers as floats)."""
    try:
        return orjson.dumps(v)
    except orjson.JSONEncodeError:
        raw = json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=_plain)
        return b" " + raw.encode()


def _plain(o: Any) -> Any:
    if isinstance(o, Mapping):
        return dict(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _snapshot_loads(raw: bytes | str) -> Any:
    """Rows written by orjson (``[[...`` or ``["...``: nothing in them reads differently) by
    orjson; the format before and what the stdlib wrote by the stdlib."""
    if isinstance(raw, str):
        raw = raw.encode()
    if raw[:2] == b"[[" or raw[:2] == b'["':
        return orjson.loads(raw)
    return json.loads(raw)


def user_to_json(u: EntraUser) -> bytes:
    """One snapshot row: compact JSON ``[id, accountEnabled, attrs]``."""
    return _snapshot_json((u.id, u.enabled, u.attrs))


def _user_from_dict(d: dict[str, Any]) -> EntraUser:
    """A row of the format before (Graph's shape, no nulls)."""
    uid = str(d.pop("id"))
    return make_entra_user(uid, bool(d.get("accountEnabled", True)), d)


def _add_rows(rows: Iterable[Any], users: dict[str, EntraUser]) -> None:
    """The users of decoded snapshot rows, of either format, into ``users`` by id (the decoded
    objects are used, not copied)."""
    make = make_entra_user
    for row in rows:
        if type(row) is not list:
            u = _user_from_dict(row)
            users[u.id] = u
            continue
        uid, enabled, attrs = row
        if None in attrs.values():
            attrs = {k: v for k, v in attrs.items() if v is not None}
        if "id" in attrs:
            del attrs["id"]
        if attrs.get("accountEnabled") is not enabled:
            attrs["accountEnabled"] = enabled
        if type(uid) is not str:
            uid = str(uid)
        if enabled is not True and enabled is not False:
            enabled = bool(enabled)  # (attrs keep the stored value, as before)
        users[uid] = make(uid, enabled, attrs)


def user_from_json(raw: bytes | str) -> EntraUser:
    users: dict[str, EntraUser] = {}
    _add_rows((_snapshot_loads(raw),), users)
    (u,) = users.values()
    return u


class StateStore:
    """The sync state. One instance per process; safe for concurrent use by many tasks.

    ``redis`` must be created with ``decode_responses=False``. ``clock`` returns an aware
    datetime (UTC is used for storage).
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, clock: Callable[[], datetime]) -> None:
        self._r = redis
        self._k = keys
        self._clock = clock
        # run locks this process took but could not release (Redis failed at that moment):
        # released before this process takes the same lock again, instead of waiting the TTL
        self._unreleased: dict[str, str] = {}

    # --- time --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        return now.astimezone(UTC)

    @staticmethod
    def _iso(dt: datetime) -> str:
        if dt.tzinfo is None:
            raise ValueError("datetimes must be aware")
        return dt.astimezone(UTC).isoformat()

    # --- proposals ---------------------------------------------------------------------------

    def _rec(self, p: Proposal, tenant: str, directory: str, created: str) -> str:
        return _dumps({"p": p.to_dict(), "t": tenant, "d": directory, "c": created})

    @staticmethod
    def _parse(raw: Any) -> StoredProposal | None:
        h = _smap(raw)
        if "rec" not in h:
            return None
        rec = json.loads(h["rec"])
        result = h.get("result")
        return StoredProposal(
            proposal=Proposal.from_dict(rec["p"]),
            state=ProposalState(h.get("state", ProposalState.PENDING.value)),
            tenant=rec["t"],
            directory=rec["d"],
            created_at=datetime.fromisoformat(rec["c"]),
            decided_by=_s(h.get("by")),
            decided_by_id=_s(h.get("by_id")),
            decided_at=_dt(h.get("at")),
            verb=_s(h.get("verb")),
            result=json.loads(result) if result else None,
            applied_at=_dt(h.get("applied_at")),
        )

    @staticmethod
    def _new_record(
        p: Proposal, tenant: str, directory: str, created: str, created_at: datetime
    ) -> tuple[bytes, StoredProposal] | None:
        """The ``rec`` of a new proposal and the StoredProposal ``get`` returns for it right
        after, without the JSON round trip: the bytes are what ``_rec`` writes (orjson gives
        them for strings, nulls, booleans, integers and lists; the dict is ``to_dict``'s,
        built here in the same pass), the proposal is what ``Proposal.from_dict`` makes of
        them (changes in key order, lists as tuples, the conflict-only and match fields as
        ``to_dict`` keeps them): ``p`` itself when it is that already. None when a field holds
        anything else (then ``_rec`` and ``_parse``)."""
        sn = _STR_OR_NONE
        kind, pid, entra_id, app_id = p.kind, p.id, p.entra_id, p.app_user_id
        reason, label, app_label, cause = p.reason, p.label, p.app_label, p.removal_cause
        match_key, match_value = p.match_key, p.match_value
        if not (
            type(kind) is Kind
            and type(pid) is str
            and pid
            and type(entra_id) in sn
            and type(app_id) in sn
            and type(reason) is str
            and type(label) is str
            and type(app_label) is str
            and type(match_key) in sn
            and type(match_value) in sn
            and type(cause) in sn
            and type(tenant) is str
            and type(directory) is str
        ):
            return None
        src = p.changes
        keys = list(src)
        for k in keys:
            if type(k) is not str:
                return None
        order = sorted(keys)
        # from_dict: a Proposal, its changes a dict in key order
        same = type(p) is Proposal and type(src) is dict and order == keys
        changes: dict[str, Change] = {}
        jchanges: dict[str, dict[str, Any]] = {}
        for k in order:
            c = src[k]
            old, new = c.old, c.new
            # from_dict: a Change of scalars and tuples (lists become tuples)
            old2, new2 = _rec_side(old), _rec_side(new)
            if old2 is _NOT_PLAIN or new2 is _NOT_PLAIN:
                return None
            fresh = type(c) is not Change or old2 is not old or new2 is not new
            old, new = old2, new2
            if fresh:
                c, same = Change(old, new), False
            changes[k] = c
            jchanges[k] = {"old": old, "new": new}
        d: dict[str, Any] = {
            "id": pid,
            "kind": kind.value,
            "entra_id": entra_id,
            "app_user_id": app_id,
            "reason": reason,
            "changes": jchanges,
            "label": label,
            "app_label": app_label,
        }
        entra_ids, entra_labels, number = p.entra_ids, p.entra_labels, p.number
        if kind is Kind.CONFLICT:
            if not (
                type(number) in sn
                and all(type(x) is str for x in entra_ids)
                and all(type(x) is str for x in entra_labels)
            ):
                return None
            d["entra_ids"] = entra_ids
            d["entra_labels"] = entra_labels
            d["number"] = number
            same = same and type(entra_ids) is tuple and type(entra_labels) is tuple
            entra_ids, entra_labels = tuple(entra_ids), tuple(entra_labels)
        else:
            same = same and entra_ids == () and entra_labels == () and number is None
            entra_ids, entra_labels, number = (), (), None
        if match_key is not None:
            d["match"] = {"key": match_key, "value": match_value}
        elif match_value is not None:
            match_value, same = None, False
        if cause is not None:
            d["removal_cause"] = cause
        try:
            raw = orjson.dumps(
                {"p": d, "t": tenant, "d": directory, "c": created}, option=orjson.OPT_SORT_KEYS
            )
        except orjson.JSONEncodeError:  # lone surrogates, integers beyond 64 bits
            return None
        if not same:
            p = proposal_of(
                kind,
                entra_id,
                app_id,
                reason,
                changes,
                entra_ids,
                match_key,
                match_value,
                number,
                cause,
                label,
                app_label,
                entra_labels,
                pid,
            )
        return raw, _pending_stored(p, tenant, directory, created_at)

    async def record_plan(
        self, tenant: str, directory: str, proposals: Sequence[Proposal]
    ) -> RecordResult:
        """Record a plan's proposals as pending, idempotently by proposal id.

        Round trips: 1 (the pending set) + ~1 per 1,000 new proposals (+1 to add them to the
        pending set) + 3 per 1,000 superseded ones; a repeat of the same plan costs one.
        """
        now = self._iso(self._now())
        pkey = self._k.pending(tenant, directory)
        pending_now = await self._members(pkey)

        unique: dict[str, Proposal] = {}
        for p in proposals:
            unique.setdefault(p.id, p)
        kept = [pid for pid in unique if pid in pending_now]
        candidates = [p for pid, p in unique.items() if pid not in pending_now]

        created: list[Proposal] = []
        existing: list[Proposal] = []
        written: dict[str, StoredProposal] = {}
        created_at = datetime.fromisoformat(now)
        for chunk in _chunks(candidates, BATCH):
            # One HSETNX per proposal creates it atomically (a hash without "state" is
            # pending), and tells us whether the id existed: no read before the write.
            recs: list[tuple[bytes | str, StoredProposal | None]] = []
            for p in chunk:
                rec = self._new_record(p, tenant, directory, now, created_at)
                recs.append(rec or (self._rec(p, tenant, directory, now), None))
            res = await self._create_recs(
                [(self._k.proposal(p.id), raw) for p, (raw, _) in zip(chunk, recs, strict=True)]
            )
            for p, (rec_json, sp), was_created in zip(chunk, recs, res, strict=True):
                if was_created:
                    created.append(p)
                    if sp is None:
                        sp = self._parse({"rec": rec_json})  # what get() gives for the new hash
                    if sp is not None:
                        written[p.id] = sp
                else:
                    existing.append(p)

        already: list[str] = []
        elsewhere: list[str] = []
        repaired: list[Proposal] = []
        for ex_chunk in _chunks(existing, BATCH):
            pipe = self._r.pipeline(transaction=False)
            for p in ex_chunk:
                pipe.hmget(self._k.proposal(p.id), "state", "rec")
            for p, (state, rec) in zip(ex_chunk, await pipe.execute(), strict=True):
                if state is not None and state != ProposalState.PENDING.value.encode():
                    already.append(p.id)
                    continue
                r = json.loads(rec) if rec else {}
                if r.get("t") == tenant and r.get("d") == directory:
                    repaired.append(p)  # pending but missing from the set (earlier crash)
                else:
                    elsewhere.append(p.id)

        new = created + repaired
        if new:
            ids = [p.id for p in new]
            pipe = self._r.pipeline(transaction=False)
            for n, ids_chunk in enumerate(_chunks(ids, BATCH)):
                pipe.sadd(pkey, *ids_chunk)
                if (n + 1) % BATCH == 0:
                    await pipe.execute()
                    pipe = self._r.pipeline(transaction=False)
            await pipe.execute()

        plan_ids = set(unique)
        stale = sorted(pending_now - plan_ids)
        superseded = await self._supersede(pkey, stale, verb="superseded")
        return RecordResult(
            new=new,
            kept=kept,
            superseded=superseded,
            already_decided=already,
            elsewhere=elsewhere,
            written=written,
        )

    async def _create_recs(self, items: Sequence[tuple[str, bytes | str]]) -> list[Any]:
        """``HSETNX key rec value`` for each (key, value): the replies in order (1 created,
        0 existed). What a pipeline (no MULTI) of them does, written and read on one
        connection of the client's pool without the pipeline's per-command staging, packing
        and reply layers (~19,000 commands at 100,000 users). Connection errors are retried
        as the pipeline retries them (a repeated HSETNX reports 0; ``record_plan`` then finds
        the proposal pending here and re-adds it). A connection left with unread replies
        (an error reply, cancellation) is closed, not reused."""
        pool = self._r.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            # packed by the connection (hiredis with sync.state.connection's connection class)
            payload = conn.pack_commands([("HSETNX", key, "rec", value) for key, value in items])
            n = len(items)
            read = conn.read_response

            async def send_and_read() -> list[Any]:
                # one timeout (the socket's) for the whole batch, not one timer per reply
                try:
                    async with asyncio.timeout(conn.socket_timeout):
                        await conn.send_packed_command(payload)
                        return [await read(timeout=math.inf) for _ in range(n)]
                except TimeoutError:
                    raise RedisTimeoutError("Timeout reading from Redis") from None

            async def fail(_error: Exception) -> None:
                await conn.disconnect()

            replies: list[Any] = await conn.retry.call_with_retry(send_and_read, fail)
            return replies
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def _supersede(self, pkey: str, ids: Sequence[str], *, verb: str) -> list[str]:
        """Move ids of the pending set ``pkey`` from PENDING to SUPERSEDED atomically, in
        batches: WATCH the batch, read the states (pipelined), then MULTI/EXEC the changes;
        retry the batch on conflict. Every id leaves ``pkey``; ids no longer pending keep their
        state. Returns the ids that were moved."""
        done: list[str] = []
        pend = ProposalState.PENDING.value.encode()
        for chunk in _chunks(ids, BATCH):
            keys = [self._k.proposal(pid) for pid in chunk]
            for _attempt in range(MAX_WATCH_RETRIES):
                async with self._r.pipeline(transaction=True) as tx:
                    try:
                        await tx.watch(*keys)
                        # Reads after WATCH (on another connection, pipelined): any change
                        # after the WATCH makes EXEC fail, so what we read is what we change.
                        rd = self._r.pipeline(transaction=False)
                        for k in keys:
                            rd.hmget(k, "state", "rec")
                        states = await rd.execute()
                        moved: list[str] = []
                        tx.multi()  # type: ignore[no-untyped-call]
                        now = self._iso(self._now())
                        for pid, k, (state, rec) in zip(chunk, keys, states, strict=True):
                            if rec is None or state not in (None, pend):
                                continue  # unknown id, or decided meanwhile
                            tx.hset(
                                k,
                                mapping={
                                    "state": ProposalState.SUPERSEDED.value,
                                    "by": SYSTEM_NAME,
                                    "by_id": SYSTEM_ID,
                                    "at": now,
                                    "verb": verb,
                                },
                            )
                            moved.append(pid)
                        tx.srem(pkey, *chunk)
                        await tx.execute()
                        done.extend(moved)
                        break
                    except WatchError:
                        continue
            else:
                raise StateError(
                    "too much contention while superseding proposals",
                    code="state_contention",
                    hint="Many changes happened at once. Run 'sync now' again.",
                )
        return done

    async def _members(self, key: str) -> set[str]:
        return _sset(await self._r.smembers(key))  # type: ignore[misc]

    async def get(self, proposal_id: str) -> StoredProposal | None:
        h = await self._r.hgetall(self._k.proposal(proposal_id))  # type: ignore[misc]
        return self._parse(h)

    async def get_many(self, ids: Sequence[str]) -> dict[str, StoredProposal]:
        """The stored proposals of ``ids`` that exist, by id (pipelined: ~1 round trip per
        1,000 ids)."""
        return {sp.id: sp for sp in await self._load_many(ids)}

    async def _load_many(self, ids: Sequence[str]) -> list[StoredProposal]:
        out: list[StoredProposal] = []
        for chunk in _chunks(ids, BATCH):
            pipe = self._r.pipeline(transaction=False)
            for pid in chunk:
                pipe.hgetall(self._k.proposal(pid))
            for h in await pipe.execute():
                sp = self._parse(h)
                if sp is not None:
                    out.append(sp)
        return out

    async def _pending_ids(self, tenant: str | None, directory: str | None) -> list[str]:
        if tenant is not None and directory is not None:
            sets = [self._k.pending(tenant, directory)]
        else:
            base = self._k.pending("\0", "\0").split("\0")[0]  # "<prefix>pending:"
            pat = _glob_escape(base)
            pat += (_glob_escape(tenant) + ":" if tenant is not None else "") + "*"
            sets = []
            async for k in self._r.scan_iter(match=pat, count=1000):
                key = _s(k) or ""
                if directory is None or key.endswith(":" + directory):
                    sets.append(key)
        ids: set[str] = set()
        for s in sets:
            ids.update(await self._members(s))
        return sorted(ids)

    async def pending(
        self, tenant: str | None = None, directory: str | None = None, kind: Kind | None = None
    ) -> list[StoredProposal]:
        """Pending proposals, oldest first (then by id)."""
        items = await self._load_many(await self._pending_ids(tenant, directory))
        out = [
            sp
            for sp in items
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
        Entering ACCEPTED adds the id to the intents set; ACCEPTED -> APPLIED removes it.
        ACCEPTED -> APPLIED keeps who decided (the admin) and records ``applied_at``.
        """
        key = self._k.proposal(proposal_id)
        for _attempt in range(MAX_WATCH_RETRIES):
            async with self._r.pipeline(transaction=True) as tx:
                try:
                    await tx.watch(key)
                    h = await tx.hgetall(key)  # type: ignore[misc]
                    sp = self._parse(h)
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
                    now = self._iso(self._now())
                    fields: dict[str, str] = {"state": to.value}
                    if sp.state is ProposalState.PENDING or sp.decided_by is None:
                        fields |= {"by": actor_name, "by_id": actor_id, "at": now, "verb": verb}
                    if to is ProposalState.APPLIED:
                        fields["applied_at"] = now
                    if result is not None:
                        fields["result"] = _dumps(result)
                    tx.multi()  # type: ignore[no-untyped-call]
                    tx.hset(key, mapping=fields)  # type: ignore[arg-type]
                    if sp.state is ProposalState.PENDING:
                        tx.srem(self._k.pending(sp.tenant, sp.directory), proposal_id)
                    if to is ProposalState.ACCEPTED:
                        tx.sadd(self._k.intents(), proposal_id)
                    if sp.state is ProposalState.ACCEPTED:
                        tx.srem(self._k.intents(), proposal_id)
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

    async def intents(self) -> list[StoredProposal]:
        """Accepted but not yet applied proposals (to finish after a crash), oldest first."""
        ids = sorted(await self._members(self._k.intents()))
        items = [sp for sp in await self._load_many(ids) if sp.state is ProposalState.ACCEPTED]
        items.sort(key=lambda sp: (sp.decided_at or sp.created_at, sp.id))
        return items

    # --- card references ---------------------------------------------------------------------

    async def set_card_ref(self, proposal_id: str, ref: dict[str, Any]) -> None:
        await self._r.set(self._k.card_ref(proposal_id), _dumps(ref))

    async def card_ref(self, proposal_id: str) -> dict[str, Any] | None:
        raw = await self._r.get(self._k.card_ref(proposal_id))
        return json.loads(raw) if raw else None

    # --- ignored users, number owners, guard ---------------------------------------------------

    async def ignored(self, tenant: str) -> frozenset[str]:
        return frozenset(await self._members(self._k.ignored(tenant)))

    async def ignore(self, tenant: str, entra_id: str, *, actor_id: str, actor_name: str) -> bool:
        """Ignore an Entra user (kept out of every list). Audited. True if it changed."""
        added = int(await self._r.sadd(self._k.ignored(tenant), entra_id))  # type: ignore[misc]
        if added:
            await self.audit(actor_id, actor_name, "ignore_user", tenant=tenant, entra_id=entra_id)
        return added > 0

    async def unignore(self, tenant: str, entra_id: str, *, actor_id: str, actor_name: str) -> bool:
        removed = int(await self._r.srem(self._k.ignored(tenant), entra_id))  # type: ignore[misc]
        if removed:
            await self.audit(
                actor_id, actor_name, "unignore_user", tenant=tenant, entra_id=entra_id
            )
        return removed > 0

    async def number_owners(self, tenant: str) -> dict[str, str]:
        return _smap(await self._r.hgetall(self._k.number_owners(tenant)))  # type: ignore[misc]

    async def set_number_owner(
        self,
        tenant: str,
        e164: str,
        entra_id: str,
        *,
        actor_id: str | None = None,
        actor_name: str | None = None,
    ) -> None:
        """Record who owns a shared number. Audited when an actor is given."""
        key = self._k.number_owners(tenant)
        before = _s(await self._r.hget(key, e164))  # type: ignore[misc]
        await self._r.hset(key, e164, entra_id)  # type: ignore[misc]
        if actor_id is not None:
            await self.audit(
                actor_id,
                actor_name or actor_id,
                "set_number_owner",
                tenant=tenant,
                entra_id=entra_id,
                before={"number": e164, "owner": before},
                after={"number": e164, "owner": entra_id},
            )

    async def confirm_guard(self, tenant: str, directory: str) -> None:
        """Let the next run's removals through (one shot; expires after 24 h unused)."""
        await self._r.set(
            self._k.guard_confirmed(tenant, directory),
            self._iso(self._now()),
            px=int(GUARD_TTL.total_seconds() * 1000),
        )

    async def consume_guard(self, tenant: str, directory: str) -> bool:
        return await self._r.getdel(self._k.guard_confirmed(tenant, directory)) is not None

    async def state_view(self, tenant: str, directory: str) -> StateView:
        pipe = self._r.pipeline(transaction=False)
        pipe.smembers(self._k.ignored(tenant))
        pipe.hgetall(self._k.number_owners(tenant))
        pipe.exists(self._k.guard_confirmed(tenant, directory))
        ign, owners, guard = await pipe.execute()
        return StateView(
            ignored=frozenset(_sset(ign)),
            number_owners=_smap(owners),
            removals_confirmed=bool(guard),
        )

    # --- delta links and snapshots -----------------------------------------------------------

    async def get_delta_link(self, tenant: str, directory: str) -> str | None:
        return _s(await self._r.get(self._k.delta_link(tenant, directory)))

    async def set_delta_link(self, tenant: str, directory: str, link: str) -> None:
        await self._r.set(self._k.delta_link(tenant, directory), link)

    async def clear_delta_link(self, tenant: str, directory: str) -> None:
        await self._r.delete(self._k.delta_link(tenant, directory))

    async def save_snapshot(self, tenant: str, users: Iterable[EntraUser]) -> int:
        """Replace the tenant's snapshot with ``users``: a list of compact JSON arrays of up to
        1,000 rows ``[id, accountEnabled, attrs]`` each (not compressed), written with the
        overlay of deltas cleared in one MULTI (one round trip; readers never see a half
        snapshot). Returns the number of users saved."""
        parts: list[bytes] = []
        n = 0
        it = iter(users)
        while chunk := [(u.id, u.enabled, u.attrs) for u in islice(it, BATCH)]:
            parts.append(_snapshot_json(chunk))
            n += len(chunk)
        k = self._k
        live = k.snapshot_parts(tenant)
        async with self._r.pipeline(transaction=True) as tx:
            tx.delete(
                live,
                k.snapshot_overlay(tenant),
                k.snapshot_removed(tenant),
                k.snapshot(tenant),  # the old layout (one hash field per user)
                k.snapshot_staging(tenant),
            )
            if parts:
                tx.rpush(live, *parts)
            await tx.execute()
        return n

    async def update_snapshot(
        self, tenant: str, changed: Iterable[EntraUser], removed_ids: Iterable[str]
    ) -> None:
        """Merge a delta into the snapshot: upsert ``changed``, drop ``removed_ids``. Written to
        the overlay (a hash of changed users and a set of removed ids, in one MULTI); the next
        full save folds it away."""
        over = self._k.snapshot_overlay(tenant)
        gone = self._k.snapshot_removed(tenant)
        removed = list(dict.fromkeys(removed_ids))
        gone_now = set(removed)  # a user both changed and removed in one delta is removed
        batch = {u.id: user_to_json(u) for u in changed if u.id not in gone_now}
        if not batch and not removed:
            return
        async with self._r.pipeline(transaction=True) as tx:
            for ids in _chunks(list(batch), BATCH):
                tx.hset(over, mapping={uid: batch[uid] for uid in ids})
                tx.srem(gone, *ids)
            for ids in _chunks(removed, BATCH):
                tx.hdel(over, *ids)
                tx.sadd(gone, *ids)
            await tx.execute()

    async def load_snapshot(self, tenant: str) -> list[EntraUser]:
        """All users of the snapshot (the saved parts, then the overlay), sorted by id. One
        round trip."""
        k = self._k
        pipe = self._r.pipeline(transaction=True)
        pipe.lrange(k.snapshot_parts(tenant), 0, -1)
        pipe.hgetall(k.snapshot_overlay(tenant))
        pipe.smembers(k.snapshot_removed(tenant))
        parts, over, gone = await pipe.execute()
        users: dict[str, EntraUser] = {}
        for part in parts:
            _add_rows(_snapshot_loads(part), users)
        _add_rows(map(_snapshot_loads, (over or {}).values()), users)
        for uid in _sset(gone):
            users.pop(uid, None)
        return [users[uid] for uid in sorted(users)]

    # --- last sync ---------------------------------------------------------------------------

    async def set_last_sync(
        self,
        tenant: str,
        *,
        status: Literal["ok", "failed"],
        error: dict[str, Any] | None,
        counters: dict[str, Any],
        at: datetime,
    ) -> None:
        await self._r.hset(  # type: ignore[misc]
            self._k.last_sync(tenant),
            mapping={
                "at": self._iso(at),
                "status": status,
                "error": _dumps(error),
                "counters": _dumps(counters),
            },
        )

    async def last_sync(self, tenant: str) -> LastSync | None:
        h = _smap(await self._r.hgetall(self._k.last_sync(tenant)))  # type: ignore[misc]
        if "at" not in h:
            return None
        status = h.get("status")
        return LastSync(
            at=datetime.fromisoformat(h["at"]),
            status="ok" if status == "ok" else "failed",
            error=json.loads(h.get("error", "null")),
            counters=json.loads(h.get("counters", "{}")),
        )

    async def set_user_last_sync(self, tenant: str, ids: Iterable[str], at: datetime) -> None:
        key = self._k.user_last_sync(tenant)
        iso = self._iso(at)
        pipe = self._r.pipeline(transaction=False)
        for chunk in _chunks(list(dict.fromkeys(ids)), BATCH):
            # HSET key id1 iso id2 iso ...: the arguments laid out without a per-user step
            pipe.execute_command("HSET", key, *chain.from_iterable(zip(chunk, repeat(iso))))
        if len(pipe):
            await pipe.execute()

    async def user_last_sync(self, tenant: str, entra_id: str) -> datetime | None:
        return _dt(await self._r.hget(self._k.user_last_sync(tenant), entra_id))  # type: ignore[misc]

    # --- lock --------------------------------------------------------------------------------

    @asynccontextmanager
    async def lock(self, tenant: str, ttl_s: float = 600) -> AsyncIterator[str]:
        """One run per tenant: ``SET NX PX`` with a random token; raises LockBusy when held.
        Released on exit only if we still own it (compare-and-delete under WATCH). The TTL is
        the safety net for a crashed holder; pick it above the longest run."""
        key = self._k.lock(tenant)
        stale = self._unreleased.pop(key, None)
        if stale is not None:
            try:
                await self._release(key, stale)
            except RedisError:
                self._unreleased[key] = stale
                raise
        token = os.urandom(16).hex()
        ok = await self._r.set(key, token, nx=True, px=max(1, int(ttl_s * 1000)))
        if not ok:
            raise LockBusy(f"a sync for tenant {tenant} is already running")
        try:
            yield token
        finally:
            try:
                await self._release(key, token)
            except RedisError:
                self._unreleased[key] = token
                raise

    async def _release(self, key: str, token: str) -> bool:
        for _attempt in range(MAX_WATCH_RETRIES):
            async with self._r.pipeline(transaction=True) as tx:
                try:
                    await tx.watch(key)
                    cur = await tx.get(key)
                    if cur is None or _str(cur) != token:
                        log.warning("lock %s was lost before release (expired?)", key)
                        return False
                    tx.multi()  # type: ignore[no-untyped-call]
                    tx.delete(key)
                    await tx.execute()
                    return True
                except WatchError:
                    continue
        return False  # pragma: no cover

    # --- audit -------------------------------------------------------------------------------

    async def audit(
        self,
        actor_id: str,
        actor_name: str,
        action: str,
        *,
        tenant: str,
        proposal_id: str | None = None,
        entra_id: str | None = None,
        app_user_id: str | None = None,
        before: Any = None,
        after: Any = None,
    ) -> str:
        """Append one entry to the audit stream (capped near 100,000 entries). Returns its id.

        NEVER pass secrets (client secrets, tokens, keys) in ``before``/``after``: the audit
        trail is stored in clear and exported as is.
        """
        fields: dict[str, str] = {
            "at": self._iso(self._now()),
            "actor_id": actor_id,
            "actor_name": actor_name,
            "action": action,
            "tenant": tenant,
        }
        for name, val in (
            ("proposal_id", proposal_id),
            ("entra_id", entra_id),
            ("app_user_id", app_user_id),
        ):
            if val is not None:
                fields[name] = val
        if before is not None:
            fields["before"] = _dumps(before)
        if after is not None:
            fields["after"] = _dumps(after)
        sid = await self._r.xadd(
            self._k.audit(),
            fields,  # type: ignore[arg-type]
            maxlen=AUDIT_MAXLEN,
            approximate=True,
        )
        return _s(sid) or ""

    @staticmethod
    def _entry(sid: Any, raw: Any) -> AuditEntry:
        f = _smap(raw)

        def g(name: str) -> str | None:
            return f.get(name)

        def j(name: str) -> Any:
            v = f.get(name)
            return json.loads(v) if v is not None else None

        return AuditEntry(
            id=_str(sid),
            at=datetime.fromisoformat(g("at") or ""),
            actor_id=g("actor_id") or "",
            actor_name=g("actor_name") or "",
            action=g("action") or "",
            tenant=g("tenant") or "",
            proposal_id=g("proposal_id"),
            entra_id=g("entra_id"),
            app_user_id=g("app_user_id"),
            before=j("before"),
            after=j("after"),
        )

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first."""
        rows: Any = await self._r.xrevrange(self._k.audit(), count=limit)
        return [self._entry(sid, f) for sid, f in rows]

    async def export_audit(self) -> list[AuditEntry]:
        """Every entry, oldest first (read in pages of 1,000)."""
        out: list[AuditEntry] = []
        start = "-"
        while True:
            rows: Any = await self._r.xrange(self._k.audit(), min=start, count=BATCH)
            for sid, f in rows:
                out.append(self._entry(sid, f))
            if len(rows) < BATCH:
                return out
            start = "(" + _str(rows[-1][0])

    # --- credentials -------------------------------------------------------------------------

    async def set_credentials(
        self, tenant: str, tenant_id: str, client_id: str, secret: SecretStr, box: SecretBox
    ) -> None:
        """Store a tenant's app credentials; the secret is encrypted with ``box`` (Fernet)."""
        await self._r.hset(  # type: ignore[misc]
            self._k.credentials(tenant),
            mapping={
                "tenant_id": tenant_id,
                "client_id": client_id,
                "secret": box.encrypt(secret),
                "at": self._iso(self._now()),
            },
        )

    async def credentials(self, tenant: str, box: SecretBox) -> tuple[str, str, SecretStr] | None:
        """(tenant_id, client_id, secret) or None. Raises StateError code ``secret_unreadable``
        when the key changed since the secret was stored."""
        h = _smap(await self._r.hgetall(self._k.credentials(tenant)))  # type: ignore[misc]
        if "secret" not in h:
            return None
        return (h["tenant_id"], h["client_id"], box.decrypt(h["secret"].encode("ascii")))

    async def delete_credentials(self, tenant: str) -> None:
        await self._r.delete(self._k.credentials(tenant))

    # --- settings overrides ------------------------------------------------------------------

    async def get_settings_overrides(self) -> dict[str, Any] | None:
        raw = await self._r.get(self._k.settings())
        return json.loads(raw) if raw else None

    async def set_settings_overrides(self, d: dict[str, Any]) -> None:
        await self._r.set(self._k.settings(), _dumps(d))

    # --- Teams conversations -----------------------------------------------------------------

    async def save_conversation(self, conv_id: str, ref: dict[str, Any]) -> None:
        await self._r.hset(self._k.conversations(), conv_id, _dumps(ref))  # type: ignore[misc]

    async def conversation(self, conv_id: str) -> dict[str, Any] | None:
        raw = await self._r.hget(self._k.conversations(), conv_id)  # type: ignore[misc]
        return json.loads(raw) if raw else None

    async def set_notify_channel(self, conv_id: str) -> None:
        await self._r.set(self._k.notify_channel(), conv_id)

    async def notify_channel(self) -> str | None:
        return _s(await self._r.get(self._k.notify_channel()))

    # --- disconnect --------------------------------------------------------------------------

    async def disconnect(
        self, tenant: str, *, actor_id: str = SYSTEM_ID, actor_name: str = SYSTEM_NAME
    ) -> list[str]:
        """Remove the sync of one tenant: credentials, delta links, snapshot, number owners,
        ignored users, guard confirmations, last-sync records; its pending proposals become
        SUPERSEDED. Directory users (and their data) are NEVER touched here. Audited.
        Returns the ids of the superseded proposals."""
        prefix = self._k.pending(tenant, "\0").split("\0")[0]  # "<prefix>pending:<tenant>:"
        dirs: list[str] = []
        superseded: list[str] = []
        sets = [_s(k) or "" async for k in self._r.scan_iter(match=_glob_escape(prefix) + "*")]
        for key in sets:
            dirs.append(key[len(prefix) :])
            ids = sorted(await self._members(key))
            superseded += await self._supersede(key, ids, verb="disconnected")

        doomed = [
            self._k.credentials(tenant),
            self._k.snapshot(tenant),
            self._k.snapshot_staging(tenant),
            self._k.snapshot_parts(tenant),
            self._k.snapshot_overlay(tenant),
            self._k.snapshot_removed(tenant),
            self._k.number_owners(tenant),
            self._k.ignored(tenant),
            self._k.last_sync(tenant),
            self._k.user_last_sync(tenant),
        ]
        for pat_key in (self._k.delta_link(tenant, "\0"), self._k.guard_confirmed(tenant, "\0")):
            pat = _glob_escape(pat_key.split("\0")[0]) + "*"
            async for k in self._r.scan_iter(match=pat, count=1000):
                doomed.append(_s(k) or "")
        await self._r.delete(*doomed)
        await self.audit(
            actor_id,
            actor_name,
            "disconnect",
            tenant=tenant,
            before={"pending_superseded": len(superseded), "directories": sorted(dirs)},
        )
        return superseded
