"""Shared helpers for tests that drive the REAL SyncService (issue 6 suites: security,
reliability, audit): a small world (tenant file + directory file + config) that yields every
kind of proposal, a service factory, a directory wrapper that counts writes and can crash,
a Redis snapshot for "state unchanged" checks, and the bot app wired to the real service and
the fake Bot Connector.

Built on ``test_bot_real_service`` / ``test_bot_flow`` (activities, Rig, FakeTime) rather
than duplicating them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bot.app import AppParts, create_app
from sync.config import EnvSettings, config_from_dict
from sync.directories.base import Directory, NewDirectoryUser, UserPatch
from sync.models import DirectoryUser
from sync.service.service import SyncService
from sync.state.keys import Keys
from tests.component.bot_fake_service import now_fixed
from tests.component.fake_connector import FakeConnector
from tests.component.test_bot_flow import ADMIN, OTHER, FakeTime, Rig

__all__ = ["ADMIN", "OTHER", "FakeTime", "Rig", "now_fixed"]

# --- the world ------------------------------------------------------------------------------


def entra_user(
    key: str,
    given: str,
    surname: str,
    phone: str | None,
    *,
    enabled: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A Graph user object (Graph's own JSON) with id ``e-<key>``."""
    return {
        "id": f"e-{key}",
        "accountEnabled": enabled,
        "givenName": given,
        "surname": surname,
        "displayName": f"{given} {surname}",
        "mail": f"{key}@contoso.se",
        "userPrincipalName": f"{key}@contoso.se",
        "mobilePhone": phone,
        "businessPhones": [],
        **extra,
    }


def dir_user(
    uid: str,
    given: str,
    surname: str,
    phone: str | None,
    *,
    email: str | None = None,
    entra_id: str | None = None,
    display: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": uid,
        "first_name": given,
        "last_name": surname,
        "display_name": display or f"{given} {surname}",
        "email": email,
        "phones": [phone] if phone else [],
        "tags": [],
        "sync_enabled": True,
    }
    if entra_id:
        out["entra_id"] = entra_id
    return out


CONFLICT_NUMBER = "+46701230000"


