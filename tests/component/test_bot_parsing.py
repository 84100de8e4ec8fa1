"""Command parsing, the local-mode bind check, and the sliding-window limiter."""

from __future__ import annotations

import pytest

from bot.app import check_bind
from bot.command_table import parse_command
from bot.posting import SlidingWindowLimiter
from sync.errors import ConfigError
from tests.component.test_bot_flow import FakeTime


@pytest.mark.parametrize(
    ("text", "name", "arg"),
    [
        ("<at>Entra Sync</at> sync now", "sync now", ""),
        ("  SYNC\u00a0  Now \n", "sync now", ""),
        ("sync Anna.Berg@Contoso.se", "sync", "Anna.Berg@Contoso.se"),
        ("<at>Bot</at>&nbsp;notify   here", "notify here", ""),
        ("Pending", "pending", ""),
    ],
)
def test_commands_parse_with_mentions_case_and_spacing_forgiven(
    text: str, name: str, arg: str
) -> None:
    spec, got = parse_command(text)
    assert spec is not None and spec.name == name
    assert got == arg


@pytest.mark.parametrize("text", ["", "sync", "pend", "please sync now", "<at>x</at>", "statusx"])
def test_unknown_or_partial_input_is_no_command(text: str) -> None:
    assert parse_command(text) == (None, "")


def test_local_mode_refuses_a_non_loopback_bind() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        check_bind("0.0.0.0", local_mode=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "[::1]"])
def test_local_mode_allows_loopback(host: str) -> None:
    check_bind(host, local_mode=True)


def test_teams_mode_may_bind_anywhere() -> None:
    check_bind("0.0.0.0", local_mode=False)


async def test_limiter_waits_once_eight_messages_were_sent_in_two_seconds() -> None:
    t = FakeTime()
    limiter = SlidingWindowLimiter(clock=t.monotonic, sleep=t.sleep)
    for _ in range(9):
        await limiter.acquire("c")
    history = limiter.history("c")
    assert history[7] - history[0] < 2.0
    assert history[8] - history[0] >= 2.0
