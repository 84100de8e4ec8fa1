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
    same_objects,
)
from sync.plan.mapping import clean, field_changes
from sync.plan.phones import normalize

KIND_ORDER = {Kind.CONFLICT: 0, Kind.MATCH: 1, Kind.UPDATE: 2, Kind.REMOVAL: 3, Kind.NEW: 4}


@dataclass(slots=True)
class PlanCache:
    """A memo of per-user derived values between plans (the service keeps one per tenant and
    directory): E.164 numbers, update and new-user proposals, the numbers of directory
    users. An entry is used only while it was computed from the very same record objects (``is``),
    so changed users are recomputed; entries are computed with one region and mapping and
    dropped when those change. It also keeps the last plan's ``_World``, from which the next
    plan over the same directory objects, state and config re-derives only the changed Entra
    users (``last_mode`` says "incremental"; else "full"). ``plan`` with a cache returns what
    it returns without one."""

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

    # what the last plan derived, for an incremental next plan; and how that plan was made
    world: _World | None = None
    last_mode: str = ""

    def begin(self, region: str, mapping: object) -> None:
        if self.settings is None or self.settings[0] != region or self.settings[1] is not mapping:
            self.settings = (region, mapping)
            self.entra, self.dir_phones, self.linked, self.new, self.match = {}, {}, {}, {}, {}
            self.removal = {}
            self.world = None


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


def scope_cause(user: EntraUser, snapshot: EntraSnapshot, config: Config) -> str | None:
    """None when the user is in scope, else why not: disabled / out_of_scope / no_phone."""
    s = config.scope
    phones = entra_phones(user, config.matching.default_region)
    return _cause(user, phones, snapshot.group_members, s.enabled_only, s.require_phone)


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
    carried into new dicts (users no longer present drop out, and their records are freed).
    An incremental plan (``_World``) updates the cache's own dicts in place instead."""

    __slots__ = ("cache", "dir_phones", "entra", "linked", "match", "new", "removal")

    def __init__(self, cache: PlanCache | None, *, in_place: bool = False) -> None:
        self.cache = cache
        self.entra: dict[str, Any] = {}
        self.dir_phones: dict[str, Any] = {}
        self.linked: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        self.match: dict[str, Any] = {}
        self.removal: dict[str, Any] = {}
        if in_place and cache is not None:
            self.entra, self.dir_phones = cache.entra, cache.dir_phones
            self.linked, self.removal = cache.linked, cache.removal
            self.new, self.match = cache.new, cache.match

    def done(self) -> None:
        c = self.cache
        if c is not None:
            c.entra, c.dir_phones, c.linked = self.entra, self.dir_phones, self.linked
            c.new, c.match, c.removal = self.new, self.match, self.removal


_SortKey = tuple[int, str, str]


def _sort_key(p: Proposal) -> _SortKey:
    return (KIND_ORDER[p.kind], p.label.lower(), p.id)


def _sort(proposals: list[Proposal], last: _World | None) -> list[tuple[_SortKey, Proposal]]:
    """The proposals with their keys, by kind, then label, then id (the keys are unique: the
    id is a hash of what the proposal does). With the last plan's order (an incremental plan:
    most proposals are the very same objects), only the new ones get keys and are sorted; the
    two sorted runs are then merged (one linear pass of the sort)."""
    if last is None or not last.order:
        out = [(_sort_key(p), p) for p in proposals]
    else:
        before = last.order
        now = {p.id: p for p in proposals}
        if len(now) != len(proposals):  # an id twice (never seen): sort them all
            return _sort(proposals, None)
        out = [kp for kp in before if now.get(kp[1].id) is kp[1]]
        was = {kp[1].id: kp[1] for kp in before}
        added = [(_sort_key(p), p) for p in proposals if was.get(p.id) is not p]
        added.sort(key=itemgetter(0))
        out += added
    out.sort(key=itemgetter(0))
    return out


# (Entra user, its numbers that unlinked directory users have, its e-mails that they have)
_Reach = tuple[EntraUser, tuple[tuple[str, str], ...], tuple[str, ...]]


