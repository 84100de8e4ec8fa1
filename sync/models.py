"""Typed records shared by every part of the engine. Users are keyed by Entra object id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sync.errors import GraphDataError

# Bounds on untrusted strings from Graph (a real attribute is far shorter).
MAX_ATTR_LEN = 1024
MAX_LIST_LEN = 64


class Kind(StrEnum):
    MATCH = "match"
    NEW = "new"
    UPDATE = "update"
    REMOVAL = "removal"
    CONFLICT = "conflict"


class ProposalState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"  # decided, intent recorded, directory write in progress
    APPLIED = "applied"  # decided and written to the directory
    IGNORED = "ignored"
    SUPERSEDED = "superseded"  # a later plan replaced it (Entra data changed, or it vanished)


# Allowed transitions of the proposal state machine.
TRANSITIONS: Mapping[ProposalState, frozenset[ProposalState]] = {
    ProposalState.PENDING: frozenset(
        {ProposalState.ACCEPTED, ProposalState.IGNORED, ProposalState.SUPERSEDED}
    ),
    # back to PENDING only when the directory refused the write (the admin sees it again)
    ProposalState.ACCEPTED: frozenset({ProposalState.APPLIED, ProposalState.PENDING}),
    ProposalState.APPLIED: frozenset(),
    ProposalState.IGNORED: frozenset(),
    ProposalState.SUPERSEDED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class EntraUser:
    """One Entra user as read from Graph: the id, the account state, and the raw attributes
    that were selected (Graph's own names, case-sensitive)."""

    id: str
    enabled: bool
    attrs: Mapping[str, Any]

    @property
    def raw_phones(self) -> tuple[tuple[str, str], ...]:
        """(source attribute, number as written) for mobilePhone and every businessPhones."""
        out: list[tuple[str, str]] = []
        mobile = self.attrs.get("mobilePhone")
        if isinstance(mobile, str) and mobile.strip():
            out.append(("mobilePhone", mobile))
        for p in self.attrs.get("businessPhones") or ():
            if isinstance(p, str) and p.strip():
                out.append(("businessPhones", p))
        return tuple(out)

    @property
    def emails(self) -> tuple[str, ...]:
        out = []
        for key in ("mail", "userPrincipalName"):
            v = self.attrs.get(key)
            if isinstance(v, str) and v.strip():
                out.append(v.strip().lower())
        return tuple(dict.fromkeys(out))

    @property
    def label(self) -> str:
        for key in ("displayName", "userPrincipalName", "mail"):
            v = self.attrs.get(key)
            if isinstance(v, str) and v.strip():
                return v.strip()
        return self.id


_SCALARS = (bool, int, float)
_STRING_ATTRS = ("mobilePhone", "mail", "userPrincipalName", "displayName", "givenName", "surname")


def _check_value(uid: str, key: str, value: Any) -> Any:
    """``value`` as kept in ``attrs``: JSON scalars as they are, strings of at most
    MAX_ATTR_LEN characters, lists of at most MAX_LIST_LEN entries and objects, checked all
    the way down (lists and objects copied). Anything else raises GraphDataError."""
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, str):
        if len(value) > MAX_ATTR_LEN:
            raise GraphDataError(
                f"user {uid}: attribute {key} is {len(value)} characters (limit {MAX_ATTR_LEN})"
            )
        return value
    if isinstance(value, list):
        if len(value) > MAX_LIST_LEN:
            raise GraphDataError(f"user {uid}: attribute {key} has {len(value)} entries")
        return [_check_value(uid, key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _check_value(uid, f"{key}.{k}", v) for k, v in value.items()}
    raise GraphDataError(f"user {uid}: attribute {key} has an unexpected type")


def _user_id(obj: Any) -> str:
    """A user entry is a JSON object with an ``id``: a non-blank string of at most 128
    characters."""
    if not isinstance(obj, dict):
        raise GraphDataError(f"a user entry is a {type(obj).__name__}, not an object")
    uid = obj.get("id")
    if not isinstance(uid, str) or not uid.strip() or len(uid) > 128:
        raise GraphDataError("a user entry has no valid 'id'")
    return uid


def _account_enabled(uid: str, obj: Mapping[str, Any]) -> bool:
    """``accountEnabled`` is true or false; absent means enabled."""
    enabled = obj.get("accountEnabled", True)
    if not isinstance(enabled, bool):
        raise GraphDataError(f"user {uid}: accountEnabled is not true/false")
    return enabled


def _check_named_attributes(uid: str, obj: Mapping[str, Any]) -> None:
    """``businessPhones`` is a list of strings and the name, mail and phone attributes are
    strings, when present and not null."""
    bp = obj.get("businessPhones")
    if bp is not None and not (isinstance(bp, list) and all(isinstance(p, str) for p in bp)):
        raise GraphDataError(f"user {uid}: businessPhones is not a list of strings")
    for key in _STRING_ATTRS:
        v = obj.get(key)
        if v is not None and not isinstance(v, str):
            raise GraphDataError(f"user {uid}: {key} is not a string")


def parse_entra_user(obj: Any) -> EntraUser:
    """Parse one Graph user object (Graph's JSON). Raises GraphDataError naming the problem.
    ``attrs`` holds every attribute but ``id`` and the ``@odata`` annotations, each checked
    against the bounds on untrusted values (``_check_value``); the caller's object is not
    kept."""
    uid = _user_id(obj)
    enabled = _account_enabled(uid, obj)
    _check_named_attributes(uid, obj)
    attrs = {
        k: _check_value(uid, k, v)
        for k, v in obj.items()
        if k != "id" and not k.startswith("@odata")
    }
    return EntraUser(id=uid, enabled=enabled, attrs=attrs)


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user of the phone system's directory (built-in or SCIM)."""

    id: str
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    phones: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    entra_id: str | None = None
    sync_enabled: bool = True
    active: bool = True

    def field_value(self, name: str) -> Any:
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "display_name": self.display_name,
            "email": self.email,
            "phones": list(self.phones),
            "tags": list(self.tags),
            "sync_enabled": self.sync_enabled,
            "active": self.active,
        }
        if self.entra_id is not None:
            out["entra_id"] = self.entra_id
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DirectoryUser:
        return cls(
            id=str(d["id"]),
            first_name=d.get("first_name"),
            last_name=d.get("last_name"),
            display_name=d.get("display_name"),
            email=d.get("email"),
            phones=tuple(d.get("phones") or ()),
            tags=tuple(d.get("tags") or ()),
            entra_id=d.get("entra_id"),
            sync_enabled=bool(d.get("sync_enabled", True)),
            active=bool(d.get("active", True)),
        )


