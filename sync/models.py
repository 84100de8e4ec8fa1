"""Typed records shared by every part of the engine. Users are keyed by Entra object id."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from operator import attrgetter, is_
from typing import Any

import orjson

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


def parse_entra_user(obj: Any) -> EntraUser:
    """Parse one Graph user object (Graph's JSON). Raises GraphDataError naming the problem."""
    if not isinstance(obj, dict):
        raise GraphDataError(f"a user entry is a {type(obj).__name__}, not an object")
    uid = obj.get("id")
    if not isinstance(uid, str) or not uid.strip() or len(uid) > 128:
        raise GraphDataError("a user entry has no valid 'id'")
    enabled = obj.get("accountEnabled", True)
    if not isinstance(enabled, bool):
        raise GraphDataError(f"user {uid}: accountEnabled is not true/false")
    bp = obj.get("businessPhones")
    if bp is not None and not (isinstance(bp, list) and all(isinstance(p, str) for p in bp)):
        raise GraphDataError(f"user {uid}: businessPhones is not a list of strings")
    for key in _STRING_ATTRS:
        v = obj.get(key)
        if v is not None and type(v) is not str and not isinstance(v, str):
            raise GraphDataError(f"user {uid}: {key} is not a string")
    # 100,000 users x ~10 attributes: plain strings and nulls (nearly all) are checked inline
    attrs: dict[str, Any] = {}
    for k, v in obj.items():
        if k == "id" or k.startswith("@odata"):
            continue
        if type(v) is str:
            if len(v) > MAX_ATTR_LEN:
                raise GraphDataError(
                    f"user {uid}: attribute {k} is {len(v)} characters (limit {MAX_ATTR_LEN})"
                )
            attrs[k] = v
        elif v is None or v is True or v is False:
            attrs[k] = v
        elif type(v) is list and len(v) <= MAX_LIST_LEN and all(type(x) is str for x in v):
            for x in v:
                if len(x) > MAX_ATTR_LEN:
                    _check_value(uid, k, x)  # raises, with the usual message
            attrs[k] = v[:]
        else:
            attrs[k] = _check_value(uid, k, v)
    return EntraUser(id=uid, enabled=enabled, attrs=attrs)


def slot_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen slotted dataclass, in field order. Bulk paths (whole
    listings, reads and plans of 100,000 users) build records with them: the dataclass's
    __init__ goes through object.__setattr__ per field (~3-4x slower). Callers set every
    field, so the records equal (and compare, hash and print like) the ones __init__ builds."""
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))


def same_objects(a: Sequence[object], b: Sequence[object]) -> bool:
    """``a`` and ``b`` hold the very same objects (``is``), in the same order: how memos over
    whole listings tell that nothing was replaced."""
    return len(a) == len(b) and all(map(is_, a, b))


_NEW_OBJECT = object.__new__
_SET_ID, _SET_ENABLED, _SET_ATTRS = slot_setters(EntraUser)
# keys whose value parse_entra_user checks by name: a bool or a list there needs its check
_NAMED_KEYS = frozenset((*_STRING_ATTRS, "businessPhones"))
_STRING_KEYS = frozenset(_STRING_ATTRS)


def make_entra_user(uid: str, enabled: bool, attrs: Mapping[str, Any]) -> EntraUser:
    """``EntraUser(uid, enabled, attrs)``, equal in every way, built ~3x faster (bulk paths)."""
    u: EntraUser = _NEW_OBJECT(EntraUser)
    _SET_ID(u, uid)
    _SET_ENABLED(u, enabled)
    _SET_ATTRS(u, attrs)
    return u


def parse_owned_entra_users(
    values: Iterable[Any],
) -> tuple[list[EntraUser], list[GraphDataError]]:
    """``parse_entra_user`` of each JSON-decoded object of a page that the caller gives away:
    the same checks, the same errors and equal users, but each dict itself becomes ``attrs``
    (its ``"id"`` removed) and its lists are kept, not copied. Returns the users and, in
    order, the errors of the unreadable entries.

    The common shape (keys sorting from ``"A"`` on, so none starts with ``@``; values that are
    strings, nulls, booleans or short lists of strings; ``id`` and the named attributes
    well-typed) is checked here in one pass per user; anything else goes to
    ``parse_entra_user`` untouched, which raises the usual error or copies as usual.
    """
    users: list[EntraUser] = []
    errors: list[GraphDataError] = []
    keys: frozenset[str] = frozenset()  # keys already known to sort from "A" on (no "@...")
    for obj in values:
        if type(obj) is not dict:
            pass
        elif obj.keys() <= keys or (min(obj) >= "A" and (keys := frozenset(obj))):
            # (an empty dict is a subset: never min() of nothing)
            uid = obj.get("id")
            enabled = obj.get("accountEnabled", True)
            if (
                type(uid) is str
                and 0 < len(uid) <= 128
                and not uid.isspace()
                and (enabled is True or enabled is False)
            ):
                for k, v in obj.items():
                    t = type(v)
                    if t is str:
                        if len(v) > MAX_ATTR_LEN or k == "businessPhones":
                            break
                    elif v is None:
                        continue
                    elif t is bool:
                        if k in _NAMED_KEYS:
                            break
                    elif t is list:
                        if len(v) > MAX_LIST_LEN or k in _STRING_KEYS:
                            break
                        for x in v:
                            if type(x) is not str or len(x) > MAX_ATTR_LEN:
                                break
                        else:
                            continue
                        break
                    else:
                        break
                else:
                    del obj["id"]
                    users.append(make_entra_user(uid, enabled, obj))
                    continue
        try:
            users.append(parse_entra_user(obj))
        except GraphDataError as e:
            errors.append(e)
    return users, errors


def parse_owned_entra_user(obj: Any) -> EntraUser:
    """``parse_owned_entra_users`` of one object: raises GraphDataError naming the problem."""
    users, errors = parse_owned_entra_users((obj,))
    if errors:
        raise errors[0]
    return users[0]


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


# What json.dumps(ensure_ascii=True) escapes beyond what orjson escapes: DEL and every
# character outside ASCII (the control characters and '"' and '\\' both escape alike).
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x00-\x7e]")


def _json_ascii_escape(m: re.Match[str]) -> str:
    """json's ensure_ascii form of one character: \\uXXXX (lower-case hex), a surrogate pair
    beyond the BMP."""
    n = ord(m.group())
    if n < 0x10000:
        return f"\\u{n:04x}"
    n -= 0x10000
    return f"\\u{0xD800 | (n >> 10):04x}\\u{0xDC00 | (n & 0x3FF):04x}"


# Types orjson writes exactly as json.dumps does (integers beyond 64 bits make orjson raise);
# floats, subclasses and other objects are written differently or not at all.
_ID_SCALARS = frozenset({str, type(None), bool, int})


def _id_plain(v: Any) -> bool:
    """A value orjson writes exactly as json.dumps does: a string, null, boolean, integer, or
    a list/tuple of strings."""
    t = type(v)
    if t in _ID_SCALARS:
        return True
    if t is tuple or t is list:
        return all(type(e) is str for e in v)
    return False


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
    removal_cause: str | None = None  # "deleted" | "disabled" | "out_of_scope"
    label: str = ""  # a display name for cards and logs (from Entra, untrusted)
    app_label: str = ""  # the directory user's name (not part of the id)
    entra_labels: tuple[str, ...] = ()  # conflicts: names of entra_ids, same order
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.compute_id())

    def compute_id(self) -> str:
        """sha256 of the canonical JSON of the fields that define the operation: ``json.dumps``
        with ``sort_keys``, compact separators and ``ensure_ascii`` (ids are stored and posted
        on cards, so these bytes never change). The usual shape (strings, nulls, booleans,
        integers and lists of strings) is written with orjson and its non-ASCII characters
        escaped the way ``json`` escapes them, which gives the same bytes; anything else goes
        through ``json`` itself."""
        scalar = _ID_SCALARS
        entra_id, app_id, number, cause = (
            self.entra_id,
            self.app_user_id,
            self.number,
            self.removal_cause,
        )
        entra_ids = self.entra_ids
        if (
            type(entra_id) in scalar
            and type(app_id) in scalar
            and type(number) in scalar
            and type(cause) in scalar
            and (not entra_ids or all(type(e) is str for e in entra_ids))
        ):
            changes: dict[str, dict[str, Any]] = {}
            for k, c in self.changes.items():
                old, new = c.old, c.new
                if (
                    type(k) is not str
                    or (type(old) not in scalar and not _id_plain(old))
                    or (type(new) not in scalar and not _id_plain(new))
                ):
                    return self._json_id()
                changes[k] = {"old": old, "new": new}
            body = [self.kind.value, entra_id, app_id, sorted(entra_ids), changes, number, cause]
            try:
                raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
            except orjson.JSONEncodeError:  # lone surrogates, integers beyond 64 bits
                pass
            else:
                if not raw.isascii() or b"\x7f" in raw:
                    raw = _NOT_PRINTABLE_ASCII.sub(_json_ascii_escape, raw.decode()).encode()
                return hashlib.sha256(raw).hexdigest()[:20]
        return self._json_id()

    def _json_id(self) -> str:
        """``compute_id`` through ``json`` (the reference; any field type)."""
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
            label=d.get("label", ""),
            app_label=d.get("app_label", ""),
            entra_labels=tuple(d.get("entra_labels") or ()),
            id=d.get("id", ""),
        )

    def with_id(self, pid: str) -> Proposal:
        """The same proposal under another (non-empty) id: ``dataclasses.replace(self,
        id=pid)`` without its per-field keyword handling (every proposal of a plan is scoped
        this way)."""
        return proposal_of(*_PROPOSAL_BODY(self), pid)


_PROPOSAL_SETTERS = slot_setters(Proposal)
# every field but ``id``, which is the last one (checked here and in the tests)
_PROPOSAL_FIELDS = tuple(f.name for f in fields(Proposal))
assert _PROPOSAL_FIELDS[-1] == "id"
_PROPOSAL_BODY = attrgetter(*_PROPOSAL_FIELDS[:-1])


def proposal_of(*values: Any) -> Proposal:
    """``Proposal(*values)`` for all 14 fields, the id included (not empty, so there is no
    ``compute_id`` to run), built by the slot setters (``slot_setters``)."""
    p: Proposal = _NEW_OBJECT(Proposal)
    for setter, value in zip(_PROPOSAL_SETTERS, values, strict=True):
        setter(p, value)
    return p


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
class SnapshotDiff:
    """How a snapshot's users differ from those of an earlier snapshot of the same reader:
    ``base`` is that snapshot's ``token``; ``records``: every id added, replaced or removed
    since, with its record now (None: removed). Every other id has the very same record
    object. A planner that planned the ``base`` snapshot re-plans only these ids."""

    base: object
    records: Mapping[str, EntraUser | None]


@dataclass(frozen=True, slots=True)
class EntraSnapshot:
    """What one read of a tenant gave. ``complete`` is False when the read failed part-way or
    some records were unreadable: such a snapshot never yields removals. ``token`` (any
    object, compared by identity) names this set of users for a later ``SnapshotDiff``."""

    users: Sequence[EntraUser]
    complete: bool = True
    # ids of the members of the scope groups (transitive), or None for "all users"
    group_members: frozenset[str] | None = None
    invalid: tuple[str, ...] = ()
    token: object = field(default=None, compare=False)
    since: SnapshotDiff | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class StateView:
    """The part of the sync state the planner needs (read once from Redis)."""

    ignored: frozenset[str] = frozenset()
    # E.164 number -> Entra id chosen by an admin to own it (conflict resolution)
    number_owners: Mapping[str, str] = field(default_factory=dict)
    # the admin confirmed the guard for this run: removals pass through
    removals_confirmed: bool = False
