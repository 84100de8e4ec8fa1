"""A simulated Entra tenant: Microsoft Graph (users, delta, group members) and the token
endpoint, served over real HTTP by aiohttp.

It speaks the shapes Microsoft documents (user-list, user-delta, delta-query-overview,
group-list-transitivemembers): ``$select``/``$top``/``$filter``, ``@odata.nextLink`` paging
with an opaque skiptoken, ``/users/delta`` rounds in which a changed user carries only the
properties that changed (nulls of unchanged properties omitted), ``@removed`` with reason
``changed`` for a soft delete and ``deleted`` once purged, every change in its own entry (a
user can come twice in one round), 410 with ``Location`` for an expired delta link;
transitive members only through the OData cast with ``ConsistencyLevel: eventual`` and
``$count=true``; bearer tokens issued by its own token endpoint; switchable faults (429 storms
with integer, fractional or HTTP-date Retry-After, 5xx, AADSTS errors, 403, expired delta
links, malformed users). ``full_delta_objects=True`` sends every delta object as a full
projection instead. Pages are served from caches of pre-serialised JSON.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from sync.devtools.odata_filter import FilterRefused, FilterRequest, parse_filter
from sync.errors import InputError
from sync.files import transitive_members
from sync.retry import utc_now

log = logging.getLogger(__name__)

USER_TYPE = "#microsoft.graph.user"
MAX_TOP = 999
DEFAULT_TOP = 100
DEFAULT_DELTA_PAGE = 200

# What Graph returns for a user when no $select is given.
DEFAULT_SELECT: tuple[str, ...] = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
_LIST_ATTRS = frozenset({"businessPhones", "imAddresses", "otherMails", "proxyAddresses"})
_ATTR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ENABLED_FILTER = re.compile(r"^\s*accountEnabled\s+eq\s+(true|false)\s*$", re.IGNORECASE)

MALFORMED_USER: dict[str, Any] = {
    "id": "00000000-bad0-4bad-8bad-000000000000",
    "displayName": "Malformed User",
    "accountEnabled": "sometimes",  # not a boolean: the client must reject this record
    "businessPhones": "+46 8 123 456",  # not a list
}

AADSTS_INVALID_SECRET = 7000215
AADSTS_APP_NOT_FOUND = 700016


@dataclass
class Faults:
    """Switches for the failures a real tenant produces. Mutable: tests flip them mid-run."""

    throttle_every: int | None = None  # every Nth Graph request answers 429
    retry_after: float = 1  # seconds, the Retry-After of a 429 (fractions are sent as such)
    retry_after_as_date: bool = False  # send it as an HTTP-date (the simulator's clock + it)
    fail_at_request: int | None = None  # the Graph request (1-based) that starts failing
    fail_status: int = 503  # 500, 503 or 504
    fail_times: int = 1  # how many consecutive requests fail from fail_at_request on
    token_error_code: int | None = None  # HTTP 400/401 (AADSTS7000215), or an AADSTS number
    forbidden: bool = False  # Graph answers 403 Authorization_RequestDenied
    delta_expired: bool = False  # delta/deltatoken requests answer 410 syncStateNotFound
    malformed: bool = False  # the first page of users carries a malformed user
    applications_forbidden: bool = False  # no Application.Read.All: applications answer 403
    page_latency: float = 0.0  # seconds each users or delta page takes (Graph's own time)


def _b64(obj: Any) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(token: str) -> Any:
    pad = "=" * (-len(token) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(token + pad))
    except (binascii.Error, ValueError):
        return None


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log: a user put (``changed``: the properties that changed, all
    of them for a new or restored user; ``user``: the whole user then) or removed
    (``reason``: ``changed`` = soft delete, ``deleted`` = purged)."""

    version: int
    uid: str
    changed: Mapping[str, Any] | None = None
    user: Mapping[str, Any] | None = None
    reason: str | None = None


