"""The aiohttp app: ``POST /api/messages`` (our own route around the SDK), ``GET /healthz``, and
the sync service started and stopped with the app (``cleanup_ctx``).

``/api/messages`` never answers 500: a malformed body is 400, a bad or missing Bot Framework
token 401, an unknown activity type 200 (ignored), an invoke its invoke body, and anything
unexpected is logged and answered 200 with an error card (invoke) or an empty 200.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.access import Access, Admission, pinned_tenants
from bot.adapter import BotAuthError, ChannelSettings, TeamsAdapter
from bot.announce import Announcer
from bot.context import BotContext, BotService, Confirmations
from bot.handlers import Bot, card_reply
from bot.installation import Installations
from bot.posting import Poster, RetryPolicy, SlidingWindowLimiter
from bot.service_urls import ServiceUrlPolicy
from bot.turn import Replies
from cards import notices
from sync.config import EnvSettings
from sync.errors import ConfigError

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # Teams activities are far smaller

SERVICE_KEY = web.AppKey("service", BotService)
ADAPTER_KEY = web.AppKey("adapter", TeamsAdapter)
POSTER_KEY = web.AppKey("poster", Poster)
BOT_KEY = web.AppKey("bot", Bot)


def check_bind(host: str, local_mode: bool) -> None:
    """Local mode (no Bot Framework credentials, auth off) may only listen on loopback."""
    if not local_mode:
        return
    if host in ("localhost", "ip6-localhost"):
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"refusing to listen on {host}: without MICROSOFT_APP_ID/MICROSOFT_APP_PASSWORD the "
            "bot runs in local mode with Bot Framework authentication off, which is only safe "
            "on a loopback address (127.0.0.1 or ::1). Set the credentials or bind to loopback."
        )


@dataclass(frozen=True, slots=True)
class AppParts:
    """Test seams: everything create_app builds can be given instead."""

    clock: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]]
    monotonic: Callable[[], float] = time.monotonic
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # the Bot Framework cloud settings (serve: from the environment)
    channel: ChannelSettings = field(default_factory=ChannelSettings)


def create_app(
    *,
    env: EnvSettings,
    service: BotService,
    parts: AppParts,
    adapter: TeamsAdapter | None = None,
    manage_service: bool = True,
) -> web.Application:
    """The app. ``service`` is the SyncService (built by the caller from config, env, redis);
    with ``manage_service`` its ``start``/``stop`` (scheduler, crash recovery) run with the app."""
    service_urls = ServiceUrlPolicy(
        local_mode=env.local_mode, allow=service.config.bot.service_url_allow
    )
    adapter = adapter or TeamsAdapter(
        app_id=env.MICROSOFT_APP_ID or "",
        app_password=(
            env.MICROSOFT_APP_PASSWORD.get_secret_value() if env.MICROSOFT_APP_PASSWORD else ""
        ),
        app_tenant_id=env.MICROSOFT_APP_TENANT_ID or "",
        channel=parts.channel,
        service_urls=service_urls,
    )
    limiter = SlidingWindowLimiter(clock=parts.monotonic, sleep=parts.sleep)
    conversations = service.conversations
    poster = Poster(
        sender=adapter,
        store=conversations,
        limiter=limiter,
        sleep=parts.sleep,
        retry=parts.retry,
    )
    access = Access(
        admins=lambda: service.config.bot.admins,
        conversations=conversations,
        membership=adapter.is_member,
        local_mode=adapter.local_mode,
        clock=parts.monotonic,
    )
    replies = Replies(poster=poster, conversations=conversations)
    ctx = BotContext(
        service=service,
        replies=replies,
        installations=Installations(conversations=conversations, replies=replies),
        confirmations=Confirmations(conversations=conversations),
        clock=parts.clock,
    )
    Announcer(service=service, poster=poster, clock=parts.clock).listen()
    admission = Admission(
        pinned=pinned_tenants(service.config, env.MICROSOFT_APP_TENANT_ID or ""),
        local_mode=adapter.local_mode,
        service_urls=service_urls,
    )
    bot = Bot(ctx=ctx, admission=admission, access=access)
    app = web.Application(client_max_size=MAX_BODY)
    app[SERVICE_KEY] = service
    app[ADAPTER_KEY] = adapter
    app[POSTER_KEY] = poster
    app[BOT_KEY] = bot
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    if manage_service:
        app.cleanup_ctx.append(_service_ctx)
    return app


async def _service_ctx(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE_KEY]
    start = getattr(service, "start", None)
    stop = getattr(service, "stop", None)
    if callable(start):
        await start()
    try:
        yield
    finally:
        if callable(stop):
            await stop()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "local_mode": request.app[ADAPTER_KEY].local_mode})


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": "bad_request", "message": reason}, status=400)


async def messages(request: web.Request) -> web.Response:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return web.json_response({"error": "too_large"}, status=413)
    try:
        activity: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _bad_request("body is not JSON")
    if not isinstance(activity, dict):
        return _bad_request("body is not a JSON object")
    if not isinstance(activity.get("type"), str) or not activity["type"]:
        return _bad_request("activity has no type")
    is_invoke = activity["type"] == "invoke"
    adapter = request.app[ADAPTER_KEY]
    bot = request.app[BOT_KEY]
    auth_header = request.headers.get("Authorization", "")
    try:
        reply = await adapter.process(auth_header, activity, bot.on_activity)
    except BotAuthError as e:
        log.warning("unauthenticated request refused: %s", e.message)
        return web.json_response({"error": "unauthorized"}, status=401)
    except ValueError as e:
        return _bad_request(str(e)[:200])
    except Exception:
        log.exception("activity of type %r failed", activity.get("type"))
        if is_invoke:
            body = card_reply(notices.crashed_card()).body
            return web.json_response(body, status=200)
        return web.Response(status=200)
    if reply is not None:
        if reply.body is None:
            return web.Response(status=reply.status)
        return web.json_response(reply.body, status=reply.status)
    if is_invoke:
        return web.json_response({}, status=200)
    return web.Response(status=200)
