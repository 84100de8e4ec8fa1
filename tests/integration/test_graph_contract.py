"""Contract tests: Microsoft's documented Graph examples (tests/fixtures/graph, each naming its
page in ``_source``) served over loopback HTTP to our client, and the simulator's answers
checked against the same documented shapes, so that client and simulator cannot drift apart
from Graph (or from each other) again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from sync.devtools.simulator import TenantSim, serve_simulator, synthetic_users
from sync.errors import DeltaExpired
from sync.graph.attributes import GRAPH_USER_ATTRIBUTES
from sync.graph.auth import StaticTokenProvider
from sync.graph.client import GraphClient
from sync.models import EntraUser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "graph"
GRAPH = "https://graph.microsoft.com/v1.0"
SELECT = ["displayName", "givenName", "surname", "mail", "mobilePhone", "businessPhones"]
PAGE_KEYS = {"@odata.context", "@odata.nextLink", "@odata.deltaLink", "@odata.count", "value"}
MOD = "25dcffff-959e-4ece-9973-e5d9b800e8cc"  # "MOD Administrator" in the deltaLink example
SOFT_DELETED = "8ffff70c-1c63-4860-b963-e34ec660931d"
PURGED = "86462606-fde0-4fc4-9e0c-a20eb73e54c6"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    assert data["_source"].startswith("https://learn.microsoft.com/graph/")
    return data


def shape_problems(body: Any, kind: str) -> list[str]:
    """How a page differs from the documented shapes (``kind``: users, delta or members)."""
    problems: list[str] = []
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        return ["a page is an object with a 'value' list"]
    if extra := set(body) - PAGE_KEYS:
        problems.append(f"unknown page keys {sorted(extra)}")
    if "@odata.nextLink" in body and "@odata.deltaLink" in body:
        problems.append("a page has both a nextLink and a deltaLink")
    for entry in body["value"]:
        if not isinstance(entry.get("id"), str):
            problems.append(f"an entry without an id: {entry}")
        if "@removed" in entry:
            if kind != "delta" or set(entry) != {"id", "@removed"}:
                problems.append(f"a removal is only an id and @removed: {entry}")
            elif entry["@removed"].get("reason") not in ("changed", "deleted"):
                problems.append(f"a removal reason is changed or deleted: {entry}")
            continue
        typed = entry.get("@odata.type")
        if typed is not None and not (kind == "members" and typed.startswith("#microsoft.graph.")):
            problems.append(f"an unexpected @odata.type: {entry}")
        names = set(entry) - {"id", "@odata.type"}
        if unknown := names - GRAPH_USER_ATTRIBUTES:
            problems.append(f"not user properties: {sorted(unknown)}")
    return problems


def removal_shapes(body: dict[str, Any]) -> set[tuple[str, ...]]:
    return {tuple(sorted(e)) for e in body["value"] if "@removed" in e}


@dataclass
class Documented:
    """A loopback server answering each request with the next documented response."""

    url: str
    requests: list[web.Request] = field(default_factory=list)


@asynccontextmanager
async def serve_documented(
    *names: str, extra: list[Any] | None = None
) -> AsyncIterator[Documented]:
    """Serve the fixtures' responses in order (Graph's host in their links becomes ours)."""
    fixtures = [fixture(n) for n in names]
    answers: list[tuple[int, dict[str, str], str]] = []
    for f in fixtures:
        for body in f["responses"]:
            if extra is not None:
                body = {**body, "value": [*body["value"], *extra]}
            answers.append((f.get("status", 200), f.get("headers", {}), json.dumps(body)))
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    server = Documented("")

    async def answer(request: web.Request) -> web.Response:
        server.requests.append(request)
        status, headers, text = answers[min(len(server.requests), len(answers)) - 1]
        local = {k: v.replace(GRAPH, f"{server.url}/v1.0") for k, v in headers.items()}
        text = text.replace(GRAPH, f"{server.url}/v1.0")
        return web.Response(
            status=status, text=text, content_type="application/json", headers=local
        )

    app.router.add_get("/{tail:.*}", answer)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield server
    finally:
        await runner.cleanup()


@asynccontextmanager
async def client_of(url: str) -> AsyncIterator[GraphClient]:
    async with httpx.AsyncClient() as http:
        yield GraphClient(StaticTokenProvider("t"), base_url=f"{url}/v1.0", http=http)


def stored(uid: str, *, enabled: bool = True) -> EntraUser:
    attrs = {
        "displayName": "Old Name",
        "mail": "mod@contoso.example",
        "mobilePhone": "+46701234567",
        "businessPhones": ["+4681234567"],
    }
    return EntraUser(uid, enabled, attrs)


# --- the documented examples are documented shapes, and the simulator keeps to them -----------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("user-list-response.json", "users"),
        ("user-delta-initial-round.json", "delta"),
        ("user-delta-deltalink-response.json", "delta"),
        ("group-transitivemembers-response.json", "members"),
        ("group-transitivemembers-user-cast-response.json", "members"),
    ],
)
def test_the_documented_examples_have_the_documented_shapes(name: str, kind: str) -> None:
    for body in fixture(name)["responses"]:
        assert shape_problems(body, kind) == []


async def test_the_simulator_answers_in_the_documented_shapes() -> None:
    sim = TenantSim(
        synthetic_users(30), [{"id": "g", "members": ["00000001-0000-4000-8000-000000000001"]}]
    )
    documented = fixture("user-delta-deltalink-response.json")["responses"][0]
    purged = fixture("user-delta-initial-round.json")["responses"][0]
    async with serve_simulator(sim) as url, httpx.AsyncClient(base_url=url) as http:
        http.headers["Authorization"] = f"Bearer {sim.issue_token()}"
        users = (await http.get("/v1.0/users?$select=displayName,mail")).json()
        first = (await http.get("/v1.0/users/delta?$select=displayName,mail")).json()
        ids = sim.user_ids
        sim.update_user(ids[1], displayName="Renamed")
        sim.delete_user(ids[2])
        sim.purge_user(ids[3])
        delta = (await http.get(first["@odata.deltaLink"])).json()
        members = await http.get(
            "/v1.0/groups/g/transitiveMembers/microsoft.graph.user?$count=true",
            headers={"ConsistencyLevel": "eventual"},
        )
    assert shape_problems(users, "users") == []
    assert shape_problems(first, "delta") == []
    assert shape_problems(delta, "delta") == []
    assert shape_problems(members.json(), "members") == []
    # the same removal entries as Microsoft's examples, both reasons
    assert removal_shapes(delta) == removal_shapes(documented) == removal_shapes(purged)
    assert [e.get("@removed") for e in delta["value"]] == [
        None,
        {"reason": "changed"},
        {"reason": "deleted"},
    ]
    # a changed user carries what changed (as Prefer: return=minimal documents), never nulls
    assert delta["value"][0] == {"displayName": "Renamed", "id": ids[1]}


# --- our client against the documented examples ------------------------------------------------


async def test_partial_delta_keeps_mail_and_phones() -> None:
    known = {MOD: stored(MOD)}
    async with serve_documented("user-delta-deltalink-response.json") as graph:
        async with client_of(graph.url) as client:
            link = f"{graph.url}/v1.0/users/delta?$deltatoken=x"
            result = await client.read_delta(SELECT, link, known)
    (user,) = result.changed
    assert user.attrs["displayName"] == "MOD Administrator"
    assert user.attrs["mail"] == "mod@contoso.example"
    assert user.raw_phones == (("mobilePhone", "+46701234567"), ("businessPhones", "+4681234567"))
    assert result.complete


async def test_delta_without_account_enabled_keeps_disabled() -> None:
    known = {MOD: stored(MOD, enabled=False)}
    async with serve_documented("user-delta-deltalink-response.json") as graph:
        async with client_of(graph.url) as client:
            link = f"{graph.url}/v1.0/users/delta?$deltatoken=x"
            result = await client.read_delta(SELECT, link, known)
    (user,) = result.changed
    assert user.enabled is False


async def test_a_delta_object_of_an_unknown_user_without_account_enabled_is_unreadable() -> None:
    async with serve_documented("user-delta-initial-round.json") as graph:
        async with client_of(graph.url) as client:
            result = await client.read_delta(SELECT, None, {})
    assert result.changed == []
    assert len(result.invalid) == 7 and all("accountEnabled" in r for r in result.invalid)
    assert not result.complete
    assert result.removed == [(PURGED, "deleted")]


async def test_soft_delete_vs_permanent() -> None:
    known = {MOD: stored(MOD), SOFT_DELETED: stored(SOFT_DELETED), PURGED: stored(PURGED)}
    async with serve_documented("user-delta-deltalink-response.json") as graph:
        async with client_of(graph.url) as client:
            soft = await client.read_delta(SELECT, f"{graph.url}/v1.0/users/delta?x=1", known)
    async with serve_documented("user-delta-initial-round.json") as graph:
        async with client_of(graph.url) as client:
            hard = await client.read_delta(SELECT, None, known)
    assert soft.removed == [(SOFT_DELETED, "changed")]
    assert hard.removed == [(PURGED, "deleted")]


async def test_a_full_read_without_account_enabled_is_unreadable_not_enabled() -> None:
    async with serve_documented("user-list-response.json") as graph:
        async with client_of(graph.url) as client:
            snap = await client.read_users(SELECT)
    assert snap.users == ()
    assert not snap.complete and len(snap.invalid) == 2


async def test_member_odata_type_filtering() -> None:
    device = {"@odata.type": "#microsoft.graph.device", "id": "dev-1"}
    group = {"@odata.type": "#microsoft.graph.group", "id": "grp-1"}
    async with serve_documented(
        "group-transitivemembers-response.json",
        "group-transitivemembers-user-cast-response.json",
        extra=[device, group],
    ) as graph:
        async with client_of(graph.url) as client:
            typed = await client.group_member_ids("g")
            untyped = await client.group_member_ids("g")  # the cast's users carry no type
    assert typed == untyped == {"11111111-2222-3333-4444-555555555555"}


async def test_headers_sent() -> None:
    async with serve_documented("group-transitivemembers-user-cast-response.json") as graph:
        async with client_of(graph.url) as client:
            await client.group_member_ids("02bd9fd6")
    (request,) = graph.requests
    assert request.path == "/v1.0/groups/02bd9fd6/transitiveMembers/microsoft.graph.user"
    assert request.query["$count"] == "true"
    assert request.headers["ConsistencyLevel"] == "eventual"
    assert request.headers["x-ms-throttle-priority"] == "Low"
    assert request.headers["Authorization"] == "Bearer t"


async def test_an_expired_delta_link_as_documented_raises_delta_expired() -> None:
    async with serve_documented("delta-query-overview-sync-reset.json") as graph:
        async with client_of(graph.url) as client:
            with pytest.raises(DeltaExpired):
                await client.read_delta(SELECT, f"{graph.url}/v1.0/users/delta?x=1", {})


# --- our client against the simulator: the order of a round -------------------------------------


async def test_removed_then_restored_in_one_round_is_present() -> None:
    sim = TenantSim(synthetic_users(5))
    ids = sim.user_ids
    async with serve_simulator(sim) as url, httpx.AsyncClient() as http:
        client = GraphClient(
            StaticTokenProvider(sim.issue_token()), base_url=f"{url}/v1.0", http=http
        )
        first = await client.read_delta(SELECT, None, {})
        known = {u.id: u for u in first.changed}
        sim.delete_user(ids[0])
        sim.restore_user(ids[0])  # removed, then restored: present
        sim.update_user(ids[1], displayName="Before")
        sim.delete_user(ids[1])  # changed, then removed: removed
        second = await client.read_delta(SELECT, first.delta_link, known)
    assert [u.id for u in second.changed] == [ids[0]]
    assert second.changed[0] == known[ids[0]]
    assert second.removed == [(ids[1], "changed")]
