"""Delta rounds of partial objects, from the simulated Graph (loopback HTTP, the documented
shapes: only what changed, soft deletes, a user removed and restored in one round) through the
snapshot stored in the real Redis to the next plan."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot import to_views
from cards import build
from sync.config import EnvSettings, config_from_dict
from sync.models import EntraUser, Kind
from sync.service.service import SyncService
from sync.state.keys import Keys
from sync.state.snapshots import SnapshotStore
from tests.component.test_service import ADA, Clock, dir_user, entra, no_sleep, write_world


async def _service(tmp: Path, redis: aioredis.Redis, keys: Keys) -> SyncService:
    cfg = config_from_dict(
        {
            "tenants": [{"name": "contoso", "simulate": "tenant.json"}],
            "directories": [{"name": "main", "seed_file": "directory.json"}],
        },
        base_dir=tmp,
    )
    svc = SyncService(
        config=cfg, env=EnvSettings(), redis=redis, keys=keys, clock=Clock(), sleep=no_sleep
    )
    await svc.start(scheduler=False)
    return svc


def _sim(svc: SyncService) -> Any:
    sim = svc.tenants["contoso"].sim
    assert sim is not None and not sim.full_delta_objects
    return sim


def _world(tmp: Path) -> None:
    write_world(
        tmp,
        [
            entra("e-anna", "Anna", "Lind", "+46701111111", businessPhones=["+46812345678"]),
            entra("e-dan", "Dan", "Ek", "+46702222222", accountEnabled=False),
            entra("e-cia", "Cia", "Berg", "+46703333333"),
        ],
        [
            {
                **dir_user("1", "Anna", "Lind", "+46701111111", entra_id="e-anna"),
                "phones": ["+46701111111", "+46812345678"],
            },
            dir_user("3", "Cia", "Berg", "+46703333333", entra_id="e-cia"),
        ],
    )


async def test_a_delta_round_of_partial_objects_keeps_what_it_does_not_carry(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    _world(tmp_path)
    svc = await _service(tmp_path, real_redis, keys)
    try:
        (first,) = await svc.run_sync(actor=ADA)
        assert first.status == "ok" and first.mode == "full"
        assert [i.kind for i in first.new_items] == []  # everyone linked is in step

        sim = _sim(svc)
        sim.update_user("e-anna", displayName="Anna Lind-Holm")  # only displayName changes
        sim.update_user("e-dan", displayName="Dan Ek (on leave)")  # disabled, no accountEnabled
        sim.delete_user("e-cia")  # soft-deleted, then restored in the same round
        sim.restore_user("e-cia")

        (second,) = await svc.run_sync(actor=ADA)
        assert second.status == "ok" and second.mode == "delta"
        proposals = [i.proposal for i in second.new_items]
        assert [p.kind for p in proposals] == [Kind.UPDATE]
        (update,) = proposals
        assert update.entra_id == "e-anna"
        assert set(update.changes) == {"display_name"}
        assert update.changes["display_name"].new == "Anna Lind-Holm"
        assert not any(p.kind is Kind.REMOVAL for p in proposals)
    finally:
        await svc.stop()

    # the snapshot as stored in Redis, read back by a new service
    stored = {u.id: u for u in await SnapshotStore(real_redis, keys).load("contoso")}
    _assert_merged(stored)
    again = await _service(tmp_path, real_redis, keys)
    try:
        _assert_merged(await again.reader.stored_users("contoso"))
    finally:
        await again.stop()


def _assert_merged(users: dict[str, EntraUser]) -> None:
    anna = users["e-anna"]
    assert anna.attrs["displayName"] == "Anna Lind-Holm"
    assert anna.attrs["mail"] == "anna.lind@contoso.example"
    assert anna.attrs["mobilePhone"] == "+46701111111"
    assert anna.attrs["businessPhones"] == ["+46812345678"]
    assert anna.enabled is True
    dan = users["e-dan"]
    assert dan.attrs["displayName"] == "Dan Ek (on leave)"
    assert dan.enabled is False
    assert dan.attrs["mobilePhone"] == "+46702222222"
    assert "e-cia" in users and users["e-cia"].attrs["mobilePhone"] == "+46703333333"


async def test_a_disabled_user_without_account_enabled_in_a_delta_object_stays_disabled(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    _world(tmp_path)
    svc = await _service(tmp_path, real_redis, keys)
    try:
        await svc.run_sync(actor=ADA)
        _sim(svc).update_user("e-dan", mobilePhone="+46709999999")
        (run,) = await svc.run_sync(actor=ADA)
        assert run.mode == "delta"
        # scope is enabled users only: a disabled user read as enabled would be proposed as new
        assert [i.kind for i in run.new_items] == []
        stored = {u.id: u for u in await SnapshotStore(real_redis, keys).load("contoso")}
        assert stored["e-dan"].enabled is False
        assert stored["e-dan"].attrs["mobilePhone"] == "+46709999999"
    finally:
        await svc.stop()


async def test_a_user_removed_and_restored_in_one_round_is_present(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    _world(tmp_path)
    svc = await _service(tmp_path, real_redis, keys)
    try:
        await svc.run_sync(actor=ADA)
        sim = _sim(svc)
        sim.delete_user("e-cia")
        sim.restore_user("e-cia")
        (run,) = await svc.run_sync(actor=ADA)
        assert run.mode == "delta"
        assert [i.kind for i in run.new_items] == []  # no removal of Cia's directory user
        stored = {u.id for u in await SnapshotStore(real_redis, keys).load("contoso")}
        assert "e-cia" in stored
    finally:
        await svc.stop()


def _removal_card_text(item: Any) -> str:
    view = to_views.proposal_view(item)
    return json.dumps(build.removal_card(view), ensure_ascii=False)


async def test_a_soft_deleted_user_gets_a_removal_card_saying_restorable_until_when_then_gone(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    _world(tmp_path)
    svc = await _service(tmp_path, real_redis, keys)
    try:
        await svc.run_sync(actor=ADA)
        sim = _sim(svc)
        sim.delete_user("e-cia")  # @removed: changed
        (soft,) = await svc.run_sync(actor=ADA)
        (item,) = soft.new_items
        p = item.proposal
        assert (p.kind, p.entra_id, p.removal_cause) == (Kind.REMOVAL, "e-cia", "soft_deleted")
        assert p.restorable_until == Clock().now + timedelta(days=30)
        text = _removal_card_text(item)
        assert "Soft-deleted" in text and "until 25 Dec 2026" in text

        sim.purge_user("e-cia")  # @removed: deleted
        (gone,) = await svc.run_sync(actor=ADA)
        assert list(gone.superseded) == [item.id]
        (after,) = gone.new_items
        assert after.proposal.removal_cause == "deleted"
        assert after.proposal.restorable_until is None
        assert "Gone: permanently deleted" in _removal_card_text(after)
    finally:
        await svc.stop()


async def test_a_soft_delete_is_remembered_across_a_full_read(
    tmp_path: Path, real_redis: aioredis.Redis, keys: Keys
) -> None:
    _world(tmp_path)
    svc = await _service(tmp_path, real_redis, keys)
    try:
        await svc.run_sync(actor=ADA)
        _sim(svc).delete_user("e-cia")
        await svc.run_sync(actor=ADA)
    finally:
        await svc.stop()
    # a new service serves the tenant file again (its own simulator): its first run is a full
    # read, where Cia is absent; the removal still says she can be restored
    write_world(
        tmp_path,
        [
            entra("e-anna", "Anna", "Lind", "+46701111111", businessPhones=["+46812345678"]),
            entra("e-dan", "Dan", "Ek", "+46702222222", accountEnabled=False),
        ],
        [],
    )
    again = await _service(tmp_path, real_redis, keys)
    try:
        (run,) = await again.run_sync(actor=ADA)
        assert run.mode == "full"
        pending = [i.proposal for i in await again.pending(Kind.REMOVAL)]
        assert [(p.entra_id, p.removal_cause) for p in pending] == [("e-cia", "soft_deleted")]
    finally:
        await again.stop()
