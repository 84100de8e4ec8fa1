"""Which pending items a bulk action (Accept all, Apply all) leaves out, so that an admin looks
at each of them on its own card. Pure: the caller passes the directory user and the counts.

An item is left out when its directory user
1. holds a number that two or more Entra users, or two or more directory users, have
   (a shared number: whose entry it is needs a person's judgement); or
2. looks like a role or shared account (``is_role_account``) and the item would rename it or
   change its e-mail address.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sync.models import DirectoryUser, EntraUser, Proposal
from sync.plan.planner import directory_phones, entra_phones

# Words that name a role or a place rather than a person (English and Swedish), matched as
# whole words of the directory user's names, case-insensitively.
ROLE_WORDS = frozenset(
    {
        "reception",
        "receptionen",
        "switchboard",
        "växel",
        "växeln",
        "vaxel",
        "helpdesk",
        "support",
        "servicedesk",
        "kundtjänst",
        "kundservice",
        "info",
        "office",
        "kontor",
        "kontoret",
        "lobby",
        "sales",
        "försäljning",
        "conference",
        "konferens",
        "mötesrum",
        "shared",
        "gemensam",
    }
)
IDENTITY_FIELDS = frozenset({"first_name", "last_name", "display_name", "email"})
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class NumberCounts:
    """How many Entra users and how many directory users have each number (E.164)."""

    entra: Mapping[str, int]
    directory: Mapping[str, int]

    def shared(self, number: str) -> bool:
        return self.entra.get(number, 0) >= 2 or self.directory.get(number, 0) >= 2


def number_counts(
    entra: Iterable[EntraUser], directory: Iterable[DirectoryUser], region: str
) -> NumberCounts:
    """Count each number once per Entra user and once per directory user."""
    by_entra: Counter[str] = Counter()
    for u in entra:
        by_entra.update(e for e, _ in entra_phones(u, region))
    by_dir: Counter[str] = Counter()
    for d in directory:
        by_dir.update(directory_phones(d, region))
    return NumberCounts(dict(by_entra), dict(by_dir))


def is_role_account(d: DirectoryUser) -> bool:
    """A role or shared account: it lacks a first or a last name, or one of its names
    contains a word of ``ROLE_WORDS`` ("Reception", "Växel", "Support", ...)."""
    if not (d.first_name or "").strip() or not (d.last_name or "").strip():
        return True
    names = " ".join(x for x in (d.display_name, d.first_name, d.last_name) if x)
    return any(w in ROLE_WORDS for w in _WORD.findall(names.lower()))


def needs_individual_look(
    p: Proposal, d: DirectoryUser | None, counts: NumberCounts, region: str
) -> str | None:
    """Why a bulk action leaves ``p`` (a match or an update of directory user ``d``) out,
    or None when it may be part of it. ``d`` None (gone): left out, its own card says why."""
    if d is None:
        return "the directory user no longer exists"
    shared = sorted(n for n in directory_phones(d, region) if counts.shared(n))
    if shared:
        return f"{_name(d)} has the shared number {shared[0]}"
    if is_role_account(d) and IDENTITY_FIELDS & set(p.changes):
        return f"{_name(d)} looks like a role account and would be renamed or get a new e-mail"
    return None


def _name(d: DirectoryUser) -> str:
    return d.display_name or " ".join(x for x in (d.first_name, d.last_name) if x) or d.id
