"""Readiness (``GET /readyz``) and the pending-items gauge, from what the service holds: one
Redis PING under a short timeout, and per tenant the last run (as the status card shows it)
and how the Graph client's last token request went. No probe signs in or calls Graph.

A check is *critical* when the bot cannot serve Teams without it (Redis); a tenant check that
fails leaves the bot serving (admins can still read the error and `connect` again), so it
makes the report *degraded*, not *not ready*, unless the caller asks for ``strict``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sync.errors import StoreUnavailable, SyncError
from sync.metrics import Metrics
from sync.service.shared import Shared

PING_TIMEOUT_S = 1.0
COUNT_TIMEOUT_S = 5.0

REDIS_HINT = (
    "Redis does not answer. Check that redis-server runs and that REDIS_URL (host, port, "
    "password, TLS) is right; the bot keeps no state without it."
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    critical: bool
    detail: Mapping[str, Any] = field(default_factory=dict)
    code: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, **self.detail}
        if not self.ok:
            out |= {"code": self.code, "hint": self.hint}
        return out


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: tuple[Check, ...]

    def status(self, *, strict: bool = False) -> Literal["ready", "degraded", "not_ready"]:
        if any(not c.ok and (c.critical or strict) for c in self.checks):
            return "not_ready"
        return "degraded" if any(not c.ok for c in self.checks) else "ready"

    def to_dict(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "status": self.status(strict=strict),
            "failed": [c.name for c in self.checks if not c.ok],
            "checks": {c.name: c.to_dict() for c in self.checks},
        }


class Health:
    def __init__(
        self,
        shared: Shared,
        redis: aioredis.Redis,
        metrics: Metrics,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        ping_timeout_s: float = PING_TIMEOUT_S,
    ) -> None:
        self._store, self._tenants = shared.store, shared.tenants
        self._redis, self._metrics = redis, metrics
        self._monotonic = monotonic
        self._ping_timeout_s = ping_timeout_s

    async def readiness(self) -> Readiness:
        redis = await self._redis_check()
        tenants = [await self._tenant_check(n, redis_ok=redis.ok) for n in self._tenants.names()]
        return Readiness((redis, *tenants))

    async def _redis_check(self) -> Check:
        try:
            async with asyncio.timeout(self._ping_timeout_s):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as e:
            return Check(
                "redis",
                ok=False,
                critical=True,
                detail={"error": type(e).__name__},
                code=StoreUnavailable.code,
                hint=REDIS_HINT,
            )
        return Check("redis", ok=True, critical=True)

    async def _tenant_check(self, name: str, *, redis_ok: bool) -> Check:
        """The last run (from the store, when Redis answers) and the token state. The first
        problem found names the check's code and hint: the tenant could not be opened, Entra
        refused the token, the last run failed."""
        detail: dict[str, Any] = {}
        problem: SyncError | Mapping[str, Any] | None = self._tenants.errors.get(name)
        rt = self._tenants.runtimes.get(name)
        if rt is not None:
            state = rt.graph.tokens.state
            token: dict[str, Any] = {"state": state.outcome}
            if state.at is not None:
                token["age_s"] = round(self._monotonic() - state.at, 1)
            if state.error is not None:
                token["code"] = state.error.code
                problem = problem or (state.error if state.outcome == "refused" else None)
            detail["token"] = token
        else:
            detail["token"] = {"state": "no_credentials"}
        if redis_ok:
            try:
                async with asyncio.timeout(self._ping_timeout_s):
                    last = await self._store.runs.last_sync(name)
            except (RedisError, OSError, TimeoutError):
                last = None
            if last is not None:
                detail["last_run"] = {"status": last.status, "at": last.at.isoformat()}
                if last.status == "failed" and last.error:
                    detail["last_run"]["code"] = last.error.get("code")
                    problem = problem or last.error
        if problem is None:
            return Check(f"tenant:{name}", ok=True, critical=False, detail=detail)
        if isinstance(problem, SyncError):
            code, hint = problem.code, problem.hint
        else:
            code, hint = str(problem.get("code") or ""), str(problem.get("hint") or "")
        return Check(f"tenant:{name}", False, False, detail, code=code, hint=hint)

    async def refresh_pending(self) -> None:
        """Set the pending-items gauge from the store (all tenants and directories). Redis
        failing or slow leaves the last values (the failure is counted as a Redis error)."""
        try:
            async with asyncio.timeout(COUNT_TIMEOUT_S):
                counts = await self._store.proposals.pending_kinds()
        except (RedisError, OSError, TimeoutError):
            return
        self._metrics.set_pending(counts)
