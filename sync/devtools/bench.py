"""The benchmark behind ``entra-sync bench``: a deterministic tenant and directory of N users,
the tenant simulator in its own process, the real Redis, and one run that measures

- ``floor_s``: plain httpx paging + JSON parsing of every user (the floor for any client);
- ``peer_s``: Microsoft's ``msgraph-sdk`` reading the same users (PageIterator), in its own
  process (so its memory does not count against ours);
- ``read_s``: our GraphClient (MSAL token, paging, retries, parsing into records);
- ``full_sync_s``: ``SyncService.run_sync`` with the built-in directory seeded in Redis (read,
  list the directory, plan, record state);
- ``delta_sync_s``: the next ``run_sync`` after ``changes`` % of the users changed;
- ``resync_s``: after as many changes again, the delta link expired: the full read and sync
  of a running bot (what Graph's 7-day delta-link expiry costs);
- ``peak_rss_mb`` (of the process running our read and syncs), ``graph_requests`` (counted by
  the simulator), ``redis_round_trips`` (commands sent outside pipelines + pipeline executes);
- ``first_card_s``, the digest check and ``invoke_p99_ms``, measured by ``bot.bench_cards`` in
  a subprocess (``sync`` may not import ``bot``).

docs/bench.md says what each figure means. The figures are returned as one dict and written to
``bench/results.json``. Every Redis key lives under a unique prefix, deleted at the end.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.config import Config, EnvSettings, config_from_dict
from sync.errors import InputError
from sync.graph.auth import MsalTokenProvider
from sync.graph.client import GraphClient
from sync.plan.mapping import clean
from sync.state.keys import Keys

log = logging.getLogger(__name__)

SEED = 20260501
BENCH_TENANT = "bench"
BENCH_TENANT_ID = "bench-tenant"
BENCH_CLIENT_ID = "00000000-0000-0000-0000-0000000be7c4"
BENCH_SECRET = "bench-secret-value"  # the simulator's own test secret, not a credential
SECRET_ENV = "ENTRA_SYNC_BENCH_SECRET"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
PAGE = 999

# --- the generator ---------------------------------------------------------------------------

SE_GIVEN = (
    "Anna", "Erik", "Lars", "Karin", "Maria", "Johan", "Åsa", "Björn", "Göran", "Märta",
    "Örjan", "Ingrid", "Per", "Sofia", "Linnéa", "Oskar", "Elin", "Mats", "Ulla", "Kjell",
    "Astrid", "Gunnar", "Maja", "Nils", "Sven", "Ebba", "Hugo", "Agnes", "Ture", "Siv",
)  # fmt: skip
SE_SURNAMES = (
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
    "Persson", "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Lindström", "Öberg",
    "Åkesson", "Söderberg", "Lindqvist", "Bergström", "Hägg", "Ström", "Sjöberg", "Wallin",
    "Ekström", "Holmgren", "Sandberg", "Nyström", "Forsberg", "Åberg", "Björk", "Dahl",
)  # fmt: skip
INTL_GIVEN = (
    "Mohammed", "Fatima", "Ali", "Wei", "Yuki", "José", "María", "Jean-Luc", "Siobhán", "Zoë",
    "Dmitrij", "Aisha", "Priya", "Olumide", "Łukasz", "Mehmet", "Chloé", "Søren", "Ahmad", "Li",
)  # fmt: skip
INTL_SURNAMES = (
    "García", "Müller", "O'Brien", "Nguyen", "Kowalski", "Al-Hassan", "Haddad", "Y\u0131lmaz",
    "Papadopoulos", "van der Berg", "Dubois", "Rossi", "Tanaka", "Kim", "Singh", "Ødegaard",
    "Fernández", "Schmidt", "Novák", "Hansen",
)  # fmt: skip
DEPARTMENTS = ("Sales", "Support", "R&D", "Finance", "Växel", "Logistik", "HR", "Marketing")
TITLES = ("Agent", "Säljare", "Engineer", "Team lead", "Controller", "Receptionist")
_ASCII = str.maketrans(
    {
        "å": "a", "ä": "a", "ö": "o", "é": "e", "ø": "o", "ü": "u", "ł": "l", "á": "a",
        "í": "i", "\u0131": "i", "ë": "e", "ó": "o", "'": "", " ": "",
    }
)  # fmt: skip


def _number(rng: random.Random) -> tuple[str, str]:
    """(E.164, the same number as someone typed it): Swedish mobile and landline numbers in
    the usual national and international spellings, and some foreign numbers."""
    kind = rng.random()
    if kind < 0.70:  # Swedish mobile 07x
        prefix = rng.choice("0236")
        rest = f"{rng.randrange(10_000_000):07d}"
        e164 = f"+467{prefix}{rest}"
        nat = f"07{prefix}"
        style = rng.randrange(6)
        shown = (
            f"+46 7{prefix} {rest[:3]} {rest[3:5]} {rest[5:]}",
            f"{nat}-{rest[:3]} {rest[3:5]} {rest[5:]}",
            f"{nat}{rest}",
            e164,
            f"0046 7{prefix} {rest[:3]} {rest[3:5]} {rest[5:]}",
            f"{nat} {rest[:3]} {rest[3:5]} {rest[5:]}",
        )[style]
        return e164, shown
    if kind < 0.85:  # Stockholm landline 08
        rest = f"{rng.randrange(10_000_000):07d}"
        e164 = f"+468{rest}"
        shown = (f"08-{rest[:3]} {rest[3:5]} {rest[5:]}", f"+46 8 {rest[:3]} {rest[3:]}", e164)[
            rng.randrange(3)
        ]
        return e164, shown
    country = rng.randrange(5)
    if country == 0:  # Norway
        rest = f"{rng.randrange(10_000_000):07d}"
        return f"+474{rest}", f"+47 4{rest[:2]} {rest[2:4]} {rest[4:]}"
    if country == 1:  # Germany
        rest = f"{rng.randrange(100_000_000):08d}"
        return f"+49151{rest}", f"+49 151 {rest}"
    if country == 2:  # UK
        rest = f"{rng.randrange(1_000_000):06d}"
        return f"+447700{rest}", f"+44 7700 {rest}"
    if country == 3:  # US
        rest = f"{rng.randrange(10_000):04d}"
        return f"+1415555{rest}", f"+1 (415) 555-{rest}"
    rest = f"{rng.randrange(10_000_000):07d}"  # Finland
    return f"+35840{rest}", f"+358 40 {rest}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True, slots=True)
class Shares:
    """How the generated world is made (shares of the Entra users)."""

    linked: float = 0.80  # linked, identical in the directory
    linked_changed: float = 0.03  # linked, one field differs (an update)
    matchable: float = 0.08  # an unlinked directory user holds their number or e-mail
    disabled: float = 0.02
    no_phone: float = 0.03
    duplicate_number: float = 0.02
    deleted_linked: float = 0.005  # directory users linked to Entra users that are gone
    directory_only: float = 0.01  # unlinked directory users nobody matches


def generate(
    n: int, *, seed: int = SEED, shares: Shares | None = None
) -> Iterator[tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
    """Yield (Graph user or None, directory users for it) for a tenant of ``n`` users; the
    same (n, seed, shares) always gives the same world. Directory ids are 1, 2, 3, ..."""
    s = shares or Shares()
    rng = random.Random(seed)
    next_dir = 1
    numbers: list[str] = []  # shown numbers so far (for duplicates)
    for i in range(n):
        intl = rng.random() < 0.25
        given = rng.choice(INTL_GIVEN if intl else SE_GIVEN)
        surname = rng.choice(INTL_SURNAMES if intl else SE_SURNAMES)
        display = f"{given} {surname}"
        if rng.random() < 0.01:
            display += " <Konsult>"
        local = f"{given}.{surname}".lower().translate(_ASCII)
        mail = f"{local}.{i}@contoso.se"
        e164, shown = _number(rng)
        r = rng.random()
        phones_raw: list[str] = []
        mobile: str | None = None
        if r < s.no_phone:
            pass
        elif r < s.no_phone + s.duplicate_number and numbers:
            mobile = rng.choice(numbers)
        else:
            mobile = shown
            numbers.append(shown)
            if rng.random() < 0.3:
                _, office = _number(rng)
                phones_raw.append(office)
        user: dict[str, Any] = {
            "id": _uuid(rng),
            "accountEnabled": rng.random() >= s.disabled,
            "displayName": display,
            "givenName": given,
            "surname": surname,
            "mail": mail,
            "userPrincipalName": mail,
            "mobilePhone": mobile,
            "businessPhones": phones_raw,
            "department": rng.choice(DEPARTMENTS),
            "jobTitle": rng.choice(TITLES),
        }
        dirs: list[dict[str, Any]] = []
        k = rng.random()
        base = {
            "first_name": clean(given),
            "last_name": clean(surname),
            "display_name": clean(display),
            "email": clean(mail),
            "phones": [e164] if mobile == shown else [],
            "tags": [],
            "sync_enabled": True,
        }
        if k < s.linked:
            dirs.append({"id": str(next_dir), **base, "entra_id": user["id"]})
        elif k < s.linked + s.linked_changed:
            dirs.append(
                {
                    "id": str(next_dir),
                    **base,
                    "display_name": f"{display} (old)",
                    "entra_id": user["id"],
                }
            )
        elif k < s.linked + s.linked_changed + s.matchable:
            if base["phones"] and rng.random() < 0.8:
                dirs.append({"id": str(next_dir), **base, "email": None})
            else:
                dirs.append({"id": str(next_dir), **base, "phones": []})
        next_dir += len(dirs)
        if rng.random() < s.deleted_linked:
            gone = _uuid(rng)
            dirs.append(
                {
                    "id": str(next_dir),
                    "first_name": "Gone",
                    "last_name": "User",
                    "display_name": "Gone User",
                    "email": f"gone.{i}@contoso.se",
                    "phones": [_number(rng)[0]],
                    "tags": [],
                    "sync_enabled": True,
                    "entra_id": gone,
                }
            )
            next_dir += 1
        if rng.random() < s.directory_only:
            dirs.append(
                {
                    "id": str(next_dir),
                    "first_name": "Extern",
                    "last_name": f"Anknytning {i}",
                    "display_name": f"Extern anknytning {i}",
                    "email": None,
                    "phones": [_number(rng)[0]],
                    "tags": ["extern"],
                    "sync_enabled": True,
                }
            )
            next_dir += 1
        yield user, dirs


def tenant_users(n: int, *, seed: int = SEED, shares: Shares | None = None) -> list[dict[str, Any]]:
    return [u for u, _ in generate(n, seed=seed, shares=shares) if u is not None]


def directory_users(
    n: int, *, seed: int = SEED, shares: Shares | None = None
) -> list[dict[str, Any]]:
    return [d for _, ds in generate(n, seed=seed, shares=shares) for d in ds]


def change_users(
    users: dict[str, dict[str, Any]], pct: float, *, seed: int = SEED + 1
) -> tuple[list[dict[str, Any]], list[str]]:
    """Pick ``pct`` % of the users (deterministically): most get a new display name or
    number, some are disabled, some deleted. Returns (changed user objects, deleted ids)."""
    rng = random.Random(seed)
    ids = sorted(users)
    k = min(len(ids), max(1, round(len(ids) * pct / 100))) if pct > 0 else 0
    picked = rng.sample(ids, k)
    changed: list[dict[str, Any]] = []
    deleted: list[str] = []
    for uid in picked:
        r = rng.random()
        u = dict(users[uid])
        if r < 0.1:
            deleted.append(uid)
            continue
        if r < 0.2:
            u["accountEnabled"] = False
        elif r < 0.6:
            u["displayName"] = f"{u['givenName']} {u['surname']}-{rng.choice(SE_SURNAMES)}"
            u["surname"] = f"{u['surname']}-{rng.choice(SE_SURNAMES)}"
        else:
            u["mobilePhone"] = _number(rng)[1]
        changed.append(u)
    return changed, deleted


# --- the simulator in its own process ------------------------------------------------------


def _sim_process(conn: Connection, n: int, seed: int, shares: Shares | None) -> None:
    """Child process: build the tenant, serve it, obey commands from ``conn``."""
    from sync.devtools.simulator import TenantSim, serve_simulator

    users = tenant_users(n, seed=seed, shares=shares)
    sim = TenantSim(users, client_id=BENCH_CLIENT_ID, client_secret=BENCH_SECRET)
    del users

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with serve_simulator(sim) as url:
            conn.send(url)
            while True:
                cmd, arg = await loop.run_in_executor(None, conn.recv)
                if cmd == "change":
                    current = {uid: u for uid in sim.user_ids if (u := sim.user(uid)) is not None}
                    changed, deleted = change_users(current, float(arg))
                    for u in changed:
                        sim.upsert_user(u)
                    for uid in deleted:
                        sim.delete_user(uid)
                    conn.send({"changed": len(changed), "deleted": len(deleted)})
                elif cmd == "expire":  # delta links answer 410 (Graph: after 7 days)
                    sim.faults.delta_expired = bool(arg)
                    conn.send(sim.faults.delta_expired)
                elif cmd == "latency":  # seconds each users/delta page takes from now on
                    sim.faults.page_latency = float(arg)
                    conn.send(sim.faults.page_latency)
                elif cmd == "requests":
                    conn.send(dict(sim.requests))
                else:
                    conn.send("bye")
                    return

    asyncio.run(main())


class SimProcess:
    """The tenant simulator of a generated tenant, served by a child process."""

    def __init__(self, n: int, *, seed: int = SEED, shares: Shares | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_sim_process, args=(child, n, seed, shares), name="tenant-sim", daemon=True
        )
        self.url = ""

    def start(self, timeout: float = 300.0) -> str:
        self._proc.start()
        if not self._conn.poll(timeout):
            raise RuntimeError("the tenant simulator did not start")
        self.url = str(self._conn.recv())
        return self.url

    def call(self, cmd: str, arg: Any = None, timeout: float = 300.0) -> Any:
        self._conn.send((cmd, arg))
        if not self._conn.poll(timeout):
            raise RuntimeError(f"the tenant simulator did not answer {cmd}")
        return self._conn.recv()

    def stop(self) -> None:
        if self._proc.is_alive():
            try:
                self.call("stop", timeout=10)
            except (RuntimeError, OSError, EOFError):
                pass
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)


@asynccontextmanager
async def simulated_tenant(
    n: int, *, seed: int = SEED, shares: Shares | None = None
) -> AsyncIterator[SimProcess]:
    sim = SimProcess(n, seed=seed, shares=shares)
    await asyncio.to_thread(sim.start)
    try:
        yield sim
    finally:
        await asyncio.to_thread(sim.stop)


# --- Redis with a round-trip counter --------------------------------------------------------


def counting_redis(url: str) -> tuple[aioredis.Redis, list[int]]:
    """A client whose connections count what they send to the server: one single command or
    one whole pipeline is one round trip. Returns (client, [count])."""
    counter = [0]

    class CountingConnection(aioredis.Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            counter[0] += 1
            await super().send_packed_command(command, check_health)

    pool = aioredis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return aioredis.Redis(connection_pool=pool), counter


async def delete_prefix(r: aioredis.Redis, prefix: str) -> int:
    n = 0
    batch: list[bytes] = []
    async for k in r.scan_iter(match=prefix + "*", count=5000):
        batch.append(k)
        if len(batch) >= 5000:
            n += await r.delete(*batch)
            batch = []
    if batch:
        n += await r.delete(*batch)
    return n


# --- the world in Redis and the service --------------------------------------------------------


def bench_config(sim_url: str) -> Config:
    return config_from_dict(
        {
            "tenants": [
                {
                    "name": BENCH_TENANT,
                    "tenant_id": BENCH_TENANT_ID,
                    "client_id": BENCH_CLIENT_ID,
                    "client_secret_env": SECRET_ENV,
                    "authority_host": sim_url,
                    "graph_url": f"{sim_url}/v1.0",
                    "directory": "main",
                }
            ],
            "directories": [{"name": "main", "kind": "builtin"}],
        },
        source="bench",
    )


async def seed_directory(
    r: aioredis.Redis, keys: Keys, n: int, *, seed: int = SEED, shares: Shares | None = None
) -> int:
    from sync.directories.builtin import BuiltinDirectory

    users = directory_users(n, seed=seed, shares=shares)
    count = await BuiltinDirectory(r, keys, "main").import_seed({"users": users})
    del users
    return count


def _utcnow() -> datetime:
    return datetime.now(UTC)


def bench_service(
    config: Config, r: aioredis.Redis, keys: Keys, clock: Callable[[], datetime] = _utcnow
) -> Any:
    from sync.service.service import SyncService

    os.environ.setdefault(SECRET_ENV, BENCH_SECRET)
    return SyncService(
        config=config, env=EnvSettings(MICROSOFT_APP_ID=None), redis=r, keys=keys, clock=clock
    )


def select_attributes(config: Config) -> tuple[str, ...]:
    from sync.service.reading import select_for

    return select_for(config)


# --- the reads -----------------------------------------------------------------------------------


async def _sim_token(http: httpx.AsyncClient, sim_url: str) -> str:
    resp = await http.post(
        f"{sim_url}/{BENCH_TENANT_ID}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": BENCH_CLIENT_ID,
            "client_secret": BENCH_SECRET,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def _users_url(sim_url: str, select: tuple[str, ...]) -> str:
    return f"{sim_url}/v1.0/users?$select={GraphClient.select_param(select)}&$top={PAGE}"


async def floor_read(sim_url: str, select: tuple[str, ...]) -> tuple[float, int, int]:
    """Plain httpx paging and JSON parsing, nothing else. Returns (seconds, users, pages)."""
    async with httpx.AsyncClient(timeout=60) as http:
        token = await _sim_token(http, sim_url)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        await http.get(_users_url(sim_url, select), headers=headers)  # warm the server cache
        t0 = time.perf_counter()
        url: str | None = _users_url(sim_url, select)
        users = pages = 0
        while url:
            resp = await http.get(url, headers=headers)
            body = json.loads(resp.content)
            users += len(body["value"])
            pages += 1
            url = body.get("@odata.nextLink")
        return time.perf_counter() - t0, users, pages


def _peer_process(conn: Connection, sim_url: str, select: list[str], limit: int) -> None:
    """Child process: read users with msgraph-sdk (PageIterator) until ``limit`` users were
    deserialised (0: all); send (seconds, users, peak RSS MB)."""

    async def main() -> tuple[float, int]:
        from azure.core.credentials import AccessToken
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from msgraph.generated.users.users_request_builder import UsersRequestBuilder
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core.tasks.page_iterator import PageIterator

        class SimCredential:
            """An async TokenCredential that signs in at the simulator (client credentials)
            and caches the token, as azure-identity's credentials do."""

            def __init__(self) -> None:
                self._http = httpx.AsyncClient(timeout=30)
                self._token: AccessToken | None = None

            async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
                if self._token is None or self._token.expires_on < time.time() + 300:
                    tok = await _sim_token(self._http, sim_url)
                    self._token = AccessToken(tok, int(time.time()) + 3599)
                return self._token

            async def close(self) -> None:
                await self._http.aclose()

        cred = SimCredential()
        auth = AzureIdentityAuthenticationProvider(
            cred,  # type: ignore[arg-type]
            scopes=["https://graph.microsoft.com/.default"],
            allowed_hosts=["127.0.0.1"],
        )
        adapter = GraphRequestAdapter(auth)
        adapter.base_url = f"{sim_url}/v1.0"
        client = GraphServiceClient(request_adapter=adapter)
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=[*select, "id", "accountEnabled"], top=PAGE
        )
        cfg = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(query_parameters=query)
        count = [0]

        def take(user: Any) -> bool:
            count[0] += 1
            return not limit or count[0] < limit

        t0 = time.perf_counter()
        first = await client.users.get(request_configuration=cfg)
        pages = PageIterator(first, adapter)
        await pages.iterate(take)
        elapsed = time.perf_counter() - t0
        await cred.close()
        return elapsed, count[0]

    elapsed, n = asyncio.run(main())
    conn.send((elapsed, n, _peak_rss_mb()))


