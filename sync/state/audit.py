"""The audit trail: a Redis stream of who did what to whom, before and after, capped near
100,000 entries; one entry per decision. NEVER pass secrets (client secrets, tokens, keys) as
``before``/``after``: the trail is stored in clear and exported as is.

An entry keeps the stable action code (``accept match``, ``ignore new``, ...) and the names
of the people it is about (``subject``); ``what`` says the action in an admin's words and
``changes`` lists only the fields that changed, before -> after (the card and the CSV export
both show these)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from sync.models import Kind, Proposal
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
    subject: str = ""  # the display name(s) of whom the entry is about

    @property
    def what(self) -> str:
        return describe_action(self.action)

    @property
    def changes(self) -> tuple[tuple[str, str, str], ...]:
        return changed_fields(self.before, self.after)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "at": self.at.isoformat(),
            "what": self.what,
            "changes": [list(c) for c in self.changes],
        }


# verb of an action code -> what it is in an admin's words
_ACTIONS = {
    "accept": "Accepted match",
    "apply": "Applied update",
    "link": "Linked",
    "create": "Created user",
    "remove_sync": "Removed sync",
    "delete_user_confirm": "Deleted user",
    "ignore": "Ignored",
    "pick": "Chose the number's owner",
    "unignore": "Un-ignored",
    "guard confirmed": "Confirmed removals",
    "guard dismissed": "Dismissed removals",
    "connect": "Connected tenant",
    "disconnect": "Disconnected tenant",
    "settings": "Changed settings",
}
# fields that hold ids or bookkeeping, not something an admin reads as a change
HIDDEN_FIELDS = frozenset({"id", "entra_id", "sync_enabled", "active"})


def describe_action(action: str) -> str:
    """``remove_sync removal`` -> "Removed sync", ``failed create`` -> "Failed: Created user";
    an unknown code reads as it is, its underscores as spaces."""
    if action in _ACTIONS:
        return _ACTIONS[action]
    head, _, rest = action.partition(" ")
    if head == "failed" and rest:
        return f"Failed: {describe_action(rest)}"
    if head in _ACTIONS:
        return _ACTIONS[head]
    return action.replace("_", " ")


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def changed_fields(before: Any, after: Any) -> tuple[tuple[str, str, str], ...]:
    """Only what changed, as (field, before, after) text ("" for nothing), fields in the
    order they come; ids and bookkeeping fields (``HIDDEN_FIELDS``) left out. Values that
    are not field tables give one row with the field "" ."""
    if before is None and after is None:
        return ()
    if not isinstance(before, dict | None) or not isinstance(after, dict | None):
        old, new = _shown(before), _shown(after)
        return () if old == new else (("", old, new),)
    old_d: dict[str, Any] = before or {}
    new_d: dict[str, Any] = after or {}
    out = []
    for name in dict.fromkeys([*old_d, *new_d]):
        if name in HIDDEN_FIELDS:
            continue
        old, new = _shown(old_d.get(name)), _shown(new_d.get(name))
        if old != new:
            out.append((name, old, new))
    return tuple(out)


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
        subject=f.get("subject", ""),
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
        subject: str | None = None,
    ) -> str:
        """Append one entry (``subject``: the names of whom it is about); returns its
        stream id."""
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
            "subject": subject or None,
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


def subject_of(p: Proposal) -> str:
    """Whom an item is about, by name: the Entra user and the directory user ("Gustav Holm
    → Reception"), or a conflict's people."""
    if p.kind is Kind.CONFLICT:
        return ", ".join(p.entra_labels)
    names = [n for n in (p.label, p.app_label) if n]
    if len(names) == 2 and names[0] == names[1]:
        names = names[:1]
    return " → ".join(names)
