"""`entra-sync bench --users 2000` runs end to end (simulator process, real Redis, the bot
route) and reports every figure with a sane value. No timing assertions."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

KEYS = (
    "floor_s",
    "floor_directory_s",
    "directory_read_s",
    "peer_s",
    "read_s",
    "full_sync_s",
    "delta_sync_s",
    "resync_s",
    "bound_graph_s",
    "bound_directory_s",
    "bound_writes_s",
    "peak_rss_mb",
    "graph_requests",
    "redis_round_trips",
    "first_card_s",
    "digest_messages",
    "digest_max_per_30s",
)

ROOT = Path(__file__).resolve().parents[2]


async def test_bench_with_2000_users_reports_every_figure(
    tmp_path: Path, real_redis: aioredis.Redis
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": "redis://127.0.0.1:6379/0"}
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot.cli", "bench", "--users", "2000", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(KEYS) <= set(figures)
    for key in KEYS:
        assert figures[key] > 0, key
    assert figures["listed_users"] == figures["read_users"] == 2000
    assert figures["floor_directory_users"] == figures["directory_users"] > 0
    both = figures["floor_s"] + figures["floor_directory_s"]
    # (the figures are rounded to 3 decimals: small ones by up to ~2 %)
    assert figures["ratio_full_both_floors"] == pytest.approx(
        figures["full_sync_s"] / both, rel=0.1
    )
    assert figures["full_mode"] == "full" and figures["delta_mode"] == "delta"
    assert figures["resync_mode"] == "full"  # the delta link expired: a full read
    parts = ("bound_graph_s", "bound_directory_s", "bound_writes_s")
    assert figures["bound_s"] == pytest.approx(sum(figures[k] for k in parts), abs=0.002)
    assert figures["resync_graph_requests"] >= figures["graph_requests"]  # every page again
    assert figures["graph_requests"] == figures["expected_graph_requests"]
    assert figures["digest_pending_items"] >= 10_000
    assert figures["digest_messages"] <= 10 and figures["digest_max_per_30s"] <= 60
    # where each run's time went: every step reported, each a part of the run it belongs to
    steps = {"read", "listing", "plan", "record", "last_sync", "rest"}
    for run, took in (("full", "full_sync_s"), ("delta", "delta_sync_s"), ("resync", "resync_s")):
        phases = figures[f"{run}_phases"]
        assert set(phases) == steps and min(phases.values()) >= 0, phases
        assert sum(phases.values()) <= figures[took], (run, phases)
    assert (tmp_path / "bench" / "results.json").exists()
    assert [k async for k in real_redis.scan_iter(match="bench:*", count=1000)] == []
