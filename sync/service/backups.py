"""`entra-sync state ...` for operators: export, import, rotate-secrets, against the Redis of
REDIS_URL under ENTRA_SYNC_REDIS_PREFIX (the same store `serve` uses).

Stop the bots (every replica) before an import: an import replaces keys a running bot would
keep writing. An export may run while they run; it is read key by key, so a decision made
during the export may be partly in it (export again, or stop the bots, for an exact copy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sync.config import EnvSettings
from sync.errors import InputError, StoreUnavailable
from sync.retry import utc_now
from sync.state.admin import Credentials
from sync.state.backup import export_lines, import_records, parse_export
from sync.state.connection import make_redis
from sync.state.keys import Keys
from sync.state.secrets import ENV_KEY, SecretBox


@contextlib.asynccontextmanager
async def _store(env: EnvSettings) -> AsyncIterator[tuple[aioredis.Redis, Keys]]:
    if not env.REDIS_URL:
        raise InputError(
            "REDIS_URL is not set: there is no stored state to work on (the embedded store "
            "lives only inside a running bot)",
            hint="Set REDIS_URL to the Redis the bot uses, e.g. redis://127.0.0.1:6379/0",
        )
    redis = make_redis(env.REDIS_URL)
    try:
        yield redis, Keys(env.ENTRA_SYNC_REDIS_PREFIX)
    except RedisError as e:
        raise StoreUnavailable(
            f"Redis failed: {type(e).__name__}",
            hint="Check REDIS_URL and that Redis is running; nothing was changed by the import.",
        ) from None
    finally:
        with contextlib.suppress(RedisError):
            await redis.aclose()


async def export_state(
    out: str, *, env: EnvSettings | None = None, clock: Callable[[], datetime] = utc_now
) -> dict[str, Any]:
    """Write the export to ``out`` (a new file: written beside it, then renamed; readable by
    its owner only), or to standard output for ``-``. Returns the header line's facts."""
    env = env or EnvSettings()
    async with _store(env) as (redis, keys):
        lines = await export_lines(redis, keys, clock=clock)
    text = "".join(line + "\n" for line in lines)
    if out == "-":
        sys.stdout.write(text)
    else:
        _write_private(Path(out), text)
    header: dict[str, Any] = json.loads(lines[0])
    return header


def _write_private(path: Path, text: str) -> None:
    if path.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name, e.g. {path}/state.jsonl")
    if not path.parent.is_dir():
        raise InputError(f"--out {path}: the folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".entra-sync-export-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp: mode 0600
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_export(path: str) -> tuple[int, list[Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_export(f, path)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise InputError(f"{path} cannot be read as an export ({type(e).__name__})") from None


async def import_state(
    path: str, *, replace: bool, env: EnvSettings | None = None
) -> dict[str, Any]:
    """Import the export file at ``path`` (see ``sync.state.backup``)."""
    env = env or EnvSettings()
    data_format, records = await asyncio.to_thread(_read_export, path)
    async with _store(env) as (redis, keys):
        result = await import_records(redis, keys, data_format, records, replace=replace)
    return {
        "imported_keys": result.keys,
        "replaced_keys": result.replaced,
        "file_data_format": result.data_format,
        "prefix": env.ENTRA_SYNC_REDIS_PREFIX,
    }


async def rotate_secrets(*, env: EnvSettings | None = None) -> dict[str, Any]:
    """Re-encrypt every saved client secret with ENTRA_SYNC_SECRET_KEY."""
    env = env or EnvSettings()
    if env.ENTRA_SYNC_SECRET_KEY is None or not env.ENTRA_SYNC_SECRET_KEY.get_secret_value():
        raise InputError(
            f"{ENV_KEY} is not set: there is no key to re-encrypt with",
            hint=f"Set {ENV_KEY} to the new key and ENTRA_SYNC_SECRET_KEYS_OLD to the old ones.",
        )
    box = SecretBox(env.ENTRA_SYNC_SECRET_KEY, env.ENTRA_SYNC_SECRET_KEYS_OLD)
    async with _store(env) as (redis, keys):
        done, unreadable = await Credentials(redis, keys, box, clock=utc_now).rotate_secrets()
    return {"reencrypted": done, "unreadable": unreadable}