@dataclass(slots=True)
class _World:
    """What one plan derived, kept (in the ``PlanCache``) so that the next plan over the same
    directory objects, state and config re-derives only the Entra users that changed: the
    usual delta round, where ~1 % of the users differ. Everything kept here is a function of
    the inputs checked by ``reusable``, of the Entra records (compared by identity), or of
    both; of the candidate section only the contested candidates (see ``_Planner``) run
    through matching and the conflict rule every plan."""

    config: Config
    directory: list[DirectoryUser]
    ignored: frozenset[str]
    owners: dict[str, str]
    confirmed: bool
    members: frozenset[str] | None
    # Entra id -> (user, E.164 phones); the in-scope ones; why the others are out of scope
    entra: dict[str, tuple[EntraUser, tuple[tuple[str, str], ...]]]
    in_scope: dict[str, tuple[EntraUser, tuple[tuple[str, str], ...]]]
    causes: dict[str, str]
    # from the directory alone: every linked Entra id; Entra id -> index of the directory user
    # that syncs it (the first one linked, when its sync switch is on)
    linked_ids: set[str]
    active: dict[str, int]
    by_phone: dict[str, list[DirectoryUser]]
    by_email: dict[str, list[DirectoryUser]]
    # per directory index: the update, the removal, or in step
    updates: dict[int, Proposal] = field(default_factory=dict)
    removals: dict[int, Proposal] = field(default_factory=dict)
    in_step: set[int] = field(default_factory=set)
    # the candidates (see _Planner.candidate): new-user proposals of the lone ones, the
    # proposals of the alone ones (and how many are matches), the contested ids; per
    # candidate that reaches any, the directory user ids it reaches; per directory user id,
    # the candidates that reach it
    lone: dict[str, Proposal] = field(default_factory=dict)
    alone: dict[str, Proposal] = field(default_factory=dict)
    alone_matches: int = 0
    contested: set[str] = field(default_factory=set)
    dreach: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reachers: dict[str, set[str]] = field(default_factory=dict)
    # Entra id -> ``reach`` of its record
    reaches: dict[str, _Reach] = field(default_factory=dict)
    # the planned snapshot's token (``SnapshotDiff.base`` of the next one)
    token: object = None
    # the plan's proposals in their order, with their sort keys
    order: list[tuple[_SortKey, Proposal]] = field(default_factory=list)

    def reusable(
        self,
        directory: Sequence[DirectoryUser],
        state: StateView,
        config: Config,
        members: frozenset[str] | None,
    ) -> bool:
        return (
            config is self.config
            and same_objects(directory, self.directory)
            and state.ignored == self.ignored
            and state.number_owners == self.owners
            and state.removals_confirmed == self.confirmed
            and (members is self.members or members == self.members)
        )

    def diff(self, snapshot: EntraSnapshot) -> tuple[list[EntraUser], list[str]] | None:
        """``changes``, from the snapshot's own ``SnapshotDiff`` when it is relative to the
        snapshot planned last time (no pass over every user)."""
        since = snapshot.since
        if since is None or self.token is None or since.base is not self.token:
            return self.changes(snapshot.users)
        entra = self.entra
        changed = [u for u in since.records.values() if u is not None]
        removed = [uid for uid, u in since.records.items() if u is None and uid in entra]
        added = sum(1 for u in changed if u.id not in entra)
        if len(snapshot.users) != len(entra) + added - len(removed):
            return self.changes(snapshot.users)  # not what it says it is: compare them all
        return changed, removed

    def changes(self, users: Sequence[EntraUser]) -> tuple[list[EntraUser], list[str]] | None:
        """(records that are not the ones planned last time, ids no longer present), or None
        when the snapshot has an id twice (the full plan settles which record counts).
        Records are compared by identity."""
        get = self.entra.get
        changed = [u for u in users if (hit := get(u.id)) is None or hit[0] is not u]
        ids = set(map(attrgetter("id"), users))
        if len(ids) != len(users):
            return None
        entra = self.entra
        added = sum(1 for u in changed if u.id not in entra)
        if len(ids) == len(entra) + added:
            return changed, []
        return changed, list(entra.keys() - ids)

    def reach(self, user: EntraUser, phones: tuple[tuple[str, str], ...]) -> _Reach:
        """The user's numbers and e-mail addresses that some unlinked directory user has (in
        order): the only ones a match or a conflict can come from. Memoised per record."""
        hit = self.reaches.get(user.id)
        if hit is not None and hit[0] is user:
            return hit
        by_phone, by_email = self.by_phone, self.by_email
        r = (
            user,
            tuple(p for p in phones if p[0] in by_phone),
            tuple(e for e in user.emails if e in by_email),
        )
        self.reaches[user.id] = r
        return r


