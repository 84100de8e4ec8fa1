"""The Microsoft Graph client: users (paged, streamed), group scope, and delta rounds.

Every request carries ``x-ms-throttle-priority: Low`` (background sync). 429/503/504 and
connection failures are retried by a bounded, deterministic policy that honours Retry-After;
every other failure maps to one error of sync.errors. ``@odata.nextLink`` is followed verbatim,
but only to the origin of ``base_url`` (the bearer token never leaves for another host).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from sync.errors import (
    AuthError,
    DeltaExpired,
    GraphDataError,
    GraphError,
    GraphNotFound,
    GraphPermissionDenied,
    GraphThrottled,
    GraphUnavailable,
    ScopeFilterRejected,
)
from sync.graph.attributes import select_attribute
from sync.graph.auth import TokenProvider
from sync.graph.token_state import WatchedTokens
from sync.models import EntraSnapshot, EntraUser, parse_entra_user
from sync.retry import RetryableFailure, RetryPolicy

log = logging.getLogger(__name__)

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
RETRY_STATUSES = frozenset({429, 503, 504})
DELTA_GONE_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
MAX_INVALID = 1000  # keep at most this many invalid-record reasons
USER_TYPE = "#microsoft.graph.user"
TOKEN_REUSE_S = 60.0  # a run of pages reuses its token this long (the provider caches anyway)


@dataclass(frozen=True, slots=True)
class DeltaResult:
    """One delta round, applied in the order Graph sent it. ``changed``: the full records (the
    delta objects merged over the known ones) of the users present at the end of the round;
    ``removed``: (id, reason) of the users absent at its end, ``changed`` = soft-deleted
    (restorable for 30 days), ``deleted`` = gone for good. Each id is in at most one of them,
    once. ``delta_link``: the link for the next round; ``invalid``: unreadable records."""

    changed: list[EntraUser]
    removed: list[tuple[str, str]]
    delta_link: str
    invalid: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.invalid


def _error_body(resp: httpx.Response) -> tuple[str, str]:
    """Graph's error code and message (untrusted; shortened)."""
    try:
        body = json.loads(resp.content)
    except ValueError:
        return "", ""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return "", ""
    code = err.get("code")
    msg = err.get("message")
    return (str(code)[:80] if code else ""), (str(msg)[:400] if msg else "")


def _permission_hint(permission: str) -> str:
    hint = (
        f"The Entra app lacks the Microsoft Graph application permission {permission}. In Entra "
        "admin center > App registrations > your app > API permissions, add "
        f"{permission} as an Application permission and click 'Grant admin consent'."
    )
    if permission == "User.Read.All":
        hint += " User.ReadBasic.All is not enough: it has no phone numbers or account state."
    return hint


def parse_listed_user(obj: Any) -> EntraUser:
    """A user of a full read (/users): ``accountEnabled`` is selected, so a record without it
    is unreadable (never taken as enabled). Raises GraphDataError."""
    if isinstance(obj, dict) and "accountEnabled" not in obj:
        uid = obj.get("id")
        raise GraphDataError(f"user {uid if isinstance(uid, str) else '?'}: no accountEnabled")
    return parse_entra_user(obj)


