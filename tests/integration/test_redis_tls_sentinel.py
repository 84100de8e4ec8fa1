"""REDIS_URL as operators run Redis: `rediss://` against a real redis-server with a TLS
listener (a throwaway CA made here), and `redis+sentinel://` against a real
`redis-server --sentinel` watching a real master; both on loopback ports of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from sync.errors import ConfigError
from sync.models import Kind
from sync.state.connection import redis_from_url
from sync.state.keys import Keys
from sync.state.store import StateStore
from tests.component.bot_fake_service import now_fixed
from tests.integration.redis_servers import (
    TlsFiles,
    make_tls_files,
    plain_redis,
    sentinel_for,
    tls_redis,
)
from tests.unit.test_state_proposals import match

KEYS = Keys("es:")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "redis"
    d.mkdir()
    return d


@pytest.fixture
def tls(work: Path) -> Iterator[tuple[int, TlsFiles]]:
    files = make_tls_files(work)
    with tls_redis(work, files) as port:
        yield port, files


async def records_and_reads(url: str) -> list[str]:
    """The state store over ``url``: record a plan, read the pending ids back."""
    r = redis_from_url(url)
    try:
        store = StateStore(r, KEYS, clock=now_fixed)
        await store.proposals.record_plan("contoso", "main", [match("e-anna")])
        return [sp.proposal.entra_id for sp in await store.proposals.pending(kind=Kind.MATCH)]
    finally:
        await r.aclose()


async def test_rediss_url_with_the_ca_file_talks_tls_to_redis(
    tls: tuple[int, TlsFiles],
) -> None:
    port, files = tls
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={files.ca}"
    assert await records_and_reads(url) == ["e-anna"]


async def test_rediss_url_refuses_a_server_certificate_from_an_unknown_ca(
    tls: tuple[int, TlsFiles],
) -> None:
    port, _ = tls
    r = redis_from_url(f"rediss://127.0.0.1:{port}/0")  # the system CAs do not know ours
    with pytest.raises(RedisConnectionError) as e:
        await r.ping()
    await r.aclose()
    assert "certificate verify failed" in str(e.value)


async def test_plain_redis_url_to_the_tls_port_does_not_answer(
    tls: tuple[int, TlsFiles],
) -> None:
    port, _ = tls
    r = redis_from_url(f"redis://127.0.0.1:{port}/0?socket_timeout=2")
    with pytest.raises(RedisConnectionError):
        await r.ping()
    await r.aclose()


async def test_sentinel_url_finds_the_master_and_the_store_works(work: Path) -> None:
    with plain_redis(work) as master_url:
        master_port = int(master_url.rsplit(":", 1)[1].split("/")[0])
        with sentinel_for(work, master_port, "esmaster") as sport:
            url = f"redis+sentinel://127.0.0.1:{sport}/esmaster/0"
            assert await records_and_reads(url) == ["e-anna"]
        direct = redis_from_url(master_url)  # the write went to the master Sentinel named
        assert await direct.exists(KEYS.pending("contoso", "main")) == 1
        await direct.aclose()


async def test_sentinel_url_with_an_unknown_service_fails_clearly(work: Path) -> None:
    with plain_redis(work) as master_url:
        master_port = int(master_url.rsplit(":", 1)[1].split("/")[0])
        with sentinel_for(work, master_port, "esmaster") as sport:
            r = redis_from_url(f"redis+sentinel://127.0.0.1:{sport}/nosuchservice")
            with pytest.raises(RedisConnectionError) as e:
                await r.ping()
            await r.aclose()
    assert "nosuchservice" in str(e.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379",
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:x/esmaster",
        "redis+sentinel://127.0.0.1:26379/esmaster?colour=blue",
        "redis://127.0.0.1:6379/0?colour=blue",
    ],
)
def test_a_redis_url_it_cannot_use_is_a_config_error_naming_the_forms(url: str) -> None:
    with pytest.raises(ConfigError) as e:
        redis_from_url(url)
    assert "REDIS_URL" in e.value.message and "redis+sentinel://" in e.value.hint