class _Planner:
    """One plan's constants and working state (``plan`` drives it)."""

    def __init__(
        self, snapshot: EntraSnapshot, state: StateView, config: Config, cache: PlanCache | None
    ) -> None:
        self.region = config.matching.default_region
        self.mapping = config.mapping
        self.config = config
        self.state = state
        self.cache = cache
        self.same = InStep.for_mapping(self.mapping)
        self.labels: dict[str, str] = {}
        self.enabled_only = config.scope.enabled_only
        self.require_phone = config.scope.require_phone
        self.members = snapshot.group_members

    def label_of(self, user: EntraUser) -> str:
        """entra_label, computed only for users a proposal names."""
        lab = self.labels.get(user.id)
        if lab is None:
            lab = self.labels[user.id] = entra_label(user)
        return lab

    # --- Entra users with their E.164 numbers, and their scope ----------------------------
    def take_users(
        self, w: _World, users: Sequence[EntraUser], old: Mapping[str, Any], fresh: bool
    ) -> None:
        """Enter records into the world; a later record with the same id replaces an earlier
        one. ``fresh``: the world's dicts start empty (no earlier entry to replace)."""
        region, members = self.region, self.members
        enabled_only, require_phone = self.enabled_only, self.require_phone
        entra, in_scope, causes = w.entra, w.in_scope, w.causes
        for user in users:
            uid = user.id
            hit = old.get(uid)
            pair = hit if hit is not None and hit[0] is user else (user, entra_phones(user, region))
            if not fresh or uid in entra:
                in_scope.pop(uid, None)
                causes.pop(uid, None)
            entra[uid] = pair
            cause = _cause(user, pair[1], members, enabled_only, require_phone)
            if cause is None:
                in_scope[uid] = pair
            else:
                causes[uid] = cause

    # --- linked directory users: updates and removals ---------------------------------------
    def link_outcome(self, w: _World, i: int, d: DirectoryUser, memo: _Memo) -> None:
        """The outcome for the i-th directory user, which syncs Entra user ``d.entra_id`` (its
        earlier outcome already taken away)."""
        eid = d.entra_id
        assert eid is not None
        if eid in w.ignored:
            return
        cache = self.cache
        cur = w.in_scope.get(eid)
        if cur is None:
            cause = w.causes.get(eid, "deleted")
            known = w.entra.get(eid)
            gone = known[0] if known is not None else None
            rhit = cache.removal.get(d.id) if cache is not None else None
            if rhit is not None and rhit[0] is d and rhit[1] is gone and rhit[2] == cause:
                removal = rhit[3]
            else:
                label = self.label_of(gone) if gone is not None else _dir_label(d)
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
            memo.linked.pop(d.id, None)
            w.removals[i] = removal
            return
        user = cur[0]
        lhit = cache.linked.get(d.id) if cache is not None else None
        if lhit is not None and lhit[0] is d and lhit[1] is user:
            update = lhit[2]
        elif self.same is not None and self.same(user.attrs, d):
            update = None
        else:
            update = None
            changes = field_changes(user, d, self.mapping)
            if changes:
                label = self.label_of(user)
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
        memo.removal.pop(d.id, None)
        if update is not None:
            w.updates[i] = update
        else:
            w.in_step.add(i)

    # --- unlinked Entra users: conflicts, matches, new -----------------------------------
    # A candidate (unlinked, in scope, not ignored) is one of: ``lone`` (no number or e-mail
    # of it is held by an unlinked directory user: a sure new user), ``alone`` (every
    # directory user it can reach is reachable by no other candidate: its match or new-user
    # proposal depends on nobody else), or ``contested`` (it shares a reachable directory
    # user with another candidate, which is also how numbers shared by several candidates
    # show up). Only the contested ones run through the greedy matching and the conflict
    # rule each plan, in Entra id order; the result is the one of running all of them.

    def candidate(
        self,
        w: _World,
        uid: str,
        pair: tuple[EntraUser, tuple[tuple[str, str], ...]],
        memo: _Memo,
        dirty: set[str],
    ) -> None:
        """Enter a candidate (see above); ``dirty`` gets the ids whose kind must be settled."""
        r = w.reach(*pair)
        if not (r[1] or r[2]):
            w.lone[uid] = self.new_user(pair[0], pair[1], memo)
            return
        by_phone, by_email = w.by_phone, w.by_email
        ids = {d.id: None for _e, _s in r[1] for d in by_phone[_e]}
        ids.update((d.id, None) for e in r[2] for d in by_email[e])
        dirs = tuple(ids)
        w.dreach[uid] = dirs
        reachers = w.reachers
        for did in dirs:
            rs = reachers.get(did)
            if rs is None:
                reachers[did] = {uid}
            else:
                if len(rs) == 1:
                    dirty.update(rs)  # no longer alone
                rs.add(uid)
        dirty.add(uid)

    def leave(self, w: _World, uid: str, dirty: set[str]) -> None:
        """Take an Entra user out of the candidates, wherever it was."""
        w.lone.pop(uid, None)
        self.drop_alone(w, uid)
        w.contested.discard(uid)
        dirs = w.dreach.pop(uid, ())
        reachers = w.reachers
        for did in dirs:
            rs = reachers[did]
            rs.discard(uid)
            if len(rs) == 1:
                dirty.update(rs)  # perhaps alone now
            elif not rs:
                del reachers[did]

    def drop_alone(self, w: _World, uid: str) -> None:
        had = w.alone.pop(uid, None)
        if had is not None and had.kind is Kind.MATCH:
            w.alone_matches -= 1

    def settle(self, w: _World, dirty: set[str], memo: _Memo) -> None:
        """Alone or contested, for each candidate that may have changed kind."""
        reachers, dreach, in_scope = w.reachers, w.dreach, w.in_scope
        by_phone, by_email, config = w.by_phone, w.by_email, self.config
        for uid in dirty:
            dirs = dreach.get(uid)
            if dirs is None:
                continue  # no longer a candidate that reaches anyone
            self.drop_alone(w, uid)
            if any(len(reachers[did]) > 1 for did in dirs):
                w.contested.add(uid)
                continue
            w.contested.discard(uid)
            user, phones = in_scope[uid]
            r = w.reach(user, phones)
            found = _find_match(r, config, by_phone, by_email, {}, {})
            if found is not None:
                w.alone[uid] = self.match_proposal(user, found, memo)
                w.alone_matches += 1
            else:
                w.alone[uid] = self.new_user(user, phones, memo)

    def new_user(
        self, user: EntraUser, phones: tuple[tuple[str, str], ...], memo: _Memo
    ) -> Proposal:
        uid = user.id
        cache = self.cache
        nhit = cache.new.get(uid) if cache is not None else None
        if nhit is not None and nhit[0] is user:
            new: Proposal = nhit[1]
        else:
            changes = field_changes(user, None, self.mapping)
            if phones:
                changes["phones"] = Change(None, tuple(e for e, _ in phones))
            label = self.label_of(user)
            new = Proposal(
                kind=Kind.NEW,
                entra_id=uid,
                app_user_id=None,
                reason=f"{label} has no matching directory user (no shared number or e-mail)",
                changes=changes,
                label=label,
            )
        memo.new[uid] = (user, new)
        return new

    def match_proposal(
        self, user: EntraUser, found: tuple[DirectoryUser, str, str, str], memo: _Memo
    ) -> Proposal:
        uid = user.id
        d, key, value, why = found
        mhit = self.cache.match.get(uid) if self.cache is not None else None
        if mhit is not None and mhit[0] is user and mhit[1] is d and mhit[2:5] == found[1:]:
            match: Proposal = mhit[5]
        else:
            label = self.label_of(user)
            match = Proposal(
                kind=Kind.MATCH,
                entra_id=uid,
                app_user_id=d.id,
                reason=f"{label} matches {_dir_label(d)} by {why}",
                changes=field_changes(user, d, self.mapping),
                match_key=key,
                match_value=value,
                label=label,
                app_label=_dir_label(d),
            )
        memo.match[uid] = (user, d, key, value, why, match)
        return match

    def candidates(self, w: _World, memo: _Memo) -> tuple[list[Proposal], int]:
        """(the conflict, match and new-user proposals, how many matches)."""
        state = self.state
        entra, by_phone, by_email = w.entra, w.by_phone, w.by_email
        label_of = self.label_of
        proposals: list[Proposal] = []
        in_scope, reach = w.in_scope, w.reach
        # (user, E.164 phones, reach): the matching order is by Entra id
        candidates = [(*in_scope[uid], reach(*in_scope[uid])) for uid in sorted(w.contested)]
        holders: dict[str, list[EntraUser]] = defaultdict(list)
        for _user, _phones, r in candidates:
            for e164, _src in r[1]:
                holders[e164].append(_user)
        shared = [(n, us) for n, us in holders.items() if len(us) >= 2]

        in_conflict: set[str] = set()
        blocked_numbers: dict[str, str | None] = {}  # number -> the only Entra id allowed
        for number, users in sorted(shared):
            owner = state.number_owners.get(number)
            ids = sorted(u.id for u in users)
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
                        f"{len(ids)} Entra users have the number {number}: {names}; "
                        "choose the owner"
                    ),
                    entra_ids=tuple(ids),
                    entra_labels=tuple(label_of(entra[i][0]) for i in ids),
                    number=number,
                    label=number,
                    app_label=_dir_label(holder) if len(by_phone[number]) == 1 else "",
                )
            )

        matched = w.alone_matches
        claimed: dict[str, str] = {}  # directory user id -> Entra id that matched it
        config = self.config
        for user, phones, r in candidates:
            uid = user.id
            if uid in in_conflict:
                continue
            found = _find_match(r, config, by_phone, by_email, blocked_numbers, claimed)
            if found is not None:
                claimed[found[0].id] = uid
                matched += 1
                proposals.append(self.match_proposal(user, found, memo))
            else:
                proposals.append(self.new_user(user, phones, memo))
        proposals += w.alone.values()
        proposals += w.lone.values()
        return proposals, matched