class TenantSim:
    """A tenant's users and groups, mutable for tests, with fault switches and counters.

    Every mutation appends a :class:`Change`; a delta round replays the changes of its window
    in order. ``requests`` counts requests by kind: ``users``, ``delta``, ``members``,
    ``token``, ``discovery``, and ``graph`` (every Graph request, whatever its answer).
    A user without ``accountEnabled`` is stored enabled (Entra's default).
    """

    def __init__(
        self,
        users: Iterable[Mapping[str, Any]] = (),
        groups: Iterable[Mapping[str, Any]] = (),
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        client_certificate: str | None = None,
        faults: Faults | None = None,
        delta_page_size: int = DEFAULT_DELTA_PAGE,
        full_delta_objects: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._users: dict[str, dict[str, Any]] = {}
        self._soft_deleted: dict[str, dict[str, Any]] = {}
        self._changes: list[Change] = []
        self._version = 0
        self._groups: dict[str, dict[str, Any]] = {}
        self.client_id = client_id
        self.client_secret = client_secret
        # the app's certificate (PEM, public part): client assertions are checked against it
        self.client_certificate = client_certificate
        # application objects by appId (GET /applications(appId='...')); see _application
        self.applications: dict[str, dict[str, Any]] = {}
        self.faults = faults if faults is not None else Faults()
        self.delta_page_size = delta_page_size
        self.full_delta_objects = full_delta_objects
        self.sleep = sleep  # how a page waits out faults.page_latency
        self.now = now  # the clock of an HTTP-date Retry-After
        self.requests: Counter[str] = Counter()
        self._tokens: set[str] = set()
        self.filter_log: list[FilterRequest] = []  # every /users request with a $filter
        self.mail = MailSim()  # sendMail: the mails sent, and a denial switch
        # caches (dropped on mutation)
        self._order: list[str] | None = None
        self._proj: dict[tuple[str, ...], dict[str, bytes]] = {}
        self._listing: dict[tuple[tuple[str, ...], bool | None], list[bytes]] = {}
        self._delta_listing: dict[tuple[tuple[str, ...], int, int], list[bytes]] = {}
        self._members: dict[str, list[str]] = {}
        for u in users:
            uid = self._check_id(u)
            self._users[uid] = _stored(u)
        for g in groups:
            gid = g.get("id")
            if not isinstance(gid, str):
                raise InputError("a group has no string 'id'")
            self._groups[gid] = dict(g)

    # --- data ----------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    @property
    def user_ids(self) -> list[str]:
        return list(self._users)

    def user(self, uid: str) -> dict[str, Any] | None:
        u = self._users.get(uid)
        return dict(u) if u is not None else None

    @staticmethod
    def _check_id(obj: Mapping[str, Any]) -> str:
        uid = obj.get("id")
        if not isinstance(uid, str) or not uid:
            raise InputError("a user has no string 'id'")
        return uid

    def _log(self, change: Change) -> None:
        self._changes.append(change)
        self._order = None
        self._listing.clear()
        self._delta_listing.clear()
        self._members.clear()
        for per_user in self._proj.values():
            per_user.pop(change.uid, None)

    def upsert_user(self, obj: Mapping[str, Any]) -> None:
        """Add or replace a user (Graph's JSON). A replaced user keeps its place in listings;
        the next delta round carries only the properties that changed."""
        uid = self._check_id(obj)
        new = _stored(obj)
        old = self._users.get(uid)
        if old is None:
            self._soft_deleted.pop(uid, None)
            changed: dict[str, Any] = new  # the whole user
        else:
            changed = {k: new.get(k) for k in {**old, **new} if old.get(k) != new.get(k)}
            if not changed:
                return
        self._version += 1
        self._users[uid] = new
        self._log(Change(self._version, uid, changed=changed, user=new))

    def update_user(self, uid: str, **attrs: Any) -> None:
        """Change some attributes of an existing user."""
        cur = self._users.get(uid)
        if cur is None:
            raise KeyError(uid)
        self.upsert_user({**cur, **attrs})

    def delete_user(self, uid: str) -> None:
        """Delete a user as Entra does: into the deleted items, restorable (the next delta
        round reports ``@removed: changed``)."""
        user = self._users.pop(uid)
        self._soft_deleted[uid] = user
        self._version += 1
        self._log(Change(self._version, uid, reason="changed"))

    def restore_user(self, uid: str) -> None:
        """Restore a soft-deleted user (the next delta round carries the whole user)."""
        self.upsert_user(self._soft_deleted[uid])

    def purge_user(self, uid: str) -> None:
        """Delete a user for good (``@removed: deleted``), soft-deleted or not."""
        if self._users.pop(uid, None) is None and self._soft_deleted.pop(uid, None) is None:
            raise KeyError(uid)
        self._soft_deleted.pop(uid, None)
        self._version += 1
        self._log(Change(self._version, uid, reason="deleted"))

    def set_group(self, gid: str, members: Iterable[str], display_name: str = "") -> None:
        self._groups[gid] = {
            "id": gid,
            "displayName": display_name or gid,
            "members": list(members),
        }
        self._members.clear()

    # --- tokens --------------------------------------------------------------------------

    def issue_token(self) -> str:
        """A bearer token Graph accepts (what the token endpoint hands out)."""
        tok = "sim." + secrets.token_urlsafe(24)
        self._tokens.add(tok)
        return tok

    def revoke_tokens(self) -> None:
        """Every issued token becomes invalid (Graph answers 401 until a new one is fetched)."""
        self._tokens.clear()

    def token_valid(self, token: str) -> bool:
        return token in self._tokens

    # --- projections (cached) ------------------------------------------------------------

    def user_json(self, uid: str, select: tuple[str, ...]) -> bytes:
        """One user's projected JSON (as a listing page carries it)."""
        return self._user_bytes(uid, select)

    def _user_bytes(self, uid: str, select: tuple[str, ...]) -> bytes:
        per_user = self._proj.get(select)
        if per_user is None:
            per_user = self._proj[select] = {}
        b = per_user.get(uid)
        if b is None:
            b = per_user[uid] = _dumps(project(self._users[uid], select))
        return b

    def _ordered_ids(self) -> list[str]:
        if self._order is None:
            self._order = list(self._users)
        return self._order

    def listing(self, select: tuple[str, ...], enabled: bool | None) -> list[bytes]:
        """Projected JSON of every user (optionally filtered on accountEnabled), in order."""
        key = (select, enabled)
        got = self._listing.get(key)
        if got is None:
            ids = self._ordered_ids()
            if enabled is not None:
                ids = [i for i in ids if self._users[i]["accountEnabled"] is enabled]
            got = self._listing[key] = [self._user_bytes(i, select) for i in ids]
        return got

    def delta_listing(self, select: tuple[str, ...], since: int, upto: int) -> list[bytes]:
        """The entries of a delta round over the changes in (since, upto], in order (``since``
        -1: the initial round, every user as it is now, no removals)."""
        key = (select, since, upto)
        got = self._delta_listing.get(key)
        if got is None:
            if since < 0:
                got = [_dumps(self._delta_object(u, u, select)) for u in self._users.values()]
            else:
                got = []
                for c in self._changes:
                    if since < c.version <= upto:
                        entry = self._delta_entry(c, select)
                        if entry is not None:
                            got.append(_dumps(entry))
            self._delta_listing[key] = got
        return got

    def _delta_entry(self, c: Change, select: tuple[str, ...]) -> dict[str, Any] | None:
        if c.reason is not None:
            return {"id": c.uid, "@removed": {"reason": c.reason}}
        assert c.changed is not None and c.user is not None
        if not any(k in select for k in c.changed):
            return None  # Graph tracks the selected properties only
        return self._delta_object(c.user, c.changed, select)

    def _delta_object(
        self, user: Mapping[str, Any], changed: Mapping[str, Any], select: tuple[str, ...]
    ) -> dict[str, Any]:
        """A delta object: the full projection (``full_delta_objects``), else the changed
        selected properties, with nulls only where a property was cleared."""
        if self.full_delta_objects:
            return project(user, select)
        out = {k: changed[k] for k in select if k in changed and k != "id"}
        if user is changed:  # a whole user (initial round, new or restored): nulls omitted
            out = {k: v for k, v in out.items() if v is not None}
        out["id"] = user["id"]
        return out

    def group_member_ids(self, gid: str) -> list[str] | None:
        """Transitive user members of a group (nested groups expanded), or None if unknown."""
        if gid not in self._groups:
            return None
        got = self._members.get(gid)
        if got is None:
            groups = {g: grp.get("members") or () for g, grp in self._groups.items()}
            got = [m for m in transitive_members(groups, gid) if m in self._users]
            self._members[gid] = got
        return got

    def group_listing(self, gid: str, select: tuple[str, ...]) -> list[bytes] | None:
        ids = self.group_member_ids(gid)
        if ids is None:
            return None
        typed = b'{"@odata.type":' + _dumps(USER_TYPE) + b","
        return [typed + self._user_bytes(i, select)[1:] for i in ids]


def _stored(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A user as the simulator keeps it: ``accountEnabled`` is always there (Entra's default
    is true)."""
    return {"accountEnabled": True, **obj}


def project(user: Mapping[str, Any], select: tuple[str, ...]) -> dict[str, Any]:
    """A Graph user as Graph returns it for ``$select``: the selected properties (null when
    unset; an empty list for list properties), ``id`` always."""
    out: dict[str, Any] = {}
    for name in select:
        if name in user:
            out[name] = user[name]
        else:
            out[name] = [] if name in _LIST_ATTRS else None
    out["id"] = user["id"]
    return out


def load_tenant_file(path: str | Path) -> TenantSim:
    """Read a tenant file (DESIGN.md §5). Raises InputError naming the file and the problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: cannot read the tenant file ({e.strerror})") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f'{p}: expected an object with a "users" list')
    users = data.get("users")
    if not isinstance(users, list):
        raise InputError(f'{p}: "users" must be a list of Graph user objects')
    seen: set[str] = set()
    for i, u in enumerate(users):
        if not isinstance(u, dict):
            raise InputError(f"{p}: users[{i}] is not an object")
        uid = u.get("id")
        if not isinstance(uid, str) or not uid:
            raise InputError(f'{p}: users[{i}] has no string "id"')
        if uid in seen:
            raise InputError(f'{p}: users[{i}] repeats the id "{uid}"')
        seen.add(uid)
    groups = data.get("groups", [])
    if not isinstance(groups, list):
        raise InputError(f'{p}: "groups" must be a list')
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or not isinstance(g.get("id"), str):
            raise InputError(f'{p}: groups[{i}] needs a string "id"')
        members = g.get("members", [])
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise InputError(f"{p}: groups[{i}].members must be a list of ids")
    return TenantSim(users, groups)


def synthetic_users(count: int, *, start: int = 0, disabled_every: int = 0) -> list[dict[str, Any]]:
    """Deterministic Graph user objects for tests and benchmarks."""
    out = []
    for n in range(start, start + count):
        out.append(
            {
                "id": f"{n:08x}-0000-4000-8000-{n:012x}",
                "displayName": f"User {n}",
                "givenName": "User",
                "surname": f"N{n}",
                "mail": f"user{n}@contoso.example",
                "userPrincipalName": f"user{n}@contoso.example",
                "mobilePhone": f"+4670{n:07d}",
                "businessPhones": [f"+468{n:07d}"],
                "department": ("Sales", "Support", "R&D")[n % 3],
                "jobTitle": "Agent",
                "accountEnabled": not (disabled_every and n % disabled_every == 0),
            }
        )
    return out


# --- HTTP ------------------------------------------------------------------------------

SIM_KEY: web.AppKey[TenantSim] = web.AppKey("tenant_sim", TenantSim)


def _graph_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"request-id": secrets.token_hex(8), "date": "2026-01-01T00:00:00"},
        }
    }
    return web.Response(
        status=status, body=_dumps(body), content_type="application/json", headers=headers
    )


