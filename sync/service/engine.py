"""Applying decisions to a directory, and checking a proposal against current Entra data.

Pure helpers plus the directory writes; the service orchestrates them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sync.config import Config
from sync.directories.base import Directory, NewDirectoryUser, UserPatch
from sync.errors import DirectoryConflict, DirectoryNotFound, InputError
from sync.models import Change, DirectoryUser, EntraSnapshot, EntraUser, Kind, Proposal
from sync.plan.mapping import field_changes, new_values
from sync.plan.planner import entra_phones, new_user_phones, scope_cause

# verb -> the proposal kinds it applies to
VERBS: Mapping[str, frozenset[Kind]] = {
    "accept": frozenset({Kind.MATCH}),
    "apply": frozenset({Kind.UPDATE}),
    "link": frozenset({Kind.NEW}),
    "create": frozenset({Kind.NEW}),
    "remove_sync": frozenset({Kind.REMOVAL}),
    "delete_user": frozenset({Kind.REMOVAL}),
    "delete_user_confirm": frozenset({Kind.REMOVAL}),
    "pick_owner": frozenset({Kind.CONFLICT}),
    "ignore": frozenset({Kind.MATCH, Kind.NEW, Kind.UPDATE, Kind.CONFLICT, Kind.REMOVAL}),
}


def still_valid(
    p: Proposal,
    current: Mapping[str, EntraUser | None],
    snapshot: EntraSnapshot,
    directory_user: DirectoryUser | None,
    config: Config,
    owners: Mapping[str, str] | None = None,
) -> bool:
    """Does the proposal still describe current Entra data? (``current``: the Entra users the
    proposal is about, as they are now; None = gone; ``owners``: the chosen owners of shared
    numbers, which a new user's numbers leave out as the planner does.)"""
    region = config.matching.default_region
    if p.kind is Kind.CONFLICT:
        for eid in p.entra_ids:
            u = current.get(eid)
            if u is None or p.number not in {e for e, _ in entra_phones(u, region)}:
                return False
        return True
    u = current.get(p.entra_id or "")
    if p.kind is Kind.REMOVAL:
        if u is None:
            return True
        cause = scope_cause(u, snapshot, config)
        return cause is not None
    if u is None:
        return False
    if scope_cause(u, snapshot, config) is not None:
        return False
    if p.kind is Kind.NEW:
        want = field_changes(u, None, config.mapping)
        phones = new_user_phones(u.id, entra_phones(u, region), owners or {})
        if phones:
            want["phones"] = Change(None, phones)
        return dict(want) == dict(p.changes)
    if directory_user is None:
        return False
    return dict(field_changes(u, directory_user, config.mapping)) == dict(p.changes)


AuditChange = dict[str, Any]  # {"before": ..., "after": ...} for the audit trail


async def _accept_or_apply(
    p: Proposal, verb: str, inputs: Mapping[str, str], d: Directory, u: EntraUser | None, c: Config
) -> AuditChange:
    """Write the proposed values to the matched or linked user (accept also links it)."""
    uid = p.app_user_id or ""
    before = await d.get(uid)
    if before is None:
        raise DirectoryNotFound(f"directory user {uid} no longer exists")
    fields = new_values(p.changes)
    if verb == "accept":
        fields |= {"entra_id": p.entra_id, "sync_enabled": True}
    after = await d.update(uid, UserPatch(fields))
    return {"before": before.to_dict(), "after": after.to_dict()}


async def _link(
    p: Proposal, verb: str, inputs: Mapping[str, str], d: Directory, u: EntraUser | None, c: Config
) -> AuditChange:
    """Link the chosen directory user (not linked to anyone else) and copy the mapped
    fields from Entra."""
    target = inputs.get("target", "")
    before = await d.get(target)
    if before is None:
        raise InputError(f"there is no directory user with id {target!r}")
    if before.entra_id not in (None, p.entra_id):
        raise DirectoryConflict(
            f"{before.display_name or target} is already linked to another Entra user"
        )
    fields = new_values(field_changes(u, before, c.mapping)) if u is not None else {}
    fields |= {"entra_id": p.entra_id, "sync_enabled": True}
    after = await d.update(target, UserPatch(fields))
    return {"before": before.to_dict(), "after": after.to_dict()}


async def _create(
    p: Proposal, verb: str, inputs: Mapping[str, str], d: Directory, u: EntraUser | None, c: Config
) -> AuditChange:
    """Create the user, linked; a replay after a crash finds it by its Entra id."""
    existing = await d.find_by_external_id(p.entra_id or "")
    if existing is not None:
        return {"before": None, "after": existing.to_dict()}
    ch = new_values(p.changes)
    created = await d.create(
        NewDirectoryUser(
            first_name=ch.get("first_name"),
            last_name=ch.get("last_name"),
            display_name=ch.get("display_name"),
            email=ch.get("email"),
            phones=tuple(ch.get("phones") or ()),
            tags=tuple(ch.get("tags") or ()),
            entra_id=p.entra_id,
        )
    )
    return {"before": None, "after": created.to_dict()}


async def _remove_sync(
    p: Proposal, verb: str, inputs: Mapping[str, str], d: Directory, u: EntraUser | None, c: Config
) -> AuditChange:
    """Unlink the directory user (it and its data stay)."""
    uid = p.app_user_id or ""
    before = await d.get(uid)
    if before is None:
        return {"before": None, "after": None}
    after = await d.update(uid, UserPatch({"entra_id": None}))
    return {"before": before.to_dict(), "after": after.to_dict()}


async def _delete_user(
    p: Proposal, verb: str, inputs: Mapping[str, str], d: Directory, u: EntraUser | None, c: Config
) -> AuditChange:
    """Delete the directory user (after the admin confirmed)."""
    uid = p.app_user_id or ""
    before = await d.get(uid)
    if before is not None:
        await d.delete(uid)
    return {"before": before.to_dict() if before else None, "after": None}


_APPLY: Mapping[
    str,
    Callable[
        [Proposal, str, Mapping[str, str], Directory, EntraUser | None, Config],
        Awaitable[AuditChange],
    ],
] = {
    "accept": _accept_or_apply,
    "apply": _accept_or_apply,
    "link": _link,
    "create": _create,
    "remove_sync": _remove_sync,
    "delete_user_confirm": _delete_user,
}


async def apply_proposal(
    p: Proposal,
    verb: str,
    inputs: Mapping[str, str],
    directory: Directory,
    entra_user: EntraUser | None,
    config: Config,
) -> dict[str, Any]:
    """Carry out an accepted proposal on the directory. Idempotent: replaying it after a crash
    (the intent was recorded before the write) neither loses nor doubles the change.
    Returns {"before": ..., "after": ...} for the audit trail."""
    step = _APPLY.get(verb)
    if step is None:
        raise InputError(f"'{verb}' does not apply to a {p.kind.value} proposal")
    return await step(p, verb, inputs, directory, entra_user, config)
