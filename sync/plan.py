"""The planner: a pure function from (Entra users, directory users, sync state, settings) to a
plan of proposals. No I/O, no clock, no Redis: everything else feeds it or applies its result.

Rules (DESIGN.md §2), each with a test named after it in tests/unit/test_plan_rules.py:

Scope    enabled accounts only (configurable); only users with a number (configurable);
         all users or members of selected groups (nested, resolved by the reader); ignored
         users give no proposal.
Matching phone (E.164, mobilePhone and every businessPhones) then e-mail/UPN, in the order
         configured; only unlinked directory users are candidates; each match records why;
         a number shared by two or more unlinked Entra users and held by an unlinked directory
         user is a conflict (never a silent pick) until an admin names the owner; nothing is
         ever created automatically.
Changes  linked users whose mapped fields differ give an `update`; a linked user deleted,
         disabled or gone out of scope gives a `removal`; the per-user sync switch turns both
         off; a read that was not complete never gives a removal; more removals than the guard
         allows are held back as one `blocked` entry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

from sync.config import Config, MappingSettings
from sync.mapping import clean, field_changes
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
from sync.phones import normalize

KIND_ORDER = {Kind.CONFLICT: 0, Kind.MATCH: 1, Kind.UPDATE: 2, Kind.REMOVAL: 3, Kind.NEW: 4}


@dataclass(frozen=True, slots=True)
class _Entra:
    user: EntraUser
    phones: tuple[tuple[str, str], ...]  # (E.164, source attribute), in order, unique numbers


@dataclass(slots=True)
class PlanCache:
    """A memo of per-user derived values between plans (the service keeps one per tenant and
    directory): E.164 numbers, update and new-user proposals, the numbers of directory
    users. An entry is used only while it was computed from the very same record objects (``is``),
    so changed users are recomputed; entries are computed with one region and mapping and
    dropped when those change. ``plan`` with a cache returns what it returns without one."""

    settings: tuple[str, object] | None = None
    # Entra id -> (user, E.164 phones)
    entra: dict[str, tuple[EntraUser, tuple[tuple[str, str], ...]]] = field(default_factory=dict)
    # directory user id -> (directory user, its numbers as E.164)
    dir_phones: dict[str, tuple[DirectoryUser, frozenset[str]]] = field(default_factory=dict)
    # directory user id -> (directory user, Entra user, the update or None when in step)
    linked: dict[str, tuple[DirectoryUser, EntraUser, Proposal | None]] = field(
        default_factory=dict
    )
    # Entra id -> (user, the new-user proposal)
    new: dict[str, tuple[EntraUser, Proposal]] = field(default_factory=dict)
    # Entra id -> (user, directory user, key, value, why, the match proposal)
    match: dict[str, tuple[EntraUser, DirectoryUser, str, str, str, Proposal]] = field(
        default_factory=dict
    )
    # directory user id -> (directory user, Entra user or None, cause, the removal proposal)
    removal: dict[str, tuple[DirectoryUser, EntraUser | None, str, Proposal]] = field(
        default_factory=dict
    )

    def begin(self, region: str, mapping: object) -> None:
        if self.settings is None or self.settings[0] != region or self.settings[1] is not mapping:
            self.settings = (region, mapping)
            self.entra, self.dir_phones, self.linked, self.new, self.match = {}, {}, {}, {}, {}
            self.removal = {}


def entra_phones(user: EntraUser, region: str) -> tuple[tuple[str, str], ...]:
    """(E.164, source attribute) of the user's possible numbers, in order, each number once."""
    attrs = user.attrs
    if not attrs.get("businessPhones"):  # most users: a mobile number or none (same result)
        mobile = attrs.get("mobilePhone")
        e = normalize(mobile, region) if isinstance(mobile, str) else None
        return ((e, "mobilePhone"),) if e is not None else ()
    seen: dict[str, str] = {}
    for source, raw in user.raw_phones:
        e164 = normalize(raw, region)
        if e164 is not None and e164 not in seen:
            seen[e164] = source
    return tuple(seen.items())


def is_clean(text: str) -> bool:
    """True when ``clean(text) == text`` is certain: non-empty, no ``<``, and no whitespace but
    single inner ASCII spaces (``str.isprintable`` is False for every other whitespace
    character that ``str.split`` splits on; checked for every code point in the tests)."""
    return (
        text != ""
        and text.isprintable()
        and "<" not in text
        and "  " not in text
        and text[0] != " "
        and text[-1] != " "
    )


