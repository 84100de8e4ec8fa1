"""One retry policy for every HTTP peer (Microsoft Graph, a SCIM directory, the Bot Connector),
on tenacity.

The rule: an attempt that fails in a way worth another try raises :class:`RetryableFailure`
(carrying the error to raise when no attempt is left, and the server's Retry-After). The next
attempt waits the server's Retry-After (capped at ``max_retry_after``) when it gave one, else
``base_delay * 2**n`` for the n-th retry (capped at ``max_delay``), with no jitter. After
``max_retries`` retries the last failure's error is raised. Every other exception ends the call
at once. The sleep is injected (tests record the waits; no wall time passes); so is the clock
an HTTP-date Retry-After is read against.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (fractional allowed) or an
    HTTP-date (seconds from ``now``; a date in the past is 0). None when absent or unreadable
    (negative, NaN, infinite, not a date)."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is always GMT
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


class RetryableFailure(Exception):
    """An attempt failed in a way worth another try. ``error`` is raised when no attempt is
    left; ``retry_after`` is the server's wait in seconds (None: it gave none)."""

    def __init__(self, error: Exception, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry (see the module docstring for the rule)."""

    max_retries: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 120.0
    now: Callable[[], datetime] = field(default=utc_now, compare=False)

    def retry_after(self, header: str | None) -> float | None:
        """The wait a ``Retry-After`` header asks for, capped at ``max_retry_after``."""
        seconds = parse_retry_after(header, self.now())
        return None if seconds is None else min(seconds, self.max_retry_after)

    def delay(self, retry_number: int, retry_after: float | None) -> float:
        """The wait before retry ``retry_number`` (0 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return float(min(self.max_delay, self.base_delay * 2**retry_number))

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        retry_after = failure.retry_after if isinstance(failure, RetryableFailure) else None
        return self.delay(state.attempt_number - 1, retry_after)

    async def run(self, attempt: Callable[[int], Awaitable[T]], *, sleep: Sleep) -> T:
        """``await attempt(n)`` for n = 1, 2, ... until it returns, raises something other than
        RetryableFailure, or ``max_retries`` retries failed (then that failure's ``error``)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableFailure),
            sleep=sleep,
            reraise=True,
        )
        number = 0

        async def once() -> T:
            nonlocal number
            number += 1
            return await attempt(number)

        try:
            return await retrying(once)
        except RetryableFailure as failure:
            raise failure.error from None
