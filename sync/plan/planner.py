"""The planner: a pure function from (Entra users, directory users, sync state, settings) to a
plan of proposals. No I/O, no clock, no Redis: everything else feeds it or applies its result.

``plan`` applies the rules of DESIGN.md §2 in this order, each in one function whose docstring
is the rule (tests/unit/test_plan_rules.py has a test named after each):

1. scope      ``_scope_cause``        who takes part at all
2. numbers    ``entra_phones``        every number as E.164, in order, once
3. links      ``_synced_links``       which directory user syncs which Entra user
4. updates    ``_update``             a linked user whose mapped fields differ
5. removals   ``_removal``            a linked user deleted, disabled or out of scope
6. conflicts  ``_conflicts``          a number shared by unlinked Entra users, never a pick
7. match      ``_find_match``         phone, then e-mail/UPN, in the configured order
8. new        ``_new_user``           an unmatched user, offered for creation (never automatic)
9. guard      ``_guard``              too many removals are held back as one blocked entry

The proposals come out by kind (``KIND_ORDER``), then label (case-insensitive), then id.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sync.config import Config, GuardSettings, MappingSettings, ScopeSettings
from sync.models import (
    Blocked,
    Change,
    DirectoryUser,
    EntraSnapshot,
    EntraUser,
    Kind,
    Plan,
    Proposal,
    StateView,
)
from sync.plan.mapping import clean, field_changes
from sync.plan.phones import normalize

KIND_ORDER = {Kind.CONFLICT: 0, Kind.MATCH: 1, Kind.UPDATE: 2, Kind.REMOVAL: 3, Kind.NEW: 4}

# (E.164 number, the Entra attribute it was read from)
Numbers = tuple[tuple[str, str], ...]

_REMOVAL_REASON = {
    "deleted": "deleted in Entra (or no longer readable)",
    "soft_deleted": "deleted in Entra (restorable from the deleted users for 30 days)",
    "disabled": "the account is disabled in Entra",
    "out_of_scope": "no longer in the sync scope (the selected groups or the scope filter)",
    "no_phone": "no longer has a phone number in Entra (mobilePhone or businessPhones)",
}


@dataclass(frozen=True, slots=True)
class _Entra:
    """An Entra user with its numbers (``entra_phones``)."""

    user: EntraUser
    phones: Numbers


@dataclass(frozen=True, slots=True)
class _Unlinked:
    """The directory users a match may link: unlinked and active, by each of their numbers
    (E.164) and by their e-mail address (lower case), in directory order."""

    by_phone: Mapping[str, list[DirectoryUser]]
    by_email: Mapping[str, list[DirectoryUser]]


@dataclass(frozen=True, slots=True)
class _Conflicts:
    """What the conflict rule decided: the conflict proposals, the Entra users they hold
    back, and per shared number the only Entra user that may match by it (None: nobody)."""

    proposals: list[Proposal]
    held: set[str]
    reserved: dict[str, str | None]


# --- 1. scope ---------------------------------------------------------------------------------


def _scope_cause(
    user: EntraUser, phones: Numbers, members: frozenset[str] | None, scope: ScopeSettings
) -> str | None:
    """Scope: a user takes part when its account is enabled (unless ``enabled_only`` is off),
    it is a member of the selected groups (nested; ``members`` is None for "all users"), and
    it has a number (unless ``require_phone`` is off). None when in scope, else why not:
    "disabled", "out_of_scope" or "no_phone", checked in that order."""
    if scope.enabled_only and not user.enabled:
        return "disabled"
    if members is not None and user.id not in members:
        return "out_of_scope"
    if scope.require_phone and not phones:
        return "no_phone"
    return None


def scope_cause(user: EntraUser, snapshot: EntraSnapshot, config: Config) -> str | None:
    """``_scope_cause`` of one user of ``snapshot``."""
    phones = entra_phones(user, config.matching.default_region)
    return _scope_cause(user, phones, snapshot.group_members, config.scope)


# --- 2. numbers -------------------------------------------------------------------------------


def entra_phones(user: EntraUser, region: str) -> Numbers:
    """Numbers: mobilePhone and every businessPhones entry, as E.164 with the default region
    (``normalize``); what is no possible number is left out; each number once, with the first
    attribute it was read from, in that order."""
    seen: dict[str, str] = {}
    for source, raw in user.raw_phones:
        e164 = normalize(raw, region)
        if e164 is not None and e164 not in seen:
            seen[e164] = source
    return tuple(seen.items())


def read_numbers(users: Iterable[EntraUser], region: str) -> None:
    """Parses the users' numbers into ``normalize``'s cache. A full read calls it for each
    page while Graph prepares the next one, so the plan after the read finds every number
    parsed: ~25 µs a number with phonenumbers, 2.5 s of a 100,000-user plan otherwise."""
    for user in users:
        entra_phones(user, region)


def directory_phones(d: DirectoryUser, region: str) -> set[str]:
    """A directory user's numbers as E.164 (those that are possible numbers)."""
    return {e for e in (normalize(p, region) for p in d.phones) if e is not None}


