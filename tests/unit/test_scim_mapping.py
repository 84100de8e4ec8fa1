"""The SCIM adapter without a server: the DirectoryUser <-> SCIM User mapping (pure) and the
HTTP behaviour a real server cannot be made to show on demand (429 storms, 5xx, 412 races,
lost connections), through httpx.MockTransport."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sync.directories.base import NewDirectoryUser, UserPatch
from sync.directories.builtin import validate_patch
from sync.directories.scim import (
    SCIM_RETRY,
    ScimDirectory,
    error_for,
    from_scim_user,
    patch_operations,
    replaced_resource,
    scim_filter_string,
    to_scim_user,
)
from sync.errors import (
    DirectoryAuthError,
    DirectoryConflict,
    DirectoryError,
    DirectoryNotFound,
    DirectoryPreconditionFailed,
    DirectoryRejected,
    DirectoryUnavailable,
)

BASE = "https://pbx.example/scim/v2"
TOKEN = "s3cret-token-value"

RESOURCE: dict[str, Any] = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "u1",
    "externalId": "entra-1",
    "userName": "ann@c.example",
    "name": {"givenName": "Ann", "familyName": "Lee"},
    "displayName": "Ann Lee",
    "title": "Boss",
    "emails": [
        {"value": "ann@home.example", "type": "home"},
        {"value": "ann@c.example", "type": "work", "primary": True},
    ],
    "phoneNumbers": [
        {"value": "+46701234567", "type": "mobile"},
        {"value": "+4681234567", "type": "work"},
    ],
    "roles": [{"value": "sales"}, {"value": "sto"}],
    "meta": {"resourceType": "User", "version": 'W/"3"'},
}


# --- mapping --------------------------------------------------------------------------------


def test_a_scim_user_maps_to_a_directory_user() -> None:
    u = from_scim_user(RESOURCE)
    assert u.id == "u1" and u.entra_id == "entra-1"
    assert (u.first_name, u.last_name, u.display_name) == ("Ann", "Lee", "Ann Lee")
    assert u.email == "ann@c.example"
    assert u.phones == ("+46701234567", "+4681234567")
    assert u.tags == ("sales", "sto")
    assert u.active is True and u.sync_enabled is True


def test_the_email_read_is_the_primary_else_the_work_else_the_first() -> None:
    work = {"id": "x", "emails": [{"value": "h@x.example"}, {"value": "w@x", "type": "work"}]}
    assert from_scim_user(work).email == "w@x"
    assert from_scim_user({"id": "x", "emails": [{"value": "h@x.example"}]}).email == "h@x.example"


def test_a_lenient_read_tolerates_odd_values() -> None:
    u = from_scim_user(
        {"id": "x", "emails": [{"value": "not-an-email"}], "active": "yes", "name": "bad"}
    )
    assert u.email == "not-an-email" and u.active is True and u.first_name is None


def test_a_user_without_id_is_bad_data() -> None:
    with pytest.raises(DirectoryError) as e:
        from_scim_user({"userName": "x"})
    assert e.value.code == "directory_bad_data"


def test_a_new_user_maps_to_a_scim_creation_body() -> None:
    body = to_scim_user(
        NewDirectoryUser(
            first_name="Ann",
            last_name="Lee",
            display_name="Ann Lee",
            email="ann@c.example",
            phones=("+46701234567", "+4681234567"),
            tags=("sales",),
            entra_id="entra-1",
        )
    )
    assert body["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]
    assert body["userName"] == "ann@c.example"
    assert body["externalId"] == "entra-1"
    assert body["name"] == {"givenName": "Ann", "familyName": "Lee"}
    assert body["emails"] == [{"value": "ann@c.example", "type": "work", "primary": True}]
    assert body["phoneNumbers"] == [
        {"value": "+46701234567", "type": "work", "primary": True},
        {"value": "+4681234567", "type": "work"},
    ]
    assert body["roles"] == [{"value": "sales"}]
    assert body["active"] is True
    assert "id" not in body


def test_the_username_of_a_new_user_without_email_is_the_entra_id_else_generated() -> None:
    assert to_scim_user(NewDirectoryUser(entra_id="e-9"))["userName"] == "e-9"
    assert to_scim_user(NewDirectoryUser())["userName"].startswith("es-")


def test_an_invalid_email_is_rejected_before_sending() -> None:
    with pytest.raises(DirectoryRejected):
        to_scim_user(NewDirectoryUser(email="no at sign"))


def _ops(patch: dict[str, Any], current: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return patch_operations(current or RESOURCE, validate_patch(UserPatch(patch)))


def test_a_patch_replaces_only_the_given_fields() -> None:
    assert _ops({"display_name": "A. Lee", "tags": ["x"]}) == [
        {"op": "replace", "path": "displayName", "value": "A. Lee"},
        {"op": "replace", "path": "roles", "value": [{"value": "x"}]},
    ]


def test_a_patch_with_none_removes_the_attribute() -> None:
    assert _ops({"first_name": None, "phones": None}) == [
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "phoneNumbers"},
    ]


def test_clearing_an_absent_attribute_sends_nothing() -> None:
    assert _ops({"tags": None, "display_name": None}, {"id": "x", "userName": "x"}) == []


def test_an_unchanged_value_sends_nothing() -> None:
    assert _ops({"display_name": "Ann Lee", "phones": ["+46701234567", "+4681234567"]}) == []


def test_changed_phones_keep_their_type_and_new_ones_are_work() -> None:
    (op,) = _ops({"phones": ["+4681234567", "+46709999999", "+46701234567"]})
    assert op["value"] == [
        {"value": "+4681234567", "type": "work", "primary": True},
        {"value": "+46709999999", "type": "work"},
        {"value": "+46701234567", "type": "mobile"},
    ]


def test_a_new_email_moves_a_username_made_from_the_email() -> None:
    assert _ops({"email": "a.lee@c.example"}) == [
        {"op": "replace", "path": "userName", "value": "a.lee@c.example"},
        {
            "op": "replace",
            "path": "emails",
            "value": [{"value": "a.lee@c.example", "type": "work", "primary": True}],
        },
    ]


def test_a_new_email_leaves_a_username_someone_else_chose() -> None:
    ops = _ops({"email": "a.lee@c.example"}, {**RESOURCE, "userName": "alee"})
    assert [o["path"] for o in ops] == ["emails"]


def test_a_put_body_keeps_what_the_adapter_does_not_map() -> None:
    body = replaced_resource(RESOURCE, validate_patch(UserPatch({"last_name": None})))
    assert body["title"] == "Boss"
    assert body["name"] == {"givenName": "Ann"}
    assert body["emails"] == RESOURCE["emails"]
    assert "meta" not in body


def test_filter_values_are_json_string_literals() -> None:
    assert scim_filter_string('a"b\\c') == '"a\\"b\\\\c"'


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("100000", 120.0), ("-1", None), ("soon", None), (None, None)],
)
def test_retry_after_is_read_in_seconds_and_capped(
    header: str | None, seconds: float | None
) -> None:
    assert SCIM_RETRY.retry_after(header) == seconds


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, DirectoryRejected),
        (401, DirectoryAuthError),
        (403, DirectoryAuthError),
        (404, DirectoryNotFound),
        (409, DirectoryConflict),
        (412, DirectoryPreconditionFailed),
        (503, DirectoryUnavailable),
        (418, DirectoryError),
    ],
)
def test_http_statuses_map_to_directory_errors(status: int, error: type[DirectoryError]) -> None:
    err = error_for(status, {"scimType": "invalidValue", "detail": "bad\nvalue"}, "scim: GET /x")
    assert type(err) is error
    assert "invalidValue" in err.message and "bad value" in err.message


def test_an_unsupported_operation_has_its_own_code() -> None:
    assert error_for(501, None, "x").code == "directory_unsupported"


# --- HTTP behaviour (MockTransport) ---------------------------------------------------------

SPC_FULL = {
    "patch": {"supported": True},
    "etag": {"supported": True},
    "filter": {"supported": True},
}


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


Handler = Callable[[httpx.Request], httpx.Response]


def scim_json(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=b"" if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/scim+json", **headers},
    )


async def make(
    handler: Handler, sleep: Sleeps, **kw: Any
) -> tuple[ScimDirectory, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ScimDirectory(BASE, SecretStr(TOKEN), http=http, sleep=sleep, **kw), http


def routed(
    routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]],
    spc: Any = SPC_FULL,
) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path.removeprefix("/scim/v2")
        if path == "/ServiceProviderConfig":
            return scim_json(200, spc) if spc is not None else scim_json(404, {"detail": "no"})
        return routes[(request.method, path)](request)

    return handler, seen


async def test_a_429_storm_is_retried_with_retry_after_then_unavailable() -> None:
    sleep = Sleeps()
    handler, seen = routed(
        {("GET", "/Users/u1"): lambda r: scim_json(429, None, **{"Retry-After": "7"})}
    )
    d, http = await make(handler, sleep, max_retries=3)
    async with http:
        with pytest.raises(DirectoryUnavailable) as e:
            await d.get("u1")
    assert sleep.calls == [7.0, 7.0, 7.0]
    assert len([r for r in seen if r.url.path.endswith("/Users/u1")]) == 4
    assert "after 4 tries" in e.value.message and e.value.retryable


async def test_a_transient_5xx_is_retried_with_backoff_and_then_succeeds() -> None:
    sleep = Sleeps()
    answers = iter([scim_json(503), scim_json(502), scim_json(200, RESOURCE)])
    handler, _ = routed({("GET", "/Users/u1"): lambda r: next(answers)})
    d, http = await make(handler, sleep)
    async with http:
        u = await d.get("u1")
    assert u is not None and u.id == "u1"
    assert sleep.calls == [0.5, 1.0]


async def test_a_create_is_not_retried_after_a_5xx() -> None:
    sleep = Sleeps()
    handler, seen = routed({("POST", "/Users"): lambda r: scim_json(500, {"detail": "boom"})})
    d, http = await make(handler, sleep)
    async with http:
        with pytest.raises(DirectoryUnavailable):
            await d.create(NewDirectoryUser(email="a@c.example"))
    assert sleep.calls == []
    assert len([r for r in seen if r.method == "POST"]) == 1


async def test_a_lost_connection_is_retried_then_unavailable() -> None:
    sleep = Sleeps()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    handler, _ = routed({("GET", "/Users/u1"): refuse})
    d, http = await make(handler, sleep, max_retries=2)
    async with http:
        with pytest.raises(DirectoryUnavailable, match="ConnectError"):
            await d.get("u1")
    assert len(sleep.calls) == 2


async def test_a_412_re_reads_and_retries_once() -> None:
    sleep = Sleeps()
    versions = iter(['W/"3"', 'W/"4"'])
    patches: list[httpx.Request] = []

    def get(request: httpx.Request) -> httpx.Response:
        return scim_json(200, RESOURCE, ETag=next(versions))

    def patch(request: httpx.Request) -> httpx.Response:
        patches.append(request)
        if len(patches) == 1:
            return scim_json(412, {"detail": "changed"})
        return scim_json(200, {**RESOURCE, "displayName": "X"})

    handler, _ = routed({("GET", "/Users/u1"): get, ("PATCH", "/Users/u1"): patch})
    d, http = await make(handler, sleep)
    async with http:
        u = await d.update("u1", UserPatch({"display_name": "X"}))
    assert u.display_name == "X"
    assert [p.headers["If-Match"] for p in patches] == ['W/"3"', 'W/"4"']
    body = json.loads(patches[1].content)
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]
    assert body["Operations"] == [{"op": "replace", "path": "displayName", "value": "X"}]


async def test_a_second_412_raises_precondition_failed() -> None:
    handler, _ = routed(
        {
            ("GET", "/Users/u1"): lambda r: scim_json(200, RESOURCE, ETag='W/"3"'),
            ("PATCH", "/Users/u1"): lambda r: scim_json(412, {"detail": "changed"}),
        }
    )
    d, http = await make(handler, Sleeps())
    async with http:
        with pytest.raises(DirectoryPreconditionFailed):
            await d.update("u1", UserPatch({"display_name": "X"}))


async def test_a_204_patch_answer_is_followed_by_a_read() -> None:
    state = {"displayName": "Ann Lee"}

    def get(request: httpx.Request) -> httpx.Response:
        return scim_json(200, {**RESOURCE, **state})

    def patch(request: httpx.Request) -> httpx.Response:
        state["displayName"] = "New"
        return scim_json(204)

    handler, _ = routed({("GET", "/Users/u1"): get, ("PATCH", "/Users/u1"): patch})
    d, http = await make(handler, Sleeps())
    async with http:
        assert (await d.update("u1", UserPatch({"display_name": "New"}))).display_name == "New"


async def test_without_a_service_provider_config_updates_use_put_without_if_match() -> None:
    puts: list[httpx.Request] = []

    def put(request: httpx.Request) -> httpx.Response:
        puts.append(request)
        return scim_json(200, json.loads(request.content) | {"id": "u1"})

    handler, seen = routed(
        {
            ("GET", "/Users/u1"): lambda r: scim_json(200, RESOURCE, ETag='W/"3"'),
            ("PUT", "/Users/u1"): put,
        },
        spc=None,
    )
    d, http = await make(handler, Sleeps())
    async with http:
        u = await d.update("u1", UserPatch({"tags": ["x"]}))
    assert u.tags == ("x",)
    assert "If-Match" not in puts[0].headers
    assert not any(r.method == "PATCH" for r in seen)


async def test_without_filter_support_lookups_scan_the_list() -> None:
    seen_params: list[dict[str, str]] = []

    def users(request: httpx.Request) -> httpx.Response:
        seen_params.append(dict(request.url.params))
        return scim_json(200, {"totalResults": 1, "Resources": [RESOURCE]})

    handler, _ = routed({("GET", "/Users"): users}, spc={"patch": {"supported": True}})
    d, http = await make(handler, Sleeps())
    async with http:
        found = await d.find_by_phone("+4681234567")
        none = await d.find_by_phone("+4600")
    assert [u.id for u in found] == ["u1"] and none == []
    assert all("filter" not in p for p in seen_params)


async def test_a_server_ignoring_count_is_listed_in_one_page() -> None:
    calls: list[dict[str, str]] = []
    everyone = [{**RESOURCE, "id": f"u{i}"} for i in range(30)]

    def users(request: httpx.Request) -> httpx.Response:
        calls.append(dict(request.url.params))
        return scim_json(200, {"totalResults": 30, "Resources": everyone})

    handler, _ = routed({("GET", "/Users"): users})
    d, http = await make(handler, Sleeps(), page_size=10)
    async with http:
        listed = await d.list_users()
    assert len(listed) == 30
    assert calls == [{"startIndex": "1", "count": "10"}]


async def test_paging_follows_total_results_and_the_page_size_cap() -> None:
    calls: list[dict[str, str]] = []
    everyone = [{**RESOURCE, "id": f"u{i}"} for i in range(25)]

    def users(request: httpx.Request) -> httpx.Response:
        calls.append(dict(request.url.params))
        start, count = int(request.url.params["startIndex"]), int(request.url.params["count"])
        page = everyone[start - 1 : start - 1 + count]
        return scim_json(200, {"totalResults": 25, "Resources": page})

    spc = {**SPC_FULL, "pagination": {"index": True, "maxPageSize": 10}}
    handler, _ = routed({("GET", "/Users"): users}, spc=spc)
    d, http = await make(handler, Sleeps())
    async with http:
        listed = await d.list_users()
    assert [u.id for u in listed] == [f"u{i}" for i in range(25)]
    assert [c["startIndex"] for c in calls] == ["1", "11", "21"]
    assert {c["count"] for c in calls} == {"10"}


async def test_the_token_is_sent_as_bearer_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    handler, seen = routed({("GET", "/Users/u1"): lambda r: scim_json(401, {"detail": "no"})})
    d, http = await make(handler, Sleeps())
    async with http:
        with pytest.raises(DirectoryAuthError) as e:
            await d.get("u1")
    assert seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text and TOKEN not in str(e.value) and TOKEN not in repr(d)


async def test_user_ids_are_escaped_in_the_path() -> None:
    handler, seen = routed({("GET", "/Users/a/../b"): lambda r: scim_json(404, {})})
    d, http = await make(handler, Sleeps())
    async with http:
        assert await d.get("a/../b") is None
    assert seen[-1].url.raw_path == b"/scim/v2/Users/a%2F..%2Fb"


async def test_filters_are_sent_for_lookups_when_supported() -> None:
    filters: list[str] = []

    def users(request: httpx.Request) -> httpx.Response:
        filters.append(request.url.params["filter"])
        return scim_json(200, {"totalResults": 0, "Resources": []})

    handler, _ = routed({("GET", "/Users"): users})
    d, http = await make(handler, Sleeps())
    async with http:
        await d.find_by_phone("+461")
        await d.find_by_email("A@c.example")
        await d.find_by_external_id("e1")
    assert filters == [
        'phoneNumbers.value eq "+461"',
        'emails.value eq "A@c.example"',
        'externalId eq "e1"',
    ]
