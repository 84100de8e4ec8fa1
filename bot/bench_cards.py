"""The bot half of ``entra-sync bench`` (``sync`` may not import ``bot``, so ``sync.devtools.bench``
runs this module in a subprocess): ``first_card_s`` and the digest check, through the real
``/api/messages`` route, the real SyncService on the real Redis, a generated tenant served by
the simulator in its own process, and a recording Bot Connector over loopback HTTP.

- ``first_card_s``: from sending ``sync now`` to the first Adaptive Card the connector receives;
- digest check: a tenant whose users are all new (>= 10,000 pending items); after ``sync now``,
  how many messages were posted and the most inside any 30-second window.

Prints one JSON object (the last line).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from bot.app import AppParts, create_app
from sync.config import EnvSettings
from sync.devtools.bench import (
    BENCH_TENANT,
    Shares,
    bench_config,
    bench_service,
    counting_redis,
    delete_prefix,
    seed_directory,
    simulated_tenant,
)
from sync.state.keys import Keys

CHANNEL = "19:bench@thread.tacv2"
ADMIN = "aad-bench-admin"
CARD = "application/vnd.microsoft.card.adaptive"
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


async def _phase(users: int, redis_url: str, shares: Shares | None) -> dict[str, Any]:
    """Install the bot in a channel, type ``sync now``; what reached the connector."""
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    r, _trips = counting_redis(redis_url)
    keys = Keys(prefix=prefix)
    try:
        async with simulated_tenant(users, shares=shares) as sim:
            await seed_directory(r, keys, users, shares=shares)
            service = bench_service(bench_config(sim.url), r, keys)
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
                    install = _activity("installationUpdate", rc.url, action="add")
                    (await http.post(endpoint, json=install)).raise_for_status()
                    before = len(rc.posts)
                    rc.first_card.clear()
                    t0 = time.monotonic()
                    send = asyncio.create_task(
                        http.post(endpoint, json=_activity("message", rc.url, text="sync now"))
                    )
                    await asyncio.wait_for(rc.first_card.wait(), timeout=600)
                    first = min(t for t in rc.card_times() if t >= t0) - t0
                    (await send).raise_for_status()
                    pending = sum(
                        (await service.store.pending_counts(BENCH_TENANT, "main")).values()
                    )
                    posted = rc.posts[before:]
                    return {
                        "first_card_s": first,
                        "pending": pending,
                        "messages": len(posted),
                        "max_per_30s": rc.max_in_window(30.0),
                    }
            finally:
                await service.stop()
    finally:
        await delete_prefix(r, prefix)
        await r.aclose()


async def run(users: int, digest_users: int, redis_url: str) -> dict[str, Any]:
    first = await _phase(users, redis_url, None)
    digest = await _phase(digest_users, redis_url, ALL_NEW)
    return {
        "first_card_users": users,
        "first_card_s": round(first["first_card_s"], 3),
        "first_card_messages": first["messages"],
        "digest_pending_items": digest["pending"],
        "digest_messages": digest["messages"],
        "digest_max_per_30s": digest["max_per_30s"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.bench_cards")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--digest-users", type=int, default=10_600)
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = p.parse_args(argv)
    figures = asyncio.run(run(args.users, args.digest_users, args.redis))
    sys.stdout.write(json.dumps(figures) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
