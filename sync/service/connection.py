"""Connecting a tenant from Teams (its app credentials, stored encrypted) and removing a
tenant's sync (links and state go; directory users and their data stay)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from pydantic import SecretStr

from sync.config import EnvSettings
from sync.directories.base import UserPatch
from sync.errors import InputError
from sync.graph.auth import ClientCertificate, load_client_certificate
from sync.service.records import CONNECTED, Actor, RunResult, TenantStatus
from sync.service.shared import Shared


def connect_certificate(env: EnvSettings) -> ClientCertificate | None:
    """The certificate `connect` uses when the admin leaves the secret empty (read once at
    start; a bad file is a ConfigError naming it)."""
    if not env.ENTRA_SYNC_CLIENT_CERTIFICATE:
        return None
    return load_client_certificate(
        env.ENTRA_SYNC_CLIENT_CERTIFICATE, env.ENTRA_SYNC_CLIENT_CERTIFICATE_PASSWORD
    )


def consent_url(tenant_id: str, client_id: str) -> str:
    """Where an Entra admin grants the app its permissions."""
    return (
        f"https://login.microsoftonline.com/{quote(tenant_id or 'organizations', safe='')}"
        f"/adminconsent?client_id={quote(client_id, safe='')}"
    )


class TenantConnection:
    def __init__(
        self,
        shared: Shared,
        *,
        run_sync: Callable[..., Awaitable[list[RunResult]]],
        status: Callable[[], Awaitable[list[TenantStatus]]],
    ) -> None:
        self._store, self._tenants, self._reader = shared.store, shared.tenants, shared.reader
        self._run_sync, self._status = run_sync, status

    async def connect(
        self, tenant_id: str, client_id: str, secret: SecretStr, *, actor: Actor
    ) -> TenantStatus:
        """With ``secret`` empty, the bot's certificate (``ENTRA_SYNC_CLIENT_CERTIFICATE``) is
        the credential. Prove the credentials first (a token request to Entra): refused, they
        raise the AuthError whose AADSTS code says the fix, and the credentials in force stay.
        Proven, they replace the stored ones (never audited: the secret), the tenant is reopened
        and synced, and its status returned."""
        tenant_id, client_id = tenant_id.strip(), client_id.strip()
        credential = self._tenants.connect_credential(secret)
        if not tenant_id or not client_id or credential is None:
            raise InputError("tenant id, client id and client secret are all needed")
        await self._tenants.prove_connected(tenant_id, client_id, credential)
        # an empty secret stored: the tenant signs in with the bot's certificate
        stored = secret if isinstance(credential, SecretStr) else SecretStr("")
        await self._store.tenant_credentials.set_credentials(
            CONNECTED, tenant_id, client_id, stored
        )
        self._tenants.runtimes.pop(CONNECTED, None)
        await self._tenants.open_connected()
        await self._store.audit_log.audit(
            actor.id,
            actor.name,
            "connect",
            tenant=CONNECTED,
            after={"tenant_id": tenant_id, "client_id": client_id},
        )
        await self._run_sync(CONNECTED, actor=actor)
        return next(s for s in await self._status() if s.tenant == CONNECTED)

    async def disconnect(self, tenant: str | None, *, actor: Actor) -> int:
        """Remove the sync of a tenant: its directory users are unlinked (when it is the only
        tenant: every linked user), its pending proposals superseded, its state deleted.
        Directory users and their data stay. Returns how many users were unlinked."""
        name = tenant or CONNECTED
        tenant_users = set(await self._reader.stored_users(name))
        only_tenant = len(self._tenants.runtimes) <= 1
        unlinked = 0
        for d in self._tenants.directories_of(name):
            directory = self._tenants.directories.get(d)
            for u in await directory.list_users() if directory is not None else ():
                if u.entra_id and (only_tenant or u.entra_id in tenant_users):
                    assert directory is not None
                    await directory.update(u.id, UserPatch({"entra_id": None}))
                    unlinked += 1
        superseded, dirs = await self._store.proposals.supersede_tenant(name, verb="disconnected")
        await self._store.tenant_credentials.delete_credentials(name)
        await self._store.snapshots.forget(name)
        await self._store.choices.forget(name)
        await self._store.runs.forget(name)
        await self._store.audit_log.audit(
            actor.id,
            actor.name,
            "disconnect",
            tenant=name,
            before={"pending_superseded": len(superseded), "directories": sorted(dirs)},
        )
        self._tenants.runtimes.pop(name, None)
        self._reader.forget(name)
        return unlinked
