"""A full read replaces the tenant's snapshot: the reader never holds the old one while the new
one is read (two snapshots of a 100,000-user tenant at once was the peak of a resync)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import fakeredis
import pytest

from sync.config import Config
from sync.devtools.bench import bench_config
from sync.errors import GraphUnavailable
from sync.models import EntraSnapshot, EntraUser
from sync.service.reading import EntraReader
from sync.service.runtime import TenantRuntime
from sync.state.keys import Keys
from sync.state.snapshots import SnapshotStore


class FakeGraph:
    """Graph for full reads only (it gives no delta link), every user at once. It records
    whether the reader still held a snapshot of the tenant while the users were read."""

    base_url = "https://graph.example/v1.0"

    def __init__(self, reader: EntraReader, users: list[EntraUser]) -> None:
        self._reader = reader
        self._users = users
        self.held_during_read: list[bool] = []

    async def latest_delta_link(self, select: Sequence[str]) -> str:
        raise GraphUnavailable("no delta links here")

    async def read_users(
        self, select: Sequence[str], *, groups: Sequence[str] = (), each_page: Any = None
    ) -> Any:
        self.held_during_read.append("t" in self._reader.latest)
        if each_page is not None:  # one page, as the real client shows each page
            each_page(tuple(self._users))
        return EntraSnapshot(tuple(self._users))


class FakeRuntime:
    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph
        self.name = "t"


def users(label: str, n: int) -> list[EntraUser]:
    return [EntraUser(id=f"u{i}", enabled=True, attrs={"displayName": label}) for i in range(n)]


@pytest.mark.parametrize("rounds", [2, 3])
async def test_a_full_read_drops_the_held_snapshot_before_reading(rounds: int) -> None:
    store = SnapshotStore(fakeredis.FakeAsyncRedis(), Keys(prefix="r:"))
    reader = EntraReader(store)
    config: Config = bench_config("https://login.example")
    held: list[bool] = []
    for r in range(rounds):
        graph = FakeGraph(reader, users(f"round {r}", 3))
        reading = await reader.read(cast(TenantRuntime, FakeRuntime(graph)), config)
        held += graph.held_during_read
        assert reading.mode == "full"
        assert reader.latest["t"] is reading.snapshot  # the new snapshot is held afterwards
        assert {u.attrs["displayName"] for u in await store.load("t")} == {f"round {r}"}
    assert held == [False] * rounds
