"""StateStore on fakeredis: ignored users, number owners, guard, delta links, snapshots,
last sync, lock, audit, credentials, settings, conversations, forgetting a tenant."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.errors import ConfigError, LockBusy, StateError
from sync.models import EntraUser, Kind, Proposal, ProposalState, parse_entra_user
from sync.state.admin import Credentials
from sync.state.keys import Keys
from sync.state.secrets import SecretBox
from sync.state.store import StateStore

T0 = datetime(2026, 3, 1, 14, 2, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(fake_redis: aioredis.Redis, keys: Keys, clock: Clock) -> StateStore:
    return StateStore(fake_redis, keys, clock=clock)


def credentials(redis: aioredis.Redis, keys: Keys, box: SecretBox) -> Credentials:
    return Credentials(redis, keys, box, clock=Clock())


def user(uid: str, **attrs: object) -> EntraUser:
    return parse_entra_user({"id": uid, "accountEnabled": True, **attrs})


# --- ignored, owners, guard, state view ----------------------------------------------------


async def test_ignore_and_unignore_change_the_set_and_leave_the_audit_to_the_decision(
    store: StateStore,
) -> None:
    assert await store.choices.ignore("contoso", "e1") is True
    assert await store.choices.ignore("contoso", "e1") is False
    assert await store.choices.ignored("contoso") == frozenset({"e1"})
    assert await store.choices.ignored("fabrikam") == frozenset()
    assert await store.choices.unignore("contoso", "e1") is True
    assert await store.choices.ignored("contoso") == frozenset()
    assert await store.audit_log.recent_audit() == []  # one entry per decision, written there


async def test_number_owner_is_stored_per_tenant(store: StateStore) -> None:
    await store.choices.set_number_owner("contoso", "+46701234567", "e1")
    await store.choices.set_number_owner("contoso", "+46701234567", "e2")
    assert await store.choices.number_owners("contoso") == {"+46701234567": "e2"}
    assert await store.choices.number_owners("fabrikam") == {}


async def test_guard_confirmation_is_consumed_once(store: StateStore) -> None:
    assert await store.choices.consume_guard("contoso", "main") is False
    await store.choices.confirm_guard("contoso", "main")
    assert (await store.choices.state_view("contoso", "main")).removals_confirmed is True
    assert (await store.choices.state_view("contoso", "other")).removals_confirmed is False
    assert await store.choices.consume_guard("contoso", "main") is True
    assert await store.choices.consume_guard("contoso", "main") is False
    assert (await store.choices.state_view("contoso", "main")).removals_confirmed is False


async def test_state_view_carries_ignored_and_number_owners(store: StateStore) -> None:
    await store.choices.ignore("contoso", "e9")
    await store.choices.set_number_owner("contoso", "+4611", "e1")
    view = await store.choices.state_view("contoso", "main")
    assert view.ignored == frozenset({"e9"})
    assert dict(view.number_owners) == {"+4611": "e1"}
    assert view.removals_confirmed is False


# --- delta links and snapshots --------------------------------------------------------------


async def test_delta_link_set_get_clear(store: StateStore) -> None:
    assert await store.snapshots.get_delta_link("contoso", "main") is None
    await store.snapshots.set_delta_link("contoso", "main", "https://graph/delta?token=abc")
    assert (
        await store.snapshots.get_delta_link("contoso", "main") == "https://graph/delta?token=abc"
    )
    assert await store.snapshots.get_delta_link("contoso", "other") is None
    await store.snapshots.clear_delta_link("contoso", "main")
    assert await store.snapshots.get_delta_link("contoso", "main") is None


async def test_snapshot_round_trips_users(store: StateStore) -> None:
    users = [
        user("b", displayName="Björn", businessPhones=["+46 8 123"], mobilePhone=None),
        user("a", displayName="Anna", accountEnabled=False),
    ]
    assert await store.snapshots.save("contoso", users) == 2
    loaded = await store.snapshots.load("contoso")
    assert [u.id for u in loaded] == ["a", "b"]
    assert loaded[0].enabled is False
    assert loaded[1].attrs["displayName"] == "Björn"
    assert loaded[1].attrs["businessPhones"] == ["+46 8 123"]
    assert loaded == [users[1], users[0]]  # every attribute as read, nulls included


async def test_save_snapshot_replaces_the_previous_one(store: StateStore) -> None:
    await store.snapshots.save("contoso", [user("a"), user("b")])
    await store.snapshots.save("contoso", [user("c")])
    assert [u.id for u in await store.snapshots.load("contoso")] == ["c"]
    await store.snapshots.save("contoso", [])
    assert await store.snapshots.load("contoso") == []


async def test_save_snapshot_handles_many_users_in_batches(store: StateStore) -> None:
    n = await store.snapshots.save("contoso", (user(f"u{i:05d}") for i in range(2500)))
    assert n == 2500
    assert len(await store.snapshots.load("contoso")) == 2500


async def test_update_snapshot_upserts_and_removes(store: StateStore) -> None:
    await store.snapshots.save("contoso", [user("a", displayName="A"), user("b")])
    await store.snapshots.update("contoso", [user("a", displayName="A2"), user("c")], ["b"])
    loaded = {u.id: u for u in await store.snapshots.load("contoso")}
    assert sorted(loaded) == ["a", "c"]
    assert loaded["a"].attrs["displayName"] == "A2"


async def test_update_snapshot_removal_wins_over_a_change_in_the_same_delta(
    store: StateStore,
) -> None:
    await store.snapshots.save("contoso", [user("a"), user("b")])
    await store.snapshots.update("contoso", [user("b", displayName="B2")], ["b"])
    assert [u.id for u in await store.snapshots.load("contoso")] == ["a"]


async def test_a_user_removed_by_one_delta_and_back_in_the_next_is_in_the_snapshot(
    store: StateStore,
) -> None:
    await store.snapshots.save("contoso", [user("a"), user("b", displayName="B")])
    await store.snapshots.update("contoso", [], ["b"])
    await store.snapshots.update("contoso", [user("b", displayName="B3")], [])
    loaded = {u.id: u for u in await store.snapshots.load("contoso")}
    assert sorted(loaded) == ["a", "b"] and loaded["b"].attrs["displayName"] == "B3"
    await store.snapshots.update("contoso", [], ["b"])
    assert [u.id for u in await store.snapshots.load("contoso")] == ["a"]


async def test_a_full_save_folds_the_deltas_away(
    store: StateStore, fake_redis: aioredis.Redis, keys: Keys
) -> None:
    await store.snapshots.save("contoso", [user("a"), user("b")])
    await store.snapshots.update("contoso", [user("c")], ["a"])
    await store.snapshots.save("contoso", [user("a", displayName="A")])
    assert not await fake_redis.exists(keys.snapshot_overlay("contoso"))
    assert not await fake_redis.exists(keys.snapshot_removed("contoso"))
    loaded = await store.snapshots.load("contoso")
    assert [(u.id, u.attrs.get("displayName")) for u in loaded] == [("a", "A")]


async def test_update_snapshot_without_a_saved_snapshot_holds_the_changed_users(
    store: StateStore,
) -> None:
    await store.snapshots.update("contoso", [user("b"), user("a")], ["x"])
    assert [u.id for u in await store.snapshots.load("contoso")] == ["a", "b"]


# --- last sync ---------------------------------------------------------------------------


async def test_last_sync_round_trips(store: StateStore) -> None:
    assert await store.runs.last_sync("contoso") is None
    err = {"code": "AADSTS7000215", "hint": "wrong secret"}
    await store.runs.set_last_sync(
        "contoso", status="failed", error=err, counters={"synced": 3}, at=T0
    )
    ls = await store.runs.last_sync("contoso")
    assert ls is not None
    assert (ls.at, ls.status, ls.error, ls.counters) == (T0, "failed", err, {"synced": 3})


async def test_user_last_sync_is_set_for_many_ids(store: StateStore) -> None:
    ids = [f"e{i}" for i in range(1500)]
    await store.runs.set_user_last_sync("contoso", ids, T0)
    assert await store.runs.user_last_sync("contoso", "e1499") == T0
    assert await store.runs.user_last_sync("contoso", "nobody") is None


# --- lock -----------------------------------------------------------------------------------


async def test_lock_is_exclusive_per_tenant_and_released_on_exit(store: StateStore) -> None:
    async with store.run_lock.hold("contoso"):
        with pytest.raises(LockBusy):
            async with store.run_lock.hold("contoso"):
                pass
        async with store.run_lock.hold("fabrikam"):
            pass
    async with store.run_lock.hold("contoso"):
        pass  # free again


async def test_lock_is_not_released_by_someone_who_no_longer_owns_it(
    store: StateStore, fake_redis: aioredis.Redis, keys: Keys
) -> None:
    async with store.run_lock.hold("contoso"):
        # our lock expired and another run took it
        await fake_redis.set(keys.lock("contoso"), b"someone-else")
    assert await fake_redis.get(keys.lock("contoso")) == b"someone-else"


async def test_lock_released_when_the_body_raises(store: StateStore) -> None:
    with pytest.raises(RuntimeError):
        async with store.run_lock.hold("contoso"):
            raise RuntimeError("boom")
    async with store.run_lock.hold("contoso"):
        pass


# --- audit ----------------------------------------------------------------------------------


async def test_audit_recent_is_newest_first_and_export_oldest_first(
    store: StateStore, clock: Clock
) -> None:
    for i in range(3):
        clock.now = T0 + timedelta(minutes=i)
        await store.audit_log.audit(
            "a1",
            "Ann",
            f"act{i}",
            tenant="contoso",
            proposal_id=f"p{i}",
            before={"first_name": "Old"},
            after={"first_name": "New"},
        )
    recent = await store.audit_log.recent_audit(limit=2)
    assert [e.action for e in recent] == ["act2", "act1"]
    assert recent[0].at == T0 + timedelta(minutes=2)
    exported = await store.audit_log.export_audit()
    assert [e.action for e in exported] == ["act0", "act1", "act2"]
    d = exported[0].to_dict()
    assert d["actor_name"] == "Ann" and d["proposal_id"] == "p0"
    assert d["before"] == {"first_name": "Old"} and d["entra_id"] is None
    assert d["at"] == T0.isoformat()


async def test_export_audit_pages_through_more_than_one_page(store: StateStore) -> None:
    for i in range(1205):
        await store.audit_log.audit("a1", "Ann", "x", tenant="t", entra_id=str(i))
    exported = await store.audit_log.export_audit()
    assert [e.entra_id for e in exported] == [str(i) for i in range(1205)]


# --- credentials ----------------------------------------------------------------------------


async def test_credentials_round_trip_through_the_box(
    fake_redis: aioredis.Redis, keys: Keys
) -> None:
    creds = credentials(fake_redis, keys, SecretBox(SecretBox.generate_key()))
    await creds.set_credentials("contoso", "tid", "cid", SecretStr("s3cr3t-Value~x"))
    got = await creds.credentials("contoso")
    assert got is not None
    tid, cid, secret = got
    assert (tid, cid, secret.get_secret_value()) == ("tid", "cid", "s3cr3t-Value~x")
    await creds.delete_credentials("contoso")
    assert await creds.credentials("contoso") is None


async def test_plaintext_secret_never_appears_in_redis(
    store: StateStore, fake_redis: aioredis.Redis, keys: Keys
) -> None:
    plain = "Zq8~very-secret-value-0123456789"
    creds = credentials(fake_redis, keys, SecretBox(SecretBox.generate_key()))
    await creds.set_credentials("contoso", "tid", "cid", SecretStr(plain))
    await store.audit_log.audit(
        "a1", "Ann", "connect", tenant="contoso", after={"client_id": "cid"}
    )
    seen = 0
    async for k in fake_redis.scan_iter(match=f"{keys.prefix}*"):
        t = await fake_redis.type(k)
        if t == b"hash":
            values = list((await fake_redis.hgetall(k)).values())
        elif t == b"string":
            values = [await fake_redis.get(k)]
        elif t == b"stream":
            values = [v for _, f in await fake_redis.xrange(k) for v in f.values()]
        else:
            values = []
        for v in values:
            seen += 1
            assert plain.encode() not in v
    assert seen >= 3


async def test_credentials_stored_with_another_key_are_refused_with_a_hint(
    fake_redis: aioredis.Redis, keys: Keys
) -> None:
    first = credentials(fake_redis, keys, SecretBox(SecretBox.generate_key()))
    await first.set_credentials("contoso", "tid", "cid", SecretStr("x"))
    with pytest.raises(StateError) as ei:
        await credentials(fake_redis, keys, SecretBox(SecretBox.generate_key())).credentials(
            "contoso"
        )
    assert ei.value.code == "secret_unreadable"
    assert "Connect the tenant again" in ei.value.hint


def test_secret_box_without_a_key_warns_and_is_ephemeral(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sync.state.secrets"):
        box = SecretBox(None)
    assert box.ephemeral is True
    assert "will not survive a restart" in caplog.text
    assert box.decrypt(box.encrypt(SecretStr("abc"))).get_secret_value() == "abc"


def test_secret_box_with_a_bad_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as ei:
        SecretBox(SecretStr("not-a-fernet-key"))
    assert "ENTRA_SYNC_SECRET_KEY" in ei.value.message


def test_secret_box_repr_shows_no_key() -> None:
    key = SecretBox.generate_key()
    assert key.get_secret_value() not in repr(SecretBox(key))


# --- settings and conversations -------------------------------------------------------------


async def test_settings_overrides_round_trip(store: StateStore) -> None:
    assert await store.settings.get_settings_overrides() is None
    await store.settings.set_settings_overrides({"schedule": {"mode": "daily", "at": "03:00"}})
    assert await store.settings.get_settings_overrides() == {
        "schedule": {"mode": "daily", "at": "03:00"}
    }


async def test_conversations_and_notify_channel_round_trip(store: StateStore) -> None:
    ref = {"conversation": {"id": "19:x"}, "serviceUrl": "https://smba.example/"}
    assert await store.conversations.conversation("19:x") is None
    await store.conversations.save_conversation("19:x", ref)
    assert await store.conversations.conversation("19:x") == ref
    assert await store.conversations.notify_channel() is None
    await store.conversations.set_notify_channel("19:x")
    assert await store.conversations.notify_channel() == "19:x"


# --- forgetting a tenant (disconnect) ------------------------------------------------------


async def test_forgetting_a_tenant_removes_its_state_but_not_directory_users(
    store: StateStore, fake_redis: aioredis.Redis, keys: Keys
) -> None:
    p = Proposal(kind=Kind.NEW, entra_id="e1", app_user_id=None, reason="no match")
    await store.proposals.record_plan("contoso", "main", [p])
    await store.snapshots.set_delta_link("contoso", "main", "link")
    await store.snapshots.save("contoso", [user("e1")])
    await store.choices.set_number_owner("contoso", "+4611", "e1")
    await store.choices.ignore("contoso", "e2")
    await store.choices.confirm_guard("contoso", "main")
    await store.runs.set_user_last_sync("contoso", ["e1"], T0)
    await store.snapshots.set_delta_link("fabrikam", "main", "keep-me")
    await fake_redis.hset(keys.dir_users("main"), "u1", b'{"id":"u1","entra_id":"e1"}')

    superseded, dirs = await store.proposals.supersede_tenant("contoso", verb="disconnected")
    await store.snapshots.forget("contoso")
    await store.choices.forget("contoso")
    await store.runs.forget("contoso")

    assert (superseded, dirs) == ([p.id], ["main"])
    sp = await store.proposals.get(p.id)
    assert sp is not None and sp.state is ProposalState.SUPERSEDED and sp.verb == "disconnected"
    assert await store.snapshots.get_delta_link("contoso", "main") is None
    assert await store.snapshots.load("contoso") == []
    assert await store.choices.number_owners("contoso") == {}
    assert await store.choices.ignored("contoso") == frozenset()
    assert not (await store.choices.state_view("contoso", "main")).removals_confirmed
    assert await store.runs.user_last_sync("contoso", "e1") is None
    assert await store.snapshots.get_delta_link("fabrikam", "main") == "keep-me"
    assert await fake_redis.hget(keys.dir_users("main"), "u1") is not None
