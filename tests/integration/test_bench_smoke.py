"""`entra-sync bench --users 2000` runs end to end (simulator process, real Redis, the bot
route) and reports every figure with a sane value; bad input is refused at once. No timing
assertions."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

FIGURES = (
    "floor_s",
    "peer_s",
    "read_s",
    "full_sync_s",
    "delta_sync_s",
    "resync_s",
    "peak_rss_mb",
    "graph_requests",
    "redis_round_trips",
    "first_card_s",
    "digest_messages",
    "digest_max_per_30s",
    "invoke_p99_ms",
    "invoke_max_ms",
    "invoke_count",
    "freshness_s",
    "ratio_full_floor",
    "ratio_delta_full",
    "ratio_peer_read",
)
RETIRED = ("bound_s", "gc_after_full_s", "floor_directory_s", "ratio_full_both_floors")

ROOT = Path(__file__).resolve().parents[2]


# this module's own key root: a bench run elsewhere on the same Redis is not ours to judge
KEY_ROOT = f"bench-smoke:{uuid.uuid4().hex[:8]}:"


def bench(tmp_path: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ENTRA_SYNC_BENCH_PREFIX": KEY_ROOT,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "bench", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_reads(figures: dict[str, Any]) -> None:
    """Every user read once by each reader; every page once by the full sync."""
    assert figures["listed_users"] == figures["read_users"] == 2000
    assert figures["pages"] == 3  # 999 users a page
    # every page once, and one request of its own for the delta link ($deltatoken=latest)
    assert figures["graph_requests"] == figures["expected_graph_requests"] == 3 + 1
    assert figures["resync_graph_requests"] >= figures["pages"]  # every page again


def check_runs(figures: dict[str, Any]) -> None:
    """Each run in its mode, and where its time went: every step a part of that run."""
    assert figures["full_mode"] == "full" and figures["delta_mode"] == "delta"
    assert figures["resync_mode"] == "full"  # the delta link expired: a full read
    for run, took in (("full", "full_sync_s"), ("delta", "delta_sync_s"), ("resync", "resync_s")):
        phases = figures[f"{run}_phases"]
        assert phases and min(phases.values()) >= 0, phases
        assert sum(phases.values()) <= figures[took], (run, phases)
    # the ratios are the figures' own (rounded to 3 decimals: small ones by up to ~2 %)
    assert figures["ratio_full_floor"] == pytest.approx(
        figures["full_sync_s"] / figures["floor_s"], rel=0.1
    )


def check_bot(figures: dict[str, Any]) -> None:
    """Invokes answered, each with a card, while a full sync ran; the digest kept small."""
    assert figures["invoke_sync_mode"] == "full" and figures["invoke_users"] == 2000
    assert figures["invoke_failures"] == 0
    assert figures["invoke_max_ms"] >= figures["invoke_p99_ms"]
    assert figures["digest_pending_items"] >= 10_000
    assert figures["digest_messages"] <= 10 and figures["digest_max_per_30s"] <= 60
    # watch mode: a quiet round posts nothing; a change waits at most an interval (+ the round)
    assert figures["watch_quiet_messages"] == 0
    assert figures["freshness_interval_s"] == 60
    assert figures["freshness_s"] >= figures["freshness_interval_s"] * 0.5


async def test_bench_with_2000_users_reports_every_figure(
    tmp_path: Path, real_redis: aioredis.Redis
) -> None:
    proc = await asyncio.to_thread(bench, tmp_path, "--users", "2000", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in FIGURES:
        assert figures[key] > 0, key
    assert not set(RETIRED) & set(figures)
    check_reads(figures)
    check_runs(figures)
    check_bot(figures)
    assert (tmp_path / "bench" / "results.json").exists()
    assert [k async for k in real_redis.scan_iter(match=f"{KEY_ROOT}*", count=1000)] == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--users", "0"), "--users"),
        (("--users", "-5"), "--users"),
        (("--changes", "101"), "--changes"),
        (("--changes", "-1"), "--changes"),
        (("--page-latency-ms", "-1"), "--page-latency-ms"),
    ],
)
def test_bench_refuses_bad_input_with_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    proc = bench(tmp_path, *args, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], proc.stderr
    assert not (tmp_path / "bench").exists()