# Directory fields a mapping may write. `tags` is a list, the others strings.
STRING_FIELDS = ("first_name", "last_name", "display_name", "email")
MAPPABLE_FIELDS = (*STRING_FIELDS, "tags")


@dataclass(frozen=True, slots=True)
class Change:
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"old": _jsonable(self.old), "new": _jsonable(self.new)}


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


@dataclass(frozen=True, slots=True)
class Proposal:
    """One described operation of a plan. ``id`` is derived from its content, so planning the
    same data twice gives the same ids (idempotent), and changed Entra data gives a new id."""

    kind: Kind
    entra_id: str | None
    app_user_id: str | None
    reason: str
    changes: Mapping[str, Change] = field(default_factory=dict)
    entra_ids: tuple[str, ...] = ()
    match_key: str | None = None  # "phone" | "email" for matches
    match_value: str | None = None
    number: str | None = None  # conflicts: the shared E.164 number
    removal_cause: str | None = None  # "deleted" | "soft_deleted" | "disabled" | "out_of_scope"
    # soft-deleted users: until when Entra can restore them (not part of the id)
    restorable_until: datetime | None = None
    label: str = ""  # a display name for cards and logs (from Entra, untrusted)
    app_label: str = ""  # the directory user's name (not part of the id)
    entra_labels: tuple[str, ...] = ()  # conflicts: names of entra_ids, same order
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.compute_id())

    def compute_id(self) -> str:
        """sha256 (first 20 hex digits) of the canonical JSON of the fields that define the
        operation: ``json.dumps`` with ``sort_keys``, compact separators and ``ensure_ascii``.
        Ids are stored and posted on cards, so these bytes never change (pinned in
        tests/unit/test_proposal_ids_pinned.py)."""
        body = json.dumps(
            [
                self.kind.value,
                self.entra_id,
                self.app_user_id,
                sorted(self.entra_ids),
                {k: v.to_dict() for k, v in sorted(self.changes.items())},
                self.number,
                self.removal_cause,
            ],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(body.encode()).hexdigest()[:20]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind.value,
            "entra_id": self.entra_id,
            "app_user_id": self.app_user_id,
            "reason": self.reason,
            "changes": {k: v.to_dict() for k, v in self.changes.items()},
            "label": self.label,
            "app_label": self.app_label,
        }
        if self.kind is Kind.CONFLICT:
            out["entra_ids"] = list(self.entra_ids)
            out["entra_labels"] = list(self.entra_labels)
            out["number"] = self.number
        if self.match_key is not None:
            out["match"] = {"key": self.match_key, "value": self.match_value}
        if self.removal_cause is not None:
            out["removal_cause"] = self.removal_cause
        if self.restorable_until is not None:
            out["restorable_until"] = self.restorable_until.isoformat()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Proposal:
        return cls(
            kind=Kind(d["kind"]),
            entra_id=d.get("entra_id"),
            app_user_id=d.get("app_user_id"),
            reason=d.get("reason", ""),
            changes={
                k: Change(
                    tuple(v["old"]) if isinstance(v["old"], list) else v["old"],
                    tuple(v["new"]) if isinstance(v["new"], list) else v["new"],
                )
                for k, v in (d.get("changes") or {}).items()
            },
            entra_ids=tuple(d.get("entra_ids") or ()),
            match_key=(d.get("match") or {}).get("key"),
            match_value=(d.get("match") or {}).get("value"),
            number=d.get("number"),
            removal_cause=d.get("removal_cause"),
            restorable_until=(
                datetime.fromisoformat(d["restorable_until"]) if d.get("restorable_until") else None
            ),
            label=d.get("label", ""),
            app_label=d.get("app_label", ""),
            entra_labels=tuple(d.get("entra_labels") or ()),
            id=d.get("id", ""),
        )


