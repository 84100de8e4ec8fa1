"""The cards of the bulk actions (Accept all, Apply all): the list to confirm, and what was
done. Pure functions from :class:`cards.views.BulkView` to Adaptive Card 1.5 JSON in the
viewer's language; every name is escaped; lists are capped ("and N more") so the card stays
small; no text is coloured (contrast)."""

from __future__ import annotations

from typing import Any

from cards.build import _card, _execute, _text, when
from cards.catalogue import ENGLISH, Texts
from cards.text import escape_md
from cards.views import BulkEntry, BulkView, Verb
from sync.models import Kind

Card = dict[str, Any]
Element = dict[str, Any]


def _lines(t: Texts, entries: tuple[BulkEntry, ...], limit: int) -> list[Element]:
    out = []
    for e in entries[:limit]:
        tail = f" \u2014 {escape_md(e.detail, 120)}" if e.detail else ""
        out.append(_text(f"\u2022 {escape_md(e.name, 80)}{tail}", spacing="None"))
    if len(entries) > limit:
        out.append(_text(t("\u2026 and {n} more", n=len(entries) - limit), isSubtle=True))
    return out


def _left_out(t: Texts, view: BulkView) -> list[Element]:
    if not view.left_out:
        return []
    return [
        _text(
            t(
                "Left out for an individual look ({n}): each keeps its own card (type 'pending').",
                n=len(view.left_out),
            ),
            weight="Bolder",
            spacing="Medium",
        ),
        *_lines(t, view.left_out, view.limit),
    ]


def _question(t: Texts, kind: Kind, n: int) -> str:
    if kind is Kind.MATCH:
        return t.plural("Accept this match?", "Accept these {n} matches?", n)
    return t.plural("Apply this update?", "Apply these {n} updates?", n)


def _yes(t: Texts, kind: Kind, n: int) -> str:
    if kind is Kind.MATCH:
        return t.plural("Yes, accept {n} match", "Yes, accept {n} matches", n)
    return t.plural("Yes, apply {n} update", "Yes, apply {n} updates", n)


def _done(t: Texts, kind: Kind, n: int) -> str:
    if kind is Kind.MATCH:
        return t.plural("{n} match accepted", "{n} matches accepted", n)
    return t.plural("{n} update applied", "{n} updates applied", n)


def bulk_confirm_card(view: BulkView, texts: Texts = ENGLISH) -> Card:
    """ "Accept these 12 matches?" with the list, what is left out and why, and Yes / Cancel.
    The Yes button carries the digest of exactly this set; the server recomputes it."""
    t = texts
    n = len(view.items)
    body = [
        _text(_question(t, view.kind, n), size="Medium", weight="Bolder"),
        *_lines(t, view.items, view.limit),
        *_left_out(t, view),
    ]
    actions = []
    if view.ref is not None:
        actions = [
            _execute(
                _yes(t, view.kind, n),
                Verb.BULK_CONFIRM,
                view.ref.pid,
                view.ref.digest,
                style="positive",
            ),
            _execute(t("Cancel"), Verb.BULK_CANCEL, view.ref.pid, view.ref.digest),
        ]
    return _card(body, actions)


def bulk_done_card(view: BulkView, texts: Texts = ENGLISH) -> Card:
    """What Accept all / Apply all did: the items decided, how many could not be, and the
    items left out for an individual look."""
    t = texts
    heading = _done(t, view.kind, len(view.items))
    if view.actor:
        heading += " " + t("by {name}", name=escape_md(view.actor, 60))
    if view.at:
        heading += f", {when(t, view.at)}"
    body = [_text(heading, size="Medium", weight="Bolder"), *_lines(t, view.items, view.limit)]
    if view.failed:
        body.append(
            _text(
                "\u26a0\ufe0f "
                + t(
                    "{n} could not be done (already handled, changed, or failed); type 'pending'.",
                    n=view.failed,
                ),
                weight="Bolder",
            )
        )
    if not view.items and not view.left_out and not view.failed:
        body.append(_text(t("Nothing waits for this action.")))
    return _card(body + _left_out(t, view))


def bulk_refused_card(texts: Texts = ENGLISH) -> Card:
    """A bulk confirmation that does not match what the server would do now."""
    t = texts
    return _card(
        [
            _text(t("Nothing was done"), size="Medium", weight="Bolder"),
            _text(
                t(
                    "The list of items changed since this card was shown, or the card was not "
                    "issued by this bot. Press Accept all / Apply all again to see the current "
                    "list."
                )
            ),
        ]
    )


def bulk_cancelled_card(actor: str, at: Any, texts: Texts = ENGLISH) -> Card:
    t = texts
    return _card(
        [
            _text(
                t(
                    "Cancelled by {name}, {at}; nothing was done.",
                    name=escape_md(actor, 60),
                    at=when(t, at),
                )
            )
        ]
    )
