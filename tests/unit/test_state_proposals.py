"""StateStore proposals on fakeredis: recording plans, the state machine, pending, intents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from sync.errors import ProposalNotFound, ProposalNotPending
from sync.models import Change, Kind, Proposal, ProposalState
from sync.state.keys import Keys
from sync.state.store import StateStore

T0 = datetime(2026, 3, 1, 14, 2, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def match(entra_id: str, app_id: str = "u1") -> Proposal:
    return Proposal(
        kind=Kind.MATCH,
        entra_id=entra_id,
        app_user_id=app_id,
        reason="phone +46701234567 matched",
        match_key="phone",
        match_value="+46701234567",
        label=f"User {entra_id}",
    )


def update(entra_id: str, new: str) -> Proposal:
    return Proposal(
        kind=Kind.UPDATE,
        entra_id=entra_id,
        app_user_id="u-" + entra_id,
        reason="fields changed",
        changes={"first_name": Change("Old", new), "tags": Change((), ("Sales",))},
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(fake_redis: aioredis.Redis, keys: Keys, clock: Clock) -> StateStore:
    return StateStore(fake_redis, keys, clock=clock)


async def test_record_plan_returns_unseen_proposals_as_new(store: StateStore) -> None:
    ps = [match("e1"), update("e2", "Anna")]
    res = await store.proposals.record_plan("contoso", "main", ps)
    assert [p.id for p in res.new] == [p.id for p in ps]
    assert res.kept == [] and res.superseded == [] and res.already_decided == []


async def test_record_plan_returns_what_it_created_as_get_reads_it(store: StateStore) -> None:
    conflict = Proposal(
        kind=Kind.CONFLICT,
        entra_id=None,
        app_user_id="u9",
        reason="2 users share +4611",
        entra_ids=("e4", "e3"),
        entra_labels=("D", "C"),
        number="+4611",
        label="+4611",
    )
    ps = [match("e1"), update("e2", "Anna"), conflict]
    res = await store.proposals.record_plan("contoso", "main", ps)
    assert sorted(res.written) == sorted(p.id for p in ps)
    for p in ps:
        got = await store.proposals.get(p.id)
        assert got is not None and res.written[p.id] == got
        assert list(res.written[p.id].proposal.changes) == list(got.proposal.changes)
    again = await store.proposals.record_plan("contoso", "main", ps)
    assert again.written == {}


async def test_record_plan_twice_gives_no_new_the_second_time(store: StateStore) -> None:
    ps = [match("e1"), update("e2", "Anna")]
    await store.proposals.record_plan("contoso", "main", ps)
    res = await store.proposals.record_plan("contoso", "main", ps)
    assert res.new == []
    assert sorted(res.kept) == sorted(p.id for p in ps)


async def test_record_plan_dedupes_repeated_ids_in_one_plan(store: StateStore) -> None:
    p = match("e1")
    res = await store.proposals.record_plan("contoso", "main", [p, p])
    assert [x.id for x in res.new] == [p.id]


async def test_record_plan_supersedes_pending_ids_missing_from_the_plan(
    store: StateStore, clock: Clock
) -> None:
    old, keep = update("e1", "Anna"), match("e2")
    await store.proposals.record_plan("contoso", "main", [old, keep])
    clock.advance(minutes=5)
    newer = update("e1", "Anne")
    res = await store.proposals.record_plan("contoso", "main", [keep, newer])
    assert res.superseded == [old.id]
    assert [p.id for p in res.new] == [newer.id]
    sp = await store.proposals.get(old.id)
    assert sp is not None
    assert sp.state is ProposalState.SUPERSEDED
    assert sp.decided_by == "system" and sp.decided_by_id == "system"
    assert sp.decided_at == clock.now


async def test_record_plan_does_not_supersede_other_directories(store: StateStore) -> None:
    a = match("e1", "u1")
    b = match("e1", "u9")
    await store.proposals.record_plan("contoso", "main", [a])
    await store.proposals.record_plan("contoso", "other", [b])
    res = await store.proposals.record_plan("contoso", "main", [])
    assert res.superseded == [a.id]
    sp = await store.proposals.get(b.id)
    assert sp is not None and sp.state is ProposalState.PENDING


async def test_record_plan_does_not_reopen_a_decided_proposal(store: StateStore) -> None:
    p = match("e1")
    await store.proposals.record_plan("contoso", "main", [p])
    await store.proposals.transition(
        p.id, ProposalState.IGNORED, actor_id="a1", actor_name="Ann", verb="ignore"
    )
    res = await store.proposals.record_plan("contoso", "main", [p])
    assert res.new == [] and res.kept == []
    assert res.already_decided == [p.id]
    sp = await store.proposals.get(p.id)
    assert sp is not None and sp.state is ProposalState.IGNORED
    assert await store.proposals.pending("contoso", "main") == []


async def test_record_plan_reports_an_id_pending_in_another_directory_as_elsewhere(
    store: StateStore,
) -> None:
    p = Proposal(kind=Kind.NEW, entra_id="e1", app_user_id=None, reason="no match")
    await store.proposals.record_plan("contoso", "main", [p])
    res = await store.proposals.record_plan("contoso", "other", [p])
    assert res.new == [] and res.elsewhere == [p.id]


async def test_get_returns_the_stored_proposal_with_its_data(store: StateStore) -> None:
    p = update("e2", "Anna")
    await store.proposals.record_plan("contoso", "main", [p])
    sp = await store.proposals.get(p.id)
    assert sp is not None
    assert sp.proposal == p
    assert sp.state is ProposalState.PENDING
    assert (sp.tenant, sp.directory, sp.created_at) == ("contoso", "main", T0)
    assert sp.decided_by is None and sp.decided_at is None and sp.result is None


async def test_get_of_an_unknown_id_is_none(store: StateStore) -> None:
    assert await store.proposals.get("nope") is None


async def test_pending_filters_by_tenant_directory_and_kind(store: StateStore) -> None:
    m, u = match("e1"), update("e2", "Anna")
    f = match("x1", "u7")
    await store.proposals.record_plan("contoso", "main", [m, u])
    await store.proposals.record_plan("fabrikam", "main", [f])
    assert {sp.id for sp in await store.proposals.pending()} == {m.id, u.id, f.id}
    assert {sp.id for sp in await store.proposals.pending("contoso")} == {m.id, u.id}
    assert {sp.id for sp in await store.proposals.pending(directory="main")} == {m.id, u.id, f.id}
    assert [sp.id for sp in await store.proposals.pending("contoso", "main", Kind.UPDATE)] == [u.id]
    assert await store.proposals.pending("contoso", "other") == []


async def test_pending_counts_counts_every_kind(store: StateStore) -> None:
    await store.proposals.record_plan(
        "contoso", "main", [match("e1"), match("e2"), update("e3", "A")]
    )
    counts = await store.proposals.pending_counts("contoso", "main")
    assert counts == {"match": 2, "new": 0, "update": 1, "removal": 0, "conflict": 0}


async def test_accept_records_actor_and_adds_an_intent(store: StateStore, clock: Clock) -> None:
    p = match("e1")
    await store.proposals.record_plan("contoso", "main", [p])
    clock.advance(minutes=1)
    sp = await store.proposals.transition(
        p.id, ProposalState.ACCEPTED, actor_id="aad-1", actor_name="Ann Admin", verb="accept"
    )
    assert sp.state is ProposalState.ACCEPTED
    assert (sp.decided_by, sp.decided_by_id, sp.verb) == ("Ann Admin", "aad-1", "accept")
    assert sp.decided_at == clock.now
    assert [i.id for i in await store.proposals.intents()] == [p.id]
    assert await store.proposals.pending("contoso", "main") == []


async def test_apply_removes_the_intent_and_keeps_who_decided(
    store: StateStore, clock: Clock
) -> None:
    p = match("e1")
    await store.proposals.record_plan("contoso", "main", [p])
    await store.proposals.transition(
        p.id, ProposalState.ACCEPTED, actor_id="a1", actor_name="Ann", verb="accept"
    )
    clock.advance(seconds=3)
    sp = await store.proposals.transition(
        p.id,
        ProposalState.APPLIED,
        actor_id="system",
        actor_name="system",
        verb="apply",
        expect=ProposalState.ACCEPTED,
        result={"app_user_id": "u1"},
    )
    assert sp.state is ProposalState.APPLIED
    assert sp.decided_by == "Ann" and sp.verb == "accept"
    assert sp.applied_at == clock.now
    assert sp.result == {"app_user_id": "u1"}
    assert await store.proposals.intents() == []


async def test_second_decision_raises_not_pending_naming_the_first_actor(
    store: StateStore,
) -> None:
    p = match("e1")
    await store.proposals.record_plan("contoso", "main", [p])
    await store.proposals.transition(
        p.id, ProposalState.ACCEPTED, actor_id="a1", actor_name="Ann", verb="accept"
    )
    with pytest.raises(ProposalNotPending) as ei:
        await store.proposals.transition(
            p.id, ProposalState.IGNORED, actor_id="a2", actor_name="Bob", verb="ignore"
        )
    assert ei.value.state == "accepted"
    assert ei.value.actor == "Ann"
    assert ei.value.at == T0.isoformat()
    assert ei.value.code == "proposal_not_pending"


async def test_transition_not_in_the_state_machine_is_refused(store: StateStore) -> None:
    p = match("e1")
    await store.proposals.record_plan("contoso", "main", [p])
    with pytest.raises(ProposalNotPending):
        await store.proposals.transition(
            p.id, ProposalState.APPLIED, actor_id="a1", actor_name="Ann", verb="apply"
        )
    sp = await store.proposals.get(p.id)
    assert sp is not None and sp.state is ProposalState.PENDING


async def test_transition_of_an_unknown_id_raises_not_found(store: StateStore) -> None:
    with pytest.raises(ProposalNotFound):
        await store.proposals.transition(
            "missing", ProposalState.ACCEPTED, actor_id="a1", actor_name="Ann", verb="accept"
        )


async def test_superseded_proposal_cannot_be_accepted(store: StateStore) -> None:
    p = match("e1")
    await store.proposals.record_plan("contoso", "main", [p])
    await store.proposals.record_plan("contoso", "main", [])
    with pytest.raises(ProposalNotPending) as ei:
        await store.proposals.transition(
            p.id, ProposalState.ACCEPTED, actor_id="a1", actor_name="Ann", verb="accept"
        )
    assert ei.value.state == "superseded" and ei.value.actor == "system"


async def test_record_plan_readds_a_pending_proposal_missing_from_its_set(
    store: StateStore, fake_redis: aioredis.Redis, keys: Keys
) -> None:
    p = match("e1")
    await store.proposals.record_plan("contoso", "main", [p])
    await fake_redis.srem(keys.pending("contoso", "main"), p.id)  # as after a crash
    res = await store.proposals.record_plan("contoso", "main", [p])
    assert [x.id for x in res.new] == [p.id]
    assert res.written == {}  # not created by this call: the caller reads it back
    assert [sp.id for sp in await store.proposals.pending("contoso", "main")] == [p.id]


async def test_card_ref_round_trips(store: StateStore) -> None:
    assert await store.conversations.card_ref("p1") is None
    ref = {"conversation": "19:abc@thread.tacv2", "activity_id": "1700000000000"}
    await store.conversations.set_card_ref("p1", ref)
    assert await store.conversations.card_ref("p1") == ref


async def test_a_proposal_back_to_pending_is_in_the_pending_set_and_can_be_superseded(
    store: StateStore,
) -> None:
    """ACCEPTED -> PENDING (a failed apply) puts the id back in the pending set; a plan
    without it then supersedes it although its state is written out as "pending"."""
    proposals = store.proposals
    p = match("e-1")
    await proposals.record_plan("contoso", "main", [p])
    who = {"actor_id": "a", "actor_name": "Ada"}
    await proposals.transition(p.id, ProposalState.ACCEPTED, verb="accept", **who)
    back = await proposals.transition(
        p.id, ProposalState.PENDING, verb="failed", expect=ProposalState.ACCEPTED, **who
    )
    assert back.state is ProposalState.PENDING
    assert [sp.id for sp in await proposals.pending("contoso", "main")] == [p.id]
    assert await proposals.intents() == []
    rec = await proposals.record_plan("contoso", "main", [])
    assert rec.superseded == [p.id]
    got = await proposals.get(p.id)
    assert got is not None and got.state is ProposalState.SUPERSEDED
