"""What Prometheus scrapes (``GET /metrics``): one ``Metrics`` per app, on its own
``CollectorRegistry`` (never prometheus-client's global one), handed to the parts that count.

- ``entra_sync_runs_total{outcome,mode}`` and ``entra_sync_run_duration_seconds{outcome}``:
  sync runs (ok, failed, skipped) and how long they took;
- ``entra_sync_pending_items{kind}``: items waiting for an admin, read from the store when
  scraped (so every replica reports the same, decisions made elsewhere included);
- ``entra_sync_decisions_total{verb,outcome}``: card presses and bulk decisions;
- ``entra_sync_graph_requests_total{tenant}``, ``entra_sync_graph_throttled_total{tenant}``:
  requests sent to Microsoft Graph (retries included) and the 429s among the answers;
- ``entra_sync_teams_posts_total{op}``, ``entra_sync_teams_throttled_total{op}``: messages
  sent to (or updated in) Teams through the Bot Connector, and its 429s;
- ``entra_sync_redis_errors_total``: Redis commands that failed (a lost race of an optimistic
  transaction is no error);
- the process collector (memory, CPU, open files) and the Python GC and platform collectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

# seconds: a delta round of a small tenant takes well under a second, a full read of
# 100,000 users about a minute (docs/bench.md)
RUN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Metrics:
    """Every metric the bot exposes. ``render()`` is the text a scrape gets."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "entra_sync_runs", "Sync runs by outcome", ["outcome", "mode"], registry=r
        )
        self.run_seconds = Histogram(
            "entra_sync_run_duration_seconds",
            "How long a sync run took, by outcome",
            ["outcome"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.pending = Gauge(
            "entra_sync_pending_items", "Items waiting for an admin, by kind", ["kind"], registry=r
        )
        self.decisions = Counter(
            "entra_sync_decisions",
            "Admin decisions by verb and outcome",
            ["verb", "outcome"],
            registry=r,
        )
        self.graph_requests = Counter(
            "entra_sync_graph_requests", "Requests sent to Microsoft Graph", ["tenant"], registry=r
        )
        self.graph_throttled = Counter(
            "entra_sync_graph_throttled",
            "Microsoft Graph answers with HTTP 429 (throttled)",
            ["tenant"],
            registry=r,
        )
        self.teams_posts = Counter(
            "entra_sync_teams_posts",
            "Messages sent to or updated in Teams (Bot Connector requests)",
            ["op"],
            registry=r,
        )
        self.teams_throttled = Counter(
            "entra_sync_teams_throttled",
            "Bot Connector answers with HTTP 429 (throttled)",
            ["op"],
            registry=r,
        )
        self.redis_errors = Counter(
            "entra_sync_redis_errors", "Redis commands that failed", registry=r
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

    def run_done(self, outcome: str, mode: str, seconds: float) -> None:
        self.runs.labels(outcome=outcome, mode=mode).inc()
        self.run_seconds.labels(outcome=outcome).observe(max(seconds, 0.0))

    def set_pending(self, counts: Mapping[str, int]) -> None:
        for kind, n in counts.items():
            self.pending.labels(kind=kind).set(n)

    def graph_observer(self, tenant: str) -> Callable[[int | None], None]:
        """What a Graph client calls with each answer's HTTP status (None: no answer)."""
        requests = self.graph_requests.labels(tenant=tenant)
        throttled = self.graph_throttled.labels(tenant=tenant)

        def observe(status: int | None) -> None:
            requests.inc()
            if status == 429:
                throttled.inc()

        return observe

    def teams_request(self, op: str, status: int | None) -> None:
        """One Bot Connector request (``op``: send, update) and its HTTP status (200: done)."""
        self.teams_posts.labels(op=op).inc()
        if status == 429:
            self.teams_throttled.labels(op=op).inc()

    def redis_error(self) -> None:
        self.redis_errors.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
