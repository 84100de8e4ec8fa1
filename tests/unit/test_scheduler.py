"""The schedule is a pure function of now, last run and the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.config import ScheduleSettings
from sync.service.scheduler import is_due, next_run, wait_s

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)

aware = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
hhmm = st.tuples(st.integers(0, 23), st.integers(0, 59)).map(lambda t: f"{t[0]:02d}:{t[1]:02d}")


def daily(at: str = "02:00") -> ScheduleSettings:
    return ScheduleSettings(mode="daily", at=at)


def interval(h: int = 12) -> ScheduleSettings:
    return ScheduleSettings(mode="interval", every_hours=h)


def test_manual_schedule_never_runs() -> None:
    assert next_run(NOW, None, ScheduleSettings()) is None
    assert is_due(NOW, NOW - timedelta(days=30), ScheduleSettings()) is False


def test_daily_never_run_waits_for_the_next_slot() -> None:
    assert next_run(NOW, None, daily("02:00")) == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert next_run(NOW, None, daily("11:30")) == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    assert is_due(NOW, None, daily("02:00")) is False


def test_daily_run_for_todays_slot_moves_next_to_tomorrow() -> None:
    last = datetime(2026, 3, 1, 2, 0, 5, tzinfo=UTC)
    assert next_run(NOW, last, daily("02:00")) == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert is_due(NOW, last, daily("02:00")) is False


def test_daily_slot_missed_while_down_is_due_at_once() -> None:
    last = datetime(2026, 2, 27, 2, 0, tzinfo=UTC)
    assert next_run(NOW, last, daily("02:00")) == datetime(2026, 2, 28, 2, 0, tzinfo=UTC)
    assert is_due(NOW, last, daily("02:00")) is True


def test_daily_manual_run_before_the_slot_does_not_skip_the_slot() -> None:
    last = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert next_run(NOW, last, daily("02:00")) == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def test_interval_never_run_is_due_now() -> None:
    assert next_run(NOW, None, interval(6)) == NOW
    assert is_due(NOW, None, interval(6)) is True


def test_interval_counts_from_the_last_sync() -> None:
    last = NOW - timedelta(hours=5)
    assert next_run(NOW, last, interval(6)) == last + timedelta(hours=6)
    assert is_due(NOW, last, interval(6)) is False
    assert is_due(NOW + timedelta(hours=1), last, interval(6)) is True


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        next_run(datetime(2026, 3, 1), None, daily())


@given(now=aware, last=aware, at=hhmm)
def test_daily_next_run_is_after_last_run_on_the_slot_within_a_day(
    now: datetime, last: datetime, at: str
) -> None:
    nxt = next_run(now, last, daily(at))
    assert nxt is not None
    assert last < nxt <= last + timedelta(days=1)
    assert f"{nxt.hour:02d}:{nxt.minute:02d}" == at
    assert (nxt.second, nxt.microsecond) == (0, 0)


@given(now=aware, at=hhmm)
def test_daily_never_run_lands_on_the_first_slot_at_or_after_now(now: datetime, at: str) -> None:
    nxt = next_run(now, None, daily(at))
    assert nxt is not None
    assert now <= nxt < now + timedelta(days=1)
    assert f"{nxt.hour:02d}:{nxt.minute:02d}" == at


@given(now=aware, last=aware, hours=st.integers(1, 168))
def test_interval_spacing_equals_every_hours(now: datetime, last: datetime, hours: int) -> None:
    nxt = next_run(now, last, interval(hours))
    assert nxt is not None
    assert nxt - last == timedelta(hours=hours)
    assert nxt >= last


@given(now=aware, last=aware, at=hhmm)
def test_is_due_agrees_with_next_run(now: datetime, last: datetime, at: str) -> None:
    nxt = next_run(now, last, daily(at))
    assert nxt is not None
    assert is_due(now, last, daily(at)) is (now >= nxt)


# --- watch mode -------------------------------------------------------------------------------


def watch(s: int = 60) -> ScheduleSettings:
    return ScheduleSettings(mode="watch", every_seconds=s)


def test_watch_mode_defaults_to_a_round_every_minute() -> None:
    assert ScheduleSettings(mode="watch").every_seconds == 60


def test_watch_mode_runs_every_seconds_after_the_last_run() -> None:
    last = NOW - timedelta(seconds=45)
    assert next_run(NOW, last, watch(60)) == NOW + timedelta(seconds=15)
    assert is_due(NOW, last, watch(60)) is False
    assert is_due(NOW + timedelta(seconds=15), last, watch(60)) is True
    assert is_due(NOW, last, watch(30)) is True


def test_watch_mode_never_run_is_due_at_once() -> None:
    assert next_run(NOW, None, watch()) == NOW


def test_watch_mode_rejects_intervals_below_ten_seconds() -> None:
    with pytest.raises(ValueError):
        ScheduleSettings(mode="watch", every_seconds=5)


def test_scheduler_sleeps_until_the_earliest_due_run_at_most_a_tick() -> None:
    soon, later = NOW + timedelta(seconds=20), NOW + timedelta(seconds=50)
    assert wait_s(NOW, [later, soon, None], 30.0) == 20.0
    assert wait_s(NOW, [later], 30.0) == 30.0
    assert wait_s(NOW, [NOW - timedelta(seconds=5)], 30.0) == 0.0
    assert wait_s(NOW, [None], 30.0) == 30.0


@given(aware, st.integers(10, 3600))
def test_watch_next_run_is_one_interval_after_the_last(last: datetime, s: int) -> None:
    nxt = next_run(last + timedelta(seconds=1), last, watch(s))
    assert nxt == last + timedelta(seconds=s)
