"""The SyncService end to end over fakes that behave like the real thing: a simulated tenant
over loopback HTTP (Graph + token endpoint), the built-in directory, fakeredis."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from sync.config import EnvSettings, config_from_dict
from sync.directories.base import UserPatch
from sync.models import EntraUser, Kind, ProposalState
from sync.service.service import Actor, SyncService
from sync.state.keys import Keys

ADA = Actor("admin-ada", "Ada")
BOB = Actor("admin-bob", "Bob")


def entra(uid: str, first: str, last: str, phone: str | None, **kw: Any) -> dict[str, Any]:
    mail = f"{first.lower()}.{last.lower()}@contoso.example"
    u = {
        "id": uid,
        "accountEnabled": True,
        "givenName": first,
        "surname": last,
        "displayName": f"{first} {last}",
        "mail": mail,
        "userPrincipalName": mail,
        "mobilePhone": phone,
        "businessPhones": [],
    }
    u.update(kw)
    return u


def dir_user(
    uid: str, first: str, last: str, phone: str, entra_id: str | None = None
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": uid,
        "first_name": first,
        "last_name": last,
        "display_name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}@contoso.example",
        "phones": [phone],
        "tags": [],
    }
    if entra_id:
        d["entra_id"] = entra_id
    return d


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def no_sleep(_s: float) -> None:
    return None


def write_world(
    tmp: Path, users: list[dict[str, Any]], directory: list[dict[str, Any]], **cfg: Any
) -> Path:
    (tmp / "tenant.json").write_text(json.dumps({"users": users, "groups": []}))
    (tmp / "directory.json").write_text(json.dumps({"users": directory, "ignored": []}))
    return tmp


async def make_service(tmp: Path, clock: Clock, redis: Any = None, **sections: Any) -> SyncService:
    cfg = config_from_dict(
        {
            "tenants": [{"name": "contoso", "simulate": "tenant.json"}],
            "directories": [{"name": "main", "seed_file": "directory.json"}],
            **sections,
        },
        base_dir=tmp,
    )
    svc = SyncService(
        config=cfg,
        env=EnvSettings(),
        redis=redis or fakeredis.FakeAsyncRedis(),
        keys=Keys("svc:"),
        clock=clock,
        sleep=no_sleep,
    )
    await svc.start(scheduler=False)
    return svc


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def svc(tmp_path: Path, clock: Clock) -> AsyncIterator[SyncService]:
    write_world(
        tmp_path,
        [
            entra("e-anna", "Anna", "Lind", "070-111 11 11"),
            entra("e-bo", "Bo", "Ek", "+46 70 222 22 22"),
            entra("e-cia", "Cia", "Berg", "0703333333"),
        ],
        [
            dir_user("1", "Anna", "Lind", "+46701111111", entra_id="e-anna"),
            dir_user("2", "Bo", "Ek", "+46702222222"),
        ],
    )
    s = await make_service(tmp_path, clock)
    yield s
    await s.stop()


def sim(s: SyncService) -> Any:
    rt = s.tenants["contoso"]
    assert rt.sim is not None
    return rt.sim


async def test_sync_now_records_one_item_per_proposal_and_nothing_changes(svc: SyncService) -> None:
    (run,) = await svc.run_sync(actor=ADA)
    assert run.status == "ok"
    assert sorted(i.kind.value for i in run.new_items) == ["match", "new"]
    users = {u.id: u for u in await svc.directories["main"].list_users()}
    assert users["2"].entra_id is None and len(users) == 2  # nothing applied, nothing created
    again = (await svc.run_sync(actor=ADA))[0]
    assert again.new_items == [] and again.superseded == []  # idempotent


async def test_accept_links_the_user_and_a_second_click_applies_nothing(svc: SyncService) -> None:
    await svc.run_sync(actor=ADA)
    (match,) = await svc.pending(Kind.MATCH)
    d1 = await svc.decide(match.id, "accept", actor=ADA, digest=match.digest, inputs={})
    d2 = await svc.decide(match.id, "accept", actor=BOB, digest=match.digest, inputs={})
    assert (d1.outcome, d2.outcome) == ("done", "already")
    assert "Ada" in d2.message
    bo = await svc.directories["main"].get("2")
    assert bo is not None and bo.entra_id == "e-bo"
    audit = await svc.audit()
    assert [e.action for e in audit].count("accept match") == 1
    (st,) = await svc.status()
    assert (st.synced, st.syncable) == (2, 2)


async def test_a_forged_digest_or_unknown_id_is_refused_and_changes_nothing(
    svc: SyncService,
) -> None:
    await svc.run_sync(actor=ADA)
    (match,) = await svc.pending(Kind.MATCH)
    bad = await svc.decide(match.id, "accept", actor=ADA, digest="0" * 24, inputs={})
    unknown = await svc.decide("f" * 20, "accept", actor=ADA, digest=match.digest, inputs={})
    wrong_verb = await svc.decide(
        match.id, "delete_user_confirm", actor=ADA, digest=match.digest, inputs={}
    )
    assert (bad.outcome, unknown.outcome, wrong_verb.outcome) == (
        "not_found",
        "not_found",
        "refused",
    )
    assert (await svc.item(match.id)).state is ProposalState.PENDING  # type: ignore[union-attr]


async def test_a_stale_card_applies_nothing_and_offers_the_current_values(svc: SyncService) -> None:
    await svc.run_sync(actor=ADA)
    (new,) = await svc.pending(Kind.NEW)
    sim(svc).update_user("e-cia", givenName="Cecilia", displayName="Cecilia Berg")
    d = await svc.decide(new.id, "create", actor=ADA, digest=new.digest, inputs={})
    assert d.outcome == "stale"
    assert d.item is not None and d.item.id != new.id
    assert d.item.proposal.changes["first_name"].new == "Cecilia"
    assert len(await svc.directories["main"].list_users()) == 2  # nothing created
    old = await svc.item(new.id)
    assert old is not None and old.state is ProposalState.SUPERSEDED


async def test_create_from_entra_then_the_user_is_linked_and_in_step(svc: SyncService) -> None:
    await svc.run_sync(actor=ADA)
    (new,) = await svc.pending(Kind.NEW)
    d = await svc.decide(new.id, "create", actor=ADA, digest=new.digest, inputs={})
    assert d.outcome == "done"
    created = await svc.directories["main"].find_by_external_id("e-cia")
    assert created is not None and created.phones == ("+46703333333",)
    (run,) = await svc.run_sync(actor=ADA)
    assert [i.kind for i in run.new_items] == []


async def test_a_reverted_change_is_proposed_again(svc: SyncService) -> None:
    sim(svc).update_user("e-anna", surname="Berg", displayName="Anna Berg")
    await svc.run_sync(actor=ADA)
    (upd,) = await svc.pending(Kind.UPDATE)
    assert (
        await svc.decide(upd.id, "apply", actor=ADA, digest=upd.digest, inputs={})
    ).outcome == "done"
    # someone puts the old surname back by hand in the phone system
    await svc.directories["main"].update(
        "1", UserPatch({"last_name": "Lind", "display_name": "Anna Lind"})
    )
    (run,) = await svc.run_sync(actor=ADA)
    assert [i.kind for i in run.new_items] == [Kind.UPDATE]
    assert run.new_items[0].id != upd.id


async def test_ignored_update_stays_ignored_until_the_values_change(svc: SyncService) -> None:
    sim(svc).update_user("e-anna", surname="Berg")
    await svc.run_sync(actor=ADA)
    (upd,) = await svc.pending(Kind.UPDATE)
    await svc.decide(upd.id, "ignore", actor=ADA, digest=upd.digest, inputs={})
    assert (await svc.run_sync(actor=ADA))[0].new_items == []
    sim(svc).update_user("e-anna", surname="Holm")
    assert [i.kind for i in (await svc.run_sync(actor=ADA))[0].new_items] == [Kind.UPDATE]


async def test_ignoring_a_new_user_keeps_them_out_until_unignored(svc: SyncService) -> None:
    await svc.run_sync(actor=ADA)
    (new,) = await svc.pending(Kind.NEW)
    await svc.decide(new.id, "ignore", actor=ADA, digest=new.digest, inputs={})
    assert [x[1] for x in await svc.ignored()] == ["e-cia"]
    assert (await svc.run_sync(actor=ADA))[0].new_items == []
    d = await svc.decide(
        "e-cia", "unignore", actor=ADA, digest=await svc.unignore_digest("e-cia"), inputs={}
    )
    assert d.outcome == "done"
    assert [i.proposal.entra_id for i in await svc.pending(Kind.NEW)] == ["e-cia"]


async def test_scheduled_mode_applies_updates_of_linked_users_only(
    tmp_path: Path, clock: Clock
) -> None:
    write_world(
        tmp_path,
        [
            entra("e-anna", "Anna", "Berg", "070-111 11 11"),
            entra("e-bo", "Bo", "Ek", "070-222 22 22"),
        ],
        [
            dir_user("1", "Anna", "Lind", "+46701111111", entra_id="e-anna"),
            dir_user("2", "Bo", "Ek", "+46702222222"),
        ],
    )
    s = await make_service(tmp_path, clock, schedule={"mode": "interval", "every_hours": 12})
    try:
        assert [r.trigger for r in await s.run_due()] == ["scheduled"]  # never ran: due now
        anna = await s.directories["main"].get("1")
        bo = await s.directories["main"].get("2")
        assert anna is not None and anna.last_name == "Berg"  # applied automatically
        assert bo is not None and bo.entra_id is None  # the match waits for an admin
        assert [e.actor_name for e in await s.audit()] == ["Entra Sync"]
        clock.now += timedelta(hours=11)
        assert await s.run_due() == []
        clock.now += timedelta(hours=1)
        assert len(await s.run_due()) == 1
    finally:
        await s.stop()


async def test_conflict_owner_choice_produces_the_owners_match(
    tmp_path: Path, clock: Clock
) -> None:
    write_world(
        tmp_path,
        [
            entra("e-a", "Ann", "One", None, businessPhones=["08-555 000 99"]),
            entra("e-b", "Ben", "Two", None, businessPhones=["+46 8 555 000 99"]),
        ],
        [dir_user("9", "Reception", "Desk", "+46855500099")],
    )
    s = await make_service(tmp_path, clock)
    try:
        (run,) = await s.run_sync(actor=ADA)
        (conflict,) = [i for i in run.new_items if i.kind is Kind.CONFLICT]
        refused = await s.decide(
            conflict.id, "pick_owner", actor=ADA, digest=conflict.digest, inputs={"owner": "e-zzz"}
        )
        assert refused.outcome == "refused"
        d = await s.decide(
            conflict.id, "pick_owner", actor=ADA, digest=conflict.digest, inputs={"owner": "e-b"}
        )
        assert d.outcome == "done"
        (match,) = await s.pending(Kind.MATCH)
        assert (match.proposal.entra_id, match.proposal.app_user_id) == ("e-b", "9")
    finally:
        await s.stop()


async def test_mass_removal_is_held_back_until_confirmed(tmp_path: Path, clock: Clock) -> None:
    users = [entra(f"e-{i}", f"U{i}", "X", f"0701000{i:03d}") for i in range(12)]
    directory = [
        dir_user(str(i), f"U{i}", "X", f"+46701000{i:03d}", entra_id=f"e-{i}") for i in range(12)
    ]
    write_world(tmp_path, users, directory)
    s = await make_service(tmp_path, clock)
    try:
        await s.run_sync(actor=ADA)
        for i in range(11):
            sim(s).delete_user(f"e-{i}")
        (run,) = await s.run_sync(actor=ADA)
        assert run.new_items == [] and run.blocked[0].count == 11
        pid, digest = await s.guard_id("contoso", "main")
        assert (
            await s.decide(pid, "guard_confirm", actor=ADA, digest=digest, inputs={})
        ).outcome == "done"
        assert len(await s.pending(Kind.REMOVAL)) == 11
        assert len(await s.directories["main"].list_users()) == 12  # still nobody deleted
    finally:
        await s.stop()


async def test_remove_sync_keeps_the_user_and_delete_asks_first(
    tmp_path: Path, clock: Clock
) -> None:
    write_world(
        tmp_path,
        [entra(f"e-{i}", f"U{i}", "X", f"0701000{i:03d}") for i in range(10)],
        [dir_user(str(i), f"U{i}", "X", f"+46701000{i:03d}", entra_id=f"e-{i}") for i in range(10)],
    )
    s = await make_service(tmp_path, clock)
    try:
        sim(s).delete_user("e-0")
        sim(s).update_user("e-1", accountEnabled=False)
        await s.run_sync(actor=ADA)
        r0, r1 = sorted(await s.pending(Kind.REMOVAL), key=lambda i: i.proposal.app_user_id or "")
        assert (r0.proposal.removal_cause, r1.proposal.removal_cause) == ("deleted", "disabled")
        d = await s.decide(r0.id, "remove_sync", actor=ADA, digest=r0.digest, inputs={})
        assert d.outcome == "done"
        kept = await s.directories["main"].get("0")
        assert kept is not None and kept.entra_id is None
        ask = await s.decide(r1.id, "delete_user", actor=ADA, digest=r1.digest, inputs={})
        assert ask.outcome == "confirm" and await s.directories["main"].get("1") is not None
        done = await s.decide(r1.id, "delete_user_confirm", actor=ADA, digest=r1.digest, inputs={})
        assert done.outcome == "done" and await s.directories["main"].get("1") is None
    finally:
        await s.stop()


async def test_an_accepted_intent_is_finished_after_a_crash(tmp_path: Path, clock: Clock) -> None:
    write_world(
        tmp_path,
        [entra("e-bo", "Bo", "Ek", "070-222 22 22")],
        [dir_user("2", "Bo", "Ek", "+46702222222")],
    )
    redis = fakeredis.FakeAsyncRedis()
    s = await make_service(tmp_path, clock, redis=redis)
    await s.run_sync(actor=ADA)
    (match,) = await s.pending(Kind.MATCH)
    # the process dies after recording the intent, before writing the directory
    await s.store.proposals.transition(
        match.id,
        ProposalState.ACCEPTED,
        actor_id=ADA.id,
        actor_name=ADA.name,
        verb="accept",
        result={"verb": "accept", "inputs": {}},
    )
    await s.stop()
    restarted = await make_service(tmp_path, clock, redis=redis)
    try:
        bo = await restarted.directories["main"].get("2")
        assert bo is not None and bo.entra_id == "e-bo"
        item = await restarted.item(match.id)
        assert item is not None and item.state is ProposalState.APPLIED and item.decided_by == "Ada"
        assert await restarted.recover_intents() == 0  # nothing applied twice
    finally:
        await restarted.stop()


async def test_a_token_failure_shows_red_with_the_aadsts_code_and_fix(svc: SyncService) -> None:
    sim(svc).faults.token_error_code = 7000215  # before the first token is fetched
    (run,) = await svc.run_sync(actor=ADA)
    assert run.status == "failed" and run.error is not None and run.error.code == "AADSTS7000215"
    (st,) = await svc.status()
    assert not st.connected and st.error is not None and "Value" in str(st.error["hint"])
    assert await svc.pending() == []  # a failed read proposes nothing


async def test_settings_are_validated_and_saved(svc: SyncService) -> None:
    errors = await svc.update_settings({"mapping.first_name": "givenname"}, actor=ADA)
    assert "givenName" in " ".join(errors.values())
    errors = await svc.update_settings({"schedule.at": "25:00"}, actor=ADA)
    assert errors
    assert (
        await svc.update_settings({"schedule.mode": "daily", "schedule.at": "03:30"}, actor=ADA)
        == {}
    )
    assert svc.config.schedule.mode == "daily" and svc.config.schedule.at == "03:30"


async def test_disconnect_keeps_every_user_and_removes_only_links(svc: SyncService) -> None:
    await svc.run_sync(actor=ADA)
    n = await svc.disconnect("contoso", actor=ADA)
    users = await svc.directories["main"].list_users()
    assert n == 1 and len(users) == 2 and all(u.entra_id is None for u in users)
    assert await svc.pending() == []


async def test_two_tenants_feed_one_directory_and_one_tenant_feeds_two(
    tmp_path: Path, clock: Clock
) -> None:
    (tmp_path / "t1.json").write_text(
        json.dumps({"users": [entra("e-1", "Ann", "One", "0701000001")]})
    )
    (tmp_path / "t2.json").write_text(
        json.dumps({"users": [entra("e-2", "Ben", "Two", "0701000002")]})
    )
    (tmp_path / "d.json").write_text(
        json.dumps(
            {
                "users": [
                    dir_user("1", "Ann", "One", "+46701000001"),
                    dir_user("2", "Ben", "Two", "+46701000002"),
                ]
            }
        )
    )
    cfg = config_from_dict(
        {
            "tenants": [
                {"name": "north", "simulate": "t1.json", "directories": ["main", "backup"]},
                {"name": "south", "simulate": "t2.json", "directory": "main"},
            ],
            "directories": [
                {"name": "main", "seed_file": "d.json"},
                {"name": "backup"},
            ],
        },
        base_dir=tmp_path,
    )
    s = SyncService(
        config=cfg,
        env=EnvSettings(),
        redis=fakeredis.FakeAsyncRedis(),
        keys=Keys("mt:"),
        clock=clock,
        sleep=no_sleep,
    )
    await s.start(scheduler=False)
    try:
        runs = await s.run_sync(actor=ADA)
        got = sorted((r.tenant, r.directory, [i.kind.value for i in r.new_items]) for r in runs)
        assert got == [
            ("north", "backup", ["new"]),  # the backup directory is empty: Ann is new there
            ("north", "main", ["match"]),
            ("south", "main", ["match"]),
        ]
        ids = [i.id for r in runs for i in r.new_items]
        assert len(set(ids)) == 3  # one item per tenant x directory
    finally:
        await s.stop()


async def test_the_second_sync_reads_only_changes_with_a_delta_query(svc: SyncService) -> None:
    (first,) = await svc.run_sync(actor=ADA)
    assert first.mode == "full"
    requests_before = dict(sim(svc).requests)
    sim(svc).update_user("e-anna", surname="Holm", displayName="Anna Holm")
    (second,) = await svc.run_sync(actor=ADA)
    assert second.mode == "delta"
    assert sim(svc).requests["users"] == requests_before.get("users", 0)  # no full listing
    assert [i.kind for i in second.new_items] == [Kind.UPDATE]
    sim(svc).delete_user("e-cia")
    (third,) = await svc.run_sync(actor=ADA)
    assert third.mode == "delta" and third.superseded  # Cia's `new` item went with her


async def test_delta_runs_leave_pending_what_a_plan_from_scratch_proposes(
    svc: SyncService,
) -> None:
    """After each delta round, what is pending is what a plan of the same data proposes."""

    async def pending_vs_cold() -> None:
        ((_t, _d, cold),) = await svc.preview()  # no cache: a plan from scratch
        # the very proposals, by their content ids (a pending item's id is scoped)
        pending = {i.proposal.compute_id() for i in await svc.pending()}
        assert pending == {p.id for p in cold.proposals}

    (first,) = await svc.run_sync(actor=ADA)
    assert first.mode == "full"
    await pending_vs_cold()
    rounds = [
        lambda: sim(svc).update_user("e-anna", surname="Holm", displayName="Anna Holm"),
        lambda: sim(svc).upsert_user(entra("e-dan", "Dan", "Ek", "+46 70 222 22 22")),
        lambda: sim(svc).delete_user("e-cia"),
        lambda: sim(svc).update_user("e-anna", accountEnabled=False),
    ]
    for change in rounds:
        change()
        (run,) = await svc.run_sync(actor=ADA)
        assert (run.status, run.mode) == ("ok", "delta")
        await pending_vs_cold()
    kinds = {i.proposal.kind for i in await svc.pending()}
    assert Kind.REMOVAL in kinds and Kind.CONFLICT in kinds  # Anna disabled; Bo's number twice


async def test_a_full_read_in_a_running_bot_leaves_pending_what_a_fresh_plan_proposes(
    svc: SyncService,
) -> None:
    """When the delta link expires, the full read replaces the held snapshot, and what is
    pending is what a plan from scratch proposes."""
    (first,) = await svc.run_sync(actor=ADA)
    assert first.mode == "full"
    sim(svc).faults.delta_expired = True
    sim(svc).update_user("e-anna", surname="Holm", displayName="Anna Holm")
    sim(svc).upsert_user(entra("e-dan", "Dan", "Ek", "+46 70 222 22 22"))
    sim(svc).delete_user("e-cia")
    (run,) = await svc.run_sync(actor=ADA)
    assert (run.status, run.mode) == ("ok", "full")
    after = await svc.reader.stored_users("contoso")
    assert "e-cia" not in after
    assert after["e-anna"].attrs["surname"] == "Holm" and "e-dan" in after
    ((_t, _d, cold),) = await svc.preview()  # no cache: a plan from scratch
    pending = {i.proposal.compute_id() for i in await svc.pending()}
    assert pending == {p.id for p in cold.proposals}
    items = await svc.pending()
    assert {Kind.UPDATE, Kind.CONFLICT} <= {i.proposal.kind for i in items}  # Dan has Bo's number
    assert "e-cia" not in {i.proposal.entra_id for i in items}  # her `new` item went with her


async def test_an_expired_delta_link_falls_back_to_a_full_read(svc: SyncService) -> None:
    await svc.run_sync(actor=ADA)
    sim(svc).faults.delta_expired = True
    sim(svc).update_user("e-anna", surname="Holm")
    (run,) = await svc.run_sync(actor=ADA)
    assert (run.status, run.mode) == ("ok", "full")
    assert [i.kind for i in run.new_items] == [Kind.UPDATE]


async def test_a_resync_frees_the_old_snapshot_without_the_garbage_collector(
    svc: SyncService,
) -> None:
    """The expired link's traceback held the stored users in a reference cycle (through the
    retry library's futures), so after a resync the old snapshot stayed in memory until a
    full collection, which stopped the event loop for 0.3 s at 100,000 users. Collector off:
    reference counting alone must free it."""
    probe = f"Anna {uuid.uuid4().hex}"  # no other test's user has this name
    sim(svc).update_user("e-anna", displayName=probe)
    await svc.run_sync(actor=ADA)
    gc.collect()
    gc.disable()
    try:
        sim(svc).faults.delta_expired = True
        sim(svc).update_user("e-anna", displayName="Anna Holm")
        (run,) = await svc.run_sync(actor=ADA)
        gc.unfreeze()  # gc.get_objects() does not list frozen objects
        old = [
            o
            for o in gc.get_objects()
            if isinstance(o, EntraUser) and o.attrs.get("displayName") == probe
        ]
    finally:
        gc.enable()
    assert (run.status, run.mode) == ("ok", "full")
    assert old == []


async def test_notification_settings_are_editable_but_the_admin_list_is_not(
    svc: SyncService,
) -> None:
    ok = await svc.update_settings(
        {"bot.notify_admins_personally": "true", "bot.max_cards_per_run": "3"}, actor=ADA
    )
    assert ok == {}
    assert svc.config.bot.notify_admins_personally and svc.config.bot.max_cards_per_run == 3
    refused = await svc.update_settings({"bot.admins": "mallory"}, actor=ADA)
    assert refused == {"bot.admins": "unknown setting"} and svc.config.bot.admins == ()


async def test_a_failed_scheduled_run_is_retried_within_the_hour(
    tmp_path: Path, clock: Clock
) -> None:
    write_world(tmp_path, [entra("e-1", "Ann", "One", "0701000001")], [])
    s = await make_service(tmp_path, clock, schedule={"mode": "interval", "every_hours": 12})
    try:
        sim(s).faults.forbidden = True  # 403: the permission is missing
        (failed,) = await s.run_due()
        assert failed.status == "failed"
        (st,) = await s.status()
        assert st.next_sync_at == clock.now + timedelta(hours=1)
        clock.now += timedelta(minutes=59)
        assert await s.run_due() == []
        clock.now += timedelta(minutes=1)
        sim(s).faults.forbidden = False  # the admin granted the permission
        (ok,) = await s.run_due()
        assert ok.status == "ok"
        (st,) = await s.status()
        assert st.next_sync_at == clock.now + timedelta(hours=12)
    finally:
        await s.stop()


async def test_an_item_whose_apply_failed_is_pending_again_and_counted(svc: SyncService) -> None:
    """A directory error that no retry fixes puts the item back to PENDING: it is listed,
    counted, and a later run that no longer proposes it supersedes it."""
    await svc.run_sync(actor=ADA)
    (new,) = await svc.pending(Kind.NEW)
    d = await svc.decide(
        new.id, "link", actor=ADA, digest=new.digest, inputs={"target": "no-such-user"}
    )
    assert d.outcome == "failed" and d.error is not None and not d.error.retryable
    assert [i.id for i in await svc.pending(Kind.NEW)] == [new.id]
    (st,) = await svc.status()
    assert st.pending["new"] == 1
    sim(svc).delete_user("e-cia")
    (run,) = await svc.run_sync(actor=ADA)
    assert new.id in run.superseded
    assert await svc.pending(Kind.NEW) == []


async def test_the_plan_runs_off_the_event_loop(
    svc: SyncService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the planner works, the event loop keeps answering (Teams is not kept waiting)."""
    import threading

    import sync.service.runs as runs_module

    real_plan = runs_module.make_plan
    planning = threading.Event()
    finish = threading.Event()

    def slow_plan(*args: Any) -> Any:
        planning.set()
        assert finish.wait(10), "the event loop did not run while planning"
        return real_plan(*args)

    monkeypatch.setattr(runs_module, "make_plan", slow_plan)
    run = asyncio.create_task(svc.run_sync(actor=ADA))
    while not planning.is_set():
        await asyncio.sleep(0.01)
    finish.set()  # only reachable while the plan is still running: the loop is free
    (result,) = await run
    assert result.status == "ok"


async def test_what_runs_froze_goes_back_to_the_collector_once_a_day_and_at_stop(
    svc: SyncService, clock: Clock
) -> None:
    """Watch mode runs every minute: what runs froze (``gc.freeze``) stays frozen between
    runs (an unfreeze makes the next full collection walk the whole tenant), but goes back
    to the collector at the end of the first run a day and when the service stops, so a
    long-running bot does not pile up frozen garbage in reference cycles."""
    gc.unfreeze()
    (run,) = await svc.run_sync(actor=ADA)
    assert run.status == "ok" and gc.get_freeze_count() > 0
    clock.now += timedelta(hours=23)
    await svc.run_sync(actor=ADA)
    assert gc.get_freeze_count() > 0
    clock.now += timedelta(hours=1)
    await svc.run_sync(actor=ADA)
    assert gc.get_freeze_count() == 0
    await svc.run_sync(actor=ADA)
    assert gc.get_freeze_count() > 0
    await svc.stop()
    assert gc.get_freeze_count() == 0
