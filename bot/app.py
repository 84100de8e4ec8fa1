"""The aiohttp app: ``POST /api/messages`` (our own route around the SDK), the probes
(``GET /healthz``: the process answers, no I/O; ``GET /readyz``: Redis and each tenant),
``GET /metrics`` (Prometheus; see ``metrics_refusal`` for who may read it), and the sync
service started and stopped with the app (``cleanup_ctx``).

``/api/messages`` never answers 500: a malformed body is 400, a bad or missing Bot Framework
token 401, an unknown activity type 200 (ignored), an invoke its invoke body, and anything
unexpected is logged and answered 200 with an error card (invoke) or an empty 200.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import SecretStr

from bot.access import Access, Admission, pinned_tenants
from bot.adapter import BotAuthError, ChannelSettings, TeamsAdapter
from bot.announce import Announcer
from bot.context import BotContext, BotService, Confirmations
from bot.handlers import Bot, card_reply
from bot.installation import Installations
from bot.posting import TEAMS_RETRY, Poster, SlidingWindowLimiter
from bot.service_urls import ServiceUrlPolicy, is_loopback
from bot.turn import Replies
from cards import notices
from sync.config import EnvSettings
from sync.errors import ConfigError
from sync.retry import RetryPolicy

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # Teams activities are far smaller
HEADER_TIMEOUT = 15.0  # seconds for a connection to send a complete request head
BODY_TIMEOUT = 15.0  # seconds for the body to arrive once the head is in
PLAYGROUND_ORIGINS = frozenset({"http://127.0.0.1:56150", "http://localhost:56150"})

SERVICE_KEY = web.AppKey("service", BotService)
ADAPTER_KEY = web.AppKey("adapter", TeamsAdapter)
POSTER_KEY = web.AppKey("poster", Poster)
BOT_KEY = web.AppKey("bot", Bot)
METRICS_TOKEN_KEY = web.AppKey("metrics_token", SecretStr)
MIN_METRICS_TOKEN = 16  # characters: `openssl rand -hex 32` gives 64
FORWARDED_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


@dataclass(frozen=True, slots=True)
class Limits:
    """How long a client may take. The head timeout is the server's (``server_settings``)."""

    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT

    def server_settings(self) -> dict[str, Any]:
        """aiohttp server settings: aiohttp closes a connection that has not sent a complete
        request head within ``keepalive_timeout`` (3.14: the timer starts on connect)."""
        return {"keepalive_timeout": self.header_timeout}


LIMITS_KEY = web.AppKey("limits", Limits)


def check_bind(host: str, local_mode: bool) -> None:
    """Local mode (no Bot Framework credentials, auth off) may only listen on loopback."""
    if local_mode and not is_loopback(host):
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
    retry: RetryPolicy = TEAMS_RETRY
    limits: Limits = field(default_factory=Limits)
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
        metrics=service.metrics,
    )
    access = Access(
        admins=lambda: service.config.bot.admins,
        conversations=conversations,
        membership=adapter.is_member,
        local_mode=adapter.local_mode,
        clock=parts.monotonic,
        roster=adapter.members,
    )
    replies = Replies(poster=poster, conversations=conversations)
    ctx = BotContext(
        service=service,
        replies=replies,
        installations=Installations(
            conversations=conversations, replies=replies, clock=parts.clock
        ),
        confirmations=Confirmations(conversations=conversations),
        clock=parts.clock,
        audience=access.card_audience,
    )
    Announcer(
        service=service, poster=poster, clock=parts.clock, audience=access.card_audience
    ).listen()
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
    app[LIMITS_KEY] = parts.limits
    token = metrics_token(env.ENTRA_SYNC_METRICS_TOKEN)
    if token is not None:
        app[METRICS_TOKEN_KEY] = token
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
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
    """Alive: the process and its event loop answer. No I/O (a liveness probe must not fail
    because Redis or Graph does: restarting the bot would not fix them)."""
    return web.json_response(
        {"ok": True, "status": "alive", "local_mode": request.app[ADAPTER_KEY].local_mode}
    )


async def readyz(request: web.Request) -> web.Response:
    """Ready: 200 when Redis answers (tenant problems make it ``degraded``, still 200); 503
    with the failed checks, each with its code and hint. ``?strict=1``: a failing tenant
    check is 503 too (for monitoring that should alert on it)."""
    strict = request.query.get("strict", "0") not in ("", "0", "false")
    try:
        report = await request.app[SERVICE_KEY].readiness()
    except Exception:
        log.exception("readiness check crashed")
        body: dict[str, Any] = {"status": "not_ready", "failed": ["internal"]}
        return web.json_response(body, status=503)
    body = report.to_dict(strict=strict)
    return web.json_response(body, status=503 if body["status"] == "not_ready" else 200)