# --- 3. links ---------------------------------------------------------------------------------


def _synced_links(directory: Sequence[DirectoryUser]) -> tuple[list[DirectoryUser], set[str]]:
    """Links: a directory user with an ``entra_id`` is linked to that Entra user; when several
    are linked to one, the first (in directory order) is the link. A link whose sync switch is
    off keeps the link but gets no update and no removal. Returns the links that sync, in
    directory order, and every linked Entra id."""
    linked: set[str] = set()
    synced: list[DirectoryUser] = []
    for d in directory:
        if d.entra_id is None or d.entra_id in linked:
            continue
        linked.add(d.entra_id)
        if d.sync_enabled:
            synced.append(d)
    return synced, linked


# --- 4. updates -------------------------------------------------------------------------------


def _update(user: EntraUser, d: DirectoryUser, mapping: MappingSettings) -> Proposal | None:
    """Updates: a linked, in-scope user whose mapped fields differ from the directory's gets
    an update with those fields (``field_changes``); None when they are in step."""
    changes = field_changes(user, d, mapping)
    if not changes:
        return None
    label = entra_label(user)
    return Proposal(
        kind=Kind.UPDATE,
        entra_id=user.id,
        app_user_id=d.id,
        reason=f"{label}: {', '.join(sorted(changes))} changed in Entra",
        changes=changes,
        label=label,
        app_label=_dir_label(d),
    )


# --- 5. removals ------------------------------------------------------------------------------


def _removal(
    d: DirectoryUser, user: EntraUser | None, cause: str, until: datetime | None = None
) -> Proposal:
    """Removals: a linked user that is no longer read (``cause`` "deleted"; "soft_deleted"
    while Entra can restore it, ``until`` when), or is out of scope (its scope cause), gets a
    removal of its directory user, saying why."""
    label = entra_label(user) if user is not None else _dir_label(d)
    return Proposal(
        restorable_until=until,
        kind=Kind.REMOVAL,
        entra_id=d.entra_id,
        app_user_id=d.id,
        reason=f"{label}: {_REMOVAL_REASON[cause]}",
        removal_cause=cause,
        label=label,
        app_label=_dir_label(d),
    )


def _link_outcome(
    d: DirectoryUser,
    entra: Mapping[str, _Entra],
    causes: Mapping[str, str | None],
    mapping: MappingSettings,
    soft_deleted: Mapping[str, datetime],
) -> Proposal | None:
    """The update or the removal of the link ``d``, or None when it is in step."""
    assert d.entra_id is not None
    known = entra.get(d.entra_id)
    if known is None:
        until = soft_deleted.get(d.entra_id)
        return _removal(d, None, "deleted" if until is None else "soft_deleted", until)
    cause = causes[d.entra_id]
    if cause is not None:
        return _removal(d, known.user, cause)
    return _update(known.user, d, mapping)


# --- 6. conflicts -----------------------------------------------------------------------------


def _unlinked_directory(directory: Sequence[DirectoryUser], region: str) -> _Unlinked:
    """Only unlinked, active directory users are candidates for a match."""
    by_phone: dict[str, list[DirectoryUser]] = defaultdict(list)
    by_email: dict[str, list[DirectoryUser]] = defaultdict(list)
    for d in directory:
        if d.entra_id is not None or not d.active:
            continue
        for e164 in directory_phones(d, region):
            by_phone[e164].append(d)
        if d.email:
            by_email[d.email.strip().lower()].append(d)
    return _Unlinked(dict(by_phone), dict(by_email))


def _conflicts(
    candidates: Sequence[_Entra], unlinked: _Unlinked, owners: Mapping[str, str]
) -> _Conflicts:
    """Conflicts: a number that two or more unlinked Entra users have and an unlinked
    directory user holds is never picked silently. Until an admin chooses its owner (one of
    those users, ``owners``), it is one conflict proposal and none of those users is matched
    or offered as new; once chosen, only the owner may match by it (the others go on to their
    other numbers and e-mail)."""
    holders: dict[str, list[str]] = defaultdict(list)
    for c in candidates:
        for e164, _source in c.phones:
            if e164 in unlinked.by_phone:
                holders[e164].append(c.user.id)
    users = {c.user.id: c.user for c in candidates}
    out = _Conflicts([], set(), {})
    for number, ids in sorted(holders.items()):
        if len(ids) < 2:
            continue
        ids = sorted(ids)
        owner = owners.get(number)
        if owner in ids:
            out.reserved[number] = owner
            continue
        out.reserved[number] = None
        out.held.update(ids)
        out.proposals.append(_conflict(number, [users[i] for i in ids], unlinked.by_phone[number]))
    return out


