"""record_plan builds what it wrote (``RecordResult.written``) and the record's JSON without a
JSON round trip: both must equal the reference path (``_rec`` + ``_parse``, which ``get``
uses) for every input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import fakeredis
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.devtools import bench
from sync.models import (
    Change,
    DirectoryUser,
    EntraSnapshot,
    Kind,
    Proposal,
    StateView,
    parse_entra_user,
)
from sync.plan import planner as planmod
from sync.state.keys import Keys
from sync.state.store import StateStore, StoredProposal

T0 = datetime(2026, 3, 1, 14, 2, tzinfo=UTC)
CREATED = T0.isoformat()


def clock() -> datetime:
    return T0


def texts_of(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.text(chars, max_size=10) | st.sampled_from(
        ["", "\x7f", "Åsa Öberg", "\u2028", "😀", 'a"b\\c\n\t\x00', "Łukasz"]
    )


# every code point (surrogates too), and every code point Redis can store (UTF-8)
ANY = texts_of(st.characters(categories=None))
STORABLE = texts_of(st.characters(codec="utf-8"))


def values(texts: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    scalars = (
        st.none()
        | texts
        | st.booleans()
        | st.integers()
        | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
        | st.floats(allow_nan=False)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.lists(inner, max_size=3).map(tuple),
        max_leaves=5,
    ) | st.lists(texts, max_size=3).map(tuple)


@st.composite
def proposals(draw: st.DrawFn, texts: st.SearchStrategy[str]) -> Proposal:
    opt = st.none() | texts
    v = values(texts)
    return Proposal(
        kind=draw(st.sampled_from(list(Kind))),
        entra_id=draw(opt),
        app_user_id=draw(opt),
        reason=draw(texts),
        changes=draw(st.dictionaries(texts, st.builds(Change, v, v), max_size=4)),
        entra_ids=tuple(draw(st.lists(texts, max_size=3))),
        match_key=draw(st.none() | st.sampled_from(["phone", "email"])),
        match_value=draw(opt),
        number=draw(opt),
        removal_cause=draw(opt),
        label=draw(texts),
        app_label=draw(texts),
        entra_labels=tuple(draw(st.lists(texts, max_size=3))),
    )


def reference(p: Proposal, tenant: str, directory: str) -> tuple[bytes, StoredProposal | None]:
    rec = StateStore(None, Keys(), clock=clock)._rec(p, tenant, directory, CREATED)  # type: ignore[arg-type]
    return rec.encode(), StateStore._parse({"rec": rec})


def same_stored(a: StoredProposal | None, b: StoredProposal | None) -> None:
    assert a == b
    if a is not None and b is not None:  # and the changes in the order get() gives them
        assert list(a.proposal.changes) == list(b.proposal.changes)
        assert type(a.proposal.changes) is type(b.proposal.changes)


@settings(max_examples=300)
@given(proposals(ANY), ANY, ANY)
def test_new_record_gives_the_reference_bytes_and_stored_proposal(
    p: Proposal, tenant: str, directory: str
) -> None:
    fast = StateStore._new_record(p, tenant, directory, CREATED, T0)
    if fast is None:
        return  # the reference path is used
    try:
        want_raw, want = reference(p, tenant, directory)
    except UnicodeEncodeError:  # pragma: no cover - orjson refuses lone surrogates first
        raise AssertionError("the fast path took a record Redis cannot store") from None
    assert fast[0] == want_raw
    same_stored(fast[1], want)


def _plain(v: object) -> bool:
    if v is None or type(v) is str or type(v) is bool:
        return True
    if type(v) is int:
        return -(2**63) <= v < 2**64
    return type(v) in (tuple, list) and all(type(x) is str for x in v)  # type: ignore[attr-defined]


@settings(max_examples=300)
@given(proposals(STORABLE), STORABLE, STORABLE)
def test_new_record_takes_every_string_shaped_proposal(
    p: Proposal, tenant: str, directory: str
) -> None:
    plain = all(_plain(c.old) and _plain(c.new) for c in p.changes.values())
    if plain:
        assert StateStore._new_record(p, tenant, directory, CREATED, T0) is not None


async def _record_and_compare(ps: list[Proposal]) -> int:
    r = fakeredis.FakeAsyncRedis(decode_responses=False)
    try:
        store = StateStore(r, Keys(prefix="t:"), clock=clock)
        res = await store.record_plan("contoso", "main", ps)
        assert set(res.written) == {p.id for p in res.new}
        for pid, sp in res.written.items():
            same_stored(sp, await store.get(pid))
        return len(res.written)
    finally:
        await r.aclose()


@settings(max_examples=60)
@given(st.lists(proposals(STORABLE), max_size=12))
def test_record_plan_written_equals_get_for_generated_proposals(ps: list[Proposal]) -> None:
    assert asyncio.run(_record_and_compare(ps)) == len({p.id for p in ps})


def test_record_plan_written_equals_get_for_a_planned_world() -> None:
    users = [parse_entra_user(u) for u in bench.tenant_users(3000)]
    dirs = [DirectoryUser.from_dict(d) for d in bench.directory_users(3000)]
    plan = planmod.plan(
        EntraSnapshot(users, True, None),
        dirs,
        StateView(),
        bench.bench_config("http://x"),
    )
    conflict = Proposal(
        Kind.CONFLICT,
        None,
        None,
        "2 Entra users have the number +46701234567",
        entra_ids=("e2", "e1"),
        number="+46701234567",
        label="+46701234567",
        entra_labels=("Åsa Öberg", "Anna Nilsson"),
    )
    ps = [*plan.proposals, conflict]
    assert {p.kind for p in ps} >= {Kind.NEW, Kind.MATCH, Kind.UPDATE, Kind.CONFLICT}
    for p in ps:  # the planner's proposals all take the fast path
        assert StateStore._new_record(p, "contoso", "main", CREATED, T0) is not None
    assert asyncio.run(_record_and_compare(ps)) == len(ps)
