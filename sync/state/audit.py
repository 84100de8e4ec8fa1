"""The audit trail: a Redis stream of who did what, before and after, capped near 100,000
entries. NEVER pass secrets (client secrets, tokens, keys) as ``before``/``after``: the trail
is stored in clear and exported as is."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from sync.state.keys import Keys
from sync.state.values import BATCH, dumps, iso, str_map, text

AUDIT_MAXLEN = 100_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit trail. ``id`` is the Redis stream id (time-ordered)."""

    id: str
    at: datetime
    actor_id: str
    actor_name: str
    action: str
    tenant: str
    proposal_id: str | None = None
    entra_id: str | None = None
    app_user_id: str | None = None
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"at": self.at.isoformat()}


def _entry(sid: Any, raw: Any) -> AuditEntry:
    f = str_map(raw)
    before, after = f.get("before"), f.get("after")
    return AuditEntry(
        id=text(sid),
        at=datetime.fromisoformat(f.get("at", "")),
        actor_id=f.get("actor_id", ""),
        actor_name=f.get("actor_name", ""),
        action=f.get("action", ""),
        tenant=f.get("tenant", ""),
        proposal_id=f.get("proposal_id"),
        entra_id=f.get("entra_id"),
        app_user_id=f.get("app_user_id"),
        before=json.loads(before) if before is not None else None,
        after=json.loads(after) if after is not None else None,
    )


class AuditLog:
    """Append to, and read, the audit stream."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, *, clock: Callable[[], datetime]):
        self._r = redis
        self._k = keys
        self._clock = clock

    async def audit(
        self,
        actor_id: str,
        actor_name: str,
        action: str,
        *,
        tenant: str,
        proposal_id: str | None = None,
        entra_id: str | None = None,
        app_user_id: str | None = None,
        before: Any = None,
        after: Any = None,
    ) -> str:
        """Append one entry; returns its stream id."""
        fields = {
            "at": iso(self._clock()),
            "actor_id": actor_id,
            "actor_name": actor_name,
            "action": action,
            "tenant": tenant,
            "proposal_id": proposal_id,
            "entra_id": entra_id,
            "app_user_id": app_user_id,
            "before": None if before is None else dumps(before),
            "after": None if after is None else dumps(after),
        }
        present = {k: v for k, v in fields.items() if v is not None}
        sid = await self._r.xadd(
            self._k.audit(),
            present,  # type: ignore[arg-type]
            maxlen=AUDIT_MAXLEN,
            approximate=True,
        )
        return text(sid)

    async def recent_audit(self, limit: int = 20) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first."""
        rows: Any = await self._r.xrevrange(self._k.audit(), count=limit)
        return [_entry(sid, f) for sid, f in rows]

    async def export_audit(self) -> list[AuditEntry]:
        """Every entry, oldest first (read in pages of 1,000)."""
        out: list[AuditEntry] = []
        start = "-"
        while True:
            rows: Any = await self._r.xrange(self._k.audit(), min=start, count=BATCH)
            out += [_entry(sid, f) for sid, f in rows]
            if len(rows) < BATCH:
                return out
            start = "(" + text(rows[-1][0])
