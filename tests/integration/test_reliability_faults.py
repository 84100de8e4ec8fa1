"""Faults from outside (issue 6): Graph 429 storms, 5xx, timeouts and bad answers in the middle
of paging, a token endpoint that fails, malformed user JSON, and a Teams connector answering
429 or 5xx.

The real bot route and the real SyncService on the real Redis, reading a simulated Entra
tenant over loopback HTTP (Graph pages of 2 users, so every read pages), with faults injected
in front of the simulator, and the fake Teams connector. Sleeps are injected and recorded: the
backoff is asserted on the recorded delays, never on wall time.

For every fault: the sync ends as failed with the error code and the admin hint (in the
``sync now`` reply, in ``service.status()`` and on the status card), it retried as the policy
says, nothing was removed, the directory was not written, and no card was posted twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from sync.errors import AADSTS_HINTS
from sync.models import Kind
from sync.service.service import SyncService
from sync.state.keys import Keys
from tests.component.fake_connector import FakeConnector
from tests.component.real_rig import (
    ENTRA_SECRET,
    CountingDirectory,
    Entra,
    FakeTime,
    Rig,
    count_writes,
    every_kind_world,
    make_service,
    real_bot,
    serve_entra,
    write_world,
)
from tests.component.test_bot_flow import activity, card_texts, executes, message

pytestmark = pytest.mark.redis


@dataclass
class World:
    rig: Rig
    service: SyncService
    entra: Entra
    graph_sleeps: list[float]  # what the engine slept (Graph backoff)
    writes: CountingDirectory
    keys: Keys

    @property
    def fc(self) -> FakeConnector:
        return self.rig.fc

    @property
    def teams_sleeps(self) -> list[float]:
        return self.rig.time.sleeps

    async def say(self, text: str) -> str:
        """Type ``text`` in the channel; the bot's text replies and card texts, joined."""
        n = len(self.fc.posts)
        status, _ = await self.rig.post(message(self.fc, text))
        assert status == 200
        out = []
        for r in self.fc.posts[n:]:
            if r.body.get("text"):
                out.append(str(r.body["text"]))
            for a in r.body.get("attachments") or []:
                out.append(card_texts(a["content"]))
        return " ".join(out).replace("\\", "")  # Markdown escapes off, for reading

    def item_cards(self) -> Counter[str]:
        seen: Counter[str] = Counter()
        for r in self.fc.posts:
            for a in r.body.get("attachments") or []:
                pids = {
                    x["data"]["pid"]
                    for x in executes(a["content"])
                    if x.get("verb") not in ("refresh",) and isinstance(x.get("data"), dict)
                }
                seen.update(pids)
        return seen

    async def pending_ids(self) -> set[str]:
        return {i.id for i in await self.service.pending()}

    def fail_graph(self, hook: Callable[[web.Request, int], Awaitable[Any]]) -> None:
        self.entra.hooks.append(hook)

    def force_full_read(self) -> None:
        self.service.reader.latest.clear()

    async def drop_delta_links(self) -> None:
        pattern = self.keys.delta_link("contoso", "") + "*"
        async for k in self.service.redis.scan_iter(match=pattern):
            await self.service.redis.delete(k)


@asynccontextmanager
async def _world(
    aiohttp_client: Any,
    tmp_path: Path,
    keys: Keys,
    redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    *,
    synced: bool,
) -> AsyncIterator[World]:
    monkeypatch.setenv("CONTOSO_SECRET", ENTRA_SECRET)
    tenant, directory = every_kind_world()
    async with serve_entra(tenant) as e:
        cfg = write_world(tmp_path, tenant, directory)
        cfg["tenants"] = [e.tenant_config()]
        engine = FakeTime()
        svc = make_service(tmp_path, cfg, redis=redis, keys=keys, sleep=engine.sleep)
        await svc.start(scheduler=False)
        svc.tenants["contoso"].graph.page_size = 2  # every read pages
        writes = count_writes(svc)
        try:
            async with real_bot(aiohttp_client, svc) as rig:
                status, _ = await rig.post(activity("installationUpdate", rig.fc, action="add"))
                assert status == 200
                w = World(rig, svc, e, engine.sleeps, writes, keys)
                if synced:
                    reply = await w.say("sync now")
                    assert "5 new to decide" in reply
                    assert len(w.item_cards()) == 5
                    engine.sleeps.clear()
                rig.time.now += 3600.0  # Teams' rate windows are empty again
                rig.time.sleeps.clear()
                yield w
        finally:
            await svc.stop()