def _parse_select(raw: str | None) -> tuple[str, ...] | web.Response:
    if raw is None:
        return DEFAULT_SELECT
    names: list[str] = []
    for part in raw.split(","):
        name = part.strip()
        if not _ATTR_NAME.match(name):
            return _graph_error(
                400, "BadRequest", f"Parsing OData Select and Expand failed: '{name}' is invalid."
            )
        if name != "id" and name not in names:
            names.append(name)
    return (*names, "id")


def _parse_top(raw: str | None, default: int) -> int | web.Response:
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError:
        return _graph_error(400, "BadRequest", f"Invalid page size specified: '{raw}'.")
    if not 1 <= top <= MAX_TOP:
        return _graph_error(
            400, "Request_UnsupportedQuery", f"Invalid page size specified: '{raw}'. Must be 1-999."
        )
    return top


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _page_body(context: str, items: list[bytes], extra: Mapping[str, Any]) -> bytes:
    tail = b"".join(b',"' + k.encode() + b'":' + _dumps(v) for k, v in extra.items())
    return (
        b'{"@odata.context":'
        + _dumps(context)
        + b',"value":['
        + b",".join(items)
        + b"]"
        + tail
        + b"}"
    )


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def _graph_gate(request: web.Request, kind: str, *, reads: bool = True) -> web.Response | None:
    """Counting, authentication and injected faults shared by every Graph endpoint
    (``forbidden``, a missing read permission, only where ``reads``)."""
    sim = request.app[SIM_KEY]
    sim.requests["graph"] += 1
    sim.requests[kind] += 1
    n = sim.requests["graph"]
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not sim.token_valid(auth[7:].strip()):
        return _graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token is empty." if not auth else "Access token validation failure.",
            **{"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
        )
    f = sim.faults
    if f.fail_at_request is not None and f.fail_at_request <= n < f.fail_at_request + f.fail_times:
        status = f.fail_status
        code = {500: "generalException", 504: "GatewayTimeout"}.get(status, "serviceNotAvailable")
        return _graph_error(status, code, "The service is temporarily unavailable.")
    if f.throttle_every and n % f.throttle_every == 0:
        if f.retry_after_as_date:
            when = sim.now() + timedelta(seconds=f.retry_after)
            retry_after = format_datetime(when, usegmt=True)
        else:
            retry_after = f"{f.retry_after:g}"
        return _graph_error(
            429, "TooManyRequests", "Too many requests.", **{"Retry-After": retry_after}
        )
    if f.forbidden and reads:
        return _graph_error(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    return None


def _users_filter(
    sim: TenantSim, request: web.Request, flt: str | None, advanced: bool
) -> tuple[bool | None, list[str] | None] | web.Response:
    """What a ``$filter`` on /users takes: (accountEnabled eq …, or None; the ids of the users
    any other filter takes, or None for no such filter), or Graph's error for a refused one."""
    if flt is None:
        return None, None
    sim.filter_log.append(FilterRequest(flt, advanced, request.headers.get("ConsistencyLevel")))
    m = _ENABLED_FILTER.match(flt)
    if m is not None:
        return m.group(1).lower() == "true", None
    try:
        take = parse_filter(flt, advanced=advanced)
    except FilterRefused as e:
        return _graph_error(e.status, e.code, e.message)
    return None, [i for i in sim.user_ids if take(sim.user(i) or {})]


def _users_next_link(
    origin: str, q: Mapping[str, str], select: Sequence[str], top: int, offset: int
) -> str:
    """The ``@odata.nextLink`` of a /users page: the same query, the next ``$skiptoken``."""
    params = [f"$top={top}"]
    if q.get("$select") is not None:
        params.append(f"$select={','.join(select)}")
    if q.get("$filter") is not None:
        params.append("$filter=" + quote(q["$filter"], safe=""))
    if q.get("$count") is not None:
        params.append(f"$count={q['$count']}")
    params.append(f"$skiptoken={_b64({'o': offset})}")
    return f"{origin}/v1.0/users?" + "&".join(params)


async def _users(request: web.Request) -> web.Response:
    denied = _graph_gate(request, "users")
    if denied is not None:
        return denied
    sim = request.app[SIM_KEY]
    if sim.faults.page_latency > 0:
        await sim.sleep(sim.faults.page_latency)
    q = request.query
    select = _parse_select(q.get("$select"))
    if isinstance(select, web.Response):
        return select
    top = _parse_top(q.get("$top"), DEFAULT_TOP)
    if isinstance(top, web.Response):
        return top
    flt = q.get("$filter")
    advanced = request.headers.get("ConsistencyLevel", "").lower() == "eventual" and (
        q.get("$count", "").lower() == "true"
    )
    taken = _users_filter(sim, request, flt, advanced)
    if isinstance(taken, web.Response):
        return taken
    enabled, matching = taken
    offset = 0
    if "$skiptoken" in q:
        state = _unb64(q["$skiptoken"])
        if not isinstance(state, dict) or not isinstance(state.get("o"), int):
            return _graph_error(400, "Directory_ExpiredPageToken", "The page token is invalid.")
        offset = state["o"]
    if matching is None:
        items = sim.listing(select, enabled)
    else:
        items = [sim.user_json(i, select) for i in matching]
    page = items[offset : offset + top]
    if offset == 0 and sim.faults.malformed:
        page = [_dumps(MALFORMED_USER), *page]
    origin = _origin(request)
    extra: dict[str, Any] = {}
    if advanced:
        extra["@odata.count"] = len(items)
    if offset + top < len(items):
        extra["@odata.nextLink"] = _users_next_link(origin, q, select, top, offset + top)
    context = f"{origin}/v1.0/$metadata#users({','.join(select)})"
    return _json(_page_body(context, page, extra))


async def _delta(request: web.Request) -> web.Response:
    denied = _graph_gate(request, "delta")
    if denied is not None:
        return denied
    sim = request.app[SIM_KEY]
    if sim.faults.page_latency > 0:
        await sim.sleep(sim.faults.page_latency)
    q = request.query
    origin = _origin(request)
    page_size = sim.delta_page_size
    prefer = request.headers.get("Prefer", "")
    m = re.search(r"odata\.maxpagesize=(\d+)", prefer)
    if m:
        page_size = max(1, min(MAX_TOP, int(m.group(1))))
    if q.get("$deltatoken") == "latest":
        # Graph's "start tracking from now": no users, only a deltaLink for later changes
        parsed = _parse_select(q.get("$select"))
        if isinstance(parsed, web.Response):
            return parsed
        tok = _b64({"s": list(parsed), "f": sim.version, "t": sim.version, "o": 0})
        latest = {"@odata.deltaLink": f"{origin}/v1.0/users/delta?$deltatoken={tok}"}
        context = f"{origin}/v1.0/$metadata#users({','.join(parsed)})"
        return _json(_page_body(context, [], latest))
    if "$deltatoken" in q or "$skiptoken" in q:
        if sim.faults.delta_expired:
            return _graph_error(
                410,
                "syncStateNotFound",
                "The sync state is not found or has expired. Start a new delta round.",
                Location=f"{origin}/v1.0/users/delta?$deltatoken=",
            )
        token = q.get("$deltatoken") or q.get("$skiptoken") or ""
        state = _unb64(token)
        if not isinstance(state, dict) or not {"s", "f", "t", "o"} <= set(state):
            return _graph_error(410, "syncStateNotFound", "The delta token is not valid.")
        select = tuple(state["s"])
        if "$deltatoken" in q:
            since, upto, offset = int(state["t"]), sim.version, 0
        else:
            since, upto, offset = int(state["f"]), int(state["t"]), int(state["o"])
    else:
        parsed = _parse_select(q.get("$select"))
        if isinstance(parsed, web.Response):
            return parsed
        select, since, upto, offset = parsed, -1, sim.version, 0
    items = sim.delta_listing(select, since, upto)
    page = items[offset : offset + page_size]
    if offset == 0 and since < 0 and sim.faults.malformed:
        page = [_dumps(MALFORMED_USER), *page]
    extra: dict[str, str] = {}
    if offset + page_size < len(items):
        tok = _b64({"s": list(select), "f": since, "t": upto, "o": offset + page_size})
        extra["@odata.nextLink"] = f"{origin}/v1.0/users/delta?$skiptoken={tok}"
    else:
        tok = _b64({"s": list(select), "f": since, "t": upto, "o": 0})
        extra["@odata.deltaLink"] = f"{origin}/v1.0/users/delta?$deltatoken={tok}"
    context = f"{origin}/v1.0/$metadata#users({','.join(select)})"
    return _json(_page_body(context, page, extra))


async def _members(request: web.Request) -> web.Response:
    denied = _graph_gate(request, "members")
    if denied is not None:
        return denied
    sim = request.app[SIM_KEY]
    gid = request.match_info["gid"]
    q = request.query
    if request.headers.get("ConsistencyLevel", "").lower() != "eventual" or (
        q.get("$count", "").lower() != "true"
    ):
        return _graph_error(
            400,
            "Request_UnsupportedQuery",
            "The OData cast microsoft.graph.user is an advanced query: it needs the "
            "ConsistencyLevel header set to eventual and $count=true.",
        )
    select = _parse_select(q.get("$select"))
    if isinstance(select, web.Response):
        return select
    top = _parse_top(q.get("$top"), DEFAULT_TOP)
    if isinstance(top, web.Response):
        return top
    items = sim.group_listing(gid, select)
    if items is None:
        return _graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{gid}' does not exist or one of its queried reference-property objects "
            "are not present.",
        )
    offset = 0
    if "$skiptoken" in q:
        state = _unb64(q["$skiptoken"])
        if not isinstance(state, dict) or not isinstance(state.get("o"), int):
            return _graph_error(400, "Directory_ExpiredPageToken", "The page token is invalid.")
        offset = state["o"]
    page = items[offset : offset + top]
    origin = _origin(request)
    extra: dict[str, Any] = {}
    if offset + top < len(items):
        params = [f"$top={top}", "$count=true"]
        if q.get("$select") is not None:
            params.append(f"$select={','.join(select)}")
        params.append(f"$skiptoken={_b64({'o': offset + top})}")
        extra["@odata.nextLink"] = (
            f"{origin}/v1.0/groups/{gid}/transitiveMembers/microsoft.graph.user?" + "&".join(params)
        )
    extra["@odata.count"] = len(items)
    context = f"{origin}/v1.0/$metadata#users({','.join(select)})"
    return _json(_page_body(context, page, extra))