def peer_read(
    sim_url: str, select: tuple[str, ...], limit: int = 0, timeout: float = 3600
) -> tuple[float, int, float]:
    """msgraph-sdk in its own process. Its model deserialisation costs ~15 ms per user
    (msgraph-sdk-python issue #584), so 100,000 users would take ~25 minutes: ``limit`` stops
    after that many users (whole pages are still fetched and paged through)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_peer_process, args=(child, sim_url, list(select), limit), name="peer"
    )
    proc.start()
    try:
        if not parent.poll(timeout):
            raise RuntimeError("the msgraph-sdk reader did not finish")
        elapsed, n, rss = parent.recv()
    finally:
        proc.join(30)
    return float(elapsed), int(n), float(rss)


async def our_read(sim_url: str, select: tuple[str, ...]) -> tuple[float, int]:
    """Our GraphClient with a fresh MSAL token provider. Returns (seconds, users)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as http:
        tokens = MsalTokenProvider(
            BENCH_TENANT_ID,
            BENCH_CLIENT_ID,
            SecretStr(BENCH_SECRET),
            authority_host=sim_url,
        )
        try:
            graph = GraphClient(tokens, base_url=f"{sim_url}/v1.0", http=http)
            t0 = time.perf_counter()
            snap = await graph.read_users(select)
            elapsed = time.perf_counter() - t0
            return elapsed, len(snap.users)
        finally:
            tokens.close()


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process (Linux); False when unsupported."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --- the phases ----------------------------------------------------------------------------------

