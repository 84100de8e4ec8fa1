"""`entra-sync state export` / `state import` through the real parts: our own redis-server on
loopback (it is flushed), the real SyncService over a simulated tenant, and the CLI as a
subprocess. After export -> FLUSHALL -> import, the service answers `pending`, `status`,
`audit` (and ignored users, settings, conversations, saved secrets) as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from sync.config import EnvSettings
from sync.errors import InputError, StateError
from sync.models import Kind
from sync.service.backups import export_state, import_state
from sync.service.service import Actor, SyncService
from sync.state.connection import redis_from_url
from sync.state.dataformat import DATA_FORMAT
from sync.state.keys import Keys
from sync.state.secrets import SecretBox
from tests.component.real_rig import every_kind_world, make_service, write_world
from tests.integration.redis_servers import plain_redis

PREFIX = "es:"
ADA = Actor("admin-ada", "Ada")
KEY = SecretBox.generate_key()
CONV_REF = {"conversation": {"id": "19:abc@thread.tacv2"}, "serviceUrl": "https://smba.example"}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    work = tmp_path / "redis"
    work.mkdir()
    with plain_redis(work) as url:
        yield url


def env_for(url: str) -> EnvSettings:
    return EnvSettings(REDIS_URL=url, ENTRA_SYNC_REDIS_PREFIX=PREFIX, ENTRA_SYNC_SECRET_KEY=KEY)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": url,
        "ENTRA_SYNC_REDIS_PREFIX": PREFIX,
        "ENTRA_SYNC_SECRET_KEY": KEY.get_secret_value(),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def started(tmp: Path, url: str) -> SyncService:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp, tenant, directory)
    svc = make_service(tmp, cfg, redis=redis_from_url(url), keys=Keys(PREFIX), env=env_for(url))
    await svc.start(scheduler=False)
    return svc


async def what_the_service_says(svc: SyncService) -> dict[str, Any]:
    creds = await svc.store.tenant_credentials.credentials("contoso")
    return {
        "pending": await svc.pending(),
        "status": await svc.status(),
        "audit": [e.to_dict() for e in await svc.audit(limit=1000)],
        "ignored": await svc.ignored(),
        "settings": await svc.settings_table(),
        "conversation": await svc.conversations.conversation("19:abc@thread.tacv2"),
        "notify": await svc.conversations.notify_channel(),
        "secret": creds[2].get_secret_value() if creds else None,
        "links": sorted(
            (u.id, u.entra_id) for u in await svc.directories["main"].list_users() if u.entra_id
        ),
    }


async def make_history(svc: SyncService) -> None:
    """A sync, decisions of several kinds, a setting, a conversation, a saved secret."""
    await svc.run_sync(actor=ADA)
    (match,) = await svc.pending(Kind.MATCH)
    assert (
        await svc.decide(match.id, "accept", actor=ADA, digest=match.digest, inputs={})
    ).outcome == "done"
    (new,) = await svc.pending(Kind.NEW)
    assert (
        await svc.decide(new.id, "ignore", actor=ADA, digest=new.digest, inputs={})
    ).outcome == "done"
    assert await svc.update_settings({"guard.max_removals": "7"}, actor=ADA) == {}
    await svc.conversations.save_conversation("19:abc@thread.tacv2", CONV_REF)
    await svc.conversations.set_notify_channel("19:abc@thread.tacv2")
    await svc.store.tenant_credentials.set_credentials(
        "contoso", "tid", "cid", SecretStr("s3cret-value")
    )


async def test_export_flush_import_gives_the_same_pending_status_and_audit(
    tmp_path: Path, own_redis: str
) -> None:
    svc = await started(tmp_path, own_redis)
    await make_history(svc)
    before = await what_the_service_says(svc)
    await svc.stop()
    assert before["pending"] and before["audit"] and before["ignored"] and before["links"]

    out = tmp_path / "state.jsonl"
    exported = cli(own_redis, "state", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "s3cret-value" not in out.read_text()  # the secret stays encrypted in the file
    assert out.stat().st_mode & 0o077 == 0  # readable by its owner only

    r = redis_from_url(own_redis)
    await r.flushall()  # our own server, never the shared one
    assert await r.dbsize() == 0

    imported = cli(own_redis, "state", "import", str(out))
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["imported_keys"] == json.loads(exported.stdout)["keys"]

    again = await started(tmp_path, own_redis)
    after = await what_the_service_says(again)
    await again.stop()
    await r.aclose()
    assert after == before


async def test_import_into_a_store_with_data_is_refused_unless_replace(
    tmp_path: Path, own_redis: str
) -> None:
    svc = await started(tmp_path, own_redis)
    await make_history(svc)
    before = await what_the_service_says(svc)
    out = tmp_path / "state.jsonl"
    await export_state(str(out), env=env_for(own_redis))
    bulk = await svc.bulk_set(Kind.UPDATE)  # more history after the export
    decided = await svc.decide_bulk(Kind.UPDATE, bulk.digest, actor=ADA)
    assert decided is not None and [d.outcome for d in decided] == ["done"]
    changed = await what_the_service_says(svc)
    assert changed["audit"] != before["audit"]

    refused = cli(own_redis, "state", "import", str(out))
    assert refused.returncode == 2
    assert "not empty" in refused.stderr and "--replace" in refused.stderr
    assert await what_the_service_says(svc) == changed  # nothing written

    result = await import_state(str(out), replace=True, env=env_for(own_redis))
    assert result["replaced_keys"] > 0
    assert await what_the_service_says(svc) == before
    await svc.stop()


def rewrite_header(src: Path, dst: Path, **changes: Any) -> None:
    lines = src.read_text().splitlines()
    header = json.loads(lines[0]) | changes
    dst.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"version": 99}, "newer Entra Sync"),
        ({"data_format": DATA_FORMAT + 1}, "newer Entra Sync"),
        ({"format": "something-else"}, "not an Entra Sync state export"),
        ({"keys": 100_000}, "incomplete"),
    ],
)
async def test_import_refuses_a_file_it_cannot_trust_and_changes_nothing(
    tmp_path: Path, own_redis: str, changes: dict[str, Any], words: str
) -> None:
    svc = await started(tmp_path, own_redis)
    await make_history(svc)
    before = await what_the_service_says(svc)
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    await export_state(str(good), env=env_for(own_redis))
    rewrite_header(good, bad, **changes)
    with pytest.raises(InputError) as e:
        await import_state(str(bad), replace=True, env=env_for(own_redis))
    assert words in (e.value.message + " " + e.value.hint)
    assert await what_the_service_says(svc) == before
    await svc.stop()


async def test_a_bad_line_in_the_middle_refuses_the_import_and_names_the_line(
    tmp_path: Path, own_redis: str
) -> None:
    svc = await started(tmp_path, own_redis)
    await make_history(svc)
    before = await what_the_service_says(svc)
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    await export_state(str(good), env=env_for(own_redis))
    lines = good.read_text().splitlines()
    middle = len(lines) // 2
    lines[middle] = lines[middle][:-7]  # cut short: not JSON
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as e:
        await import_state(str(bad), replace=True, env=env_for(own_redis))
    assert f"line {middle + 1}" in e.value.message
    assert await what_the_service_says(svc) == before
    await svc.stop()


async def test_redis_refusing_the_import_midway_leaves_the_store_as_it_was(
    tmp_path: Path, own_redis: str
) -> None:
    """Redis runs out of memory while the import is queued (maxmemory, noeviction): it aborts
    the whole MULTI, so the old state is all there, and the admin reads why."""
    svc = await started(tmp_path, own_redis)
    await make_history(svc)
    before = await what_the_service_says(svc)
    good, big = tmp_path / "good.jsonl", tmp_path / "big.jsonl"
    await export_state(str(good), env=env_for(own_redis))
    header, *body = good.read_text().splitlines()
    pad = json.dumps({"k": "pad", "t": "string", "v": "x" * 2_000_000, "ttl_ms": None})
    big.write_text(
        "\n".join([json.dumps(json.loads(header) | {"keys": len(body) + 1}), pad, *body])
    )
    r = redis_from_url(own_redis)
    used = int((await r.info("memory"))["used_memory"])
    await r.config_set("maxmemory-policy", "noeviction")
    await r.config_set("maxmemory", str(used + 512 * 1024))
    try:
        with pytest.raises(StateError) as e:
            await import_state(str(big), replace=True, env=env_for(own_redis))
    finally:
        await r.config_set("maxmemory", "0")
        await r.aclose()
    assert e.value.code == "import_refused" and "nothing was changed" in e.value.message
    assert "OOM" in e.value.message or "memory" in e.value.message
    assert await what_the_service_says(svc) == before
    await svc.stop()
