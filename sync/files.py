"""Reading the tenant file (DESIGN.md §5) into typed records, with errors that name the file
and the problem."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sync.devtools.odata_filter import FilterRefused, parse_filter
from sync.errors import GraphDataError, InputError
from sync.models import EntraSnapshot, EntraUser, parse_entra_user


def read_json(path: str | Path, what: str) -> Any:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: cannot read the {what} ({e.strerror})") from None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: the {what} is not valid JSON ({e})") from None


def transitive_members(groups: Mapping[str, Sequence[str]], group_id: str) -> list[str]:
    """Every non-group member reachable from ``group_id`` (nested groups, cycles tolerated),
    in the order they are first met."""
    out: dict[str, None] = {}
    seen: set[str] = set()
    stack = [group_id]
    while stack:
        g = stack.pop()
        if g in seen:
            continue
        seen.add(g)
        for m in groups.get(g, ()):
            if m in groups:
                stack.append(m)
            else:
                out[m] = None
    return list(out)


def parse_groups(data: Any, source: str) -> dict[str, list[str]]:
    if data is None:
        return {}
    if not isinstance(data, list):
        raise InputError(f"{source}: 'groups' must be a list")
    out: dict[str, list[str]] = {}
    for i, g in enumerate(data):
        if not isinstance(g, dict) or not isinstance(g.get("id"), str):
            raise InputError(f"{source}: groups[{i}] needs an 'id'")
        members = g.get("members", [])
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise InputError(f"{source}: groups[{i}].members must be a list of ids")
        out[g["id"]] = members
    return out


def parse_users(data: Any, source: str) -> list[EntraUser]:
    if not isinstance(data, list):
        raise InputError(f"{source}: 'users' must be a list of Graph user objects")
    users: list[EntraUser] = []
    seen: set[str] = set()
    for i, obj in enumerate(data):
        try:
            u = parse_entra_user(obj)
        except GraphDataError as e:
            raise InputError(f"{source}: users[{i}]: {e.message}") from None
        if u.id in seen:
            raise InputError(f"{source}: users[{i}]: duplicate id {u.id}")
        seen.add(u.id)
        users.append(u)
    return users


def load_tenant_snapshot(
    path: str | Path, scope_groups: Iterable[str] = (), scope_filter: str = ""
) -> EntraSnapshot:
    """A tenant file as the Graph reader would see it (every user, group scope resolved, and
    the scope filter answered as the simulated Graph answers it for this file)."""
    source = str(path)
    data = read_json(path, "tenant file")
    if not isinstance(data, dict) or "users" not in data:
        raise InputError(f"{source}: expected an object with a 'users' list")
    users = parse_users(data["users"], source)
    groups = parse_groups(data.get("groups"), source)
    members: frozenset[str] | None = None
    scope = list(scope_groups)
    if scope:
        acc: set[str] = set()
        for g in scope:
            if g not in groups:
                raise InputError(f"{source}: scope group {g} is not in the tenant file")
            acc.update(transitive_members(groups, g))
        members = frozenset(acc)
    if scope_filter:
        taken = _filtered_ids(data["users"], scope_filter, source)
        members = taken if members is None else members & taken
    return EntraSnapshot(users=users, complete=True, group_members=members)


def _filtered_ids(users: list[Any], scope_filter: str, source: str) -> frozenset[str]:
    """The ids the simulated Graph returns for ``scope_filter`` over a tenant file's users (a
    filter it refuses: InputError with Graph's message)."""
    try:
        take = parse_filter(scope_filter, advanced=True)
    except FilterRefused as e:
        raise InputError(
            f"{source}: [scope] filter: Microsoft Graph would refuse it ({e.code}): {e.message}"
        ) from None
    return frozenset(u["id"] for u in users if isinstance(u, dict) and take(u))
