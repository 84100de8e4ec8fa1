"""Tenant runtimes: for each configured tenant, the Graph client that reads it (Entra through
MSAL, or a simulated tenant served in-process over loopback HTTP), and directory adapters."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import Config, DirectoryConfig, TenantConfig
from sync.devtools.simulator import TenantSim, load_tenant_file, serve_simulator
from sync.directories.base import Directory
from sync.directories.builtin import BuiltinDirectory
from sync.errors import ConfigError
from sync.graph.auth import Credential, MsalTokenProvider, load_client_certificate
from sync.graph.client import GraphClient
from sync.state.keys import Keys

log = logging.getLogger(__name__)

SIM_CLIENT_ID = "00000000-0000-0000-0000-00000000e5e5"


@dataclass
class TenantRuntime:
    """One tenant as the engine uses it. ``sim`` is set for a simulated tenant (tests and the
    demo change its users through it)."""

    config: TenantConfig
    graph: GraphClient
    sim: TenantSim | None = None
    credential: Credential | None = None  # what it signs in with (None: simulated)

    @property
    def name(self) -> str:
        return self.config.name


def tenant_credential(cfg: TenantConfig, config: Config) -> Credential:
    """The tenant's credential from the config: its certificate file, else the secret in the
    environment variable ``client_secret_env``."""
    if cfg.client_certificate:
        pw_env = cfg.client_certificate_password_env
        password = os.environ.get(pw_env) if pw_env else None
        if pw_env and not password:
            raise ConfigError(
                f"tenant '{cfg.name}': the environment variable {pw_env} "
                "(client_certificate_password_env) is not set"
            )
        return load_client_certificate(
            config.resolve(cfg.client_certificate), SecretStr(password) if password else None
        )
    env_name = cfg.client_secret_env
    value = os.environ.get(env_name) if env_name else None
    if not value:
        raise ConfigError(
            f"tenant '{cfg.name}': the client secret is missing; set the environment "
            f"variable {env_name or '(client_secret_env)'}, give client_certificate, or use "
            "'connect' in Teams"
        )
    return SecretStr(value)


async def open_tenant(
    cfg: TenantConfig,
    config: Config,
    stack: AsyncExitStack,
    *,
    http: httpx.AsyncClient,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    secret: Credential | None = None,
    observe: Callable[[int | None], None] | None = None,
) -> TenantRuntime:
    """Build the Graph client for a tenant; resources are closed with ``stack``. ``observe``
    hears the status of each Graph answer (metrics)."""
    if cfg.simulate is not None:
        sim = load_tenant_file(config.resolve(cfg.simulate))
        base = await stack.enter_async_context(serve_simulator(sim))
        tokens = MsalTokenProvider(
            cfg.tenant_id or "simulated",
            cfg.client_id or SIM_CLIENT_ID,
            SecretStr("simulated-secret"),
            authority_host=base,
            graph_resource=base,
        )
        stack.callback(tokens.close)
        graph = GraphClient(
            tokens, base_url=f"{base}/v1.0", http=http, sleep=sleep, observe=observe
        )
        log.info("tenant %s: simulated from %s on %s", cfg.name, cfg.simulate, base)
        return TenantRuntime(cfg, graph, sim)
    if secret is None:
        secret = tenant_credential(cfg, config)
    assert cfg.tenant_id and cfg.client_id  # checked by TenantConfig
    if cfg.authority_host:
        tokens = MsalTokenProvider(
            cfg.tenant_id, cfg.client_id, secret, authority_host=cfg.authority_host
        )
    else:
        tokens = MsalTokenProvider(cfg.tenant_id, cfg.client_id, secret)
    stack.callback(tokens.close)
    graph = GraphClient(
        tokens,
        base_url=cfg.graph_url or "https://graph.microsoft.com/v1.0",
        http=http,
        sleep=sleep,
        observe=observe,
    )
    return TenantRuntime(cfg, graph, credential=secret)


async def open_directory(
    cfg: DirectoryConfig,
    config: Config,
    *,
    redis: aioredis.Redis,
    keys: Keys,
    http: httpx.AsyncClient,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Directory:
    if cfg.kind == "builtin":
        d = BuiltinDirectory(redis, keys, cfg.name)
        if cfg.seed_file:
            n = await d.import_seed(config.resolve(cfg.seed_file))
            if n:
                log.info("directory %s: imported %d users from %s", cfg.name, n, cfg.seed_file)
        return d
    from sync.directories.scim import ScimDirectory

    token = os.environ.get(cfg.token_env) if cfg.token_env else None
    if cfg.token_env and not token:
        raise ConfigError(
            f"directory '{cfg.name}': set the environment variable {cfg.token_env} "
            "to the SCIM bearer token"
        )
    assert cfg.url
    return ScimDirectory(
        cfg.url, SecretStr(token) if token else None, http=http, name=cfg.name, sleep=sleep
    )
