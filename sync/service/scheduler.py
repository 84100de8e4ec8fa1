"""When the next scheduled sync is due: a pure function of "now", "last run" and the schedule.

- ``manual``: never (``None``); only ``sync now`` runs.
- ``daily`` at ``HH:MM`` (UTC): the earliest ``HH:MM`` slot strictly after ``last_run``; when
  it never ran, the earliest slot at or after ``now``. A run missed while the bot was down is
  therefore due at once (its slot lies in the past), and a run at 02:00:05 for the 02:00 slot
  moves the next one to tomorrow 02:00.
- ``interval``: ``last_run + every_hours`` (counted from the last sync); when it never ran, ``now``.
- ``watch``: ``last_run + every_seconds`` (a delta round each interval); when it never ran, ``now``.

``is_due`` is ``now >= next_run``. All datetimes must be aware; results are in UTC.
After a failed run, the next is due within the hour (``next_sync``). ``Scheduler`` runs what
is due.

Several replicas (``entra-sync serve`` processes on one Redis) each run this scheduler; a due
slot is run by the one replica that claims it first (``StateStore.schedule_claims``: SET NX
with an expiry, keyed by tenant and due time), so each slot runs once across replicas. Before
each round the scheduler applies the settings saved in Teams if another replica changed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sync.config import ScheduleSettings
from sync.errors import InputError
from sync.service.records import RunResult
from sync.service.settings_form import merge_config
from sync.service.shared import Shared
from sync.state.runlog import LastSync

log = logging.getLogger(__name__)


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("datetimes must be aware (UTC)")
    return dt.astimezone(UTC)


def _slot_at_or_after(t: datetime, hh: int, mm: int) -> datetime:
    slot = t.replace(hour=hh, minute=mm, second=0, microsecond=0)
    return slot if slot >= t else slot + timedelta(days=1)


def _period(schedule: ScheduleSettings) -> timedelta:
    if schedule.mode == "watch":
        return timedelta(seconds=schedule.every_seconds)
    return timedelta(hours=schedule.every_hours)


def next_run(
    now: datetime, last_run: datetime | None, schedule: ScheduleSettings
) -> datetime | None:
    now = _utc(now)
    if schedule.mode == "manual":
        return None
    if schedule.mode in ("interval", "watch"):
        if last_run is None:
            return now
        return _utc(last_run) + _period(schedule)
    hh, mm = (int(x) for x in schedule.at.split(":"))
    if last_run is None:
        return _slot_at_or_after(now, hh, mm)
    last = _utc(last_run)
    slot = _slot_at_or_after(last, hh, mm)
    return slot if slot > last else slot + timedelta(days=1)


def is_due(now: datetime, last_run: datetime | None, schedule: ScheduleSettings) -> bool:
    nxt = next_run(now, last_run, schedule)
    return nxt is not None and _utc(now) >= nxt


RETRY_AFTER_FAILURE = timedelta(hours=1)
CLAIM_TTL = timedelta(minutes=15)  # a replica that died mid-run hands its slot on after this


def next_sync(now: datetime, last: LastSync | None, schedule: ScheduleSettings) -> datetime | None:
    """The schedule's next run; after a failed run, a retry within the hour."""
    nxt = next_run(now, last.at if last else None, schedule)
    if nxt is not None and last is not None and last.status == "failed":
        return min(nxt, last.at + RETRY_AFTER_FAILURE)
    return nxt


def wait_s(now: datetime, due: Sequence[datetime | None], tick_s: float) -> float:
    """How long the scheduler sleeps: until the earliest due run, at most ``tick_s`` (so a
    changed schedule is seen), never negative."""
    waits = [(d - _utc(now)).total_seconds() for d in due if d is not None]
    return max(0.0, min([tick_s, *waits]))


class Scheduler:
    """Runs every tenant whose schedule is due; sleeps until the next is due (at most
    ``tick_s`` seconds)."""

    def __init__(
        self,
        shared: Shared,
        run_sync: Callable[..., Awaitable[list[RunResult]]],
        *,
        sleep: Callable[[float], Awaitable[None]],
        tick_s: float,
        on_tick: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._live, self._runlog, self._tenants = shared.live, shared.store.runs, shared.tenants
        self._claims, self._settings = shared.store.schedule_claims, shared.store.settings
        self._seen_settings: dict[str, Any] | None = None
        self._owner = uuid.uuid4().hex  # this replica, as written into the claims it takes
        self._clock, self._run_sync, self._sleep, self._tick = shared.clock, run_sync, sleep, tick_s
        self._on_tick = on_tick  # besides the runs, on every tick (the daily reminder)
        self._task: asyncio.Task[None] | None = None

    async def next_sync(self, tenant: str) -> datetime | None:
        last = await self._runlog.last_sync(tenant)
        return next_sync(self._clock(), last, self._live.current.schedule)

    async def follow_settings(self) -> None:
        """Apply the settings saved in Teams when they changed since this replica last looked
        (another replica saved them)."""
        saved = await self._settings.get_settings_overrides()
        if saved == self._seen_settings:
            return
        self._seen_settings = saved
        try:
            self._live.current = merge_config(self._live.file, saved) if saved else self._live.file
        except InputError as e:
            log.warning("settings saved in Teams are invalid (%s); using the file", e.code)

    async def run_due(self) -> list[RunResult]:
        """Run every tenant whose schedule is due now (the settings saved in Teams first)."""
        await self.follow_settings()
        if self._live.current.schedule.mode == "manual":
            return []
        out: list[RunResult] = []
        for name in list(self._tenants.runtimes):
            last = await self._runlog.last_sync(name)
            nxt = next_sync(self._clock(), last, self._live.current.schedule)
            if nxt is None or nxt > self._clock():
                continue
            slot = nxt if last is not None else None  # never ran: due "now" on every clock
            if not await self._claims.claim(name, slot, self._owner, ttl=CLAIM_TTL):
                log.debug("tenant %s: the slot due %s is run by another replica", name, nxt)
                continue
            out += await self._run_sync(name, trigger="scheduled")
        return out

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="entra-sync-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_s(self) -> float:
        """Seconds until the next tenant is due (at most ``tick_s``)."""
        if self._live.current.schedule.mode == "manual":
            return self._tick
        due = [await self.next_sync(name) for name in list(self._tenants.runtimes)]
        return wait_s(self._clock(), due, self._tick)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
                if self._on_tick is not None:
                    await self._on_tick()
                pause = await self.wait_s()
            except Exception:
                log.exception("scheduled sync failed")
                pause = self._tick
            await self._sleep(pause)