def _conflict(number: str, users: list[EntraUser], holders: list[DirectoryUser]) -> Proposal:
    """The conflict proposal of ``number``, shared by ``users`` (by id) and held by
    ``holders``: it names the directory user when exactly one holds the number."""
    labels = tuple(entra_label(u) for u in users)
    holder = holders[0] if len(holders) == 1 else None
    return Proposal(
        kind=Kind.CONFLICT,
        entra_id=None,
        app_user_id=holder.id if holder is not None else None,
        reason=(
            f"{len(users)} Entra users have the number {number}: {', '.join(labels)}; "
            "choose the owner"
        ),
        entra_ids=tuple(u.id for u in users),
        entra_labels=labels,
        number=number,
        label=number,
        app_label=_dir_label(holder) if holder is not None else "",
    )


# --- 7. match ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Found:
    """A directory user a candidate matches, by which key and value, and why (for people)."""

    d: DirectoryUser
    key: str
    value: str
    why: str


def _find_match(
    c: _Entra,
    keys: Iterable[str],
    unlinked: _Unlinked,
    reserved: Mapping[str, str | None],
    claimed: set[str],
) -> _Found | None:
    """Match: the keys are tried in the configured order (phone: each number in order, then
    e-mail: mail, then userPrincipalName, case-insensitive); the first value that leads to
    exactly one unlinked directory user not yet claimed by another match is the match. A
    number held by two or more directory users matches nobody; a conflicted number only its
    chosen owner."""
    uid = c.user.id
    for key in keys:
        if key == "phone":
            for e164, source in c.phones:
                if e164 in reserved and reserved[e164] != uid:
                    continue
                d = _only_unclaimed(unlinked.by_phone.get(e164, ()), claimed)
                if d is not None:
                    return _Found(d, "phone", e164, f"phone {e164} ({source})")
        else:
            for email in c.user.emails:
                d = _only_unclaimed(unlinked.by_email.get(email, ()), claimed)
                if d is not None:
                    return _Found(d, "email", email, f"e-mail {email}")
    return None


def _only_unclaimed(holders: Iterable[DirectoryUser], claimed: set[str]) -> DirectoryUser | None:
    """The one directory user of ``holders`` not in ``claimed``, or None (none or several)."""
    free = [d for d in holders if d.id not in claimed]
    return free[0] if len(free) == 1 else None


def _match(user: EntraUser, found: _Found, mapping: MappingSettings) -> Proposal:
    """The match proposal: link ``found.d`` to ``user``, with the field changes that brings."""
    label = entra_label(user)
    return Proposal(
        kind=Kind.MATCH,
        entra_id=user.id,
        app_user_id=found.d.id,
        reason=f"{label} matches {_dir_label(found.d)} by {found.why}",
        changes=field_changes(user, found.d, mapping),
        match_key=found.key,
        match_value=found.value,
        label=label,
        app_label=_dir_label(found.d),
    )


# --- 8. new -----------------------------------------------------------------------------------


def new_user_phones(user_id: str, phones: Numbers, owners: Mapping[str, str]) -> tuple[str, ...]:
    """The numbers a new user is created with: its own, less each shared number an admin gave
    to another user (``owners``: number -> owner), so a conflict's loser never gets the
    number it lost."""
    return tuple(e for e, _ in phones if owners.get(e, user_id) == user_id)


def _new_user(c: _Entra, mapping: MappingSettings, owners: Mapping[str, str]) -> Proposal:
    """New: an in-scope, unlinked user that matches nobody is offered for creation with the
    mapped fields it has and its numbers (``new_user_phones``: not the ones it lost in a
    conflict); nothing is ever created without an admin."""
    changes = field_changes(c.user, None, mapping)
    phones = new_user_phones(c.user.id, c.phones, owners)
    if phones:
        changes["phones"] = Change(None, phones)
    label = entra_label(c.user)
    return Proposal(
        kind=Kind.NEW,
        entra_id=c.user.id,
        app_user_id=None,
        reason=f"{label} has no matching directory user (no shared number or e-mail)",
        changes=changes,
        label=label,
    )


