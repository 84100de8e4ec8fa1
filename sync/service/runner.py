"""One-shot operations for cron and operators: `entra-sync sync --once` and
`entra-sync audit export`. They build the same SyncService the bot runs."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sync.config import EnvSettings, load_config
from sync.errors import InputError
from sync.service.service import RunResult, SyncService
from sync.state.connection import make_redis
from sync.state.keys import Keys

# Characters that make a spreadsheet read a cell as a formula (OWASP, CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _now() -> datetime:
    return datetime.now(UTC)


def csv_cell(value: object) -> str:
    """A value as a CSV cell a spreadsheet shows as text: a cell that starts with a formula
    prefix (``=``, ``+``, ``-``, ``@``, tab, carriage return) gets a leading single quote, as
    OWASP's CSV-injection guidance says. ``None`` is the empty cell."""
    cell = "" if value is None else str(value)
    return "'" + cell if cell.startswith(FORMULA_PREFIXES) else cell


def summarize(r: RunResult) -> dict[str, Any]:
    return {
        "tenant": r.tenant,
        "directory": r.directory,
        "status": r.status,
        "mode": r.mode,
        "error": r.error.to_dict() if r.error else None,
        "new": dict(Counter(i.kind.value for i in r.new_items)),
        "auto_applied": len(r.auto_applied),
        "superseded": len(r.superseded),
        "blocked": [{"reason": b.reason, "count": b.count} for b in r.blocked],
        "counters": dict(r.counters),
    }


NO_TENANT = (
    "no tenant is configured: run `connect` in Teams (type connect to the bot in a personal "
    "chat) or add a [[tenants]] table to the config file (--config or ENTRA_SYNC_CONFIG)"
)


async def sync_once(
    config_path: str | None, *, env: EnvSettings | None = None, keys: Keys | None = None
) -> dict[str, Any]:
    """One sync cycle as the bot's scheduler runs it: proposals recorded, only what the
    schedule policy allows applied (scheduled mode: updates of linked users)."""
    env = env or EnvSettings()
    config = load_config(config_path)
    service = SyncService(
        config=config,
        env=env,
        redis=make_redis(env.REDIS_URL),
        keys=keys or Keys(env.ENTRA_SYNC_REDIS_PREFIX),
        clock=_now,
    )
    await service.start(scheduler=False)
    try:
        if not service.tenant_set.names():
            raise InputError(NO_TENANT)
        results = await service.run_sync(trigger="scheduled")
    finally:
        await service.stop()
    return {
        "runs": [summarize(r) for r in results],
        "embedded_store": not env.REDIS_URL,
    }


async def export_audit(config_path: str | None, fmt: str, *, env: EnvSettings | None = None) -> str:
    env = env or EnvSettings()
    load_config(config_path)  # validates the file; the audit lives in Redis
    from sync.state.store import StateStore

    store = StateStore(make_redis(env.REDIS_URL), Keys(env.ENTRA_SYNC_REDIS_PREFIX), clock=_now)
    entries = [e.to_dict() for e in await store.audit_log.export_audit()]
    if fmt == "json":
        return json.dumps(entries, indent=1, ensure_ascii=False, default=str) + "\n"
    out = io.StringIO()
    fields = [
        "id",
        "at",
        "actor_id",
        "actor_name",
        "action",
        "tenant",
        "proposal_id",
        "entra_id",
        "app_user_id",
        "before",
        "after",
        "subject",
        "what",
        "changes",
    ]
    w = csv.DictWriter(out, fieldnames=fields)
    w.writeheader()
    for e in entries:
        row = {k: e.get(k) for k in fields}
        for k in ("before", "after"):
            if row[k] is not None:
                row[k] = json.dumps(row[k], ensure_ascii=False, default=str)
        row["changes"] = "; ".join(
            f"{f}: {old} -> {new}" if f else f"{old} -> {new}" for f, old, new in e["changes"]
        )
        w.writerow({k: csv_cell(v) for k, v in row.items()})
    return out.getvalue()
