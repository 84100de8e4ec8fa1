"""How the state store writes values to Redis and reads them back: compact JSON, ISO times,
replies as ``bytes`` (the client is created with ``decode_responses=False``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

BATCH = 1000  # commands per pipeline: 100,000 writes cost ~100 round trips, not 100,000
MAX_WATCH_RETRIES = 100  # optimistic transactions (WATCH/MULTI/EXEC) retried this often

_T = TypeVar("_T")


def dumps(v: Any) -> str:
    """Compact JSON with sorted keys (stable bytes for the same value)."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def text(v: bytes | str) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else v


def text_or_none(v: bytes | str | None) -> str | None:
    return None if v is None else text(v)


def str_map(h: Any) -> dict[str, str]:
    """A Redis hash reply as str -> str."""
    return {text(k): text(v) for k, v in (h or {}).items()}


def str_set(m: Any) -> set[str]:
    """A Redis set reply as a set of str."""
    return {text(x) for x in m or ()}


def time_or_none(v: bytes | str | None) -> datetime | None:
    s = text_or_none(v)
    return datetime.fromisoformat(s) if s else None


def iso(dt: datetime) -> str:
    """An aware datetime as an ISO string in UTC (naive datetimes are refused)."""
    if dt.tzinfo is None:
        raise ValueError("datetimes must be aware")
    return dt.astimezone(UTC).isoformat()


def chunks(items: Sequence[_T], n: int = BATCH) -> Iterator[Sequence[_T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def prefix_pattern(key_with_nul: str) -> str:
    """A SCAN pattern for every key that starts like ``key_with_nul`` up to the NUL."""
    return glob_escape(key_with_nul.split("\0")[0]) + "*"


def glob_escape(s: str) -> str:
    """``s`` as a literal inside a SCAN MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in s)