def _match_or_new(
    candidates: Sequence[_Entra],
    unlinked: _Unlinked,
    conflicts: _Conflicts,
    config: Config,
    owners: Mapping[str, str],
) -> list[Proposal]:
    """Each candidate not held back by a conflict, in Entra id order, gets a match or is new
    (without the numbers it lost to an owner); a directory user is claimed by the first
    candidate that matches it."""
    claimed: set[str] = set()
    out: list[Proposal] = []
    for c in candidates:
        if c.user.id in conflicts.held:
            continue
        found = _find_match(c, config.matching.keys, unlinked, conflicts.reserved, claimed)
        if found is None:
            out.append(_new_user(c, config.mapping, owners))
        else:
            claimed.add(found.d.id)
            out.append(_match(c.user, found, config.mapping))
    return out


# --- 9. guard ---------------------------------------------------------------------------------


def _guard(
    removals: list[Proposal], linked: int, guard: GuardSettings, confirmed: bool
) -> tuple[list[Proposal], tuple[Blocked, ...]]:
    """Guard: more than ``max_removals`` removals, or (two or more and) more than
    ``max_removal_share`` of the ``linked`` users that sync, are held back as one blocked entry
    until an admin confirms this run. Returns the removals to propose and what is blocked."""
    n = len(removals)
    too_many = n > guard.max_removals
    too_large = n >= 2 and n > guard.max_removal_share * linked
    if not (too_many or too_large) or confirmed:
        return removals, ()
    reason = (
        f"this run would remove {n} of {linked} linked users "
        f"(guard: at most {guard.max_removals} or {guard.max_removal_share:.0%}); "
        "confirm to propose them"
    )
    return [], (Blocked(reason=reason, count=n, proposals=tuple(removals)),)


# --- the plan ---------------------------------------------------------------------------------


def plan(
    snapshot: EntraSnapshot,
    directory: Sequence[DirectoryUser],
    state: StateView,
    config: Config,
) -> Plan:
    """The plan of one sync: the rules above, in order. Ignored Entra users give no proposal.
    A read that was not complete (``snapshot.complete`` False) never gives a removal. When an
    Entra id is read twice, the later record counts. Counters: ``synced`` linked users in
    step, ``syncable`` those plus the ones waiting for an update plus the matches."""
    region = config.matching.default_region
    entra: dict[str, _Entra] = {}
    for user in snapshot.users:
        entra[user.id] = _Entra(user, entra_phones(user, region))
    causes = {
        uid: _scope_cause(e.user, e.phones, snapshot.group_members, config.scope)
        for uid, e in entra.items()
    }

    links, linked_ids = _synced_links(directory)
    outcomes = [
        _link_outcome(d, entra, causes, config.mapping, snapshot.soft_deleted)
        for d in links
        if d.entra_id not in state.ignored
    ]
    updates = [p for p in outcomes if p is not None and p.kind is Kind.UPDATE]
    removals = [p for p in outcomes if p is not None and p.kind is Kind.REMOVAL]
    synced = outcomes.count(None)

    candidates = [
        entra[uid]
        for uid in sorted(entra)
        if causes[uid] is None and uid not in linked_ids and uid not in state.ignored
    ]
    unlinked = _unlinked_directory(directory, region)
    conflicts = _conflicts(candidates, unlinked, state.number_owners)
    matched_or_new = _match_or_new(candidates, unlinked, conflicts, config, state.number_owners)

    proposed, blocked = _guard(
        removals if snapshot.complete else [],
        len(links),
        config.guard,
        state.removals_confirmed,
    )
    proposals = [*conflicts.proposals, *updates, *matched_or_new, *proposed]
    proposals.sort(key=lambda p: (KIND_ORDER[p.kind], p.label.lower(), p.id))
    matches = sum(1 for p in matched_or_new if p.kind is Kind.MATCH)
    return Plan(
        proposals=tuple(proposals),
        blocked=blocked,
        synced=synced,
        syncable=synced + len(updates) + matches,
    )


def entra_label(u: EntraUser) -> str:
    """A display name for reasons and cards: ``<...>`` removed like any mapped value."""
    return clean(u.label) or u.id


def _dir_label(d: DirectoryUser) -> str:
    """A directory user's name for reasons and cards: the display name, else first and last
    name, else the e-mail address, else the id."""
    name = d.display_name or " ".join(x for x in (d.first_name, d.last_name) if x)
    return name or d.email or d.id


def auto_applicable(p: Plan, *, scheduled: bool) -> list[Proposal]:
    """What the schedule policy may apply without an admin: in scheduled mode, updates of
    already-linked users; never a creation, a link, a removal or a conflict."""
    if not scheduled:
        return []
    return [x for x in p.proposals if x.kind is Kind.UPDATE]
