"""Field mapping, exactly the seed rules (DESIGN.md §2):

- a mapped field overwrites the directory value; an empty Entra value clears it;
- a field that is not mapped is never touched;
- anything between ``<`` and ``>`` in an Entra value is excluded;
- tags come from any Graph attributes (each attribute once; names are case-sensitive,
  checked when the config is loaded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sync.config import MappingSettings
from sync.models import Change, DirectoryUser, EntraUser

_ANGLE = re.compile(r"<[^>]*>")


def clean(value: Any) -> str | None:
    """One Entra value as directory text: ``<...>`` removed, whitespace collapsed, empty -> None."""
    if value is None:
        return None
    if type(value) is str:  # nearly every value: no conversion
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = ", ".join(c for c in (clean(v) for v in value) if c)
    else:
        text = str(value)
    if "<" in text:
        text = _ANGLE.sub("", text)
    # whitespace runs collapsed, ends stripped: str.split() splits on exactly what \s matches
    text = " ".join(text.split())
    return text or None


def attribute(user: EntraUser, name: str) -> Any:
    """A Graph attribute, following one dotted level (onPremisesExtensionAttributes.x)."""
    if "." in name:
        head, tail = name.split(".", 1)
        parent = user.attrs.get(head)
        return parent.get(tail) if isinstance(parent, dict) else None
    return user.attrs.get(name)


def tag_values(user: EntraUser, attrs: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for a in attrs:
        v = attribute(user, a)
        items = v if isinstance(v, list) else [v]
        for item in items:
            c = clean(item)
            if c and c not in out:
                out.append(c)
    return tuple(out)


def mapped_values(user: EntraUser, mapping: MappingSettings) -> dict[str, Any]:
    """The directory fields this Entra user dictates (only mapped fields appear)."""
    out: dict[str, Any] = {f: clean(attribute(user, a)) for f, a in mapping.fields.items()}
    if mapping.tags is not None:
        out["tags"] = tag_values(user, mapping.tags)
    return out


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, tuple | list) or isinstance(new, tuple | list):
        return tuple(old or ()) == tuple(new or ())
    return (old or None) == (new or None)


def field_changes(
    user: EntraUser, current: DirectoryUser | None, mapping: MappingSettings
) -> dict[str, Change]:
    """Changes that make ``current`` follow ``user``; for ``current=None`` every mapped field
    that has a value (what a created user would get)."""
    wanted = mapped_values(user, mapping)
    changes: dict[str, Change] = {}
    for name, new in wanted.items():
        if current is None:
            if new:
                changes[name] = Change(None, new)
            continue
        old = current.field_value(name)
        if not _same(old, new):
            changes[name] = Change(old, new)
    return changes


def new_values(changes: Mapping[str, Change]) -> dict[str, Any]:
    """The patch (field -> new value) that carries out ``changes``."""
    return {name: ch.new for name, ch in changes.items()}
