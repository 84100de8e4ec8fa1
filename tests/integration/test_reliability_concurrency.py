"""Concurrency and crashes on the REAL Redis (issue 6, "Concurrency and crashes").

- Two real ``entra-sync serve`` processes on one Redis (their own Redis database, since the
  service has no key-prefix setting), one simulated Entra tenant served by the test (so its
  Graph can be held mid-read), one fake Teams connector: ``sync now`` typed into both at the
  same moment runs one sync and posts each card once; ten admins pressing Accept at once
  through both processes apply the change once and the others see who handled it; a decision
  whose intent was recorded before the process died is finished by the next process started.
- The same races between two SyncService objects in one process, each on its own Redis
  connection pool, with the directory writes counted.
- A crash between accepting and writing (before and after the write reaches the directory),
  for every verb that writes: the restarted service finishes it, nothing lost or doubled.
- Redis going away in the middle of a sync (a TCP proxy that is cut; a restart that loses the
  data; connections killed with CLIENT KILL): the sync fails cleanly or survives, and the
  next one succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sync.directories.builtin import BuiltinDirectory
from sync.models import Kind, ProposalState
from sync.service.service import Actor, SyncService
from sync.state.keys import Keys
from sync.state.store import StateStore
from tests.component.fake_connector import FakeConnector
from tests.component.real_rig import (
    ADMIN,
    ENTRA_SECRET,
    Crash,
    Entra,
    claim_redis_db,
    count_writes,
    every_kind_world,
    make_service,
    serve_entra,
    write_world,
)
from tests.component.test_bot_flow import CHANNEL, TEAM, card_texts, executes
from tests.conftest import REAL_REDIS_URL

pytestmark = pytest.mark.redis

ADMINS = tuple(f"aad-admin-{n:02d}" for n in range(10))
ENTRY = Path(sys.executable).parent / "entra-sync"


# --- two real serve processes ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve_db() -> Iterator[int]:
    """A Redis database of its own for the serve processes (they use the default key prefix)."""
    with claim_redis_db() as db:
        yield db


@dataclass
class Serve:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def _write_toml(path: Path, e: Entra, admins: Sequence[str], seed: Path) -> None:
    t = e.tenant_config()
    lines = [
        "[bot]",
        "admins = [" + ", ".join(json.dumps(a) for a in admins) + "]",
        "[guard]",
        "max_removals = 10",
        "max_removal_share = 1.0",
        "[[tenants]]",
        *(f"{k} = {json.dumps(v)}" for k, v in t.items()),
        "[[directories]]",
        'name = "main"',
        'kind = "builtin"',
        f"seed_file = {json.dumps(str(seed))}",
    ]
    path.write_text("\n".join(lines) + "\n")


@contextlib.asynccontextmanager
async def serve_processes(
    tmp: Path, e: Entra, db: int, n: int = 2, *, admins: Sequence[str] = ADMINS
) -> AsyncIterator[list[Serve]]:
    """``n`` real ``entra-sync serve`` processes on Redis database ``db``, ready."""
    _tenant, directory = every_kind_world()
    seed = tmp / "directory.json"
    seed.write_text(json.dumps({"users": directory, "ignored": []}))
    cfg = tmp / "config.toml"
    _write_toml(cfg, e, admins, seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICROSOFT_APP_", "REDIS"))}
    env.update(
        REDIS_URL=f"redis://127.0.0.1:6379/{db}",
        CONTOSO_SECRET=ENTRA_SECRET,
        ENTRA_SYNC_SECRET_KEY="o0GfJ0kV2mX0jz3e5m3wqgQp3dY6P1a1r8x1m2bYk3Q=",
        LOG_LEVEL="INFO",
    )
    procs: list[Serve] = []
    try:
        for i in range(n):
            port = _free_port()
            log = tmp / f"serve-{i}.log"
            proc = subprocess.Popen(
                [str(ENTRY), "serve", "--config", str(cfg), "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log.open("wb"),
            )
            procs.append(Serve(f"http://127.0.0.1:{port}", proc, log))
        async with aiohttp.ClientSession() as http:
            for s in procs:
                await _wait_ready(http, s)
        yield procs
    finally:
        for s in procs:
            s.proc.terminate()
        for s in procs:
            try:
                s.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                s.proc.kill()
                s.proc.wait()


async def _wait_ready(http: aiohttp.ClientSession, s: Serve) -> None:
    for _ in range(600):  # the process needs ~2 s to import and start; give it 30
        if s.proc.poll() is not None:
            pytest.fail(f"serve exited: {s.log.read_text()[-2000:]}")
        try:
            async with http.get(s.url + "/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    pytest.fail(f"serve did not start: {s.log.read_text()[-2000:]}")


def _activity(fc: FakeConnector, kind: str, aad: str, who: str, **kw: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "id": f"in-{uuid.uuid4().hex[:8]}",
        "channelId": "msteams",
        "serviceUrl": fc.url,
        "from": {"id": f"29:{aad}", "aadObjectId": aad, "name": who},
        "recipient": {"id": "28:bot", "name": "Entra Sync"},
        "conversation": {
            "id": CHANNEL,
            "conversationType": "channel",
            "tenantId": "00000000-0000-0000-0000-0000000000001",
        },
        "channelData": {
            "team": {"id": TEAM},
            "tenant": {"id": "00000000-0000-0000-0000-0000000000001"},
        },
        **kw,
    }


async def _post(http: aiohttp.ClientSession, s: Serve, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(s.url + "/api/messages", json=body) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else None)


def _item_cards(fc: FakeConnector) -> Counter[str]:
    """Posted item cards (not replies) by proposal id."""
    seen: Counter[str] = Counter()
    for r in fc.posts:
        if r.activity_id is not None:
            continue  # a reply in a thread, not a card posted to the channel
        for a in r.body.get("attachments") or []:
            pids = {
                x["data"]["pid"]
                for x in executes(a["content"])
                if x.get("verb") not in ("refresh",) and isinstance(x.get("data"), dict)
            }
            for pid in pids:
                seen[pid] += 1
    return seen


def _texts(fc: FakeConnector) -> list[str]:
    return [str(r.body.get("text")) for r in fc.posts if r.body.get("text")]


async def test_sync_now_in_two_serve_processes_at_once_runs_once_and_posts_each_card_once(
    tmp_path: Path, serve_db: int
) -> None:
    tenant, _ = every_kind_world()
    async with (
        serve_entra(tenant) as e,
        FakeConnector.serve() as fc,
        serve_processes(tmp_path, e, serve_db) as (a, b),
        aiohttp.ClientSession() as http,
    ):
        status, _ = await _post(
            http, a, _activity(fc, "installationUpdate", ADMINS[0], "Admin 0", action="add")
        )
        assert status == 200
        e.gate.arm()
        first = asyncio.create_task(
            _post(http, a, _activity(fc, "message", ADMINS[0], "Admin 0", text="sync now"))
        )
        second = asyncio.create_task(
            _post(http, b, _activity(fc, "message", ADMINS[1], "Admin 1", text="sync now"))
        )
        done, _pending = await asyncio.wait(
            {first, second}, timeout=60, return_when=asyncio.FIRST_COMPLETED
        )
        # one process holds the tenant's lock and waits inside Graph; the other gave up
        assert len(done) == 1
        await asyncio.wait_for(e.gate.entered.wait(), 30)
        assert (await done.pop())[0] == 200
        assert any("skipped (sync_running)" in t for t in _texts(fc))
        e.gate.release.set()
        assert (await asyncio.wait_for(asyncio.gather(first, second), 60))[0][0] == 200

        cards = _item_cards(fc)
        assert len(cards) == 5 and set(cards.values()) == {1}, cards
        summaries = [t for t in _texts(fc) if t.startswith("Sync done")]
        assert len(summaries) == 2
        assert sum("5 new to decide" in t for t in summaries) == 1

        # a later sync in the other process finds nothing new: no card is posted again
        e.gate.armed = False
        await _post(http, b, _activity(fc, "message", ADMINS[1], "Admin 1", text="sync now"))
        assert _texts(fc)[-1].endswith("0 new to decide.")
        assert _item_cards(fc) == cards
        # one full read (the process that lost the race never read Graph), then one delta round
        assert e.sim.requests["users"] == 1


async def test_ten_admins_accepting_at_once_through_two_processes_apply_once(
    tmp_path: Path, serve_db: int
) -> None:
    tenant, _ = every_kind_world()
    async with (
        serve_entra(tenant) as e,
        FakeConnector.serve() as fc,
        serve_processes(tmp_path, e, serve_db) as servers,
        aiohttp.ClientSession() as http,
    ):
        await _post(
            http,
            servers[0],
            _activity(fc, "installationUpdate", ADMINS[0], "Admin 0", action="add"),
        )
        await _post(
            http, servers[0], _activity(fc, "message", ADMINS[0], "Admin 0", text="sync now")
        )
        accept = next(
            x
            for r in fc.posts
            for a in r.body.get("attachments") or []
            for x in executes(a["content"])
            if x.get("verb") == "accept"
        )
        presses = [
            _post(
                http,
                servers[n % 2],
                _activity(
                    fc,
                    "invoke",
                    aad,
                    f"Admin {n}",
                    name="adaptiveCard/action",
                    value={
                        "action": {
                            "type": "Action.Execute",
                            "verb": "accept",
                            "data": accept["data"],
                        }
                    },
                ),
            )
            for n, aad in enumerate(ADMINS)
        ]
        replies = await asyncio.wait_for(asyncio.gather(*presses), 60)
        assert {status for status, _ in replies} == {200}
        texts = [card_texts(body["value"]) for _, body in replies]
        refused = [t for t in texts if "no longer pending" in t]
        winners = [t for t in texts if "no longer pending" not in t]
        assert len(winners) == 1 and len(refused) == 9
        winner = next(f"Admin {n}" for n in range(10) if f"Admin {n}" in winners[0])
        assert all(f"handled by {winner}" in t for t in refused)

        r = aioredis.Redis.from_url(f"redis://127.0.0.1:6379/{serve_db}")
        try:
            store = StateStore(r, Keys(), clock=_now)
            sp = await store.proposals.get(accept["data"]["pid"])
            assert sp is not None and sp.state is ProposalState.APPLIED
            actions = [x.action for x in await store.audit_log.export_audit()]
            assert actions.count("accept match") == 1
            user = await BuiltinDirectory(r, Keys(), "main").get("1")
            assert user is not None and user.entra_id == "e-anna"
        finally:
            await r.aclose()


async def test_an_intent_left_by_a_dead_process_is_finished_by_the_next_serve_process(
    tmp_path: Path, serve_db: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, directory = every_kind_world()
    async with serve_entra(tenant) as e:
        monkeypatch.setenv("CONTOSO_SECRET", ENTRA_SECRET)
        cfg = write_world(tmp_path, tenant, directory)
        cfg["tenants"] = [e.tenant_config()]
        r = aioredis.Redis.from_url(f"redis://127.0.0.1:6379/{serve_db}")
        dying = make_service(tmp_path, cfg, redis=r, keys=Keys())
        await dying.start(scheduler=False)
        await dying.run_sync()
        writes = count_writes(dying)
        writes.crash_before.add("update")
        item = next(i for i in await dying.pending() if i.kind is Kind.MATCH)
        with pytest.raises(Crash):
            await dying.decide(
                item.id, "accept", actor=Actor(ADMINS[3], "Admin 3"), digest=item.digest, inputs={}
            )
        await dying.stop()
        store = StateStore(r, Keys(), clock=_now)
        left = await store.proposals.get(item.id)
        assert left is not None and left.state is ProposalState.ACCEPTED
        assert writes.count() == 0

        async with serve_processes(tmp_path, e, serve_db, n=1):
            done = await store.proposals.get(item.id)
            assert done is not None and done.state is ProposalState.APPLIED
            assert done.decided_by == "Admin 3"  # the admin who accepted, not the system
        user = await BuiltinDirectory(r, Keys(), "main").get("1")
        assert user is not None and user.entra_id == "e-anna"
        assert [x.action for x in await store.audit_log.export_audit()].count("accept match") == 1
        await r.aclose()


def _now() -> Any:
    from tests.component.bot_fake_service import now_fixed

    return now_fixed()


# --- two services in one process, each on its own Redis connection pool ------------------------


@dataclass
class Pair:
    a: SyncService
    b: SyncService
    entra: Entra
    keys: Keys
    redis: aioredis.Redis  # a third connection, for checks


@contextlib.asynccontextmanager
async def two_services(
    tmp: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Pair]:
    tenant, directory = every_kind_world()
    monkeypatch.setenv("CONTOSO_SECRET", ENTRA_SECRET)
    async with serve_entra(tenant) as e:
        cfg = write_world(tmp, tenant, directory, admins=ADMINS)
        cfg["tenants"] = [e.tenant_config()]
        conns = [aioredis.Redis.from_url(REAL_REDIS_URL) for _ in range(3)]
        a = make_service(tmp, cfg, redis=conns[0], keys=keys)
        b = make_service(tmp, cfg, redis=conns[1], keys=keys)
        await a.start(scheduler=False)
        await b.start(scheduler=False)
        try:
            yield Pair(a, b, e, keys, conns[2])
        finally:
            await a.stop()
            await b.stop()
            for c in conns:
                await c.aclose()


async def test_two_services_syncing_at_once_run_one_sync_and_skip_the_other(
    tmp_path: Path, keys: Keys, real_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_services(tmp_path, keys, monkeypatch) as p:
        p.entra.gate.arm()
        first = asyncio.create_task(p.a.run_sync(actor=Actor(ADMINS[0], "Admin 0")))
        await asyncio.wait_for(p.entra.gate.entered.wait(), 30)  # a holds the lock, in Graph
        (skipped,) = await p.b.run_sync(actor=Actor(ADMINS[1], "Admin 1"))
        p.entra.gate.release.set()
        (ran,) = await first
        assert skipped.status == "skipped" and skipped.error is not None
        assert skipped.error.code == "sync_running"
        assert ran.status == "ok" and len(ran.new_items) == 5
        assert await p.redis.exists(keys.lock("contoso")) == 0  # released
        p.entra.gate.armed = False
        (again,) = await p.b.run_sync()
        assert again.status == "ok" and again.new_items == []  # nothing to post twice
        assert len(await p.a.pending()) == 5


RACES: dict[str, tuple[Kind, dict[str, str]]] = {
    "accept": (Kind.MATCH, {}),
    "apply": (Kind.UPDATE, {}),
    "link": (Kind.NEW, {"target": "4"}),
    "create": (Kind.NEW, {}),
    "remove_sync": (Kind.REMOVAL, {}),
    "delete_user_confirm": (Kind.REMOVAL, {}),
    "pick_owner": (Kind.CONFLICT, {"owner": "e-eve"}),
    "ignore": (Kind.MATCH, {}),
}


@pytest.mark.parametrize("verb", sorted(RACES))
async def test_ten_admins_deciding_at_once_in_two_services_change_the_directory_once(
    tmp_path: Path,
    keys: Keys,
    real_redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    verb: str,
) -> None:
    kind, inputs = RACES[verb]
    async with two_services(tmp_path, keys, monkeypatch) as p:
        await p.a.run_sync()
        wa, wb = count_writes(p.a), count_writes(p.b)
        item = next(i for i in await p.a.pending() if i.kind is kind)
        decisions = await asyncio.gather(
            *(
                (p.a if n % 2 == 0 else p.b).decide(
                    item.id, verb, actor=Actor(aad, f"Admin {n}"), digest=item.digest, inputs=inputs
                )
                for n, aad in enumerate(ADMINS)
            )
        )
        done = [d for d in decisions if d.outcome == "done"]
        already = [d for d in decisions if d.outcome == "already"]
        assert len(done) == 1 and len(already) == 9, [d.message for d in decisions]
        assert done[0].item is not None
        winner = done[0].item.decided_by
        assert all(d.message == f"Already handled by {winner}." for d in already)
        expected_writes = {"ignore": 0, "pick_owner": 0}.get(verb, 1)
        assert wa.count() + wb.count() == expected_writes
        actions = [e.action for e in await p.a.store.audit_log.export_audit()]
        decided = [x for x in actions if x.split(" ")[0] in (verb, "pick", "ignore")]
        assert len(decided) == 1, actions
        assert await p.redis.scard(keys.intents()) == 0


async def test_accept_and_ignore_pressed_at_once_leave_exactly_one_decision(
    tmp_path: Path, keys: Keys, real_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with two_services(tmp_path, keys, monkeypatch) as p:
        await p.a.run_sync()
        wa, wb = count_writes(p.a), count_writes(p.b)
        item = next(i for i in await p.a.pending() if i.kind is Kind.MATCH)
        decisions = await asyncio.gather(
            *(
                (p.a if n % 2 else p.b).decide(
                    item.id,
                    "accept" if n % 2 else "ignore",
                    actor=Actor(aad, f"Admin {n}"),
                    digest=item.digest,
                    inputs={},
                )
                for n, aad in enumerate(ADMINS)
            )
        )
        assert [d.outcome for d in decisions].count("done") == 1
        final = await p.a.item(item.id)
        assert final is not None
        if final.state is ProposalState.APPLIED:
            assert wa.count() + wb.count() == 1
        else:
            assert final.state is ProposalState.IGNORED and wa.count() + wb.count() == 0


# --- a crash between accepting and writing ----------------------------------------------------


@dataclass(frozen=True)
class CrashCase:
    kind: Kind
    op: str  # the directory write the verb makes
    inputs: dict[str, str]
    check: Any  # async (directory) -> None: the change is there, once


async def _linked_anna(d: Any) -> None:
    u = await d.get("1")
    assert u.entra_id == "e-anna"


async def _carl_renamed(d: Any) -> None:
    assert (await d.get("2")).display_name == "Carl Dahl"


async def _dora_linked(d: Any) -> None:
    u = await d.get("4")
    assert u.entra_id == "e-dora"
    assert (u.first_name, u.last_name, u.display_name) == ("Dora", "Ek", "Dora Ek")


async def _dora_created(d: Any) -> None:
    made = [u for u in await d.list_users() if u.entra_id == "e-dora"]
    assert len(made) == 1 and made[0].display_name == "Dora Ek"


async def _gus_unlinked(d: Any) -> None:
    u = await d.get("3")
    assert u is not None and u.entra_id is None


async def _gus_deleted(d: Any) -> None:
    assert await d.get("3") is None


CRASHES: dict[str, CrashCase] = {
    "accept": CrashCase(Kind.MATCH, "update", {}, _linked_anna),
    "apply": CrashCase(Kind.UPDATE, "update", {}, _carl_renamed),
    "link": CrashCase(Kind.NEW, "update", {"target": "4"}, _dora_linked),
    "create": CrashCase(Kind.NEW, "create", {}, _dora_created),
    "remove_sync": CrashCase(Kind.REMOVAL, "update", {}, _gus_unlinked),
    "delete_user_confirm": CrashCase(Kind.REMOVAL, "delete", {}, _gus_deleted),
}


@pytest.mark.parametrize("when", ["before_write", "after_write"])
@pytest.mark.parametrize("verb", sorted(CRASHES))
async def test_a_crash_between_accepting_and_writing_is_finished_once_on_restart(
    tmp_path: Path,
    keys: Keys,
    real_redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    verb: str,
    when: str,
) -> None:
    case = CRASHES[verb]
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory)
    first_life = aioredis.Redis.from_url(REAL_REDIS_URL)
    dying = make_service(tmp_path, cfg, redis=first_life, keys=keys)
    await dying.start(scheduler=False)
    await dying.run_sync()
    before = count_writes(dying)
    (before.crash_before if when == "before_write" else before.crash_after).add(case.op)
    item = next(i for i in await dying.pending() if i.kind is case.kind)
    with pytest.raises(Crash):
        await dying.decide(
            item.id, verb, actor=Actor(ADMIN, "Ann Admin"), digest=item.digest, inputs=case.inputs
        )
    await dying.stop()
    await first_life.aclose()  # the process is gone
    assert await real_redis.sismember(keys.intents(), item.id)  # the intent survived it

    # the next process: its directory writes are counted from the first moment (recovery runs
    # inside start())
    import sync.service.tenants as service_module

    wrapped: list[Any] = []
    real_open = service_module.open_directory

    async def open_directory(*args: Any, **kw: Any) -> Any:
        from tests.component.real_rig import CountingDirectory

        d = CountingDirectory(await real_open(*args, **kw))
        wrapped.append(d)
        return d

    monkeypatch.setattr(service_module, "open_directory", open_directory)
    second_life = aioredis.Redis.from_url(REAL_REDIS_URL)
    restarted = make_service(tmp_path, cfg, redis=second_life, keys=keys)
    await restarted.start(scheduler=False)
    try:
        after = wrapped[0]
        done = await restarted.item(item.id)
        assert done is not None and done.state is ProposalState.APPLIED
        assert done.decided_by == "Ann Admin"
        assert await real_redis.scard(keys.intents()) == 0
        await case.check(after.inner)
        total = before.count(case.op) + after.count(case.op)
        if when == "before_write" or case.op == "update":
            # an update replayed after a crash writes the same values again: one change
            assert after.count(case.op) == 1
        else:
            assert total == 1  # never created or deleted twice
        audit = [
            e for e in await restarted.store.audit_log.export_audit() if e.proposal_id == item.id
        ]
        assert len(audit) == 1 and audit[0].actor_id == ADMIN
        # and a sync afterwards proposes nothing about it again
        (run,) = await restarted.run_sync()
        assert run.status == "ok"
        assert not [
            i
            for i in run.new_items
            if i.proposal.entra_id == item.proposal.entra_id and i.kind is case.kind
        ]
    finally:
        await restarted.stop()
        await second_life.aclose()


async def test_an_owner_chosen_just_before_a_crash_is_recorded_on_restart(
    tmp_path: Path, keys: Keys, real_redis: aioredis.Redis
) -> None:
    tenant, directory = every_kind_world()
    cfg = write_world(tmp_path, tenant, directory)
    svc = make_service(tmp_path, cfg, redis=real_redis, keys=keys)
    await svc.start(scheduler=False)
    await svc.run_sync()
    item = next(i for i in await svc.pending() if i.kind is Kind.CONFLICT)
    await svc.stop()
    # the intent of pick_owner, as the dying process recorded it
    await svc.store.proposals.transition(
        item.id,
        ProposalState.ACCEPTED,
        actor_id=ADMIN,
        actor_name="Ann Admin",
        verb="pick_owner",
        result={"owner": "e-finn"},
    )
    again = make_service(tmp_path, cfg, redis=real_redis, keys=keys)
    await again.start(scheduler=False)
    try:
        done = await again.item(item.id)
        assert done is not None and done.state is ProposalState.APPLIED
        owners = await again.store.choices.number_owners("contoso")
        assert list(owners.values()) == ["e-finn"]
    finally:
        await again.stop()


# --- Redis going away in the middle of a sync ------------------------------------------------


class RedisProxy:
    """A TCP proxy in front of the real Redis that can be cut (listener closed: connection
    refused; live connections dropped) and restored on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", 6379)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_w}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_w), pump(up_r, writer))
        self._writers -= {writer, up_w}

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()
        for w in list(self._writers):
            w.transport.abort()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def service_behind_proxy(
    tmp: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SyncService, RedisProxy, Entra]]:
    tenant, directory = every_kind_world()
    monkeypatch.setenv("CONTOSO_SECRET", ENTRA_SECRET)
    proxy = RedisProxy()
    await proxy.start()
    # redis-py retries a failed command itself (10 times, up to 1 s apart, on wall time); the
    # test keeps the retries and drops the waits between them
    client = aioredis.Redis.from_url(proxy.url, retry=Retry(NoBackoff(), 2), client_name="svc")
    async with serve_entra(tenant) as e:
        cfg = write_world(tmp, tenant, directory)
        cfg["tenants"] = [e.tenant_config()]
        svc = make_service(tmp, cfg, redis=client, keys=keys)
        await svc.start(scheduler=False)
        try:
            yield svc, proxy, e
        finally:
            await svc.stop()
            await client.aclose()
            await proxy.close()


