"""Rotating ENTRA_SYNC_SECRET_KEY on the real Redis: old keys (ENTRA_SYNC_SECRET_KEYS_OLD)
still decrypt, new writes use the new key, `entra-sync state rotate-secrets` re-encrypts what
is stored; a key that opens nothing gives a clear error, never the secret."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.errors import ConfigError, StateError
from sync.state.admin import Credentials
from sync.state.keys import Keys
from sync.state.secrets import SecretBox
from tests.component.bot_fake_service import now_fixed

SECRET = "entra-client-secret-~Q8"
KEY_A, KEY_B, KEY_C = (SecretBox.generate_key() for _ in range(3))


def creds(r: aioredis.Redis, keys: Keys, key: SecretStr, *old: SecretStr) -> Credentials:
    return Credentials(r, keys, SecretBox(key, list(old)), clock=now_fixed)


def rotate_cli(keys: Keys, key: SecretStr, old: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ENTRA_SYNC_REDIS_PREFIX": keys.prefix,
        "ENTRA_SYNC_SECRET_KEY": key.get_secret_value(),
        "ENTRA_SYNC_SECRET_KEYS_OLD": old,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "state", "rotate-secrets"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_secret_saved_with_the_old_key_reads_after_rotating_the_key(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    await creds(real_redis, keys, KEY_A).set_credentials("contoso", "t", "c", SecretStr(SECRET))
    got = await creds(real_redis, keys, KEY_B, KEY_A).credentials("contoso")
    assert got is not None and got[2].get_secret_value() == SECRET


async def test_new_writes_use_the_new_key(real_redis: aioredis.Redis, keys: Keys) -> None:
    await creds(real_redis, keys, KEY_B, KEY_A).set_credentials(
        "contoso", "t", "c", SecretStr(SECRET)
    )
    got = await creds(real_redis, keys, KEY_B).credentials("contoso")  # B alone opens it
    assert got is not None and got[2].get_secret_value() == SECRET


async def test_rotate_secrets_reencrypts_so_the_new_key_alone_reads_them(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    for tenant in ("contoso", "fabrikam"):
        await creds(real_redis, keys, KEY_A).set_credentials(tenant, "t", "c", SecretStr(SECRET))
    before = await real_redis.hget(keys.credentials("contoso"), "secret")
    done = rotate_cli(keys, KEY_B, f" {KEY_C.get_secret_value()} , {KEY_A.get_secret_value()}")
    assert done.returncode == 0, done.stderr
    assert '"reencrypted": ["contoso", "fabrikam"]' in done.stdout
    assert await real_redis.hget(keys.credentials("contoso"), "secret") != before
    for tenant in ("contoso", "fabrikam"):
        got = await creds(real_redis, keys, KEY_B).credentials(tenant)
        assert got is not None and got[2].get_secret_value() == SECRET
    with pytest.raises(StateError):  # the old key alone no longer opens it
        await creds(real_redis, keys, KEY_A).credentials("contoso")


async def test_a_key_that_opens_nothing_is_a_clear_error_without_the_secret(
    real_redis: aioredis.Redis, keys: Keys
) -> None:
    await creds(real_redis, keys, KEY_A).set_credentials("contoso", "t", "c", SecretStr(SECRET))
    stored = await real_redis.hget(keys.credentials("contoso"), "secret")
    with pytest.raises(StateError) as e:
        await creds(real_redis, keys, KEY_B, KEY_C).credentials("contoso")
    assert e.value.code == "secret_unreadable"
    assert "ENTRA_SYNC_SECRET_KEYS_OLD" in e.value.hint
    assert SECRET not in f"{e.value.message} {e.value.hint}"

    done = rotate_cli(keys, KEY_B, KEY_C.get_secret_value())
    assert done.returncode == 1
    assert "secret_unreadable" in done.stderr and "contoso" in done.stderr
    assert "Traceback" not in done.stderr and SECRET not in done.stdout + done.stderr
    assert await real_redis.hget(keys.credentials("contoso"), "secret") == stored  # untouched


def test_an_old_key_that_is_not_a_fernet_key_is_named_in_the_error() -> None:
    with pytest.raises(ConfigError) as e:
        SecretBox(KEY_B, SecretStr(f"{KEY_A.get_secret_value()},not-a-key"))
    assert "ENTRA_SYNC_SECRET_KEYS_OLD" in e.value.message
    assert "not-a-key" not in e.value.message + e.value.hint