@pytest.fixture
async def world(
    aiohttp_client: Any,
    tmp_path: Path,
    keys: Keys,
    real_redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    """Installed in a channel, after a first sync (5 items, 5 cards)."""
    async with _world(aiohttp_client, tmp_path, keys, real_redis, monkeypatch, synced=True) as w:
        yield w


@pytest.fixture
async def fresh_world(
    aiohttp_client: Any,
    tmp_path: Path,
    keys: Keys,
    real_redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[World]:
    """Installed, never synced: the first sign-in is still to come."""
    async with _world(aiohttp_client, tmp_path, keys, real_redis, monkeypatch, synced=False) as w:
        yield w


def _graph_error(status: int, code: str, **headers: str) -> web.Response:
    body = {"error": {"code": code, "message": f"injected {status}"}}
    return web.json_response(body, status=status, headers=headers)


def from_request(k: int, times: int, answer: Callable[[web.Request], Any]) -> Any:
    """A hook: Graph requests number k, k+1, ... (counted from when it is added; ``times`` of
    them) get ``answer(request)`` instead of the simulator's answer."""
    state = {"start": -1, "used": 0}

    async def hook(request: web.Request, n: int) -> Any:
        if n == 0:
            return None
        if state["start"] < 0:
            state["start"] = n - 1
        if n - state["start"] >= k and state["used"] < times:
            state["used"] += 1
            result = answer(request)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return None

    return hook


def status(code: int, graph_code: str, **headers: str) -> Callable[[web.Request], Any]:
    return lambda request: _graph_error(code, graph_code, **headers)


def reset(request: web.Request) -> web.Response:
    """Drop the connection without an answer (what a proxy or a crashed front end does)."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=499)  # never sent


NEVER = 10_000  # "times" for a fault that does not stop
BACKOFF = [
    1.0,
    2.0,
    4.0,
    8.0,
    16.0,
    32.0,
]  # 6 retries, 1 s doubling (RetryPolicy)

# Graph requests after the fault is set: a delta round of five_changes() is 3 pages (requests
# 1, 2, 3); a full read is 1 request for a new delta link, then 3 pages of users (2, 3, 4).


@dataclass(frozen=True)
class GraphFault:
    k: int  # the first Graph request that fails (and every one after it)
    answer: Callable[[web.Request], Any]
    code: str  # the error code the run fails with
    hint: str  # part of the admin hint
    sleeps: list[float]  # the backoff the engine slept
    full_read: bool = False  # fail a full read instead of a delta round


GRAPH_FAULTS: dict[str, GraphFault] = {
    "429_storm_with_retry_after": GraphFault(
        1,
        status(429, "TooManyRequests", **{"Retry-After": "7"}),
        "graph_throttled",
        "throttling this app (HTTP 429)",
        [7.0] * 6,
    ),
    "429_storm_without_retry_after": GraphFault(
        2, status(429, "TooManyRequests"), "graph_throttled", "sync less often", BACKOFF
    ),
    "503_from_the_second_page_of_a_full_read": GraphFault(
        3,
        status(503, "serviceNotAvailable"),
        "graph_unavailable",
        "Microsoft Graph did not answer. The sync will retry; nothing was changed.",
        BACKOFF,
        full_read=True,
    ),
    "503_from_the_second_page_of_a_delta_round": GraphFault(
        2, status(503, "serviceNotAvailable"), "graph_unavailable", "nothing was changed", BACKOFF
    ),
    "500_on_the_last_page_of_a_full_read": GraphFault(
        3,
        status(500, "generalException"),
        "graph_unavailable",
        "nothing was changed",
        [],  # a 500 is not retried: Graph says it failed, not that it is busy
        full_read=True,
    ),
    "504_gateway_timeouts_on_the_last_page": GraphFault(
        3, status(504, "GatewayTimeout"), "graph_unavailable", "nothing was changed", BACKOFF
    ),
    "connection_reset_in_the_middle_of_paging": GraphFault(
        3, reset, "graph_unavailable", "nothing was changed", BACKOFF, full_read=True
    ),
    "403_permission_missing": GraphFault(
        1,
        status(403, "Authorization_RequestDenied"),
        "graph_permission_denied",
        "User.Read.All as an Application permission and click 'Grant admin consent'",
        [],
    ),
    "page_that_is_not_json": GraphFault(
        3,
        lambda request: web.Response(text="<html>oops</html>"),
        "graph_bad_data",
        "could not read. Nothing was changed.",
        [],
        full_read=True,
    ),
    "page_without_a_value_list": GraphFault(
        2,
        lambda request: web.json_response({"value": "nope"}),
        "graph_bad_data",
        "Nothing was changed.",
        [],
    ),
    "next_link_to_another_host": GraphFault(
        2,
        lambda request: web.json_response(
            {"value": [], "@odata.nextLink": "https://graph.attacker.example/v1.0/users"}
        ),
        "graph_bad_data",
        "Nothing was changed.",
        [],
        full_read=True,
    ),
}


def five_changes(world: World) -> None:
    """Four users change a selected property (Graph tracks only those) and Carl (linked) leaves
    Entra: a read wrongly taken as complete would propose removing him; the delta round pages
    (3 pages of 2)."""
    for uid in ("e-anna", "e-dora", "e-eve", "e-finn"):
        world.entra.sim.update_user(uid, givenName="Changed")
    world.entra.sim.delete_user("e-carl")


@pytest.mark.parametrize("fault", sorted(GRAPH_FAULTS))
async def test_a_graph_fault_fails_the_sync_with_an_actionable_reason_and_changes_nothing(
    world: World, fault: str
) -> None:
    f = GRAPH_FAULTS[fault]
    if f.full_read:
        await world.drop_delta_links()
        world.force_full_read()
    five_changes(world)
    pending, cards = await world.pending_ids(), world.item_cards()
    world.fail_graph(from_request(f.k, NEVER, f.answer))

    reply = await world.say("sync now")

    assert f"failed ({f.code})" in reply
    assert f.hint in reply
    assert world.graph_sleeps == f.sleeps
    assert await world.pending_ids() == pending  # nothing proposed, nothing removed
    assert world.writes.writes == []
    assert world.item_cards() == cards  # no card posted again
    (st,) = await world.service.status()
    assert st.last_status == "failed" and st.error is not None and st.error["code"] == f.code
    status_card = await world.say("status")
    assert f.code in status_card and f.hint[:40] in status_card


async def test_a_429_storm_that_ends_is_retried_after_each_retry_after_and_the_sync_succeeds(
    world: World,
) -> None:
    world.entra.sim.update_user("e-dora", displayName="Dora Ek-Lund")
    world.fail_graph(from_request(1, 3, status(429, "x", **{"Retry-After": "4"})))
    reply = await world.say("sync now")
    assert "failed" not in reply
    assert world.graph_sleeps == [4.0, 4.0, 4.0]
    assert set(world.item_cards().values()) == {1}  # the new card for Dora once, no repeats


async def test_transient_5xx_in_the_middle_of_paging_is_retried_with_backoff(
    world: World,
) -> None:
    await world.drop_delta_links()
    world.force_full_read()
    five_changes(world)
    world.fail_graph(from_request(3, 1, status(503, "serviceNotAvailable")))
    world.fail_graph(from_request(4, 1, status(504, "GatewayTimeout")))  # its retry fails too
    reply = await world.say("sync now")
    assert "Sync done" in reply and "failed" not in reply
    assert world.graph_sleeps == [1.0, 2.0]
    (st,) = await world.service.status()
    assert st.last_status == "ok" and st.error is None


async def test_a_graph_page_that_times_out_once_is_retried_and_the_sync_succeeds(
    world: World,
) -> None:
    await world.drop_delta_links()
    world.force_full_read()
    http = world.service.tenant_set.http
    assert http is not None
    http.timeout = httpx.Timeout(2.0)  # production waits 30 s; 2 s holds on a loaded machine
    stop = asyncio.Event()

    async def hang(request: web.Request) -> None:
        try:
            await asyncio.wait_for(stop.wait(), 10)
        except TimeoutError:
            pass
        return None

    world.fail_graph(from_request(3, 1, hang))
    try:
        reply = await world.say("sync now")
    finally:
        stop.set()
    assert "Sync done" in reply
    assert world.graph_sleeps == [1.0]


async def test_an_expired_delta_link_gives_a_full_resync_not_a_failure(world: World) -> None:
    world.entra.sim.faults.delta_expired = True
    world.entra.sim.update_user("e-anna", displayName="Anna Berg-Ek")
    reply = await world.say("sync now")
    assert "Sync done" in reply
    assert any(p.startswith("/v1.0/users?") for p in world.entra.paths[-5:])  # a full read
    assert world.writes.writes == []


# --- the token endpoint -----------------------------------------------------------------------


def token_error(code: int, status: int = 400) -> Any:
    async def hook(request: web.Request, n: int) -> Any:
        if n != 0 or not request.path.endswith("/oauth2/v2.0/token"):
            return None
        body = {
            "error": "invalid_client" if status == 401 else "invalid_request",
            "error_description": f"AADSTS{code}: injected. Trace ID: x",
            "error_codes": [code],
        }
        return web.json_response(body, status=status)

    return hook


def token_down(status: int) -> Any:
    async def hook(request: web.Request, n: int) -> Any:
        if n == 0 and request.path.endswith("/oauth2/v2.0/token"):
            return web.Response(status=status, text="unavailable")
        return None

    return hook


TOKEN_FAULTS = {
    "AADSTS7000215_wrong_secret": (token_error(7000215, 401), "AADSTS7000215"),
    "AADSTS7000222_secret_expired": (token_error(7000222, 401), "AADSTS7000222"),
    "AADSTS700016_app_not_in_tenant": (token_error(700016), "AADSTS700016"),
    "AADSTS90002_tenant_not_found": (token_error(90002), "AADSTS90002"),
    "AADSTS53003_conditional_access": (token_error(53003), "AADSTS53003"),
    "AADSTS65001_no_admin_consent": (token_error(65001), "AADSTS65001"),
    "token_endpoint_503": (token_down(503), "auth_unavailable"),
    "token_endpoint_500": (token_down(500), "auth_unavailable"),
}


@pytest.mark.parametrize("fault", sorted(TOKEN_FAULTS))
async def test_a_token_endpoint_failure_fails_the_sync_and_the_status_says_what_to_do(
    fresh_world: World, fault: str
) -> None:
    world = fresh_world
    hook, code = TOKEN_FAULTS[fault]
    world.entra.hooks.append(hook)
    reply = await world.say("sync now")
    assert f"failed ({code})" in reply
    if code.startswith("AADSTS"):
        hint = AADSTS_HINTS[int(code.removeprefix("AADSTS"))]
    else:
        hint = "Entra sign-in did not answer. The sync will retry; nothing was changed."
    assert hint in reply
    assert world.entra.graph_requests == 0  # Graph was never called without a token
    assert world.item_cards() == Counter()
    assert await world.pending_ids() == set()
    (st,) = await world.service.status()
    assert st.error is not None and st.error["code"] == code
    assert not st.connected  # the status card shows the tenant as not connected
    status_card = await world.say("status")
    assert code in status_card and hint[:40] in status_card


# --- malformed user JSON ------------------------------------------------------------------------


def rewrite_users(change: Callable[[list[Any]], list[Any]]) -> Any:
    """A filter: Graph user pages (full reads and delta rounds) with ``change`` applied to
    their ``value`` list."""

    def f(request: web.Request, body: Any) -> Any:
        if request.path.startswith("/v1.0/users") and isinstance(body, dict):
            body["value"] = change(list(body.get("value") or []))
        return body

    return f


def _carl(values: list[Any], bad: Any) -> list[Any]:
    return [bad if isinstance(v, dict) and v.get("id") == "e-carl" else v for v in values]


MALFORMED: dict[str, Callable[[list[Any]], list[Any]]] = {
    "missing_id": lambda vs: _carl(vs, {"displayName": "Carl Dahl", "mobilePhone": "+46701234569"}),
    "account_enabled_not_a_boolean": lambda vs: _carl(
        vs, {"id": "e-carl", "accountEnabled": "sometimes", "displayName": "Carl"}
    ),
    "business_phones_not_a_list": lambda vs: _carl(
        vs, {"id": "e-carl", "businessPhones": "+46 8 123 456", "displayName": "Carl"}
    ),
    "mobile_phone_a_number": lambda vs: _carl(
        vs, {"id": "e-carl", "mobilePhone": 46701234569, "displayName": "Carl"}
    ),
    "display_name_of_a_million_characters": lambda vs: _carl(
        vs, {"id": "e-carl", "mobilePhone": "+46701234569", "displayName": "C" * 1_000_000}
    ),
    "id_of_ten_thousand_characters": lambda vs: _carl(vs, {"id": "e" * 10_000}),
    "user_entry_that_is_a_string": lambda vs: _carl(vs, "e-carl"),
    "user_entry_that_is_a_list": lambda vs: _carl(vs, [1, 2, 3]),
    "list_attribute_of_5000_entries": lambda vs: _carl(
        vs, {"id": "e-carl", "displayName": "Carl", "otherMails": ["x@y"] * 5000}
    ),
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
async def test_a_malformed_user_never_causes_a_removal_and_the_status_names_the_problem(
    world: World, shape: str
) -> None:
    await world.drop_delta_links()
    world.force_full_read()
    world.entra.sim.update_user("e-anna", displayName="Anna Berg-Ek")  # a real change to keep
    world.entra.filters.append(rewrite_users(MALFORMED[shape]))
    reply = await world.say("sync now")
    assert "Sync done" in reply  # the readable users were still read and planned
    # no new removal while a record is unreadable (not Carl's); the one already pending for
    # e-gone stays pending: a partial read neither adds nor withdraws removals
    removals = [i for i in await world.service.pending() if i.kind is Kind.REMOVAL]
    assert [i.proposal.entra_id for i in removals] == ["e-gone"]
    assert world.writes.writes == []
    assert any(i.proposal.entra_id == "e-anna" for i in await world.service.pending())
    (st,) = await world.service.status()
    assert st.error is not None and st.error["code"] == "graph_bad_data"
    assert "no user is removed while any record is unreadable" in st.error["hint"]
    status_card = await world.say("status")
    assert "graph_bad_data" in status_card and "no user is removed" in status_card

    world.entra.filters.clear()  # Carl's record is readable again: nothing was lost
    await world.drop_delta_links()
    world.force_full_read()
    assert "Sync done" in await world.say("sync now")
    removals = [i for i in await world.service.pending() if i.kind is Kind.REMOVAL]
    assert [i.proposal.entra_id for i in removals] == ["e-gone"]
    (st,) = await world.service.status()
    assert st.error is None


# --- the Teams connector ------------------------------------------------------------------------


async def test_teams_429_is_retried_after_retry_after_and_each_card_is_posted_once(
    world: World,
) -> None:
    for n, name in enumerate(("Nina Nyberg", "Olof Ohlin")):
        world.entra.sim.upsert_user(_new_user(n, name))
    sleeps_before = len(world.teams_sleeps)
    world.fc.fail_next(3, status=429, retry_after=3, method="POST")
    await world.say("sync now")
    assert [s for s in world.teams_sleeps[sleeps_before:] if s >= 1] == [3.0, 3.0, 3.0]
    cards = world.item_cards()
    assert len(cards) == 7 and set(cards.values()) == {1}
    assert len(world.fc.rejected) == 3


async def test_teams_502_and_504_are_retried_with_backoff_and_no_card_is_posted_twice(
    world: World,
) -> None:
    world.entra.sim.upsert_user(_new_user(0, "Nina Nyberg"))
    sleeps_before = len(world.teams_sleeps)
    world.fc.fail_next(1, status=502, retry_after=None, method="POST")
    world.fc.fail_next(1, status=504, retry_after=None, method="POST")
    await world.say("sync now")
    assert world.teams_sleeps[sleeps_before:] == [1.0, 2.0]
    cards = world.item_cards()
    assert len(cards) == 6 and set(cards.values()) == {1}


async def test_teams_refusing_a_card_leaves_the_items_pending_and_pending_lists_them(
    world: World,
) -> None:
    world.entra.sim.upsert_user(_new_user(0, "Nina Nyberg"))
    world.entra.sim.upsert_user(_new_user(1, "Olof Ohlin"))
    world.fc.fail_next(1, status=500, retry_after=None, method="POST")  # not retryable
    before = world.item_cards()
    await world.say("sync now")
    new = [i for i in await world.service.pending() if i.proposal.entra_id in ("e-n0", "e-n1")]
    assert len(new) == 2  # not lost: still pending
    assert len(world.fc.rejected) == 1  # refused once, not retried
    assert world.item_cards() == before  # the rest of this run's cards were held back
    listing = await world.say("pending")  # 7 pending: one digest card lists them
    assert "Nina Nyberg" in listing and "Olof Ohlin" in listing


async def test_teams_throttling_a_card_update_still_replaces_the_card_once(world: World) -> None:
    item = next(i for i in await world.service.pending() if i.kind is Kind.MATCH)
    # Retry-After 0: the SDK's connector client retries PUTs itself (urllib3, on wall time)
    world.fc.fail_next(1, status=429, retry_after=0, method="PUT")
    status, _ = await world.rig.post(
        {
            **message(world.fc, ""),
            "type": "invoke",
            "name": "adaptiveCard/action",
            "value": {
                "action": {
                    "type": "Action.Execute",
                    "verb": "accept",
                    "data": {"pid": item.id, "d": item.digest},
                }
            },
        }
    )
    assert status == 200
    assert len(world.fc.puts) == 1  # the posted card replaced once, after a throttled try
    assert [r.method for r in world.fc.rejected] == ["PUT"]
    assert world.writes.count() == 1


def _new_user(n: int, name: str) -> dict[str, Any]:
    given, surname = name.split(" ")
    return {
        "id": f"e-n{n}",
        "accountEnabled": True,
        "givenName": given,
        "surname": surname,
        "displayName": name,
        "mail": f"n{n}@contoso.se",
        "userPrincipalName": f"n{n}@contoso.se",
        "mobilePhone": f"+4670999000{n}",
        "businessPhones": [],
    }