@dataclass(frozen=True, slots=True)
class Blocked:
    reason: str
    count: int
    proposals: tuple[Proposal, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "count": self.count}


@dataclass(frozen=True, slots=True)
class Plan:
    proposals: tuple[Proposal, ...]
    blocked: tuple[Blocked, ...] = ()
    # counters for status: linked users with a valid Entra match / linked users that could be
    synced: int = 0
    syncable: int = 0

    def summary(self) -> dict[str, int]:
        out = {k.value: 0 for k in Kind}
        for p in self.proposals:
            out[p.kind.value] += 1
        return out

    def by_kind(self, kind: Kind) -> list[Proposal]:
        return [p for p in self.proposals if p.kind is kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "proposals": [p.to_dict() for p in self.proposals],
            "summary": self.summary(),
            "blocked": [b.to_dict() for b in self.blocked],
            "counters": {"synced": self.synced, "syncable": self.syncable},
        }


@dataclass(frozen=True, slots=True)
class EntraSnapshot:
    """What one read of a tenant gave. ``complete`` is False when the read failed part-way or
    some records were unreadable: such a snapshot never yields removals."""

    users: Sequence[EntraUser]
    complete: bool = True
    # ids of the members of the scope groups (transitive), or None for "all users"
    group_members: frozenset[str] | None = None
    invalid: tuple[str, ...] = ()
    # Entra id -> until when a soft-deleted user (delta ``@removed: changed``) can be restored
    soft_deleted: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateView:
    """The part of the sync state the planner needs (read once from Redis)."""

    ignored: frozenset[str] = frozenset()
    # E.164 number -> Entra id chosen by an admin to own it (conflict resolution)
    number_owners: Mapping[str, str] = field(default_factory=dict)
    # the admin confirmed the guard for this run: removals pass through
    removals_confirmed: bool = False
