"""`entra-sync serve`: build the service from config and environment, and run the bot."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

from aiohttp import web

from bot.adapter import ChannelSettings, requests_trust_ssl_cert_file
from bot.app import AppParts, Limits, check_bind, create_app
from sync.config import Config, EnvSettings, load_config
from sync.service.service import SyncService
from sync.state.connection import make_redis
from sync.state.keys import Keys

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_service(config: Config, env: EnvSettings) -> SyncService:
    return SyncService(
        config=config,
        env=env,
        redis=make_redis(env.REDIS_URL),
        keys=Keys(env.ENTRA_SYNC_REDIS_PREFIX),
        clock=utc_now,
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
    app = build_app(config, env)
    mode = "local mode (Bot Framework auth off)" if env.local_mode else "Teams mode"
    log.info("Entra Sync bot on http://%s:%d/api/messages, %s", host, port, mode)
    web.run_app(
        app, host=host, port=port, print=None, access_log=None, **Limits().server_settings()
    )
    return 0