def _token_error(status: int, error: str, code: int, text: str) -> web.Response:
    trace = secrets.token_hex(8)
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Timestamp: 2026-01-01",
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": trace,
        "correlation_id": secrets.token_hex(8),
        "error_uri": "https://login.microsoftonline.com/error?code=" + str(code),
    }
    return web.Response(status=status, body=_dumps(body), content_type="application/json")


async def _token(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    sim.requests["token"] += 1
    form = await request.post()
    f = sim.faults
    if f.token_error_code is not None:
        # an HTTP status (400/401: invalid secret), or an AADSTS number (>= 1000)
        code = f.token_error_code
        status, aadsts = (code, AADSTS_INVALID_SECRET) if code < 1000 else (401, code)
        if aadsts != AADSTS_INVALID_SECRET:
            return _token_error(status, "invalid_request", aadsts, "Simulated sign-in failure.")
        return _token_error(
            status,
            "invalid_client",
            AADSTS_INVALID_SECRET,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            "client secret value, not the client secret ID, for a secret added to app "
            f"'{form.get('client_id', '')}'.",
        )
    if form.get("grant_type") != "client_credentials":
        return _token_error(
            400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
        )
    client_id = str(form.get("client_id", ""))
    if sim.client_id is not None and client_id != sim.client_id:
        return _token_error(
            400,
            "unauthorized_client",
            AADSTS_APP_NOT_FOUND,
            f"Application with identifier '{client_id}' was not found in the directory.",
        )
    if "client_assertion" in form or "client_assertion_type" in form:
        refused = _check_client_assertion(request, form, client_id)
        if refused is not None:
            return refused
    elif sim.client_secret is not None and form.get("client_secret") != sim.client_secret:
        return _token_error(
            401,
            "invalid_client",
            AADSTS_INVALID_SECRET,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            "client secret value, not the client secret ID, for a secret added to app "
            f"'{client_id}'.",
        )
    scope = str(form.get("scope", ""))
    if not any(s.endswith("/.default") for s in scope.split()):
        return _token_error(
            400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid."
        )
    body = {
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": sim.issue_token(),
    }
    return _json(_dumps(body))


CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AADSTS_ASSERTION_INVALID = 700027  # signature / unregistered certificate
AADSTS_ASSERTION_EXPIRED = 700024  # outside its valid time range


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _check_client_assertion(
    request: web.Request, form: Mapping[str, Any], client_id: str
) -> web.Response | None:
    """Entra's certificate-credential check (learn.microsoft.com/entra/identity-platform/
    certificate-credentials): ``client_assertion_type`` is the jwt-bearer URN; the assertion
    is a JWT (PS256, or RS256 with the older SHA-1 ``x5t``) whose header names the registered
    certificate by thumbprint (``x5t#S256`` or ``x5t``), signed by its key, with ``aud`` the
    token endpoint, ``iss`` = ``sub`` = the client id, ``jti``, and ``nbf`` <= now < ``exp``."""
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    sim = request.app[SIM_KEY]
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        return _token_error(
            400,
            "invalid_request",
            50027,
            f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}.",
        )
    assertion = str(form.get("client_assertion", ""))

    def invalid(text: str, code: int = AADSTS_ASSERTION_INVALID) -> web.Response:
        return _token_error(401, "invalid_client", code, text)

    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return invalid("The client assertion is not a JWT.")
    if sim.client_certificate is None:
        return invalid("No certificate is registered for the app; the assertion was not accepted.")
    cert = x509.load_pem_x509_certificate(sim.client_certificate.encode())
    known = {
        "x5t#S256": _b64url(cert.fingerprint(hashes.SHA256())),
        "x5t": _b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303 - Entra's legacy id
    }
    named = [k for k in ("x5t#S256", "x5t") if k in header]
    # base64url, with or without its "=" padding (MSAL sends it padded)
    if not named or any(str(header[k]).rstrip("=") != known[k] for k in named):
        return invalid(
            "The certificate with identifier used to sign the client assertion is not "
            f"registered on application. [Reason - The key was not found., Thumbprint of key "
            f"used by client: '{header.get('x5t#S256') or header.get('x5t') or ''}']"
        )
    if header.get("alg") not in ("PS256", "RS256"):
        return invalid(f"The client assertion uses alg {header.get('alg')!r}; PS256 expected.")
    audience = f"https://{request.host}/{request.match_info['tenant']}/oauth2/v2.0/token"
    try:
        claims = jwt.decode(
            assertion,
            key=cert.public_key(),  # type: ignore[arg-type]
            algorithms=[str(header["alg"])],
            audience=audience,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidAudienceError:
        return invalid(f"The audience of the client assertion must be {audience}.")
    except jwt.PyJWTError:
        return invalid("Client assertion failed signature validation.")
    if claims.get("iss") != client_id or claims.get("sub") != client_id or not claims.get("jti"):
        return invalid("The client assertion's iss and sub must be the client id, with a jti.")
    now = sim.now().timestamp()
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int | float) or not isinstance(nbf, int | float):
        return invalid("The client assertion needs numeric exp and nbf claims.")
    if not nbf - 300 <= now < exp:  # Entra allows 5 minutes of clock skew
        return invalid(
            "Client assertion is not within its valid time range.", AADSTS_ASSERTION_EXPIRED
        )
    return None


