"""What the service knows about a tenant's Graph token without asking Entra: the outcome of
the last time the Graph client asked for one (readiness shows it; no probe signs in)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sync.errors import AuthError, SyncError
from sync.graph.auth import RefreshableTokenProvider, TokenProvider

TokenOutcome = Literal["not_requested", "ok", "refused", "unavailable"]


@dataclass(frozen=True, slots=True)
class TokenState:
    """``outcome`` of the last token request, ``at`` (monotonic seconds) when, and the
    error when it failed. ``refused``: Entra said no (wrong secret, no consent): nothing
    works until an admin fixes it; ``unavailable``: Entra did not answer (retried)."""

    outcome: TokenOutcome
    at: float | None = None
    error: SyncError | None = None


class WatchedTokens:
    """A token provider that remembers how its last request went (``state``)."""

    def __init__(self, inner: TokenProvider, *, clock: Callable[[], float] = time.monotonic):
        self._inner = inner
        self._clock = clock
        self.state = TokenState("not_requested")

    async def token(self) -> str:
        return await self._watch(self._inner.token)

    async def refresh(self) -> str:
        inner = self._inner
        get = inner.refresh if isinstance(inner, RefreshableTokenProvider) else inner.token
        return await self._watch(get)

    async def _watch(self, get: Callable[[], Awaitable[str]]) -> str:
        try:
            token = await get()
        except AuthError as e:
            outcome: TokenOutcome = "unavailable" if e.retryable else "refused"
            self.state = TokenState(outcome, self._clock(), e)
            raise
        self.state = TokenState("ok", self._clock())
        return token
