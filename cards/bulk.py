"""The cards of the bulk actions (Accept all, Apply all): the list to confirm, and what was
done. Pure functions from :class:`cards.views.BulkView` to Adaptive Card 1.5 JSON; every name
is escaped; lists are capped ("and N more") so the card stays small."""

from __future__ import annotations

from typing import Any

from cards.text import escape_md
from cards.views import BulkEntry, BulkView, Verb
from sync.models import Kind

Card = dict[str, Any]
Element = dict[str, Any]

_NOUN = {Kind.MATCH: ("match", "matches"), Kind.UPDATE: ("update", "updates")}
_DO = {Kind.MATCH: ("Accept", "accepted"), Kind.UPDATE: ("Apply", "applied")}


def _count(kind: Kind, n: int) -> str:
    one, many = _NOUN.get(kind, ("item", "items"))
    return f"{n} {one if n == 1 else many}"


def _text(text: str, **kw: Any) -> Element:
    return {"type": "TextBlock", "text": text, "wrap": True, **kw}


def _lines(entries: tuple[BulkEntry, ...], limit: int) -> list[Element]:
    out = []
    for e in entries[:limit]:
        tail = f" \u2014 {escape_md(e.detail, 120)}" if e.detail else ""
        out.append(_text(f"\u2022 {escape_md(e.name, 80)}{tail}", spacing="None"))
    if len(entries) > limit:
        out.append(_text(f"\u2026 and {len(entries) - limit} more", isSubtle=True))
    return out


def _left_out(view: BulkView) -> list[Element]:
    if not view.left_out:
        return []
    return [
        _text(
            f"Left out for an individual look ({len(view.left_out)}): each keeps its own card "
            "(type 'pending').",
            weight="Bolder",
            spacing="Medium",
        ),
        *_lines(view.left_out, view.limit),
    ]


def _card(body: list[Element], actions: list[Element] | None = None) -> Card:
    card: Card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def _execute(title: str, verb: Verb, pid: str, digest: str, style: str | None = None) -> Element:
    action: Element = {
        "type": "Action.Execute",
        "title": title,
        "verb": verb.value,
        "data": {"pid": pid, "d": digest},
        "associatedInputs": "none",
    }
    if style is not None:
        action["style"] = style
    return action


def bulk_confirm_card(view: BulkView) -> Card:
    """ "Accept these 12 matches?" with the list, what is left out and why, and Yes / Cancel.
    The Yes button carries the digest of exactly this set; the server recomputes it."""
    do, _done = _DO.get(view.kind, ("Decide", "decided"))
    what = _count(view.kind, len(view.items))
    body = [
        _text(f"{do} these {what}?", size="Medium", weight="Bolder"),
        *_lines(view.items, view.limit),
        *_left_out(view),
    ]
    actions = []
    if view.ref is not None:
        actions = [
            _execute(
                f"Yes, {do.lower()} {what}",
                Verb.BULK_CONFIRM,
                view.ref.pid,
                view.ref.digest,
                style="positive",
            ),
            _execute("Cancel", Verb.BULK_CANCEL, view.ref.pid, view.ref.digest),
        ]
    return _card(body, actions)


def bulk_done_card(view: BulkView) -> Card:
    """What Accept all / Apply all did: the items decided, how many could not be, and the
    items left out for an individual look."""
    _do, done = _DO.get(view.kind, ("Decide", "decided"))
    heading = f"{_count(view.kind, len(view.items))} {done}"
    if view.actor:
        heading += f" by {escape_md(view.actor, 60)}"
    if view.at:
        heading += f", {escape_md(view.at, 40)}"
    body = [_text(heading, size="Medium", weight="Bolder"), *_lines(view.items, view.limit)]
    if view.failed:
        body.append(
            _text(
                f"{view.failed} could not be done (already handled, changed, or failed); "
                "type 'pending'.",
                color="attention",
            )
        )
    if not view.items and not view.left_out and not view.failed:
        body.append(_text("Nothing waits for this action."))
    return _card(body + _left_out(view))


def bulk_refused_card() -> Card:
    """A bulk confirmation that does not match what the server would do now."""
    return _card(
        [
            _text("Nothing was done", size="Medium", weight="Bolder"),
            _text(
                "The list of items changed since this card was shown, or the card was not "
                "issued by this bot. Press Accept all / Apply all again to see the current list."
            ),
        ]
    )


def bulk_cancelled_card(actor: str, at: str) -> Card:
    return _card(
        [_text(f"Cancelled by {escape_md(actor, 60)}, {escape_md(at, 40)}; nothing was done.")]
    )