class InStep:
    """A cheap, sure "no field changes" test for linked users, for mappings of top-level
    attributes without tags (else ``None`` from ``for_mapping``): the mapped Entra values equal
    the directory's, and each is empty or a clean string (``is_clean``). False means "not
    sure": the caller runs ``field_changes``."""

    __slots__ = ("_dir", "_entra", "_pairs")

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self._pairs = pairs
        names = [f for f, _ in pairs]
        attrs = [a for _, a in pairs]
        # itemgetter/attrgetter of one name return the value, of several a tuple: always tuples
        self._entra = itemgetter(*attrs, *attrs[:1]) if len(attrs) == 1 else itemgetter(*attrs)
        self._dir = attrgetter(*names, *names[:1]) if len(names) == 1 else attrgetter(*names)

    @classmethod
    def for_mapping(cls, mapping: MappingSettings) -> InStep | None:
        if not mapping.fields or mapping.tags is not None:
            return None
        if any("." in a for a in mapping.fields.values()):
            return None
        return cls(tuple(mapping.fields.items()))

    def __call__(self, attrs: Mapping[str, Any], d: DirectoryUser) -> bool:
        try:
            raw = self._entra(attrs)
        except KeyError:  # an attribute left out (snapshots drop nulls): field by field
            return self._slow(attrs, d)
        if raw != self._dir(d):
            return False
        if None in raw:
            return self._slow(attrs, d)
        try:
            joined = "|".join(raw)
        except TypeError:  # not all strings
            return False
        # every value is clean <=> the joined text has no "<", no non-printable character, no
        # double space and no space next to a separator or at either end ("" values are fine:
        # equal to the directory's "" means no change)
        return (
            joined.isprintable()
            and "<" not in joined
            and "  " not in joined
            and " |" not in joined
            and "| " not in joined
            and joined[:1] != " "
            and joined[-1:] != " "
        )

    def _slow(self, attrs: Mapping[str, Any], d: DirectoryUser) -> bool:
        for name, attr in self._pairs:
            raw = attrs.get(attr)
            cur = getattr(d, name)
            if raw is None or raw == "":
                if cur:
                    return False
            elif raw != cur or type(raw) is not str or not is_clean(raw):
                return False
        return True


def scope_cause(u: _Entra, snapshot: EntraSnapshot, config: Config) -> str | None:
    """None when the user is in scope, else why not: disabled / out_of_scope / no_phone."""
    s = config.scope
    return _cause(u.user, u.phones, snapshot.group_members, s.enabled_only, s.require_phone)


def _cause(
    user: EntraUser,
    phones: tuple[tuple[str, str], ...],
    members: frozenset[str] | None,
    enabled_only: bool,
    require_phone: bool,
) -> str | None:
    """``scope_cause`` with the settings unpacked (the planner calls it for every user)."""
    if enabled_only and not user.enabled:
        return "disabled"
    if members is not None and user.id not in members:
        return "out_of_scope"
    if require_phone and not phones:
        return "no_phone"
    return None


_REMOVAL_REASON = {
    "deleted": "deleted in Entra (or no longer readable)",
    "disabled": "the account is disabled in Entra",
    "out_of_scope": "no longer a member of the selected groups",
    "no_phone": "no longer has a phone number in Entra (mobilePhone or businessPhones)",
}


def _dir_phones(d: DirectoryUser, region: str) -> frozenset[str]:
    out = set()
    for p in d.phones:
        e = normalize(p, region)
        if e is not None:
            out.add(e)
    return frozenset(out)


class _Memo:
    """The cache's view for one plan: hits come from the old entries, and every entry used is
    carried into new dicts (users no longer present drop out, and their records are freed)."""

    __slots__ = ("cache", "dir_phones", "entra", "linked", "match", "new", "removal")

    def __init__(self, cache: PlanCache | None) -> None:
        self.cache = cache
        self.entra: dict[str, Any] = {}
        self.dir_phones: dict[str, Any] = {}
        self.linked: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        self.match: dict[str, Any] = {}
        self.removal: dict[str, Any] = {}

    def done(self) -> None:
        c = self.cache
        if c is not None:
            c.entra, c.dir_phones, c.linked = self.entra, self.dir_phones, self.linked
            c.new, c.match, c.removal = self.new, self.match, self.removal


