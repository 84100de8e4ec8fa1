"""What an operator sees of runs and decisions: one log line each, and the metrics.

A run line (INFO; WARNING when the run failed) carries the tenant, directory, mode, trigger,
outcome, duration, counts (new items, applied by the schedule, superseded, blocked removals,
synced of syncable) and what is pending by kind after it, and the error's code and hint when
there is one. A decision
line (INFO; WARNING when it failed) carries who (the Entra object id, never a name), the
verb, the item's kind and ids and the outcome. Neither ever carries a phone number, an
e-mail address or a name. The fields are given to the log record as ``extra`` too, so
``LOG_FORMAT=json`` writes them as JSON fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sync.errors import SyncError
from sync.metrics import Metrics
from sync.models import Kind
from sync.service.records import Actor, Decision, RunResult

log = logging.getLogger("entra_sync.ops")

NOT_DECISIONS = frozenset({"refresh"})  # a card refresh reads; it decides nothing


def kv(fields: Mapping[str, Any]) -> str:
    """``key=value`` pairs, nested mappings as ``key.sub=value``; None left out."""
    parts: list[str] = []
    for key, value in fields.items():
        if isinstance(value, Mapping):
            parts += [f"{key}.{k}={v}" for k, v in value.items() if v is not None]
        elif value is not None:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def error_fields(error: SyncError | None) -> dict[str, Any]:
    if error is None:
        return {}
    return {"error_code": error.code, "error": error.message, "hint": error.hint or None}


def run_fields(result: RunResult) -> dict[str, Any]:
    seconds = (result.finished_at - result.started_at).total_seconds()
    kinds = {k.value for k in Kind}
    counts: dict[str, Any] = {
        "new_items": len(result.new_items),
        "auto_applied": len(result.auto_applied),
        "superseded": len(result.superseded),
        "blocked": len(result.blocked),
        **{k: v for k, v in result.counters.items() if k not in kinds},
    }
    pending = {k: v for k, v in result.counters.items() if k in kinds}
    return {
        "tenant": result.tenant,
        "directory": result.directory,
        "mode": result.mode,
        "trigger": result.trigger,
        "outcome": result.status,
        "duration_s": round(seconds, 3),
        "counts": counts,
        "pending": pending or None,
        **error_fields(result.error),
    }


def decision_fields(verb: str, actor: Actor, decision: Decision) -> dict[str, Any]:
    item = decision.item
    p = item.proposal if item is not None else None
    return {
        "actor": actor.id,
        "verb": verb,
        "outcome": decision.outcome,
        "kind": p.kind.value if p is not None else None,
        "proposal_id": p.id if p is not None else None,
        "entra_id": (p.entra_id or ",".join(p.entra_ids) or None) if p is not None else None,
        "app_user_id": p.app_user_id if p is not None else None,
        "tenant": item.tenant if item is not None else None,
        "directory": item.directory if item is not None else None,
        **error_fields(decision.error),
    }


class Observer:
    """Logs and counts runs (a run listener) and decisions (``decided``)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def run_done(self, result: RunResult) -> None:
        fields = run_fields(result)
        self._metrics.run_done(result.status, result.mode, fields["duration_s"])
        level = logging.WARNING if result.status == "failed" else logging.INFO
        log.log(level, "run %s", kv(fields), extra={"event": "run", **fields})

    def decided(self, verb: str, actor: Actor, decision: Decision) -> None:
        if verb in NOT_DECISIONS:
            return
        self._metrics.decisions.labels(verb=verb, outcome=decision.outcome).inc()
        fields = decision_fields(verb, actor, decision)
        level = logging.WARNING if decision.outcome == "failed" else logging.INFO
        log.log(level, "decision %s", kv(fields), extra={"event": "decision", **fields})