def every_kind_world() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Entra users and directory users that give one proposal of every kind:

    - match:    e-anna  <-> directory 1 (same mobile number, unlinked)
    - update:   e-carl  linked to directory 2, whose display name differs
    - new:      e-dora  (nobody in the directory has her number or e-mail)
    - conflict: e-eve and e-finn share CONFLICT_NUMBER, held by directory 5 (unlinked)
    - removal:  directory 3 is linked to e-gone, who is not in Entra
    Directory 4 is unlinked and matches nobody: the target for ``link``.
    """
    tenant = [
        entra_user("anna", "Anna", "Berg", "+46701234567"),
        entra_user("carl", "Carl", "Dahl", "+46701234569"),
        entra_user("dora", "Dora", "Ek", "+46701234570"),
        entra_user("eve", "Eve", "Falk", CONFLICT_NUMBER),
        entra_user("finn", "Finn", "Gran", CONFLICT_NUMBER),
    ]
    directory = [
        dir_user("1", "Anna", "Berg", "+46701234567"),
        dir_user("2", "Carl", "Dahl", "+46701234569", entra_id="e-carl", display="C. Dahl (old)"),
        dir_user("3", "Gus", "Gone", "+46701234571", entra_id="e-gone"),
        dir_user("4", "Ivar", "Holm", "+46701234572", email="ivar@elsewhere.se"),
        dir_user("5", "Shared", "Phone", CONFLICT_NUMBER),
    ]
    return tenant, directory


def write_world(
    tmp: Path,
    tenant_users: Sequence[Mapping[str, Any]],
    directory_users: Sequence[Mapping[str, Any]],
    *,
    admins: Sequence[str] = (ADMIN,),
    ignored: Sequence[str] = (),
    **sections: Any,
) -> dict[str, Any]:
    """Write tenant.json and directory.json into ``tmp``; return the config dict (a simulated
    tenant ``contoso`` feeding the built-in directory ``main``). ``sections`` are extra config
    sections (``guard={...}``, ``schedule={...}``)."""
    (tmp / "tenant.json").write_text(json.dumps({"users": list(tenant_users), "groups": []}))
    (tmp / "directory.json").write_text(
        json.dumps({"users": list(directory_users), "ignored": list(ignored)})
    )
    cfg: dict[str, Any] = {
        "bot": {"admins": list(admins)},
        "guard": {"max_removals": 10, "max_removal_share": 1.0},
        "tenants": [{"name": "contoso", "simulate": "tenant.json", "directory": "main"}],
        "directories": [{"name": "main", "kind": "builtin", "seed_file": "directory.json"}],
    }
    cfg.update(sections)
    return cfg


def make_service(
    tmp: Path,
    cfg: Mapping[str, Any],
    *,
    redis: aioredis.Redis,
    keys: Keys,
    env: EnvSettings | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], datetime] = now_fixed,
) -> SyncService:
    """The real SyncService (not started) over ``redis``/``keys`` with the config ``cfg``."""
    config = config_from_dict(dict(cfg), base_dir=tmp)
    t = FakeTime()
    return SyncService(
        config=config,
        env=env or EnvSettings(MICROSOFT_APP_ID=None),
        redis=redis,
        keys=keys,
        clock=clock,
        sleep=sleep or t.sleep,
    )


# --- a directory that counts its writes and can crash -----------------------------------------


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


@dataclass
class CountingDirectory:
    """Wraps a real directory adapter: every write is counted (by kind and user), and a write
    can be made to crash before or after it reaches the directory."""

    inner: Directory
    writes: list[tuple[str, str]] = field(default_factory=list)  # (op, user id)
    crash_before: set[str] = field(default_factory=set)  # ops that die before writing
    crash_after: set[str] = field(default_factory=set)  # ops that die after writing

    @property
    def name(self) -> str:
        return self.inner.name

    def count(self, op: str | None = None) -> int:
        return sum(1 for o, _ in self.writes if op is None or o == op)

    def _before(self, op: str) -> None:
        if op in self.crash_before:
            self.crash_before.discard(op)
            raise Crash(f"killed before {op}")

    def _after(self, op: str) -> None:
        if op in self.crash_after:
            self.crash_after.discard(op)
            raise Crash(f"killed after {op}")

    async def list_users(self) -> Sequence[DirectoryUser]:
        return await self.inner.list_users()

    async def get(self, user_id: str) -> DirectoryUser | None:
        return await self.inner.get(user_id)

    async def find_by_phone(self, e164: str) -> Sequence[DirectoryUser]:
        return await self.inner.find_by_phone(e164)

    async def find_by_email(self, email: str) -> Sequence[DirectoryUser]:
        return await self.inner.find_by_email(email)

    async def find_by_external_id(self, entra_id: str) -> DirectoryUser | None:
        return await self.inner.find_by_external_id(entra_id)

    async def create(self, user: NewDirectoryUser) -> DirectoryUser:
        self._before("create")
        out = await self.inner.create(user)
        self.writes.append(("create", out.id))
        self._after("create")
        return out

    async def update(self, user_id: str, patch: UserPatch) -> DirectoryUser:
        self._before("update")
        out = await self.inner.update(user_id, patch)
        self.writes.append(("update", user_id))
        self._after("update")
        return out

    async def deactivate(self, user_id: str) -> DirectoryUser:
        self._before("deactivate")
        out = await self.inner.deactivate(user_id)
        self.writes.append(("deactivate", user_id))
        return out

    async def delete(self, user_id: str) -> None:
        self._before("delete")
        await self.inner.delete(user_id)
        self.writes.append(("delete", user_id))
        self._after("delete")


def count_writes(service: SyncService, name: str = "main") -> CountingDirectory:
    """Put a CountingDirectory around the service's directory ``name`` and return it."""
    wrapped = CountingDirectory(service.directories[name])
    service.directories[name] = wrapped  # type: ignore[assignment]
    return wrapped


# --- Redis snapshots --------------------------------------------------------------------------