def plan(
    snapshot: EntraSnapshot,
    directory: Sequence[DirectoryUser],
    state: StateView,
    config: Config,
    cache: PlanCache | None = None,
) -> Plan:
    """The plan (module docstring). ``cache`` (optional) only memoises derived values between
    calls; the result is the same with or without it."""
    region = config.matching.default_region
    mapping = config.mapping
    proposals: list[Proposal] = []
    if cache is not None:
        cache.begin(region, mapping)
    memo = _Memo(cache)
    old_entra = cache.entra if cache is not None else {}
    same = InStep.for_mapping(mapping)
    labels: dict[str, str] = {}

    def label_of(user: EntraUser) -> str:
        """entra_label, computed only for users a proposal names."""
        lab = labels.get(user.id)
        if lab is None:
            lab = labels[user.id] = entra_label(user)
        return lab

    # Entra users with their E.164 numbers, and their scope; a later record with the same id
    # replaces an earlier one
    enabled_only = config.scope.enabled_only
    require_phone = config.scope.require_phone
    members = snapshot.group_members
    # the memo's dict is the plan's own (users of this snapshot only)
    entra: dict[str, tuple[EntraUser, tuple[tuple[str, str], ...]]] = memo.entra
    in_scope: dict[str, tuple[EntraUser, tuple[tuple[str, str], ...]]] = {}
    causes: dict[str, str] = {}
    for user in snapshot.users:
        uid = user.id
        hit = old_entra.get(uid)
        pair = hit if hit is not None and hit[0] is user else (user, entra_phones(user, region))
        if uid in entra:
            in_scope.pop(uid, None)
            causes.pop(uid, None)
        entra[uid] = pair
        cause = _cause(user, pair[1], members, enabled_only, require_phone)
        if cause is None:
            in_scope[uid] = pair
        else:
            causes[uid] = cause

    # --- linked directory users: updates and removals ---------------------------------------
    ignored = state.ignored
    linked_ids: set[str] = set()
    removals: list[Proposal] = []
    synced = syncable = linked_count = 0
    for d in directory:
        eid = d.entra_id
        if eid is None or eid in linked_ids:
            continue  # a second directory user linked to the same Entra user: keep the first
        linked_ids.add(eid)
        if not d.sync_enabled:
            continue
        linked_count += 1
        cur = in_scope.get(eid)
        if cur is None or eid in ignored:
            if eid in ignored:
                continue
            cause = causes.get(eid, "deleted")
            known = entra.get(eid)
            gone = known[0] if known is not None else None
            rhit = cache.removal.get(d.id) if cache is not None else None
            if rhit is not None and rhit[0] is d and rhit[1] is gone and rhit[2] == cause:
                removal = rhit[3]
            else:
                label = label_of(gone) if gone is not None else _dir_label(d)
                removal = Proposal(
                    kind=Kind.REMOVAL,
                    entra_id=eid,
                    app_user_id=d.id,
                    reason=f"{label}: {_REMOVAL_REASON[cause]}",
                    removal_cause=cause,
                    label=label,
                    app_label=_dir_label(d),
                )
            memo.removal[d.id] = (d, gone, cause, removal)
            removals.append(removal)
            continue
        syncable += 1
        user = cur[0]
        lhit = cache.linked.get(d.id) if cache is not None else None
        if lhit is not None and lhit[0] is d and lhit[1] is user:
            update = lhit[2]
        elif same is not None and same(user.attrs, d):
            update = None
        else:
            update = None
            changes = field_changes(user, d, mapping)
            if changes:
                label = label_of(user)
                update = Proposal(
                    kind=Kind.UPDATE,
                    entra_id=eid,
                    app_user_id=d.id,
                    reason=f"{label}: {', '.join(sorted(changes))} changed in Entra",
                    changes=changes,
                    label=label,
                    app_label=_dir_label(d),
                )
        memo.linked[d.id] = (d, user, update)
        if update is not None:
            proposals.append(update)
        else:
            synced += 1

    # --- unlinked Entra users: conflicts, matches, new -----------------------------------
    # filter, then sort the (few) ids: not every in-scope user
    candidates = [
        _Entra(*in_scope[uid])
        for uid in sorted(
            uid for uid in in_scope if uid not in linked_ids and uid not in state.ignored
        )
    ]
    free_dir = [d for d in directory if d.entra_id is None and d.active]
    by_phone: dict[str, list[DirectoryUser]] = defaultdict(list)
    by_email: dict[str, list[DirectoryUser]] = defaultdict(list)
    for d in free_dir:
        phit = cache.dir_phones.get(d.id) if cache is not None else None
        numbers = phit[1] if phit is not None and phit[0] is d else _dir_phones(d, region)
        memo.dir_phones[d.id] = (d, numbers)
        for e in numbers:
            by_phone[e].append(d)
        if d.email:
            by_email[d.email.strip().lower()].append(d)

    holders: dict[str, list[_Entra]] = defaultdict(list)
    for u in candidates:
        for e164, _src in u.phones:
            holders[e164].append(u)

    in_conflict: set[str] = set()
    blocked_numbers: dict[str, str | None] = {}  # number -> the only Entra id allowed to use it
    for number, users in sorted(holders.items()):
        if len(users) < 2 or number not in by_phone:
            continue
        owner = state.number_owners.get(number)
        ids = sorted(u.user.id for u in users)
        if owner in ids:
            blocked_numbers[number] = owner
            continue
        blocked_numbers[number] = None
        in_conflict.update(ids)
        holder = by_phone[number][0]
        names = ", ".join(label_of(entra[i][0]) for i in ids)
        proposals.append(
            Proposal(
                kind=Kind.CONFLICT,
                entra_id=None,
                app_user_id=holder.id if len(by_phone[number]) == 1 else None,
                reason=(
                    f"{len(ids)} Entra users have the number {number}: {names}; choose the owner"
                ),
                entra_ids=tuple(ids),
                entra_labels=tuple(label_of(entra[i][0]) for i in ids),
                number=number,
                label=number,
                app_label=_dir_label(holder) if len(by_phone[number]) == 1 else "",
            )
        )

    claimed: dict[str, str] = {}  # directory user id -> Entra id that matched it
    for u in candidates:
        if u.user.id in in_conflict:
            continue
        found = _find_match(u, config, by_phone, by_email, blocked_numbers, claimed)
        uid = u.user.id
        if found is not None:
            d, key, value, why = found
            claimed[d.id] = uid
            syncable += 1
            mhit = cache.match.get(uid) if cache is not None else None
            if (
                mhit is not None
                and mhit[0] is u.user
                and mhit[1] is d
                and mhit[2:5] == (key, value, why)
            ):
                match = mhit[5]
            else:
                label = label_of(u.user)
                match = Proposal(
                    kind=Kind.MATCH,
                    entra_id=uid,
                    app_user_id=d.id,
                    reason=f"{label} matches {_dir_label(d)} by {why}",
                    changes=field_changes(u.user, d, mapping),
                    match_key=key,
                    match_value=value,
                    label=label,
                    app_label=_dir_label(d),
                )
            memo.match[uid] = (u.user, d, key, value, why, match)
            proposals.append(match)
            continue
        nhit = cache.new.get(uid) if cache is not None else None
        if nhit is not None and nhit[0] is u.user:
            new = nhit[1]
        else:
            changes = field_changes(u.user, None, mapping)
            if u.phones:
                changes["phones"] = Change(None, tuple(e for e, _ in u.phones))
            label = label_of(u.user)
            new = Proposal(
                kind=Kind.NEW,
                entra_id=uid,
                app_user_id=None,
                reason=f"{label} has no matching directory user (no shared number or e-mail)",
                changes=changes,
                label=label,
            )
        memo.new[uid] = (u.user, new)
        proposals.append(new)

    # --- removals and the guard -----------------------------------------------------------
    blocked: list[Blocked] = []
    if not snapshot.complete:
        removals = []  # a partial read never removes anyone
    if removals:
        guard = config.guard
        too_many = len(removals) > guard.max_removals
        too_large = len(removals) >= 2 and len(removals) > guard.max_removal_share * linked_count
        if (too_many or too_large) and not state.removals_confirmed:
            blocked.append(
                Blocked(
                    reason=(
                        f"this run would remove {len(removals)} of {linked_count} linked users "
                        f"(guard: at most {guard.max_removals} or "
                        f"{guard.max_removal_share:.0%}); confirm to propose them"
                    ),
                    count=len(removals),
                    proposals=tuple(removals),
                )
            )
            removals = []
    proposals.extend(removals)
    memo.done()
    proposals.sort(key=lambda p: (KIND_ORDER[p.kind], p.label.lower(), p.id))
    return Plan(
        proposals=tuple(proposals), blocked=tuple(blocked), synced=synced, syncable=syncable
    )


