"""When the next scheduled sync is due: a pure function of "now", "last run" and the schedule.

- ``manual``: never (``None``); only ``sync now`` runs.
- ``daily`` at ``HH:MM`` (UTC): the earliest ``HH:MM`` slot strictly after ``last_run``; when
  it never ran, the earliest slot at or after ``now``. A run missed while the bot was down is
  therefore due at once (its slot lies in the past), and a run at 02:00:05 for the 02:00 slot
  moves the next one to tomorrow 02:00.
- ``interval``: ``last_run + every_hours`` (counted from the last sync); when it never ran, ``now``.

``is_due`` is ``now >= next_run``. All datetimes must be aware; results are in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.config import ScheduleSettings


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("datetimes must be aware (UTC)")
    return dt.astimezone(UTC)


def _slot_at_or_after(t: datetime, hh: int, mm: int) -> datetime:
    slot = t.replace(hour=hh, minute=mm, second=0, microsecond=0)
    return slot if slot >= t else slot + timedelta(days=1)


def next_run(
    now: datetime, last_run: datetime | None, schedule: ScheduleSettings
) -> datetime | None:
    now = _utc(now)
    if schedule.mode == "manual":
        return None
    if schedule.mode == "interval":
        if last_run is None:
            return now
        return _utc(last_run) + timedelta(hours=schedule.every_hours)
    hh, mm = (int(x) for x in schedule.at.split(":"))
    if last_run is None:
        return _slot_at_or_after(now, hh, mm)
    last = _utc(last_run)
    slot = _slot_at_or_after(last, hh, mm)
    return slot if slot > last else slot + timedelta(days=1)


def is_due(now: datetime, last_run: datetime | None, schedule: ScheduleSettings) -> bool:
    nxt = next_run(now, last_run, schedule)
    return nxt is not None and _utc(now) >= nxt