# run -> (the key of its seconds, the prefix of its other figures)
RUN_KEYS = {
    "full": ("full_sync_s", ""),
    "delta": ("delta_sync_s", "delta_"),
    "resync": ("resync_s", "resync_"),
}


@dataclass
class TimedRuns:
    """Runs ``SyncService.run_sync`` for the bench tenant and reports what each run cost."""

    service: Any
    sim: SimProcess
    round_trips: list[int]

    async def graph_requests(self) -> int:
        """Graph requests the simulator has answered so far (users and delta pages)."""
        counts = await asyncio.to_thread(self.sim.call, "requests")
        return int(counts.get("graph", 0))

    async def run(self, run: str) -> dict[str, Any]:
        """One run: its seconds, mode, Graph requests, Redis round trips, new items, phases."""
        seconds_key, prefix = RUN_KEYS[run]
        trips, requests = self.round_trips[0], await self.graph_requests()
        t0 = time.perf_counter()
        (res, *_) = await self.service.run_sync(BENCH_TENANT)
        took = time.perf_counter() - t0
        if res.status != "ok":
            raise RuntimeError(f"the {run} sync failed: {res.error}")
        return {
            seconds_key: took,
            f"{run}_mode": res.mode,
            f"{prefix}graph_requests": await self.graph_requests() - requests,
            f"{prefix}redis_round_trips": self.round_trips[0] - trips,
            f"{prefix}new_items": len(res.new_items),
            f"{run}_phases": dict(res.phases),
        }


