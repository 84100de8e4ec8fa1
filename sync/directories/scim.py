"""The SCIM 2.0 directory adapter (RFC 7643 resources, RFC 7644 protocol) over httpx.

Mapping between :class:`~sync.models.DirectoryUser` and a SCIM ``User``:

=====================  =================================================================
DirectoryUser          SCIM User
=====================  =================================================================
``id``                 ``id`` (the server's)
``entra_id``           ``externalId``
``first_name``         ``name.givenName``
``last_name``          ``name.familyName``
``display_name``       ``displayName``
``email``              ``emails``: one value, ``type`` "work", ``primary`` true; read back as
                       the primary e-mail, else the first "work" one, else the first one
``phones``             ``phoneNumbers`` values, in order (E.164). A number already on the
                       resource keeps its ``type``; a new one gets "work"; the first is primary
``tags``               ``roles`` values (a standard, writable, multi-valued string attribute;
                       ``groups`` is read-only in SCIM, and extensions are not portable)
``active``             ``active`` (absent: true)
``sync_enabled``       not stored: it is the bot's own state. Users read from SCIM always say
                       True and the engine keeps the per-user switch in Redis
                       (``stores_sync_enabled`` is False). A patch setting it to False raises
                       a DirectoryError (code ``directory_unsupported``) rather than being
                       silently dropped; setting it to True is a no-op
=====================  =================================================================

``userName`` (required and unique in SCIM) is the e-mail when there is one, else the Entra id,
else ``es-<random>``. It follows the e-mail on updates only while it is one the adapter made
(equal to the old e-mail, the externalId, or ``es-*``); a userName set by someone else is left
alone. Through userName the server enforces unique e-mails (409 -> DirectoryConflict). The
Entra id is unique too, but SCIM servers rarely enforce externalId uniqueness, so ``create``
checks it first with a search (best effort: two concurrent creates can both pass).

Features read once from ``/ServiceProviderConfig`` and what happens without them:

- ``patch``: updates are PATCH requests (RFC 7644 §3.5.2, ``replace``/``remove``
  operations). Without it: the resource is read, changed and written back with PUT (every
  attribute the adapter does not map is kept as it was read).
- ``etag``: every update sends ``If-Match`` with the version just read; on 412 the adapter
  re-reads and retries once, then raises DirectoryPreconditionFailed. Without it: unconditional
  writes (last writer wins).
- ``filter``: ``find_by_phone``/``find_by_email``/``find_by_external_id`` use
  ``phoneNumbers.value eq``, ``emails.value eq``, ``externalId eq``. Without it: the adapter
  lists every user and scans (correct but one full listing per lookup). Results are checked
  client-side either way (exact number, case-insensitive e-mail).
- pagination: ``startIndex``/``count`` paging, ``count`` capped by ``maxPageSize``; the
  adapter advances by the number of resources actually returned and stops at
  ``totalResults`` or on an empty page, so servers that ignore ``count`` work too.
- A missing ``/ServiceProviderConfig`` (404/501) means: no patch, no etag, no filter.

Errors: 400 -> DirectoryRejected (with SCIM ``scimType``/``detail``), 401/403 ->
DirectoryAuthError, 404 -> DirectoryNotFound, 409 -> DirectoryConflict, 412 ->
DirectoryPreconditionFailed, 501 -> DirectoryError ``directory_unsupported``; 429 and 5xx are
retried ``max_retries`` times (``SCIM_RETRY``, sync.retry: ``Retry-After`` when given, else
exponential backoff, through the injected ``sleep``), then DirectoryUnavailable; connection
errors and timeouts the same. A POST (create) is retried only on 429, never after a 5xx or a
lost connection, so a user is never created twice. The bearer token is sent in
``Authorization`` and never logged.

Users read from the server are parsed leniently from JSON (a phone system that stores an
e-mail scim2-models would reject must not break the whole listing); requests are built with
scim2-models (``User``, ``PatchOp``) and the configuration is read with
``ServiceProviderConfig``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError
from scim2_models import (
    Context,
    Email,
    Name,
    PatchOp,
    PhoneNumber,
    Role,
    ServiceProviderConfig,
    User,
)

from sync.directories.base import NewDirectoryUser, UserPatch
from sync.directories.builtin import apply_patch, norm_email, validate_patch
from sync.errors import (
    DirectoryAuthError,
    DirectoryConflict,
    DirectoryError,
    DirectoryNotFound,
    DirectoryPreconditionFailed,
    DirectoryRejected,
    DirectoryUnavailable,
)
from sync.models import DirectoryUser
from sync.retry import RetryableFailure, RetryPolicy

log = logging.getLogger(__name__)

SCIM_JSON = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GENERATED_PREFIX = "es-"
MAX_DETAIL = 200
MAX_PAGES = 100_000

Sleep = Callable[[float], Awaitable[None]]
# 429/5xx/no answer: Retry-After (capped at 120 s), else 0.5 s doubling up to 30 s
SCIM_RETRY = RetryPolicy(max_retries=4, base_delay=0.5, max_delay=30.0, max_retry_after=120.0)


@dataclass(frozen=True, slots=True)
class ScimFeatures:
    """What the server announced in /ServiceProviderConfig (the parts the adapter uses)."""

    patch: bool = False
    etag: bool = False
    filter: bool = False
    max_page_size: int | None = None

    @classmethod
    def from_config(cls, data: Any) -> ScimFeatures:
        spc = ServiceProviderConfig.model_validate(data)
        return cls(
            patch=bool(spc.patch and spc.patch.supported),
            etag=bool(spc.etag and spc.etag.supported),
            filter=bool(spc.filter and spc.filter.supported),
            max_page_size=(spc.pagination.max_page_size if spc.pagination else None) or None,
        )


# --- mapping (pure) ------------------------------------------------------------------------


def _str(v: Any) -> str | None:
    return v.strip() or None if isinstance(v, str) else None


def _multi(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    v = data.get(key)
    return [e for e in v if isinstance(e, Mapping)] if isinstance(v, list) else []


def primary_email(data: Mapping[str, Any]) -> str | None:
    emails = [e for e in _multi(data, "emails") if _str(e.get("value"))]
    picks: list[Callable[[Mapping[str, Any]], bool]] = [
        lambda e: e.get("primary") is True,
        lambda e: str(e.get("type") or "").lower() == "work",
        lambda e: True,
    ]
    for pick in picks:
        for e in emails:
            if pick(e):
                return _str(e.get("value"))
    return None


def from_scim_user(data: Any) -> DirectoryUser:
    """A SCIM User resource (its JSON) as a DirectoryUser. Lenient; raises DirectoryError
    only when there is no id."""
    if not isinstance(data, Mapping) or not _str(data.get("id")):
        raise DirectoryError("SCIM server returned a user without an id", code="directory_bad_data")
    name = data.get("name") if isinstance(data.get("name"), Mapping) else {}
    assert isinstance(name, Mapping)
    phones = tuple(
        p for p in (_str(e.get("value")) for e in _multi(data, "phoneNumbers")) if p is not None
    )
    tags = tuple(t for t in (_str(e.get("value")) for e in _multi(data, "roles")) if t is not None)
    active = data.get("active")
    return DirectoryUser(
        id=str(data["id"]).strip(),
        first_name=_str(name.get("givenName")),
        last_name=_str(name.get("familyName")),
        display_name=_str(data.get("displayName")),
        email=primary_email(data),
        phones=tuple(dict.fromkeys(phones)),
        tags=tuple(dict.fromkeys(tags)),
        entra_id=_str(data.get("externalId")),
        sync_enabled=True,
        active=active if isinstance(active, bool) else True,
    )


def _email_values(email: str) -> list[dict[str, Any]]:
    return [Email(value=email, type=Email.Type.work, primary=True).model_dump()]


def _phone_values(phones: Sequence[str], current: Mapping[str, Any]) -> list[dict[str, Any]]:
    types = {
        e.get("value"): e.get("type")
        for e in _multi(current, "phoneNumbers")
        if isinstance(e.get("type"), str)
    }
    out = []
    for i, p in enumerate(phones):
        t = types.get(p) or "work"
        ptype = t if t in {m.value for m in PhoneNumber.Type} else "work"
        pn = PhoneNumber(value=p, type=PhoneNumber.Type(ptype), primary=True if i == 0 else None)
        out.append(pn.model_dump())
    return out


def _role_values(tags: Sequence[str]) -> list[dict[str, Any]]:
    return [Role(value=t).model_dump() for t in tags]


def new_user_name(email: str | None, entra_id: str | None) -> str:
    return email or entra_id or f"{GENERATED_PREFIX}{uuid.uuid4().hex}"


def to_scim_user(user: NewDirectoryUser) -> dict[str, Any]:
    """The body of a POST /Users for a new user (scim2-models serialisation)."""
    values = validate_patch(user.as_patch())
    name = None
    if values["first_name"] or values["last_name"]:
        name = Name(given_name=values["first_name"], family_name=values["last_name"])
    try:
        model: User[Any] = User(
            user_name=new_user_name(values["email"], values["entra_id"]),
            external_id=values["entra_id"],
            name=name,
            display_name=values["display_name"],
            active=True,
            emails=[Email(value=values["email"], type=Email.Type.work, primary=True)]
            if values["email"]
            else None,
            phone_numbers=[
                PhoneNumber.model_validate(p) for p in _phone_values(values["phones"], {})
            ]
            or None,
            roles=[Role(value=t) for t in values["tags"]] or None,
        )
    except ValidationError as e:
        raise DirectoryRejected(f"user not valid for SCIM: {_validation_summary(e)}") from None
    return model.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST)


def _validation_summary(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _username_is_derived(current: Mapping[str, Any]) -> bool:
    user_name = _str(current.get("userName"))
    if user_name is None:
        return True
    email = primary_email(current)
    return (
        (email is not None and user_name.lower() == email.lower())
        or user_name == _str(current.get("externalId"))
        or user_name.startswith(GENERATED_PREFIX)
    )


def _username_for(current: Mapping[str, Any], target: DirectoryUser) -> str | None:
    """The userName to write with this change, or None to leave it."""
    if not _username_is_derived(current):
        return None
    wanted = target.email or target.entra_id
    if wanted is None:
        old = _str(current.get("userName")) or ""
        return None if old.startswith(GENERATED_PREFIX) else new_user_name(None, None)
    return None if wanted == _str(current.get("userName")) else wanted


def patch_operations(current: Mapping[str, Any], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The PATCH operations that turn ``current`` (a SCIM User's JSON) into ``current`` with
    the patch values. Removes only what is there; an unchanged value gives no operation."""
    before = from_scim_user(current)
    after = apply_patch(before, values)
    ops: list[dict[str, Any]] = []

    def put(path: str, value: Any, present: bool) -> None:
        if value is None or value == []:
            if present:
                ops.append({"op": "remove", "path": path})
        else:
            ops.append({"op": "replace", "path": path, "value": value})

    if before.first_name != after.first_name:
        put("name.givenName", after.first_name, before.first_name is not None)
    if before.last_name != after.last_name:
        put("name.familyName", after.last_name, before.last_name is not None)
    if before.display_name != after.display_name:
        put("displayName", after.display_name, before.display_name is not None)
    if before.email != after.email:
        user_name = _username_for(current, after)
        if user_name is not None:
            put("userName", user_name, True)
        put("emails", _email_values(after.email) if after.email else None, "emails" in current)
    if before.phones != after.phones:
        put("phoneNumbers", _phone_values(after.phones, current), "phoneNumbers" in current)
    if before.tags != after.tags:
        put("roles", _role_values(after.tags), "roles" in current)
    if before.entra_id != after.entra_id:
        put("externalId", after.entra_id, before.entra_id is not None)
    if before.active != after.active:
        put("active", after.active, True)
    if not ops:
        return []
    ctx = Context.RESOURCE_PATCH_REQUEST
    model = PatchOp[User[Any]].model_validate(patch_body(ops), scim_ctx=ctx)
    body = model.model_dump(scim_ctx=ctx)
    operations = body["Operations"]
    assert isinstance(operations, list)
    return operations


