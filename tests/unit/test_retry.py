"""The one retry policy (sync.retry): Retry-After parsing, waits, and when it stops."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sync.errors import GraphThrottled, GraphUnavailable
from sync.retry import RetryableFailure, RetryPolicy, parse_retry_after

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 0.25 ", 0.25),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:59:00 GMT", 0.0),  # a date in the past: no wait
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_fractional_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_the_policy_caps_retry_after_and_reads_dates_against_its_clock() -> None:
    policy = RetryPolicy(max_retry_after=60.0, now=lambda: NOW)
    assert policy.retry_after("Thu, 01 Jan 2026 12:00:10 GMT") == 10.0
    assert policy.retry_after("Thu, 01 Jan 2026 13:00:00 GMT") == 60.0
    assert policy.retry_after("1.5") == 1.5


async def test_retries_back_off_exponentially_then_raise_the_last_error() -> None:
    sleeps = Sleeps()
    tries: list[int] = []

    async def attempt(number: int) -> str:
        tries.append(number)
        raise RetryableFailure(GraphUnavailable(f"down after {number}"))

    policy = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=10.0)
    with pytest.raises(GraphUnavailable, match="down after 6"):
        await policy.run(attempt, sleep=sleeps)
    assert tries == [1, 2, 3, 4, 5, 6]
    assert sleeps.waits == [1.0, 2.0, 4.0, 8.0, 10.0]


async def test_a_retry_after_is_waited_instead_of_the_backoff() -> None:
    sleeps = Sleeps()

    async def attempt(number: int) -> str:
        if number < 3:
            raise RetryableFailure(GraphThrottled("slow down"), retry_after=7.5)
        return "ok"

    assert await RetryPolicy().run(attempt, sleep=sleeps) == "ok"
    assert sleeps.waits == [7.5, 7.5]


async def test_an_error_that_is_not_retryable_ends_the_call_at_once() -> None:
    sleeps = Sleeps()
    tries: list[int] = []

    async def attempt(number: int) -> str:
        tries.append(number)
        raise GraphUnavailable("HTTP 500")

    with pytest.raises(GraphUnavailable):
        await RetryPolicy().run(attempt, sleep=sleeps)
    assert tries == [1] and sleeps.waits == []
