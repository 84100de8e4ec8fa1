"""The stored data-format version on the real Redis (the test's own prefix): written on first
use, a store from before versioning is upgraded (its earlier-format snapshots dropped, the
rest kept), and a store from a newer Entra Sync is refused with a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from sync.errors import StateError
from sync.models import EntraUser, Proposal
from sync.state.dataformat import DATA_FORMAT, DataFormat
from sync.state.keys import Keys
from sync.state.proposals import ProposalStore
from sync.state.snapshots import SnapshotStore
from tests.component.bot_fake_service import now_fixed
from tests.integration.redis_servers import free_port
from tests.unit.test_state_proposals import match as proposal

ANNA = EntraUser(id="e-anna", enabled=True, attrs={"displayName": "Anna"})


async def test_an_empty_store_gets_the_current_version_on_first_use(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    assert await DataFormat(real_redis, keys).ensure() == DATA_FORMAT
    assert await real_redis.get(keys.data_format()) == str(DATA_FORMAT).encode()


async def old_store(r: aioredis.Redis, keys: Keys) -> Proposal:
    """A store as written before versioning: a proposal, a snapshot of Graph-shaped rows with
    its delta link and overlay, an old-layout snapshot hash; no format key."""
    p = proposal("e-anna")
    await ProposalStore(r, keys, clock=now_fixed).record_plan("contoso", "main", [p])
    graph_row = {"id": "e-anna", "accountEnabled": True, "displayName": "Anna"}
    await r.rpush(keys.snapshot_parts("contoso"), orjson.dumps([graph_row]))
    await r.hset(keys.snapshot_overlay("contoso"), "e-bo", orjson.dumps({"id": "e-bo"}))
    await r.set(keys.delta_link("contoso", "users"), "https://graph/delta?token=old")
    await r.hset(keys.snapshot("contoso"), "e-anna", json.dumps(graph_row))
    return p


async def test_a_store_from_before_versioning_is_upgraded_and_keeps_its_proposals(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    p = await old_store(real_redis, keys)
    assert await DataFormat(real_redis, keys).ensure() == 0  # found: before versioning
    assert await real_redis.get(keys.data_format()) == str(DATA_FORMAT).encode()
    snaps = SnapshotStore(real_redis, keys)
    assert await snaps.load("contoso") == []  # the next run reads the tenant in full ...
    assert await snaps.get_delta_link("contoso", "users") is None  # ... not a delta round
    assert not await real_redis.exists(keys.snapshot("contoso"), keys.snapshot_overlay("contoso"))
    (kept,) = await ProposalStore(real_redis, keys, clock=now_fixed).pending()
    assert kept.proposal == p


async def test_the_upgrade_keeps_a_snapshot_already_in_the_current_format(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    snaps = SnapshotStore(real_redis, keys)
    await snaps.save("contoso", [ANNA])
    await snaps.set_delta_link("contoso", "users", "https://graph/delta?token=new")
    await real_redis.delete(keys.data_format())  # as if written just before versioning
    assert await DataFormat(real_redis, keys).ensure() == 0
    assert await snaps.load("contoso") == [ANNA]
    assert await snaps.get_delta_link("contoso", "users") == "https://graph/delta?token=new"


async def test_running_the_upgrade_twice_changes_nothing_more(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    await old_store(real_redis, keys)
    fmt = DataFormat(real_redis, keys)
    await fmt.ensure()
    after_first = sorted([k async for k in real_redis.scan_iter(match=f"{keys.prefix}*")])
    assert await fmt.ensure() == DATA_FORMAT
    assert sorted([k async for k in real_redis.scan_iter(match=f"{keys.prefix}*")]) == after_first


async def test_a_store_from_a_newer_version_is_refused_and_left_alone(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    await real_redis.set(keys.data_format(), str(DATA_FORMAT + 1))
    await real_redis.set(keys.delta_link("contoso", "users"), "kept")
    with pytest.raises(StateError) as e:
        await DataFormat(real_redis, keys).ensure()
    assert e.value.code == "store_too_new"
    assert "newer Entra Sync" in e.value.hint and "upgrade the app" in e.value.hint
    assert await real_redis.get(keys.data_format()) == str(DATA_FORMAT + 1).encode()
    assert await real_redis.get(keys.delta_link("contoso", "users")) == b"kept"


@pytest.mark.parametrize("command", ["serve", "sync"])
async def test_the_bot_refuses_to_start_on_a_newer_store_with_one_line(
    real_redis: aioredis.Redis, keys: Keys, tmp_path: Path, command: str
) -> None:
    await real_redis.set(keys.data_format(), str(DATA_FORMAT + 1))
    config = Path(__file__).resolve().parents[2] / "examples" / "config.toml"
    args = {
        "serve": ["serve", "--config", str(config), "--port", str(free_port())],
        "sync": ["sync", "--once", "--config", str(config)],
    }[command]
    env = {
        **os.environ,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ENTRA_SYNC_REDIS_PREFIX": keys.prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "store_too_new" in done.stderr and "upgrade the app" in done.stderr
    assert "Traceback" not in done.stderr