class DeltaRound:
    """The entries of one delta round, applied in the order Graph sent them.

    A user object updates only the properties it carries, over the user's record as it stands
    (earlier in this round, else ``known``); absent properties keep their values. A property
    sent as null is cleared. ``accountEnabled`` never defaults: absent, it keeps the known
    value; absent for a user not known, the record is unreadable (``invalid``). An ``@removed``
    entry removes the user (reason ``changed``: soft delete; ``deleted``: permanent); a later
    object in the same round brings the user back (restored).
    """

    def __init__(self, known: Mapping[str, EntraUser]) -> None:
        self._known = known
        self._now: dict[str, EntraUser | str] = {}  # id -> record, or the removal reason
        self.invalid: list[str] = []

    def apply(self, obj: Any) -> None:
        uid = obj.get("id") if isinstance(obj, dict) else None
        if not isinstance(uid, str) or not uid:
            self._unreadable("a delta entry has no valid 'id'")
            return
        if "@removed" in obj:
            info = obj["@removed"]
            reason = info.get("reason") if isinstance(info, dict) else None
            self._now[uid] = reason if reason in ("changed", "deleted") else "deleted"
            return
        current = self._now.get(uid)
        base = current if isinstance(current, EntraUser) else self._known.get(uid)
        merged: dict[str, Any] = {} if base is None else {"accountEnabled": base.enabled}
        merged.update(base.attrs if base is not None else {})
        merged.update(obj)
        try:
            self._now[uid] = parse_listed_user(merged)
        except GraphDataError as e:
            self._now.pop(uid, None)
            self._unreadable(e.message)

    def _unreadable(self, reason: str) -> None:
        if len(self.invalid) < MAX_INVALID:
            self.invalid.append(reason)

    def result(self, delta_link: str) -> DeltaResult:
        changed = [u for u in self._now.values() if isinstance(u, EntraUser)]
        removed = [(uid, r) for uid, r in self._now.items() if isinstance(r, str)]
        return DeltaResult(changed, removed, delta_link, self.invalid)


class UserPages:
    """Users page by page (``async for page in pages``); at most the page handed out and the
    next one (prefetched) are held. Stopping before the end: ``await pages.aclose()`` cancels
    the request in flight.

    Malformed records do not stop the read: their reasons collect in ``invalid``.
    """

    def __init__(self, pages: AsyncGenerator[list[Any], None]) -> None:
        self._pages = pages
        self.invalid: list[str] = []

    async def aclose(self) -> None:
        await self._pages.aclose()

    def __aiter__(self) -> UserPages:
        return self

    async def __anext__(self) -> list[EntraUser]:
        values = await self._pages.__anext__()
        users: list[EntraUser] = []
        for obj in values:
            try:
                users.append(parse_listed_user(obj))
            except GraphDataError as e:
                if len(self.invalid) < MAX_INVALID:
                    self.invalid.append(e.message)
        return users


