"""`entra-sync serve`: build the service from config and environment (one
``Metrics`` for the whole app), and run the bot."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from datetime import UTC, datetime

from aiohttp import web

from bot.adapter import ChannelSettings, requests_trust_ssl_cert_file
from bot.app import AppParts, Limits, check_bind, create_app
from sync.config import Config, EnvSettings, load_config
from sync.errors import InputError
from sync.metrics import Metrics
from sync.service.service import SyncService
from sync.state.connection import make_redis
from sync.state.keys import Keys

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_service(config: Config, env: EnvSettings) -> SyncService:
    metrics = Metrics()
    return SyncService(
        config=config,
        env=env,
        redis=make_redis(env.REDIS_URL, on_error=metrics.redis_error),
        keys=Keys(env.ENTRA_SYNC_REDIS_PREFIX),
        clock=utc_now,
        metrics=metrics,
    )


def build_app(config: Config, env: EnvSettings) -> web.Application:
    service = build_service(config, env)
    parts = AppParts(clock=utc_now, sleep=asyncio.sleep, channel=ChannelSettings())
    return create_app(env=env, service=service, parts=parts)


def serve(*, config_path: str | None, host: str, port: int) -> int:
    env = EnvSettings()
    config = load_config(config_path)
    requests_trust_ssl_cert_file(os.environ)
    check_bind(host, env.local_mode)
    socks = bind_sockets(host, port)  # before "running": a busy port is a one-line error
    app = build_app(config, env)
    mode = "local mode (Bot Framework auth off)" if env.local_mode else "Teams mode"
    log.info("Entra Sync bot on http://%s:%d/api/messages, %s", host, port, mode)
    who = "bearer token" if env.ENTRA_SYNC_METRICS_TOKEN else "this machine only"
    log.info("probes on /healthz and /readyz; Prometheus metrics on /metrics (%s)", who)
    web.run_app(app, sock=socks, print=None, access_log=None, **Limits().server_settings())
    return 0


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """Listening TCP sockets on ``host:port`` (each address ``host`` names, as aiohttp would
    bind them), or an InputError that says why not (the port is in use, the address is not
    this machine's, the port needs root)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InputError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    socks: list[socket.socket] = []
    for family, kind, proto, _, addr in dict.fromkeys((i[0], i[1], i[2], "", i[4]) for i in infos):
        sock = socket.socket(family, kind, proto)
        socks.append(sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(128)
        except OSError as e:
            for s in socks:
                s.close()
            why = {
                errno.EADDRINUSE: "the port is already in use (another entra-sync or program "
                "listens there; stop it or choose another --port)",
                errno.EACCES: "permission denied (ports below 1024 need root; use a reverse proxy)",
                errno.EADDRNOTAVAIL: "the address is not one of this machine's",
            }.get(e.errno or 0, e.strerror or str(e))
            raise InputError(f"cannot listen on {host}:{port}: {why}") from None
    return socks
