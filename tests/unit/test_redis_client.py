"""The hiredis-packing connection sends the very bytes redis-py's own packer sends."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import DataError

from sync.state.connection import HiredisPackConnection, make_redis, redis_from_url

ARG = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)


def _packed(conn: aioredis.Connection, *args: object) -> bytes:
    return b"".join(bytes(x) for x in conn.pack_command(*args))


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["SET", "HSET", "CONFIG GET", b"HSETNX", b"SCRIPT LOAD"]),
    args=st.lists(ARG, max_size=8),
)
def test_hiredis_packing_gives_the_bytes_redis_py_packs(name: object, args: list[object]) -> None:
    ours, theirs = HiredisPackConnection(), aioredis.Connection()
    assert _packed(ours, name, *args) == _packed(theirs, name, *args)


def test_a_pipeline_packs_the_same_as_redis_py() -> None:
    cmds = [("HSET", "k", "é", b"\x00\xff", 1, 2.5), ("SADD", "s", *map(str, range(2000)))]
    ours, theirs = HiredisPackConnection(), aioredis.Connection()
    assert b"".join(map(bytes, ours.pack_commands(cmds))) == b"".join(
        map(bytes, theirs.pack_commands(cmds))
    )


@pytest.mark.parametrize("bad", [True, None, object()])
def test_values_redis_py_refuses_are_refused_too(bad: object) -> None:
    with pytest.raises(DataError):
        HiredisPackConnection().pack_command("SET", "k", bad)


def test_plain_redis_urls_use_hiredis_packing_and_tls_urls_keep_their_class() -> None:
    plain = redis_from_url("redis://127.0.0.1:6379/0")
    tls = redis_from_url("rediss://127.0.0.1:6380/0")
    assert plain.connection_pool.connection_class is HiredisPackConnection
    assert tls.connection_pool.connection_class is aioredis.SSLConnection


def test_no_url_gives_the_embedded_store() -> None:
    assert type(make_redis(None)).__module__.startswith("fakeredis")


def test_large_values_are_packed_by_redis_py_itself_without_a_copy() -> None:
    big = b"x" * 200_000
    ours, theirs = HiredisPackConnection(), aioredis.Connection()
    chunks = ours.pack_command("RPUSH", "k", big, "small")
    assert any(c is big for c in chunks)  # handed over as is, like redis-py does
    assert b"".join(map(bytes, chunks)) == b"".join(
        map(bytes, theirs.pack_command("RPUSH", "k", big, "small"))
    )