def _application_gate(request: web.Request) -> web.Response | None:
    """Authentication of a Graph request (apart from the users endpoints' fault counters)."""
    sim = request.app[SIM_KEY]
    sim.requests["application"] += 1
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not sim.token_valid(auth[7:].strip()):
        return _graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.")
    if sim.faults.applications_forbidden or sim.faults.forbidden:
        return _graph_error(
            403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
        )
    return None


_APP_BY_APP_ID = re.compile(r"^applications\(appId='([^']+)'\)$")
_APP_PROPERTIES = ("id", "appId", "displayName", "passwordCredentials", "keyCredentials")


async def _application(request: web.Request) -> web.Response:
    """``GET /applications(appId='{appId}')?$select=...`` (learn.microsoft.com/graph/api/
    application-get): the application object. ``secretText`` is always null; ``key`` only
    when ``keyCredentials`` is selected (learn.microsoft.com/graph/api/resources/keycredential:
    returned on ``$select`` for a single object, else null)."""
    m = _APP_BY_APP_ID.match(request.match_info["segment"])
    if m is None:
        return _graph_error(400, "BadRequest", "Resource not found for the segment.")
    denied = _application_gate(request)
    if denied is not None:
        return denied
    app_obj = request.app[SIM_KEY].applications.get(m.group(1))
    if app_obj is None:
        return _graph_error(
            404,
            "Request_ResourceNotFound",
            f"Resource '{m.group(1)}' does not exist or one of its queried reference-property "
            "objects are not present.",
        )
    raw = request.query.get("$select")
    fields = _parse_select(raw) if raw is not None else _APP_PROPERTIES
    if isinstance(fields, web.Response):
        return fields
    body: dict[str, Any] = {
        "@odata.context": f"{_origin(request)}/v1.0/$metadata#applications({','.join(fields)})"
        "/$entity"
    }
    for name in fields:
        if name not in app_obj and name in ("id", "appId", "displayName"):
            continue  # a test's registration without them
        value = app_obj.get(name)
        if name == "passwordCredentials":
            value = [{**c, "secretText": None} for c in value or []]
        elif name == "keyCredentials" and raw is None:
            value = [{**c, "key": None} for c in value or []]
        body[name] = value
    return _json(_dumps(body))