def _new_world(
    directory: Sequence[DirectoryUser],
    state: StateView,
    config: Config,
    members: frozenset[str] | None,
    region: str,
    cache: PlanCache | None,
    memo: _Memo,
) -> _World:
    """A world with the directory's side derived (links and the index of unlinked users)."""
    linked_ids: set[str] = set()
    active: dict[str, int] = {}
    by_phone: dict[str, list[DirectoryUser]] = defaultdict(list)
    by_email: dict[str, list[DirectoryUser]] = defaultdict(list)
    old_phones = cache.dir_phones if cache is not None else {}
    for i, d in enumerate(directory):
        eid = d.entra_id
        if eid is not None:
            if eid not in linked_ids:  # a second directory user linked to it: the first counts
                linked_ids.add(eid)
                if d.sync_enabled:
                    active[eid] = i
            continue
        if not d.active:
            continue
        phit = old_phones.get(d.id)
        numbers = phit[1] if phit is not None and phit[0] is d else _dir_phones(d, region)
        memo.dir_phones[d.id] = (d, numbers)
        for e in numbers:
            by_phone[e].append(d)
        if d.email:
            by_email[d.email.strip().lower()].append(d)
    return _World(
        config=config,
        directory=list(directory),
        ignored=frozenset(state.ignored),
        owners=dict(state.number_owners),
        confirmed=state.removals_confirmed,
        members=members,
        entra=memo.entra,
        in_scope={},
        causes={},
        linked_ids=linked_ids,
        active=active,
        by_phone=dict(by_phone),
        by_email=dict(by_email),
    )


