"""Settings edited in Teams: the card's form (``section.field`` -> text) as a config table,
and that table merged over the file's config (validated like the file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


_BOT_FORM_FIELDS = ("bot.notify_admins_personally", "bot.max_cards_per_run")
_BOOL = {"true": True, "false": False, "on": True, "off": False, "1": True, "0": False, "": False}


def form_to_table(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A settings card's inputs (``section.field`` -> text) as a config table."""
    table: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}

    def put(name: str, value: Any) -> None:
        section, field = name.split(".", 1)
        table.setdefault(section, {})[field] = value

    for name, raw in form.items():
        if "." not in name:
            continue
        value = (raw or "").strip()
        section = name.split(".", 1)[0]
        if section not in {"scope", "mapping", "schedule", "guard", "matching", "bot"} or (
            section == "bot" and name not in _BOT_FORM_FIELDS
        ):
            errors[name] = "unknown setting"  # the admin list is not editable from a card
            continue
        if len(value) > 2000:
            errors[name] = "too long"
            continue
        try:
            if name in ("scope.groups", "mapping.tags", "matching.keys"):
                put(name, [x.strip() for x in value.split(",") if x.strip()])
            elif name in ("scope.enabled_only", "scope.require_phone", *_BOT_FORM_FIELDS[:1]):
                if value.lower() not in _BOOL:
                    raise ValueError("expected true or false")
                put(name, _BOOL[value.lower()])
            elif name in ("schedule.every_hours", "guard.max_removals", "bot.max_cards_per_run"):
                put(name, int(value))
            elif name == "guard.max_removal_share":
                put(name, float(value))
            elif section == "mapping" and not value:
                continue  # an empty mapping field: unmapped
            else:
                put(name, value)
        except ValueError:
            errors[name] = (
                "not a valid number" if "true" not in str(value) else "expected true or false"
            )
    if "mapping" in table:
        table["mapping"] = {k: v for k, v in table["mapping"].items() if v not in ("", [])}
    return table, errors
