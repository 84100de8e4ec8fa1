"""`entra-sync serve`: set up logging, build the service from config and environment (one
``Metrics`` for the whole app), and run the bot."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web
from pythonjsonlogger.json import JsonFormatter

from bot.adapter import ChannelSettings, requests_trust_ssl_cert_file
from bot.app import AppParts, Limits, check_bind, create_app
from sync.config import Config, EnvSettings, load_config
from sync.errors import ConfigError, InputError
from sync.metrics import Metrics
from sync.service.service import SyncService
from sync.state.connection import make_redis
from sync.state.keys import Keys

log = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def log_formatter(log_format: str) -> logging.Formatter:
    """``text``: one line a record (the operator lines carry their fields as key=value);
    ``json``: one JSON object a line, the operator lines' fields as JSON fields."""
    if log_format == "json":
        return JsonFormatter(
            ["levelname", "name", "message"], rename_fields={"levelname": "level"}, timestamp=True
        )
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(environ: Mapping[str, str]) -> None:
    """Once, at startup: ``LOG_LEVEL`` (INFO) and ``LOG_FORMAT`` (text, or json for log
    shippers) on stderr, replacing whatever was set up before."""
    level = environ.get("LOG_LEVEL", "INFO").upper()
    log_format = environ.get("LOG_FORMAT", "text").lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT={log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # one line per outbound request is noise unless debugging
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


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
    configure_logging(os.environ)
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
