"""GraphClient against the tenant simulator over real HTTP on loopback (ephemeral ports)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from sync.devtools.simulator import MALFORMED_USER, TenantSim, serve_simulator, synthetic_users
from sync.errors import (
    AuthError,
    DeltaExpired,
    GraphDataError,
    GraphNotFound,
    GraphPermissionDenied,
    GraphThrottled,
    GraphUnavailable,
)
from sync.graph.auth import MsalTokenProvider, StaticTokenProvider
from sync.graph.client import DeltaResult, GraphClient
from sync.models import EntraUser
from sync.retry import RetryPolicy

SELECT = ["displayName", "givenName", "surname", "mail", "mobilePhone", "businessPhones"]


@dataclass
class RecordingSleep:
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class Env:
    sim: TenantSim
    url: str
    client: GraphClient
    sleep: RecordingSleep
    sent: list[httpx.Request]
    tokens: MsalTokenProvider


@asynccontextmanager
async def running(
    sim: TenantSim, *, page_size: int = 999, max_retries: int = 6
) -> AsyncIterator[Env]:
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    async with serve_simulator(sim) as url:
        tokens = MsalTokenProvider("contoso", "app-id", SecretStr("s3cret"), authority_host=url)
        sleep = RecordingSleep()
        async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
            client = GraphClient(
                tokens,
                base_url=f"{url}/v1.0",
                http=http,
                sleep=sleep,
                page_size=page_size,
                max_retries=max_retries,
            )
            try:
                yield Env(sim, url, client, sleep, sent, tokens)
            finally:
                tokens.close()


def known(*rounds: DeltaResult) -> dict[str, EntraUser]:
    """The users as stored after these delta rounds (by id)."""
    users: dict[str, EntraUser] = {}
    for r in rounds:
        users.update({u.id: u for u in r.changed})
        for uid, _ in r.removed:
            users.pop(uid, None)
    return users


@pytest.fixture
def sim() -> TenantSim:
    return TenantSim(synthetic_users(2500, disabled_every=10))


async def test_read_users_pages_2500_users_in_exactly_3_requests(sim: TenantSim) -> None:
    async with running(sim) as env:
        snap = await env.client.read_users(SELECT)
    assert len(snap.users) == 2500
    assert len({u.id for u in snap.users}) == 2500
    assert snap.complete and snap.invalid == ()
    assert env.client.graph_requests == 3
    assert sim.requests["users"] == 3


async def test_the_simulator_takes_its_page_latency_on_every_users_and_delta_page() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    sim = TenantSim(synthetic_users(2500), sleep=sleep)
    async with running(sim) as env:
        await env.client.read_users(SELECT)
        assert waits == []  # no latency unless asked for
        sim.faults.page_latency = 0.25
        await env.client.read_users(SELECT)
        assert waits == [0.25] * 3  # one per page of 999
        await env.client.read_delta(SELECT, None, {})
    assert len(waits) > 3 and set(waits) == {0.25}


async def test_iter_users_yields_one_list_per_page(sim: TenantSim) -> None:
    async with running(sim, page_size=1000 - 1) as env:
        sizes = [len(page) async for page in env.client.iter_users(SELECT)]
    assert sizes == [999, 999, 502]


async def test_read_users_shows_each_page_as_it_arrives(sim: TenantSim) -> None:
    pages: list[list[str]] = []
    async with running(sim) as env:
        snap = await env.client.read_users(
            SELECT, each_page=lambda page: pages.append([u.id for u in page])
        )
    assert [len(p) for p in pages] == [999, 999, 502]
    assert [uid for page in pages for uid in page] == [u.id for u in snap.users]


async def test_nextlink_is_followed_verbatim(sim: TenantSim) -> None:
    async with running(sim) as env:
        await env.client.read_users(SELECT)
    second = str(env.sent[1].url)
    assert "$skiptoken=" in second
    assert second.startswith(f"{env.url}/v1.0/users?")


async def test_select_is_the_attributes_plus_id_and_account_enabled(sim: TenantSim) -> None:
    async with running(sim) as env:
        snap = await env.client.read_users(
            ["displayName", "mail", "onPremisesExtensionAttributes.extensionAttribute3", "mail"]
        )
    query = env.sent[0].url.params
    assert query["$select"] == ("displayName,mail,onPremisesExtensionAttributes,id,accountEnabled")
    assert query["$top"] == "999"
    assert set(snap.users[0].attrs) == {
        "displayName",
        "mail",
        "onPremisesExtensionAttributes",
        "accountEnabled",
    }


async def test_every_request_asks_for_low_throttle_priority(sim: TenantSim) -> None:
    async with running(sim) as env:
        await env.client.read_users(SELECT)
    assert env.sent and all(r.headers["x-ms-throttle-priority"] == "Low" for r in env.sent)


async def test_enabled_only_filters_on_account_enabled(sim: TenantSim) -> None:
    async with running(sim) as env:
        snap = await env.client.read_users(SELECT, enabled_only=True)
    assert len(snap.users) == 2250
    assert all(u.enabled for u in snap.users)
    assert env.sent[0].url.params["$filter"] == "accountEnabled eq true"


async def test_disabled_users_are_read_with_enabled_false(sim: TenantSim) -> None:
    async with running(sim) as env:
        snap = await env.client.read_users(SELECT)
    assert sum(not u.enabled for u in snap.users) == 250


async def test_group_scope_reads_nested_members_transitively() -> None:
    users = synthetic_users(20)
    ids = [u["id"] for u in users]
    sim = TenantSim(
        users,
        [
            {"id": "sales", "displayName": "Sales", "members": [ids[0], ids[1], "nordic"]},
            {"id": "nordic", "displayName": "Nordic", "members": [ids[2], "sweden", "sales"]},
            {"id": "sweden", "displayName": "Sweden", "members": [ids[3], ids[1]]},
            {"id": "support", "displayName": "Support", "members": [ids[10]]},
        ],
    )
    async with running(sim, page_size=2) as env:
        snap = await env.client.read_users(SELECT, groups=["sales", "support"])
    assert snap.group_members == frozenset({ids[0], ids[1], ids[2], ids[3], ids[10]})
    assert len(snap.users) == 20
    members_requests = [r for r in env.sent if "transitiveMembers" in r.url.path]
    assert len(members_requests) == 3  # sales: 4 members in pages of 2; support: 1
    assert all(r.url.params.get("$select") == "id" for r in members_requests[:1])


async def test_unknown_group_raises_graph_not_found_naming_the_group(sim: TenantSim) -> None:
    async with running(sim) as env:
        with pytest.raises(GraphNotFound) as info:
            await env.client.read_users(SELECT, groups=["no-such-group"])
    assert "no-such-group" in info.value.message


async def test_delta_initial_round_returns_every_user_and_a_delta_link(sim: TenantSim) -> None:
    async with running(sim) as env:
        result = await env.client.read_delta(SELECT, None, {})
    assert len(result.changed) == 2500
    assert result.removed == []
    assert result.delta_link.startswith(f"{env.url}/v1.0/users/delta?$deltatoken=")
    assert env.sent[0].headers["Prefer"] == "odata.maxpagesize=999"
    assert env.client.graph_requests == 3


async def test_delta_round_returns_only_changed_and_deleted_users(sim: TenantSim) -> None:
    ids = sim.user_ids
    async with running(sim) as env:
        first = await env.client.read_delta(SELECT, None, {})
        sim.update_user(ids[5], mobilePhone="+46701112233")
        sim.delete_user(ids[6])
        sim.upsert_user({"id": "new-user", "displayName": "New", "accountEnabled": True})
        second = await env.client.read_delta(SELECT, first.delta_link, known(first))
        third = await env.client.read_delta(SELECT, second.delta_link, known(first, second))
    assert {u.id for u in second.changed} == {ids[5], "new-user"}
    changed = {u.id: u for u in second.changed}
    assert changed[ids[5]].attrs["mobilePhone"] == "+46701112233"
    assert second.removed == [(ids[6], "changed")]  # Entra deletes softly first
    assert third.changed == [] and third.removed == []


async def test_expired_delta_link_raises_delta_expired(sim: TenantSim) -> None:
    async with running(sim) as env:
        first = await env.client.read_delta(SELECT, None, {})
        sim.faults.delta_expired = True
        with pytest.raises(DeltaExpired) as info:
            await env.client.read_delta(SELECT, first.delta_link, known(first))
    assert info.value.retryable


async def test_delta_link_to_another_host_is_not_followed(sim: TenantSim) -> None:
    async with running(sim) as env:
        with pytest.raises(GraphDataError):
            await env.client.read_delta(SELECT, "https://evil.example/v1.0/users/delta?x=1", {})
    assert env.client.graph_requests == 0


async def test_throttling_storm_honours_retry_after_and_succeeds(sim: TenantSim) -> None:
    sim.faults.throttle_every = 2
    sim.faults.retry_after = 7
    async with running(sim) as env:
        snap = await env.client.read_users(SELECT)
    assert len(snap.users) == 2500
    # requests 2 and 4 were throttled: 3 pages cost 5 requests, each wait was Retry-After
    assert env.sleep.waits == [7.0, 7.0]
    assert env.client.graph_requests == 5


async def test_persistent_throttling_raises_graph_throttled_after_max_retries(
    sim: TenantSim,
) -> None:
    sim.faults.throttle_every = 1
    sim.faults.retry_after = 3
    async with running(sim, max_retries=4) as env:
        with pytest.raises(GraphThrottled) as info:
            await env.client.read_users(SELECT)
    assert env.sleep.waits == [3.0, 3.0, 3.0, 3.0]
    assert env.client.graph_requests == 5
    assert info.value.retry_after == 3.0
    assert info.value.retryable


async def test_fractional_and_http_date_retry_after_are_honoured(sim: TenantSim) -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    sim.now = lambda: now
    sim.faults.throttle_every = 2
    sim.faults.retry_after = 0.25
    async with serve_simulator(sim) as url, httpx.AsyncClient() as http:
        sleep = RecordingSleep()
        client = GraphClient(
            StaticTokenProvider(sim.issue_token()),
            base_url=f"{url}/v1.0",
            http=http,
            sleep=sleep,
            retry=RetryPolicy(now=lambda: now),
        )
        await client.read_users(SELECT)
        fractional, sleep.waits = sleep.waits, []
        sim.faults.retry_after = 30
        sim.faults.retry_after_as_date = True  # "Thu, 01 Jan 2026 12:00:30 GMT"
        await client.read_users(SELECT)
    assert fractional == [0.25, 0.25]
    assert sleep.waits and set(sleep.waits) == {30.0}


async def test_huge_retry_after_is_capped(sim: TenantSim) -> None:
    sim.faults.throttle_every = 2
    sim.faults.retry_after = 86400
    async with running(sim) as env:
        await env.client.read_users(SELECT)
    assert env.sleep.waits == [120.0, 120.0]


async def test_transient_503_is_retried_with_deterministic_backoff(sim: TenantSim) -> None:
    sim.faults.fail_at_request = 2
    sim.faults.fail_times = 3
    sim.faults.fail_status = 503
    async with running(sim) as env:
        snap = await env.client.read_users(SELECT)
    assert len(snap.users) == 2500
    assert env.sleep.waits == [1.0, 2.0, 4.0]


async def test_5xx_mid_paging_raises_graph_unavailable_without_partial_snapshot(
    sim: TenantSim,
) -> None:
    sim.faults.fail_at_request = 2
    sim.faults.fail_times = 100
    sim.faults.fail_status = 504
    async with running(sim, max_retries=3) as env:
        with pytest.raises(GraphUnavailable) as info:
            await env.client.read_users(SELECT)
    assert not isinstance(info.value, GraphThrottled)
    assert env.client.graph_requests == 1 + 4
    assert env.sleep.waits == [1.0, 2.0, 4.0]


async def test_http_500_raises_graph_unavailable_at_once(sim: TenantSim) -> None:
    sim.faults.fail_at_request = 1
    sim.faults.fail_status = 500
    async with running(sim) as env:
        with pytest.raises(GraphUnavailable):
            await env.client.read_users(SELECT)
    assert env.client.graph_requests == 1


async def test_403_raises_permission_denied_naming_user_read_all(sim: TenantSim) -> None:
    sim.faults.forbidden = True
    async with running(sim) as env:
        with pytest.raises(GraphPermissionDenied) as info:
            await env.client.read_users(SELECT)
    assert "User.Read.All" in info.value.hint
    assert "Authorization_RequestDenied" in info.value.message


async def test_403_on_group_members_names_group_member_read_all() -> None:
    users = synthetic_users(3)
    sim = TenantSim(users, [{"id": "g", "members": [users[0]["id"]]}])
    async with running(sim) as env:
        await env.client.read_users(SELECT)
        sim.faults.forbidden = True
        with pytest.raises(GraphPermissionDenied) as info:
            await env.client.group_member_ids("g")
    assert "GroupMember.Read.All" in info.value.hint


async def test_token_error_7000215_raises_auth_error_with_secret_hint(sim: TenantSim) -> None:
    sim.faults.token_error_code = 401
    async with running(sim) as env:
        with pytest.raises(AuthError) as info:
            await env.client.read_users(SELECT)
    err = info.value
    assert err.code == "AADSTS7000215"
    assert err.aadsts == 7000215
    assert "Value" in err.hint and "Secret ID" in err.hint
    assert "s3cret" not in str(err) and "s3cret" not in str(err.to_dict())
    assert env.client.graph_requests == 0


async def test_wrong_secret_is_refused_by_the_token_endpoint() -> None:
    sim = TenantSim(synthetic_users(3), client_id="app-id", client_secret="the-real-value")
    async with running(sim) as env:
        with pytest.raises(AuthError) as info:
            await env.client.read_users(SELECT)
    assert info.value.code == "AADSTS7000215"
    assert not info.value.retryable


async def test_revoked_token_is_refreshed_once_and_the_read_succeeds(sim: TenantSim) -> None:
    async with running(sim) as env:
        await env.client.read_users(SELECT)
        sim.revoke_tokens()
        snap = await env.client.read_users(SELECT)
    assert len(snap.users) == 2500
    assert sim.requests["token"] == 2


async def test_token_graph_keeps_refusing_raises_auth_error() -> None:
    sim = TenantSim(synthetic_users(3))
    async with serve_simulator(sim) as url, httpx.AsyncClient() as http:
        client = GraphClient(StaticTokenProvider("forged"), base_url=f"{url}/v1.0", http=http)
        with pytest.raises(AuthError) as info:
            await client.read_users(SELECT)
    assert "401" in info.value.message
    assert client.graph_requests == 2


async def test_malformed_user_gives_incomplete_snapshot_with_good_users(sim: TenantSim) -> None:
    sim.faults.malformed = True
    async with running(sim) as env:
        snap = await env.client.read_users(SELECT)
    assert not snap.complete
    assert len(snap.users) == 2500
    assert len(snap.invalid) == 1 and MALFORMED_USER["id"] in snap.invalid[0]


async def test_connection_refused_raises_graph_unavailable_after_retries() -> None:
    sim = TenantSim(synthetic_users(1))
    async with serve_simulator(sim) as url:
        token = sim.issue_token()
    sleep = RecordingSleep()
    async with httpx.AsyncClient() as http:
        client = GraphClient(
            StaticTokenProvider(token),
            base_url=f"{url}/v1.0",
            http=http,
            sleep=sleep,
            max_retries=2,
        )
        with pytest.raises(GraphUnavailable):
            await client.read_users(SELECT)
    assert sleep.waits == [1.0, 2.0]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def odd_server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def _read_from(handler: Handler) -> Any:
    async with odd_server(handler) as url, httpx.AsyncClient() as http:
        client = GraphClient(StaticTokenProvider("t"), base_url=f"{url}/v1.0", http=http)
        return await client.read_users(SELECT)


async def test_non_json_answer_raises_graph_data_error() -> None:
    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>proxy login</html>", content_type="text/html")

    with pytest.raises(GraphDataError):
        await _read_from(html)


async def test_answer_without_value_list_raises_graph_data_error() -> None:
    async def wrong_shape(_: web.Request) -> web.Response:
        return web.json_response({"value": {"id": "x"}})

    with pytest.raises(GraphDataError):
        await _read_from(wrong_shape)


async def test_next_link_to_another_host_is_not_followed() -> None:
    async def leaky(_: web.Request) -> web.Response:
        return web.json_response(
            {"value": [], "@odata.nextLink": "https://attacker.example/v1.0/users?x=1"}
        )

    with pytest.raises(GraphDataError) as info:
        await _read_from(leaky)
    assert "nextLink" in info.value.message


# --- prefetch, token reuse, JSON the stdlib reads -----------------------------------------------


class TrackingTransport(httpx.AsyncBaseTransport):
    """A real transport that records each request's outcome: done, failed or cancelled."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.outcomes: list[str] = []
        self.running = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.running += 1
        try:
            resp = await self.inner.handle_async_request(request)
            await resp.aread()
        except BaseException as e:
            self.outcomes.append("cancelled" if isinstance(e, asyncio.CancelledError) else "failed")
            raise
        finally:
            self.running -= 1
        self.outcomes.append("done")
        return resp

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingTokens(StaticTokenProvider):
    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.calls = 0

    async def token(self) -> str:
        self.calls += 1
        return await super().token()


