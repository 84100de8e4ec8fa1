"""The Redis client every process uses: REDIS_URL, or the embedded in-process store.

The pool is bounded and blocking: at most ``MAX_CONNECTIONS`` connections, and a request
that finds them all busy waits up to ``POOL_TIMEOUT_S`` for one (then fails) instead of
failing at once, so a burst of Teams requests queues rather than erroring.

URL forms (README "Redis as operators run it"):

- ``redis://[[user]:password@]host:port/db`` - plain TCP;
- ``rediss://...?ssl_ca_certs=/path/ca.pem[&ssl_certfile=...&ssl_keyfile=...]`` - TLS; the
  query parameters are redis-py's own (``ssl_cert_reqs``, ``ssl_check_hostname``, ...);
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]`` - ask
  these Sentinels for the master of ``service_name`` (and again after a failover). The
  password is the master's; ``?sentinel_password=`` is the Sentinels' own, if they have one.
  Sentinel connections use redis-py's own (non-blocking) pool, with the same bound.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError, WatchError

from sync.errors import ConfigError

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 50
# A burst of 200 Teams messages takes 5-7 s to answer on a 2-core machine with 50 connections;
# at 5 s the last of them failed (tests/integration/test_security_load.py, seen several times).
# 10 s keeps every request queued and still inside the 15 s a Teams request may take.
POOL_TIMEOUT_S = 10.0
SENTINEL_SCHEME = "redis+sentinel"
_URL_HINT = (
    "Use redis://host:6379/0, rediss://host:6380/0?ssl_ca_certs=/path/ca.pem (TLS) or "
    "redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster/0 (Sentinel)."
)


def _no_count() -> None:
    return None


class ObservedPipeline(Pipeline):
    """A pipeline whose failed commands are counted like the client's (``on_error``)."""

    on_error: Callable[[], None] = staticmethod(_no_count)

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().immediate_execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except WatchError:
            raise
        except RedisError:
            self.on_error()
            raise

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except WatchError:  # an optimistic transaction lost a race; it is retried: no failure
            raise
        except RedisError:
            self.on_error()
            raise


class ObservedRedis(aioredis.Redis):
    """A client that calls ``on_error`` for each command (or pipeline) that fails with a
    Redis error (the metrics count them)."""

    on_error: Callable[[], None] = staticmethod(_no_count)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        except RedisError:
            self.on_error()
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = ObservedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.on_error = self.on_error
        return pipe


def redis_from_url(
    url: str, *, on_error: Callable[[], None] | None = None, **kwargs: Any
) -> aioredis.Redis:
    """A client for ``url``: a bounded, blocking connection pool; for a Sentinel URL, a
    client of the master that Sentinel names; ``on_error`` hears of every failed command.
    Raises ConfigError for a URL it cannot use."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == SENTINEL_SCHEME:
        client = _sentinel_master(url, **kwargs)
    else:
        client = _plain(url, scheme, **kwargs)
    if on_error is not None:
        client.on_error = on_error  # type: ignore[attr-defined]
    return client


def _plain(url: str, scheme: str, **kwargs: Any) -> aioredis.Redis:
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"REDIS_URL has the scheme {scheme or '(none)'!r}, which is not supported",
            hint=_URL_HINT,
        )
    kwargs.setdefault("max_connections", MAX_CONNECTIONS)
    kwargs.setdefault("timeout", POOL_TIMEOUT_S)
    try:
        pool = aioredis.BlockingConnectionPool.from_url(url, **kwargs)
        pool.connection_class(**pool.connection_kwargs)  # unknown ?options fail here, not later
    except (TypeError, ValueError) as e:  # the messages name the option, never the password
        raise ConfigError(f"REDIS_URL cannot be used: {e}", hint=_URL_HINT) from None
    return ObservedRedis(connection_pool=pool)


def _sentinel_master(url: str, **kwargs: Any) -> aioredis.Redis:
    """``redis+sentinel://[[user]:password@]h1:p1[,h2:p2]/service[/db][?query]``."""
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not hostlist or not path or len(path) > 2:
        raise ConfigError(
            "REDIS_URL: a Sentinel URL needs the Sentinels and the service name",
            hint=_URL_HINT,
        )
    try:
        sentinels = [_host_port(h) for h in hostlist.split(",")]
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ConfigError(
            "REDIS_URL: a Sentinel URL has a bad host:port list or database number",
            hint=_URL_HINT,
        ) from None
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    master: dict[str, Any] = {"db": db, "max_connections": MAX_CONNECTIONS, **kwargs}
    if userinfo:
        user, _, password = userinfo.partition(":")
        if user:
            master["username"] = unquote(user)
        if password:
            master["password"] = unquote(password)
    sentinel_kwargs: dict[str, Any] = {}
    if "sentinel_password" in query:
        sentinel_kwargs["password"] = query.pop("sentinel_password")
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in query:
            master[name] = sentinel_kwargs[name] = float(query.pop(name))
    if query:
        raise ConfigError(
            f"REDIS_URL: unknown Sentinel option(s) {', '.join(sorted(query))}",
            hint="Sentinel URLs take sentinel_password, socket_timeout and "
            "socket_connect_timeout, e.g. redis+sentinel://sentinel1:26379/mymaster/0"
            "?socket_timeout=5",
        )
    sentinel = Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: aioredis.Redis = sentinel.master_for(path[0], redis_class=ObservedRedis, **master)
    return client


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":")
    if not host:
        return item.strip(), 26379
    return host.strip("[]"), int(port)


def make_redis(url: str | None, *, on_error: Callable[[], None] | None = None) -> aioredis.Redis:
    """``url``, or the embedded in-process store (fakeredis) so `make run` needs no server."""
    if url:
        return redis_from_url(url, on_error=on_error)
    import fakeredis

    log.info("REDIS_URL is not set: using the embedded in-process store (data is not kept)")
    return fakeredis.FakeAsyncRedis()