async def _openid_configuration(request: web.Request) -> web.Response:
    """Tenant discovery for MSAL. Entra's endpoints are always https, so the URLs say https with
    the host the request came to (a client reaching the simulator over http maps them back)."""
    sim = request.app[SIM_KEY]
    sim.requests["discovery"] += 1
    tenant = request.match_info["tenant"]
    base = f"https://{request.host}/{tenant}"
    body = {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "issuer": f"https://{request.host}/{tenant}/v2.0",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "tenant_region_scope": "EU",
    }
    return _json(_dumps(body))


# --- sendMail (learn.microsoft.com/graph/api/user-sendmail) ---------------------------------


@dataclass
class MailSim:
    """What ``POST /users/{id | userPrincipalName}/sendMail`` keeps: every accepted request
    with its sender (``{"from": <as addressed>, "request": <the JSON body>}``). ``denied``
    answers 403 ErrorAccessDenied, as an Exchange application access policy (or a missing
    Mail.Send) does."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    denied: bool = False


def _mailbox(sim: TenantSim, who: str) -> dict[str, Any] | None:
    """The sending user, by object id or userPrincipalName (case-insensitive), as Graph
    resolves ``{id | userPrincipalName}``."""
    found = sim.user(who)
    if found is not None:
        return found
    low = who.lower()
    for uid in sim.user_ids:
        u = sim.user(uid) or {}
        if str(u.get("userPrincipalName") or "").lower() == low:
            return u
    return None


def _bad_recipient(message: Mapping[str, Any]) -> web.Response | None:
    """Graph's 400 ErrorInvalidRecipients: no recipient at all, or one that is no address."""
    everyone: list[Any] = []
    for field_name in ("toRecipients", "ccRecipients", "bccRecipients"):
        value = message.get(field_name) or []
        if not isinstance(value, list):
            return _graph_error(
                400, "ErrorInvalidRecipients", "At least one recipient isn't valid."
            )
        everyone += value
    if not everyone:
        return _graph_error(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains "
            "no recipients.",
        )
    for r in everyone:
        address = (
            ((r or {}).get("emailAddress") or {}).get("address") if isinstance(r, dict) else None
        )
        local, at, domain = str(address or "").rpartition("@")
        if not (isinstance(address, str) and at and local and "." in domain):
            return _graph_error(
                400,
                "ErrorInvalidRecipients",
                f"At least one recipient isn't valid., Recipient '{address}' isn't resolved. "
                "All recipients must be resolved before a message can be submitted.",
            )
    return None


