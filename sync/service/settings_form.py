"""Settings edited in Teams: the card's form (``section.field`` -> text) as a config table,
and that table merged over the file's config (validated like the file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sync.config import Config, config_from_dict


def merge_config(base: Config, overrides: Mapping[str, Any]) -> Config:
    data = base.model_dump(mode="python", exclude={"base_dir", "mapping"})
    data["mapping"] = base.mapping.to_table()
    for section, values in overrides.items():
        if section == "mapping":
            data["mapping"] = dict(values)
        elif isinstance(values, Mapping):
            data[section] = {**(data.get(section) or {}), **values}
    data["tenants"] = [t.model_dump(mode="python") for t in base.tenants]
    data["directories"] = [d.model_dump(mode="python") for d in base.directories]
    return config_from_dict(data, source="settings", base_dir=base.base_dir)


# the fields a settings card may send, and how each is read from its text
_LISTS = ("scope.groups", "mapping.tags", "matching.keys", "notify.email")
_BOOLS = ("scope.enabled_only", "scope.require_phone", "bot.notify_admins_personally")
_INTS = (
    "schedule.every_hours",
    "schedule.every_seconds",
    "guard.max_removals",
    "bot.max_cards_per_run",
)
_FLOATS = ("guard.max_removal_share",)
_TEXT_SECTIONS = ("scope", "mapping", "schedule", "guard", "matching")
_BOOL = TypeAdapter(bool)
_INT = TypeAdapter(int)
_FLOAT = TypeAdapter(float)


def _read(name: str, value: str) -> Any:
    """One field's text as its value: comma lists, booleans (true/false, on/off, 1/0; empty is
    false), integers, decimals, or the text itself. Raises ValueError with the message for
    the card."""
    try:
        if name in _LISTS:
            return [x.strip() for x in value.split(",") if x.strip()]
        if name in _BOOLS:
            return _BOOL.validate_python(value or "false")
        if name in _INTS:
            return _INT.validate_python(value)
        if name in _FLOATS:
            return _FLOAT.validate_python(value)
    except ValidationError:
        wanted = "expected true or false" if name in _BOOLS else "not a valid number"
        raise ValueError(wanted) from None
    return value


def _known(name: str) -> bool:
    """A field the card may edit (the admin list and unknown fields are not)."""
    section = name.split(".", 1)[0]
    return section in _TEXT_SECTIONS or name in (
        "bot.notify_admins_personally",
        "bot.max_cards_per_run",
        "notify.email",  # the transport ([notify.mail]) stays in the config file
    )


def form_to_table(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A settings card's inputs (``section.field`` -> text) as a config table, and the errors
    by field. Fields without a section are not settings (ignored); an empty mapping field
    leaves the attribute unmapped."""
    table: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for name, raw in form.items():
        if "." not in name:
            continue
        value = (raw or "").strip()
        if not _known(name):
            errors[name] = "unknown setting"
        elif len(value) > 2000:
            errors[name] = "too long"
        elif not (name.startswith("mapping.") and not value):
            try:
                section, field = name.split(".", 1)
                table.setdefault(section, {})[field] = _read(name, value)
            except ValueError as e:
                errors[name] = str(e)
    if "mapping" in table:
        table["mapping"] = {k: v for k, v in table["mapping"].items() if v not in ("", [])}
    return table, errors