def metrics_token(token: SecretStr | None) -> SecretStr | None:
    """``ENTRA_SYNC_METRICS_TOKEN``, refused when too short to be a secret."""
    if token is None or not token.get_secret_value():
        return None
    if len(token.get_secret_value()) < MIN_METRICS_TOKEN:
        raise ConfigError(
            f"ENTRA_SYNC_METRICS_TOKEN is shorter than {MIN_METRICS_TOKEN} characters; use a "
            "random value, e.g. the output of `openssl rand -hex 32`, or unset it"
        )
    return token


def metrics_refusal(request: web.Request) -> web.Response | None:
    """Who may read ``/metrics``: with ``ENTRA_SYNC_METRICS_TOKEN`` set, whoever sends it as
    ``Authorization: Bearer <token>`` (401 otherwise); without it, only a client on this
    machine talking to the bot directly: a loopback peer and no proxy header (a request
    through a reverse proxy on the same machine comes from loopback too), 403 otherwise."""
    token = request.app.get(METRICS_TOKEN_KEY)
    if token is not None:
        sent = request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(sent, f"Bearer {token.get_secret_value()}".encode()):
            return None
        return web.json_response(
            {"error": "unauthorized", "message": "send Authorization: Bearer <metrics token>"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    proxied = any(h in request.headers for h in FORWARDED_HEADERS)
    if is_loopback(request.remote or "") and not proxied:
        return None
    return _error(
        403,
        "forbidden",
        "metrics are served to this machine only; set ENTRA_SYNC_METRICS_TOKEN to scrape "
        "from elsewhere",
    )


async def metrics(request: web.Request) -> web.Response:
    if (refused := metrics_refusal(request)) is not None:
        return refused
    await request.app[SERVICE_KEY].refresh_pending()
    registry = request.app[SERVICE_KEY].metrics
    return web.Response(body=registry.render(), headers={"Content-Type": registry.content_type})


def _error(status: int, error: str, message: str = "") -> web.Response:
    body = {"error": error, "message": message} if message else {"error": error}
    return web.json_response(body, status=status)


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header ("127.0.0.1:3978", "[::1]:3978", "localhost")."""
    try:
        return urlsplit(f"//{host_header}").hostname or ""
    except ValueError:
        return ""


def local_request_refusal(request: web.Request) -> web.Response | None:
    """Local mode has no authentication, so only the local connector may talk to it: a JSON
    body (a cross-site form or ``text/plain`` POST is 415), a loopback ``Host`` (DNS rebinding
    is 421), and no browser ``Origin`` other than the Agents Playground's own (403)."""
    if request.content_type != "application/json":
        return _error(415, "unsupported_media_type", "send application/json")
    if not is_loopback(host_name(request.headers.get("Host", ""))):
        return _error(421, "misdirected_request", "local mode answers loopback hosts only")
    origin = request.headers.get("Origin")
    if origin is not None and origin not in PLAYGROUND_ORIGINS:
        return _error(403, "forbidden_origin")
    return None


async def read_activity(request: web.Request, seconds: float) -> dict[str, Any] | web.Response:
    """The body as a JSON object, or the error response: 413 over MAX_BODY, 408 when the body
    does not arrive within ``seconds``, 400 for anything that is not a JSON object with
    a ``type`` (deep nesting and huge integers included, never a 500)."""
    if (request.content_length or 0) > MAX_BODY:
        return _error(413, "too_large")
    try:
        async with asyncio.timeout(seconds):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "too_large")
    except TimeoutError:
        return _error(408, "request_timeout")
    try:
        activity: Any = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, int digits
        return _error(400, "bad_request", "body is not JSON")
    if not isinstance(activity, dict):
        return _error(400, "bad_request", "body is not a JSON object")
    if not isinstance(activity.get("type"), str) or not activity["type"]:
        return _error(400, "bad_request", "activity has no type")
    return activity


async def messages(request: web.Request) -> web.Response:
    adapter = request.app[ADAPTER_KEY]
    if adapter.local_mode and (refused := local_request_refusal(request)) is not None:
        return refused
    activity = await read_activity(request, request.app[LIMITS_KEY].body_timeout)
    if isinstance(activity, web.Response):
        return activity
    is_invoke = activity["type"] == "invoke"
    bot = request.app[BOT_KEY]
    try:
        reply = await adapter.process(
            request.headers.get("Authorization", ""), activity, bot.on_activity
        )
    except BotAuthError as e:
        log.warning("unauthenticated request refused: %s", e.message)
        return _error(401, "unauthorized")
    except (ValueError, RecursionError) as e:
        return _error(400, "bad_request", str(e)[:200])
    except Exception:
        log.exception("activity of type %r failed", activity.get("type"))
        reply = card_reply(notices.crashed_card()) if is_invoke else None
    if reply is not None:
        if reply.body is None:
            return web.Response(status=reply.status)
        return web.json_response(reply.body, status=reply.status)
    if is_invoke:
        return web.json_response({}, status=200)
    return web.Response(status=200)