async def _send_mail(request: web.Request) -> web.Response:
    denied = _graph_gate(request, "sendMail", reads=False)  # Mail.Send: see MailSim.denied
    if denied is not None:
        return denied
    sim = request.app[SIM_KEY]
    who = request.match_info["uid"]
    if _mailbox(sim, who) is None:
        return _graph_error(404, "ErrorInvalidUser", f"The requested user '{who}' is invalid.")
    if sim.mail.denied:
        return _graph_error(
            403,
            "ErrorAccessDenied",
            "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly "
            "AccessPolicy settings.",
        )
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _graph_error(400, "BadRequest", "Unable to read JSON request payload.")
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict):
        return _graph_error(400, "ErrorInvalidRequest", "The message is missing.")
    bad = _bad_recipient(message)
    if bad is not None:
        return bad
    sim.mail.sent.append({"from": who, "request": body})
    return web.Response(status=202)  # Accepted, empty body


def make_app(sim: TenantSim) -> web.Application:
    """The simulator as an aiohttp application (Graph under /v1.0, Entra login under /{tenant})."""
    app = web.Application()
    app[SIM_KEY] = sim
    app.router.add_get("/v1.0/users", _users)
    app.router.add_get("/v1.0/users/delta", _delta)
    app.router.add_get("/v1.0/groups/{gid}/transitiveMembers/microsoft.graph.user", _members)
    app.router.add_post("/v1.0/users/{uid}/sendMail", _send_mail)
    app.router.add_get("/v1.0/{segment:applications\\(.*}", _application)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", _token)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", _openid_configuration)
    return app


@asynccontextmanager
async def serve_simulator(
    sim: TenantSim, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve the simulator on ``host:port`` (0: an ephemeral port); yields its base URL."""
    runner = web.AppRunner(make_app(sim), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()


def main_simulate(
    tenant_path: str,
    port: int,
    host: str = "127.0.0.1",
    throttle_every: int | None = None,
    fail_at: int | None = None,
    *,
    full_delta_objects: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Blocking entry of ``entra-sync simulate``: serve FILE until interrupted.

    ``full_delta_objects``: delta objects as full projections (not only what changed).
    ``on_ready`` gets the base URL once listening (Graph at ``URL/v1.0``, login at ``URL``).
    Raises InputError for a bad tenant file.
    """
    sim = load_tenant_file(tenant_path)
    sim.full_delta_objects = full_delta_objects
    sim.faults.throttle_every = throttle_every
    sim.faults.fail_at_request = fail_at

    async def run() -> None:
        async with serve_simulator(sim, host=host, port=port) as url:
            log.info("tenant simulator for %s on %s (Graph at %s/v1.0)", tenant_path, url, url)
            if on_ready is not None:
                on_ready(url)
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        log.info("tenant simulator stopped")