def plan(
    snapshot: EntraSnapshot,
    directory: Sequence[DirectoryUser],
    state: StateView,
    config: Config,
    cache: PlanCache | None = None,
) -> Plan:
    """The plan (module docstring). ``cache`` (optional) only memoises derived values between
    calls; the result is the same with or without it. With a cache, a plan over the very same
    directory objects, state and config as the last one re-derives only the Entra users whose
    records changed (``_World``)."""
    if cache is not None:
        cache.begin(config.matching.default_region, config.mapping)
    pl = _Planner(snapshot, state, config, cache)
    members = snapshot.group_members
    w = cache.world if cache is not None else None
    delta = None
    if w is not None and w.reusable(directory, state, config, members):
        delta = w.diff(snapshot)
    if w is not None and delta is not None:
        # incremental: only the changed (added, replaced, removed) Entra users
        changed, removed = delta
        memo = _Memo(cache, in_place=True)
        touched = [u.id for u in changed]
        for uid in removed:
            del w.entra[uid]
            w.reaches.pop(uid, None)
            w.in_scope.pop(uid, None)
            w.causes.pop(uid, None)
        pl.take_users(w, changed, w.entra, fresh=False)
        touched += removed
        mode = "incremental"
    else:
        memo = _Memo(cache)
        w = _new_world(directory, state, config, members, pl.region, cache, memo)
        pl.take_users(w, snapshot.users, cache.entra if cache is not None else {}, fresh=True)
        touched = []
        mode = "full"
    active = w.active
    dirty: set[str] = set()
    if mode == "full":
        for i in active.values():
            pl.link_outcome(w, i, w.directory[i], memo)
        linked_ids, ignored = w.linked_ids, w.ignored
        for uid, pair in w.in_scope.items():
            if uid not in linked_ids and uid not in ignored:
                pl.candidate(w, uid, pair, memo, dirty)
    else:
        for uid in touched:
            at = active.get(uid)
            if at is not None:
                w.updates.pop(at, None)
                w.removals.pop(at, None)
                w.in_step.discard(at)
                pl.link_outcome(w, at, w.directory[at], memo)
            pl.leave(w, uid, dirty)
            memo.match.pop(uid, None)
            now = w.in_scope.get(uid)
            if now is None or uid in w.linked_ids or uid in w.ignored:
                memo.new.pop(uid, None)
            else:
                pl.candidate(w, uid, now, memo, dirty)
    pl.settle(w, dirty, memo)

    proposals = [w.updates[i] for i in sorted(w.updates)]
    found, matched = pl.candidates(w, memo)
    proposals += found

    # --- removals and the guard -----------------------------------------------------------
    removals = [w.removals[i] for i in sorted(w.removals)] if snapshot.complete else []
    # (a partial read never removes anyone)
    blocked: list[Blocked] = []
    if removals:
        guard = config.guard
        linked_count = len(active)
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
    if cache is not None:
        if mode == "full":
            memo.done()
        cache.world = w
        cache.last_mode = mode
        w.token = snapshot.token
    ordered = _sort(proposals, w if mode == "incremental" else None)
    if cache is not None:
        w.order = ordered
    synced = len(w.in_step)
    return Plan(
        proposals=tuple(map(itemgetter(1), ordered)),
        blocked=tuple(blocked),
        synced=synced,
        syncable=synced + len(w.updates) + matched,
    )