async def _status_of(svc: SyncService) -> tuple[str | None, dict[str, Any] | None]:
    (st,) = await svc.status()
    return st.last_status, st.error


async def test_a_redis_connection_lost_mid_sync_fails_the_sync_cleanly_and_the_next_succeeds(
    tmp_path: Path, keys: Keys, real_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service_behind_proxy(tmp_path, keys, monkeypatch) as (svc, proxy, e):
        e.gate.arm(on_enter=_then_release(e, proxy.cut))
        (failed,) = await svc.run_sync()
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.code == "store_unavailable" and failed.error.retryable
        assert "nothing was lost" in failed.error.hint
        assert not failed.new_items

        await proxy.start()  # Redis is reachable again (same data)
        e.gate.armed = False
        (ok,) = await svc.run_sync()
        assert ok.status == "ok", ok.error
        assert len(ok.new_items) == 5
        assert await _status_of(svc) == ("ok", None)


async def test_a_redis_restart_that_loses_the_data_mid_sync_fails_cleanly_and_the_next_succeeds(
    tmp_path: Path, keys: Keys, real_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service_behind_proxy(tmp_path, keys, monkeypatch) as (svc, proxy, e):

        async def restart() -> None:
            await proxy.cut()
            async for k in real_redis.scan_iter(match=f"{keys.prefix}*", count=1000):
                await real_redis.delete(k)  # this Redis keeps nothing on disk

        e.gate.arm(on_enter=_then_release(e, restart))
        (failed,) = await svc.run_sync()
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.code == "store_unavailable"

        await proxy.start()
        e.gate.armed = False
        (ok,) = await svc.run_sync()
        assert ok.status == "ok", ok.error
        kinds = Counter(i.kind for i in ok.new_items)
        assert kinds[Kind.REMOVAL] == 0  # an emptied directory never yields removals
        assert await _status_of(svc) == ("ok", None)


async def test_redis_connections_killed_mid_sync_are_reopened_and_the_sync_completes(
    tmp_path: Path, keys: Keys, real_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service_behind_proxy(tmp_path, keys, monkeypatch) as (svc, _proxy, e):
        killed: list[int] = []

        async def kill() -> None:
            for c in await real_redis.client_list():
                if c.get("name") == "svc":
                    await real_redis.client_kill_filter(_id=c["id"])
                    killed.append(int(c["id"]))

        e.gate.arm(on_enter=_then_release(e, kill))
        (ok,) = await svc.run_sync()
        assert killed  # the service's connections were killed while it read Graph
        assert ok.status == "ok", ok.error
        assert len(ok.new_items) == 5


def _then_release(e: Entra, action: Any) -> Any:
    async def run() -> None:
        await action()
        e.gate.release.set()

    return run