async def test_the_next_page_is_requested_before_a_page_is_handed_out(sim: TenantSim) -> None:
    async with running(sim) as env:
        sent_when_handed = [len(env.sent) async for _ in env.client.iter_users(SELECT)]
    assert sent_when_handed == [2, 3, 3]  # no request after the last page
    assert env.client.graph_requests == 3


async def test_a_failing_next_page_raises_only_when_it_is_asked_for(sim: TenantSim) -> None:
    sim.faults.fail_at_request = 2
    sim.faults.fail_status = 500
    async with running(sim) as env:
        pages = env.client.iter_users(SELECT)
        first = await pages.__anext__()
        assert len(first) == 999
        with pytest.raises(GraphUnavailable):
            await pages.__anext__()
        await pages.aclose()
    assert env.client.graph_requests == 2


def _user(i: int) -> dict[str, Any]:
    return {"id": f"e{i}", "accountEnabled": True, "displayName": f"User {i}"}


def _second_page_never_comes(
    started: list[str],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler: the first page (one user, a nextLink) at once, the second never."""
    never = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        started.append(request.query.get("page", "1"))
        if "page" in request.query:
            await never.wait()  # the second page would take forever
        link = str(request.url.with_query({"page": "2"}))
        return web.json_response({"value": [_user(1)], "@odata.nextLink": link})

    return handler


async def test_stopping_early_cancels_the_request_in_flight() -> None:
    started: list[str] = []
    transport = TrackingTransport()
    async with odd_server(_second_page_never_comes(started)) as url:
        async with httpx.AsyncClient(transport=transport) as http:
            client = GraphClient(StaticTokenProvider("t"), base_url=f"{url}/v1.0", http=http)
            pages = client.iter_users(SELECT)
            async for page in pages:
                assert [u.id for u in page] == ["e1"]
                break
            assert transport.running == 1  # the second page is on its way
            await pages.aclose()
            assert transport.running == 0
    assert transport.outcomes == ["done", "cancelled"]
    assert started == ["1", "2"]


async def test_an_error_while_reading_pages_leaves_no_request_running() -> None:
    transport = TrackingTransport()
    async with odd_server(_second_page_never_comes([])) as url:
        async with httpx.AsyncClient(transport=transport) as http:
            client = GraphClient(StaticTokenProvider("t"), base_url=f"{url}/v1.0", http=http)
            with pytest.raises(GraphDataError) as info:
                await client.latest_delta_link(SELECT)
            assert transport.running == 0
    assert "sent users" in info.value.message
    assert transport.outcomes == ["done", "cancelled"]


async def test_a_run_of_pages_asks_the_token_provider_once(sim: TenantSim) -> None:
    async with serve_simulator(sim) as url, httpx.AsyncClient() as http:
        tokens = CountingTokens(sim.issue_token())
        client = GraphClient(tokens, base_url=f"{url}/v1.0", http=http)
        snap = await client.read_users(SELECT)
    assert len(snap.users) == 2500 and client.graph_requests == 3
    assert tokens.calls == 1


async def test_a_long_run_of_pages_asks_the_token_provider_again(sim: TenantSim) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 61.0  # each look at the clock is a minute later
        return now[0]

    async with serve_simulator(sim) as url, httpx.AsyncClient() as http:
        tokens = CountingTokens(sim.issue_token())
        client = GraphClient(tokens, base_url=f"{url}/v1.0", http=http, clock=clock)
        await client.read_users(SELECT)
    assert tokens.calls == 3  # one per page


async def test_json_that_only_the_stdlib_reads_is_read_as_before() -> None:
    async def nan_and_big(_: web.Request) -> web.Response:
        body = '{"value":[{"id":"e1","accountEnabled":true,"n":NaN,"big":' + str(2**70) + "}]}"
        return web.Response(text=body, content_type="application/json")

    snap = await _read_from(nan_and_big)
    (u,) = snap.users
    assert math.isnan(u.attrs["n"]) and u.attrs["big"] == 2**70