def patch_body(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP_SCHEMA], "Operations": operations}


def replaced_resource(current: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a PUT: ``current`` with the mapped attributes changed, the rest kept."""
    before = from_scim_user(current)
    after = apply_patch(before, values)
    out = {k: v for k, v in current.items() if k != "meta"}
    out.setdefault("schemas", [USER_SCHEMA])

    def put(key: str, value: Any) -> None:
        if value is None or value == []:
            out.pop(key, None)
        else:
            out[key] = value

    name = dict(current["name"]) if isinstance(current.get("name"), Mapping) else {}
    for key, value in (("givenName", after.first_name), ("familyName", after.last_name)):
        if value is None:
            name.pop(key, None)
        else:
            name[key] = value
    put("name", name or None)
    put("displayName", after.display_name)
    if before.email != after.email:
        user_name = _username_for(current, after)
        if user_name is not None:
            out["userName"] = user_name
        put("emails", _email_values(after.email) if after.email else None)
    if before.phones != after.phones:
        put("phoneNumbers", _phone_values(after.phones, current))
    if before.tags != after.tags:
        put("roles", _role_values(after.tags))
    put("externalId", after.entra_id)
    out["active"] = after.active
    return out


def scim_filter_string(value: str) -> str:
    """A SCIM filter comparison value: a JSON string literal (quotes and backslashes escaped)."""
    return json.dumps(value)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _detail(text: Any) -> str:
    s = _CONTROL.sub(" ", str(text)).strip()
    return s if len(s) <= MAX_DETAIL else s[:MAX_DETAIL] + "..."


def error_for(status: int, body: Any, what: str) -> DirectoryError:
    """The error of a non-2xx SCIM answer (``body``: its decoded JSON, or None)."""
    scim_type = detail = None
    if isinstance(body, Mapping):
        scim_type = _detail(body["scimType"]) if body.get("scimType") else None
        detail = _detail(body["detail"]) if body.get("detail") else None
    msg = f"{what}: HTTP {status}"
    if scim_type:
        msg += f" ({scim_type})"
    if detail:
        msg += f": {detail}"
    if status == 400:
        return DirectoryRejected(msg)
    if status in (401, 403):
        return DirectoryAuthError(msg)
    if status == 404:
        return DirectoryNotFound(msg)
    if status == 409:
        return DirectoryConflict(msg)
    if status == 412:
        return DirectoryPreconditionFailed(msg)
    if status == 501:
        return DirectoryError(
            msg,
            code="directory_unsupported",
            hint="The phone system's SCIM API does not support this operation.",
        )
    if status == 429 or status >= 500:
        return DirectoryUnavailable(msg)
    return DirectoryError(msg)


# --- the adapter ---------------------------------------------------------------------------


class ScimDirectory:
    """A SCIM 2.0 service provider as the directory. Implements ``sync.directories.base.Directory``.
    See the module docstring for the mapping, the features used and the fallbacks."""

    stores_sync_enabled = False

    def __init__(
        self,
        base_url: str,
        token: SecretStr | None,
        *,
        http: httpx.AsyncClient,
        name: str = "scim",
        sleep: Sleep = asyncio.sleep,
        max_retries: int = 4,
        page_size: int = 100,
    ) -> None:
        self.name = name
        self._base = base_url.rstrip("/")
        self._token = token
        self._http = http
        self._sleep = sleep
        self._retry = replace(SCIM_RETRY, max_retries=max_retries)
        self._page_size = page_size
        self._features: ScimFeatures | None = None
        self._features_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ScimDirectory(name={self.name!r}, base_url={self._base!r})"

    # --- HTTP ----------------------------------------------------------------------------------

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        h = {"Accept": SCIM_JSON}
        if self._token is not None:
            h["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        if extra:
            h.update(extra)
        return h

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request, retried on 429/5xx/connection errors; a non-2xx answer raises."""
        what = f"{self.name}: {method} {path}"
        content = None
        extra = dict(headers or {})
        if body is not None:
            content = json.dumps(body).encode()
            extra["Content-Type"] = SCIM_JSON
        retry_5xx = method != "POST"

        async def attempt(number: int) -> httpx.Response:
            try:
                resp = await self._http.request(
                    method,
                    self._base + path,
                    params=params,
                    content=content,
                    headers=self._headers(extra),
                )
            except httpx.HTTPError as e:
                log.info("%s: %s (try %d)", what, type(e).__name__, number)
                lost = DirectoryUnavailable(
                    f"{what}: no answer ({type(e).__name__}) after {number} tries"
                )
                raise (RetryableFailure(lost) if retry_5xx else lost) from None
            log.debug("%s -> %d", what, resp.status_code)
            status = resp.status_code
            if status < 400:
                return resp
            err = error_for(status, _json_or_none(resp), what)
            if isinstance(err, DirectoryUnavailable):
                err.message += f" (after {number} tries)"
                err.args = (err.message,)
            if status == 429 or (status >= 500 and status != 501 and retry_5xx):
                wait = self._retry.retry_after(resp.headers.get("Retry-After"))
                raise RetryableFailure(err, wait)
            raise err

        return await self._retry.run(attempt, sleep=self._sleep)

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self._request(method, path, **kw)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise DirectoryError(
                f"{self.name}: {method} {path}: the answer is not JSON", code="directory_bad_data"
            ) from None

    async def features(self) -> ScimFeatures:
        """The server's features, read from /ServiceProviderConfig once."""
        async with self._features_lock:
            if self._features is None:
                try:
                    data = await self._json("GET", "/ServiceProviderConfig")
                    self._features = ScimFeatures.from_config(data)
                except DirectoryNotFound:
                    self._features = ScimFeatures()
                except DirectoryError as e:
                    if e.code != "directory_unsupported":
                        raise
                    self._features = ScimFeatures()
                except ValidationError:
                    log.warning(
                        "%s: unreadable ServiceProviderConfig; no optional feature", self.name
                    )
                    self._features = ScimFeatures()
                log.info("%s: SCIM features %s", self.name, self._features)
            return self._features

    @staticmethod
    def _user_path(user_id: str) -> str:
        return "/Users/" + quote(user_id, safe="")

    # --- reads ---------------------------------------------------------------------------------

    async def _list_raw(self, scim_filter: str | None = None) -> list[Mapping[str, Any]]:
        features = await self.features()
        count = self._page_size
        if features.max_page_size:
            count = min(count, features.max_page_size)
        found: dict[str, Mapping[str, Any]] = {}
        start = 1
        for _ in range(MAX_PAGES):
            params: dict[str, str | int] = {"startIndex": start, "count": count}
            if scim_filter is not None:
                params["filter"] = scim_filter
            page = await self._json("GET", "/Users", params=params)
            if not isinstance(page, Mapping):
                raise DirectoryError(f"{self.name}: not a ListResponse", code="directory_bad_data")
            resources = page.get("Resources") or []
            if not isinstance(resources, list):
                raise DirectoryError(f"{self.name}: bad Resources", code="directory_bad_data")
            for r in resources:
                if isinstance(r, Mapping) and _str(r.get("id")):
                    found.setdefault(str(r["id"]), r)
            total = page.get("totalResults")
            if not resources:
                break
            start += len(resources)
            if not isinstance(total, int) or start > total:
                break
        return list(found.values())

    async def list_users(self) -> Sequence[DirectoryUser]:
        return [from_scim_user(r) for r in await self._list_raw()]

    async def _get_raw(self, user_id: str) -> tuple[Mapping[str, Any], str | None]:
        resp = await self._request("GET", self._user_path(user_id))
        data = _json_or_none(resp)
        if not isinstance(data, Mapping):
            raise DirectoryError(
                f"{self.name}: user {user_id}: not JSON", code="directory_bad_data"
            )
        meta = data.get("meta")
        version = resp.headers.get("ETag") or (
            meta.get("version") if isinstance(meta, Mapping) else None
        )
        return data, version if isinstance(version, str) else None

    async def get(self, user_id: str) -> DirectoryUser | None:
        try:
            data, _ = await self._get_raw(user_id)
        except DirectoryNotFound:
            return None
        return from_scim_user(data)

    async def _find(
        self, attribute: str, value: str, keep: Callable[[DirectoryUser], bool]
    ) -> list[DirectoryUser]:
        features = await self.features()
        if features.filter:
            raw = await self._list_raw(f"{attribute} eq {scim_filter_string(value)}")
        else:
            raw = await self._list_raw()
        return [u for u in map(from_scim_user, raw) if keep(u)]

    async def find_by_phone(self, e164: str) -> Sequence[DirectoryUser]:
        number = e164.strip()
        return await self._find("phoneNumbers.value", number, lambda u: number in u.phones)

    async def find_by_email(self, email: str) -> Sequence[DirectoryUser]:
        wanted = norm_email(email)
        found = await self._find(
            "emails.value",
            email.strip(),
            lambda u: u.email is not None and norm_email(u.email) == wanted,
        )
        return found

    async def find_by_external_id(self, entra_id: str) -> DirectoryUser | None:
        wanted = entra_id.strip()
        found = await self._find("externalId", wanted, lambda u: u.entra_id == wanted)
        return found[0] if found else None

    # --- writes --------------------------------------------------------------------------------

    async def create(self, user: NewDirectoryUser) -> DirectoryUser:
        body = to_scim_user(user)
        if user.entra_id:
            existing = await self.find_by_external_id(user.entra_id)
            if existing is not None:
                raise DirectoryConflict(
                    f"{self.name}: entra_id {user.entra_id} is already used by user {existing.id}"
                )
        data = await self._json("POST", "/Users", body=body)
        return from_scim_user(data)

    async def update(self, user_id: str, patch: UserPatch) -> DirectoryUser:
        values = validate_patch(patch)
        if values.pop("sync_enabled", True) is not True:
            raise DirectoryError(
                f"{self.name}: sync_enabled is not stored in a SCIM directory",
                code="directory_unsupported",
                hint="The bot keeps the sync switch of SCIM users itself (a bug if you see this).",
            )
        features = await self.features()
        for attempt in range(2):
            current, version = await self._get_raw(user_id)
            headers = {"If-Match": version} if features.etag and version else None
            try:
                if features.patch:
                    ops = patch_operations(current, values)
                    if not ops:
                        return from_scim_user(current)
                    data = await self._json(
                        "PATCH", self._user_path(user_id), body=patch_body(ops), headers=headers
                    )
                else:
                    new = replaced_resource(current, values)
                    data = await self._json(
                        "PUT", self._user_path(user_id), body=new, headers=headers
                    )
            except DirectoryPreconditionFailed:
                if attempt == 0:
                    log.info("%s: user %s changed meanwhile; re-reading", self.name, user_id)
                    continue
                raise
            if data is None:  # 204: the server sent no representation
                data, _ = await self._get_raw(user_id)
            return from_scim_user(data)
        raise AssertionError("unreachable")  # pragma: no cover

    async def deactivate(self, user_id: str) -> DirectoryUser:
        return await self.update(user_id, UserPatch({"active": False}))

    async def delete(self, user_id: str) -> None:
        await self._request("DELETE", self._user_path(user_id))


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json() if resp.content else None
    except ValueError:
        return None
