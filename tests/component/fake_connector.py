"""A fake Bot Connector (the Teams side of the Bot Framework REST API) served over real HTTP on
loopback: it records every activity the bot POSTs or PUTs, answers member look-ups, and can be
told to fail the next N requests (429 + Retry-After, 412, 502, ...).

Only the routes the bot uses are modelled:
- POST /v3/conversations/{conv}/activities                (send to conversation)
- POST /v3/conversations/{conv}/activities/{activity}     (reply to activity)
- PUT  /v3/conversations/{conv}/activities/{activity}     (update activity)
- GET  /v3/conversations/{conv}/members/{member}          (one member; 404 when not a member)
- GET  /v3/conversations/{conv}/members                   (all members)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Recorded:
    method: str
    conversation: str
    activity_id: str | None
    body: dict[str, Any]
    status: int


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: float | None
    method: str | None


@dataclass
class FakeConnector:
    """Start with ``async with FakeConnector.serve() as fc``; ``fc.url`` is the serviceUrl."""

    url: str = ""
    recorded: list[Recorded] = field(default_factory=list)
    rejected: list[Recorded] = field(default_factory=list)
    # conversation id -> {aadObjectId: display name}
    members: dict[str, dict[str, str]] = field(default_factory=dict)
    _failures: list[_Failure] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- control ----------------------------------------------------------------------------
    def fail_next(
        self,
        times: int,
        *,
        status: int = 429,
        retry_after: float | None = 1.0,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` POST/PUT requests (or only ``method``) with ``status``."""
        self._failures.append(_Failure(status, times, retry_after, method))

    def add_member(self, conversation: str, aad_id: str, name: str = "") -> None:
        self.members.setdefault(conversation, {})[aad_id] = name or aad_id

    # --- views ------------------------------------------------------------------------------
    @property
    def posts(self) -> list[Recorded]:
        return [r for r in self.recorded if r.method == "POST"]

    @property
    def puts(self) -> list[Recorded]:
        return [r for r in self.recorded if r.method == "PUT"]

    def cards(self, method: str | None = None) -> list[dict[str, Any]]:
        """Adaptive Card contents of recorded activities, in order."""
        out = []
        for r in self.recorded:
            if method and r.method != method:
                continue
            for a in r.body.get("attachments") or []:
                if a.get("contentType") == "application/vnd.microsoft.card.adaptive":
                    out.append(a["content"])
        return out

    # --- server -----------------------------------------------------------------------------
    def _take_failure(self, method: str) -> _Failure | None:
        for f in self._failures:
            if f.times > 0 and (f.method is None or f.method == method):
                f.times -= 1
                return f
        return None

    async def _write(self, request: web.Request) -> web.Response:
        conv = request.match_info["conv"]
        act = request.match_info.get("activity")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response({"error": {"code": "BadArgument"}}, status=400)
        failure = self._take_failure(request.method)
        if failure is not None:
            self.rejected.append(Recorded(request.method, conv, act, body, failure.status))
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = str(failure.retry_after)
            return web.json_response(
                {"error": {"code": "Throttled", "message": "fake failure"}},
                status=failure.status,
                headers=headers,
            )
        if request.method == "PUT":
            new_id = act or ""
        else:
            new_id = f"act-{next(self._ids)}"
        self.recorded.append(Recorded(request.method, conv, act, body, 200))
        return web.json_response({"id": new_id})

    async def _member(self, request: web.Request) -> web.Response:
        conv = request.match_info["conv"]
        member = request.match_info["member"]
        names = self.members.get(conv, {})
        if member not in names:
            return web.json_response(
                {"error": {"code": "MemberNotFoundInConversation"}}, status=404
            )
        return web.json_response(
            {"id": f"29:{member}", "aadObjectId": member, "name": names[member]}
        )

    async def _members(self, request: web.Request) -> web.Response:
        conv = request.match_info["conv"]
        names = self.members.get(conv, {})
        # Teams gives each member its MRI ("29:...") as id, and its Entra object id apart
        # (learn.microsoft.com, "Get the roster or user profile": GET .../members)
        return web.json_response(
            [{"id": f"29:{k}", "aadObjectId": k, "name": v} for k, v in names.items()]
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations/{conv}/activities", self._write)
        app.router.add_post("/v3/conversations/{conv}/activities/{activity}", self._write)
        app.router.add_put("/v3/conversations/{conv}/activities/{activity}", self._write)
        app.router.add_get("/v3/conversations/{conv}/members/{member}", self._member)
        app.router.add_get("/v3/conversations/{conv}/members", self._members)
        return app

    @classmethod
    @asynccontextmanager
    async def serve(cls) -> AsyncIterator[FakeConnector]:
        fc = cls()
        runner = web.AppRunner(fc.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        fc.url = f"http://127.0.0.1:{port}/"
        try:
            yield fc
        finally:
            await runner.cleanup()