async def redis_snapshot(
    r: aioredis.Redis, prefix: str, *, exclude: Sequence[str] = ()
) -> dict[str, Any]:
    """Every key under ``prefix`` with its value (type-aware), minus keys starting with any of
    ``exclude`` (full key names or prefixes). Two pipelined round trips after the scan."""
    names: list[str] = []
    async for raw in r.scan_iter(match=prefix + "*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not any(key.startswith(x) for x in exclude):
            names.append(key)
    names.sort()
    pipe = r.pipeline(transaction=False)
    for key in names:
        pipe.type(key)
    kinds = [k.decode() if isinstance(k, bytes) else str(k) for k in await pipe.execute()]
    pipe = r.pipeline(transaction=False)
    for key, kind in zip(names, kinds, strict=True):
        if kind == "string":
            pipe.get(key)
        elif kind == "hash":
            pipe.hgetall(key)
        elif kind == "set":
            pipe.smembers(key)
        elif kind == "zset":
            pipe.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            pipe.lrange(key, 0, -1)
        elif kind == "stream":
            pipe.xrange(key)
        else:  # gone meanwhile ("none"), or a type nothing uses
            pipe.type(key)
    values = await pipe.execute()
    out: dict[str, Any] = {}
    for key, kind, value in zip(names, kinds, values, strict=True):
        out[key] = sorted(value) if kind == "set" else value
    return out


async def redis_values(r: aioredis.Redis, prefix: str) -> list[bytes]:
    """Every key name and every stored value under ``prefix``, as raw bytes (for scans)."""
    snap = await redis_snapshot(r, prefix)
    out: list[bytes] = []

    def add(x: Any) -> None:
        if isinstance(x, bytes):
            out.append(x)
        elif isinstance(x, str):
            out.append(x.encode())
        elif isinstance(x, dict):
            for k, v in x.items():
                add(k)
                add(v)
        elif isinstance(x, list | tuple):
            for v in x:
                add(v)
        elif x is not None:
            out.append(str(x).encode())

    for k, v in snap.items():
        add(k)
        add(v)
    return out


# --- the bot over the real service --------------------------------------------------------------


@asynccontextmanager
async def real_bot(
    aiohttp_client: Any,
    service: SyncService,
    *,
    env: EnvSettings | None = None,
    time: FakeTime | None = None,
    adapter: Any = None,
) -> AsyncIterator[Rig]:
    """The bot app (real route) over a STARTED real service, and a fake Bot Connector."""
    t = time or FakeTime()
    async with FakeConnector.serve() as fc:
        app = create_app(
            env=env or EnvSettings(MICROSOFT_APP_ID=None),
            service=service,
            parts=AppParts(clock=now_fixed, sleep=t.sleep, monotonic=t.monotonic),
            adapter=adapter,
            manage_service=False,
        )
        client = await aiohttp_client(app)
        yield Rig(client=client, fc=fc, service=service, time=t)  # type: ignore[arg-type]


# --- a tenant connected from Teams, served by a simulator ------------------------------------


@asynccontextmanager
async def simulated_entra(monkeypatch: Any, sim: Any) -> AsyncIterator[str]:
    """Serve ``sim`` (a ``TenantSim``) over loopback and make tenants that would sign in at
    Microsoft (``connect`` from Teams: no simulate file, no authority_host) sign in and read
    Graph there instead. The client secret still travels through the real MSAL client to the
    simulator's token endpoint, which checks it when ``sim.client_secret`` is set."""
    import sync.service.tenants as service_module
    from sync.devtools.simulator import serve_simulator

    real_open = service_module.open_tenant

    async def open_tenant(cfg: Any, config: Any, stack: Any, **kw: Any) -> Any:
        if cfg.simulate is None and cfg.authority_host is None:
            cfg = cfg.model_copy(update={"authority_host": base, "graph_url": f"{base}/v1.0"})
        return await real_open(cfg, config, stack, **kw)

    async with serve_simulator(sim) as base:
        monkeypatch.setattr(service_module, "open_tenant", open_tenant)
        yield base


# --- a simulated Entra served by the test: Graph can be held, and any request tampered with ---

ENTRA_SECRET = "contoso-app-secret-value"
ENTRA_CLIENT = "5b0c1e9a-0000-4000-8000-0000000c0de5"

# A hook sees each request (and its number among Graph requests, 0 for the token endpoint) and
# may answer it itself (a fault) or return None to let the simulator answer.
Hook = Callable[[Any, int], Awaitable[Any]]


@dataclass
class Gate:
    """While ``armed``, Graph requests wait until ``release`` is set; ``entered`` tells that one
    arrived (``on_enter`` runs once then). The token endpoint is never held."""

    armed: bool = False
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    on_enter: Callable[[], Awaitable[None]] | None = None

    def arm(self, on_enter: Callable[[], Awaitable[None]] | None = None) -> None:
        self.armed = True
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.on_enter = on_enter


@dataclass
class Entra:
    sim: Any  # TenantSim
    base: str
    gate: Gate
    hooks: list[Hook] = field(default_factory=list)
    # filters rewrite the simulator's JSON answers to Graph requests: (request, body) -> body
    filters: list[Callable[[Any, Any], Any]] = field(default_factory=list)
    graph_requests: int = 0
    paths: list[str] = field(default_factory=list)

    def tenant_config(self, name: str = "contoso") -> dict[str, Any]:
        """A tenant that signs in (client secret from $CONTOSO_SECRET) and reads Graph here."""
        return {
            "name": name,
            "tenant_id": "contoso.onmicrosoft.com",
            "client_id": ENTRA_CLIENT,
            "client_secret_env": "CONTOSO_SECRET",
            "authority_host": self.base,
            "graph_url": f"{self.base}/v1.0",
            "directory": "main",
        }


@asynccontextmanager
async def serve_entra(users: Sequence[Mapping[str, Any]]) -> AsyncIterator[Entra]:
    """The tenant simulator over loopback (its token endpoint checks ENTRA_CLIENT and
    ENTRA_SECRET), with a gate and fault hooks in front of it."""
    from aiohttp import web

    from sync.devtools.simulator import TenantSim, make_app

    sim = TenantSim(users, client_id=ENTRA_CLIENT, client_secret=ENTRA_SECRET)
    app = make_app(sim)
    e = Entra(sim, "", Gate())

    @web.middleware
    async def front(request: web.Request, handler: Any) -> web.StreamResponse:
        graph = request.path.startswith("/v1.0/")
        n = 0
        if graph:
            e.graph_requests += 1
            n = e.graph_requests
            e.paths.append(request.path_qs)
        for hook in e.hooks:
            answer = await hook(request, n)
            if answer is not None:
                return answer  # type: ignore[no-any-return]
        if graph and e.gate.armed:
            if not e.gate.entered.is_set():
                e.gate.entered.set()
                if e.gate.on_enter is not None:
                    await e.gate.on_enter()
            await e.gate.release.wait()
        resp: web.StreamResponse = await handler(request)
        if graph and e.filters and isinstance(resp, web.Response) and resp.body is not None:
            body = json.loads(bytes(resp.body))  # type: ignore[arg-type]
            for f in e.filters:
                body = f(request, body)
            return web.json_response(body, status=resp.status)
        return resp

    app.middlewares.append(front)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    e.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield e
    finally:
        e.gate.release.set()
        await runner.cleanup()


# --- a Redis database of its own (for code that uses the default key prefix) -----------------


@contextmanager
def claim_redis_db(url: str = "redis://127.0.0.1:6379") -> Iterator[int]:
    """Claim one of the databases 9-15 of the real Redis (a lock key in db 0, so parallel runs
    never share one) for code that uses the product's default key prefix ``es:`` (``entra-sync
    serve``, ``audit export``); its ``es:`` keys are deleted before and after."""
    import uuid

    import redis

    r0 = redis.Redis.from_url(f"{url}/0")
    token = uuid.uuid4().hex
    for db in range(9, 16):
        if r0.set(f"t:serve-db-claim:{db}", token, nx=True, px=300_000):
            break
    else:  # pragma: no cover - seven concurrent runs
        r0.close()
        raise RuntimeError("no free Redis database (9-15) for the test")
    r = redis.Redis.from_url(f"{url}/{db}")

    def clean() -> None:
        for k in r.scan_iter(match="es:*", count=1000):
            r.delete(k)

    clean()
    try:
        yield db
    finally:
        clean()
        r.close()
        if r0.get(f"t:serve-db-claim:{db}") == token.encode():
            r0.delete(f"t:serve-db-claim:{db}")
        r0.close()
