"""LOG_FORMAT / LOG_LEVEL (bot/logs.py): bad values are refused with the values allowed
before anything changes; the JSON formatter writes an operator line's fields as JSON fields."""

from __future__ import annotations

import json
import logging

import pytest

from bot.logs import configure_logging, log_formatter
from sync.errors import ConfigError


@pytest.mark.parametrize(
    ("environ", "named"),
    [({"LOG_FORMAT": "yaml"}, "text, json"), ({"LOG_LEVEL": "LOUD"}, "DEBUG, INFO")],
)
def test_an_unknown_log_format_or_level_is_refused_naming_the_choices(
    environ: dict[str, str], named: str
) -> None:
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ConfigError, match=named):
        configure_logging(environ)
    assert logging.getLogger().handlers == handlers  # nothing changed


def test_the_json_format_writes_the_lines_fields_as_json_fields() -> None:
    record = logging.LogRecord("entra_sync.ops", logging.INFO, "", 0, "run %s", ("x",), None)
    record.__dict__.update(event="run", tenant="contoso", counts={"new_items": 3})
    line = json.loads(log_formatter("json").format(record))
    assert line["level"] == "INFO" and line["message"] == "run x"
    assert (line["event"], line["tenant"], line["counts"]) == ("run", "contoso", {"new_items": 3})
    assert "timestamp" in line
    text = log_formatter("text").format(record)
    assert "INFO entra_sync.ops run x" in text