class GraphClient:
    """Reads users from Microsoft Graph for one tenant.

    ``graph_requests`` counts the HTTP requests sent (retries included).
    """

    def __init__(
        self,
        tokens: TokenProvider,
        *,
        base_url: str = DEFAULT_GRAPH_URL,
        http: httpx.AsyncClient,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_retries: int = 6,
        page_size: int = 999,
        retry: RetryPolicy | None = None,
        observe: Callable[[int | None], None] | None = None,
    ) -> None:
        """``observe`` hears the HTTP status of every answer (None: no answer), for metrics."""
        if not 1 <= page_size <= 999:
            raise ValueError("page_size must be between 1 and 999")
        self.tokens = WatchedTokens(tokens, clock=clock)  # .state: how the last request went
        self._tokens: TokenProvider = self.tokens
        self._observe = observe
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._origin = (parts.scheme, parts.netloc.lower())
        self._http = http
        self._sleep = sleep
        self._clock = clock
        self.retry = retry if retry is not None else RetryPolicy(max_retries=max_retries)
        self.page_size = page_size
        self.graph_requests = 0

    # --- public API ------------------------------------------------------------------------

    async def sign_in(self) -> None:
        """Ask Entra for a new token now, without reading anything: proves the credentials.
        Raises the AuthError (with its AADSTS code) or AuthUnavailable Entra's answer maps to."""
        await self._refreshed_token()

    def iter_users(self, select: Sequence[str], *, enabled_only: bool = False) -> UserPages:
        """Every user, page by page (``$top`` = page_size). ``$select`` is the given attributes
        plus ``id`` and ``accountEnabled``. ``enabled_only`` adds ``$filter=accountEnabled eq
        true``. Raises a GraphError when a page fails; ``.invalid`` lists unreadable records."""
        url = f"{self.base_url}/users?$select={self.select_param(select)}&$top={self.page_size}"
        if enabled_only:
            url += "&$filter=" + quote("accountEnabled eq true", safe="")
        return UserPages(self._values(url, what="users"))

    async def read_users(
        self,
        select: Sequence[str],
        *,
        groups: Sequence[str] = (),
        enabled_only: bool = False,
        each_page: Callable[[Sequence[EntraUser]], None] | None = None,
    ) -> EntraSnapshot:
        """A full read. With ``groups``, ``group_members`` is the union of their transitive user
        members. ``complete`` is False when a record was unreadable. Any failure raises: there is
        never a partial snapshot. ``each_page`` sees each page's users as they are read (while
        the next page is on its way)."""
        pages = self.iter_users(select, enabled_only=enabled_only)
        users: list[EntraUser] = []
        async with aclosing(pages):
            async for page in pages:
                users.extend(page)
                if each_page is not None:
                    each_page(page)
        invalid = list(pages.invalid)
        members: frozenset[str] | None = None
        if groups:
            ids: set[str] = set()
            for gid in groups:
                ids.update(await self._group_member_ids(gid, invalid))
            members = frozenset(ids)
        return EntraSnapshot(
            users=tuple(users),
            complete=not invalid,
            group_members=members,
            invalid=tuple(invalid),
        )

    async def filtered_user_ids(self, scope_filter: str) -> frozenset[str]:
        """Ids of the users Graph returns for an OData ``$filter`` (the ``[scope] filter``),
        sent as an advanced query (``ConsistencyLevel: eventual``, ``$count=true``: Graph needs
        them for ``ne``, ``not``, ``endsWith`` and many properties, and takes them for the
        rest). Raises ScopeFilterRejected with Graph's message when Graph refuses the filter
        (400); never judges the filter itself."""
        url = (
            f"{self.base_url}/users?$filter={quote(scope_filter, safe='')}&$count=true"
            f"&$select=id&$top={self.page_size}"
        )
        ids: set[str] = set()
        async with aclosing(self._values(url, what="scope filter")) as pages:
            async for values in pages:
                for obj in values:
                    uid = obj.get("id") if isinstance(obj, dict) else None
                    if not isinstance(uid, str) or not uid:
                        raise GraphDataError("Microsoft Graph sent a filtered user without an 'id'")
                    ids.add(uid)
        return frozenset(ids)

    async def group_member_ids(self, group_id: str) -> frozenset[str]:
        """Ids of the users in a group, nested groups included. Raises GraphNotFound."""
        return frozenset(await self._group_member_ids(group_id, []))

    async def read_delta(
        self, select: Sequence[str], delta_link: str | None, known: Mapping[str, EntraUser]
    ) -> DeltaResult:
        """One delta round. ``delta_link`` None starts a new round (every user); otherwise the
        link of the previous round. ``known``: the stored users by id, which the round's
        objects are merged over (see ``DeltaRound``). Raises DeltaExpired when the link is no
        longer valid (do a full read and start again)."""
        if delta_link is None:
            url = f"{self.base_url}/users/delta?$select={self.select_param(select)}"
        else:
            self._check_origin(delta_link, "the stored delta link")
            url = delta_link
        round_ = DeltaRound(known)
        final: dict[str, Any] = {}
        pages = self._values(url, what="delta", delta=True, final=final)
        async with aclosing(pages):
            async for values in pages:
                for obj in values:
                    round_.apply(obj)
        link = final.get("@odata.deltaLink")
        if not isinstance(link, str):
            raise GraphDataError("Microsoft Graph ended a delta round without a deltaLink")
        self._check_origin(link, "the deltaLink")
        return round_.result(link)

    async def latest_delta_link(self, select: Sequence[str]) -> str:
        """A delta link that tracks changes from now on (``$deltatoken=latest``: Graph returns no
        users, only the link), so a full read can be followed by delta rounds without reading
        every user a second time. One request. Raises GraphError / GraphDataError."""
        url = f"{self.base_url}/users/delta?$select={self.select_param(select)}&$deltatoken=latest"
        final: dict[str, Any] = {}
        async with aclosing(self._values(url, what="delta", delta=True, final=final)) as pages:
            async for values in pages:
                if values:
                    raise GraphDataError("Microsoft Graph sent users for $deltatoken=latest")
        link = final.get("@odata.deltaLink")
        if not isinstance(link, str):
            raise GraphDataError("Microsoft Graph answered $deltatoken=latest without a deltaLink")
        self._check_origin(link, "the deltaLink")
        return link

    async def post_json(self, path: str, body: Mapping[str, Any], *, what: str) -> httpx.Response:
        """POST ``body`` as JSON to ``base_url + path`` (e.g. ``/users/{id}/sendMail``) with the
        app's token: a 401 refreshes the token once, 429/503 are retried as for reads (honouring
        Retry-After); any other answer is returned for the caller to read. Raises
        GraphThrottled / GraphUnavailable when the retries run out."""
        url = f"{self.base_url}{path}"
        token = await self._tokens.token()
        refreshed = False

        async def attempt(number: int) -> httpx.Response:
            nonlocal token, refreshed
            while True:
                headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
                self.graph_requests += 1
                try:
                    resp = await self._http.post(url, json=dict(body), headers=headers)
                except httpx.TransportError as e:
                    raise RetryableFailure(
                        GraphUnavailable(
                            f"Microsoft Graph is not reachable ({type(e).__name__}) for {what}"
                        )
                    ) from None
                if resp.status_code == 401 and not refreshed:
                    refreshed = True
                    token = await self._refreshed_token()
                    continue
                if resp.status_code not in (429, 503):
                    return resp
                retry_after = self.retry.retry_after(resp.headers.get("Retry-After"))
                error: GraphError = (
                    GraphThrottled(f"Microsoft Graph kept throttling {what} (HTTP 429)")
                    if resp.status_code == 429
                    else GraphUnavailable(f"Microsoft Graph kept failing {what} (HTTP 503)")
                )
                raise RetryableFailure(error, retry_after)

        return await self.retry.run(attempt, sleep=self._sleep)

    async def application(self, app_id: str, select: Sequence[str]) -> dict[str, Any]:
        """The app registration with ``appId`` (``GET /applications(appId='...')``), only the
        ``select``ed properties. Needs Application.Read.All; raises GraphPermissionDenied (403),
        GraphNotFound (404: the app is registered in another tenant) or another GraphError."""
        key = quote(app_id.replace("'", "''"), safe="")
        url = f"{self.base_url}/applications(appId='{key}')?$select={','.join(select)}"
        token = await self._tokens.token()
        body, _ = await self._get(
            url, token, what="the app registration", group=None, delta=False, sent=None
        )
        return body

    @staticmethod
    def select_param(select: Sequence[str]) -> str:
        """``$select``: the attributes (nested ones by their parent), id, accountEnabled."""
        names = [select_attribute(a) for a in select]
        return ",".join(dict.fromkeys([*names, "id", "accountEnabled"]))

    # --- internals -------------------------------------------------------------------------

    async def _group_member_ids(self, group_id: str, invalid: list[str]) -> set[str]:
        """The transitive user members: the OData cast needs ``ConsistencyLevel: eventual`` and
        ``$count=true`` (advanced query); an entry typed as anything but a user is skipped."""
        url = (
            f"{self.base_url}/groups/{quote(group_id, safe='')}/transitiveMembers/"
            f"microsoft.graph.user?$select=id&$top={self.page_size}&$count=true"
        )
        ids: set[str] = set()
        async with aclosing(self._values(url, what="members", group=group_id)) as pages:
            async for values in pages:
                for obj in values:
                    if isinstance(obj, dict) and obj.get("@odata.type", USER_TYPE) != USER_TYPE:
                        continue  # not a user (the cast should have left it out)
                    uid = obj.get("id") if isinstance(obj, dict) else None
                    if isinstance(uid, str) and uid:
                        ids.add(uid)
                    elif len(invalid) < MAX_INVALID:
                        invalid.append(f"group {group_id}: a member entry has no valid 'id'")
        return ids

    def _check_origin(self, url: str, what: str) -> None:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            raise GraphDataError(
                f"{what} points outside {self._origin[0]}://{self._origin[1]}; not followed"
            )

    async def _values(
        self,
        url: str,
        *,
        what: str,
        group: str | None = None,
        delta: bool = False,
        final: dict[str, Any] | None = None,
    ) -> AsyncGenerator[list[Any], None]:
        """The ``value`` list of each page, following @odata.nextLink verbatim.

        The next page is prefetched: its request is sent as soon as a page's body is read,
        before the page is handed out, so Graph works on it while the caller reads the page
        (at most the page handed out and the one in flight are held). A failure of the next
        page raises where it did before: when it is asked for. Closing the generator (or an
        error) cancels the request in flight. Within one run of pages the token that worked
        is reused; the provider is asked again after ``TOKEN_REUSE_S`` or a 401.
        """
        token = await self._tokens.token()
        token_at = self._clock()
        body, used = await self._get(url, token, what=what, group=group, delta=delta, sent=None)
        pending: asyncio.Task[tuple[dict[str, Any], str]] | None = None
        try:
            while True:
                if used != token:
                    token, token_at = used, self._clock()
                values = body.get("value")
                if not isinstance(values, list):
                    raise GraphDataError(f"Microsoft Graph answered {what} without a 'value' list")
                link = body.get("@odata.nextLink")
                if link is not None:
                    if not isinstance(link, str):
                        raise GraphDataError("Microsoft Graph sent a nextLink that is not a string")
                    self._check_origin(link, "the nextLink")
                elif final is not None:
                    final.update({k: v for k, v in body.items() if k != "value"})
                del body
                if link is not None:
                    if self._clock() - token_at > TOKEN_REUSE_S:
                        token, token_at = await self._tokens.token(), self._clock()
                    sent = asyncio.Event()
                    pending = asyncio.ensure_future(
                        self._get(link, token, what=what, group=group, delta=delta, sent=sent)
                    )
                    pending.add_done_callback(_setter(sent))
                    await sent.wait()  # the request is out (or its first attempt ended)
                yield values
                del values
                if pending is None:
                    return
                body, used = await pending
                pending = None
        finally:
            if pending is not None:  # the caller stopped early, or an error: no request left
                pending.cancel()
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved: nobody asked for that page

    async def _get(
        self,
        url: str,
        token: str,
        *,
        what: str,
        group: str | None,
        delta: bool,
        sent: asyncio.Event | None,
    ) -> tuple[dict[str, Any], str]:
        """One page: (the JSON body, the token that was accepted), under the retry policy.
        A 401 gets the token refreshed once (that is no retry). ``sent`` is set once the first
        attempt's request is sent or has ended (the prefetching caller also sets it when the
        task ends, however it ends)."""
        extensions: dict[str, Any] = {}
        if sent is not None:

            async def trace(event: str, info: dict[str, Any]) -> None:
                if event.endswith("send_request_body.complete"):
                    sent.set()

            extensions["trace"] = trace
        refreshed = False

        async def attempt(number: int) -> tuple[dict[str, Any], str]:
            nonlocal token, refreshed
            while True:
                resp = await self._send(url, token, what, delta, extensions, number)
                if sent is not None:
                    sent.set()
                if resp.status_code != 401 or refreshed:
                    return self._answer(resp, number, what=what, group=group), token
                refreshed = True
                token = await self._refreshed_token()

        return await self.retry.run(attempt, sleep=self._sleep)

    async def _send(
        self,
        url: str,
        token: str,
        what: str,
        delta: bool,
        extensions: dict[str, Any],
        number: int,
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "x-ms-throttle-priority": "Low",
        }
        if delta:
            headers["Prefer"] = f"odata.maxpagesize={self.page_size}"
        if "/transitiveMembers/" in url or what == "scope filter":
            # advanced queries (the OData cast, the scope filter) need it with $count=true,
            # on every page (a nextLink need not say it is one)
            headers["ConsistencyLevel"] = "eventual"
        self.graph_requests += 1
        try:
            resp = await self._http.get(url, headers=headers, extensions=extensions)
        except httpx.TransportError as e:
            if self._observe is not None:
                self._observe(None)
            log.info("graph %s: %s (attempt %d)", what, type(e).__name__, number)
            raise RetryableFailure(
                GraphUnavailable(
                    f"Microsoft Graph is not reachable ({type(e).__name__}) after {number} attempts"
                )
            ) from None
        if self._observe is not None:
            self._observe(resp.status_code)
        return resp

    def _answer(
        self, resp: httpx.Response, number: int, *, what: str, group: str | None
    ) -> dict[str, Any]:
        """The body of a 200; RetryableFailure for 429/503/504; the mapped error otherwise."""
        status = resp.status_code
        if status == 200:
            return self._parse(resp, what)
        if status == 401:
            code, _ = _error_body(resp)
            raise AuthError(
                f"Microsoft Graph refused the app's access token (HTTP 401 {code})".strip(),
                hint=(
                    "Microsoft Graph did not accept the app's token. Check that the app "
                    "is registered in this tenant and its secret is current."
                ),
            )
        if status not in RETRY_STATUSES:
            raise self._error(resp, what=what, group=group)
        retry_after = self.retry.retry_after(resp.headers.get("Retry-After"))
        log.info("graph %s: HTTP %d (attempt %d)", what, status, number)
        error: GraphError
        if status == 429:
            error = GraphThrottled(
                f"Microsoft Graph kept throttling {what} (HTTP 429) after {number} attempts",
                retry_after=retry_after,
            )
        else:
            error = GraphUnavailable(
                f"Microsoft Graph kept failing {what} (HTTP {status}) after {number} attempts"
            )
        raise RetryableFailure(error, retry_after)

    async def _refreshed_token(self) -> str:
        return await self.tokens.refresh()  # WatchedTokens asks a new token of what it wraps

    @staticmethod
    def _parse(resp: httpx.Response, what: str) -> dict[str, Any]:
        content = resp.content
        try:
            body = orjson.loads(content)
        except ValueError:
            # what orjson refuses but the stdlib reads (NaN, numbers beyond a double, lone
            # surrogates, UTF-16/32, a BOM) is read as before. (One difference: orjson reads
            # integers beyond 64 bits as floats; Graph's Edm.Int64 never is.)
            try:
                body = json.loads(content)
            except ValueError:
                raise GraphDataError(
                    f"Microsoft Graph answered {what} with something not JSON"
                ) from None
        if not isinstance(body, dict):
            raise GraphDataError(
                f"Microsoft Graph answered {what} with a JSON {type(body).__name__}"
            )
        return body

    @staticmethod
    def _error(resp: httpx.Response, *, what: str, group: str | None) -> GraphError:
        status = resp.status_code
        code, message = _error_body(resp)
        detail = (
            f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        )
        if status == 410 or code.lower() in DELTA_GONE_CODES:
            return DeltaExpired(
                f"the delta link expired ({detail}); a full read is needed",
                hint="Entra's change tracking expired; the next sync reads every user again.",
            )
        if status == 400 and what == "scope filter":
            return ScopeFilterRejected(
                f"Microsoft Graph refused the scope filter ({detail})",
                graph_message=message or f"HTTP {status} {code}".strip(),
            )
        if status == 403:
            permission = "GroupMember.Read.All" if group is not None else "User.Read.All"
            return GraphPermissionDenied(
                f"Microsoft Graph denied reading {what} ({detail})",
                hint=_permission_hint(permission),
            )
        if status == 404 and group is not None:
            return GraphNotFound(f"the scope group {group} does not exist in Entra ({detail})")
        if status == 404:
            return GraphNotFound(f"Microsoft Graph did not find {what} ({detail})", hint="")
        if status >= 500:
            return GraphUnavailable(f"Microsoft Graph failed reading {what} ({detail})")
        return GraphError(f"Microsoft Graph refused the {what} request ({detail})")


def _setter(event: asyncio.Event) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback that sets ``event`` (however the task ended)."""

    def done(_task: asyncio.Future[Any]) -> None:
        event.set()

    return done
