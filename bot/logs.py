"""Logging for every command, set up once at startup (``configure_logging``): ``LOG_LEVEL``
(INFO) and ``LOG_FORMAT`` (``text``, or ``json`` for log shippers) on stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from pythonjsonlogger.json import JsonFormatter

from sync.errors import ConfigError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def log_formatter(log_format: str) -> logging.Formatter:
    """``text``: one line a record (the operator lines carry their fields as key=value);
    ``json``: one JSON object a line, the operator lines' fields as JSON fields."""
    if log_format == "json":
        return JsonFormatter(
            ["levelname", "name", "message"], rename_fields={"levelname": "level"}, timestamp=True
        )
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(environ: Mapping[str, str]) -> None:
    """Once, at startup: ``LOG_LEVEL`` (INFO) and ``LOG_FORMAT`` (text, or json for log
    shippers) on stderr, replacing whatever was set up before."""
    level = environ.get("LOG_LEVEL", "INFO").upper()
    log_format = environ.get("LOG_FORMAT", "text").lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT={log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # one line per outbound request is noise unless debugging
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
