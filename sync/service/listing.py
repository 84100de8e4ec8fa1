"""How pending items are listed: the one order used everywhere (digest, `pending`, preview),
the pages of the `pending` card, and which items a `sync <name | e-mail | number>` reaches.

Order: by kind in the seed's order (matches, new users, updates, removals, conflicts: the
order of ``sync.models.Kind``), then by name, case-insensitive (``str.casefold``), then by id
so that equal names keep one order."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sync.models import DirectoryUser, Kind, Proposal
from sync.plan.phones import normalize
from sync.service.records import Item

T = TypeVar("T")

KIND_RANK = {kind: rank for rank, kind in enumerate(Kind)}
PAGE_SIZE = 10  # names on one digest / `pending` page


def display_name(p: Proposal) -> str:
    """The name a list shows for a proposal: the Entra name, else the directory user's."""
    return p.label or p.app_label or p.entra_id or p.id


def order_key(p: Proposal) -> tuple[int, str, str]:
    return (KIND_RANK[p.kind], display_name(p).casefold(), p.id)


def in_display_order(items: Iterable[T], proposal: Callable[[T], Proposal]) -> list[T]:
    """``items`` sorted by ``order_key`` of their proposal."""
    return sorted(items, key=lambda i: order_key(proposal(i)))


def set_digest(items: Sequence[Item]) -> str:
    """A short hash of the listed ids in their order: a page button carries it, so a press
    on a page of a list that changed since can say so. Not a secret (the button's HMAC is)."""
    joined = "\n".join(i.id for i in items)
    return hashlib.sha256(joined.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class PendingPage:
    """One page of the pending list. ``page`` is 1-based and within ``1..pages``; ``changed``:
    the request named another list (items were decided or added since that page was shown)."""

    items: tuple[Item, ...]
    page: int
    pages: int
    total: int
    first: int  # the 1-based position of the page's first item in the list
    counts: dict[Kind, int]
    set_digest: str
    changed: bool = False

    @property
    def after(self) -> int:
        """How many items come after this page."""
        return max(0, self.total - (self.first - 1) - len(self.items))


def page_of(
    items: Iterable[Item], page: int = 1, size: int = PAGE_SIZE, expected_set: str = ""
) -> PendingPage:
    """Page ``page`` of ``items`` in display order; a page beyond the end is the last one, a
    page before the first is the first (a stale button still answers with a real page)."""
    ordered = in_display_order(items, lambda i: i.proposal)
    size = max(1, size)
    pages = max(1, -(-len(ordered) // size))
    page = min(max(1, page), pages)
    start = (page - 1) * size
    counts: dict[Kind, int] = {}
    for i in ordered:
        counts[i.kind] = counts.get(i.kind, 0) + 1
    digest = set_digest(ordered)
    return PendingPage(
        items=tuple(ordered[start : start + size]),
        page=page,
        pages=pages,
        total=len(ordered),
        first=start + 1,
        counts=counts,
        set_digest=digest,
        changed=bool(expected_set) and expected_set != digest,
    )


def reaches(
    p: Proposal,
    query: str,
    found: set[str],
    former: DirectoryUser | None,
    region: str,
) -> bool:
    """Does `sync <query>` reach proposal ``p``? Yes when it concerns an Entra user the query
    found in Graph (``found``), or when the query is the name the item shows (Entra or
    directory name, exact or a part of it), or the e-mail, a number or the id of the directory
    user it concerns (``former``): a deleted or disabled user is no longer in Graph's answer,
    yet its pending removal must be reachable by the name an admin remembers."""
    if p.entra_id in found or set(p.entra_ids) & found:
        return True
    q = query.strip().casefold()
    if not q:
        return False
    names = {n.casefold() for n in (p.label, p.app_label, *p.entra_labels) if n}
    if former is not None:
        names |= {n.casefold() for n in (former.display_name, _full_name(former)) if n}
    if any(q == n or q in n for n in names):
        return True
    if former is None:
        return False
    if former.email and former.email.casefold() == q:
        return True
    if former.id == query.strip():
        return True
    e164 = normalize(query, region)
    return bool(e164) and any(normalize(raw, region) == e164 for raw in former.phones)


def _full_name(u: DirectoryUser) -> str:
    return " ".join(x for x in (u.first_name, u.last_name) if x)