def bench_key_root() -> str:
    """Where the bench's Redis keys live: ``bench:`` or ``ENTRA_SYNC_BENCH_PREFIX`` (a test
    that checks its own run left nothing names its own root; other runs may share the Redis)."""
    return os.environ.get("ENTRA_SYNC_BENCH_PREFIX") or "bench:"


async def sync_phases(sim: SimProcess, n: int, changes: float, redis_url: str) -> dict[str, Any]:
    """Full sync, then changes and the delta sync, then as many changes again and a full
    resync (the delta link expired), all in one running service on the real Redis."""
    prefix = f"{bench_key_root()}{uuid.uuid4().hex[:12]}:"
    r, trips = counting_redis(redis_url)
    keys = Keys(prefix=prefix)
    out: dict[str, Any] = {}
    try:
        out["directory_users"] = await seed_directory(r, keys, n)
        gc.collect()
        service = bench_service(bench_config(sim.url), r, keys)
        await service.start(scheduler=False)
        try:
            runs = TimedRuns(service, sim, trips)
            out["rss_reset"] = _reset_peak_rss()
            out |= await runs.run("full")
            out["changes"] = await asyncio.to_thread(sim.call, "change", changes)
            out |= await runs.run("delta")
            out["resync_changes"] = await asyncio.to_thread(sim.call, "change", changes)
            await asyncio.to_thread(sim.call, "expire", True)
            out |= await runs.run("resync")
            await asyncio.to_thread(sim.call, "expire", False)
            out["peak_rss_mb"] = _peak_rss_mb()
        finally:
            await service.stop()
    finally:
        await delete_prefix(r, prefix)
        await r.aclose()
    return out