def entra_label(u: EntraUser) -> str:
    """A display name for reasons and cards: ``<...>`` removed like any mapped value."""
    return clean(u.label) or u.id


def _dir_label(d: DirectoryUser) -> str:
    name = d.display_name or " ".join(x for x in (d.first_name, d.last_name) if x)
    return name or d.email or d.id


def _find_match(
    u: _Entra,
    config: Config,
    by_phone: dict[str, list[DirectoryUser]],
    by_email: dict[str, list[DirectoryUser]],
    blocked_numbers: dict[str, str | None],
    claimed: dict[str, str],
) -> tuple[DirectoryUser, str, str, str] | None:
    for key in config.matching.keys:
        if key == "phone":
            for e164, source in u.phones:
                if e164 in blocked_numbers and blocked_numbers[e164] != u.user.id:
                    continue
                hits = [d for d in by_phone.get(e164, ()) if d.id not in claimed]
                if len(hits) == 1:
                    return hits[0], "phone", e164, f"phone {e164} ({source})"
        else:
            for email in u.user.emails:
                hits = [d for d in by_email.get(email, ()) if d.id not in claimed]
                if len(hits) == 1:
                    return hits[0], "email", email, f"e-mail {email}"
    return None


def auto_applicable(p: Plan, *, scheduled: bool) -> list[Proposal]:
    """What the schedule policy may apply without an admin: in scheduled mode, updates of
    already-linked users; never a creation, a link, a removal or a conflict."""
    if not scheduled:
        return []
    return [x for x in p.proposals if x.kind is Kind.UPDATE]
