"""The tenant simulator as a Graph/Entra look-alike, spoken to over real HTTP on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.devtools.simulator import (
    DEFAULT_SELECT,
    TenantSim,
    load_tenant_file,
    serve_simulator,
    synthetic_users,
)
from sync.errors import InputError

EVENTUAL = {"ConsistencyLevel": "eventual"}


def members_url(gid: str) -> str:
    return f"/v1.0/groups/{gid}/transitiveMembers/microsoft.graph.user?$count=true"


async def delta_link(http: httpx.AsyncClient, select: str) -> str:
    """Run an initial delta round to its end; its deltaLink."""
    url: str | None = f"/v1.0/users/delta?$select={select}"
    link = ""
    while url:
        body = (await http.get(url)).json()
        url = body.get("@odata.nextLink")
        link = body.get("@odata.deltaLink", link)
    return link


@pytest.fixture
def sim() -> TenantSim:
    users = synthetic_users(250, disabled_every=5)
    users[0] = {k: v for k, v in users[0].items() if k != "mobilePhone"}
    return TenantSim(users, [{"id": "g1", "displayName": "G1", "members": [users[1]["id"]]}])


@pytest.fixture
async def http(sim: TenantSim) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_simulator(sim) as url:
        token = sim.issue_token()
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            yield client


async def test_serve_simulator_yields_a_loopback_url_with_a_real_port(sim: TenantSim) -> None:
    async with serve_simulator(sim) as url:
        assert url.startswith("http://127.0.0.1:")
        assert int(url.rsplit(":", 1)[1]) > 0


async def test_graph_without_bearer_token_answers_401(sim: TenantSim) -> None:
    async with serve_simulator(sim) as url, httpx.AsyncClient() as client:
        resp = await client.get(f"{url}/v1.0/users")
        forged = await client.get(f"{url}/v1.0/users", headers={"Authorization": "Bearer x"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert forged.status_code == 401


async def test_users_default_page_is_100_with_graph_shape(http: httpx.AsyncClient) -> None:
    body = (await http.get("/v1.0/users")).json()
    assert len(body["value"]) == 100
    assert body["@odata.context"].endswith(f"/v1.0/$metadata#users({','.join(DEFAULT_SELECT)})")
    assert "$skiptoken=" in body["@odata.nextLink"]
    assert set(body["value"][0]) == set(DEFAULT_SELECT)


async def test_select_projects_the_named_properties_and_always_id(
    http: httpx.AsyncClient,
) -> None:
    body = (await http.get("/v1.0/users", params={"$select": "mobilePhone,department"})).json()
    first = body["value"][0]
    assert set(first) == {"mobilePhone", "department", "id"}
    assert first["mobilePhone"] is None  # selected but unset: null, like Graph


async def test_paging_visits_every_user_once(http: httpx.AsyncClient) -> None:
    seen: list[str] = []
    url: str | None = "/v1.0/users?$select=id&$top=99"
    while url:
        body = (await http.get(url)).json()
        seen += [u["id"] for u in body["value"]]
        url = body.get("@odata.nextLink")
    assert len(seen) == 250 and len(set(seen)) == 250


async def test_top_above_999_is_refused(http: httpx.AsyncClient) -> None:
    resp = await http.get("/v1.0/users", params={"$top": "1000"})
    assert resp.status_code == 400


async def test_filter_account_enabled_is_supported_and_contains_is_refused(
    http: httpx.AsyncClient,
) -> None:
    enabled = await http.get(
        "/v1.0/users",
        params={"$filter": "accountEnabled eq true", "$select": "accountEnabled", "$top": "999"},
    )
    # Graph has no contains() on users (the full operator set: tests/unit/test_odata_filter.py)
    other = await http.get("/v1.0/users", params={"$filter": "contains(mail,'a')"})
    assert enabled.status_code == 200
    values = enabled.json()["value"]
    assert len(values) == 200 and all(u["accountEnabled"] for u in values)
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "Request_UnsupportedQuery"


async def test_filtered_next_link_keeps_the_filter(http: httpx.AsyncClient) -> None:
    first = (
        await http.get("/v1.0/users", params={"$filter": "accountEnabled eq false", "$top": "10"})
    ).json()
    second = (await http.get(first["@odata.nextLink"])).json()
    assert len(first["value"]) == 10 and len(second["value"]) == 10
    assert {u["id"] for u in first["value"]}.isdisjoint(u["id"] for u in second["value"])


async def test_update_is_visible_in_the_next_listing(
    sim: TenantSim, http: httpx.AsyncClient
) -> None:
    uid = sim.user_ids[3]
    before = (await http.get("/v1.0/users", params={"$select": "displayName"})).json()
    sim.update_user(uid, displayName="Renamed")
    after = (await http.get("/v1.0/users", params={"$select": "displayName"})).json()
    assert before["value"][3]["displayName"] == "User 3"
    assert after["value"][3] == {"displayName": "Renamed", "id": uid}


async def test_group_members_expand_nested_groups(sim: TenantSim, http: httpx.AsyncClient) -> None:
    ids = sim.user_ids
    sim.set_group("outer", [ids[7], "g1", "inner"])
    sim.set_group("inner", [ids[8], "outer", "not-an-object"])
    resp = await http.get(members_url("outer"), headers=EVENTUAL)
    body = resp.json()
    assert {u["id"] for u in body["value"]} == {ids[1], ids[7], ids[8]}
    assert {u["@odata.type"] for u in body["value"]} == {"#microsoft.graph.user"}
    assert body["@odata.count"] == 3


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/v1.0/groups/g1/transitiveMembers/microsoft.graph.user?$count=true", {}),
        (
            "/v1.0/groups/g1/transitiveMembers/microsoft.graph.user",
            {"ConsistencyLevel": "eventual"},
        ),
    ],
)
async def test_the_user_cast_needs_consistency_level_eventual_and_count(
    http: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> None:
    resp = await http.get(url, headers=headers)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "Request_UnsupportedQuery" and "ConsistencyLevel" in error["message"]


async def test_unknown_group_answers_404(http: httpx.AsyncClient) -> None:
    resp = await http.get(members_url("nope"), headers=EVENTUAL)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "Request_ResourceNotFound"


async def test_delta_reports_deleted_users_with_removed_marker(
    sim: TenantSim, http: httpx.AsyncClient
) -> None:
    link = await delta_link(http, "displayName")
    soft, hard = sim.user_ids[0], sim.user_ids[1]
    sim.delete_user(soft)
    sim.purge_user(hard)
    body = (await http.get(link)).json()
    assert body["value"] == [
        {"id": soft, "@removed": {"reason": "changed"}},
        {"id": hard, "@removed": {"reason": "deleted"}},
    ]
    sim.purge_user(soft)  # purged from the deleted items later: now gone for good
    body = (await http.get(body["@odata.deltaLink"])).json()
    assert body["value"] == [{"id": soft, "@removed": {"reason": "deleted"}}]


async def test_a_delta_object_carries_only_what_changed_and_no_nulls(
    sim: TenantSim, http: httpx.AsyncClient
) -> None:
    link = await delta_link(http, "displayName,mail,mobilePhone,accountEnabled")
    uid = sim.user_ids[3]
    sim.update_user(uid, displayName="Renamed")
    sim.update_user(sim.user_ids[4], mobilePhone=None)  # cleared: sent as null
    body = (await http.get(link)).json()
    assert body["value"] == [
        {"displayName": "Renamed", "id": uid},
        {"mobilePhone": None, "id": sim.user_ids[4]},
    ]


async def test_the_initial_round_omits_unset_properties(http: httpx.AsyncClient) -> None:
    body = (await http.get("/v1.0/users/delta?$select=displayName,mobilePhone")).json()
    first = body["value"][0]  # users[0] has no mobilePhone
    assert first == {"displayName": "User 0", "id": first["id"]}


async def test_a_user_changed_twice_comes_twice_and_a_restore_comes_whole(
    sim: TenantSim, http: httpx.AsyncClient
) -> None:
    link = await delta_link(http, "displayName,mail")
    uid = sim.user_ids[5]
    sim.update_user(uid, displayName="One")
    sim.delete_user(uid)
    sim.restore_user(uid)
    sim.update_user(uid, mail="two@contoso.example")
    body = (await http.get(link)).json()
    assert body["value"] == [
        {"displayName": "One", "id": uid},
        {"id": uid, "@removed": {"reason": "changed"}},
        {"displayName": "One", "mail": "user5@contoso.example", "id": uid},
        {"mail": "two@contoso.example", "id": uid},
    ]


async def test_full_delta_objects_send_the_whole_projection(sim: TenantSim) -> None:
    sim.full_delta_objects = True
    async with serve_simulator(sim) as url, httpx.AsyncClient(base_url=url) as http:
        http.headers["Authorization"] = f"Bearer {sim.issue_token()}"
        link = await delta_link(http, "displayName,mobilePhone")
        uid = sim.user_ids[0]
        sim.update_user(uid, displayName="Renamed")
        body = (await http.get(link)).json()
    assert body["value"] == [{"displayName": "Renamed", "mobilePhone": None, "id": uid}]


async def test_an_expired_delta_link_answers_410_with_a_location(
    sim: TenantSim, http: httpx.AsyncClient
) -> None:
    link = await delta_link(http, "displayName")
    sim.faults.delta_expired = True
    resp = await http.get(link)
    assert resp.status_code == 410
    assert resp.json()["error"]["code"] == "syncStateNotFound"
    assert resp.headers["Location"].endswith("/v1.0/users/delta?$deltatoken=")


async def test_request_counters_count_by_kind(sim: TenantSim, http: httpx.AsyncClient) -> None:
    await http.get("/v1.0/users")
    await http.get("/v1.0/users/delta")
    await http.get(members_url("g1"), headers=EVENTUAL)
    assert sim.requests["users"] == 1
    assert sim.requests["delta"] == 1
    assert sim.requests["members"] == 1
    assert sim.requests["graph"] == 3


async def test_fail_at_request_fails_that_many_requests_then_recovers(
    sim: TenantSim, http: httpx.AsyncClient
) -> None:
    sim.faults.fail_at_request = 2
    sim.faults.fail_times = 2
    sim.faults.fail_status = 504
    codes = [(await http.get("/v1.0/users")).status_code for _ in range(4)]
    assert codes == [200, 504, 504, 200]


async def test_throttle_every_answers_429_with_retry_after(
    sim: TenantSim, http: httpx.AsyncClient
) -> None:
    sim.faults.throttle_every = 3
    sim.faults.retry_after = 9
    resps = [await http.get("/v1.0/users") for _ in range(3)]
    assert [r.status_code for r in resps] == [200, 200, 429]
    assert resps[2].headers["Retry-After"] == "9"


async def test_retry_after_can_be_fractional_or_an_http_date(
    sim: TenantSim, http: httpx.AsyncClient
) -> None:
    sim.faults.throttle_every = 1
    sim.faults.retry_after = 0.5
    fractional = await http.get("/v1.0/users")
    sim.now = lambda: datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    sim.faults.retry_after = 30
    sim.faults.retry_after_as_date = True
    dated = await http.get("/v1.0/users")
    assert fractional.headers["Retry-After"] == "0.5"
    assert dated.headers["Retry-After"] == "Thu, 01 Jan 2026 12:00:30 GMT"


async def test_token_endpoint_issues_a_bearer_token_graph_accepts(sim: TenantSim) -> None:
    async with serve_simulator(sim) as url, httpx.AsyncClient() as client:
        resp = await client.post(
            f"{url}/contoso/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "a",
                "client_secret": "b",
                "scope": "https://graph.microsoft.com/.default",
            },
        )
        body = resp.json()
        users = await client.get(
            f"{url}/v1.0/users", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert users.status_code == 200


async def test_token_error_fault_answers_an_aadsts_body(sim: TenantSim) -> None:
    sim.faults.token_error_code = 400
    async with serve_simulator(sim) as url, httpx.AsyncClient() as client:
        resp = await client.post(
            f"{url}/contoso/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"},
        )
    body = resp.json()
    assert resp.status_code == 400
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided")


async def test_openid_configuration_names_an_https_token_endpoint(sim: TenantSim) -> None:
    async with serve_simulator(sim) as url, httpx.AsyncClient() as client:
        body = (await client.get(f"{url}/contoso/v2.0/.well-known/openid-configuration")).json()
    host = url.removeprefix("http://")
    assert body["token_endpoint"] == f"https://{host}/contoso/oauth2/v2.0/token"


def _write(tmp_path: Path, content: str) -> Path:
    p = tmp_path / "tenant.json"
    p.write_text(content)
    return p


def test_load_tenant_file_reads_users_and_groups(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "users": synthetic_users(3),
        "groups": [{"id": "g", "displayName": "G", "members": [synthetic_users(1)[0]["id"]]}],
    }
    sim = load_tenant_file(_write(tmp_path, json.dumps(data)))
    assert len(sim.user_ids) == 3
    assert sim.group_member_ids("g") == [data["users"][0]["id"]]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[]", '"users" list'),
        ('{"users": {}}', '"users" must be a list'),
        ('{"users": [{"displayName": "x"}]}', 'users[0] has no string "id"'),
        ('{"users": [{"id": "a"}, {"id": "a"}]}', 'repeats the id "a"'),
        ('{"users": [], "groups": [{"id": "g", "members": [1]}]}', "members must be a list"),
    ],
)
def test_load_tenant_file_names_the_file_and_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(InputError) as info:
        load_tenant_file(path)
    assert str(path) in info.value.message
    assert problem in info.value.message


def test_load_tenant_file_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_tenant_file(tmp_path / "missing.json")
    assert "missing.json" in info.value.message and "cannot read" in info.value.message