def entra_label(u: EntraUser) -> str:
    """A display name for reasons and cards: ``<...>`` removed like any mapped value."""
    return clean(u.label) or u.id


def _dir_label(d: DirectoryUser) -> str:
    name = d.display_name or " ".join(x for x in (d.first_name, d.last_name) if x)
    return name or d.email or d.id


def _find_match(
    r: _Reach,
    config: Config,
    by_phone: dict[str, list[DirectoryUser]],
    by_email: dict[str, list[DirectoryUser]],
    blocked_numbers: dict[str, str | None],
    claimed: dict[str, str],
) -> tuple[DirectoryUser, str, str, str] | None:
    """The first key (in the configured order) that leads to exactly one unclaimed directory
    user. ``r``: the user's numbers and e-mails that some unlinked directory user has."""
    uid = r[0].id
    for key in config.matching.keys:
        if key == "phone":
            for e164, source in r[1]:
                if e164 in blocked_numbers and blocked_numbers[e164] != uid:
                    continue
                hits = [d for d in by_phone[e164] if d.id not in claimed]
                if len(hits) == 1:
                    return hits[0], "phone", e164, f"phone {e164} ({source})"
        else:
            for email in r[2]:
                hits = [d for d in by_email[email] if d.id not in claimed]
                if len(hits) == 1:
                    return hits[0], "email", email, f"e-mail {email}"
    return None


def auto_applicable(p: Plan, *, scheduled: bool) -> list[Proposal]:
    """What the schedule policy may apply without an admin: in scheduled mode, updates of
    already-linked users; never a creation, a link, a removal or a conflict."""
    if not scheduled:
        return []
    return [x for x in p.proposals if x.kind is Kind.UPDATE]