@dataclass(frozen=True, slots=True)
class CardPhases:
    """What ``bot.bench_cards`` measures: the first card of a ``card_users`` tenant, the
    digest of a ``digest_users`` tenant, invokes during a full sync of ``invoke_users``."""

    card_users: int
    digest_users: int
    invoke_users: int
    page_latency: float

    def command(self, redis_url: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bot.bench_cards",
            f"--users={self.card_users}",
            f"--digest-users={self.digest_users}",
            f"--invoke-users={self.invoke_users}",
            f"--page-latency-ms={self.page_latency * 1000}",
            f"--redis={redis_url}",
        ]


def card_phases(phases: CardPhases, redis_url: str) -> dict[str, Any]:
    """The bot's figures, by ``bot.bench_cards`` in a subprocess (its last line of output)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(  # noqa: S603 - our own module, our own interpreter
        phases.command(redis_url),
        capture_output=True,
        text=True,
        cwd=root,
        timeout=3600,
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.strip()]
    if proc.returncode != 0 or not lines:
        log.error("bench_cards failed: %s", proc.stderr[-2000:])
        return {"cards_error": (proc.stderr or "no output").strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def read_phases(sim: SimProcess, peer_limit: int) -> dict[str, Any]:
    """The floor, msgraph-sdk and our GraphClient reading every user of the tenant."""
    select = select_attributes(bench_config(sim.url))
    f: dict[str, Any] = {}
    f["floor_s"], f["listed_users"], f["pages"] = await floor_read(sim.url, select)
    limit = peer_limit if 0 < peer_limit < f["listed_users"] else 0
    peer_s, peer_users, f["peer_rss_mb"] = await asyncio.to_thread(
        peer_read, sim.url, select, limit
    )
    f["peer_measured_s"], f["peer_users"] = peer_s, peer_users
    # per-user cost is flat (deserialisation): scale a partial read to every user
    f["peer_s"] = peer_s * f["listed_users"] / max(1, peer_users)
    f["peer_extrapolated"] = peer_users < f["listed_users"]
    f["read_s"], f["read_users"] = await our_read(sim.url, select)
    return f


def ratios(f: dict[str, Any]) -> dict[str, Any]:
    """The ratios the targets are stated in, and the limits they are compared with."""
    return {
        "ratio_full_floor": f["full_sync_s"] / f["floor_s"],
        "ratio_delta_full": f["delta_sync_s"] / f["full_sync_s"],
        "ratio_peer_read": f["peer_s"] / f["read_s"],
        # the pages of users, plus the one request for a delta link ($deltatoken=latest)
        "expected_graph_requests": f["pages"] + 1,
        "redis_round_trips_limit": f["users"] // 100,
    }


async def _bench(
    users: int,
    changes: float,
    redis_url: str,
    peer_limit: int,
    page_latency: float,
) -> dict[str, Any]:
    figures: dict[str, Any] = {"users": users, "changes_pct": changes}
    figures["page_latency_s"] = page_latency
    async with simulated_tenant(users) as sim:
        if page_latency > 0:
            await asyncio.to_thread(sim.call, "latency", page_latency)
        figures |= await read_phases(sim, peer_limit)
        gc.collect()
        figures |= await sync_phases(sim, users, changes, redis_url)
    return figures


def check_bench_input(users: int, changes: float, page_latency: float) -> None:
    """The bench runs for at least one user, ``changes`` is a percentage (0 to 100) and a
    page takes 0 to 60 seconds; anything else is an ``InputError`` before anything starts."""
    if users < 1:
        raise InputError(f"--users must be at least 1 (got {users})")
    if not 0 <= changes <= 100:
        raise InputError(f"--changes must be a percentage from 0 to 100 (got {changes})")
    if not 0 <= page_latency <= 60:
        raise InputError(f"--page-latency-ms must be from 0 to 60000 (got {page_latency * 1000:g})")


def run_bench(
    users: int = 100_000,
    changes: float = 1.0,
    *,
    redis_url: str | None = None,
    out: Path | None = Path("bench/results.json"),
    card_users: int | None = None,
    digest_users: int = 10_600,
    peer_limit: int = 5_000,
    page_latency: float = 0.0,
) -> dict[str, Any]:
    """Run the whole benchmark; return the figures (also written to ``out`` when given).
    ``card_users`` (default min(users, 10,000)) sizes the first-card phase; ``digest_users``
    the tenant whose users are all new (>= 10,000 pending items) for the digest check;
    ``peer_limit`` caps the users msgraph-sdk deserialises (0: all; see ``peer_read``);
    ``page_latency``: seconds the simulator takes per page of users (0: it answers at once,
    so every figure is our own CPU; Graph itself takes time per page). The invoke phase
    syncs a tenant of ``users``, as the sync phases do."""
    check_bench_input(users, changes, page_latency)
    url = redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS
    figures = asyncio.run(_bench(users, changes, url, peer_limit, page_latency))
    cards = CardPhases(card_users or min(users, 10_000), digest_users, users, page_latency)
    figures |= card_phases(cards, url)
    figures |= ratios(figures)
    figures = {k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(figures, indent=2) + "\n")
    return figures
