"""The configuration in force, and what it opens: the Graph client of each tenant and the
directory adapters. A tenant that cannot be opened is kept with its error for the status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import Config, TenantConfig
from sync.directories.base import Directory
from sync.errors import ConfigError, InputError, SyncError
from sync.graph.auth import ClientCertificate, Credential
from sync.metrics import Metrics
from sync.service.records import CONNECTED
from sync.service.runtime import TenantRuntime, open_directory, open_tenant
from sync.service.settings_form import merge_config
from sync.state.keys import Keys
from sync.state.store import StateStore

log = logging.getLogger(__name__)

NO_CERTIFICATE = (
    "the tenant was connected with the bot's certificate, but ENTRA_SYNC_CLIENT_CERTIFICATE is "
    "not set: set it, or run connect again with a client secret"
)


@dataclass
class LiveConfig:
    """The file's config, and the config in force (the file with the settings saved in
    Teams over it)."""

    file: Config
    current: Config


class Tenants:
    """Opens and holds the tenants (``runtimes``, ``errors``) and ``directories``."""

    def __init__(
        self,
        live: LiveConfig,
        store: StateStore,
        *,
        redis: aioredis.Redis,
        keys: Keys,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics,
        certificate: ClientCertificate | None = None,
    ) -> None:
        self.certificate = certificate  # what `connect` signs in with when no secret is given
        self._live = live
        self._metrics = metrics
        self._store = store
        self._redis = redis
        self._keys = keys
        self._sleep = sleep
        self.runtimes: dict[str, TenantRuntime] = {}
        self.errors: dict[str, SyncError] = {}
        self.directories: dict[str, Directory] = {}
        self._stack = AsyncExitStack()
        self.http: httpx.AsyncClient | None = None

    async def open(self) -> None:
        """Apply the settings saved in Teams, then open every directory and tenant."""
        self.http = await self._stack.enter_async_context(
            # trust_env: HTTPS_PROXY / HTTP_PROXY / NO_PROXY and the CA bundle in SSL_CERT_FILE
            httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0), trust_env=True)
        )
        overrides = await self._store.settings.get_settings_overrides()
        if overrides:
            try:
                self._live.current = merge_config(self._live.file, overrides)
            except InputError as e:
                log.warning("settings saved in Teams are invalid (%s); using the file", e.code)
        config = self._live.current
        for d in config.directories:
            self.directories[d.name] = await open_directory(
                d, config, redis=self._redis, keys=self._keys, http=self.http, sleep=self._sleep
            )
        for t in config.tenants:
            await self.open_tenant(t)
        await self.open_connected()

    async def close(self) -> None:
        await self._stack.aclose()
        self._stack = AsyncExitStack()

    async def open_tenant(self, t: TenantConfig, secret: Credential | None = None) -> None:
        assert self.http is not None, "open() first"
        try:
            observe = self._metrics.graph_observer(t.name)
            self.runtimes[t.name] = await open_tenant(
                t,
                self._live.current,
                self._stack,
                http=self.http,
                sleep=self._sleep,
                secret=secret,
                observe=observe,
            )
            self.errors.pop(t.name, None)
        except SyncError as e:
            log.warning("tenant %s cannot be opened: %s (%s)", t.name, e.code, e.hint)
            self.errors[t.name] = e

    async def open_connected(self) -> None:
        """The tenant connected from Teams (`connect`): credentials live encrypted in Redis;
        it feeds the first directory."""
        creds = await self._store.tenant_credentials.credentials(CONNECTED)
        if creds is None or CONNECTED in self.runtimes:
            return
        tenant_id, client_id, secret = creds
        config = self._connected_config(tenant_id, client_id)
        credential = self.connect_credential(secret)
        if credential is None:  # connected with the certificate, which is no longer set
            self.errors[CONNECTED] = ConfigError(NO_CERTIFICATE)
            return
        await self.open_tenant(config, credential)

    def connect_credential(self, secret: SecretStr) -> Credential | None:
        """What `connect` signs in with: the secret given, else (empty) the bot's certificate."""
        return secret if secret.get_secret_value().strip() else self.certificate

    async def prove_connected(self, tenant_id: str, client_id: str, secret: Credential) -> None:
        """Sign in with credentials for the connected tenant on the side (one token request),
        leaving the tenant in force untouched. Raises the AuthError Entra's answer maps to."""
        assert self.http is not None, "open() first"
        async with AsyncExitStack() as stack:
            runtime = await open_tenant(
                self._connected_config(tenant_id, client_id),
                self._live.current,
                stack,
                http=self.http,
                sleep=self._sleep,
                secret=secret,
            )
            await runtime.graph.sign_in()

    def _connected_config(self, tenant_id: str, client_id: str) -> TenantConfig:
        directory = self._live.current.directories[0].name
        return TenantConfig(
            name=CONNECTED, tenant_id=tenant_id, client_id=client_id, directory=directory
        )

    def names(self) -> list[str]:
        """Every tenant: opened ones, then those that failed to open."""
        return list(dict.fromkeys([*self.runtimes, *self.errors]))

    def directories_of(self, name: str) -> tuple[str, ...]:
        """The directories a tenant feeds (a tenant not in the config: the first one)."""
        for t in self._live.current.tenants:
            if t.name == name:
                return t.directory_names
        return (self._live.current.directories[0].name,)
