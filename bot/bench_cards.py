"""The bot half of ``entra-sync bench`` (``sync`` may not import ``bot``, so ``sync.devtools.bench``
runs this module in a subprocess). Each phase runs the real app (the ``/api/messages`` route,
the real SyncService on the real Redis) over a generated tenant served by the simulator in its
own process, with a recording Bot Connector on loopback HTTP.

- ``first_card_s``: from sending ``sync now`` to the first Adaptive Card the connector receives;
- digest check: a tenant whose users are all new (>= 10,000 pending items); after ``sync now``,
  how many messages were posted and the most inside any 30-second window;
- ``invoke_p99_ms`` (with ``invoke_count``, ``invoke_max_ms``): a card refresh sent every 50 ms
  from another process while a full sync of the tenant runs in the app's process; the 99th
  percentile of the time from when each was due to its answer.
- ``freshness_s``: watch mode at its default interval (60 s); the time from a change made in
  the simulator just after a delta round (the worst case) to the card the connector receives.
  Measured in simulated time: the scheduler's sleeps are skipped by advancing the service's
  clock, the rounds themselves take their wall time (see docs/bench.md).
  ``watch_quiet_messages``: what a round posted when nothing changed (0).

Prints one JSON object (the last line).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import httpx
from aiohttp import web

from bot.app import AppParts, create_app
from sync.config import EnvSettings, ScheduleSettings
from sync.devtools.bench import (
    BENCH_TENANT,
    Shares,
    SimProcess,
    bench_config,
    bench_key_root,
    bench_service,
    counting_redis,
    delete_prefix,
    seed_directory,
    simulated_tenant,
)
from sync.models import Kind
from sync.state.keys import Keys

CHANNEL = "19:bench@thread.tacv2"
ADMIN = "aad-bench-admin"
CARD = "application/vnd.microsoft.card.adaptive"
INVOKE_EVERY_S = 0.05
ALL_NEW = Shares(linked=0.0, linked_changed=0.0, matchable=0.0, deleted_linked=0.0)


@dataclass
class RecordingConnector:
    """A Bot Connector that records each POST/PUT with its arrival time (monotonic)."""

    url: str = ""
    posts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    first_card: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def _write(self, request: web.Request) -> web.Response:
        body = await request.json()
        now = time.monotonic()
        if request.method == "POST":
            self.posts.append((now, body))
            if any(a.get("contentType") == CARD for a in body.get("attachments") or ()):
                self.first_card.set()
        return web.json_response({"id": f"act-{next(self._ids)}"})

    def card_times(self) -> list[float]:
        return [
            t
            for t, b in self.posts
            if any(a.get("contentType") == CARD for a in b.get("attachments") or ())
        ]

    def max_in_window(self, seconds: float = 30.0) -> int:
        times = sorted(t for t, _ in self.posts)
        best = 0
        j = 0
        for i, t in enumerate(times):
            while times[j] <= t - seconds:
                j += 1
            best = max(best, i - j + 1)
        return best

    @classmethod
    @asynccontextmanager
    async def serve(cls) -> AsyncIterator[RecordingConnector]:
        rc = cls()
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v3/conversations/{conv}/activities", rc._write)
        app.router.add_post("/v3/conversations/{conv}/activities/{activity}", rc._write)
        app.router.add_put("/v3/conversations/{conv}/activities/{activity}", rc._write)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        rc.url = f"http://127.0.0.1:{port}/"
        try:
            yield rc
        finally:
            await runner.cleanup()


_ids = itertools.count(1)


def _activity(kind: str, service_url: str, **kw: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "id": f"in-{next(_ids)}",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": f"29:{ADMIN}", "aadObjectId": ADMIN, "name": "Bench Admin"},
        "recipient": {"id": "28:bot", "name": "Entra Sync"},
        "conversation": {
            "id": CHANNEL,
            "conversationType": "channel",
            "tenantId": "00000000-0000-0000-0000-0000000000001",
        },
        "channelData": {
            "team": {"id": "19:team@thread.tacv2"},
            "tenant": {"id": "00000000-0000-0000-0000-0000000000001"},
        },
        **kw,
    }


@asynccontextmanager
async def _bot(service: Any) -> AsyncIterator[str]:
    env = EnvSettings(MICROSOFT_APP_ID=None)
    app = create_app(
        env=env,
        service=service,
        parts=AppParts(clock=service.clock, sleep=asyncio.sleep),
        manage_service=False,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/api/messages"
    finally:
        await runner.cleanup()


@dataclass
class RunningApp:
    """The app on loopback over a generated tenant: what a phase talks to."""

    sim: SimProcess
    service: Any
    connector: RecordingConnector
    endpoint: str
    http: httpx.AsyncClient

    async def send(self, kind: str, **kw: Any) -> httpx.Response:
        resp = await self.http.post(self.endpoint, json=_activity(kind, self.connector.url, **kw))
        return resp.raise_for_status()

    async def pending_count(self) -> int:
        return sum(sum(status.pending.values()) for status in await self.service.status())


@asynccontextmanager
async def _running_app(
    users: int,
    redis_url: str,
    shares: Shares | None = None,
    page_latency: float = 0.0,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[RunningApp]:
    """A tenant of ``users`` in the simulator, its directory seeded in Redis, the service and
    the app serving it, the bot installed in a channel; every key deleted afterwards."""
    prefix = f"{bench_key_root()}{uuid.uuid4().hex[:12]}:"
    r, _trips = counting_redis(redis_url)
    keys = Keys(prefix=prefix)
    try:
        async with simulated_tenant(users, shares=shares) as sim:
            await asyncio.to_thread(sim.call, "latency", page_latency)
            await seed_directory(r, keys, users, shares=shares)
            config = bench_config(sim.url)
            service = (
                bench_service(config, r, keys)
                if clock is None
                else bench_service(config, r, keys, clock)
            )
            service.config = service.config.model_copy(
                update={"bot": service.config.bot.model_copy(update={"admins": (ADMIN,)})}
            )
            await service.start(scheduler=False)
            try:
                async with (
                    RecordingConnector.serve() as rc,
                    _bot(service) as endpoint,
                    httpx.AsyncClient(timeout=600) as http,
                ):
                    app = RunningApp(sim, service, rc, endpoint, http)
                    await app.send("installationUpdate", action="add")
                    yield app
            finally:
                await service.stop()
    finally:
        await delete_prefix(r, prefix)
        await r.aclose()


async def first_card_phase(users: int, redis_url: str, shares: Shares | None) -> dict[str, Any]:
    """Type ``sync now``; when the first card reached the connector, and what was posted."""
    async with _running_app(users, redis_url, shares) as app:
        rc = app.connector
        before = len(rc.posts)
        rc.first_card.clear()
        t0 = time.monotonic()
        send = asyncio.create_task(app.send("message", text="sync now"))
        await asyncio.wait_for(rc.first_card.wait(), timeout=600)
        first = min(t for t in rc.card_times() if t >= t0) - t0
        await send
        return {
            "first_card_s": first,
            "pending": await app.pending_count(),
            "messages": len(rc.posts[before:]),
            "max_per_30s": rc.max_in_window(30.0),
        }


def _refreshed_item(items: list[Any]) -> Any:
    """The item whose card the invokes refresh: the first pending item that is not a new user
    (a new user's card also lists directory choices), else the first."""
    if not items:
        raise RuntimeError("the first sync left no pending item to refresh")
    return next((it for it in items if it.kind is not Kind.NEW), items[0])


def _invoker_process(conn: Connection, endpoint: str, body: dict[str, Any], every: float) -> None:
    """Child process: after ``go``, post ``body`` to ``endpoint`` every ``every`` seconds
    (each on time, whether or not the earlier ones were answered) until ``stop``; then send
    (seconds from when each post was due to its answer, answers that were not 200)."""

    async def main() -> tuple[list[float], int]:
        latencies: list[float] = []
        failures = [0]
        tasks: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=600, limits=limits) as http:

            async def post(due: float) -> None:
                resp = await http.post(endpoint, json=body)
                latencies.append(time.monotonic() - due)
                failures[0] += resp.status_code != 200

            conn.send("ready")
            conn.recv()  # go
            start = time.monotonic()
            for k in itertools.count():
                due = start + k * every
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if conn.poll():  # stop
                    break
                task = asyncio.create_task(post(due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
        return latencies, failures[0]

    conn.send(asyncio.run(main()))


@dataclass
class InvokeLoad:
    """Posts one invoke every ``every`` seconds from another process (so that a busy event
    loop here delays the answers, not the sending) while the ``with`` block runs."""

    endpoint: str
    body: dict[str, Any]
    every: float = INVOKE_EVERY_S
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    @asynccontextmanager
    async def running(self) -> AsyncIterator[InvokeLoad]:
        ctx = multiprocessing.get_context("spawn")
        conn, child = ctx.Pipe()
        args = (child, self.endpoint, self.body, self.every)
        proc = ctx.Process(target=_invoker_process, args=args, name="invoker", daemon=True)
        proc.start()
        try:
            if not await asyncio.to_thread(conn.poll, 120):
                raise RuntimeError("the invoking process did not start")
            conn.recv()
            conn.send("go")
            yield self
            conn.send("stop")
            if not await asyncio.to_thread(conn.poll, 600):
                raise RuntimeError("the invoking process did not finish")
            self.latencies, self.failures = conn.recv()
        finally:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.terminate()


def p99(values: list[float]) -> float:
    """The 99th percentile by nearest rank: the smallest value that at least 99 % of the
    values do not exceed."""
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


async def invoke_phase(users: int, redis_url: str, page_latency: float) -> dict[str, Any]:
    """A card refresh (``adaptiveCard/action``, verb ``refresh``) sent every 50 ms through
    ``/api/messages`` while a full sync of ``users`` runs in the app's process: the first
    sync leaves items to refresh; the delta link then expires, so the measured run reads and
    plans every user again."""
    async with _running_app(users, redis_url, page_latency=page_latency) as app:
        await app.service.run_sync(BENCH_TENANT)
        item = _refreshed_item(await app.service.pending())
        await asyncio.to_thread(app.sim.call, "expire", True)
        action = {
            "type": "Action.Execute",
            "verb": "refresh",
            "data": {"pid": item.id, "d": item.digest},
        }
        body = _activity(
            "invoke", app.connector.url, name="adaptiveCard/action", value={"action": action}
        )
        load = InvokeLoad(app.endpoint, body)
        async with load.running():
            t0 = time.monotonic()
            (run, *_) = await app.service.run_sync(BENCH_TENANT)
            took = time.monotonic() - t0
    if run.status != "ok" or not load.latencies:
        raise RuntimeError(f"the invoke phase failed: {run.error}, {len(load.latencies)} invokes")
    return {
        "invoke_users": users,
        "invoke_sync_s": round(took, 3),
        "invoke_sync_mode": run.mode,
        "invoke_count": len(load.latencies),
        "invoke_failures": load.failures,
        "invoke_p99_ms": round(p99(load.latencies) * 1000, 1),
        "invoke_max_ms": round(max(load.latencies) * 1000, 1),
    }


class SkippingClock:
    """Wall time plus the sleeps skipped (the scheduler's waits between watch rounds)."""

    def __init__(self) -> None:
        self._start, self._mono, self.skipped = datetime.now(UTC), time.monotonic(), 0.0

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._mono + self.skipped)


async def freshness_phase(users: int, redis_url: str) -> dict[str, Any]:
    """Watch mode at its default interval: one round reads everything, a quiet round posts
    nothing, then a change in the simulator right after a round; the scheduler's waits are
    skipped on the clock, its rounds run in wall time, until the connector gets a card."""
    clock = SkippingClock()
    async with _running_app(users, redis_url, clock=clock) as app:
        service = app.service
        watch = ScheduleSettings(mode="watch")
        service.config = service.config.model_copy(update={"schedule": watch})
        interval = service.config.schedule.every_seconds

        async def next_round() -> None:
            clock.skipped += await service.scheduler.wait_s()
            await service.run_due()

        await service.run_due()  # never ran: due at once (a full read)
        quiet_from = len(app.connector.posts)
        while not (runs := await service.run_due()):
            clock.skipped += await service.scheduler.wait_s()
        if any(r.mode != "delta" for r in runs):
            raise RuntimeError("the quiet watch round was not a delta round")
        quiet = len(app.connector.posts) - quiet_from
        await asyncio.to_thread(app.sim.call, "change", 0.5)
        changed_at, cards = clock(), len(app.connector.card_times())
        while len(app.connector.card_times()) == cards:
            if clock() - changed_at > timedelta(seconds=20 * interval):
                raise RuntimeError("no card within 20 watch intervals of a change")
            await next_round()
        card_wall = app.connector.card_times()[cards]
        fresh = (clock() - changed_at).total_seconds() - (time.monotonic() - card_wall)
    return {
        "freshness_s": round(fresh, 3),
        "freshness_interval_s": interval,
        "watch_quiet_messages": quiet,
    }


async def run(
    users: int, digest_users: int, invoke_users: int, page_latency: float, redis_url: str
) -> dict[str, Any]:
    first = await first_card_phase(users, redis_url, None)
    digest = await first_card_phase(digest_users, redis_url, ALL_NEW)
    return {
        "first_card_users": users,
        "first_card_s": round(first["first_card_s"], 3),
        "first_card_messages": first["messages"],
        "digest_pending_items": digest["pending"],
        "digest_messages": digest["messages"],
        "digest_max_per_30s": digest["max_per_30s"],
        **await invoke_phase(invoke_users, redis_url, page_latency),
        **await freshness_phase(users, redis_url),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.bench_cards")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--digest-users", type=int, default=10_600)
    p.add_argument("--invoke-users", type=int, default=10_000)
    p.add_argument("--page-latency-ms", type=float, default=0.0)
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = p.parse_args(argv)
    figures = asyncio.run(
        run(
            args.users,
            args.digest_users,
            args.invoke_users,
            args.page_latency_ms / 1000,
            args.redis,
        )
    )
    sys.stdout.write(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
